"""``treechat maelstrom``: a Maelstrom broadcast node on stdin/stdout."""

from __future__ import annotations

import argparse
from dataclasses import replace

from chat.config import Config
from net.maelstrom import PRESETS, NodeSettings, Overlay, maelstrom_main


def settings(args: argparse.Namespace) -> NodeSettings:
    """The preset's settings with the options given on the command line."""
    chosen = PRESETS[args.preset]
    if args.overlay is not None:
        chosen = replace(chosen, overlay=Overlay(args.overlay))
    if args.batch_window is not None:
        chosen = replace(chosen, batch_window=args.batch_window)
    if args.hubs is not None:
        chosen = replace(chosen, hubs=args.hubs)
    return chosen


def run(args: argparse.Namespace, config: Config) -> int:
    """Speak Maelstrom's JSON lines until stdin closes."""
    return maelstrom_main(settings(args))
