"""``treechat invite [--uses N]``: add an invite to a pub's data dir and print it."""

from __future__ import annotations

import argparse
import asyncio
import sys

from chat.config import Config
from chat.pub import async_create_invite


def run(args: argparse.Namespace, config: Config) -> int:
    """Print one invite string; works while the pub runs (another writer of its database)."""
    uses = int(getattr(args, "uses", 1))
    invite = asyncio.run(async_create_invite(config, uses))  # a PubError reaches the CLI
    print(invite)
    times = "once" if uses == 1 else f"{uses} times"
    print(f"(can be used {times}; give it to the person who should join)", file=sys.stderr)
    return 0
