"""``treechat maelstrom``: a Maelstrom broadcast node on stdin/stdout."""

from __future__ import annotations

import argparse

from chat.config import Config
from net.maelstrom import maelstrom_main


def run(args: argparse.Namespace, config: Config) -> int:
    """Speak Maelstrom's JSON lines until stdin closes."""
    return maelstrom_main()
