"""Connections: listening, dialling and accepting links, and the book of known peers.

Who may connect is the scope's call: a key we block is refused at the handshake; a
link our `hear` and `tell` both turn away is closed at once with the reason in a bye,
whichever side dialled, and not redialled for `REFUSED_RETRY` (30 minutes); a dialled
peer that turns us away the same way is not redialled for as long. The gossip
schedule (net/schedule.py) decides when to dial whom; this room carries out its dials
and hangups, feeds it what LAN discovery sees, and runs each link's replication.
"""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import logging
import os
import time
from collections.abc import Awaitable, Callable

from chat.config import ANY_HOST, DEFAULT_PORT, PORT_TRIES, Config
from chat.errors import ListenError, NodeError
from chat.events import EventBus
from chat.identity import Identity
from chat.names import Names
from chat.options import NodeOptions
from chat.scope import Scope
from chat.tasks import CLOSE_WAIT, TaskGroup, async_bounded
from chat.views import NodeEvent
from net.address import Address, parse_address
from net.budget import host_of
from net.discovery import Discovery, DiscoveryError
from net.errors import HandshakeError, HandshakeFailure
from net.interfaces import dialable_hosts, discovery_addresses, is_wildcard
from net.peer import PeerConnection
from net.policy import REFUSAL_PREFIX, REFUSED_RETRY, refusal
from net.replication import ReplicationManager
from net.schedule import (
    Dial,
    PeerSource,
    PeerTable,
    ScheduleRunner,
)
from net.server import DialError, DialStep, HandshakeGate, async_dial, async_listen, server_port
from store.db import SavedPeer, Store
from store.limits import MAX_REFUSALS, REFUSAL_TTL
from store.message import feed_ref

log = logging.getLogger(__name__)

NORMAL_BYES = frozenset({"goodbye", "shutting down", "replaced"})


class Connections:
    """The node's links: one listening socket, dials, accepted links, the schedule."""

    def __init__(
        self,
        config: Config,
        identity: Identity,
        options: NodeOptions,
        store: Store,
        manager: ReplicationManager,
        scope: Scope,
        names: Names,
        events: EventBus,
        tasks: TaskGroup,
    ) -> None:
        self.config = config
        self.identity = identity
        self.feed_id = identity.feed_id
        self.options = options
        self.store = store
        self.manager = manager
        self.scope = scope
        self.names = names
        self.events = events
        self.tasks = tasks
        self.address: str | None = None
        """The first of `own_addresses` (what one line of output shows)."""
        self.own_addresses: list[str] = []
        """Where people can dial us: one per interface for a wildcard listen address."""
        self.notice: str | None = None
        self._stored_keys: set[bytes] = set()  # peers and pubs as last read from the store
        """Something the user should be told about how we listen (a port taken)."""
        self.server: asyncio.Server | None = None
        self.schedule: ScheduleRunner | None = None
        self.discovery: Discovery | None = None
        self.stopping = False
        # chat/pub.py: sees each incoming link first; True = it took the link (an invite).
        self.incoming_hook: Callable[[PeerConnection], Awaitable[bool]] | None = None
        self.refusals: dict[str, str] = {}  # address -> why, oldest first
        self._refused_at: dict[str, float] = {}
        self.refused_total = 0
        self.gate = HandshakeGate()  # handshakes in progress (bounded in net/server.py)
        self._forget_on_close: set[bytes] = set()  # keys to leave no trace once their link closes
        # chat/ephemeral.py: told when a link is up (after replication started) and gone.
        self.on_link_up: Callable[[PeerConnection], None] | None = None
        self.on_link_down: Callable[[PeerConnection], None] | None = None
        quotas = dataclasses.asdict(config.quotas)
        # The one peer book: what we know of each peer (addresses, class, link state). The
        # gossip schedule runs on it; without the schedule it still records our dials.
        self.book = PeerTable(options.schedule_config.with_quotas(quotas))

    # ------------------------------------------------------------------ starting

    async def async_start(self) -> None:
        """Listen (the next free port if the default one is taken), then work out the
        addresses people can dial; the schedule and discovery start in `async_start_peering`."""
        listen = self.config.listen
        ports = [listen.port]
        if listen.port == DEFAULT_PORT:
            ports += range(DEFAULT_PORT + 1, DEFAULT_PORT + PORT_TRIES)
        for port in ports:
            try:
                self.server = await async_listen(
                    None if listen.host == ANY_HOST else listen.host,
                    port,
                    self.identity.signing_key,
                    self._async_accepted,
                    self.config.network_key,
                    authorize=self.scope.may_connect,
                    on_refused=self._on_refused,
                    handshake_timeout=self.options.handshake_timeout,
                    gate=self.gate,
                )
                break
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE and port != ports[-1]:
                    continue
                why = os.strerror(exc.errno) if exc.errno else str(exc)  # asyncio wraps the words
                where = dataclasses.replace(listen, port=port)
                raise ListenError(f"cannot listen on {where}: {why}") from exc
        assert self.server is not None
        port = server_port(self.server)
        if port != listen.port and listen.port != 0:
            self.notice = (
                f"port {listen.port} is taken (another treechat on this machine?);"
                f" listening on {port} instead"
            )
            log.warning("%s", self.notice)
        public = self.config.public_address
        hosts = [public.host] if public else dialable_hosts(listen.host)
        shown_port = public.port if public else port
        self.own_addresses = [format_address(h, shown_port, self.feed_id) for h in hosts]
        self.address = self.own_addresses[0]

    async def async_start_peering(self) -> None:
        """The gossip schedule and LAN discovery (after `async_start`)."""
        if self.options.schedule:
            await self._async_start_schedule()
        if self.config.discovery and self.server is not None:
            await self._async_start_discovery(server_port(self.server))

    async def _async_start_schedule(self) -> None:
        table = self.book
        now = time.time()
        await self._async_load_peers(table)
        for key in self.scope.blocked:
            table.block(key, now)
        self.schedule = ScheduleRunner(
            table,
            own_key=self.feed_id,
            dial=self._async_schedule_dial,
            hangup=self._schedule_hangup,
            on_change=lambda: self.events.emit(NodeEvent("peers")),
        )
        await self.schedule.async_start()

    def sync_blocks(self, blocked: set[bytes]) -> None:
        """Blocks and unblocks written by another process (`treechat block`) reach the book."""
        now = time.time()
        for key in blocked:
            if not self.book.is_blocked(key):
                self.book.block(key, now)
        for row in list(self.book):
            if row.blocked and row.key not in blocked:
                self.book.unblock(row.key, now)

    async def async_reload_peers(self) -> bool:
        """Peers another process remembered (e.g. `treechat join`): booked and dialled now."""
        if self.schedule is None or not await self._async_load_peers(self.book):
            return False
        self.schedule.poke()
        return True

    async def _async_load_peers(self, table: PeerTable) -> bool:
        """Put the stored pubs and remembered peers into the peer book.

        Rows already there with the same address are left alone (their backoff stays);
        returns whether a row was added or learned a new address.
        """
        now = time.time()
        # Only what was remembered before these reads can have been forgotten: a peer this
        # node saves while they run (a /connect) is missing from them, and is not gone.
        known_before = set(self._stored_keys)
        found: list[tuple[bytes, str, str, bool]] = []
        for pub in await self.store.pubs():
            found.append((pub.key, format_address(pub.host, pub.port, pub.key), "pub", False))
        for stored in await self.store.peers():
            if stored.address:
                found.append((stored.key, stored.address, stored.source, stored.permanent))
        changed = False
        now_stored = {key for key, *_ in found}
        # Forgotten in another process (`treechat forget`): out of the book, and a link
        # to it hung up (a dial under way is hung up when it lands: no row).
        for key in known_before - now_stored:
            row = table.get(key)
            if row is None:
                continue
            table.remove(key)
            if row.live:
                self.manager.forget_on_detach(key)
                self.manager.hangup(key, "forgotten")
            else:
                self.manager.forget(key)
            changed = True
        self._stored_keys = now_stored | (self._stored_keys - known_before)
        for key, address, source_name, permanent in found:
            if key == self.feed_id:
                continue
            try:
                parsed = parse_address(address)
            except ValueError:
                continue
            at = (parsed.host, parsed.port)
            row = table.get(key)
            if row is not None and at in row.addresses and (row.permanent or not permanent):
                continue
            table.add(key, at, peer_source(source_name), now, permanent=permanent)
            changed = True
        return changed

    async def _async_start_discovery(self, port: int) -> None:
        config = self.config
        interfaces = discovery_addresses() if config.all_interfaces else list(config.interfaces)
        listen_host = (config.public_address or config.listen).host
        # Advertise where we listen: a specific address, or each interface's own.
        advertised = interfaces if is_wildcard(listen_host) else [listen_host]
        try:
            self.discovery = Discovery(
                self.feed_id,
                port,
                config.network_key,
                interfaces=interfaces,
                on_found=self._on_lan_found,
                on_lost=self._on_lan_lost,
                addresses=advertised,
            )
            await self.discovery.async_start()
        except (DiscoveryError, ValueError, OSError) as exc:
            self.discovery = None
            log.warning("LAN discovery is off: %s", exc)
            self.events.emit(NodeEvent("error", f"LAN discovery is off: {exc}"))
            return
        log.info("looking for peers on the LAN with mDNS on %s", ", ".join(interfaces))

    def _on_lan_found(self, key: bytes, host: str, port: int) -> None:
        if key in self.scope.blocked or key == self.feed_id or self.stopping:
            return
        self.book.seen_on_lan(key, (host, port), time.time())
        # Whoever dials first, a LAN peer's feed is replicated once it is seen.
        if self.config.auto_follow_lan and self.scope.follow_lan(key):
            self.tasks.spawn(self.scope.async_refresh(), "scope")
        if self.schedule is not None:
            self.schedule.poke()

    def _on_lan_lost(self, key: bytes) -> None:
        self.book.vanished(key, time.time())

    async def _async_schedule_dial(self, decision: Dial) -> None:
        host, port = decision.address
        await self._async_dial(format_address(host, port, decision.key), decision.source)

    def _schedule_hangup(self, key: bytes, reason: str) -> None:
        self.manager.hangup(key, reason)  # notes and acks held back go out before the bye

    def remember_peer(self, address: str, *, source: str = "other") -> None:
        """Keep a link to `address` (redialled with backoff); needs the schedule."""
        parsed = parse_address(address)
        at = (parsed.host, parsed.port)
        self.book.add(parsed.key, at, peer_source(source), time.time(), permanent=True)
        if self.schedule is not None:
            self.schedule.poke()

    def block(self, feed: bytes) -> None:
        self.book.block(feed, time.time())

    def unblock(self, feed: bytes) -> None:
        self.book.unblock(feed, time.time())

    # ------------------------------------------------------------------ stopping

    async def async_stop_peering(self) -> None:
        """Stop listening, the schedule and LAN discovery (each bounded)."""
        self.stopping = True
        if self.server is not None:
            self.server.close()
        if self.schedule is not None:
            await async_bounded(self.schedule.async_stop(), "the gossip schedule")
        if self.discovery is not None:
            await async_bounded(self.discovery.async_stop(), "LAN discovery")

    async def async_wait_closed(self) -> None:
        if self.server is not None:
            await async_bounded(self.server.wait_closed(), "the listening socket", 2.0)

    # ------------------------------------------------------------------ links

    def _on_refused(self, where: str, error: HandshakeError) -> None:
        """Remember the refusal for status (bounded: MAX_REFUSALS, REFUSAL_TTL)."""
        now = time.time()
        self.refused_total += 1
        self.refusals.pop(where, None)
        self._refused_at.pop(where, None)
        self.refusals[where] = str(error)
        self._refused_at[where] = now
        for oldest, at in list(self._refused_at.items()):
            if len(self.refusals) <= MAX_REFUSALS and now - at < REFUSAL_TTL:
                break
            del self.refusals[oldest], self._refused_at[oldest]
        if error.reason is HandshakeFailure.REFUSED:
            # Our own decision (a blocked key, an unknown invite): nothing went wrong, so
            # it is logged and shown in the peers view, not raised as an error.
            log.info("refused a connection from %s: %s", where, error)
            return
        self.events.emit(NodeEvent("error", f"refused a connection from {where}: {error}"))

    async def _async_accepted(self, conn: PeerConnection) -> None:
        task = asyncio.current_task()
        if task is not None:  # so stop() can end links that dialled us
            self.tasks.adopt(task)
        if self.stopping:  # its handshake finished after stop() began
            conn.close("shutting down")
            return
        if self._known(conn.remote):  # not a stranger: its address keeps its budget
            self.gate.known(host_of(conn.address))
        if self.incoming_hook is not None and await self.incoming_hook(conn):
            return
        if self.schedule is not None:
            # A second link from a linked key replaces the first (the schedule hangs
            # the old one up); a simultaneous dial keeps the smaller key's link.
            keep, link = self.schedule.incoming(conn.remote, self._source_of(conn.remote))
            if not keep:
                conn.close("too many links; try again later")
                return
            conn.schedule_link = link
        await self._async_run_connection(conn)

    def forget_on_close(self, key: bytes) -> None:
        """Keep nothing of `key` once its link closes (a failed invite guess): no
        counters, no record, no row in the peer book."""
        self.manager.forget_on_detach(key)
        self._forget_on_close.add(key)

    def _known(self, key: bytes) -> bool:
        """A key we chose, follow, or found on the LAN; not a passing stranger."""
        row = self.book.get(key)
        return key in self.scope.wanted or (
            row is not None
            and (row.permanent or bool(row.addresses) or row.source is not PeerSource.OTHER)
        )

    def _source_of(self, key: bytes) -> PeerSource:
        """The class of a key that dialled us: as booked, else `friend` if we want its feed."""
        row = self.book.get(key)
        source = row.source if row is not None else PeerSource.OTHER
        if source is PeerSource.OTHER and key in self.scope.wanted:
            return PeerSource.FRIEND
        return source

    async def async_connect(self, address: str, *, source: str = "manual") -> None:
        """Dial `address` (net:HOST:PORT~shs:KEY); returns once the link is up.

        Raises `ValueError` for a bad address and `DialError` naming the failed step.
        The peer is remembered: the schedule redials it when the link drops.
        """
        parsed = parse_address(address)
        kind = peer_source(source)
        if self.schedule is not None and parsed.key != self.feed_id:
            table = self.book
            now = time.time()
            table.add(parsed.key, (parsed.host, parsed.port), kind, now, permanent=True)
            table.on_manual_dial(parsed.key, now)
            try:
                await self._async_dial(address, kind)
            except Exception as exc:
                table.on_failed(parsed.key, time.time(), str(exc))
                raise
            table.on_connected(parsed.key, time.time())
            await self._async_save_peer(parsed.key, address, kind)
            return
        await self._async_dial(address, kind)

    async def _async_save_peer(self, key: bytes, address: str, source: PeerSource) -> None:
        try:
            await self.store.save_peer(
                SavedPeer(key=key, address=address, source=source.value, permanent=True)
            )
            self._stored_keys.add(key)  # so a `treechat forget` of it is noticed
        except Exception:  # remembering is a convenience; the link is up either way
            log.exception("could not remember the address of %s", feed_ref(key))

    async def _async_dial(self, address: str, source: PeerSource) -> None:
        parsed = parse_address(address)
        if parsed.key == self.feed_id:
            raise NodeError("that address is this node itself")
        if parsed.key in self.scope.blocked:
            raise NodeError(f"{feed_ref(parsed.key)} is blocked; unblock it first")
        self.book.learn(parsed.key, (parsed.host, parsed.port), source, time.time())
        if self.scope.access(parsed.key).refused:
            why = refusal(self.config.hear, self.config.tell)
            self.book.on_refused(parsed.key, time.time(), why, REFUSED_RETRY)
            raise DialError(DialStep.CONNECT, address, why)
        try:
            conn = await async_dial(
                parsed.host,
                parsed.port,
                parsed.key,
                self.identity.signing_key,
                self.config.network_key,
                handshake_timeout=self.options.handshake_timeout,
            )
        except DialError as exc:
            self.manager.record_error(parsed.key, str(exc))
            raise
        if self.stopping:  # stop() began while we dialled: no new link now
            conn.close("shutting down")
            raise DialError(DialStep.CONNECT, address, "this node is stopping")
        conn.ping_interval = self.options.ping_interval
        ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        task = self.tasks.spawn(self._async_run_connection(conn, ready), "connection")
        # A task cancelled (by stop()) before its first step never sets `ready`.
        await asyncio.wait({ready, task}, return_when=asyncio.FIRST_COMPLETED)
        if not ready.done():
            conn.close("shutting down")
            raise DialError(DialStep.CONNECT, address, "this node is stopping")

    async def _async_run_connection(
        self, conn: PeerConnection, ready: asyncio.Future[None] | None = None
    ) -> None:
        manager = self.manager
        conn.ping_interval = self.options.ping_interval
        if self.scope.access(conn.remote).refused:
            conn.close(refusal(self.config.hear, self.config.tell))
            self.book.on_refused(conn.remote, time.time(), "by our hear/tell", REFUSED_RETRY)
            if ready is not None and not ready.done():
                ready.set_result(None)
            return
        try:
            await manager.async_attach(conn)
        except Exception as exc:  # e.g. the database failed: close this link, keep the node
            log.exception("could not start replicating with %s", feed_ref(conn.remote))
            manager.record_error(conn.remote, f"could not start replicating: {exc}")
            conn.close("internal error")
            return
        finally:
            if ready is not None and not ready.done():
                ready.set_result(None)
        name = self.names.display_name
        self.events.emit(NodeEvent("peers", f"connected to {name(conn.remote)}"))
        if self.options.replicate_all or (
            self.config.auto_follow_lan and self._source_of(conn.remote) is PeerSource.LAN
        ):
            self.scope.follow_lan(conn.remote)
            self.scope.dirty = True
            await self.scope.async_refresh()
        if self.on_link_up is not None:
            self.on_link_up(conn)
        error: str | None = None
        try:
            error = await conn.async_run(manager)
        except Exception as exc:  # never let one link take the node down
            log.exception("link to %s failed", feed_ref(conn.remote))
            error = f"internal error: {exc}"
            conn.close("internal error")
        if error is None and conn.bye_reason is not None and conn.bye_reason not in NORMAL_BYES:
            error = f"it closed the connection: {conn.bye_reason}"
        if self.on_link_down is not None:
            self.on_link_down(conn)
        await manager.async_detach(conn, error)
        stats = manager.peer_stats.get(conn.remote)
        if not conn.initiator and stats is not None and stats.cut_off:
            self.gate.cut_off(host_of(conn.address))  # a flooder's next sessions wait longer
        if self.schedule is not None and manager.session(conn.remote) is None:
            row = self.book.get(conn.remote)
            # Report only the link the table holds: a replaced link's close is stale.
            if row is not None and (conn.initiator != row.incoming):
                link = conn.schedule_link if not conn.initiator else None
                self.schedule.closed(conn.remote, error or conn.bye_reason or "", link=link)
        if conn.remote in self._forget_on_close and manager.session(conn.remote) is None:
            self._forget_on_close.discard(conn.remote)
            self.book.remove(conn.remote)
        bye = conn.bye_reason or ""
        if bye.startswith(REFUSAL_PREFIX):  # their hear/tell turned us away: a long pause
            self.book.on_refused(conn.remote, time.time(), bye, REFUSED_RETRY)
        try:  # a peer that stopped reading must not hold this task (and stop()) forever
            await asyncio.wait_for(conn.async_wait_closed(), CLOSE_WAIT)
        except TimeoutError:
            log.info("the link to %s did not close in time", feed_ref(conn.remote))
        self.events.emit(NodeEvent("peers", f"disconnected from {name(conn.remote)}"))


def format_address(host: str, port: int, key: bytes) -> str:
    """`net:HOST:PORT~shs:KEY` (net.address's one formatter)."""
    return str(Address(host, port, key))


def peer_source(name: str) -> PeerSource:
    """The schedule's class for a source name (`manual` and unknown names are `other`)."""
    try:
        return PeerSource(name)
    except ValueError:
        return PeerSource.OTHER
