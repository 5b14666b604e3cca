"""A peer dialled with --connect that really crashes, again and again, is redialled soon
after each return: its back-off is capped, however often it failed before."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

from chat.node import NodeOptions
from net.address import parse_address
from net.schedule import DEFAULT_CLASSES, PeerSource, ScheduleConfig
from tests.nodes import FAST, open_node, wait_until
from tests.processes import free_port, serve

CRASHES = 10
RETURN_BOUND = 15.0  # the promise: redialled within 15 s of its return


def scaled(base: float, most: float) -> NodeOptions:
    """FAST with the manual class's back-off at `base` doubling up to `most` seconds and
    quick schedule rounds: the suite cannot wait out ten real back-offs (the benchmark
    benchmarks/bench_reconnect.py does, with the real numbers)."""
    classes = dict(DEFAULT_CLASSES)
    classes[PeerSource.MANUAL] = dataclasses.replace(
        classes[PeerSource.MANUAL], base=base, max=most
    )
    config = ScheduleConfig(classes=classes, interval=0.2)
    return dataclasses.replace(FAST, schedule_config=config)


async def test_a_connect_peer_that_crashed_ten_times_is_redialled_soon_after_each_return(
    tmp_path: Path,
) -> None:
    # The real manual class starts at 1 s and stops at 10 s; scaled by 1/20 here. Without
    # the cap, ten crashes and the failed dials in between would put the next try hours
    # away (0.05 s * 2**failures), far past the bound.
    port = free_port()
    listen = f"127.0.0.1:{port}"
    peer_dir = tmp_path / "peer"
    proc, address = await asyncio.to_thread(serve, peer_dir, listen=listen)
    a = await open_node(tmp_path / "a", scaled(0.05, 0.5))
    try:
        manager, book = a.manager, a.connections.book
        assert manager is not None
        key = parse_address(address).key
        await a.connect(address)
        for crash in range(1, CRASHES + 1):
            proc.kill()  # SIGKILL: no goodbye, the socket just dies
            await asyncio.to_thread(proc.wait, 10)
            await wait_until(lambda: manager.session(key) is None, what=f"crash {crash} seen")
            proc, _ = await asyncio.to_thread(serve, peer_dir, listen=listen)
            await wait_until(
                lambda: manager.session(key) is not None,
                RETURN_BOUND,
                f"redialled within {RETURN_BOUND:g} s of return {crash}",
            )
        row = book.get(key)
        assert row is not None and row.failures >= CRASHES  # it did fail that often
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        await a.stop()
