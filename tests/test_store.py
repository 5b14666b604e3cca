"""The SQLite store on real files: feeds, received batches, forks, chat views, peers."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from nacl.signing import SigningKey

import store.db as store_db
from store.db import SavedPeer, Store, StoreError
from store.message import (
    FeedHead,
    ForkDetected,
    InvalidMessage,
    Message,
    create_message,
    feed_ref,
    validate_run,
)
from store.schema import MIGRATIONS, SCHEMA_VERSION
from store.search import POST_TEXT_FUNCTION, post_text

ALICE = SigningKey(b"a" * 32)
BOB = SigningKey(b"b" * 32)
CAROL = SigningKey(b"c" * 32)
DAVE = SigningKey(b"d" * 32)
A, B, C, D = (bytes(k.verify_key) for k in (ALICE, BOB, CAROL, DAVE))
PEER = b"p" * 32


def post(text: str, channel: str = "general") -> dict[str, Any]:
    return {"type": "post", "text": text, "channel": channel}


def chain(
    key: SigningKey, contents: list[Any], start_ts: int = 1_000, step: int = 1
) -> list[Message]:
    messages: list[Message] = []
    prev: bytes | None = None
    for seq, content in enumerate(contents, start=1):
        message = create_message(key, seq, prev, start_ts + seq * step, content)
        messages.append(message)
        prev = message.id
    return messages


def posts(key: SigningKey, count: int, channel: str = "general") -> list[Message]:
    return chain(key, [post(f"{channel} {i}", channel) for i in range(1, count + 1)])


def raws(messages: list[Message]) -> list[bytes]:
    return [m.raw for m in messages]


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = await Store.open(tmp_path / "treechat.sqlite")
    yield opened
    await opened.close()


# ---------------------------------------------------------------- opening


async def test_open_uses_wal_and_records_schema_version(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "dir" / "db.sqlite"
    opened = await Store.open(path)
    assert await opened.schema_version() == SCHEMA_VERSION
    await opened.close()
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


async def test_data_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    first = await Store.open(path)
    message = await first.append_own(ALICE, post("kept"))
    await first.close()
    second = await Store.open(path)
    assert await second.head(A) == FeedHead(1, message.id)
    assert await second.get_range(A, 1, 10) == [message.raw]
    await second.close()


async def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    await (await Store.open(path)).close()
    with sqlite3.connect(path) as raw:
        raw.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 5}")
    with pytest.raises(StoreError, match="newer treechat"):
        await Store.open(path)


async def test_forward_migration_runs_only_new_steps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "db.sqlite"
    opened = await Store.open(path)
    await opened.append_own(ALICE, post("before the upgrade"))
    await opened.close()
    extra = ("CREATE TABLE reactions (msg BLOB PRIMARY KEY, emoji TEXT)",)
    monkeypatch.setattr(store_db, "MIGRATIONS", [*MIGRATIONS, extra])
    monkeypatch.setattr(store_db, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    upgraded = await Store.open(path)
    assert await upgraded.schema_version() == SCHEMA_VERSION + 1
    assert (await upgraded.head(A)) is not None
    await upgraded.close()
    with sqlite3.connect(path) as raw:
        tables = {r[0] for r in raw.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert "reactions" in tables


async def test_unopenable_path_is_a_store_error(tmp_path: Path) -> None:
    (tmp_path / "adir").mkdir()
    with pytest.raises(StoreError, match="could not"):
        await Store.open(tmp_path / "adir")


async def test_a_file_that_is_not_a_database_is_a_store_error(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    path.write_bytes(b"this is not sqlite at all " * 200)
    with pytest.raises(StoreError, match="damaged"):
        await Store.open(path)


async def test_use_after_close_is_a_store_error(tmp_path: Path) -> None:
    opened = await Store.open(tmp_path / "db.sqlite")
    await opened.close()
    with pytest.raises(StoreError):
        await opened.clock()
    with pytest.raises(StoreError):
        await opened.append_own(ALICE, post("late"))


# ---------------------------------------------------------------- own feed


async def test_append_own_builds_a_valid_chain(store: Store) -> None:
    first = await store.append_own(ALICE, post("one"), timestamp_ms=10)
    second = await store.append_own(ALICE, {"type": "about", "name": "alice"}, timestamp_ms=20)
    assert (first.seq, first.prev) == (1, None)
    assert (second.seq, second.prev, second.timestamp) == (2, first.id, 20)
    assert await store.head(A) == FeedHead(2, second.id)
    assert await store.clock() == {A: 2}
    stored = await store.get_range(A, 1, 10)
    assert validate_run(None, stored) == [first, second]
    assert await store.get_range(A, 2, 10) == [second.raw]
    assert await store.get_range(A, 1, 1) == [first.raw]
    assert await store.get_held(A, 2, 2) == [second.raw]
    by_id = await store.delivery(first.id)
    assert by_id is not None and (by_id.author, by_id.seq) == (A, 1)
    assert await store.message_count() == 2
    delivery = await store.delivery(second.id)
    assert (
        delivery is not None
        and delivery.peer is None
        and (delivery.author, delivery.seq)
        == (
            A,
            2,
        )
    )


async def test_append_own_rejects_invalid_content_and_stores_nothing(store: Store) -> None:
    with pytest.raises(InvalidMessage, match="content type"):
        await store.append_own(ALICE, {"text": "no type"})
    assert await store.clock() == {}


async def test_head_of_unknown_feed_is_none(store: Store) -> None:
    assert await store.head(B) is None
    assert await store.get_range(B, 1, 10) == []


# ---------------------------------------------------------------- received messages


async def test_add_received_stores_interleaved_feeds_and_records_delivery(store: Store) -> None:
    alice, bob = posts(ALICE, 5), posts(BOB, 3)
    batch = [alice[0].raw, bob[0].raw, alice[1].raw, bob[1].raw, *raws(alice[2:]), bob[2].raw]
    result = await store.add_received(batch, source=PEER)
    assert result.errors == []
    assert sorted((m.author, m.seq) for m in result.stored) == sorted(
        [(A, s) for s in range(1, 6)] + [(B, s) for s in range(1, 4)]
    )
    assert await store.clock() == {A: 5, B: 3}
    assert await store.get_range(A, 1, 100) == raws(alice)
    delivery = await store.delivery(bob[2].id)
    assert delivery is not None and delivery.peer == PEER and delivery.received_at > 0


async def test_ids_of_bulk_batches_are_indexed_on_demand(store: Store, tmp_path: Path) -> None:
    alice = posts(ALICE, 200)
    await store.add_received(raws(alice), source=PEER)
    with sqlite3.connect(tmp_path / "treechat.sqlite") as raw:
        waiting = raw.execute("SELECT count(*) FROM message_ids").fetchone()[0]
    assert waiting == 0  # a bulk batch defers its ids
    found = await store.delivery(alice[150].id)
    assert found is not None and (found.author, found.seq) == (A, 151)
    delivery = await store.delivery(alice[7].id)
    assert delivery is not None and (delivery.seq, delivery.peer) == (8, PEER)
    assert await store.delivery(b"\x00" * 32) is None
    # Live messages after that are indexed with their own write.
    extra = create_message(ALICE, 201, alice[-1].id, 5, post("live"))
    await store.add_received([extra.raw])
    with sqlite3.connect(tmp_path / "treechat.sqlite") as raw:
        assert raw.execute("SELECT count(*) FROM message_ids").fetchone()[0] == 201


async def test_add_received_accepts_a_run_given_out_of_order(store: Store) -> None:
    alice = posts(ALICE, 4)
    result = await store.add_received(raws(alice)[::-1])
    assert result.errors == [] and await store.clock() == {A: 4}


async def test_add_received_continues_from_the_head(store: Store) -> None:
    alice = posts(ALICE, 6)
    await store.add_received(raws(alice[:3]))
    result = await store.add_received(raws(alice[3:]))
    assert [m.seq for m in result.stored] == [4, 5, 6] and result.errors == []


async def test_identical_duplicates_are_skipped_silently(store: Store) -> None:
    alice = posts(ALICE, 3)
    await store.add_received(raws(alice), source=PEER)
    result = await store.add_received([*raws(alice), alice[1].raw], source=b"q" * 32)
    assert result.stored == [] and result.errors == []
    delivery = await store.delivery(alice[1].id)
    assert delivery is not None and delivery.peer == PEER  # the first delivery is kept
    assert await store.forks() == []


async def test_broken_link_in_the_middle_keeps_the_valid_prefix(store: Store) -> None:
    alice = posts(ALICE, 10)
    stray = create_message(ALICE, 6, b"\x09" * 32, 1, post("stray"))
    batch_raws = raws(alice)
    batch_raws[5] = stray.raw
    result = await store.add_received(batch_raws)
    assert [m.seq for m in result.stored] == [1, 2, 3, 4, 5]
    assert len(result.errors) == 1
    # Signed by the author on top of another message 5: a second chain, a fork.
    error = result.errors[0]
    assert isinstance(error, ForkDetected) and error.seq == 6 and "two chains" in error.reason
    assert error.existing_id == alice[4].id
    assert await store.head(A) == FeedHead(5, alice[4].id)
    (proof,) = await store.forks()
    assert (proof.feed, proof.seq, proof.msg_a, proof.msg_b) == (A, 6, alice[4].raw, stray.raw)
    assert await store.forked_feeds() == {A}
    later = await store.add_received([alice[5].raw])  # nothing more of a forked feed
    assert later.stored == [] and isinstance(later.errors[0], ForkDetected)


async def test_broken_link_with_a_forged_signature_is_no_fork(store: Store) -> None:
    alice = posts(ALICE, 10)
    stray = create_message(ALICE, 6, b"\x09" * 32, 1, post("stray")).raw
    batch_raws = raws(alice)
    batch_raws[5] = stray[:-1] + bytes([stray[-1] ^ 1])  # not signed by the author
    result = await store.add_received(batch_raws)
    assert [m.seq for m in result.stored] == [1, 2, 3, 4, 5]
    assert [(type(e), e.seq, e.reason) for e in result.errors] == [
        (InvalidMessage, 6, "bad signature")
    ]
    assert await store.forks() == [] and await store.forked_feeds() == set()
    assert [m.seq for m in (await store.add_received(raws(alice)[5:])).stored] == [6, 7, 8, 9, 10]


async def test_bad_last_signature_is_pinpointed(store: Store) -> None:
    alice = posts(ALICE, 8)
    batch_raws = raws(alice)
    batch_raws[-1] = batch_raws[-1][:-1] + bytes([batch_raws[-1][-1] ^ 1])
    result = await store.add_received(batch_raws)
    assert [m.seq for m in result.stored] == list(range(1, 8))
    assert [(e.seq, e.reason) for e in result.errors] == [(8, "bad signature")]
    assert await store.clock() == {A: 7}


async def test_bad_message_in_one_feed_does_not_stop_another(store: Store) -> None:
    alice, bob = posts(ALICE, 3), posts(BOB, 3)
    result = await store.add_received([alice[0].raw, alice[2].raw, *raws(bob), b"garbage" * 20])
    assert await store.clock() == {A: 1, B: 3}
    reasons = sorted(str(e) for e in result.errors)
    assert any("expected seq 2" in r and feed_ref(A) in r for r in reasons)
    assert any(r.startswith("message is invalid") for r in reasons)


async def test_gap_from_the_head_is_rejected(store: Store) -> None:
    alice = posts(ALICE, 5)
    await store.add_received(raws(alice[:2]))
    result = await store.add_received(raws(alice[3:]))
    assert result.stored == [] and [e.seq for e in result.errors] == [4]
    assert await store.clock() == {A: 2}


# ---------------------------------------------------------------- forks


async def test_fork_is_detected_recorded_and_closes_the_feed(store: Store) -> None:
    alice = posts(ALICE, 3)
    await store.add_received(raws(alice), source=PEER)
    other = create_message(ALICE, 2, alice[0].id, 99, post("the other history"))
    result = await store.add_received([other.raw])
    assert result.stored == []
    [error] = result.errors
    assert isinstance(error, ForkDetected)
    assert (error.feed, error.seq, error.existing_id, error.message) == (A, 2, alice[1].id, other)
    [proof] = await store.forks()
    assert (proof.feed, proof.seq, proof.msg_a, proof.msg_b) == (A, 2, alice[1].raw, other.raw)
    assert await store.forked_feeds() == {A}
    assert [f.forked for f in await store.feeds()] == [True]
    # The first history is kept and nothing more is accepted for this feed.
    assert await store.get_range(A, 1, 10) == raws(alice)
    later = create_message(ALICE, 4, alice[2].id, 100, post("after the fork"))
    result = await store.add_received([later.raw])
    assert result.stored == [] and isinstance(result.errors[0], ForkDetected)
    assert "forked at seq 2" in str(result.errors[0])
    assert await store.clock() == {A: 3}


async def test_fork_within_one_batch_keeps_the_first(store: Store) -> None:
    first = create_message(ALICE, 1, None, 1, post("first"))
    second = create_message(ALICE, 1, None, 2, post("second"))
    result = await store.add_received([first.raw, second.raw])
    assert result.stored == [first]
    assert [type(e) for e in result.errors] == [ForkDetected]
    assert await store.forked_feeds() == {A}


async def test_unsigned_conflict_is_not_a_fork(store: Store) -> None:
    alice = posts(ALICE, 2)
    await store.add_received(raws(alice))
    forged = create_message(BOB, 2, alice[0].id, 5, post("x"))
    impostor = forged.signed.replace(B, A) + forged.signature  # claims Alice, Bob's signature
    result = await store.add_received([impostor])
    assert [type(e) for e in result.errors] == [InvalidMessage]
    assert result.errors[0].reason == "bad signature"
    assert await store.forks() == [] and await store.forked_feeds() == set()


# ---------------------------------------------------------------- chat views


async def test_timeline_by_channel_with_paging(store: Store) -> None:
    contents: list[Any] = [post(f"g{i}") for i in range(5)] + [post("elsewhere", "random")]
    contents += [b"private box", {"type": "vote", "value": 1}]
    await store.add_received(raws(chain(ALICE, contents, start_ts=0, step=10)))  # 10, 20, ...
    await store.add_received(raws(chain(BOB, [post("bob", "general")], start_ts=34)))  # 35
    page = await store.timeline("general", limit=3)
    assert [p.text for p in page] == ["bob", "g3", "g4"]
    assert [p.message.timestamp for p in page] == [35, 40, 50]
    older = await store.timeline("general", before=40, limit=10)
    assert [p.text for p in older] == ["g0", "g1", "g2", "bob"]
    assert [p.text for p in await store.timeline("random")] == ["elsewhere"]
    assert len(await store.timeline(None, limit=100)) == 7
    channels = await store.channels()
    assert [(c.name, c.posts, c.last_timestamp) for c in channels] == [
        ("general", 6, 50),
        ("random", 1, 60),
    ]
    assert await store.count_posts_since("general", 0) == 6
    assert await store.count_posts_since("general", 0, exclude_author=B) == 5


async def test_private_content_is_stored_but_not_indexed(store: Store) -> None:
    messages = chain(ALICE, [b"box one", post("public"), b"box two"])
    await store.add_received(raws(messages))
    assert [p.text for p in await store.timeline("general")] == ["public"]
    found = await store.private_messages()
    assert [m for _, m in found] == [messages[0], messages[2]]
    cursor = found[0][0]
    assert [m for _, m in await store.private_messages(after=cursor)] == [messages[2]]


async def test_names_latest_wins_and_only_self_naming(store: Store) -> None:
    about = [
        {"type": "about", "name": "al"},
        {"type": "about", "name": "mallory", "about": B},  # naming someone else: ignored
        {"type": "about", "name": "alice"},
    ]
    messages = chain(ALICE, about)
    await store.add_received(raws(messages[:1]))
    assert await store.names() == {A: "al"}
    await store.add_received(raws(messages[1:]))
    assert await store.names() == {A: "alice"}
    await store.append_own(BOB, {"type": "about", "name": "bob", "about": feed_ref(B)})
    assert await store.names() == {A: "alice", B: "bob"}


async def test_contacts_follow_block_latest_wins(store: Store) -> None:
    contents = [
        {"type": "contact", "contact": B, "following": True},
        {"type": "contact", "contact": C, "following": True},
        {"type": "contact", "contact": D, "blocking": True},
        {"type": "contact", "contact": C, "blocking": True},  # following C stays as it was
        {"type": "contact", "contact": B, "following": False},
        {"type": "contact", "contact": feed_ref(D), "following": True, "blocking": False},
        {"type": "contact", "contact": b"short", "following": True},  # not a feed: ignored
    ]
    await store.add_received(raws(chain(ALICE, contents)))
    assert await store.follows(A) == {C, D}
    assert await store.blocks(A) == {C}
    edges = {(e.contact, e.following, e.blocking) for e in await store.contacts()}
    assert edges == {(B, False, None), (C, True, True), (D, True, False)}


async def test_hops_walk_follows_and_skip_blocked(store: Store) -> None:
    def follow(feed: bytes) -> dict[str, Any]:
        return {"type": "contact", "contact": feed, "following": True}

    await store.append_own(ALICE, follow(B))
    await store.append_own(BOB, follow(C))
    await store.append_own(CAROL, follow(D))
    assert await store.hops(A, 0) == {A: 0}
    assert await store.hops(A, 2) == {A: 0, B: 1, C: 2}
    assert await store.hops(A, 5) == {A: 0, B: 1, C: 2, D: 3}
    await store.append_own(ALICE, {"type": "contact", "contact": C, "blocking": True})
    assert await store.hops(A, 5) == {A: 0, B: 1}


async def test_pub_announcements(store: Store) -> None:
    contents = [
        {"type": "pub", "host": "10.0.0.1", "port": 7708, "key": B},
        {"type": "pub", "host": "pub.example", "port": 7709, "key": B},
        {"type": "pub", "host": "bad", "port": 70000, "key": C},
    ]
    await store.add_received(raws(chain(ALICE, contents)))
    [pub] = await store.pubs()
    assert (pub.author, pub.key, pub.host, pub.port, pub.seq) == (A, B, "pub.example", 7709, 2)


# ---------------------------------------------------------------- peers and clocks


async def test_peer_table_crud(store: Store) -> None:
    row = SavedPeer(key=B, address="net:127.0.0.1:7708~shs:x", source="lan")
    await store.save_peer(row)
    assert await store.peer(B) == row
    updated = SavedPeer(B, row.address, "lan", 3, 1234.5, 1200.0, True, "backoff")
    await store.save_peer(updated)
    await store.save_peer(SavedPeer(C, None, "pub"))
    assert await store.peers() == sorted([updated, SavedPeer(C, None, "pub")], key=lambda p: p.key)
    await store.remove_peer(B)
    assert await store.peer(B) is None
    assert [p.key for p in await store.peers()] == [C]


async def test_peer_clocks_round_trip_and_replace(store: Store) -> None:
    assert await store.load_peer_clock(B) is None
    await store.save_peer_clock(B, {A: 5, C: -1}, {A: 4, D: 7})
    clock = await store.load_peer_clock(B)
    assert clock is not None
    assert (clock.theirs, clock.ours) == ({A: 5, C: -1}, {A: 4, D: 7})
    await store.save_peer_clock(B, {A: 6}, {})
    clock = await store.load_peer_clock(B)
    assert clock is not None and (clock.theirs, clock.ours) == ({A: 6}, {})
    assert await store.load_peer_clock(C) is None
    await store.remove_peer(B)
    assert await store.load_peer_clock(B) is None


# ---------------------------------------------------------------- other processes


async def test_second_connection_commits_are_noticed(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    node = await Store.open(path)
    cli = await Store.open(path)
    try:
        assert await node.changed_externally() is False
        await node.append_own(ALICE, post("from the node"))
        assert await node.changed_externally() is False  # our own commits do not count
        before = await node.data_version()
        message = await cli.append_own(ALICE, post("from treechat post"))
        assert await node.data_version() != before
        assert await node.changed_externally() is True
        assert await node.changed_externally() is False
        assert await node.head(A) == FeedHead(2, message.id)
        # Appending from both sides keeps one valid chain.
        await node.append_own(ALICE, post("node again"))
        assert validate_run(None, await cli.get_range(A, 1, 10))[-1].seq == 3
    finally:
        await cli.close()
        await node.close()


# ---------------------------------------------------------------- full disk


async def test_full_disk_is_a_store_error_and_leaves_no_partial_feed(store: Store) -> None:
    alice = chain(ALICE, [post("x" * 4000) for _ in range(300)])
    await store.add_received(raws(alice[:5]))
    # Cap the file at its current size: the next large batch cannot fit (as on a full disk).
    pages = await store._db.execute_fetchall("PRAGMA page_count")
    await store._db.execute(f"PRAGMA max_page_count = {next(iter(pages))[0]}")
    with pytest.raises(StoreError, match="disk is full"):
        await store.add_received(raws(alice[5:]) + raws(posts(BOB, 50)))
    assert await store.clock() == {A: 5}
    assert await store.get_range(A, 1, 100) == raws(alice[:5])
    # Once there is room again the same batch goes in whole.
    await store._db.execute("PRAGMA max_page_count = 1073741823")
    result = await store.add_received(raws(alice[5:]) + raws(posts(BOB, 50)))
    assert result.errors == [] and await store.clock() == {A: 300, B: 50}


async def test_migration_5_removes_notes_about_feeds_we_do_not_hold(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    connection = sqlite3.connect(path)
    connection.create_function(POST_TEXT_FUNCTION, 1, post_text)
    for step in MIGRATIONS[:4]:
        for statement in step:
            connection.execute(statement)
    connection.execute("PRAGMA user_version = 4")
    connection.execute("INSERT INTO feeds (author, seq, id) VALUES (?, ?, ?)", (A, 7, b"i" * 32))
    rows = [(PEER, A, 14, 14)] + [(PEER, bytes([n]) * 32, 3, None) for n in range(50)]
    connection.executemany("INSERT INTO peer_clocks VALUES (?, ?, ?, ?)", rows)
    connection.commit()
    connection.close()
    opened = await Store.open(path)
    try:
        clock = await opened.load_peer_clock(PEER)
        assert clock is not None and clock.theirs == {A: 14} and clock.ours == {A: 14}
    finally:
        await opened.close()


async def test_saved_records_are_bounded_in_size_count_and_age(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_db, "MAX_SAVED_RECORDS", 3)
    monkeypatch.setattr(store_db, "MAX_RECORD_FEEDS", 10)
    peers = [bytes([n]) * 32 for n in range(6)]
    for peer in peers:
        await store.save_peer_clock(peer, {bytes([m]) * 32: m for m in range(20)}, {})
    for gone in peers[:3]:
        assert await store.load_peer_clock(gone) is None
    for kept_peer in peers[3:]:
        assert await store.load_peer_clock(kept_peer) is not None
    kept = await store.load_peer_clock(peers[-1])
    assert kept is not None and len(kept.theirs) == 10
    # A record not saved for RECORD_TTL is dropped the next time any record is saved.
    monkeypatch.setattr(store_db, "RECORD_TTL", 0.0)
    await store.save_peer_clock(PEER, {A: 1}, {})
    for gone in peers:
        assert await store.load_peer_clock(gone) is None
    assert await store.load_peer_clock(PEER) is not None
