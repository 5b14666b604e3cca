"""`treechat doctor`: why chat might not work, checked in order, each with a one-line fix.

Each check is two halves: a thin ``gather_*`` function that looks at the system (files,
SQLite, a socket, the routing table, the terminal) and returns plain facts, and a pure
``judge_*`` function that turns those facts into `Finding`s. The rules are tested on
their own; the gathering is tested once against the real failing conditions.

The overall status is the worst finding: 0 ok, 1 warnings, 2 problems (the exit status).
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import os
import shutil
import socket
import sqlite3
import stat
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path
from typing import Any

from chat.config import DEFAULT_NETWORK_KEY, DEFAULT_PORT, PORT_TRIES, Address, Config
from chat.identity import IdentityError, load_identity, short_key
from chat.status import StatusError, read_status
from net.address import AddressError, parse_address
from net.interfaces import Interface, discovery_addresses, is_wildcard, local_interfaces
from store.schema import SCHEMA_VERSION

MDNS_GROUP = "224.0.0.251"
LOW_SPACE = 500 * 1024 * 1024  # below this, a warning: a busy pub writes that in days
NO_SPACE = 50 * 1024 * 1024  # below this, a problem: SQLite may fail any write
CLOCK_SLACK_MS = 5 * 60 * 1000  # clocks within five minutes of each other are fine
SEEN_WITHIN_S = 60.0
RECENT_MESSAGES = 500
MIN_COLUMNS, MIN_LINES = 80, 24


class Level(IntEnum):
    """How bad a finding is; the worst one is the exit status."""

    OK = 0
    WARNING = 1
    PROBLEM = 2

    @property
    def word(self) -> str:
        return self.name.lower()


@dataclass(frozen=True, slots=True)
class Finding:
    """One line of the report: which check, how bad, what we saw, and the fix."""

    check: str
    level: Level
    summary: str
    fix: str = ""

    def as_json(self) -> dict[str, str]:
        return {
            "check": self.check,
            "level": self.level.word,
            "summary": self.summary,
            "fix": self.fix,
        }


def exit_status(findings: Sequence[Finding]) -> int:
    """0 when all is well, 1 with warnings, 2 with problems."""
    return int(max((f.level for f in findings), default=Level.OK))


def report_json(findings: Sequence[Finding]) -> dict[str, Any]:
    """The ``--json`` document (docs/doctor.md)."""
    worst = Level(exit_status(findings))
    return {
        "version": 1,
        "status": worst.word,
        "exit_status": int(worst),
        "checks": [f.as_json() for f in findings],
    }


def report_lines(findings: Sequence[Finding]) -> list[str]:
    """``problem  secret  /x/secret has mode 0644 ...`` and, under it, ``fix: ...``."""
    width = max((len(f.check) for f in findings), default=0)
    lines = []
    for finding in findings:
        lines.append(f"{finding.level.word:<8} {finding.check:<{width}}  {finding.summary}")
        if finding.fix:
            lines.append(f"{'':<8} {'':<{width}}  fix: {finding.fix}")
    return lines


def _ago(seconds: float) -> str:
    if seconds < 90:
        return f"{max(0, round(seconds))} s ago"
    if seconds < 90 * 60:
        return f"{round(seconds / 60)} min ago"
    if seconds < 36 * 3600:
        return f"{round(seconds / 3600)} h ago"
    return f"{round(seconds / 86400)} days ago"


def _span(ms: float) -> str:
    minutes = abs(ms) / 60000
    return f"{minutes:.0f} min" if minutes < 120 else f"{minutes / 60:.1f} h"


# ------------------------------------------------------------------ data dir and secret


@dataclass(frozen=True, slots=True)
class FileFacts:
    """What ``stat`` says about a path (None fields: the path does not exist)."""

    path: Path
    exists: bool
    is_dir: bool = False
    mode: int = 0
    uid: int = 0


def gather_file(path: Path) -> FileFacts:
    try:
        info = path.stat()
    except FileNotFoundError:
        return FileFacts(path, exists=False)
    return FileFacts(
        path, True, stat.S_ISDIR(info.st_mode), stat.S_IMODE(info.st_mode), info.st_uid
    )


def judge_data_dir(facts: FileFacts, my_uid: int) -> Finding:
    path = facts.path
    if not facts.exists:
        return Finding("data dir", Level.OK, f"{path} does not exist yet; it is made on first run")
    if not facts.is_dir:
        return Finding(
            "data dir",
            Level.PROBLEM,
            f"{path} is a file, not a directory",
            "move it aside, or use another: treechat --data-dir DIR",
        )
    if facts.uid != my_uid:
        return Finding(
            "data dir",
            Level.WARNING,
            f"{path} belongs to user id {facts.uid}, not to you ({my_uid})",
            f"chown -R {my_uid} {path}",
        )
    if facts.mode & 0o077:
        return Finding(
            "data dir",
            Level.WARNING,
            f"{path} is open to other users (mode {facts.mode:04o}): they can read whom you"
            " talk to and your private messages' metadata",
            f"chmod 700 {path}",
        )
    return Finding("data dir", Level.OK, f"{path} is private (mode {facts.mode:04o})")


def judge_secret(facts: FileFacts, load_error: str | None) -> Finding:
    path = facts.path
    if not facts.exists:
        return Finding(
            "secret", Level.OK, f"no identity yet; {path} is made (mode 0600) on first run"
        )
    if facts.mode & 0o077:
        return Finding(
            "secret",
            Level.PROBLEM,
            f"{path} has mode {facts.mode:04o}: anyone who can read it can write as you,"
            " and treechat refuses to use it",
            f"chmod 600 {path}",
        )
    if load_error is not None:
        return Finding(
            "secret",
            Level.PROBLEM,
            load_error,
            f"restore {path} from your backup, or move it aside to start as a new person",
        )
    return Finding("secret", Level.OK, f"{path} is readable only by you (mode 0600)")


def check_identity(config: Config) -> list[Finding]:
    data_dir = gather_file(config.data_dir)
    secret = gather_file(config.secret_path)
    load_error = None
    if secret.exists and not secret.mode & 0o077:
        try:
            load_identity(config.secret_path)
        except IdentityError as exc:
            load_error = str(exc)
    return [judge_data_dir(data_dir, os.getuid()), judge_secret(secret, load_error)]


# ----------------------------------------------------------------------------- database


@dataclass(frozen=True, slots=True)
class DatabaseFacts:
    """The database as SQLite sees it; None fields were not reached."""

    path: Path
    exists: bool
    open_error: str | None = None
    schema_version: int | None = None
    write_error: str | None = None
    integrity: str | None = None  # "ok" or SQLite's first complaint
    free_bytes: int | None = None


def gather_database(path: Path) -> DatabaseFacts:
    """Open the database without creating or changing it: read the schema version, run
    ``PRAGMA quick_check``, and take (then roll back) the write lock to prove writes work."""
    free = None
    existing = next((p for p in path.parents if p.exists()), Path.cwd())
    with contextlib.suppress(OSError):
        free = shutil.disk_usage(existing).free
    if not path.exists():
        return DatabaseFacts(path, exists=False, free_bytes=free)
    try:
        db = sqlite3.connect(f"file:{path}?mode=rw", uri=True, isolation_level=None, timeout=2)
    except sqlite3.Error as exc:
        return DatabaseFacts(path, True, open_error=str(exc), free_bytes=free)
    try:
        try:
            version = int(db.execute("PRAGMA user_version").fetchone()[0])
        except sqlite3.Error as exc:
            return DatabaseFacts(path, True, open_error=str(exc), free_bytes=free)
        try:
            rows = db.execute("PRAGMA quick_check(3)").fetchall()
        except sqlite3.DatabaseError as exc:  # damaged beyond what the check can walk
            rows = [(str(exc),)]
        lines = [line for row in rows for line in str(row[0]).splitlines()]
        integrity = "; ".join(line for line in lines if not line.startswith("***")) or "ok"
        write_error = None
        try:
            db.execute("BEGIN IMMEDIATE")
            db.execute("CREATE TABLE doctor_write_probe (x)")
        except sqlite3.Error as exc:
            write_error = str(exc)
        finally:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
        return DatabaseFacts(path, True, None, version, write_error, integrity, free)
    finally:
        db.close()


def judge_database(facts: DatabaseFacts) -> list[Finding]:
    path = facts.path
    findings = []
    if not facts.exists:
        findings.append(Finding("database", Level.OK, f"{path} does not exist yet"))
    elif facts.open_error is not None:
        findings.append(
            Finding(
                "database",
                Level.PROBLEM,
                f"{path} cannot be opened: {facts.open_error}",
                f"check the file's owner and mode (ls -l {path}); if it is damaged, move it"
                " aside and your feed comes back from your peers",
            )
        )
    elif facts.schema_version is not None and facts.schema_version > SCHEMA_VERSION:
        findings.append(
            Finding(
                "database",
                Level.PROBLEM,
                f"{path} was written by a newer treechat (schema {facts.schema_version},"
                f" this one knows up to {SCHEMA_VERSION})",
                "upgrade treechat",
            )
        )
    elif facts.write_error is not None:
        findings.append(
            Finding(
                "database",
                Level.PROBLEM,
                f"{path} opens but cannot be written: {facts.write_error}",
                f"make it writable by you (chmod u+w {path}; chattr -i {path}) or move the"
                " data dir to a writable disk",
            )
        )
    else:
        findings.append(Finding("database", Level.OK, f"{path} opens and takes writes"))
    if facts.integrity is not None:
        if facts.integrity == "ok":
            findings.append(Finding("integrity", Level.OK, "quick check passed"))
        else:
            findings.append(
                Finding(
                    "integrity",
                    Level.PROBLEM,
                    f"SQLite's quick check found damage: {facts.integrity}",
                    f"stop treechat, move {path} aside and start again: feeds come back"
                    " from the peers that hold them",
                )
            )
    if facts.free_bytes is not None:
        free_mb = facts.free_bytes // (1024 * 1024)
        if facts.free_bytes < NO_SPACE:
            findings.append(
                Finding(
                    "disk space",
                    Level.PROBLEM,
                    f"only {free_mb} MB free where the database lives: writes will fail",
                    "free some space on that disk, or move the data dir (--data-dir)",
                )
            )
        elif facts.free_bytes < LOW_SPACE:
            findings.append(
                Finding(
                    "disk space",
                    Level.WARNING,
                    f"{free_mb} MB free where the database lives",
                    "free some space on that disk before it fills",
                )
            )
        else:
            findings.append(Finding("disk space", Level.OK, f"{free_mb} MB free"))
    return findings


# -------------------------------------------------------------------------- listen port


@dataclass(frozen=True, slots=True)
class PortFacts:
    """Whether ``listen`` could be bound now, and who runs on this data dir."""

    listen: Address
    bind_errno: int | None  # None: the port was free
    bind_error: str = ""
    own_node_pid: int | None = None  # a running node of this data dir
    own_node_port: int | None = None
    next_free: int | None = None  # the port treechat falls back to when the default is taken


def _bind_error(host: str, port: int) -> OSError | None:
    """Bind ``host:port`` the way the server does (every family for a wildcard), then let
    go; the error, or None if it was free."""
    if is_wildcard(host):
        targets = [(socket.AF_INET, "0.0.0.0")]
        if socket.has_ipv6 and host != "0.0.0.0":
            targets.append((socket.AF_INET6, "::"))
    else:
        targets = [(socket.AF_INET6 if ":" in host else socket.AF_INET, host)]
    for family, address in targets:
        try:
            with socket.socket(family, socket.SOCK_STREAM) as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6 and address == "::":
                    probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                probe.bind((address, port))
        except OSError as exc:
            if family == socket.AF_INET6 and exc.errno == errno.EAFNOSUPPORT:
                continue  # no IPv6 here: the server listens on IPv4 only
            return exc
    return None


def gather_port(config: Config, *, status: Mapping[str, Any] | None) -> PortFacts:
    """Try the listen address as the server would (and, for a taken default port, the
    ports it falls back to), letting each go at once."""
    listen = config.listen
    own_pid = own_port = None
    if status is not None and status.get("running"):
        own_pid = status.get("pid")
        with contextlib.suppress(AddressError, TypeError):
            own_port = parse_address(str(status.get("address"))).port
    error = _bind_error(listen.host, listen.port)
    if error is None:
        return PortFacts(listen, None, "", own_pid, own_port)
    next_free = None
    if error.errno == errno.EADDRINUSE and listen.port == DEFAULT_PORT:
        fallbacks = range(DEFAULT_PORT + 1, DEFAULT_PORT + PORT_TRIES)
        next_free = next((p for p in fallbacks if _bind_error(listen.host, p) is None), None)
    reason = error.strerror or str(error)
    return PortFacts(listen, error.errno, reason, own_pid, own_port, next_free)


def judge_port(facts: PortFacts) -> Finding:
    where = str(facts.listen)
    port = facts.listen.port
    host = facts.listen.host
    if facts.bind_errno is None:
        return Finding("listen port", Level.OK, f"{where} is free")
    if facts.bind_errno == errno.EADDRINUSE:
        if facts.own_node_pid is not None and facts.own_node_port == port:
            return Finding(
                "listen port",
                Level.OK,
                f"{where} is held by our own running node (pid {facts.own_node_pid})",
            )
        if port == DEFAULT_PORT and facts.next_free is not None:
            return Finding(
                "listen port",
                Level.WARNING,
                f"{where} is in use (another program, or another treechat profile);"
                f" treechat will listen on {facts.next_free} instead",
                "fine for a second profile; else stop the other program (ss -ltnp"
                f" 'sport = :{port}' shows it) so peers find you where they expect",
            )
        return Finding(
            "listen port",
            Level.PROBLEM,
            f"{where} is in use by another program",
            f"stop that program (ss -ltnp 'sport = :{port}' shows it), or listen"
            f" elsewhere: --listen {host}:{port + 1}",
        )
    problems = {
        errno.EACCES: (
            f"{where}: ports below 1024 need administrator rights",
            f"use a port above 1024: --listen {host}:{DEFAULT_PORT}",
        ),
        errno.EADDRNOTAVAIL: (
            f"{where}: {host} is not an address of this machine",
            f"listen on one of this machine's addresses, or on all: --listen *:{port}",
        ),
    }
    summary, fix = problems.get(
        facts.bind_errno,
        (f"{where} cannot be used: {facts.bind_error}", "choose another address with --listen"),
    )
    return Finding("listen port", Level.PROBLEM, summary, fix)


# --------------------------------------------------------------------------- interfaces


@dataclass(frozen=True, slots=True)
class Route:
    """One IPv4 route of the main table (``/proc/net/route``)."""

    interface: str
    destination: int
    mask: int
    up: bool

    def covers(self, address: str) -> bool:
        value = int(ipaddress.IPv4Address(address))
        return self.up and value & self.mask == self.destination & self.mask


def parse_routes(text: str) -> list[Route]:
    """Parse ``/proc/net/route`` (hex, little-endian addresses)."""
    routes = []
    for line in text.splitlines()[1:]:
        parts = line.split()
        if len(parts) < 8:
            continue
        try:
            destination = int.from_bytes(bytes.fromhex(parts[1]), "little")
            flags = int(parts[3], 16)
            mask = int.from_bytes(bytes.fromhex(parts[7]), "little")
        except ValueError:
            continue
        routes.append(Route(parts[0], destination, mask, bool(flags & 1)))
    return routes


@dataclass(frozen=True, slots=True)
class InterfaceFacts:
    """One address zeroconf will use, the interface that holds it, and who was seen."""

    address: str
    interface: str | None  # None: no interface of this machine has the address
    loopback: bool = False
    multicast_route: bool | None = None  # None: routing table not readable here
    seen_peers: tuple[str, ...] = ()
    multicast: bool = True  # the interface's MULTICAST flag
    up: bool = True


@dataclass(frozen=True, slots=True)
class DiscoveryFacts:
    enabled: bool
    interfaces: tuple[InterfaceFacts, ...] = ()
    node_running: bool = False


def gather_discovery(config: Config, *, status: Mapping[str, Any] | None) -> DiscoveryFacts:
    """The addresses zeroconf will use (as the node picks them), the interface holding
    each, its multicast route, and the LAN peers the running node is connected to there."""
    if not config.discovery:
        return DiscoveryFacts(enabled=False)
    interfaces = local_interfaces()
    addresses = (
        discovery_addresses(interfaces) if config.all_interfaces else list(config.interfaces)
    )
    held: dict[str, tuple[Interface, ipaddress.IPv4Network | ipaddress.IPv6Network]] = {}
    for iface in interfaces:
        for assigned in iface.addresses:
            held.setdefault(str(assigned.ip), (iface, assigned.network))
    try:
        routes: list[Route] | None = parse_routes(Path("/proc/net/route").read_text())
    except OSError:
        routes = None
    running = bool(status and status.get("running"))
    lan_hosts: list[tuple[str, str]] = []  # (host, label) of LAN peers the node sees now
    if running and status is not None:
        for peer in status.get("peers") or []:
            if peer.get("source") == "lan" and peer.get("state") == "connected":
                with contextlib.suppress(AddressError, TypeError):
                    host = parse_address(str(peer.get("address"))).host
                    lan_hosts.append((host, str(peer.get("name") or peer.get("key"))))
    facts = []
    for address in addresses:
        if address not in held:
            facts.append(InterfaceFacts(address, None))
            continue
        iface, network = held[address]
        has_route = None
        if routes is not None and network.version == 4:
            has_route = any(r.interface == iface.name and r.covers(MDNS_GROUP) for r in routes)
        seen = tuple(label for host, label in lan_hosts if _in_network(host, network))
        facts.append(
            InterfaceFacts(
                address,
                iface.name,
                iface.loopback,
                has_route,
                seen,
                multicast=iface.multicast,
                up=iface.up,
            )
        )
    return DiscoveryFacts(True, tuple(facts), running)


def _in_network(host: str, network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> bool:
    try:
        return ipaddress.ip_address(host) in network
    except ValueError:
        return False


def judge_discovery(facts: DiscoveryFacts) -> list[Finding]:
    if not facts.enabled:
        return [
            Finding(
                "mdns",
                Level.OK,
                "LAN discovery is off (discovery = false): peers are reached only by address",
            )
        ]
    if not facts.interfaces:
        return [
            Finding(
                "mdns",
                Level.WARNING,
                "no interface to announce on: this machine has no LAN address",
                'connect to a network, or name one: interfaces = ["192.168.1.20"]',
            )
        ]
    findings = []
    for item in facts.interfaces:
        check = f"mdns {item.address}"
        if item.interface is None:
            findings.append(
                Finding(
                    check,
                    Level.PROBLEM,
                    f"{item.address} is not an address of this machine",
                    'set interfaces in config.toml to addresses that `ip addr` lists, or "all"',
                )
            )
            continue
        where = f"{item.address} ({item.interface})"
        if not item.up:
            findings.append(
                Finding(
                    check,
                    Level.WARNING,
                    f"{where} is down",
                    f"bring it up (sudo ip link set {item.interface} up) or connect its cable",
                )
            )
            continue
        if item.loopback:
            findings.append(
                Finding(
                    check,
                    Level.OK,
                    f"{where}: loopback, so only nodes on this machine are found",
                )
            )
            continue
        if not item.multicast:
            findings.append(
                Finding(
                    check,
                    Level.WARNING,
                    f"{where} cannot do multicast, so mDNS cannot work on it",
                    f"sudo ip link set {item.interface} multicast on",
                )
            )
            continue
        if item.multicast_route is False:
            findings.append(
                Finding(
                    check,
                    Level.WARNING,
                    f"{where} has no multicast route: mDNS announcements may leave by another"
                    " interface or not at all",
                    f"sudo ip route add 224.0.0.0/4 dev {item.interface}",
                )
            )
            continue
        if not facts.node_running:
            seen = "no node running, so nobody was looked for"
        elif item.seen_peers:
            seen = f"treechat seen here in the last minute: {', '.join(item.seen_peers)}"
        else:
            seen = "no other treechat seen here in the last minute"
        route = "multicast route present" if item.multicast_route else "routes not readable"
        findings.append(Finding(check, Level.OK, f"{where}: {route}; {seen}"))
    return findings


# ----------------------------------------------------------------- key, peers, clock


def judge_network_key(key: bytes) -> Finding:
    from net.discovery import network_tag

    if key == DEFAULT_NETWORK_KEY:
        return Finding("network key", Level.OK, "the default (public treechat network)")
    return Finding(
        "network key",
        Level.OK,
        f"a custom key (tag {network_tag(key)}): only nodes with the same key can reach you;"
        " compare tags with theirs",
    )


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
            else f"last connected {_ago(now - item.last_connected)}"
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
            f" {_span(facts.newest_received_ms - now_ms)} 'in the future' by it",
            "turn on time sync: timedatectl set-ntp true",
        )
    if facts.own_newest_ms is not None and facts.own_newest_ms > now_ms + CLOCK_SLACK_MS:
        return Finding(
            "clock",
            Level.WARNING,
            f"your newest post is dated {_span(facts.own_newest_ms - now_ms)} ahead of this"
            " machine's clock",
            "turn on time sync: timedatectl set-ntp true",
        )
    ahead = facts.ahead_by_author
    if len(ahead) >= 2:
        most = max(ahead.values())
        return Finding(
            "clock",
            Level.WARNING,
            f"messages from {len(ahead)} people claim times up to {_span(most)} later than"
            " they arrived here: this machine's clock is probably slow",
            "turn on time sync: timedatectl set-ntp true",
        )
    if len(ahead) == 1:
        ((who, by),) = ahead.items()
        return Finding(
            "clock",
            Level.OK,
            f"only {who}'s clock runs ahead (up to {_span(by)}); their posts sort late",
        )
    checked = facts.messages_checked
    if not checked:
        return Finding("clock", Level.OK, "no messages from peers yet to compare it with")
    return Finding(
        "clock", Level.OK, f"agrees with peers' messages ({checked} recent ones checked)"
    )


# ----------------------------------------------------------------------------- terminal


@dataclass(frozen=True, slots=True)
class TerminalFacts:
    is_tty: bool
    term: str
    colorterm: str
    no_color: bool
    columns: int
    lines: int
    in_tmux: bool
    in_screen: bool


def gather_terminal(env: Mapping[str, str], is_tty: bool) -> TerminalFacts:
    size = shutil.get_terminal_size((0, 0))
    return TerminalFacts(
        is_tty=is_tty,
        term=env.get("TERM", ""),
        colorterm=env.get("COLORTERM", ""),
        no_color="NO_COLOR" in env,
        columns=size.columns,
        lines=size.lines,
        in_tmux="TMUX" in env,
        in_screen="STY" in env,
    )


def judge_terminal(facts: TerminalFacts) -> list[Finding]:
    if not facts.is_tty:
        return [
            Finding(
                "terminal",
                Level.OK,
                "output is not a terminal, so it was not checked; run doctor where you chat",
            )
        ]
    findings = []
    if facts.term in ("", "dumb"):
        findings.append(
            Finding(
                "colours",
                Level.PROBLEM,
                f"TERM is {facts.term or 'not set'}: the TUI cannot draw",
                "run treechat in a terminal emulator, or export TERM=xterm-256color",
            )
        )
    elif facts.no_color:
        findings.append(Finding("colours", Level.OK, "NO_COLOR is set: the TUI draws in mono"))
    elif facts.colorterm.lower() in ("truecolor", "24bit"):
        findings.append(Finding("colours", Level.OK, "true colour"))
    elif "256" in facts.term:
        findings.append(Finding("colours", Level.OK, f"256 colours ({facts.term})"))
    else:
        findings.append(
            Finding(
                "colours",
                Level.WARNING,
                f"TERM={facts.term} promises 16 colours: the TUI looks flat",
                "if your terminal does more: export TERM=xterm-256color (or COLORTERM=truecolor)",
            )
        )
    size = f"{facts.columns}x{facts.lines}"
    if not facts.columns or not facts.lines:
        findings.append(Finding("size", Level.OK, "not reported by the terminal"))
    elif facts.columns < MIN_COLUMNS or facts.lines < MIN_LINES:
        findings.append(
            Finding(
                "size",
                Level.WARNING,
                f"{size}: smaller than {MIN_COLUMNS}x{MIN_LINES}, panes will be cut",
                "make the window bigger (or the font smaller)",
            )
        )
    else:
        findings.append(Finding("size", Level.OK, size))
    if facts.in_tmux:
        findings.append(
            Finding(
                "clipboard",
                Level.WARNING,
                "inside tmux, copying (OSC 52) reaches your clipboard only if tmux passes it on",
                "add to ~/.tmux.conf: set -g set-clipboard on",
            )
        )
    elif facts.in_screen:
        findings.append(
            Finding(
                "clipboard",
                Level.WARNING,
                "GNU screen does not pass OSC 52 on: copying stays inside screen",
                "run treechat outside screen (or in tmux with set-clipboard on) to copy",
            )
        )
    else:
        findings.append(
            Finding("clipboard", Level.OK, "copying uses OSC 52, which most terminals accept")
        )
    return findings


# ---------------------------------------------------------------------------- all of it


def run_checks(
    config: Config,
    *,
    env: Mapping[str, str],
    is_tty: bool,
    status: Mapping[str, Any] | None = None,
) -> list[Finding]:
    """Every check, in the order the report shows them. ``status`` is the running node's
    snapshot when the caller is that node; else ``status.json`` is read if present."""
    findings = check_identity(config)
    findings += judge_database(gather_database(config.database_path))
    if status is None:
        with contextlib.suppress(StatusError):
            status = read_status(config.data_dir)
    findings.append(judge_port(gather_port(config, status=status)))
    findings += judge_discovery(gather_discovery(config, status=status))
    findings.append(judge_network_key(config.network_key))
    own_feed = None
    if config.secret_path.exists():
        with contextlib.suppress(IdentityError, OSError):
            own_feed = load_identity(config.secret_path).feed_id
    facts = gather_store(config.database_path, own_feed)
    findings += judge_remembered(facts.remembered, time.time())
    findings.append(judge_clock(facts, int(time.time() * 1000)))
    findings += judge_terminal(gather_terminal(env, is_tty))
    return findings
