"""The ``treechat`` command line (docs/cli.md): argument parsing and command dispatch.

Every subcommand is a handler ``run(args: argparse.Namespace, config: Config) -> int``
named in ``COMMANDS`` by a ``"module:function"`` string and imported only when that
command runs, so ``treechat id`` never loads Textual or the network stack. The
arguments are declared here, in one place, because they are a stable contract that
tests and scripts rely on. The TUI and ``demo`` live in ``ui/`` and are reached only
through their strings here: the entry point is the one place that wires the top layer,
and ``chat`` still has no import of ``ui``.

Errors the user can fix (the `UserError` family of chat/errors.py: identity, config,
database, a port in use, bad input, a failed dial; each keeps the system's own words
where the system refused) print one line to stderr and exit 1; anything else is a bug
and shows its traceback. A reader that closed our output (``treechat log | head``)
ends the command quietly.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import datetime
import importlib
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

from chat import __version__
from chat.completion import SHELLS
from chat.config import Config, load_config
from chat.content import DEFAULT_CHANNEL, make_post, normalize_channel
from chat.errors import UserError
from chat.identity import ensure_data_dir, load_or_create_identity, short_key
from chat.names import Names
from chat.reading import Reader
from chat.views import TimelineEntry
from chat.writing import Writer
from net import PROTOCOL_VERSION
from net.maelstrom import PRESETS, Overlay
from store.db import Store
from store.message import feed_ref

PROG = "treechat"
EXIT_OK = 0
EXIT_ERROR = 1
EXIT_INTERRUPTED = 130

Handler = Callable[[argparse.Namespace, Config], int]

TUI = "tui"
"""Pseudo-command name for ``treechat`` with no subcommand."""

COMMANDS: dict[str, str] = {
    TUI: "ui.app:run",
    "id": "chat.cli:run_id",
    "post": "chat.cli:run_post",
    "log": "chat.cli:run_log",
    "serve": "chat.commands.serve:run",
    "pub": "chat.commands.pub:run",
    "invite": "chat.commands.invite:run",
    "join": "chat.commands.join:run",
    "status": "chat.commands.status:run",
    "doctor": "chat.commands.doctor:run",
    "completion": "chat.commands.completion:run",
    "follow": "chat.commands.people:run_follow",
    "unfollow": "chat.commands.people:run_unfollow",
    "block": "chat.commands.people:run_block",
    "unblock": "chat.commands.people:run_unblock",
    "name": "chat.commands.people:run_name",
    "peers": "chat.commands.people:run_peers",
    "forget": "chat.commands.people:run_forget",
    "history": "chat.commands.people:run_history",
    "demo": "ui.demo:run",
    "sim": "chat.commands.sim:run",
    "maelstrom": "chat.commands.maelstrom:run",
}
"""Subcommand -> ``"module:function"`` of its handler."""

# ----------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser; every subcommand of docs/cli.md is declared here."""
    parser = argparse.ArgumentParser(
        prog=PROG, description="Peer-to-peer chat for the terminal. Without a command: the TUI."
    )
    parser.add_argument(
        "--version", action="version", version=version_line(), help="print the version and exit"
    )
    _global_options(parser, default=None)
    _network_options(parser, default=None)  # for the TUI; serve and pub take them too
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def command(name: str, help_text: str, *, add_help: bool = True) -> argparse.ArgumentParser:
        subparser = sub.add_parser(name, help=help_text, description=help_text, add_help=add_help)
        # Global options are accepted after the subcommand too; SUPPRESS keeps the
        # subcommand from overwriting a value given before it.
        _global_options(subparser, default=argparse.SUPPRESS)
        return subparser

    command("id", "print your own feed id")

    p = command("post", "append a post to your feed (no network needed)")
    p.add_argument("text", help="the text to post")
    p.add_argument(
        "--channel", default=DEFAULT_CHANNEL, help=f"channel (default: {DEFAULT_CHANNEL})"
    )

    p = command("log", "print the timeline")
    p.add_argument("--channel", default=None, help="only this channel (default: all)")
    p.add_argument(
        "--json", action="store_true", help="one JSON object per line (JSON Lines) instead"
    )
    p.add_argument("--limit", type=_positive_int, default=None, help="only the latest N posts")

    p = command("serve", "run a headless node; logs go to stderr")
    _network_options(p, default=argparse.SUPPRESS)
    p.add_argument(
        "--connect",
        action="append",
        default=[],
        metavar="ADDR",
        help="dial this address (net:HOST:PORT~shs:KEY) and follow its key; may be repeated",
    )
    p.add_argument(
        "--no-follow",
        dest="follow",
        action="store_false",
        help="dial the --connect addresses without following their keys",
    )

    p = command("pub", "run a headless pub (an always-on relay that accepts invites)")
    _network_options(p, default=argparse.SUPPRESS)
    p.add_argument(
        "--public-address",
        default=None,
        metavar="H:P",
        help="the address members should dial, if not the listen address",
    )

    p = command("invite", "print an invite code (run on a pub's data dir)")
    p.add_argument("--uses", type=_positive_int, default=1, help="how many times it can be used")

    p = command("join", "redeem an invite and remember the pub")
    p.add_argument("invite", help="the invite code, net:HOST:PORT~shs:KEY:SECRET")

    p = command("status", "feeds, peers and links of the running node")
    p.add_argument("--json", action="store_true", help="print the snapshot as JSON")

    p = command("doctor", "check why chat might not work; exit 0 ok, 1 warnings, 2 problems")
    p.add_argument("--json", action="store_true", help="print the findings as JSON")

    p = command("completion", "print a shell completion script (bash, zsh or fish)")
    p.add_argument("shell", choices=SHELLS, help="the shell to complete in")

    for verb, what in (
        ("follow", "replicate a person's feed"),
        ("unfollow", "stop replicating a person's feed"),
        ("block", "never replicate a person's feed and refuse their connections"),
        ("unblock", "undo block"),
    ):
        p = command(verb, what)
        p.add_argument("who", metavar="REF|NAME", help="their feed id, name or key start")

    p = command("name", "set the name others see for you")
    p.add_argument("new_name", metavar="NEW", help="1-32 characters")

    p = command("peers", "the peer table: who, found how, state and why")
    p.add_argument("--json", action="store_true", help="print the rows as JSON")

    p = command("forget", "drop a remembered peer (a typo, an old port)")
    p.add_argument("peer", metavar="ADDR|REF", help="its address net:HOST:PORT~shs:KEY, or key")

    p = command("history", "how many of the newest messages of each feed to keep fetching")
    p.add_argument("who", metavar="REF|NAME", nargs="?", help="one person (else: all settings)")
    p.add_argument("setting", metavar="N|all|default", nargs="?", help="set it (else: show)")

    command("demo", "the TUI with local bot peers on 127.0.0.1")

    # The simulator has its own parser: -h and every option after `sim` go to it.
    p = command("sim", "the replication simulator", add_help=False)
    p.set_defaults(sim_args=[])  # every argument it does not know is passed on in sim_args

    p = command("maelstrom", "a Maelstrom broadcast node on stdin/stdout")
    p.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        default="default",
        help="named settings: low-latency, frugal, large (100+ nodes); default: default",
    )
    p.add_argument(
        "--overlay",
        choices=[o.value for o in Overlay],
        default=None,
        help="server links: given = Maelstrom's topology message (default from the preset)",
    )
    p.add_argument(
        "--batch-window",
        type=_milliseconds,
        default=None,
        metavar="MS",
        help="at most one body per peer per this many ms (0: no batching)",
    )
    p.add_argument(
        "--hubs", type=_positive_int, default=None, metavar="K", help="hubs of --overlay hubs"
    )
    return parser


def version_line() -> str:
    """``treechat 0.1.0 (protocol 1, Python 3.11.7)``: what a bug report needs first."""
    python = ".".join(str(part) for part in sys.version_info[:3])
    return f"{PROG} {__version__} (protocol {PROTOCOL_VERSION}, Python {python})"


def _global_options(parser: argparse.ArgumentParser, default: Any) -> None:
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=default,
        help="data directory (identity, database); default: the platform's user data dir",
    )
    parser.add_argument(
        "--config",
        type=Path,
        default=default,
        help="TOML settings file; default: <data dir>/config.toml if present",
    )


def _network_options(parser: argparse.ArgumentParser, default: Any) -> None:
    """Where a node listens and looks for peers (the TUI, serve, pub); `default` as in
    `_global_options`, so a value given before the subcommand is kept."""
    parser.add_argument(
        "--listen",
        default=default,
        metavar="H:P",
        help="listen address; default *:7708 (every interface, the next free port if taken)",
    )
    parser.add_argument(
        "--interface",
        dest="interfaces",
        action="append",
        default=default,
        metavar="IP",
        help="look for LAN peers (mDNS) on this interface address; may be repeated;"
        " default: every interface that can multicast, plus 127.0.0.1",
    )
    parser.add_argument(
        "--no-discovery",
        dest="discovery",
        action="store_const",
        const=False,
        default=default,
        help="do not look for peers on the LAN (mDNS)",
    )


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from exc
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value


def _milliseconds(text: str) -> float:
    """A duration in whole or fractional milliseconds (>= 0), returned in seconds."""
    try:
        value = float(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of milliseconds") from exc
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError("must be 0 or more milliseconds")
    return value / 1000


def config_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The settings a subcommand's flags override (None = flag not given)."""
    return {
        "listen": getattr(args, "listen", None),
        "discovery": getattr(args, "discovery", None),
        "interfaces": getattr(args, "interfaces", None),
        "public_address": getattr(args, "public_address", None),
    }


# --------------------------------------------------------------------------- dispatch


def resolve_handler(command: str) -> Handler:
    """Import the handler of ``command`` (only now: its module may load Textual)."""
    module_name, _, function = COMMANDS[command].partition(":")
    handler: Handler = getattr(importlib.import_module(module_name), function)
    return handler


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``treechat``; returns the exit status (the console script exits with it)."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    command: str = args.command or TUI
    if command == "sim":
        args.sim_args = extra
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        config = load_config(
            config_file=args.config, data_dir=args.data_dir, overrides=config_overrides(args)
        )
        return resolve_handler(command)(args, config)
    except UserError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except BrokenPipeError:
        # Whoever read our output stopped reading: nothing is wrong, and nothing more
        # can be said (stdout goes to /dev/null so the exit's flush stays quiet).
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_ERROR
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


# ----------------------------------------------------------------- id, post and log


def run_id(args: argparse.Namespace, config: Config) -> int:
    """``treechat id``: print our feed id, creating the identity on first run."""
    print(load_or_create_identity(config.data_dir).ref)
    return EXIT_OK


def run_post(args: argparse.Namespace, config: Config) -> int:
    """``treechat post TEXT``: sign and store one post; works while a node is running.

    It writes through the same `Writer` as the node, so ``@name`` mentions are recorded."""
    make_post(args.text, args.channel)  # a bad channel or text is refused before anything opens
    identity = load_or_create_identity(config.data_dir)

    async def append() -> tuple[int, str]:
        async with await Store.open(config.database_path) as store:
            writer = Writer(store, identity, Names(await store.names()))
            message, post = await writer.post(args.text, args.channel)
        return message.seq, post.channel

    seq, channel = asyncio.run(append())
    print(f"posted to #{channel} (message {seq} of {identity.ref})")
    return EXIT_OK


def run_log(args: argparse.Namespace, config: Config) -> int:
    """``treechat log``: the timeline, oldest first, in human form or as JSON Lines."""
    ensure_data_dir(config.data_dir)
    channel = None if args.channel is None else normalize_channel(args.channel)
    entries, names = asyncio.run(read_timeline(config, channel, args.limit))
    if args.json:
        write_json_lines(entries, names, sys.stdout)
    else:
        write_human(entries, names, sys.stdout, show_channel=channel is None)
    return EXIT_OK


_ALL = 2**62


async def read_timeline(
    config: Config, channel: str | None, limit: int | None
) -> tuple[list[TimelineEntry], Names]:
    """Posts of ``channel`` (all if None), oldest first, read as the node reads them
    (the same content rules, names and sanitising: chat/reading.py)."""
    async with await Store.open(config.database_path) as store:
        names = Names(await store.names())
        reader = Reader(store, names)
        entries = await reader.timeline(channel, limit=_ALL if limit is None else limit)
    return entries, names


def author_label(names: Names, feed: bytes) -> str:
    """How ``log`` shows an author: the display name, ``@`` and the key start if unnamed."""
    if names.get(feed) is None:
        return "@" + short_key(feed)
    return names.display_name(feed)


def _local_time(timestamp_ms: int) -> str:
    try:
        moment = datetime.datetime.fromtimestamp(timestamp_ms / 1000)
    except (OverflowError, OSError, ValueError):
        return "????-??-?? ??:??"
    return moment.strftime("%Y-%m-%d %H:%M")


def write_human(
    entries: Sequence[TimelineEntry], names: Names, out: TextIO, *, show_channel: bool
) -> None:
    """``2026-11-21 18:30  #general  ada: text`` (channel column only for all channels);
    continuation lines of a multi-line post are indented under the text."""
    for entry in entries:
        prefix = _local_time(entry.timestamp) + "  "
        if show_channel:
            prefix += f"#{entry.channel}  "
        prefix += author_label(names, entry.author) + ": "
        lines = entry.text.split("\n")
        out.write(prefix + lines[0] + "\n")
        for line in lines[1:]:
            out.write(" " * len(prefix) + line + "\n")


def entry_json(entry: TimelineEntry, names: Names) -> dict[str, Any]:
    """The JSON object of one post (documented in docs/decisions.md)."""
    moment = datetime.datetime.fromtimestamp(entry.timestamp / 1000, tz=datetime.UTC)
    return {
        "id": base64.b64encode(entry.msg_id).decode("ascii"),
        "author": feed_ref(entry.author),
        "name": names.get(entry.author),
        "seq": entry.seq,
        "timestamp": entry.timestamp,
        "time": moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "channel": entry.channel,
        "text": entry.text,
        "reply_to": None
        if entry.reply_to is None
        else base64.b64encode(entry.reply_to).decode("ascii"),
        "mentions": [feed_ref(feed) for feed in entry.mentions],
    }


def write_json_lines(entries: Sequence[TimelineEntry], names: Names, out: TextIO) -> None:
    for entry in entries:
        out.write(json.dumps(entry_json(entry, names), ensure_ascii=False) + "\n")
