"""``treechat join INVITE``: redeem a pub invite, follow the pub and remember it."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys

from chat.config import Address as HostPort
from chat.config import Config
from chat.joining import JoinResult, async_join
from chat.node import Node, NodeOptions
from net.address import parse_invite
from store.message import feed_ref


def run(args: argparse.Namespace, config: Config) -> int:
    """Exit 0 once the pub's first messages arrived; 1 with the failed step otherwise.

    It runs a short-lived node of its own on a random loopback port without discovery
    and without a status file, so it works beside a node already running on the data dir.
    """
    text = str(args.invite)
    parse_invite(text)  # a malformed invite is an AddressError before anything starts
    result = asyncio.run(_async_join(config, text))  # a JoinError reaches the CLI
    print(f"joined the pub {feed_ref(result.pub)} at {result.address}")
    print("it is followed and remembered; your node will keep it connected", file=sys.stderr)
    return 0


async def _async_join(config: Config, text: str) -> JoinResult:
    local = dataclasses.replace(config, listen=HostPort("127.0.0.1", 0), discovery=False)
    node = await Node.open(local, NodeOptions(write_status=False))
    try:
        await node.start()
        return await async_join(node, text)
    finally:
        await node.stop()
