"""Shared helpers for tests that run real nodes on 127.0.0.1: fast options, config, waiting."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from chat.config import Config, HostPort
from chat.node import Node, NodeOptions
from net.ebt import EbtConfig

FAST = NodeOptions(
    ebt=EbtConfig(stall_timeout=0.5),
    ping_interval=0.2,
    handshake_timeout=3.0,
    write_status=False,
)
"""Short timeouts so a test sees stalls, pings and handshakes fail within a second or so."""


def make_config(path: Path, **changes: object) -> Config:
    """A loopback-only config in `path`: port 0, no discovery, mDNS (if turned on) on
    127.0.0.1, plus `changes`. Every field that touches the network is explicit."""
    values: dict[str, object] = {
        "data_dir": path,
        "listen": HostPort("127.0.0.1", 0),
        "discovery": False,
        "interfaces": ("127.0.0.1",),
    }
    values.update(changes)
    return Config(**values)  # type: ignore[arg-type]


async def open_node(path: Path, options: NodeOptions = FAST, **changes: object) -> Node:
    """Open and start a node on `path`."""
    node = await Node.open(make_config(path, **changes), options)
    await node.start()
    return node


async def wait_until(
    check: Callable[[], bool | Awaitable[bool]], limit: float = 10.0, what: str = ""
) -> None:
    """Poll `check` (sync or async) every 50 ms; fail naming `what` after `limit` seconds."""
    deadline = time.monotonic() + limit
    while True:
        result = check()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or check}")
        await asyncio.sleep(0.05)
