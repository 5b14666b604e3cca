"""A clean close sends what the core held back: acks are not lost to a quick reconnect."""

from __future__ import annotations

from pathlib import Path

from nacl.signing import SigningKey

from chat.content import post
from chat.identity import load_or_create_identity
from chat.node import NodeOptions
from net.ebt import EbtConfig, Replicator, SendNotes, encode_note
from store.db import Store
from store.message import create_message
from tests.nodes import open_node, wait_until
from tests.test_node import prefill, seq_of

A, B, F = "a", "b", b"F" * 32


def chain(key: SigningKey, count: int) -> list[bytes]:
    raws, prev = [], None
    for seq in range(1, count + 1):
        message = create_message(key, seq, prev, 1_700_000_000_000 + seq, post(f"m{seq}", "t"))
        raws.append(message.raw)
        prev = message.id
    return raws


def test_flush_sends_held_back_acks_at_once() -> None:
    core = Replicator({}, [F], EbtConfig(ack_delay=1.0))
    core.connect(B, 0.0, initiator=False, record=None)
    core.receive_notes(B, {F: encode_note(2, False)}, 0.0)  # ahead: grafted
    core.receive_messages(B, [(F, 1, "m1"), (F, 2, "m2")], 0.1)
    core.stored(F, 1, "m1", 0.2, source=B)
    assert core.stored(F, 2, "m2", 0.2, source=B) == []  # the ack waits for ack_delay
    flushed = core.flush(B, 0.3)
    assert flushed == [SendNotes(B, {F: encode_note(2, True)})]
    assert core.record(B).ours[F] == 2
    assert core.flush(B, 0.4) == []  # nothing twice
    assert core.tick(2.0) == []  # and not again when the delay is over
    assert core.flush(A, 0.5) == []  # an unknown peer: nothing


async def test_clean_close_right_after_sync_keeps_the_reconnect_silent(tmp_path: Path) -> None:
    keys = [SigningKey(bytes([i + 1]) * 32) for i in range(10)]
    feeds = [bytes(k.verify_key) for k in keys]
    load_or_create_identity(tmp_path / "a")
    async with await Store.open(tmp_path / "a" / "treechat.db") as store:
        for key in keys:
            await store.add_received(chain(key, 3))
    await prefill(tmp_path / "a", 0, feeds)
    await prefill(tmp_path / "b", 0, feeds)
    # The default ack_delay (1 s): the acks are still held back when b stops.
    options = NodeOptions(
        ebt=EbtConfig(stall_timeout=0.5), ping_interval=0.2, write_status=False, schedule=False
    )

    async def session() -> int:
        """Fresh nodes on the same data dirs; b stops as soon as it has synced."""
        a = await open_node(tmp_path / "a", options)
        b = await open_node(tmp_path / "b", options)
        try:
            assert a.address is not None and a.manager and b.manager
            await b.connect(a.address)
            await wait_until(lambda: all(seq_of(b, f) == 3 for f in feeds), what="sync")
            await b.stop()
            manager = a.manager
            await wait_until(lambda: not manager.sessions(), what="a sees b leave")
            return manager.counters.notes_entries_sent + b.manager.counters.notes_entries_sent
        finally:
            await b.stop()
            await a.stop()

    assert await session() >= len(feeds)  # the first time: full clocks
    assert await session() == 0  # both records are current: nothing to say
