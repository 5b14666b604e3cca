"""Nodes replicating over real loopback sockets and real SQLite files."""

from __future__ import annotations

import hashlib
import random
import time
from pathlib import Path

import pytest

from chat.content import contact, post
from chat.identity import load_or_create_identity
from chat.node import Node
from net.server import DialError
from store.db import Store
from tests.nodes import FAST, open_node, wait_until


async def prefill(path: Path, posts: int, follows: list[bytes] = ()) -> bytes:  # type: ignore[assignment]
    """Write follows and posts into a data dir's own feed without a node; returns its id."""
    identity = load_or_create_identity(path)
    async with await Store.open(path / "treechat.db") as store:
        for feed in follows:
            await store.append_own(identity.signing_key, contact(feed, following=True))
        for i in range(posts):
            await store.append_own(identity.signing_key, post(f"post {i}", "general"))
    return identity.feed_id


def seq_of(node: Node, feed: bytes) -> int:
    assert node.manager is not None
    return node.manager.replicator.local_clock.get(feed, 0)


async def test_two_nodes_sync_both_ways_and_live(tmp_path: Path) -> None:
    a_id = load_or_create_identity(tmp_path / "a").feed_id
    b_id = load_or_create_identity(tmp_path / "b").feed_id
    await prefill(tmp_path / "a", 30, [b_id])
    await prefill(tmp_path / "b", 20, [a_id])
    a = await open_node(tmp_path / "a")
    b = await open_node(tmp_path / "b")
    try:
        assert a.address is not None and a.address.startswith("net:127.0.0.1:")
        await b.connect(a.address)
        await wait_until(lambda: seq_of(b, a_id) == 31 and seq_of(a, b_id) == 21, what="sync")
        entry = await a.post("live one", "general")
        await wait_until(lambda: seq_of(b, a_id) == 32, what="live message")
        texts = [e.text for e in await b.timeline("general")]
        assert "live one" in texts and "post 29" in texts
        assert entry.seq == 32
        links = b.links()
        assert len(links) == 1 and links[0].we_are_behind == 0
    finally:
        await a.stop()
        await b.stop()


async def test_ten_nodes_random_topology_converge_storing_each_message_once(
    tmp_path: Path,
) -> None:
    rng = random.Random(7)
    count, posts = 10, 50
    paths = [tmp_path / f"n{i}" for i in range(count)]
    ids = [load_or_create_identity(p).feed_id for p in paths]
    for i, path in enumerate(paths):
        await prefill(path, posts, [f for f in ids if f != ids[i]])
    nodes = [await open_node(p) for p in paths]
    try:
        # A random spanning tree plus a few extra edges: connected, with cycles.
        edges: set[tuple[int, int]] = set()
        order = list(range(count))
        rng.shuffle(order)
        for k in range(1, count):
            edges.add((order[k], order[rng.randrange(k)]))
        while len(edges) < count + 4:
            u, v = rng.sample(range(count), 2)
            if (v, u) not in edges:
                edges.add((u, v))
        for u, v in edges:
            address = nodes[v].address
            assert address is not None
            await nodes[u].connect(address)
        per_feed = posts + count - 1

        def converged() -> bool:
            return all(seq_of(n, f) == per_feed for n in nodes for f in ids)

        await wait_until(converged, limit=30, what="ten nodes converge")
        for node in nodes:
            assert node.manager is not None
            # Every message of the other nine feeds was stored exactly once here.
            assert node.manager.counters.msgs_stored == (count - 1) * per_feed
            assert await node.store.message_count() == count * per_feed
    finally:
        for node in nodes:
            await node.stop()


async def test_second_connection_from_the_same_key_replaces_the_first(tmp_path: Path) -> None:
    a = await open_node(tmp_path / "a")
    b = await open_node(tmp_path / "b")
    try:
        assert a.address is not None and a.manager is not None and b.manager is not None
        await b.connect(a.address)
        # b's side is up when connect() returns; a's accepting side attaches a moment later.
        await wait_until(lambda: a.manager.session(b.feed_id) is not None, what="a's side")
        first = a.manager.session(b.feed_id)
        assert first is not None
        await b.connect(a.address)
        await wait_until(
            lambda: a.manager is not None and a.manager.session(b.feed_id) is not first,
            what="replacement",
        )
        assert len(a.manager.sessions()) == 1
        assert getattr(first, "close_reason", None) == "replaced"
        # The surviving link still carries messages.
        await b.follow(a.feed_id)
        await a.post("after replace", "general")
        await wait_until(lambda: seq_of(b, a.feed_id) >= 1, what="message after replace")
        await wait_until(lambda: len(b.manager.sessions()) == 1, what="b sees one link")
    finally:
        await a.stop()
        await b.stop()


async def test_wrong_network_key_is_refused_with_a_clear_reason(tmp_path: Path) -> None:
    a = await open_node(tmp_path / "a")
    other = hashlib.sha256(b"a private group").digest()
    b = await open_node(tmp_path / "b", network_key=other)
    try:
        assert a.address is not None
        started = time.monotonic()
        with pytest.raises(DialError) as caught:
            await b.connect(a.address)
        assert time.monotonic() - started < 5
        assert caught.value.step == "handshake"
        assert "different network key" in str(caught.value)
        assert b.manager is not None
        assert "different network key" in (b.manager.peer_stats[a.feed_id].last_error or "")
        assert a.manager is not None and not a.manager.sessions()
    finally:
        await a.stop()
        await b.stop()


async def test_blocked_key_is_refused_at_the_handshake(tmp_path: Path) -> None:
    a = await open_node(tmp_path / "a")
    b = await open_node(tmp_path / "b")
    try:
        await a.block(b.feed_id)
        assert a.address is not None
        with pytest.raises(DialError) as caught:
            await b.connect(a.address)
        assert caught.value.step == "handshake"
        assert a.manager is not None and not a.manager.sessions()
    finally:
        await a.stop()
        await b.stop()


async def test_external_append_reaches_peers_within_a_second_or_two(tmp_path: Path) -> None:
    a = await open_node(tmp_path / "a")
    b = await open_node(tmp_path / "b")
    try:
        await b.follow(a.feed_id)
        assert a.address is not None
        await b.connect(a.address)
        # Another process (here: another connection) appends to a's feed, like `treechat post`.
        identity = load_or_create_identity(tmp_path / "a")
        async with await Store.open(tmp_path / "a" / "treechat.db") as other:
            await other.append_own(identity.signing_key, post("from outside", "general"))
        started = time.monotonic()
        await wait_until(lambda: seq_of(b, a.feed_id) == 1, limit=5, what="external append")
        assert time.monotonic() - started < 3
    finally:
        await a.stop()
        await b.stop()


async def test_status_snapshot_describes_links(tmp_path: Path) -> None:
    a_id = load_or_create_identity(tmp_path / "a").feed_id
    b_id = load_or_create_identity(tmp_path / "b").feed_id
    await prefill(tmp_path / "a", 5, [b_id])
    await prefill(tmp_path / "b", 5, [a_id])
    a = await open_node(tmp_path / "a")
    b = await open_node(tmp_path / "b")
    try:
        assert a.address is not None
        await b.connect(a.address)
        await wait_until(lambda: seq_of(b, a_id) == 6 and seq_of(a, b_id) == 6, what="sync")
        # RTT from the pings; they_are_behind from the receiver's (delayed) acks.
        await wait_until(
            lambda: (
                b.status_snapshot()["peers"][0]["rtt_ms"] is not None
                and b.status_snapshot()["peers"][0]["they_are_behind"] == 0
            ),
            what="rtt and acks",
        )
        snapshot = b.status_snapshot()
        assert snapshot["address"] == b.address
        (peer,) = snapshot["peers"]
        assert peer["key"] == a.ref and peer["state"] == "connected"
        assert peer["we_are_behind"] == 0 and peer["they_are_behind"] == 0
        assert peer["eager_in"] + peer["eager_out"] + peer["lazy"] >= 1
        assert snapshot["counters"]["msgs_stored"] == 6
        rows = {row["feed"]: row for row in peer["feeds"]}
        assert rows[a.ref]["in"] == "eager" and rows[a.ref]["we_lack"] == 0
        assert rows[b.ref]["out"] == "eager" and rows[b.ref]["they_lack"] == 0
        assert rows[b.ref]["local_seq"] == 6
    finally:
        await a.stop()
        await b.stop()


async def test_lan_discovery_on_loopback_links_and_auto_follows(tmp_path: Path) -> None:
    network = hashlib.sha256(str(tmp_path).encode()).digest()  # no other test run is "us"
    lan: dict[str, object] = {"interfaces": ("127.0.0.1",), "network_key": network}
    a = await open_node(tmp_path / "a", FAST, discovery=True, **lan)
    b = await open_node(tmp_path / "b", FAST, discovery=True, **lan)
    try:
        await a.post("seen over the LAN", "general")
        await wait_until(lambda: seq_of(b, a.feed_id) == 1, limit=20, what="discovery + sync")
        assert b.manager is not None and b.manager.session(a.feed_id) is not None
        (view,) = [p for p in b.peers() if p.key == a.feed_id]
        assert view.source == "lan" and view.state == "connected"
    finally:
        await a.stop()
        await b.stop()


async def test_a_link_whose_replication_cannot_start_is_closed_and_the_node_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from net.replication import ReplicationManager
    from store.errors import StoreError

    a_id = load_or_create_identity(tmp_path / "a").feed_id
    b_id = load_or_create_identity(tmp_path / "b").feed_id
    c_id = load_or_create_identity(tmp_path / "c").feed_id
    await prefill(tmp_path / "a", 5, [b_id, c_id])
    await prefill(tmp_path / "b", 5, [a_id])
    await prefill(tmp_path / "c", 5, [a_id])
    a = await open_node(tmp_path / "a")
    b = await open_node(tmp_path / "b")
    c = await open_node(tmp_path / "c")
    real_load = ReplicationManager._async_load_record

    async def failing_load(self: ReplicationManager, key: bytes) -> object:
        if key == b_id and self is a.manager:
            raise StoreError("the disk is full")
        return await real_load(self, key)

    monkeypatch.setattr(ReplicationManager, "_async_load_record", failing_load)
    try:
        assert a.address is not None
        await b.connect(a.address)
        await wait_until(
            lambda: (
                any(p.key == b_id and "could not start" in p.reason for p in a.peers())
                or any(
                    "could not start" in str(row.get("last_error"))
                    for row in a.status_snapshot().get("peers", [])
                )
            ),
            what="the failed link reported",
        )
        await c.connect(a.address)  # the node still serves its other peers
        a_seq, c_seq = seq_of(a, a_id), seq_of(c, c_id)
        await wait_until(
            lambda: seq_of(a, c_id) == c_seq and seq_of(c, a_id) == a_seq, what="c syncs"
        )
        assert seq_of(a, b_id) == 0
        await wait_until(lambda: b.manager.session(a_id) is None, what="b sees the close")
    finally:
        await a.stop()
        await b.stop()
        await c.stop()
