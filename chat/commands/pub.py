"""``treechat pub``: a headless pub that prints its address, takes invites and relays members."""

from __future__ import annotations

import argparse
import asyncio
import logging

from chat.commands.watch import async_watch, log_to_stderr, stop_on_signals
from chat.config import Config
from chat.node import Node
from chat.pub import Pub, pub_config

log = logging.getLogger("treechat.pub")


def run(args: argparse.Namespace, config: Config) -> int:
    """Run until SIGINT/SIGTERM. ``--listen`` and ``--public-address`` are in `config`."""
    log_to_stderr()
    return asyncio.run(_async_pub(pub_config(config)))  # a PubError reaches the CLI


async def _async_pub(config: Config) -> int:
    node = await Node.open(config)
    stop = stop_on_signals()
    pub: Pub | None = None
    try:
        await node.start()
        pub = await Pub.async_attach(node)
        print(pub.address, flush=True)
        log.info("pub %s at %s; make invites with `treechat invite`", node.ref, pub.address)
        await async_watch(node, stop)  # logs peers coming and going until stopped
    finally:
        if pub is not None:
            await pub.async_detach()
        await node.stop()
    log.info("stopped")
    return 0
