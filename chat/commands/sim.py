"""``treechat sim``: run the replication simulator (options are net.sim's own)."""

from __future__ import annotations

import argparse

from chat.config import Config
from net.sim import sim_main


def run(args: argparse.Namespace, config: Config) -> int:
    """Hand every argument after ``sim`` to the simulator's own parser."""
    return sim_main(list(args.sim_args))
