"""Tests of LAN discovery over real mDNS bound to 127.0.0.1 only (net/discovery.py)."""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import logging
import os
import threading
from collections.abc import Callable, Iterator

import pytest

from net.discovery import (
    Discovery,
    DiscoveryError,
    instance_name,
    network_tag,
    parse_advert,
)
from net.interfaces import IPNetwork

LOOPBACK = ["127.0.0.1"]
WAIT = 10.0  # every wait in these tests is bounded by this


class Node:
    """One discovery instance and what it has seen."""

    def __init__(
        self, network_key: bytes, port: int, networks: list[IPNetwork] | None = None
    ) -> None:
        self.key = os.urandom(32)
        self.port = port
        self.found: dict[bytes, tuple[str, int]] = {}
        self.lost: list[bytes] = []
        self.discovery = Discovery(
            self.key,
            port,
            network_key,
            interfaces=LOOPBACK,
            on_found=self._found,
            on_lost=self.lost.append,
            networks=networks,
        )

    def _found(self, key: bytes, host: str, port: int) -> None:
        self.found[key] = (host, port)


async def wait_until(predicate: Callable[[], bool], within: float = WAIT) -> None:
    """Poll `predicate`; fail the test if it is still false after `within` seconds."""
    for _ in range(int(within / 0.05)):
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"condition not reached within {within} s")


async def test_three_nodes_find_each_other_ignore_other_networks_and_see_goodbyes() -> None:
    # a fresh network key per run: other test runs on this machine are "other networks"
    network = os.urandom(32)
    nodes = [Node(network, 17001 + i) for i in range(3)]
    stranger = Node(os.urandom(32), 17009)  # same LAN, another network
    everyone = [*nodes, stranger]
    for node in everyone:
        await node.discovery.async_start()
    try:
        await wait_until(lambda: all(len(n.found) >= 2 for n in nodes))
        for node in nodes:
            others = {o.key: ("127.0.0.1", o.port) for o in nodes if o is not node}
            assert node.found == others  # key, host and port right; never ourselves
        assert stranger.found == {}
        await asyncio.sleep(0.5)  # the stranger's records have been on the wire for long
        assert all(stranger.key not in n.found for n in nodes)

        gone = nodes[2]
        await gone.discovery.async_stop()
        await wait_until(lambda: all(gone.key in n.lost for n in nodes[:2]))
        assert nodes[0].discovery.peers.keys() == {nodes[1].key}
    finally:
        for node in everyone:
            await node.discovery.async_stop()


@pytest.fixture(autouse=True)
def no_thread_left_running() -> Iterator[None]:
    """Discovery runs in the event loop: it must not leave threads behind."""
    before = set(threading.enumerate())
    yield
    assert set(threading.enumerate()) - before == set()


async def test_stop_is_idempotent_and_restart_works() -> None:
    network = os.urandom(32)
    a, b = Node(network, 17011), Node(network, 17012)
    await a.discovery.async_start()
    await a.discovery.async_stop()
    await a.discovery.async_stop()
    await a.discovery.async_start()
    await b.discovery.async_start()
    try:
        await wait_until(lambda: a.key in b.found and b.key in a.found)
    finally:
        await a.discovery.async_stop()
        await b.discovery.async_stop()


def txt(key: bytes, net: str, v: str = "1") -> dict[bytes, bytes | None]:
    return {b"key": base64.b64encode(key), b"net": net.encode(), b"v": v.encode()}


def test_parse_advert_accepts_only_our_network_and_well_formed_records() -> None:
    net = network_tag(b"n" * 32)
    key = bytes(range(32))
    ok = parse_advert(txt(key, net), ["127.0.0.1"], 7708, net)
    assert ok is not None and (ok.key, ok.host, ok.port) == (key, "127.0.0.1", 7708)
    assert parse_advert(txt(key, network_tag(b"m" * 32)), ["127.0.0.1"], 7708, net) is None
    assert parse_advert(txt(key, net, v="2"), ["127.0.0.1"], 7708, net) is None
    assert parse_advert(txt(key[:31], net), ["127.0.0.1"], 7708, net) is None
    assert parse_advert({**txt(key, net), b"key": b"not base64!"}, ["127.0.0.1"], 7708, net) is None
    assert parse_advert({b"net": net.encode(), b"v": b"1"}, ["127.0.0.1"], 7708, net) is None
    assert parse_advert(txt(key, net), [], 7708, net) is None


def test_network_tag_and_instance_name() -> None:
    assert network_tag(b"a" * 32) != network_tag(b"b" * 32)
    assert len(network_tag(b"a" * 32)) == 8
    assert instance_name(bytes.fromhex("ab" * 32)) == "treechat-" + "ab" * 8


def test_bad_arguments_get_clear_errors() -> None:
    def noop(*_: object) -> None:
        return None

    with pytest.raises(DiscoveryError, match="no interface"):
        Discovery(b"k" * 32, 1, b"n" * 32, interfaces=[], on_found=noop, on_lost=noop)
    with pytest.raises(DiscoveryError, match="not an IP address"):
        Discovery(b"k" * 32, 1, b"n" * 32, interfaces=["eth0"], on_found=noop, on_lost=noop)
    with pytest.raises(ValueError, match="32 bytes"):
        Discovery(b"k", 1, b"n" * 32, interfaces=LOOPBACK, on_found=noop, on_lost=noop)


async def test_a_peer_whose_addresses_are_on_none_of_our_interfaces_is_ignored(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="net.discovery")
    network = os.urandom(32)
    sees = Node(network, 17011)
    # Configured as if on a LAN interface only: a loopback address is not on its subnet.
    elsewhere = Node(network, 17012, networks=[ipaddress.ip_network("192.0.2.0/24")])
    for node in (sees, elsewhere):
        await node.discovery.async_start()
    try:
        await wait_until(lambda: elsewhere.key in sees.found)
        await wait_until(lambda: "on none of our interfaces" in caplog.text)
        assert elsewhere.found == {}
    finally:
        for node in (sees, elsewhere):
            await node.discovery.async_stop()
