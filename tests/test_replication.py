"""Replication under trouble: forged and forked feeds, a peer crashing mid-sync, a wiped peer."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from pathlib import Path

import pytest
from nacl.signing import SigningKey

import net.replication
from chat.content import post
from chat.identity import load_or_create_identity
from chat.joining import NoReplication
from chat.node import Node, NodeOptions
from net.ebt import EbtConfig
from net.frames import Clock, Msgs
from net.peer import PeerConnection
from net.server import async_dial
from store.db import Store
from store.message import create_message, feed_ref, message_id, peek_feed_seq
from tests.nodes import FAST, open_node, wait_until
from tests.test_node import prefill, seq_of


def chain(key: SigningKey, count: int, start: int = 1, prev: bytes | None = None) -> list[bytes]:
    raws = []
    for seq in range(start, start + count):
        message = create_message(key, seq, prev, 1_700_000_000_000 + seq, post(f"m{seq}", "t"))
        raws.append(message.raw)
        prev = message.id
    return raws


def tamper(raw: bytes) -> bytes:
    """Change one byte of the text so the signature no longer matches."""
    index = raw.index(b"m", 40)
    return raw[:index] + b"X" + raw[index + 1 :]


class FakePeer(NoReplication):
    """A hand-driven peer: announces what it holds lazily and pushes when asked to."""

    def __init__(self, feeds: dict[bytes, list[bytes]]) -> None:
        self.feeds = feeds
        self.sent: dict[bytes, int] = {}
        self.conn: PeerConnection | None = None
        self.announced = False

    def receive_notes(self, session: PeerConnection, notes: dict[bytes, int]) -> None:
        if not self.announced:
            self.announced = True
            session.send_frame(Clock({f: 2 * len(r) + 1 for f, r in self.feeds.items()}))
        for feed, note in notes.items():
            if feed in self.feeds and note >= 0 and note % 2 == 0:
                self.sent[feed] = note >> 1
                self.push(feed)

    def push(self, feed: bytes) -> None:
        raws = self.feeds[feed][self.sent.get(feed, 0) :]
        if raws and self.conn is not None:
            self.conn.send_frame(Msgs(tuple(raws)))
            self.sent[feed] = len(self.feeds[feed])


async def test_peek_reads_author_and_seq_of_any_size() -> None:
    key = SigningKey.generate()
    for seq in (1, 127, 128, 255, 256, 70_000, 2**33):
        prev = None if seq == 1 else bytes(32)
        raw = create_message(key, seq, prev, 1, post("x", "t")).raw
        assert peek_feed_seq(raw) == (bytes(key.verify_key), seq)
    assert peek_feed_seq(b"\x93\x01\x02") is None


async def test_forged_and_forked_feeds_are_rejected_and_reported_while_others_flow(
    tmp_path: Path,
) -> None:
    forged_key, forked_key, good_key, twice_key = (
        SigningKey(b"f" * 32),
        SigningKey(b"k" * 32),
        SigningKey(b"g" * 32),
        SigningKey(b"t" * 32),
    )
    forged, forked, good, twice = (
        bytes(k.verify_key) for k in (forged_key, forked_key, good_key, twice_key)
    )
    # Another fork, seen as a duplicate: a different message at a seq we hold.
    honest_twice = chain(twice_key, 3)
    other_two = create_message(twice_key, 2, message_id(honest_twice[0]), 9, post("again", "t"))
    honest_forked = chain(forked_key, 3)
    # The fork: a different message 3 signed by the same author, and more on top of it.
    other_three = create_message(
        forked_key, 3, message_id(honest_forked[1]), 5, post("other 3", "t")
    )
    forked_branch = [*honest_forked[:2], other_three.raw, *chain(forked_key, 2, 4, other_three.id)]
    forged_feed = chain(forged_key, 5)
    forged_feed[3:] = [tamper(raw) for raw in forged_feed[3:]]

    identity = load_or_create_identity(tmp_path / "a")
    async with await Store.open(tmp_path / "a" / "treechat.db") as store:
        await store.add_received(honest_forked)
        await store.add_received(honest_twice)
    await prefill(tmp_path / "a", 0, [forged, forked, good, twice])
    a = await open_node(tmp_path / "a")
    peer = FakePeer({forged: forged_feed, forked: forked_branch, good: chain(good_key, 10)})
    try:
        assert a.address is not None and a.manager is not None
        port = int(a.address.split(":")[2].split("~")[0])
        fake_key = SigningKey.generate()
        fake_id = bytes(fake_key.verify_key)
        conn = await async_dial("127.0.0.1", port, identity.feed_id, fake_key)
        peer.conn = conn
        run = asyncio.create_task(conn.async_run(peer))
        await wait_until(lambda: seq_of(a, good) == 10, what="the good feed")
        await wait_until(lambda: seq_of(a, forged) == 3, what="the forged feed's valid part")
        stats = a.manager.peer_stats[fake_id]
        await wait_until(lambda: stats.last_error is not None, what="an error report")
        manager = a.manager
        await wait_until(lambda: manager.counters.msgs_rejected >= 2, what="two rejections")
        assert seq_of(a, forked) == 3  # we kept the first version
        assert await a.store.get_held(forked, 3, 3) == [honest_forked[2]]
        assert await a.store.get_held(forged, 4, 4) == []
        # Reported as a fork, not as a bad message: the proof is our 3 and their 4 (whose
        # prev is another 3), the feed is marked, no longer replicated, shown as forked.
        await wait_until(lambda: a.feed_tree(forked).forked, what="the fork shown")
        proofs = {p.feed: p for p in await a.store.forks()}
        assert proofs[forked].seq == 4 and proofs[forked].msg_a == honest_forked[2]
        assert proofs[forked].msg_b == forked_branch[3]
        assert forked in await a.store.forked_feeds()
        assert forked not in manager.replicator.replicating
        assert not a.feed_tree(forged).forked and not a.feed_tree(good).forked
        # A different message at a seq we hold (the core's duplicate) is a fork too.
        conn.send_frame(Msgs((honest_twice[0], other_two.raw)))
        await wait_until(lambda: a.feed_tree(twice).forked, what="the duplicate fork shown")
        proofs = {p.feed: p for p in await a.store.forks()}
        assert (proofs[twice].seq, proofs[twice].msg_a) == (2, honest_twice[1])
        assert proofs[twice].msg_b == other_two.raw
        assert seq_of(a, twice) == 3 and twice not in manager.replicator.replicating
        assert "forked" in (stats.last_error or "")
        # The good feed keeps flowing on the same link after the rejections.
        peer.feeds[good] = peer.feeds[good] + chain(
            good_key, 2, 11, message_id(peer.feeds[good][-1])
        )
        peer.push(good)
        await wait_until(lambda: seq_of(a, good) == 12, what="the good feed after rejections")
        assert a.manager.session(fake_id) is not None
        conn.close("goodbye")
        await asyncio.wait_for(run, 5)
    finally:
        await a.stop()


async def test_peer_crashing_mid_sync_hands_the_feed_to_another_peer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(net.replication, "PUSH_BATCH", 25)
    author = SigningKey(b"a" * 32)
    feed = bytes(author.verify_key)
    data = chain(author, 3000)
    for name in ("a", "c"):
        load_or_create_identity(tmp_path / name)
        async with await Store.open(tmp_path / name / "treechat.db") as store:
            await store.add_received(data)
        await prefill(tmp_path / name, 0, [feed])
    await prefill(tmp_path / "b", 0, [feed])
    # The EBT hand-over of an eager push is what is tested: newest first would fetch a
    # feed this far behind by range requests (tests/test_ebt_ranges.py covers their
    # hand-over when a peer goes).
    push = dataclasses.replace(FAST, newest_first=False)
    a = await open_node(tmp_path / "a", push)
    c = await open_node(tmp_path / "c", push)
    b = await open_node(tmp_path / "b", push)
    crashed: Node | None = None
    try:
        assert a.address and c.address and b.manager
        await b.connect(a.address)
        await b.connect(c.address)
        await wait_until(lambda: seq_of(b, feed) > 0, what="sync start")
        source = b.manager.replicator.eager_source(feed)
        assert source in (a.feed_id, c.feed_id)
        crashed, survivor = (a, c) if source == a.feed_id else (c, a)
        assert seq_of(b, feed) < 3000, "sync finished before the crash; make it longer"
        crash(crashed)
        await wait_until(lambda: seq_of(b, feed) == 3000, limit=20, what="sync after crash")
        assert b.manager.replicator.eager_source(feed) in (survivor.feed_id, None)
        assert b.manager.session(crashed.feed_id) is None
    finally:
        for node in (a, b, c):
            with contextlib.suppress(Exception):
                await node.stop()


def crash(node: Node) -> None:
    """Stop a node abruptly: no bye, no goodbye, sockets reset, tasks gone."""
    assert node.manager is not None
    if node.connections.server is not None:
        node.connections.server.close()
    for session in node.manager.sessions().values():
        if isinstance(session, PeerConnection):
            session._abort()
    for task in list(node.tasks.tasks):
        task.cancel()
    node.manager._closed = True


async def test_peer_that_wiped_its_database_catches_up_again(tmp_path: Path) -> None:
    a_id = load_or_create_identity(tmp_path / "a").feed_id
    b_id = load_or_create_identity(tmp_path / "b").feed_id
    await prefill(tmp_path / "a", 40, [b_id])
    await prefill(tmp_path / "b", 10, [a_id])
    a = await open_node(tmp_path / "a")
    b = await open_node(tmp_path / "b")
    try:
        assert a.address is not None
        await b.connect(a.address)
        await wait_until(lambda: seq_of(b, a_id) == 41 and seq_of(a, b_id) == 11, what="sync")
        await b.stop()
        for path in (tmp_path / "b").glob("treechat.db*"):
            path.unlink()
        # Same identity, empty database: b must not write before it has its own feed back
        # (a new message 1 would fork it). Its follow of a comes back with its feed.
        b = await open_node(tmp_path / "b")
        assert seq_of(b, b_id) == 0
        await b.connect(a.address)
        await wait_until(lambda: seq_of(b, b_id) == 11, what="b's own feed back from a")
        await wait_until(lambda: seq_of(b, a_id) == 41, what="a's feed again")
        entry = await b.post("after the wipe", "general")
        assert entry.seq == 12
        await wait_until(lambda: seq_of(a, b_id) == 12, what="b's new post at a")
    finally:
        await a.stop()
        await b.stop()


async def test_reconnect_after_restart_skips_unchanged_feeds(tmp_path: Path) -> None:
    keys = [SigningKey(bytes([i + 1]) * 32) for i in range(20)]
    feeds = [bytes(k.verify_key) for k in keys]
    load_or_create_identity(tmp_path / "a")
    async with await Store.open(tmp_path / "a" / "treechat.db") as store:
        for key in keys:
            await store.add_received(chain(key, 3))
    await prefill(tmp_path / "a", 0, feeds)
    await prefill(tmp_path / "b", 0, feeds)
    options = NodeOptions(
        ebt=EbtConfig(stall_timeout=0.5, ack_delay=0.0),
        ping_interval=0.2,
        write_status=False,
        schedule=False,
    )

    async def session() -> int:
        """Connect fresh nodes on the same data dirs; clock entries sent by both."""
        a = await open_node(tmp_path / "a", options)
        b = await open_node(tmp_path / "b", options)
        try:
            assert a.address is not None and a.manager and b.manager
            await b.connect(a.address)
            await wait_until(lambda: all(seq_of(b, f) == 3 for f in feeds), what="sync")
            await asyncio.sleep(0.3)  # acks and answers
            return a.manager.counters.notes_entries_sent + b.manager.counters.notes_entries_sent
        finally:
            await b.stop()
            await a.stop()

    full = await session()
    assert full >= 2 * len(feeds)  # both clocks were sent whole
    again = await session()
    assert again <= full // 10, (again, full)  # remembered records: nothing to say
    # Without the records (a lost database table) the exchange is full again.
    async with await Store.open(tmp_path / "b" / "treechat.db") as store:
        await store.remove_peer(load_or_create_identity(tmp_path / "a").feed_id)
    assert await session() >= len(feeds)


async def test_a_malformed_frame_is_recorded_for_that_peer_and_others_go_on(
    tmp_path: Path,
) -> None:
    a = await open_node(tmp_path / "a")
    b = await open_node(tmp_path / "b")
    try:
        assert a.address is not None and a.manager is not None
        await b.follow(a.feed_id)
        await b.connect(a.address)
        port = int(a.address.split(":")[2].split("~")[0])
        rogue_key = SigningKey.generate()
        rogue = await async_dial("127.0.0.1", port, a.feed_id, rogue_key)
        rogue_id = bytes(rogue_key.verify_key)
        await wait_until(lambda: a.manager is not None and a.manager.session(rogue_id) is not None)
        # A clock frame whose body is a string, not a map: a protocol violation.
        rogue._writer.write(rogue._encoder.encrypt(b"\x00\x00\x00\x09\x92\xa5clock\xa1x"))
        stats = a.manager.peer_stats[rogue_id]
        await wait_until(lambda: stats.last_error is not None, what="the error on record")
        assert "protocol error" in (stats.last_error or "")
        assert a.manager.session(rogue_id) is None
        snapshot = a.status_snapshot()
        (row,) = [p for p in snapshot["peers"] if p["key"] == feed_ref(rogue_id)]
        assert "protocol error" in row["last_error"] and row["state"] != "connected"
        await a.post("still flowing", "general")
        await wait_until(lambda: seq_of(b, a.feed_id) == 1, what="the other link")
        rogue.close("goodbye")
    finally:
        await a.stop()
        await b.stop()
