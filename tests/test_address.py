"""Multiserver addresses and invites: parse, print, and say what is wrong."""

from __future__ import annotations

import base64

import pytest

from net.address import Address, AddressError, Invite, parse_address, parse_invite

KEY = bytes(range(32))
KEY_B64 = base64.b64encode(KEY).decode()
SECRET = bytes(range(100, 132))
SECRET_B64 = base64.b64encode(SECRET).decode()


def test_parse_and_print_round_trip() -> None:
    text = f"net:192.168.1.5:7708~shs:{KEY_B64}"
    address = parse_address(text)
    assert address == Address("192.168.1.5", 7708, KEY)
    assert str(address) == text


def test_hostnames_and_surrounding_space() -> None:
    address = parse_address(f"  net:pub.example.org:8008~shs:{KEY_B64}\n")
    assert (address.host, address.port) == ("pub.example.org", 8008)


@pytest.mark.parametrize("host_text", ["::1", "[::1]"])
def test_ipv6_bare_or_bracketed(host_text: str) -> None:
    address = parse_address(f"net:{host_text}:7708~shs:{KEY_B64}")
    assert address.host == "::1"
    assert address.port == 7708
    assert str(address) == f"net:::1:7708~shs:{KEY_B64}"  # printed bare, as SSB does
    assert parse_address(str(address)) == address


def test_first_usable_alternative_is_taken() -> None:
    text = f"wss://example.org~shs:{KEY_B64};net:10.0.0.2:7708~shs:{KEY_B64}"
    assert parse_address(text) == Address("10.0.0.2", 7708, KEY)


def test_invite_round_trip() -> None:
    text = f"net:127.0.0.1:7708~shs:{KEY_B64}:{SECRET_B64}"
    invite = parse_invite(text)
    assert invite == Invite(Address("127.0.0.1", 7708, KEY), SECRET)
    assert str(invite) == text


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "empty"),
        ("hello", "expected the form"),
        (f"net:1.2.3.4~shs:{KEY_B64}", "needs HOST:PORT"),
        (f"net:1.2.3.4:~shs:{KEY_B64}", "not a number"),
        (f"net:1.2.3.4:http~shs:{KEY_B64}", "not a number"),
        (f"net:1.2.3.4:70000~shs:{KEY_B64}", "outside 1..65535"),
        (f"net::7708~shs:{KEY_B64}", "host is empty"),
        (f"net:fe80::zz:7708~shs:{KEY_B64}", "not a valid IPv6"),
        (f"net:1.2.3.4:7708~ws:{KEY_B64}", "must start with shs:"),
        ("net:1.2.3.4:7708~shs:not*base64", "not standard base64"),
        ("net:1.2.3.4:7708~shs:AAAA", "3 bytes, not 32"),
        (f"net:1.2.3.4:7708~shs:@{KEY_B64}.ed25519", "without the @"),
        (f"net:1.2.3.4:7708~shs:{KEY_B64}:{SECRET_B64}", "this is an invite"),
    ],
)
def test_address_errors_say_what_is_wrong(text: str, problem: str) -> None:
    with pytest.raises(AddressError) as caught:
        parse_address(text)
    assert problem in str(caught.value)
    assert caught.value.problem in str(caught.value)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (f"net:1.2.3.4:7708~shs:{KEY_B64}", "without an invite secret"),
        (f"net:1.2.3.4:7708~shs:{KEY_B64}:AAAA", "invite secret is 3 bytes"),
        (f"net:1.2.3.4:7708~shs:{KEY_B64}:{SECRET_B64}:x", "exactly one secret"),
    ],
)
def test_invite_errors_say_what_is_wrong(text: str, problem: str) -> None:
    with pytest.raises(AddressError, match=problem):
        parse_invite(text)


def test_address_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        parse_address("nope")
