"""Doctor checks of the network: the listen port, interfaces and LAN discovery, the network key."""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chat.config import DEFAULT_NETWORK_KEY, DEFAULT_PORT, PORT_TRIES, Config, HostPort
from chat.doctor.findings import Finding, Level
from net.address import AddressError, parse_address
from net.interfaces import Interface, discovery_addresses, is_wildcard, local_interfaces

MDNS_GROUP = "224.0.0.251"


# -------------------------------------------------------------------------- listen port


@dataclass(frozen=True, slots=True)
class PortFacts:
    """Whether ``listen`` could be bound now, and who runs on this data dir."""

    listen: HostPort
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
