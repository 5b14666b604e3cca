"""This machine's network interfaces: which to run mDNS on, which addresses people can dial.

Read-only: it lists interfaces (via ``ifaddr``, a dependency of zeroconf, and the
interface flags in ``/sys/class/net`` on Linux) and never opens a socket.

- ``discovery_addresses``: the IPv4 address of every interface that is up, can do
  multicast and is not loopback, then ``127.0.0.1`` (so two profiles on one machine
  find each other);
- ``dialable_hosts``: for a wildcard listen address, one address per interface that
  is up (never ``0.0.0.0``); for a specific address, that address;
- ``networks_of``: the subnets of configured interface addresses, so discovery uses a
  peer's address only if it lies on one of them (loopback only on a loopback interface).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

WILDCARD_HOSTS = frozenset({"*", "", "0.0.0.0", "::"})
"""Listen hosts that mean "every interface": ``*`` (IPv4 and IPv6), ``0.0.0.0``, ``::``."""

IFF_UP = 0x1
IFF_LOOPBACK = 0x8
IFF_MULTICAST = 0x1000
LOOPBACK_V4 = ipaddress.ip_network("127.0.0.0/8")
LOOPBACK_V6 = ipaddress.ip_network("::1/128")

IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class Interface:
    """One network interface and its addresses (with prefix lengths)."""

    name: str
    up: bool
    loopback: bool
    multicast: bool
    addresses: tuple[IPInterface, ...]


def local_interfaces(sys_class_net: Path = Path("/sys/class/net")) -> list[Interface]:
    """Every interface of this machine (of this network namespace, on Linux)."""
    import ifaddr

    found = []
    for adapter in ifaddr.get_adapters():
        addresses: list[IPInterface] = []
        for ip in adapter.ips:
            host = ip.ip if isinstance(ip.ip, str) else ip.ip[0]
            try:
                addresses.append(ipaddress.ip_interface(f"{host}/{ip.network_prefix}"))
            except ValueError:
                continue
        loopback = any(a.ip.is_loopback for a in addresses)
        flags = _flags(sys_class_net / adapter.name / "flags")
        if flags is None:  # not Linux: assume what ifaddr listing it suggests
            up, multicast = True, not loopback
        else:
            up, multicast = bool(flags & IFF_UP), bool(flags & IFF_MULTICAST)
            loopback = loopback or bool(flags & IFF_LOOPBACK)
        found.append(Interface(adapter.name, up, loopback, multicast, tuple(addresses)))
    return found


def _flags(path: Path) -> int | None:
    try:
        return int(path.read_text().strip(), 16)
    except (OSError, ValueError):
        return None


def is_wildcard(host: str) -> bool:
    return host in WILDCARD_HOSTS


def discovery_addresses(interfaces: Iterable[Interface] | None = None) -> list[str]:
    """Where mDNS runs by default: each up, multicast, non-loopback interface's IPv4
    address (not link-local), then 127.0.0.1."""
    found: list[str] = []
    for iface in local_interfaces() if interfaces is None else interfaces:
        if not iface.up or iface.loopback or not iface.multicast:
            continue
        for address in iface.addresses:
            ip = address.ip
            if ip.version == 4 and not ip.is_link_local and str(ip) not in found:
                found.append(str(ip))
                break
    return [*found, "127.0.0.1"]


def dialable_hosts(listen_host: str, interfaces: Iterable[Interface] | None = None) -> list[str]:
    """The hosts people can dial to reach a socket bound to `listen_host`.

    A specific address is itself. A wildcard gives one address per up interface that
    is not loopback (its first IPv4, else its first IPv6 that is not link-local, for
    ``*`` and ``::``); loopback only when there is nothing else.
    """
    if not is_wildcard(listen_host):
        return [listen_host]
    want_v6 = listen_host in ("*", "", "::")
    want_v4 = listen_host != "::"
    found: list[str] = []
    for iface in local_interfaces() if interfaces is None else interfaces:
        if not iface.up or iface.loopback:
            continue
        v4 = [a.ip for a in iface.addresses if a.version == 4 and not a.ip.is_link_local]
        v6 = [a.ip for a in iface.addresses if a.version == 6 and not a.ip.is_link_local]
        pick = (v4 if want_v4 else []) + (v6 if want_v6 else [])
        if pick and str(pick[0]) not in found:
            found.append(str(pick[0]))
    if not found:
        found.append("::1" if listen_host == "::" else "127.0.0.1")
    return found


def networks_of(
    addresses: Sequence[str], interfaces: Iterable[Interface] | None = None
) -> list[IPNetwork]:
    """The subnets the interface addresses `addresses` are on (a loopback address gives
    the loopback network; an address no interface holds gives just itself)."""
    known: dict[ipaddress.IPv4Address | ipaddress.IPv6Address, IPNetwork] = {}
    for iface in local_interfaces() if interfaces is None else interfaces:
        for address in iface.addresses:
            known.setdefault(address.ip, address.network)
    networks: list[IPNetwork] = []
    for text in addresses:
        ip = ipaddress.ip_address(text.split("%", 1)[0])
        if ip.is_loopback:
            network: IPNetwork = LOOPBACK_V4 if ip.version == 4 else LOOPBACK_V6
        else:
            network = known.get(ip) or ipaddress.ip_network(ip)
        if network not in networks:
            networks.append(network)
    return networks


def on_networks(host: str, networks: Sequence[IPNetwork]) -> bool:
    """Whether `host` (an IP address) lies on one of `networks`."""
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    return any(ip.version == net.version and ip in net for net in networks)
