"""Signatures checked across threads give the serial verdicts, in order, for any batch."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nacl.signing import SigningKey

from store import verify
from store.db import Store
from store.message import (
    InvalidMessage,
    Message,
    create_message,
    decode_message,
    raw_signature_ok,
    signature_ok,
)

KEYS = [SigningKey(bytes([n]) * 32) for n in (21, 22)]


def _messages(count: int) -> list[Message]:
    out: list[Message] = []
    for i in range(count):
        key = KEYS[i % 2]
        out.append(create_message(key, 1, None, i, {"type": "post", "text": str(i)}))
    return out


POOL = _messages(40)


def _forged(message: Message) -> Message:
    return decode_message(message.raw[:-1] + bytes([message.raw[-1] ^ 1]))


@settings(max_examples=60, deadline=None)
@given(
    bad=st.lists(st.booleans(), min_size=0, max_size=40),
    workers=st.integers(1, 5),
    threshold=st.sampled_from([1, 2, 64]),
)
def test_parallel_verdicts_equal_the_serial_ones(
    bad: list[bool], workers: int, threshold: int
) -> None:
    batch = [_forged(m) if forged else m for m, forged in zip(POOL, bad, strict=False)]
    original = verify.PARALLEL_FROM
    verify.PARALLEL_FROM = threshold
    try:
        verdicts = verify.check_all(batch, workers)
    finally:
        verify.PARALLEL_FROM = original
    assert verdicts == [not forged for forged in bad]
    assert verdicts == [signature_ok(m) for m in batch]


def test_verdicts_raise_for_a_forged_message_and_check_strangers_on_demand() -> None:
    good, forged = POOL[0], _forged(POOL[1])
    verdicts = verify.Verdicts([good, forged], workers=2)
    verdicts.check(good)
    with pytest.raises(InvalidMessage, match="bad signature"):
        verdicts.check(forged)
    verdicts.check(POOL[2])  # not in the batch: verified when asked
    with pytest.raises(InvalidMessage):
        verdicts.check(_forged(POOL[3]))


def test_a_large_batch_is_split_over_the_pool_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    threads: list[str] = []
    check_slice = verify._check_slice

    def recording(messages: list[Message]) -> list[bool]:
        threads.append(threading.current_thread().name)
        return check_slice(messages)

    monkeypatch.setattr(verify, "_check_slice", recording)
    monkeypatch.setattr(verify, "PARALLEL_FROM", 4)
    assert verify.check_all(POOL, workers=3) == [True] * len(POOL)
    assert len(threads) == 3
    assert threads[0] == threading.current_thread().name  # the caller takes a share
    assert all(name.startswith("verify") for name in threads[1:])


@settings(max_examples=150, deadline=None)
@given(
    index=st.integers(0, len(POOL) - 1),
    position=st.integers(0, 400),
    flip=st.integers(1, 255),
)
def test_the_verdict_from_raw_bytes_is_the_verdict_after_decoding(
    index: int, position: int, flip: int
) -> None:
    raw = bytearray(POOL[index].raw)
    raw[position % len(raw)] ^= flip
    verdict = raw_signature_ok(bytes(raw))
    try:
        message = decode_message(bytes(raw))
    except InvalidMessage:
        return  # the store refuses it before any verdict is used
    assert verdict is None or verdict == signature_ok(message)
    assert raw_signature_ok(POOL[index].raw) is True


async def test_verdicts_computed_ahead_end_a_run_at_the_first_forged_message(
    tmp_path: Path,
) -> None:
    key = KEYS[0]
    chain: list[Message] = []
    for seq in range(1, 9):
        prev = chain[-1].id if chain else None
        chain.append(create_message(key, seq, prev, seq, {"type": "post", "text": str(seq)}))
    raws = [m.raw for m in chain]
    raws[5] = raws[5][:-1] + bytes([raws[5][-1] ^ 1])  # seq 6 forged
    ahead: dict[bytes, bool] = {}
    await verify.Ahead(raws).verdicts(ahead)
    assert [ahead[r] for r in raws] == [True] * 5 + [False] + [True] * 2
    store = await Store.open(tmp_path / "db.sqlite")
    try:
        result = await store.add_received(raws, verdicts=ahead)
        assert [m.seq for m in result.stored] == [1, 2, 3, 4, 5]
        assert result.errors and result.errors[0].seq == 6
        assert "bad signature" in str(result.errors[0])
    finally:
        await store.close()
