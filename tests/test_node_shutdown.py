"""`Node.stop()` ends everything it started, within bounds, even when a part hangs."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import random
import time
from pathlib import Path

import pytest

import chat.tasks as tasks_module
import net.discovery as discovery_module
from chat.node import Node
from chat.status import status_path
from net.schedule import Dial, PeerSource, PeerTable, ScheduleConfig, ScheduleRunner
from net.server import DialError
from tests.nodes import FAST, open_node, wait_until
from tests.test_node import seq_of

HANG_GUARD = 30.0  # far above any bounded stop; reaching it means stop() hung


def _others(before: set[asyncio.Task[object]]) -> set[asyncio.Task[object]]:
    return {t for t in asyncio.all_tasks() if t not in before and t is not asyncio.current_task()}


async def _settled(before: set[asyncio.Task[object]]) -> set[asyncio.Task[object]]:
    """Tasks started since `before` that are still pending (after a few loop turns)."""
    for _ in range(5):
        await asyncio.sleep(0)
    return {t for t in _others(before) if not t.done()}


async def test_stop_leaves_no_task_of_linked_lan_nodes(tmp_path: Path) -> None:
    before = set(asyncio.all_tasks())
    network = hashlib.sha256(str(tmp_path).encode()).digest()
    lan: dict[str, object] = {"interfaces": ("127.0.0.1",), "network_key": network}
    a = await open_node(tmp_path / "a", FAST, discovery=True, **lan)
    b = await open_node(tmp_path / "b", FAST, discovery=True, **lan)
    try:
        assert b.address is not None
        await a.connect(b.address)
        await a.follow(b.feed_id)
        await b.post("before the end", "general")
        await wait_until(lambda: seq_of(a, b.feed_id) >= 1, limit=20, what="sync")
        assert _others(before), "the nodes run tasks while linked"
    finally:
        await asyncio.wait_for(a.stop(), HANG_GUARD)
        await asyncio.wait_for(b.stop(), HANG_GUARD)
    left = await _settled(before)
    assert not left, f"tasks left running after stop(): {sorted(t.get_name() for t in left)}"


async def test_stop_ends_a_task_that_swallows_its_first_cancel(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tasks_module, "CLOSE_WAIT", 0.1)
    node = await open_node(tmp_path / "a")
    gate = asyncio.Event()
    swallowed: list[bool] = []

    async def stubborn() -> None:
        try:
            await gate.wait()
        except asyncio.CancelledError:
            swallowed.append(True)  # goes on as if nothing happened; the node must insist
        await gate.wait()

    task = node.tasks.spawn(stubborn(), "stubborn")
    await asyncio.sleep(0)
    await asyncio.wait_for(node.stop(), HANG_GUARD)
    assert swallowed == [True]
    assert task.cancelled()


async def test_stop_is_bounded_when_mdns_goodbye_hangs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(discovery_module, "STOP_STEP_TIMEOUT", 0.2)
    network = hashlib.sha256(str(tmp_path).encode()).digest()
    node: Node = await open_node(
        tmp_path / "a", FAST, discovery=True, interfaces=("127.0.0.1",), network_key=network
    )
    assert node.discovery is not None and node.discovery._zc is not None
    zc = node.discovery._zc
    real_close, real_goodbye = zc.async_close, zc.async_unregister_all_services
    closed: list[bool] = []

    async def never_done() -> None:
        await asyncio.Event().wait()

    async def close() -> None:
        closed.append(True)
        monkeypatch.setattr(zc, "async_unregister_all_services", real_goodbye)
        await real_close()

    monkeypatch.setattr(zc, "async_unregister_all_services", never_done)
    monkeypatch.setattr(zc, "async_close", close)
    await asyncio.wait_for(node.stop(), HANG_GUARD)
    assert closed == [True], "closing mDNS still happens after the goodbye gave up"
    assert node.discovery._zc is None


async def test_status_file_is_gone_after_stop_even_mid_write(tmp_path: Path) -> None:
    options = dataclasses.replace(FAST, write_status=True, status_interval=0.001)
    node = await open_node(tmp_path / "a", options)
    path = status_path(tmp_path / "a")
    await wait_until(path.exists, what="status.json written")
    await asyncio.wait_for(node.stop(), HANG_GUARD)
    assert not path.exists()
    await asyncio.sleep(0.2)  # a write left running in its thread would show up by now
    assert not path.exists()


async def test_a_second_stop_returns_only_when_the_first_is_done(tmp_path: Path) -> None:
    node = await open_node(tmp_path / "a")
    first = asyncio.create_task(node.stop())
    await asyncio.sleep(0)  # the first is under way
    second = asyncio.create_task(node.stop())
    await asyncio.wait_for(asyncio.shield(second), HANG_GUARD)
    assert first.done(), "the second stop() returned while the first was still stopping"
    await first


async def test_a_dial_racing_stop_ends_instead_of_hanging(tmp_path: Path) -> None:
    before = set(asyncio.all_tasks())
    a = await open_node(tmp_path / "a")
    b = await open_node(tmp_path / "b")
    try:
        assert b.address is not None
        dial = asyncio.create_task(a.connect(b.address))
        await asyncio.sleep(0)  # the dial is under way when stop() begins
        stopping = asyncio.create_task(a.stop())
        done, _ = await asyncio.wait({dial}, timeout=HANG_GUARD)
        assert done, "connect() hung while the node stopped"
        if dial.exception() is not None:
            assert isinstance(dial.exception(), DialError | ValueError)
        await asyncio.wait_for(stopping, HANG_GUARD)
    finally:
        await a.stop()
        await b.stop()
    left = await _settled(before)
    assert not left, f"tasks left running after stop(): {sorted(t.get_name() for t in left)}"


async def test_schedule_stop_is_bounded_when_a_dial_ignores_cancellation() -> None:
    table = PeerTable(ScheduleConfig(interval=0.05), random.Random(3))
    table.add(b"\x01" * 32, ("127.0.0.1", 7000), PeerSource.LAN, time.time())
    release = asyncio.Event()
    started = asyncio.Event()

    async def stubborn_dial(decision: Dial) -> None:
        started.set()
        while not release.is_set():  # swallows every cancel until released
            with contextlib.suppress(asyncio.CancelledError):
                await release.wait()

    runner = ScheduleRunner(
        table, own_key=b"\x80" * 32, dial=stubborn_dial, hangup=lambda key, reason: None
    )
    await runner.async_start()
    await asyncio.wait_for(started.wait(), HANG_GUARD)
    await asyncio.wait_for(runner.async_stop(grace=0.2), HANG_GUARD)
    rounds = runner.rounds
    runner.poke()  # ignored once stopped: nothing decides any more
    await asyncio.sleep(0.2)
    assert runner.rounds == rounds
    release.set()  # let the stubborn dial end so the test leaves nothing behind
    await asyncio.sleep(0.05)
