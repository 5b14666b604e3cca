"""LAN discovery over mDNS / DNS-SD (python-zeroconf's asyncio API), in the node's event loop.

We advertise `_treechat._tcp.local.` with TXT records `key` (standard base64 of our
32-byte feed id), `net` (the first 8 hex characters of sha256(network key), so nodes
of another network are skipped before any dial) and `v` (protocol version, "1").
We browse the same type, resolve each instance and report peers with
`on_found(key, host, port)` and `on_lost(key)`. Ourselves, other networks, other
protocol versions and malformed TXT records are ignored (logged at debug level).

The instance name is `treechat-<first 16 hex chars of the key>`: unique per identity
and safe in DNS, whose names compare case-insensitively (so base64 is not used there).

Interfaces are always given by the caller (the node passes its config or
--interface; tests pass ["127.0.0.1"] so nothing leaves the machine). A resolved peer
address is used only if it lies on the subnet of one of those interfaces (loopback only
when a loopback interface is configured); anything else is ignored, logged at debug.
The mDNS socket hears only the groups it joined itself (``IP_MULTICAST_ALL`` off on
Linux), not what other processes (avahi, systemd-resolved) joined on other interfaces.
Stopping unregisters the service, which sends goodbye packets: the others report us
lost at once.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import ipaddress
import logging
import socket
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from zeroconf import IPVersion, NonUniqueNameException, ServiceStateChange, Zeroconf
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from net import PROTOCOL_VERSION
from net.interfaces import IPNetwork, networks_of, on_networks

log = logging.getLogger(__name__)

SERVICE_TYPE = "_treechat._tcp.local."
RESOLVE_TIMEOUT_MS = 3000
RESOLVE_ATTEMPTS = 3  # a resolve that times out (a busy machine, a lost packet) is retried
STOP_STEP_TIMEOUT = 3.0  # seconds each step of stopping may take (goodbyes are best effort)

FoundFn = Callable[[bytes, str, int], None]
LostFn = Callable[[bytes], None]


class DiscoveryError(RuntimeError):
    """LAN discovery could not start (e.g. no usable interface)."""


def network_tag(network_key: bytes) -> str:
    """The `net` TXT value: first 8 hex characters of sha256(network key)."""
    return hashlib.sha256(network_key).hexdigest()[:8]


def instance_name(key: bytes) -> str:
    """The DNS-SD instance label of a node: `treechat-` + first 16 hex chars of its key."""
    return f"treechat-{key.hex()[:16]}"


@dataclass(frozen=True, slots=True)
class Advert:
    """A peer as resolved from its mDNS records."""

    key: bytes
    host: str
    port: int


def parse_advert(
    properties: dict[bytes, bytes | None], hosts: Sequence[str], port: int | None, net: str
) -> Advert | None:
    """The peer an mDNS record describes, or None if it is not for us (wrong net, bad TXT)."""
    if properties.get(b"net") != net.encode():
        return None
    if properties.get(b"v") != PROTOCOL_VERSION.encode():
        return None
    raw = properties.get(b"key")
    if not raw or not hosts or not port:
        return None
    try:
        key = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        return None
    if len(key) != 32:
        return None
    return Advert(key=key, host=hosts[0], port=port)


def _ip_version(interfaces: Sequence[str]) -> IPVersion:
    versions = set()
    for iface in interfaces:
        try:
            versions.add(ipaddress.ip_address(iface).version)
        except ValueError:
            raise DiscoveryError(f"interface {iface!r} is not an IP address") from None
    if versions == {4}:
        return IPVersion.V4Only
    if versions == {6}:
        return IPVersion.V6Only
    return IPVersion.All


class Discovery:
    """Advertise this node and report the others of the same network on the LAN."""

    def __init__(
        self,
        own_key: bytes,
        port: int,
        network_key: bytes,
        *,
        interfaces: Sequence[str],
        on_found: FoundFn,
        on_lost: LostFn,
        addresses: Sequence[str] | None = None,
        networks: Sequence[IPNetwork] | None = None,
    ) -> None:
        if len(own_key) != 32:
            raise ValueError(f"a feed id is 32 bytes, got {len(own_key)}")
        if not interfaces:
            raise DiscoveryError("no interface given for LAN discovery")
        self.own_key = own_key
        self.port = port
        self.net = network_tag(network_key)
        self.interfaces = list(interfaces)
        self._ip_version = _ip_version(self.interfaces)
        _ip_version(addresses or ())  # the same clear error for a bad advertised address
        self.addresses = [
            a for a in (addresses or self.interfaces) if not ipaddress.ip_address(a).is_unspecified
        ]
        if not self.addresses:
            raise DiscoveryError("no address to advertise: pass addresses= with a real IP")
        self._loopback_only = all(ipaddress.ip_address(i).is_loopback for i in self.interfaces)
        self.networks = list(networks) if networks is not None else networks_of(self.interfaces)
        """A peer's address is used only if it lies on one of these."""
        self._on_found = on_found
        self._on_lost = on_lost
        self._zc: AsyncZeroconf | None = None
        self._browser: AsyncServiceBrowser | None = None
        self._info: AsyncServiceInfo | None = None
        self._peers: dict[str, Advert] = {}  # instance name -> advert
        self._tasks: set[asyncio.Task[None]] = set()
        self.name = f"{instance_name(own_key)}.{SERVICE_TYPE}"

    @property
    def peers(self) -> dict[bytes, Advert]:
        """The peers currently seen, by key."""
        return {a.key: a for a in self._peers.values()}

    async def async_start(self) -> None:
        """Bind mDNS on the interfaces, advertise ourselves and start browsing."""
        if self._zc is not None:
            return
        try:
            self._zc = AsyncZeroconf(interfaces=self.interfaces, ip_version=self._ip_version)
        except OSError as exc:
            raise DiscoveryError(f"cannot start mDNS on {self.interfaces}: {exc}") from exc
        _hear_only_own_groups(self._zc.zeroconf, loopback_only=self._loopback_only)
        self._info = AsyncServiceInfo(
            SERVICE_TYPE,
            self.name,
            parsed_addresses=self.addresses,
            port=self.port,
            properties={
                "key": base64.b64encode(self.own_key).decode(),
                "net": self.net,
                "v": PROTOCOL_VERSION,
            },
            server=f"{instance_name(self.own_key)}.local.",
        )
        self._spawn(self._async_register())
        self._browser = AsyncServiceBrowser(
            self._zc.zeroconf, [SERVICE_TYPE], handlers=[self._on_service_state_change]
        )

    async def async_stop(self) -> None:
        """Say goodbye (unregister), stop browsing and close the sockets.

        Bounded: each step may take `STOP_STEP_TIMEOUT` seconds (mDNS goodbyes are
        sent at intervals and a busy loop makes them slow); one that overruns is
        logged and cut short, and the next still runs.
        """
        zc, self._zc = self._zc, None
        if zc is None:
            return
        tasks = set(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=STOP_STEP_TIMEOUT)
            if pending:
                log.warning("%d mDNS task(s) still running after stop", len(pending))
        browser, self._browser = self._browser, None
        if browser is not None:
            await _async_step(browser.async_cancel(), "stopping the mDNS browser")
        # Goodbye packets, so the others report us lost at once; best effort.
        await _async_step(zc.async_unregister_all_services(), "saying mDNS goodbye")
        await _async_step(zc.async_close(), "closing mDNS")
        self._peers.clear()

    # -- internals (all in the event loop)

    def _spawn(self, coro: object) -> None:
        assert asyncio.iscoroutine(coro)
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _async_register(self) -> None:
        assert self._zc is not None and self._info is not None
        try:
            await (await self._zc.async_register_service(self._info))
        except NonUniqueNameException:
            log.warning("another node on the LAN advertises our key %s", self.name)
        except Exception:
            log.warning("mDNS advertisement failed", exc_info=True)

    def _on_service_state_change(
        self,
        zeroconf: Zeroconf,
        service_type: str,
        name: str,
        state_change: ServiceStateChange,
    ) -> None:
        if name == self.name:
            return
        if state_change is ServiceStateChange.Removed:
            advert = self._peers.pop(name, None)
            if advert is not None:
                self._report(self._on_lost, advert.key)
            return
        self._spawn(self._async_resolve(name))

    async def _async_resolve(self, name: str) -> None:
        for _ in range(RESOLVE_ATTEMPTS):
            zc = self._zc
            if zc is None:
                return
            info = AsyncServiceInfo(SERVICE_TYPE, name)
            # The browser reports a name once: a resolve given up here is not retried
            # by anyone else, and the peer would stay unseen until it re-announces.
            if await info.async_request(zc.zeroconf, RESOLVE_TIMEOUT_MS):
                break
        else:
            log.info("could not resolve %s after %d attempts", name, RESOLVE_ATTEMPTS)
            return
        offered = info.parsed_addresses(self._ip_version)
        hosts = [host for host in offered if on_networks(host, self.networks)]
        # A LAN address before loopback: a peer on this machine is reachable either way,
        # a peer on another machine advertises its own loopback too, which is not it.
        hosts.sort(key=lambda host: ipaddress.ip_address(host.split("%", 1)[0]).is_loopback)
        if offered and not hosts:
            log.debug("ignoring %s: its addresses %s are on none of our interfaces", name, offered)
            return
        advert = parse_advert(info.properties, hosts, info.port, self.net)
        if advert is None:
            log.debug("ignoring %s: other network, other version or bad TXT", name)
            return
        if advert.key == self.own_key:
            return
        if self._peers.get(name) == advert:
            return
        self._peers[name] = advert
        self._report(self._on_found, advert.key, advert.host, advert.port)

    @staticmethod
    def _report(callback: Callable[..., None], *args: object) -> None:
        try:
            callback(*args)
        except Exception:  # a bug in the node's callback must not stop discovery
            log.exception("discovery callback failed")


IP_MULTICAST_ALL = getattr(socket, "IP_MULTICAST_ALL", 49)  # Linux <linux/in.h>
IPV6_MULTICAST_ALL = getattr(socket, "IPV6_MULTICAST_ALL", 29)  # Linux <linux/in6.h>


def _hear_only_own_groups(zc: Zeroconf, *, loopback_only: bool) -> None:
    """Linux delivers a group's datagrams to every wildcard socket on the port once any
    process joined it on any interface; turn that off for zeroconf's listening socket.
    Configured for loopback only, also tie it to ``lo``: a socket sharing the port with
    SO_REUSEPORT (another mDNS stack) could otherwise be handed a LAN datagram."""
    if not sys.platform.startswith("linux"):
        return
    listen = getattr(zc.engine, "_listen_socket", None)
    if not isinstance(listen, socket.socket):
        return
    options: list[tuple[int, int, int | bytes]] = [(socket.IPPROTO_IP, IP_MULTICAST_ALL, 0)]
    if listen.family == socket.AF_INET6:
        options.append((socket.IPPROTO_IPV6, IPV6_MULTICAST_ALL, 0))
    if loopback_only:
        options.append((socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b"lo"))
    for level, option, value in options:
        try:
            listen.setsockopt(level, option, value)
        except OSError as exc:
            log.debug("could not narrow the mDNS socket (option %d): %s", option, exc)


async def _async_step(step: Awaitable[None], what: str) -> None:
    """Await one step of stopping for at most `STOP_STEP_TIMEOUT` s; log if it fails."""
    task = asyncio.ensure_future(step)
    try:
        done, _ = await asyncio.wait({task}, timeout=STOP_STEP_TIMEOUT)
    except BaseException:
        task.cancel()
        raise
    if not done:
        log.warning("%s took over %.0f s; gave up", what, STOP_STEP_TIMEOUT)
        task.cancel()
        await asyncio.wait({task}, timeout=1.0)
    elif not task.cancelled() and task.exception() is not None:
        log.warning("%s failed", what, exc_info=task.exception())
