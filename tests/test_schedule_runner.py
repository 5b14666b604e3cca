"""Tests of the asyncio ScheduleRunner: it executes decisions through injected callables."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable

from net.errors import HandshakeError, HandshakeFailure
from net.schedule import (
    Dial,
    PeerSource,
    PeerState,
    PeerTable,
    ScheduleConfig,
    ScheduleRunner,
)

OWN = b"\x80" * 32


def key(n: int) -> bytes:
    return n.to_bytes(2, "big") * 16


class FakeNetwork:
    """Dial and hangup callables whose outcome each test chooses per key."""

    def __init__(self) -> None:
        self.dialed: list[bytes] = []
        self.hung_up: list[tuple[bytes, str]] = []
        self.refuse: set[bytes] = set()
        self.hang: set[bytes] = set()
        self.cancelled: list[bytes] = []
        self.other_network: set[bytes] = set()

    async def dial(self, d: Dial) -> None:
        self.dialed.append(d.key)
        if d.key in self.hang:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                self.cancelled.append(d.key)
                raise
        await asyncio.sleep(0.01)
        if d.key in self.refuse:
            raise ConnectionRefusedError("connection refused")
        if d.key in self.other_network:
            try:
                raise HandshakeError(2, HandshakeFailure.WRONG_NETWORK)
            except HandshakeError as exc:
                raise RuntimeError("handshake failed for 127.0.0.1") from exc

    async def hangup(self, k: bytes, reason: str) -> None:
        self.hung_up.append((k, reason))


def make(config: ScheduleConfig, n_peers: int = 5) -> tuple[ScheduleRunner, FakeNetwork]:
    table = PeerTable(config, random.Random(3))
    for n in range(n_peers):
        table.add(key(n), ("127.0.0.1", 7000 + n), PeerSource.LAN, time.time())
    net = FakeNetwork()
    runner = ScheduleRunner(
        table, own_key=OWN, dial=net.dial, hangup=net.hangup, rng=random.Random(4)
    )
    return runner, net


async def wait_until(predicate: Callable[[], bool], within: float = 5.0) -> None:
    """Poll `predicate` every 10 ms; fail the test if it is still false after `within` s."""
    for _ in range(int(within / 0.01)):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"condition not reached within {within} s")


async def test_runner_dials_up_to_the_quota_and_marks_links_connected() -> None:
    runner, net = make(ScheduleConfig(interval=0.05))
    await runner.async_start()
    try:
        await wait_until(lambda: runner.table.connected_count(PeerSource.LAN) == 3)
        await asyncio.sleep(0.2)  # more rounds pass; nothing more is dialed
        assert len(net.dialed) == 3
        assert runner.rounds > 1
    finally:
        await runner.async_stop()


async def test_failed_and_timed_out_dials_back_off() -> None:
    config = ScheduleConfig(interval=0.05, connect_timeout=0.1)
    runner, net = make(config, n_peers=2)
    net.refuse.add(key(0))
    net.hang.add(key(1))
    await runner.async_start()
    try:
        await wait_until(lambda: all(r.state is PeerState.BACKOFF for r in runner.table))
        assert runner.table.row(key(0)).last_error == "connection refused"
        assert runner.table.row(key(1)).last_error == "connect timed out"
        assert net.cancelled == [key(1)]
        await asyncio.sleep(0.3)  # backoff is seconds long: no redial within it
        assert sorted(net.dialed) == [key(0), key(1)]
    finally:
        await runner.async_stop()


async def test_a_close_reruns_the_schedule_soon_not_at_the_next_tick() -> None:
    config = ScheduleConfig(interval=60.0, after_disconnect=0.05)
    runner, net = make(config, n_peers=4)
    await runner.async_start()
    try:
        await wait_until(lambda: runner.table.connected_count(PeerSource.LAN) == 3)
        first = list(net.dialed)
        runner.closed(first[0], "peer went away")
        assert runner.table.live_count(PeerSource.LAN) == 2  # counted gone at once
        await wait_until(lambda: len(net.dialed) == 4, within=2.0)  # well before 60 s
        assert net.dialed[3] not in first
    finally:
        await runner.async_stop()


async def test_no_dialing_while_new_messages_flow() -> None:
    runner, net = make(ScheduleConfig(interval=0.05))
    runner.note_new_message()
    assert runner.downloading
    runner.run_once()
    assert net.dialed == []
    runner.last_new_message_at = time.time() - 1.0
    assert not runner.downloading
    runner.run_once()
    await wait_until(lambda: len(net.dialed) == 3)
    await runner.async_stop()


async def test_an_incoming_link_that_wins_the_race_cancels_our_dial() -> None:
    runner, net = make(ScheduleConfig(interval=60.0), n_peers=1)
    k = key(0)  # smaller than OWN, so the link k dialed wins
    net.hang.add(k)
    runner.run_once()
    await wait_until(lambda: net.dialed == [k])
    keep, link = runner.incoming(k)
    assert keep and link > 0
    await wait_until(lambda: net.cancelled == [k])
    row = runner.table.row(k)
    assert row.state is PeerState.CONNECTED and row.incoming
    # a second link from k replaces the first: the old one is hung up, a new number given
    keep_again, newer = runner.incoming(k)
    assert keep_again and newer > link
    await wait_until(lambda: net.hung_up == [(k, "replaced")])
    assert runner.table.row(k).state is PeerState.CONNECTED
    await runner.async_stop()


async def test_stop_cancels_dials_in_flight() -> None:
    runner, net = make(ScheduleConfig(interval=0.05), n_peers=2)
    net.hang.update({key(0), key(1)})
    await runner.async_start()
    await wait_until(lambda: len(net.dialed) == 2)
    await runner.async_stop()
    assert sorted(net.cancelled) == [key(0), key(1)]
    assert all(r.state is PeerState.IDLE for r in runner.table)


async def test_block_hangs_up_through_the_injected_callable() -> None:
    runner, net = make(ScheduleConfig(interval=60.0), n_peers=1)
    runner.run_once()
    await wait_until(lambda: runner.table.row(key(0)).state is PeerState.CONNECTED)
    runner.table.block(key(0), time.time())
    runner.run_once()
    await wait_until(lambda: net.hung_up == [(key(0), "blocked")])
    assert runner.table.row(key(0)).state is PeerState.BLOCKED
    await runner.async_stop()


async def test_a_peer_on_another_network_is_not_redialed() -> None:
    runner, net = make(ScheduleConfig(interval=60.0), n_peers=1)
    net.other_network.add(key(0))
    runner.run_once()
    await wait_until(lambda: runner.table.row(key(0)).state is PeerState.OTHER_NETWORK)
    runner.table.row(key(0)).next_attempt = 0.0
    runner.run_once()
    assert net.dialed == [key(0)]
    await runner.async_stop()


async def test_incoming_links_from_new_keys_take_the_class_given() -> None:
    runner, _ = make(ScheduleConfig(interval=60.0), n_peers=0)
    keep, _ = runner.incoming(key(40), PeerSource.FRIEND)
    assert keep
    assert runner.table.row(key(40)).source is PeerSource.FRIEND
    assert runner.table.live_count(PeerSource.FRIEND) == 1
    assert runner.incoming(OWN) == (False, 0)
    await runner.async_stop()
