"""Doctor checks read from the database: the peers and pubs we remember, our clock."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from chat.doctor.findings import Finding, Level, ago, span
from chat.identity import short_key

CLOCK_SLACK_MS = 5 * 60 * 1000  # clocks within five minutes of each other are fine
SEEN_WITHIN_S = 60.0
RECENT_MESSAGES = 500


@dataclass(frozen=True, slots=True)
class Remembered:
    """A remembered peer or pub and when we were last connected to it."""

    kind: str  # "peer" or "pub"
    label: str
    address: str
    last_connected: float | None


@dataclass(frozen=True, slots=True)
class StoreFacts:
    """What the database tells about peers and clocks (empty when it cannot be read)."""

    remembered: tuple[Remembered, ...] = ()
    own_newest_ms: int | None = None  # newest timestamp on our own feed
    newest_received_ms: int | None = None  # newest arrival time written by this machine
    ahead_by_author: Mapping[str, int] = field(default_factory=dict)  # label -> max ms ahead
    messages_checked: int = 0


def gather_store(database: Path, own_feed: bytes | None) -> StoreFacts:
    if not database.exists():
        return StoreFacts()
    try:
        db = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=2)
    except sqlite3.Error:
        return StoreFacts()
    try:
        names = dict(db.execute("SELECT author, name FROM names").fetchall())
        remembered = [
            Remembered("peer", _label(key, names), address or "", last)
            for key, address, last in db.execute(
                "SELECT key, address, last_connected FROM peers ORDER BY key"
            )
        ]
        peer_last = {
            bytes(key): last
            for key, _, last in db.execute("SELECT key, address, last_connected FROM peers")
        }
        remembered += [
            Remembered("pub", _label(key, names), f"{host}:{port}", peer_last.get(bytes(key)))
            for key, host, port in db.execute("SELECT DISTINCT key, host, port FROM pubs")
        ]
        own_newest = None
        if own_feed is not None:
            row = db.execute(
                "SELECT MAX(claimed_ts) FROM messages WHERE author = ?", (own_feed,)
            ).fetchone()
            own_newest = row[0]
        newest_received = db.execute(
            "SELECT MAX(received_ts) FROM messages WHERE delivered_by IS NOT NULL"
        ).fetchone()[0]
        ahead: dict[str, int] = {}
        recent = db.execute(
            "SELECT author, claimed_ts - received_ts FROM messages"
            " WHERE delivered_by IS NOT NULL ORDER BY rowid DESC LIMIT ?",
            (RECENT_MESSAGES,),
        ).fetchall()
        for author, skew in recent:
            if skew > CLOCK_SLACK_MS:
                label = _label(author, names)
                ahead[label] = max(ahead.get(label, 0), skew)
        return StoreFacts(tuple(remembered), own_newest, newest_received, ahead, len(recent))
    except sqlite3.Error:
        return StoreFacts()
    finally:
        db.close()


def _label(key: bytes, names: Mapping[bytes, str]) -> str:
    key = bytes(key)
    name = names.get(key)
    return f"{name} (@{short_key(key)})" if name else f"@{short_key(key)}"


def judge_remembered(remembered: Sequence[Remembered], now: float) -> list[Finding]:
    if not remembered:
        return [
            Finding(
                "peers",
                Level.WARNING,
                "no peers or pubs remembered yet",
                "on a LAN, run treechat on both machines; elsewhere join a pub: treechat join"
                " INVITE",
            )
        ]
    findings = []
    for item in remembered:
        when = (
            "never connected"
            if item.last_connected is None
            else f"last connected {ago(now - item.last_connected)}"
        )
        at = f" at {item.address}" if item.address else ""
        findings.append(Finding(item.kind, Level.OK, f"{item.label}{at}: {when}"))
    if all(item.last_connected is None for item in remembered):
        findings.append(
            Finding(
                "peers",
                Level.WARNING,
                f"none of the {len(remembered)} remembered peers and pubs has ever connected",
                "check the listen port and firewall on both sides, and that you share a"
                " network key",
            )
        )
    return findings


def judge_clock(facts: StoreFacts, now_ms: int) -> Finding:
    if facts.newest_received_ms is not None and facts.newest_received_ms > now_ms + CLOCK_SLACK_MS:
        return Finding(
            "clock",
            Level.WARNING,
            "this machine's clock went back: messages arrived"
            f" {span(facts.newest_received_ms - now_ms)} 'in the future' by it",
            "turn on time sync: timedatectl set-ntp true",
        )
    if facts.own_newest_ms is not None and facts.own_newest_ms > now_ms + CLOCK_SLACK_MS:
        return Finding(
            "clock",
            Level.WARNING,
            f"your newest post is dated {span(facts.own_newest_ms - now_ms)} ahead of this"
            " machine's clock",
            "turn on time sync: timedatectl set-ntp true",
        )
    ahead = facts.ahead_by_author
    if len(ahead) >= 2:
        most = max(ahead.values())
        return Finding(
            "clock",
            Level.WARNING,
            f"messages from {len(ahead)} people claim times up to {span(most)} later than"
            " they arrived here: this machine's clock is probably slow",
            "turn on time sync: timedatectl set-ntp true",
        )
    if len(ahead) == 1:
        ((who, by),) = ahead.items()
        return Finding(
            "clock",
            Level.OK,
            f"only {who}'s clock runs ahead (up to {span(by)}); their posts sort late",
        )
    checked = facts.messages_checked
    if not checked:
        return Finding("clock", Level.OK, "no messages from peers yet to compare it with")
    return Finding(
        "clock", Level.OK, f"agrees with peers' messages ({checked} recent ones checked)"
    )
