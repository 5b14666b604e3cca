"""``treechat join INVITE``: redeem a pub invite, follow the pub and remember it."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys

from chat.config import Config, HostPort
from chat.joining import JoinResult, async_join
from chat.node import Node, NodeOptions
from chat.status import StatusError, read_status
from net.address import parse_invite
from store.message import feed_ref


def run(args: argparse.Namespace, config: Config) -> int:
    """Exit 0 once the pub's first messages arrived; 1 with the failed step otherwise.

    It runs a short-lived node of its own on a random loopback port without discovery
    and without a status file, so it works beside a node already running on the data dir.
    That node redeems the invite with a throwaway key; the link with your own key is
    the running node's to make (it reads the remembered pub within a second): two links
    with one key would have the pub hang up on one of them.
    """
    text = str(args.invite)
    parse_invite(text)  # a malformed invite is an AddressError before anything starts
    running = _node_running(config)
    result = asyncio.run(_async_join(config, text, connect=not running))  # or a JoinError
    print(f"joined the pub {feed_ref(result.pub)} at {result.address}")
    then = "your running node connects to it now" if running else "your node will keep it connected"
    print(f"it is followed and remembered; {then}", file=sys.stderr)
    return 0


def _node_running(config: Config) -> bool:
    try:
        return bool(read_status(config.data_dir).get("running"))
    except StatusError:
        return False


async def _async_join(config: Config, text: str, *, connect: bool) -> JoinResult:
    local = dataclasses.replace(config, listen=HostPort("127.0.0.1", 0), discovery=False)
    # No gossip schedule: it would redial the data dir's remembered peers with the key
    # of the node running there, and each would hang up on one of the two links.
    node = await Node.open(local, NodeOptions(write_status=False, schedule=False))
    try:
        await node.start()
        return await async_join(node, text, connect=connect)
    finally:
        await node.stop()
