"""What serve and pub say about peers: one line per change, a failure's reason once."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest

from chat.commands.watch import PeerLog, async_watch
from chat.views import PeerView
from tests.nodes import open_node, wait_until

KEY = b"k" * 32


def view(state: str, reason: str = "", direction: str | None = None) -> PeerView:
    return PeerView(
        KEY, "ada", "a2sy", "lan", state, reason, "net:10.0.0.2:7708~shs:x", None, direction
    )


def test_connected_disconnected_and_a_failure_said_once() -> None:
    log = PeerLog()
    assert log.lines([view("connecting")]) == []
    assert log.lines([view("connected", "connected", "out")]) == [
        "connected: ada (lan) at net:10.0.0.2:7708~shs:x, we dialled"
    ]
    assert log.lines([view("connected", "connected", "out")]) == []
    refused = "backing off until 12:00:0{} after {} failures: connection refused"
    assert log.lines([view("backoff", refused.format(1, 1))]) == [
        f"disconnected: ada (lan): {refused.format(1, 1)}"
    ]
    assert log.lines([view("backoff", refused.format(4, 2))]) == []  # the same cause: once
    assert log.lines([view("backoff", "ready to dial")]) == []  # waiting is not failing
    assert log.lines([view("backoff", refused.format(7, 3))]) == []
    timeout = "backing off until 12:00:09 after 3 failures: timed out"
    assert log.lines([view("backoff", timeout)]) == [f"could not connect: ada (lan): {timeout}"]
    assert log.lines([view("backoff", timeout)]) == []
    assert log.lines([view("connected", "connected (incoming)", "in")])[0].endswith("they dialled")
    assert log.lines([]) == ["disconnected: @6b6b6b6b: gone from the peer table"]


async def test_a_node_catching_up_logs_a_summary_and_then_that_it_is_in_sync(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Real nodes on loopback; b's disk is held back (its writes wait on a gate) so it is
    catching up for as long as the test needs, then let go."""
    caplog.set_level(logging.INFO, logger="treechat.peers")
    a = await open_node(tmp_path / "a")
    b = await open_node(tmp_path / "b")
    for n in range(20):
        await a.post(f"backlog {n}", "general")
    await b.follow(a.feed_id)
    stop = asyncio.Event()
    watcher = asyncio.create_task(async_watch(b, stop, poll=0.05, summary_every=0.2))
    try:
        gate = asyncio.Event()
        store_received = b.store.add_received

        async def slow_disk(*args: Any, **kwargs: Any) -> Any:
            await gate.wait()
            return await store_received(*args, **kwargs)

        b.store.add_received = slow_disk  # type: ignore[method-assign]
        assert a.address is not None
        await b.connect(a.address)

        def said(start: str) -> list[str]:
            return [r.getMessage() for r in caplog.records if r.getMessage().startswith(start)]

        await wait_until(lambda: bool(said("catching up: ")), 30, "a catching-up summary")
        assert said("connected: @")[0].endswith("we dialled")
        # b holds its own first message (its follow); a's 20 are known from a's notes.
        assert said("catching up: ")[0] == (
            "catching up: 1/21 messages of 2 feeds, 0 msg/s over 1 link"
        )
        assert not said("in sync")
        gate.set()
        await wait_until(lambda: bool(said("in sync: ")), 30, "the in-sync line")
        assert said("in sync: ") == ["in sync: 21 messages of 2 feeds"]
    finally:
        stop.set()
        await watcher
        await b.stop()
        await a.stop()
