"""Hypothesis drives add_received with arbitrary batches; the store's invariants hold."""

from __future__ import annotations

import asyncio
import hashlib
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from nacl.signing import SigningKey

from store.db import Store
from store.message import (
    ForkDetected,
    InvalidMessage,
    Message,
    create_message,
    decode_message,
    validate_next,
    validate_run,
    verify_signature,
)

KEYS = [SigningKey(bytes([n]) * 32) for n in (11, 12, 13)]
LENGTH = 12


def build_pool() -> tuple[list[bytes], set[bytes]]:
    """Canonical chains, a forked branch for one feed, and some invalid messages."""
    pool: list[bytes] = []
    signed_by_author: set[bytes] = set()
    for n, key in enumerate(KEYS):
        prev: bytes | None = None
        chain: list[Message] = []
        for seq in range(1, LENGTH + 1):
            content: Any = {"type": "post", "text": f"{n}/{seq}", "channel": "c"}
            message = create_message(key, seq, prev, seq, content)
            chain.append(message)
            prev = message.id
        pool.extend(m.raw for m in chain)
        if n == 0:  # a second history from seq 5 on: a fork
            prev = chain[3].id
            for seq in range(5, 8):
                branch = create_message(key, seq, prev, 100 + seq, {"type": "other"})
                pool.append(branch.raw)
                prev = branch.id
    signed_by_author.update(pool)
    # Invalid: a bad signature, a wrong prev signed by an impostor, garbage.
    good = decode_message(pool[2])
    pool.append(good.raw[:-1] + bytes([good.raw[-1] ^ 1]))
    impostor = create_message(KEYS[2], 3, b"\x01" * 32, 3, {"type": "x"})
    pool.append(
        impostor.signed.replace(bytes(KEYS[2].verify_key), bytes(KEYS[1].verify_key))
        + impostor.signature
    )
    pool.append(b"\x93\x01\x02\x03" + b"\x00" * 64)
    return pool, signed_by_author


POOL, VALIDLY_SIGNED = build_pool()

CHAIN_STARTS = [
    i for i in range(len(POOL)) if POOL[i] in VALIDLY_SIGNED and decode_message(POOL[i]).seq == 1
]

# A batch is arbitrary picks from the pool, or a contiguous slice of it (a run), or a
# run from a feed's first message on (so feeds grow long).
batches = st.lists(
    st.one_of(
        st.lists(st.sampled_from(range(len(POOL))), max_size=20),
        st.builds(
            lambda start, size: list(range(start, start + size)),
            st.sampled_from(CHAIN_STARTS),
            st.integers(1, LENGTH),
        ),
        st.builds(
            lambda start, size: list(range(start, min(start + size, len(POOL)))),
            st.integers(0, len(POOL) - 1),
            st.integers(1, 15),
        ),
    ),
    min_size=1,
    max_size=8,
)


async def check_invariants(store: Store, before: dict[bytes, int], result: Any) -> None:
    clock = await store.clock()
    forked = await store.forked_feeds()
    for feed, seq in clock.items():
        raws = await store.get_range(feed, 1, LENGTH * 2)
        assert len(raws) == seq
        chain = validate_run(None, raws)  # a valid chain from seq 1
        for raw in raws:
            assert raw in VALIDLY_SIGNED  # nothing forged or unsigned is ever stored
        assert [m.seq for m in chain] == list(range(1, seq + 1))
    # What the call reports as stored is exactly what the heads moved by.
    grown: dict[bytes, int] = {}
    for message in result.stored:
        grown[message.author] = grown.get(message.author, 0) + 1
    for feed in set(clock) | set(before):
        assert clock.get(feed, 0) - before.get(feed, 0) == grown.get(feed, 0)
    proofs = await store.forks()
    assert {p.feed for p in proofs} == forked
    for proof in proofs:
        a, b = decode_message(proof.msg_a), decode_message(proof.msg_b)
        assert a.author == b.author == proof.feed and b.seq == proof.seq
        # Two messages at one seq, or our N and a signed N+1 that does not follow it.
        if a.seq == b.seq:
            assert a.id != b.id
        else:
            assert a.seq == b.seq - 1 and b.prev != a.id
        verify_signature(a)
        verify_signature(b)
    for error in result.errors:
        assert isinstance(error, InvalidMessage)
        if isinstance(error, ForkDetected):
            assert error.feed in forked


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plan=batches)
def test_any_sequence_of_batches_keeps_the_store_valid(plan: list[list[int]]) -> None:
    async def run() -> None:
        with tempfile.TemporaryDirectory() as tmp:
            store = await Store.open(Path(tmp) / "db.sqlite")
            try:
                for picks in plan:
                    before = await store.clock()
                    result = await store.add_received([POOL[i] for i in picks], source=b"p" * 32)
                    await check_invariants(store, before, result)
                if await store.forked_feeds():
                    event("a feed forked")
                event(f"messages held: {(await store.message_count()) // 10 * 10}+")
            finally:
                await store.close()

    asyncio.run(run())


def attack_chain(length: int, bad: int) -> list[bytes]:
    """A feed of `length` messages whose message `bad` carries a broken signature; every
    later message is validly signed by the author and links to it (the relay attack)."""
    key = KEYS[2]
    raws: list[bytes] = []
    prev: bytes | None = None
    for seq in range(1, length + 1):
        raw = create_message(key, seq, prev, seq, {"type": "post", "text": str(seq)}).raw
        if seq == bad:
            raw = raw[:-1] + bytes([raw[-1] ^ 1])
        raws.append(raw)
        prev = hashlib.blake2b(raw, digest_size=32).digest()
    return raws


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_a_bad_signature_anywhere_in_a_run_ends_it_and_only_the_prefix_is_stored(
    data: st.DataObject,
) -> None:
    length = data.draw(st.integers(1, 80), label="length")
    bad = data.draw(st.integers(1, length), label="bad seq")
    held = data.draw(st.integers(0, bad - 1), label="held before the batch")
    raws = attack_chain(length, bad)
    with pytest.raises(InvalidMessage) as info:
        validate_run(None, raws)
    assert (info.value.seq, info.value.reason) == (bad, "bad signature")

    async def run() -> None:
        with tempfile.TemporaryDirectory() as tmp:
            store = await Store.open(Path(tmp) / "db.sqlite")
            try:
                if held:
                    assert len((await store.add_received(raws[:held])).stored) == held
                result = await store.add_received(raws[held:], source=b"p" * 32)
                assert [m.seq for m in result.stored] == list(range(held + 1, bad))
                assert [(e.seq, e.reason) for e in result.errors] == [(bad, "bad signature")]
                feed = bytes(KEYS[2].verify_key)
                assert await store.get_range(feed, 1, length) == raws[: bad - 1]
                assert await store.forks() == []
            finally:
                await store.close()

    asyncio.run(run())


def test_pool_holds_what_the_property_needs() -> None:
    # The invalid entries really are invalid, each for its own reason.
    bad_signature, impostor, garbage = POOL[-3:]
    for raw in (bad_signature, impostor):
        message = decode_message(raw)
        try:
            verify_signature(message)
        except InvalidMessage as exc:
            assert exc.reason == "bad signature"
        else:
            raise AssertionError("a forged message verified")
    try:
        decode_message(garbage)
    except InvalidMessage:
        pass
    else:
        raise AssertionError("garbage decoded")
    assert validate_next(None, POOL[0]).seq == 1
