"""Sparse feeds in the store: windows, backfill meeting a window, forks across ranges,
and any arrival order of ranges ending in one valid contiguous feed."""

from __future__ import annotations

import asyncio
import itertools
import sqlite3
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nacl.signing import SigningKey

from store.db import Store
from store.message import (
    ForkDetected,
    InvalidMessage,
    Message,
    create_message,
    decode_message,
    verify_signature,
)
from store.schema import MIGRATIONS

ALICE = SigningKey(b"r" * 32)
A = bytes(ALICE.verify_key)


def chain(
    key: SigningKey, count: int, tag: str = "", start: int = 1, prev: bytes | None = None
) -> list[Message]:
    """Messages `start`..`start + count - 1` of `key`'s feed, linked from `prev`."""
    messages: list[Message] = []
    for seq in range(start, start + count):
        content = {"type": "post", "text": f"{tag}{seq}", "channel": "general"}
        message = create_message(key, seq, prev, 1_000 + seq, content)
        messages.append(message)
        prev = message.id
    return messages


FEED = chain(ALICE, 30)


def raws(messages: list[Message]) -> list[bytes]:
    return [m.raw for m in messages]


def window(first: int, last: int) -> list[bytes]:
    return raws(FEED[first - 1 : last])


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = await Store.open(tmp_path / "db.sqlite")
    yield opened
    await opened.close()


async def test_a_window_starts_after_seq_one_and_keeps_latest_and_clock(store: Store) -> None:
    result = await store.add_received(window(21, 30), sparse=True)
    assert [m.seq for m in result.stored] == list(range(21, 31))
    assert result.errors == []
    assert await store.clock() == {A: 30}
    assert (await store.head(A)).seq == 30  # type: ignore[union-attr]
    assert await store.ranges(A) == [(21, 30)]
    assert await store.held_ranges() == {A: [(21, 30)]}
    assert await store.message_count() == 10
    # Live messages continue the window as usual.
    extra = chain(ALICE, 1, start=31, prev=FEED[-1].id)
    assert (await store.add_received(raws(extra))).stored == extra
    assert await store.ranges(A) == [(21, 31)]


async def test_without_sparse_a_gap_is_still_out_of_order(store: Store) -> None:
    result = await store.add_received(window(21, 30))
    assert result.stored == []
    assert "out of order (expected seq 1)" in str(result.errors[0])
    assert await store.clock() == {}


async def test_a_forged_range_start_is_refused(store: Store) -> None:
    first = FEED[20]
    forged = first.raw[:-1] + bytes([first.raw[-1] ^ 1])
    result = await store.add_received([forged, *window(22, 30)], sparse=True)
    assert result.stored == []
    assert [e.reason for e in result.errors] == ["bad signature"]
    assert await store.ranges(A) == []


async def test_a_forged_message_inside_a_range_keeps_the_valid_prefix(store: Store) -> None:
    bad = FEED[24].raw[:-1] + bytes([FEED[24].raw[-1] ^ 1])
    result = await store.add_received([*window(21, 24), bad, *window(26, 30)], sparse=True)
    # The first bad message ends the run: 21..24 are kept, nothing after 25.
    assert [m.seq for m in result.stored] == [21, 22, 23, 24]
    assert [e.seq for e in result.errors] == [25]
    assert await store.ranges(A) == [(21, 24)]


async def test_backfill_meets_the_window_through_a_good_link(store: Store) -> None:
    await store.add_received(window(21, 30), sparse=True)
    await store.add_received(window(11, 15), sparse=True)
    assert await store.ranges(A) == [(11, 15), (21, 30)]
    assert await store.get_range(A, 11, 100) == window(11, 15)  # stops at the hole
    assert await store.get_range(A, 16, 100) == []
    result = await store.add_received(window(16, 20), sparse=True)  # meets both sides
    assert result.errors == []
    assert await store.ranges(A) == [(11, 30)]
    result = await store.add_received(window(1, 10))  # contiguous from seq 1: no flag needed
    assert result.errors == []
    assert await store.ranges(A) == [(1, 30)]
    assert await store.get_range(A, 1, 100) == window(1, 30)
    assert await store.clock() == {A: 30}
    assert await store.message_count() == 30
    assert await store.forked_feeds() == set()


async def test_backfill_with_a_forged_link_into_the_window_is_a_fork(store: Store) -> None:
    await store.add_received(window(21, 30), sparse=True)
    # The author signed another message 20 (another chain): it does not lead to our 21.
    other = chain(ALICE, 5, tag="other ", start=16, prev=FEED[14].id)
    result = await store.add_received(raws(other), sparse=True)
    assert result.stored == []
    (error,) = result.errors
    assert isinstance(error, ForkDetected)
    assert error.seq == 21 and error.existing_id == FEED[20].id
    assert await store.forked_feeds() == {A}
    (proof,) = await store.forks()
    a, b = decode_message(proof.msg_a), decode_message(proof.msg_b)
    assert (a.seq, b.seq, proof.seq) == (20, 21, 21)
    assert b.prev != a.id
    verify_signature(a)
    verify_signature(b)
    assert await store.ranges(A) == [(21, 30)]  # nothing of the other chain kept
    # A forked feed takes nothing more.
    later = await store.add_received(window(11, 15), sparse=True)
    assert later.stored == [] and isinstance(later.errors[0], ForkDetected)


async def test_a_link_from_a_held_range_that_breaks_is_a_fork(store: Store) -> None:
    await store.add_received(window(1, 10))
    await store.add_received(window(21, 30), sparse=True)
    other = chain(ALICE, 3, tag="other ", start=11, prev=b"\x07" * 32)  # does not follow our 10
    result = await store.add_received(raws(other), sparse=True)
    assert isinstance(result.errors[0], ForkDetected)
    assert result.stored == []
    (proof,) = await store.forks()
    assert (decode_message(proof.msg_a).seq, decode_message(proof.msg_b).seq) == (10, 11)


async def test_two_signed_messages_at_one_seq_in_a_window_are_a_fork(store: Store) -> None:
    await store.add_received(window(21, 30), sparse=True)
    other = chain(ALICE, 1, tag="other ", start=25, prev=FEED[23].id)
    result = await store.add_received(raws(other), sparse=True)
    assert isinstance(result.errors[0], ForkDetected)
    (proof,) = await store.forks()
    assert proof.seq == 25 and proof.msg_a == FEED[24].raw and proof.msg_b == other[0].raw


async def test_an_unsigned_message_at_a_held_seq_is_only_invalid(store: Store) -> None:
    await store.add_received(window(21, 30), sparse=True)
    good = FEED[24]
    bad = good.raw[:-1] + bytes([good.raw[-1] ^ 1])
    impostor = decode_message(bad)
    assert impostor.id != good.id
    result = await store.add_received([bad], sparse=True)
    assert [type(e) for e in result.errors] == [InvalidMessage]
    assert await store.forked_feeds() == set()


async def test_migration_gives_existing_feeds_one_range_from_seq_one(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    connection = sqlite3.connect(path)
    for statement in MIGRATIONS[0]:
        connection.execute(statement)
    connection.execute("PRAGMA user_version = 1")
    connection.execute("INSERT INTO feeds (author, seq, id) VALUES (?, ?, ?)", (A, 7, b"i" * 32))
    connection.commit()
    connection.close()
    opened = await Store.open(path)
    try:
        assert await opened.ranges(A) == [(1, 7)]
        assert await opened.message_count() == 7
    finally:
        await opened.close()


# -- any arrival order of ranges ends in one valid contiguous feed ------------------

cuts = st.sets(st.integers(2, len(FEED)), max_size=8)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cuts=cuts, data=st.data())
def test_ranges_in_any_order_end_in_one_valid_feed(cuts: set[int], data: st.DataObject) -> None:
    bounds = [1, *sorted(cuts), len(FEED) + 1]
    pieces = [(bounds[i], bounds[i + 1] - 1) for i in range(len(bounds) - 1)]
    order = data.draw(st.permutations(pieces))
    repeats = data.draw(st.lists(st.sampled_from(pieces), max_size=3))

    async def run() -> None:
        with tempfile.TemporaryDirectory() as tmp:
            store = await Store.open(Path(tmp) / "db.sqlite")
            try:
                held: set[int] = set()
                for first, last in [*order, *repeats]:
                    result = await store.add_received(window(first, last), sparse=True)
                    assert result.errors == []
                    assert {m.seq for m in result.stored} == set(range(first, last + 1)) - held
                    held |= set(range(first, last + 1))
                    # The held ranges are exactly what arrived, joined where they touch.
                    ranges = await store.ranges(A)
                    assert {s for lo, hi in ranges for s in range(lo, hi + 1)} == held
                    assert all(b[0] > a[1] + 1 for a, b in itertools.pairwise(ranges))
                    assert await store.clock() == {A: max(held)}
                    for lo, hi in ranges:
                        assert await store.get_range(A, lo, 100) == window(lo, hi)
                assert await store.ranges(A) == [(1, len(FEED))]
                assert await store.message_count() == len(FEED)
                assert await store.forked_feeds() == set()
            finally:
                await store.close()

    asyncio.run(run())
