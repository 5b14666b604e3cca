"""``treechat follow|unfollow|block|unblock|name|history|peers|forget``: people and peers from the
command line. They write to the data dir's database like ``post`` does, so they work
with or without a node running; a running node picks the change up within a second.

A name, key or address that cannot be used (nobody by that name, your own key, a peer
that was never remembered) is one line on stderr and exit 2.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from chat.config import Config, parse_history
from chat.history import describe_history, history_words
from chat.identity import Identity, load_or_create_identity, short_key
from chat.names import Names
from chat.status import StatusError, read_status
from chat.views import HistorySetting
from net.address import Address, AddressError, parse_address
from store.content import about, contact
from store.db import Store
from store.message import feed_ref

EXIT_OK = 0
EXIT_USAGE = 2


class Refused(Exception):
    """The person or peer named cannot be used for this command (exit 2)."""


def _run(work: Any) -> int:
    try:
        message: str = asyncio.run(work)
    except Refused as exc:
        print(f"treechat: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(message)
    return EXIT_OK


async def _async_person(store: Store, identity: Identity, who: str, verb: str) -> bytes:
    """The feed `who` (a name, a key or a key's start) means; not ourselves."""
    try:
        feed = Names(await store.names()).resolve_name(who)
    except ValueError as exc:
        raise Refused(f"cannot {verb} {who!r}: {exc}") from None
    if feed == identity.feed_id:
        raise Refused(f"cannot {verb} {who!r}: that is your own key")
    return feed


def _label(names: dict[bytes, str], feed: bytes) -> str:
    name = names.get(feed)
    return f"{name} ({feed_ref(feed)})" if name else feed_ref(feed)


async def _async_contact(config: Config, who: str, verb: str, **flags: bool) -> str:
    identity = load_or_create_identity(config.data_dir)
    async with await Store.open(config.database_path) as store:
        feed = await _async_person(store, identity, who, verb)
        names = await store.names()
        following = feed in await store.follows(identity.feed_id)
        blocking = feed in await store.blocks(identity.feed_id)
        already = {
            "follow": following,
            "unfollow": not following,
            "block": blocking,
            "unblock": not blocking,
        }[verb]
        if already:
            state = {"follow": "following", "unfollow": "not following"}.get(verb)
            state = state or ("blocking" if verb == "block" else "not blocking")
            return f"already {state} {_label(names, feed)}"
        await store.append_own(identity.signing_key, contact(feed, **flags))
    past = {"follow": "following", "unfollow": "no longer following", "block": "blocked"}
    return f"{past.get(verb, 'unblocked')} {_label(names, feed)}"


def run_follow(args: argparse.Namespace, config: Config) -> int:
    """``treechat follow REF|NAME``: replicate their feed."""
    return _run(_async_contact(config, args.who, "follow", following=True))


def run_unfollow(args: argparse.Namespace, config: Config) -> int:
    """``treechat unfollow REF|NAME``."""
    return _run(_async_contact(config, args.who, "unfollow", following=False))


def run_block(args: argparse.Namespace, config: Config) -> int:
    """``treechat block REF|NAME``: never replicate them, refuse their connections."""
    return _run(_async_contact(config, args.who, "block", blocking=True))


def run_unblock(args: argparse.Namespace, config: Config) -> int:
    """``treechat unblock REF|NAME``."""
    return _run(_async_contact(config, args.who, "unblock", blocking=False))


def run_name(args: argparse.Namespace, config: Config) -> int:
    """``treechat name NEW``: the name others see for you."""

    async def rename() -> str:
        identity = load_or_create_identity(config.data_dir)
        content = about(args.new_name)  # a bad name is a ContentError: one line, exit 1
        async with await Store.open(config.database_path) as store:
            await store.append_own(identity.signing_key, content)
        return f"you are now {content['name']} ({identity.ref})"

    return _run(rename())


# ------------------------------------------------------------------------ history


def run_history(args: argparse.Namespace, config: Config) -> int:
    """``treechat history [REF|NAME [N|all|default]]``: the default and the feeds set
    apart; one person's setting and what we hold of them; or set it. A running node
    applies a change within a second."""
    value: str | None = args.setting
    keep = None if value is None or value.lower() == "default" else parse_history(value)

    async def history() -> str:
        identity = load_or_create_identity(config.data_dir)
        async with await Store.open(config.database_path) as store:
            names = await store.names()
            overrides = await store.history_overrides()
            if args.who is None:
                lines = [f"history: {history_words(config.history)} of each feed (config)"]
                lines += [
                    f"{_label(names, feed)}: {history_words(kept)}"
                    for feed, kept in sorted(overrides.items(), key=lambda i: _label(names, i[0]))
                ]
                return "\n".join(lines)
            feed = await _async_person(store, identity, args.who, "set the history of")
            if value is not None and value.lower() == "default":
                await store.remove_history_override(feed)
                overrides.pop(feed, None)
            elif value is not None:
                await store.save_history_override(feed, keep)
                overrides[feed] = keep
            ranges = await store.ranges(feed)
            own = feed in overrides
            setting = HistorySetting(
                feed,
                overrides[feed] if own else config.history,
                own,
                ranges[-1][0] if ranges else 0,
                ranges[-1][1] if ranges else 0,
            )
            return describe_history(_label(names, feed), setting)

    return _run(history())


# ------------------------------------------------------------------------ peers, forget


def run_peers(args: argparse.Namespace, config: Config) -> int:
    """``treechat peers [--json]``: the running node's peer table (state and why), else
    the peers and pubs remembered in the data dir."""
    rows = asyncio.run(peer_rows(config))
    if args.json:
        print(json.dumps(rows, indent=2))
        return EXIT_OK
    if not rows:
        print("no peers yet (on a LAN they are found by themselves; or /join INVITE)")
        return EXIT_OK
    table = [("peer", "via", "state", "address", "why")]
    for row in rows:
        label = f"{row['name']} {row['key'][1:9]}".strip()
        table.append((label, row["source"], row["state"], row["address"] or "-", row["reason"]))
    widths = [max(len(line[i]) for line in table) for i in range(4)]
    for line in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=False)), line[4])
    return EXIT_OK


async def peer_rows(config: Config) -> list[dict[str, Any]]:
    """One dict per peer: key, name, source, state, reason, address."""
    try:
        snapshot = read_status(config.data_dir)
    except StatusError:
        snapshot = {}
    if snapshot.get("running"):
        return [
            {
                "key": peer.get("key", ""),
                "name": peer.get("name") or "",
                "source": peer.get("source") or "other",
                "state": peer.get("state") or "",
                "reason": peer.get("reason") or peer.get("last_error") or "",
                "address": peer.get("address"),
            }
            for peer in snapshot.get("peers", [])
        ]
    async with await Store.open(config.database_path) as store:
        names = await store.names()
        rows: dict[bytes, dict[str, Any]] = {}
        for pub in await store.pubs():
            address = str(Address(pub.host, pub.port, pub.key))
            rows[pub.key] = _stored_row(names, pub.key, "pub", address)
        for peer in await store.peers():
            rows[peer.key] = _stored_row(names, peer.key, peer.source, peer.address)
    return list(rows.values())


def _stored_row(
    names: dict[bytes, str], key: bytes, source: str, address: str | None
) -> dict[str, Any]:
    return {
        "key": feed_ref(key),
        "name": names.get(key, ""),
        "source": source,
        "state": "remembered",
        "reason": "no node is running",
        "address": address,
    }


def run_forget(args: argparse.Namespace, config: Config) -> int:
    """``treechat forget ADDR|REF``: drop a remembered peer (a typo, an old port)."""

    async def forget() -> str:
        identity = load_or_create_identity(config.data_dir)
        async with await Store.open(config.database_path) as store:
            what = args.peer
            if what.startswith("net:"):
                try:
                    address = parse_address(what)
                except AddressError as exc:
                    raise Refused(f"cannot forget {what!r}: {exc}") from None
                key = address.key
                stored = await store.peer(key)
                if stored is None or not _same_address(stored.address, address):
                    raise Refused(f"no remembered peer at {what}; `treechat peers` lists them")
            else:
                key = await _async_person(store, identity, what, "forget")
                stored = await store.peer(key)
                if stored is None:
                    raise Refused(f"no remembered peer {what!r}; `treechat peers` lists them")
            await store.remove_peer(key)
            note = ""
            if any(pub.key == key for pub in await store.pubs()):
                note = " (it is still known as a pub from its own announcement)"
            elif _linked(config, key):
                note = (
                    "; the running node hangs up on it now (if it is on your LAN it is found"
                    f" again: `treechat block {short_key(key)}` keeps it away)"
                )
        return f"forgot {stored.address or feed_ref(key)} ({short_key(key)}){note}"

    return _run(forget())


def _linked(config: Config, key: bytes) -> bool:
    """Whether the node running on this data dir (if any) has a link to `key` now."""
    try:
        snapshot = read_status(config.data_dir)
    except StatusError:
        return False
    return snapshot.get("running", False) and any(
        peer.get("key") == feed_ref(key) and peer.get("state") == "connected"
        for peer in snapshot.get("peers", [])
    )


def _same_address(stored: str | None, address: Address) -> bool:
    try:
        return stored is not None and parse_address(stored) == address
    except AddressError:
        return False
