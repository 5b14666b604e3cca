"""Attacks by strangers, each a scripted peer on real loopback sockets against real nodes."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from nacl.signing import SigningKey

from chat.content import post
from chat.identity import load_or_create_identity
from chat.node import Node
from net.peer import PeerConnection
from net.server import async_dial
from store.db import Store
from store.message import create_message, message_id
from tests.nodes import open_node, wait_until
from tests.test_node import prefill, seq_of
from tests.test_replication import FakePeer, chain, tamper


def port_of(node: Node) -> int:
    assert node.address is not None
    return int(node.address.split(":")[2].split("~")[0])


def last_error(node: Node, key: bytes) -> str:
    """The error the node last recorded for peer `key` ('' when none)."""
    assert node.manager is not None
    stats = node.manager.peer_stats.get(key)
    return (stats.last_error or "") if stats is not None else ""


async def test_a_bad_signature_is_refused_alone_and_in_a_batch_and_the_relay_stays_trusted(
    tmp_path: Path,
) -> None:
    # The author signs message 5 on top of a message 4 whose signature is broken. Node x
    # is sent message 4 alone, node y messages 4 and 5 in one frame: one verdict on both.
    author = SigningKey(b"v" * 32)
    feed = bytes(author.verify_key)
    honest = chain(author, 3)
    bad_four = tamper(chain(author, 1, 4, message_id(honest[-1]))[0])
    five = create_message(author, 5, message_id(bad_four), 5, post("on top", "t")).raw
    relay_dir = tmp_path / "relay"
    load_or_create_identity(relay_dir)
    async with await Store.open(relay_dir / "treechat.db") as store:
        await store.add_received(honest)
    for name in ("relay", "x", "y"):
        await prefill(tmp_path / name, 0, [feed])
    relay = await open_node(relay_dir)
    x = await open_node(tmp_path / "x")
    y = await open_node(tmp_path / "y")
    runs: list[asyncio.Task[None]] = []
    conns: list[PeerConnection] = []
    try:
        assert relay.address is not None
        for node in (x, y):
            await node.connect(relay.address)
        await wait_until(lambda: seq_of(x, feed) == 3 and seq_of(y, feed) == 3, what="sync")
        stranger = SigningKey.generate()
        stranger_id = bytes(stranger.verify_key)
        for node, sent in ((x, [bad_four]), (y, [bad_four, five])):
            fake = FakePeer({feed: [*honest, *sent]})
            conn = await async_dial("127.0.0.1", port_of(node), node.feed_id, stranger)
            fake.conn = conn
            conns.append(conn)
            runs.append(asyncio.create_task(conn.async_run(fake)))
        for node in (x, y):
            manager = node.manager
            assert manager is not None
            await wait_until(
                lambda n=node: "bad signature" in last_error(n, stranger_id),  # type: ignore[misc]
                what="the stranger's bad signature reported",
            )
            assert seq_of(node, feed) == 3 and await node.store.get_message(feed, 4) is None
            assert manager.replicator.link(stranger_id)[feed].trusted is False
            assert manager.replicator.link(relay.feed_id)[feed].trusted is True
        # The author's real message 4 and 5 reach the relay; both nodes take them from it.
        assert relay.manager is not None
        real = chain(author, 2, 4, message_id(honest[-1]))
        relay.manager.local_messages((await relay.store.add_received(real)).stored)
        await wait_until(lambda: seq_of(x, feed) == 5 and seq_of(y, feed) == 5, what="relay")
        for node in (x, y):
            assert await node.store.get_message(feed, 4) == real[0]
    finally:
        for conn in conns:
            conn.close("goodbye")
        for task in runs:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, 5)
        for node in (x, y, relay):
            await node.stop()
