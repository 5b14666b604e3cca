"""``treechat serve``: a headless node that prints its address, logs to stderr and writes status."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from chat.commands.watch import async_watch, log_to_stderr, stop_on_signals
from chat.config import Config
from chat.errors import UserError
from chat.node import Node
from net.address import AddressError, parse_address

log = logging.getLogger("treechat.serve")


def run(args: argparse.Namespace, config: Config) -> int:
    """Run until SIGINT/SIGTERM; exit 1 on a bad --connect address."""
    log_to_stderr()
    addresses: list[str] = list(getattr(args, "connect", []) or [])
    for address in addresses:
        try:
            parse_address(address)
        except AddressError as exc:
            print(f"treechat: error: --connect {exc}", file=sys.stderr)
            return 1
    return asyncio.run(_async_serve(config, addresses, follow=getattr(args, "follow", True)))


async def _async_serve(config: Config, addresses: list[str], *, follow: bool) -> int:
    node = await Node.open(config)
    stop = stop_on_signals()
    try:
        await node.start()  # a ListenError reaches the CLI: one line, exit 1
        for own in node.addresses:  # one per interface; the first line is the main one
            print(own, flush=True)
        log.info("serving %s at %s", node.ref, " ".join(node.addresses))
        watcher = asyncio.create_task(async_watch(node, stop))
        for address in addresses:
            await _async_first_dial(node, address, follow)
        await stop.wait()
        await watcher  # it ends when stop is set
    finally:
        await node.stop()
    log.info("stopped")
    return 0


async def _async_first_dial(node: Node, address: str, follow: bool) -> None:
    """Dial once now (following the key unless --no-follow); the gossip schedule keeps
    the peer and redials it with backoff."""
    try:
        await node.connect(address, follow=follow)
    except UserError as exc:
        log.warning("%s (will retry)", exc)
