"""``treechat status``: print the snapshot the running node writes every second."""

from __future__ import annotations

import argparse
import json
import sys

from chat.config import Config
from chat.status import StatusError, format_status, read_status


def run(args: argparse.Namespace, config: Config) -> int:
    """Human table, or the raw snapshot with ``--json``; exit 1 when no node is running."""
    try:
        snapshot = read_status(config.data_dir)
    except StatusError as exc:
        print(f"treechat: {exc}", file=sys.stderr)
        return 1
    if getattr(args, "json", False):
        print(json.dumps(snapshot, indent=2, sort_keys=True))
    else:
        print(format_status(snapshot))
    return 0 if snapshot.get("running") else 1
