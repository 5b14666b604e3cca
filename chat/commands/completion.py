"""``treechat completion SHELL``: print a completion script made from the CLI's parser."""

from __future__ import annotations

import argparse

from chat.cli import build_parser
from chat.completion import completion_script
from chat.config import Config


def run(args: argparse.Namespace, config: Config) -> int:
    """Print the script for bash, zsh or fish on stdout."""
    print(completion_script(args.shell, build_parser()), end="")
    return 0
