"""Attacks by strangers, each a scripted peer on real loopback sockets against real nodes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from nacl.signing import SigningKey

import chat.connections
import chat.network_views
import chat.pub
import net.ebt
import net.replication
import net.schedule
import net.server
from chat.content import post
from chat.identity import load_or_create_identity, tighten_data_dir
from chat.joining import NoReplication
from chat.node import Node
from chat.pub import Pub
from net.frames import Clock, InviteClaim, Msgs, Ping
from net.invite import Rejection, invite_signing_key, make_claim
from net.peer import PeerConnection
from net.server import DialError, async_dial
from store.db import Store
from store.errors import StoreError
from store.limits import (
    INVITE_BURST,
    MAX_DUPLICATE_CHECKS,
    MAX_HANDSHAKES_PER_ADDRESS,
    WRITE_HARD_LIMIT,
)
from store.message import create_message, feed_ref, message_id
from tests.nodes import open_node, wait_until
from tests.processes import ROOT
from tests.sealed_site.sealed import child_env
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
    runs: list[asyncio.Task[str | None]] = []
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
            assert seq_of(node, feed) == 3 and await node.store.get_held(feed, 4, 4) == []
            assert manager.replicator.link(stranger_id)[feed].trusted is False
            assert manager.replicator.link(relay.feed_id)[feed].trusted is True
        # The author's real message 4 and 5 reach the relay; both nodes take them from it.
        assert relay.manager is not None
        real = chain(author, 2, 4, message_id(honest[-1]))
        relay.manager.local_messages((await relay.store.add_received(real)).stored)
        await wait_until(lambda: seq_of(x, feed) == 5 and seq_of(y, feed) == 5, what="relay")
        for node in (x, y):
            assert await node.store.get_held(feed, 4, 4) == [real[0]]
    finally:
        for conn in conns:
            conn.close("goodbye")
        for task in runs:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, 5)
        for node in (x, y, relay):
            await node.stop()


# -- the flood attacks: a stranger against node a while b replicates a's feed ------------


async def open_pair(tmp_path: Path) -> tuple[Node, Node]:
    """Node a, and node b following a's feed over a live link."""
    a_id = load_or_create_identity(tmp_path / "a").feed_id
    await prefill(tmp_path / "b", 0, [a_id])
    a = await open_node(tmp_path / "a")
    b = await open_node(tmp_path / "b")
    assert a.address is not None
    await b.connect(a.address)
    return a, b


async def honest_post_arrives(a: Node, b: Node, text: str) -> None:
    """a posts; b must get it (the honest link keeps replicating during an attack)."""
    entry = await a.post(text, "general")
    await wait_until(lambda: seq_of(b, a.feed_id) >= entry.seq, what=f"honest post {text!r}")


async def dial_stranger(
    node: Node, local_host: str | None = None, key: SigningKey | None = None
) -> tuple[PeerConnection, bytes]:
    """A fresh key (or `key`) dials `node` from `local_host`; nothing reads its side."""
    key = key or SigningKey.generate()
    conn = await async_dial("127.0.0.1", port_of(node), node.feed_id, key, local_host=local_host)
    assert node.manager is not None
    manager = node.manager
    await wait_until(lambda: manager.session(bytes(key.verify_key)) is not None, what="attach")
    return conn, bytes(key.verify_key)


def baseline(node: Node) -> dict[str, object]:
    """The node's own counters of what strangers can grow, as they are at rest."""
    manager = node.manager
    assert manager is not None
    return {
        "queued": dict(manager.queued),
        "duplicate checks": manager.duplicates_queued,
        "handshakes": node.connections.gate.in_progress,
        "sessions": len(manager.sessions()),
    }


async def test_a_flood_of_copies_costs_no_write_and_the_flooder_is_cut_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(net.replication, "DUPLICATES_BEFORE_CUTOFF", 600)
    a, b = await open_pair(tmp_path)
    try:
        for i in range(3):
            await a.post(f"held {i}", "general")
        assert a.manager is not None
        held = await a.store.get_range(a.feed_id, 1, 10)
        # Copies of a's real messages, and junk bodies behind a valid header of a's feed.
        junk = [raw[:46] + b"\x00" * 80 for raw in held]
        await honest_post_arrives(a, b, "before")
        rest = baseline(a)
        writes = a.store.writes
        conn, attacker = await dial_stranger(a)
        sent = 0
        for _ in range(40):  # 40 frames of 60 copies: far beyond the cut-off
            if conn.closed or a.manager.session(attacker) is None:
                break
            conn.send_frame(Msgs(tuple((held + junk) * 10)))
            sent += 60
            await conn.async_drain()
            await asyncio.sleep(0)
            assert a.manager.duplicates_queued <= MAX_DUPLICATE_CHECKS
            assert a.manager.queued.get(attacker, 0) == 0  # copies never queue for the store
        await wait_until(lambda: a.manager is not None and a.manager.session(attacker) is None)
        assert a.manager.counters.peers_cut_off == 1
        assert "mostly copies of messages we hold" in last_error(a, attacker)
        (row,) = [p for p in a.peers() if p.key == attacker]
        assert "mostly copies" in row.reason  # the peers view says why
        await honest_post_arrives(a, b, "after")
        # Copies cost at most the fork check's read; the junk was refused by one write
        # per check, never one per copy (and b's post cost its own).
        assert a.store.writes - writes < sent // 10
        assert await a.store.message_count() == seq_of(a, a.feed_id) + seq_of(a, b.feed_id)
        await wait_until(lambda: baseline(a) == rest, what="back to the baseline")
    finally:
        for node in (a, b):
            await node.stop()


async def test_notes_for_feeds_we_do_not_replicate_are_not_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(net.ebt, "MAX_UNKNOWN_FEED_ANSWERS", 100)
    a, b = await open_pair(tmp_path)
    try:
        assert a.manager is not None
        rest = baseline(a)
        conn, attacker = await dial_stranger(a)
        answers: list[int] = []

        class Listener(FakePeer):
            def receive_notes(self, session: PeerConnection, notes: dict[bytes, int]) -> None:
                answers.extend(value for value in notes.values() if value == -1)

        reader = asyncio.create_task(conn.async_run(Listener({})))
        for _ in range(4):  # 4 clocks of 5,000 random feed ids each
            conn.send_frame(Clock({os.urandom(32): 2 * 7 + 1 for _ in range(5_000)}))
        await honest_post_arrives(a, b, "during")
        manager = a.manager
        await wait_until(lambda: len(answers) >= 100, what="the -1 answers")
        record = manager.replicator.record(attacker)
        assert len(record.theirs) <= 100 and len(answers) == 100
        conn.close("goodbye")
        await asyncio.wait_for(reader, 5)
        await wait_until(lambda: attacker not in manager.replicator.peers, what="detach")
        await manager.async_persisted()
        assert manager.replicator.record(attacker).theirs == {}  # nothing kept past it
        assert await a.store.load_peer_clock(attacker) is None  # and no row on disk
        await honest_post_arrives(a, b, "after")
        await wait_until(lambda: baseline(a) == rest, what="back to the baseline")
    finally:
        for node in (a, b):
            await node.stop()


async def test_strangers_that_come_and_go_are_remembered_within_bounds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(net.replication, "MAX_REMEMBERED_PEERS", 5)
    monkeypatch.setattr(net.schedule, "MAX_REMEMBERED_PEERS", 5)
    monkeypatch.setattr(chat.network_views, "STATUS_PEERS", 4)
    monkeypatch.setattr(chat.connections, "MAX_REFUSALS", 3)
    a, b = await open_pair(tmp_path)
    try:
        manager = a.manager
        assert manager is not None
        strangers: list[bytes] = []
        for i in range(12):  # handshake and leave
            conn, key = await dial_stranger(a)
            strangers.append(key)
            conn.close("goodbye")
            await wait_until(lambda k=key: manager.session(k) is None, what="detach")  # type: ignore[misc]
            if i % 4 == 0:
                await honest_post_arrives(a, b, f"during {i}")
        for _ in range(6):  # refused: another network
            refused = SigningKey.generate()
            strangers.append(bytes(refused.verify_key))
            with contextlib.suppress(DialError):
                await async_dial("127.0.0.1", port_of(a), a.feed_id, refused, b"\x01" * 32)
        await wait_until(lambda: a.connections.refused_total == 6, what="six refusals")
        assert len(a.connections.refusals) == 3
        assert len(manager.peer_stats) <= 5 + 1  # the strangers kept, and b
        assert len(manager.replicator._records) <= 5 + 1
        book = a.connections.book
        assert a.connections.schedule is not None
        a.connections.schedule.poke()
        await wait_until(lambda: len(book) <= 5 + 1, what="the peer book trimmed")
        snapshot = a.status_snapshot()
        assert len(snapshot["peers"]) == 4 and snapshot["peers_total"] >= 6
        assert snapshot["peers"][0]["key"] == feed_ref(b.feed_id)  # connected first
        for stranger in strangers:  # silent strangers leave no record on disk
            assert await a.store.load_peer_clock(stranger) is None
        await honest_post_arrives(a, b, "after")
    finally:
        for node in (a, b):
            await node.stop()


async def test_a_ping_flood_is_cut_off_and_nothing_is_written_to_the_dead_link(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    a, b = await open_pair(tmp_path)
    try:
        manager = a.manager
        assert manager is not None
        rest = baseline(a)
        conn, attacker = await dial_stranger(a)
        for n in range(200):  # never reads a pong
            if conn.closed:
                break
            conn.send_frame(Ping(n))
        await conn.async_drain()
        await wait_until(lambda: manager.session(attacker) is None, what="the flood cut off")
        assert "cut off: it sent too many pings" in last_error(a, attacker)
        (row,) = [p for p in a.peers() if p.key == attacker]
        assert "too many pings" in row.reason
        await honest_post_arrives(a, b, "after")
        conn._abort()
        await wait_until(lambda: baseline(a) == rest, what="back to the baseline")
        assert "socket.send() raised exception" not in caplog.text
    finally:
        for node in (a, b):
            await node.stop()


async def test_a_peer_that_never_reads_is_cut_off_at_the_send_limit(tmp_path: Path) -> None:
    a, b = await open_pair(tmp_path)
    try:
        manager = a.manager
        assert manager is not None
        conn, attacker = await dial_stranger(a)  # nothing ever reads its side
        session = manager.session(attacker)
        assert isinstance(session, PeerConnection)
        transport = session._writer.transport
        chunk = Msgs((b"x" * 60_000,))
        most = 0
        for _ in range(2_000):  # 120 MB at most; the cut-off comes after 8 MiB + kernel buffers
            if session.closed:
                break
            session.send_frame(chunk)
            most = max(most, transport.get_write_buffer_size())
            await asyncio.sleep(0)
        assert session.closed and most <= WRITE_HARD_LIMIT + 70_000
        assert "does not read what we send" in (session.fault or "")
        await wait_until(lambda: manager.session(attacker) is None, what="detach")
        assert "does not read what we send" in last_error(a, attacker)
        await honest_post_arrives(a, b, "after")
        conn._abort()
    finally:
        for node in (a, b):
            await node.stop()


async def test_half_open_handshakes_are_capped_per_address(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = await open_pair(tmp_path)
    sockets: list[asyncio.StreamWriter] = []
    try:
        gate = a.connections.gate
        for _ in range(MAX_HANDSHAKES_PER_ADDRESS + 6):  # connect and say nothing
            _, writer = await asyncio.open_connection(
                "127.0.0.1", port_of(a), local_addr=("127.0.0.2", 0)
            )
            sockets.append(writer)
        await wait_until(lambda: gate.turned_away >= 6, what="sockets turned away")
        assert gate.pending == {"127.0.0.2": MAX_HANDSHAKES_PER_ADDRESS}
        await honest_post_arrives(a, b, "during")
        conn, _ = await dial_stranger(a)  # another address still gets in
        conn.close("goodbye")
        for writer in sockets:
            writer.close()
        await wait_until(lambda: gate.in_progress == 0, what="back to the baseline")
    finally:
        for writer in sockets:
            writer.close()
        for node in (a, b):
            await node.stop()


async def test_strangers_redialling_with_fresh_keys_are_turned_away_before_the_handshake(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(net.server, "NEW_SESSIONS_BURST", 5)
    monkeypatch.setattr(net.server, "NEW_SESSIONS_PER_SECOND", 0.001)  # no refill meanwhile
    a, b = await open_pair(tmp_path)
    try:
        manager, gate = a.manager, a.connections.gate
        assert manager is not None

        async def come_and_go(host: str, key: SigningKey | None = None) -> bytes:
            conn, who = await dial_stranger(a, host, key)
            conn.close("goodbye")
            await wait_until(lambda: manager.session(who) is None, what="detach")
            return who

        for _ in range(5):  # the burst of 127.0.0.3
            await come_and_go("127.0.0.3")
        refused = a.connections.refused_total
        with pytest.raises(DialError) as turned:  # closed unread: no handshake work for it
            await async_dial(
                "127.0.0.1", port_of(a), a.feed_id, SigningKey.generate(), local_host="127.0.0.3"
            )
        assert not net.schedule.is_wrong_network(turned.value)  # a dialler tries again later
        assert "try again later" in str(turned.value)
        assert gate.turned_away == 1 and a.connections.refused_total == refused
        # A key we know (one we follow) gets its share back, however often it comes.
        friend = SigningKey.generate()
        await a.follow(bytes(friend.verify_key))
        for _ in range(8):
            await come_and_go("127.0.0.4", friend)
        # A session we cut off for flooding costs its address more: one flood, and the
        # next socket from there is turned away.
        conn, flooder = await dial_stranger(a, "127.0.0.5")
        for n in range(100):
            if conn.closed:
                break
            conn.send_frame(Ping(n))
        await wait_until(lambda: manager.session(flooder) is None, what="the flood cut off")
        conn._abort()
        with pytest.raises(DialError):
            await async_dial(
                "127.0.0.1", port_of(a), a.feed_id, SigningKey.generate(), local_host="127.0.0.5"
            )
        assert gate.turned_away == 2
        await honest_post_arrives(a, b, "after")  # b's link was never touched
    finally:
        for node in (a, b):
            await node.stop()


async def test_short_garbage_is_named_at_once_and_a_cut_frame_is_a_truncated_stream(
    tmp_path: Path,
) -> None:
    a, b = await open_pair(tmp_path)
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port_of(a))
        writer.write(b"SSH-2.0-OpenSSH_9.6\r\n")  # and waits for our banner
        await wait_until(lambda: len(a.connections.refusals) == 1, what="the refusal")
        (why,) = a.connections.refusals.values()
        assert "another protocol" in why and "timed out" not in why
        writer.close()
        conn, attacker = await dial_stranger(a)
        # Half a frame, then the box-stream goodbye: cut, not a clean close.
        conn._writer.write(conn._encoder.encrypt(b"\x00\x00\x00\x40\x92"))
        conn._writer.write(conn._encoder.goodbye())
        await wait_until(lambda: "truncated" in last_error(a, attacker), what="truncated")
        conn._abort()
        await honest_post_arrives(a, b, "after")
    finally:
        for node in (a, b):
            await node.stop()


async def test_a_flood_of_notes_is_cut_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(net.replication, "NOTES_BURST", 2_000)
    a, b = await open_pair(tmp_path)
    try:
        manager = a.manager
        assert manager is not None
        conn, attacker = await dial_stranger(a)
        for _ in range(4):
            conn.send_frame(Clock({os.urandom(32): 15 for _ in range(1_000)}))
        await wait_until(lambda: manager.session(attacker) is None, what="the flood cut off")
        assert "cut off: it sent too many notes" in last_error(a, attacker)
        await manager.async_persisted()
        assert await a.store.load_peer_clock(attacker) is None
        conn._abort()
        await honest_post_arrives(a, b, "after")
    finally:
        for node in (a, b):
            await node.stop()


# -- invites ------------------------------------------------------------------------------


async def redeem(pub: Pub, secret: bytes, member: SigningKey) -> str | None:
    """One member redeems the invite `secret` on its own link; the pub's last word."""
    throwaway = invite_signing_key(secret)
    address = pub.address
    conn = await async_dial(address.host, address.port, address.key, throwaway)
    claim = make_claim(member, address.key, bytes(throwaway.verify_key))
    conn.send_frame(InviteClaim(bytes(member.verify_key), claim.sig))
    await asyncio.wait_for(conn.async_run(NoReplication()), 20)
    return conn.bye_reason


async def test_twenty_members_racing_for_a_two_use_invite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(chat.pub, "INVITE_BURST", 100)  # all of them dial from 127.0.0.1
    monkeypatch.setattr(net.server, "MAX_HANDSHAKES_PER_ADDRESS", 100)
    node = await open_node(tmp_path / "pub")
    pub = await Pub.async_attach(node)
    try:
        invite = await pub.async_create_invite(2)
        members = [SigningKey.generate() for _ in range(20)]
        byes = await asyncio.gather(*(redeem(pub, invite.secret, m) for m in members))
        assert sorted(byes, key=str) == ["goodbye"] * 2 + [Rejection.USED_UP.bye] * 18
        joined = {
            bytes(m.verify_key) for m, bye in zip(members, byes, strict=True) if bye == "goodbye"
        }
        assert set(await pub.book.members()) == joined
    finally:
        await pub.async_detach()
        await node.stop()


async def test_invite_guesses_are_slowed_and_leave_nothing(tmp_path: Path) -> None:
    node = await open_node(tmp_path / "pub")
    pub = await Pub.async_attach(node)
    try:
        manager = node.manager
        assert manager is not None
        guesses = [os.urandom(32) for _ in range(INVITE_BURST + 3)]
        byes = [await redeem(pub, secret, SigningKey.generate()) for secret in guesses]
        assert byes == [Rejection.UNKNOWN.bye] * INVITE_BURST + [Rejection.TOO_MANY.bye] * 3
        keys = {bytes(invite_signing_key(secret).verify_key) for secret in guesses}
        await wait_until(lambda: not manager.sessions(), what="the guesses gone")
        await manager.async_persisted()
        assert keys.isdisjoint(manager.peer_stats)
        assert not [key for key in keys if key in node.connections.book]  # gone at once
        for key in keys:
            assert await node.store.load_peer_clock(key) is None
        # A real invite from the same address still works once the budget refills.
        pub.attempts.clear()
        real = await pub.async_create_invite(1)
        assert await redeem(pub, real.secret, SigningKey.generate()) == "goodbye"
    finally:
        await pub.async_detach()
        await node.stop()


# -- faults said well ----------------------------------------------------------------------


class FullDisk:
    """Makes `store.add_received` fail as on a full disk (counting the attempts) from
    `fill()` until `free()`."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, store: Store) -> None:
        self.attempts = 0
        self._monkeypatch = monkeypatch
        self._store = store
        self._real = store.add_received

    def fill(self) -> None:
        self._monkeypatch.setattr(self._store, "add_received", self._full)

    async def _full(self, *args: object, **kwargs: object) -> object:
        self.attempts += 1
        raise StoreError("could not save received messages: database or disk is full")

    def free(self) -> None:
        self._monkeypatch.setattr(self._store, "add_received", self._real)


@contextlib.asynccontextmanager
async def pair_with_a_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[Node, Node, FullDisk]]:
    """Nodes a and b (b follows a), b's disk to fill and free; store retries are quick."""
    a, b = await open_pair(tmp_path)
    try:
        assert b.manager is not None
        b.manager.store_fault.retry_first, b.manager.store_fault.retry_max = 0.05, 0.2
        yield a, b, FullDisk(monkeypatch, b.store)
    finally:
        for node in (a, b):
            await node.stop()


def assert_one_line_per_state_change(caplog: pytest.LogCaptureFixture) -> None:
    """Storing failed and recovered once: one line each, and never a traceback."""
    lines = [r.getMessage() for r in caplog.records if r.name == "net.replication"]
    assert len([line for line in lines if "storing received messages failed" in line]) == 1
    assert len([line for line in lines if "works again" in line]) == 1
    assert not [r for r in caplog.records if r.exc_info]


async def test_a_failing_disk_backs_off_says_so_once_and_blames_no_peer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async with pair_with_a_disk(tmp_path, monkeypatch) as (a, b, disk):
        manager = b.manager
        assert manager is not None
        disk.fill()
        for i in range(5):
            await a.post(f"while full {i}", "general")
        await wait_until(lambda: disk.attempts >= 3, what="retries")
        assert manager.store_error is not None and "disk is full" in manager.store_error
        assert "disk is full" in b.status_snapshot()["store_error"]
        disk.free()
        await wait_until(lambda: seq_of(b, a.feed_id) == seq_of(a, a.feed_id), what="retried")
        assert manager.store_error is None and b.status_snapshot()["store_error"] is None
        assert last_error(b, a.feed_id) == ""  # the honest sender was not blamed
        assert_one_line_per_state_change(caplog)


def test_a_really_full_disk_is_said_once_blames_no_peer_and_recovers(tmp_path: Path) -> None:
    """A real node on a real 16 MiB tmpfs, filled until SQLite says the disk is full (the
    child mounts it in its own mount namespace, so the mount ends with the child)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs in a private mount namespace needs root")
    if shutil.which("unshare") is None or shutil.which("mount") is None:
        pytest.skip("needs `unshare` and `mount` (util-linux)")
    mount, work = tmp_path / "small", tmp_path / "work"
    mount.mkdir()
    work.mkdir()
    command = ["unshare", "--mount", "--propagation", "private", sys.executable]
    child = subprocess.run(
        [*command, "-m", "tests.full_disk", str(mount), str(work)],
        cwd=ROOT,
        env=child_env(ROOT),
        capture_output=True,
        text=True,
        timeout=110,
    )
    assert not os.path.ismount(mount)  # nothing outlives the child, pass or fail
    assert child.returncode == 0, child.stderr[-3000:]
    seen = json.loads(child.stdout.splitlines()[-1])
    assert seen["sqlite_said"] == "database or disk is full"
    assert "the disk is full" in seen["store_error"] and seen["status_error"] == seen["store_error"]
    assert "NOT UPDATING" in seen["status_words"] and "is the disk full?" in seen["status_words"]
    assert seen["held_while_full"] == 3 and seen["c_while_full"] == 3  # c was still served
    assert seen["a_blamed"] is None and not seen["a_distrusted"]  # the sender is not blamed
    assert seen["held_after"] == seen["c_after"] == 11 and seen["store_error_after"] is None
    assert seen["attempts"] >= 6  # it kept trying ...
    lines = [text for _, text, _ in seen["lines"]]
    store = [line for line in lines if line.startswith("storing received messages")]
    assert len(store) == 2 and "failed" in store[0] and "works again" in store[1]  # ... said once
    status = [line for line in lines if line.startswith("writing the status file")]
    assert len(status) == 2 and "failed" in status[0] and "works again" in status[1]
    assert not [line for line in lines if line not in store + status]
    assert not [text for _, text, traceback in seen["lines"] if traceback]
    assert sorted(seen["t_heads"].values()) == [1, 11]  # every feed a valid prefix of its chain


async def test_a_failing_fork_check_says_so_once_and_recovers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async with pair_with_a_disk(tmp_path, monkeypatch) as (a, b, disk):
        manager = b.manager
        assert manager is not None
        await honest_post_arrives(a, b, "held")
        # A different message, validly signed by a, at a seq b holds: a fork to check.
        fork = create_message(a.identity.signing_key, 1, None, 1, post("forked", "general"))
        disk.fill()
        conn, _ = await dial_stranger(b)
        for n in range(1, 4):  # three checks fail: one line, no traceback
            conn.send_frame(Msgs((fork.raw,)))
            await wait_until(lambda n=n: disk.attempts >= n, what=f"fork check {n}")  # type: ignore[misc]
        assert manager.store_error is not None and "disk is full" in manager.store_error
        disk.free()
        conn.send_frame(Msgs((fork.raw,)))
        await wait_until(lambda: a.feed_id in manager.forked, what="the fork found")
        assert manager.store_error is None
        assert_one_line_per_state_change(caplog)
        conn.close("goodbye")


def test_a_loose_data_dir_is_tightened_with_a_notice(tmp_path: Path) -> None:
    load_or_create_identity(tmp_path)
    tmp_path.chmod(0o755)
    load_or_create_identity(tmp_path)
    assert tmp_path.stat().st_mode & 0o777 == 0o700
    assert tighten_data_dir(tmp_path) is None  # already tight: nothing to say
    tmp_path.chmod(0o750)
    notice = tighten_data_dir(tmp_path)
    assert notice is not None and "0750 to 0700" in notice
