"""The sealed-network guard itself (tests/sealed_site/sealed.py): what it refuses and allows."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys

import pytest

from tests.sealed_site.sealed import Guard, SealedNetworkError, child_env

OUTSIDE = ("192.0.2.1", 9)  # TEST-NET-1: never routed, but not loopback either
MDNS = ("224.0.0.251", 5353)


def refusals(guard: Guard) -> list[str]:
    return guard.take()


def test_a_non_loopback_connect_is_refused_and_fails_the_test(sealed_network: Guard) -> None:
    with socket.socket() as sock, pytest.raises(SealedNetworkError, match=r"192\.0\.2\.1:9"):
        sock.connect(OUTSIDE)
    # Taken here so this test passes; left in place, the fixture fails the test with it.
    assert refusals(sealed_network) == [
        "sealed test network: refused connect to 192.0.2.1:9"
        " (tests may reach only 127.0.0.0/8, ::1 and namespaces they made)"
    ]


def test_a_refusal_the_code_swallows_is_still_recorded(sealed_network: Guard) -> None:
    for family, address in ((socket.AF_INET, OUTSIDE), (socket.AF_INET6, ("2001:db8::1", 7708))):
        with socket.socket(family) as sock, contextlib.suppress(OSError):
            sock.connect(address)  # a dialler that logs "could not connect" and retries
    assert [line.split(" (")[0] for line in refusals(sealed_network)] == [
        "sealed test network: refused connect to 192.0.2.1:9",
        "sealed test network: refused connect to [2001:db8::1]:7708",
    ]


def test_a_python_subprocess_is_sealed_too(sealed_network: Guard) -> None:
    code = "import socket; socket.socket().connect(('192.0.2.1', 9))"
    child = subprocess.run(
        [sys.executable, "-c", code], env=child_env(), capture_output=True, text=True, timeout=30
    )
    assert child.returncode == 1 and "SealedNetworkError" in child.stderr
    found = refusals(sealed_network)
    assert len(found) == 1 and "connect to 192.0.2.1:9 in subprocess" in found[0]


def test_loopback_is_allowed_both_ways(sealed_network: Guard) -> None:
    with (
        socket.create_server(("127.0.0.1", 0)) as server,
        socket.create_connection(server.getsockname()) as client,
    ):
        peer, _ = server.accept()
        with peer:
            client.sendall(b"hi")
            assert peer.recv(2) == b"hi"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as a:
        a.bind(("127.0.0.1", 0))
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as b:
            b.sendto(b"x", a.getsockname())
            assert a.recvfrom(1)[0] == b"x"
    assert refusals(sealed_network) == []


def test_wildcard_binds_udp_only_and_multicast_only_through_loopback(
    sealed_network: Guard,
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.bind(("", 0))  # an mDNS listener: it is what it hears and sends that counts
        with pytest.raises(SealedNetworkError):  # the default multicast route: a real NIC
            udp.sendto(b"q", MDNS)
        udp.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton("127.0.0.1"))
        with contextlib.suppress(OSError):  # the kernel may lack a route; the count says
            udp.sendto(b"q", MDNS)  # the guard let it through
        membership = socket.inet_aton(MDNS[0]) + socket.inet_aton("192.0.2.7")
        with pytest.raises(SealedNetworkError, match="joining multicast group"):
            udp.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, membership)
    with socket.socket() as tcp, pytest.raises(SealedNetworkError, match=r"bind to 0\.0\.0\.0:0"):
        tcp.bind(("0.0.0.0", 0))
    assert len(refusals(sealed_network)) == 3
