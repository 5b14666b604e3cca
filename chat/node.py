"""The Node: the one facade the CLI and the UI call (docs/node-api.md).

It wires the identity, the Store, the replication manager (one EBT `Replicator`) and
the connections together, and turns their state into the records of `chat.views`.

What it decides itself (everything else is delegated):

- **Scope**: which feeds we replicate: our own, those within `config.hops` follows,
  peers met on the LAN when `auto_follow_lan` is on; never blocked or forked ones.
  It is recomputed whenever a contact message arrives.
- **Who may connect**: a key we block is refused at the handshake.
- **External appends**: another process (``treechat post``) may write our database;
  the node polls SQLite's ``data_version`` twice a second and hands what is new to the
  replicator, so it reaches peers within a second.
- **The status snapshot** (`chat.status`), rewritten every second.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import os
import re
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from chat import status as status_file
from chat.config import Config
from chat.content import (
    MAX_MENTIONS,
    ContentError,
    about,
    contact,
    make_post,
    open_private,
    parse_content,
    seal_private,
)
from chat.content import Post as PostContent
from chat.identity import Identity, load_or_create_identity, short_key
from chat.views import (
    ChannelInfo,
    Delivery,
    FeedTree,
    Health,
    LinkView,
    NodeEvent,
    PeerView,
    SyncProgress,
    TimelineEntry,
)
from net.address import parse_address
from net.discovery import Discovery, DiscoveryError, lan_addresses
from net.ebt import EbtConfig
from net.errors import HandshakeError
from net.peer import HANDSHAKE_TIMEOUT, PING_INTERVAL, PeerConnection
from net.policy import Audience, follows_of, may_fetch, may_share, mutuals_of
from net.replication import ReplicationManager
from net.schedule import (
    Dial,
    PeerSource,
    PeerState,
    PeerTable,
    ScheduleConfig,
    ScheduleRunner,
    explain,
)
from net.server import DialError, async_dial, async_listen, server_port
from store.db import PeerRow as StoredPeer
from store.db import Store
from store.message import Message, feed_ref, parse_feed_ref

log = logging.getLogger(__name__)

STATUS_INTERVAL = 1.0
STATUS_FEEDS = 1000  # per-feed rows per link in status.json (the totals count every feed)
EXTERNAL_POLL_INTERVAL = 0.5
NORMAL_BYES = frozenset({"goodbye", "shutting down", "replaced"})
BEHIND_RED = 1000  # a link this many messages behind shows as stalled-looking red
STOP_STEP_TIMEOUT = 5.0  # seconds each step of `Node.stop()` may take before it is cut short
CLOSE_WAIT = 1.0  # seconds a closed link's socket may take to flush its bye
_MENTION = re.compile(r"(?<![\w@])@(?:(?P<ref>[A-Za-z0-9+/]{43}=\.ed25519)|(?P<name>\w[\w.-]*))")
"""`@<base64 key>.ed25519` or `@name` in a post's text."""


class ListenError(OSError):
    """The node could not listen on its address (in use, not ours, no permission)."""


@dataclass(frozen=True, slots=True)
class NodeOptions:
    """Knobs tests and benchmarks turn; the defaults are what a user runs."""

    ebt: EbtConfig = field(default_factory=EbtConfig)
    ping_interval: float = PING_INTERVAL
    handshake_timeout: float = HANDSHAKE_TIMEOUT
    status_interval: float = STATUS_INTERVAL
    write_status: bool = True
    replicate_all: bool = False  # want the feed of every peer we link with (benchmarks, bots)
    schedule: bool = True  # run the gossip schedule (redial remembered peers, LAN, pubs)


class Node:
    """A running treechat node. Build with `await Node.open(config)`, then `start()`."""

    def __init__(
        self, config: Config, identity: Identity, store: Store, options: NodeOptions
    ) -> None:
        self.config = config
        self.identity = identity
        self.store = store
        self.options = options
        self.feed_id: bytes = identity.feed_id
        self.ref: str = identity.ref
        self.address: str | None = None
        self.started_at = time.time()
        self.manager: ReplicationManager | None = None
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._callbacks: list[Callable[[NodeEvent], None]] = []
        self._names: dict[bytes, str] = {}
        self._blocked: set[bytes] = set()
        self._forked: set[bytes] = set()
        self._wanted: set[bytes] = set()
        self._lan_follows: set[bytes] = set()
        self._follows: set[bytes] = set()
        self._mutuals: set[bytes] = set()
        self._read_marks: dict[str, int] = {}  # channel -> store arrival cursor (rowid)
        self._cursor = 0  # arrival cursor of the newest message a view may have shown
        self._addresses: dict[bytes, str] = {}
        self._sources: dict[bytes, str] = {}
        self._refusals: dict[str, str] = {}
        self._scope_dirty = False
        self._rate_prev: tuple[float, int, int] | None = None
        self._rates = (0.0, 0.0)
        self._peer_rates: dict[bytes, tuple[float, float]] = {}
        self._peer_prev: dict[bytes, tuple[int, int]] = {}
        self._byte_rates: dict[bytes, tuple[float, float]] = {}
        self._bytes_prev: dict[bytes, tuple[int, int, int]] = {}  # key -> (conn id, in, out)
        self._stopping = False
        self._stopped = asyncio.Event()
        self._status_write: asyncio.Future[None] | None = None
        # chat/pub.py: sees each incoming link first; True = it took the link (an invite).
        self.incoming_hook: Callable[[PeerConnection], Awaitable[bool]] | None = None
        self.schedule: ScheduleRunner | None = None
        self.discovery: Discovery | None = None

    # ------------------------------------------------------------------ lifecycle

    @classmethod
    async def open(cls, config: Config, options: NodeOptions | None = None) -> Node:
        """Open (creating on first run) the identity and the database; no network yet."""
        identity = load_or_create_identity(config.data_dir)
        store = await Store.open(config.database_path)
        node = cls(config, identity, store, options if options is not None else NodeOptions())
        try:
            await node._async_load()
        except BaseException:
            await store.close()
            raise
        return node

    async def _async_load(self) -> None:
        self._names = await self.store.names()
        self._blocked = await self.store.blocks(self.feed_id)
        self._forked = await self.store.forked_feeds()
        self._wanted = await self._async_scope()
        self._follows, self._mutuals = await self._async_access()
        local_clock = await self.store.clock()
        self._cursor = await self.store.post_cursor()
        await self.store.changed_externally()  # remember the current data_version
        self.manager = ReplicationManager(
            self.store,
            local_clock,
            self._wanted,
            config=self.options.ebt,
            shareable=self._shareable,
            on_stored=self._on_stored,
            on_error=self._on_peer_error,
        )
        for feed in self._blocked:
            self.manager.block(feed)

    async def start(self) -> None:
        """Listen, start replication, the external-append watcher and the status writer."""
        manager = self._manager()
        manager.start()
        listen = self.config.listen
        try:
            self._server = await async_listen(
                listen.host,
                listen.port,
                self.identity.signing_key,
                self._async_accepted,
                self.config.network_key,
                authorize=self._authorize,
                on_refused=self._on_refused,
                handshake_timeout=self.options.handshake_timeout,
            )
        except OSError as exc:
            why = os.strerror(exc.errno) if exc.errno else str(exc)  # asyncio wraps the words
            raise ListenError(f"cannot listen on {listen}: {why}") from exc
        port = server_port(self._server)
        public = self.config.public_address
        host, shown_port = (public.host, public.port) if public else (listen.host, port)
        self.address = f"net:{host}:{shown_port}~shs:{self._key_b64()}"
        self._spawn(self._async_watch_external(), "external-appends")
        self._spawn(self._async_status_loop(), "rates and status")
        if self.options.schedule:
            await self._async_start_schedule()
        if self.config.discovery:
            await self._async_start_discovery(port)
        log.info("listening at %s", self.address)

    async def _async_start_schedule(self) -> None:
        quotas = {
            name: getattr(self.config.quotas, name) for name in ("lan", "pub", "friend", "other")
        }
        table = PeerTable(ScheduleConfig().with_quotas(quotas))
        now = time.time()
        await self._async_load_peers(table)
        for key in self._blocked:
            table.block(key, now)
        self.schedule = ScheduleRunner(
            table,
            own_key=self.feed_id,
            dial=self._async_schedule_dial,
            hangup=self._schedule_hangup,
            on_change=lambda: self._emit(NodeEvent("peers")),
        )
        await self.schedule.async_start()

    async def _async_load_peers(self, table: PeerTable) -> bool:
        """Put the stored pubs and remembered peers into the schedule table.

        Rows already there with the same address are left alone (their backoff stays);
        returns whether a row was added or learned a new address.
        """
        now = time.time()
        found: list[tuple[bytes, str, str, bool]] = []
        for pub in await self.store.pubs():
            found.append((pub.key, _address(pub.host, pub.port, pub.key), "pub", False))
        for stored in await self.store.peers():
            if stored.address:
                found.append((stored.key, stored.address, stored.source, stored.permanent))
        changed = False
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
            source = _source(source_name)
            table.add(key, at, source, now, permanent=permanent)
            self._addresses.setdefault(key, address)
            self._sources.setdefault(key, source.value)
            changed = True
        return changed

    async def _async_start_discovery(self, port: int) -> None:
        interfaces = lan_addresses() if self.config.all_interfaces else list(self.config.interfaces)
        try:
            self.discovery = Discovery(
                self.feed_id,
                port,
                self.config.network_key,
                interfaces=interfaces,
                on_found=self._on_lan_found,
                on_lost=self._on_lan_lost,
            )
            await self.discovery.async_start()
        except (DiscoveryError, ValueError, OSError) as exc:
            self.discovery = None
            log.warning("LAN discovery is off: %s", exc)
            self._emit(NodeEvent("error", f"LAN discovery is off: {exc}"))

    def _on_lan_found(self, key: bytes, host: str, port: int) -> None:
        if key in self._blocked or key == self.feed_id or self._stopping:
            return
        self._sources[key] = "lan"
        self._addresses[key] = _address(host, port, key)
        if self.config.auto_follow_lan and key not in self._lan_follows:
            # Whoever dials first, a LAN peer's feed is replicated once it is seen.
            self._lan_follows.add(key)
            self._scope_dirty = True
            self._spawn(self._async_refresh_scope(), "scope")
        if self.schedule is not None:
            self.schedule.table.seen_on_lan(key, (host, port), time.time())
            self.schedule.poke()

    def _on_lan_lost(self, key: bytes) -> None:
        if self.schedule is not None:
            self.schedule.table.vanished(key, time.time())

    async def _async_schedule_dial(self, decision: Dial) -> None:
        host, port = decision.address
        source = self._sources.get(decision.key, decision.source.value)  # keeps "manual"
        await self._async_dial(_address(host, port, decision.key), source)

    def _schedule_hangup(self, key: bytes, reason: str) -> None:
        self._manager().hangup(key, reason)  # notes and acks held back go out before the bye

    def remember_peer(self, address: str, *, source: str = "other") -> None:
        """Keep a link to `address` (redialled with backoff); needs the schedule."""
        parsed = parse_address(address)
        self._addresses[parsed.key] = address
        self._sources.setdefault(parsed.key, source)
        if self.schedule is not None:
            self.schedule.table.add(
                parsed.key,
                (parsed.host, parsed.port),
                _source(source),
                time.time(),
                permanent=True,
            )
            self.schedule.poke()

    async def stop(self) -> None:
        """Close every link (saying bye), save the peer records, close the database.

        Bounded: each step gets `STOP_STEP_TIMEOUT` seconds (the goodbyes of mDNS, the
        byes and the last writes are best effort); a step that overruns is logged and
        cancelled, and the database is closed all the same. Every task the node
        started is cancelled and awaited, so none outlives the node.
        """
        if self._stopping:  # a second caller waits for the first to finish
            await self._stopped.wait()
            return
        self._stopping = True
        try:
            await self._async_stop()
        finally:
            self._stopped.set()

    async def _async_stop(self) -> None:
        if self._server is not None:
            self._server.close()
        if self.schedule is not None:
            await _async_bounded(self.schedule.async_stop(), "the gossip schedule")
        if self.discovery is not None:
            await _async_bounded(self.discovery.async_stop(), "LAN discovery")
        if self.manager is not None:
            # Says bye on every link, then writes what is queued (up to 20,000 messages
            # to validate: more time) and the peer records.
            await _async_bounded(
                self.manager.async_stop(), "the replication manager", 3 * STOP_STEP_TIMEOUT
            )
        await _async_end_tasks(self._tasks, "node")
        if self._server is not None:
            await _async_bounded(self._server.wait_closed(), "the listening socket", 2.0)
        write = self._status_write
        if write is not None:  # a thread that would rewrite the file after us
            await asyncio.wait({write}, timeout=STOP_STEP_TIMEOUT)
            if write.done() and not write.cancelled() and write.exception() is not None:
                log.warning("the last status write failed: %s", write.exception())
        if self.options.write_status:
            status_file.remove_status(self.config.data_dir)
        await _async_bounded(self.store.close(), "closing the database", 2 * STOP_STEP_TIMEOUT)

    def _manager(self) -> ReplicationManager:
        if self.manager is None:
            raise RuntimeError("the node is not open")
        return self.manager

    def _spawn(self, coro: Any, name: str) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _key_b64(self) -> str:
        return self.ref[1 : -len(".ed25519")]

    # ------------------------------------------------------------------ connections

    def _authorize(self, key: bytes) -> bool:
        """Who may complete a handshake with us: never a blocked key; `config.hear`."""
        if key in self._blocked or key == self.feed_id:
            return False
        return may_fetch(key, self.config.hear, self._follows, self._mutuals, self._blocked)

    def _on_refused(self, where: str, error: HandshakeError) -> None:
        self._refusals[where] = str(error)
        self._emit(NodeEvent("error", f"refused a connection from {where}: {error}"))

    async def _async_accepted(self, conn: PeerConnection) -> None:
        task = asyncio.current_task()
        if task is not None:  # so stop() can end links that dialled us
            self._tasks.add(task)
        try:
            if self._stopping:  # its handshake finished after stop() began
                conn.close("shutting down")
                return
            if self.incoming_hook is not None and await self.incoming_hook(conn):
                return
            self._sources.setdefault(conn.remote, "other")
            if self.schedule is not None:
                # A second link from a linked key replaces the first (the schedule hangs
                # the old one up); a simultaneous dial keeps the smaller key's link.
                keep, link = self.schedule.incoming(conn.remote, _source(self._source_of(conn)))
                if not keep:
                    conn.close("too many links; try again later")
                    return
                conn.schedule_link = link
            await self._async_run_connection(conn)
        finally:
            if task is not None:
                self._tasks.discard(task)

    def _source_of(self, conn: PeerConnection) -> str:
        source = self._sources.get(conn.remote, "other")
        if source == "other" and conn.remote in self._wanted:
            return "friend"
        return source

    async def connect(self, address: str, *, source: str = "manual") -> None:
        """Dial `address` (net:HOST:PORT~shs:KEY); returns once the link is up.

        Raises `ValueError` for a bad address and `DialError` naming the failed step.
        The peer is remembered: the schedule redials it when the link drops.
        """
        parsed = parse_address(address)
        schedule = self.schedule
        if schedule is not None and parsed.key != self.feed_id:
            table = schedule.table
            now = time.time()
            table.add(parsed.key, (parsed.host, parsed.port), _source(source), now, permanent=True)
            row = table.row(parsed.key)
            if row.state is not PeerState.CONNECTING:
                if row.state is PeerState.CONNECTED:
                    row.state = PeerState.IDLE  # a manual redial replaces the link
                table.on_dial_started(parsed.key, now)
            try:
                await self._async_dial(address, source)
            except Exception as exc:
                table.on_failed(parsed.key, time.time(), str(exc))
                raise
            table.on_connected(parsed.key, time.time())
            await self._async_save_peer(parsed.key, address, source)
            return
        await self._async_dial(address, source)

    async def _async_save_peer(self, key: bytes, address: str, source: str) -> None:
        try:
            await self.store.save_peer(
                StoredPeer(key=key, address=address, source=_source(source).value, permanent=True)
            )
        except Exception:  # remembering is a convenience; the link is up either way
            log.exception("could not remember the address of %s", feed_ref(key))

    async def _async_dial(self, address: str, source: str) -> None:
        parsed = parse_address(address)
        if parsed.key == self.feed_id:
            raise ValueError("that address is this node itself")
        if parsed.key in self._blocked:
            raise ValueError(f"{feed_ref(parsed.key)} is blocked; unblock it first")
        self._addresses[parsed.key] = address
        self._sources[parsed.key] = source
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
            self._manager().record_error(parsed.key, str(exc))
            raise
        if self._stopping:  # stop() began while we dialled: no new link now
            conn.close("shutting down")
            raise DialError("connect", address, "this node is stopping")
        conn.ping_interval = self.options.ping_interval
        ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        task = self._spawn(self._async_run_connection(conn, ready), "connection")
        # A task cancelled (by stop()) before its first step never sets `ready`.
        await asyncio.wait({ready, task}, return_when=asyncio.FIRST_COMPLETED)
        if not ready.done():
            conn.close("shutting down")
            raise DialError("connect", address, "this node is stopping")

    async def _async_run_connection(
        self, conn: PeerConnection, ready: asyncio.Future[None] | None = None
    ) -> None:
        manager = self._manager()
        conn.ping_interval = self.options.ping_interval
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
        self._emit(NodeEvent("peers", f"connected to {self.display_name(conn.remote)}"))
        if self.options.replicate_all or (
            self.config.auto_follow_lan and self._sources.get(conn.remote) == "lan"
        ):
            self._lan_follows.add(conn.remote)
            self._scope_dirty = True
            await self._async_refresh_scope()
        error: str | None = None
        try:
            error = await conn.async_run(manager)
        except Exception as exc:  # never let one link take the node down
            log.exception("link to %s failed", feed_ref(conn.remote))
            error = f"internal error: {exc}"
            conn.close("internal error")
        if error is None and conn.bye_reason is not None and conn.bye_reason not in NORMAL_BYES:
            error = f"it closed the connection: {conn.bye_reason}"
        await manager.async_detach(conn, error)
        if self.schedule is not None and manager.session(conn.remote) is None:
            row = self.schedule.table.get(conn.remote)
            # Report only the link the table holds: a replaced link's close is stale.
            if row is not None and (conn.initiator != row.incoming):
                link = conn.schedule_link if not conn.initiator else None
                self.schedule.closed(conn.remote, error or conn.bye_reason or "", link=link)
        try:  # a peer that stopped reading must not hold this task (and stop()) forever
            await asyncio.wait_for(conn.async_wait_closed(), CLOSE_WAIT)
        except TimeoutError:
            log.info("the link to %s did not close in time", feed_ref(conn.remote))
        self._emit(NodeEvent("peers", f"disconnected from {self.display_name(conn.remote)}"))

    # ------------------------------------------------------------------ scope

    async def _async_scope(self) -> set[bytes]:
        hops = await self.store.hops(self.feed_id, self.config.hops)
        wanted = set(hops) | self._lan_follows | {self.feed_id}
        return wanted - self._blocked - self._forked

    async def _async_refresh_scope(self) -> None:
        if not self._scope_dirty or self.manager is None:
            return
        self._scope_dirty = False
        self._blocked = await self.store.blocks(self.feed_id)
        self._forked = await self.store.forked_feeds()
        told_before = self._told_peers()
        self._follows, self._mutuals = await self._async_access()
        if self._told_peers() != told_before and self.feed_id in self._wanted:
            # Who may have our own feed changed (config.tell): offer it again so peers
            # that were answered -1 learn it is theirs now (and the others lose it).
            self.manager.unwant(self.feed_id)
            self.manager.want(self.feed_id)
        wanted = await self._async_scope()
        for feed in wanted - self._wanted:
            self.manager.want(feed)
        for feed in self._wanted - wanted:
            if feed in self._blocked:
                self.manager.block(feed)
            else:
                self.manager.unwant(feed)
        self._wanted = wanted

    async def _async_access(self) -> tuple[set[bytes], set[bytes]]:
        """The keys we follow and our mutual follows (for `config.tell`)."""
        graph: dict[bytes, set[bytes]] = {}
        for edge in await self.store.contacts():
            if edge.following:
                graph.setdefault(edge.author, set()).add(edge.contact)
        return follows_of(self.feed_id, graph), mutuals_of(self.feed_id, graph)

    def _told_peers(self) -> frozenset[bytes]:
        if self.config.tell is Audience.ANYBODY:
            return frozenset()
        return frozenset(self._mutuals if self.config.tell is Audience.MUTUALS else self._follows)

    def _shareable(self, peer: Any, feed: bytes) -> bool:
        """The EBT core's hook: blocked keys get nothing, our own feed follows `tell`."""
        if not isinstance(peer, bytes):
            return True
        return may_share(
            peer,
            feed,
            own=self.feed_id,
            tell=self.config.tell,
            follows=self._follows,
            mutuals=self._mutuals,
            blocks=self._blocked,
        )

    def _on_stored(self, messages: list[Message]) -> None:
        channels: set[str] = set()
        for message in messages:
            content = message.content
            if not isinstance(content, dict):
                continue
            kind = content.get("type")
            if kind == "post":
                channel = content.get("channel")
                if isinstance(channel, str):
                    channels.add(channel)
            elif kind == "about":
                name = content.get("name")
                if isinstance(name, str):
                    self._names[message.author] = name
            elif kind == "contact":
                self._scope_dirty = True
        if self._scope_dirty:
            self._spawn(self._async_refresh_scope(), "scope")
        if not self._stopping:
            self._spawn(self._async_note_arrivals(), "arrival cursor")
        if self.schedule is not None:
            self.schedule.note_new_message()
        self._emit(NodeEvent("messages", f"{len(messages)} new", tuple(sorted(channels))))

    def _on_peer_error(self, key: bytes, error: str) -> None:
        self._emit(NodeEvent("error", f"{self.display_name(key)}: {error}"))

    async def _async_watch_external(self) -> None:
        """Notice commits of other processes (``treechat post``) within a second."""
        while True:
            await asyncio.sleep(EXTERNAL_POLL_INTERVAL)
            try:
                if await self.store.changed_externally():
                    self._scope_dirty = True
                    await self._async_refresh_scope()
                    self._names = await self.store.names()
                    if self.schedule is not None and await self._async_load_peers(
                        self.schedule.table
                    ):
                        # e.g. `treechat join` remembered a pub: dial it now.
                        self.schedule.poke()
                        self._emit(NodeEvent("peers", "peers remembered by another process"))
                    added = await self._manager().async_catch_up_store()
                    if added:
                        self._emit(NodeEvent("messages", f"{added} new (another process)"))
            except Exception:
                log.exception("checking for messages written by another process failed")

    def _local_appended(self, message: Message) -> None:
        self._manager().local_messages([message])
        self._on_stored([message])

    # ------------------------------------------------------------------ chat

    async def post(self, text: str, channel: str, reply_to: bytes | None = None) -> TimelineEntry:
        """Append a post; `@name` and `@<key>.ed25519` in the text become its `mentions`."""
        content = make_post(text, channel, reply_to, self.find_mentions(text))
        message = await self.store.append_own(self.identity.signing_key, content.to_content())
        self._local_appended(message)
        return self._entry(message, content)

    async def set_name(self, name: str) -> None:
        message = await self.store.append_own(self.identity.signing_key, about(name))
        self._local_appended(message)

    async def follow(self, feed: bytes) -> None:
        await self._async_contact(feed, following=True)

    async def unfollow(self, feed: bytes) -> None:
        await self._async_contact(feed, following=False)

    async def block(self, feed: bytes) -> None:
        await self._async_contact(feed, blocking=True)
        self._blocked.add(feed)
        self._manager().block(feed)
        if self.schedule is not None:
            self.schedule.table.block(feed, time.time())

    async def unblock(self, feed: bytes) -> None:
        await self._async_contact(feed, blocking=False)
        self._blocked.discard(feed)
        if self.schedule is not None:
            self.schedule.table.unblock(feed, time.time())

    async def _async_contact(
        self, feed: bytes, *, following: bool | None = None, blocking: bool | None = None
    ) -> None:
        if feed == self.feed_id:
            raise ValueError("you cannot follow or block yourself")
        content = contact(feed, following=following, blocking=blocking)
        message = await self.store.append_own(self.identity.signing_key, content)
        self._local_appended(message)
        self._scope_dirty = True
        await self._async_refresh_scope()

    async def send_private(self, recipients: list[bytes], text: str) -> None:
        inner = make_post(text, "private").to_content()
        box = seal_private(inner, recipients, self.feed_id)
        message = await self.store.append_own(self.identity.signing_key, box)
        self._local_appended(message)

    async def timeline(
        self, channel: str, before: int | None = None, limit: int = 100
    ) -> list[TimelineEntry]:
        await self._async_refresh_cursor()
        posts = await self.store.timeline(channel, before, limit)
        entries = []
        for stored in posts:
            try:
                parsed = parse_content(stored.message.content)
            except ContentError:
                continue
            if isinstance(parsed, PostContent):
                entries.append(self._entry(stored.message, parsed))
        return entries

    async def private_timeline(self, limit: int = 500) -> list[TimelineEntry]:
        """The newest `limit` private messages we can open (written by us or sealed to
        us), by arrival; returned oldest to newest."""
        entries: list[TimelineEntry] = []
        before: int | None = None
        while len(entries) < limit:
            page = await self.store.private_messages_before(before, max(limit, 100))
            if not page:
                break
            for cursor, message in page:
                before = cursor
                entry = self._private_entry(message)
                if entry is not None:
                    entries.append(entry)
                    if len(entries) == limit:
                        break
        entries.reverse()
        return entries

    def _private_entry(self, message: Message) -> TimelineEntry | None:
        assert isinstance(message.content, bytes)
        opened = open_private(message.content, self.identity, message.author)
        if opened is None:
            return None
        text = opened.content.get("text")
        if not isinstance(text, str):
            return None
        return TimelineEntry(
            msg_id=message.id,
            author=message.author,
            seq=message.seq,
            timestamp=message.timestamp,
            channel="private",
            text=text,
            author_name=self.display_name(message.author),
            private=True,
            recipients=opened.recipients,
        )

    def _entry(self, message: Message, content: PostContent) -> TimelineEntry:
        name = self._names.get(message.author)
        collision = name is not None and self._name_clash(message.author, name)
        return TimelineEntry(
            msg_id=message.id,
            author=message.author,
            seq=message.seq,
            timestamp=message.timestamp,
            channel=content.channel,
            text=content.text,
            author_name=self.display_name(message.author),
            name_collision=collision,
            reply_to=content.reply_to,
            mentions=content.mentions,
        )

    async def channels(self) -> list[ChannelInfo]:
        """Channels with their unread posts and unread mentions of us.

        Unread is by arrival order (the store's rowid), not by the authors' clocks: a late
        arrival with an old timestamp is unread, a future-dated post is read once seen.
        """
        await self._async_refresh_cursor()
        infos = []
        for stat in await self.store.channels():
            mark = self._read_marks.get(stat.name)
            unread = (
                stat.posts if mark is None else await self.store.count_posts_since(stat.name, mark)
            )
            mentions = await self._async_count_mentions(stat.name, mark or 0) if unread else 0
            infos.append(ChannelInfo(stat.name, unread, stat.last_timestamp or 0, mentions))
        return infos

    async def _async_count_mentions(self, channel: str, cursor: int) -> int:
        count = 0
        for message in await self.store.posts_since_containing(channel, cursor, self.feed_id):
            if message.author == self.feed_id:
                continue
            with contextlib.suppress(ContentError):
                parsed = parse_content(message.content)
                if isinstance(parsed, PostContent) and self.feed_id in parsed.mentions:
                    count += 1
        return count

    def mark_read(self, channel: str) -> None:
        """Posts of `channel` that arrived before the last `channels()` / `timeline()` call
        (or that the node stored itself since) are read."""
        self._read_marks[channel] = self._cursor

    async def _async_refresh_cursor(self) -> None:
        self._cursor = max(self._cursor, await self.store.post_cursor())

    async def _async_note_arrivals(self) -> None:
        try:
            await self._async_refresh_cursor()
        except Exception:  # the next view refreshes it anyway
            log.debug("reading the arrival cursor failed", exc_info=True)

    def resolve_name(self, name_or_ref: str) -> bytes:
        text = (
            name_or_ref.strip().lstrip("@")
            if not name_or_ref.strip().endswith(".ed25519")
            else name_or_ref.strip()
        )
        if text.endswith(".ed25519") or len(text) == 44:
            with contextlib.suppress(ValueError):
                return parse_feed_ref(text)
        matches = [feed for feed, name in self._names.items() if name == text]
        if not matches:
            matches = [feed for feed in self._names if short_key(feed) == text]
        if len(matches) == 1:
            return matches[0]
        if not matches:
            raise ValueError(f"nobody called {text!r} is known")
        raise ValueError(f"{len(matches)} people are called {text!r}; use their key")

    def find_mentions(self, text: str) -> list[bytes]:
        """The feeds a text names: `@<base64>.ed25519` refs, and `@name` where exactly one
        feed uses that name (an exact match first, then ignoring case)."""
        found: list[bytes] = []
        for match in _MENTION.finditer(text):
            ref, word = match.group("ref"), match.group("name")
            if ref is not None:
                with contextlib.suppress(ValueError):
                    found.append(parse_feed_ref("@" + ref))
                continue
            word = word.rstrip(".-")
            exact = [feed for feed, name in self._names.items() if name == word]
            folded = [feed for feed, name in self._names.items() if name.lower() == word.lower()]
            matches = exact or folded
            if len(matches) == 1:
                found.append(matches[0])
        return list(dict.fromkeys(found))[:MAX_MENTIONS]

    def display_name(self, feed: bytes) -> str:
        """The feed's chosen name; with its key suffix only while another feed uses the
        same name (or just the short key if it has none)."""
        name = self._names.get(feed)
        if not name:
            return short_key(feed)
        if self._name_clash(feed, name):
            return f"{name} ({short_key(feed)})"
        return name

    def _name_clash(self, feed: bytes, name: str) -> bool:
        return any(n == name and f != feed for f, n in self._names.items())

    def known_names(self) -> list[str]:
        return sorted(set(self._names.values()))

    async def provenance(self, msg_id: bytes) -> Delivery | None:
        record = await self.store.delivery(msg_id)
        if record is None:
            return None
        peer_name = self.display_name(record.peer) if record.peer is not None else None
        return Delivery(msg_id, record.peer, peer_name, record.received_at)

    async def join(self, invite: str) -> None:
        """Redeem a pub invite (chat/pub.py); raises `JoinError(step, reason)` or ValueError."""
        from chat.pub import async_join  # chat.pub imports this module

        await async_join(self, invite)

    # ------------------------------------------------------------------ views

    def subscribe(self, callback: Callable[[NodeEvent], None]) -> Callable[[], None]:
        self._callbacks.append(callback)

        def unsubscribe() -> None:
            with contextlib.suppress(ValueError):
                self._callbacks.remove(callback)

        return unsubscribe

    def _emit(self, event: NodeEvent) -> None:
        for callback in list(self._callbacks):
            try:
                callback(event)
            except Exception:
                log.exception("a subscriber failed on %s", event.kind)

    def peers(self) -> list[PeerView]:
        """One row per peer we know of; state and reason come from the schedule's table."""
        manager = self._manager()
        sessions = manager.sessions()
        table = self.schedule.table if self.schedule is not None else None
        reasons = (
            explain(table, time.time(), self.schedule.downloading)
            if table is not None and self.schedule is not None
            else {}
        )
        keys = list(
            dict.fromkeys(
                [
                    *sessions,
                    *(row.key for row in (table or ())),
                    *manager.peer_stats,
                    *self._addresses,
                ]
            )
        )
        views = []
        for key in keys:
            if key == self.feed_id:
                continue
            conn = sessions.get(key)
            stats = manager.peer_stats.get(key)
            error = stats.last_error if stats is not None else None
            row = table.get(key) if table is not None else None
            if row is not None and not (conn is not None and row.state is not PeerState.CONNECTED):
                state, reason = row.state.value, reasons.get(key, "")
            elif conn is not None:  # linked, the table not told yet (or no schedule)
                state = "connected"
                reason = "connected (incoming)" if not conn.initiator else "connected"
            else:
                state, reason = "idle", error or "not connected"
            source = self._sources.get(key) or (row.source.value if row is not None else "other")
            address = self._addresses.get(key) or getattr(conn, "address", None)
            views.append(
                PeerView(
                    key=key,
                    name=self._names.get(key, ""),
                    short_key=short_key(key),
                    source=source,
                    state=state,
                    reason=reason,
                    address=address,
                    rtt_ms=getattr(conn, "rtt_ms", None),
                    direction=getattr(conn, "direction", None),
                )
            )
        return views

    def links(self) -> list[LinkView]:
        manager = self._manager()
        views = []
        for key, conn in manager.sessions().items():
            counts = link_counts(manager.replicator.link(key))
            rate_in, rate_out = self._peer_rates.get(key, (0.0, 0.0))
            bytes_in, bytes_out = self._byte_rates.get(key, (0.0, 0.0))
            health = Health.IN_SYNC
            if counts.we_are_behind or counts.they_are_behind:
                health = Health.CATCHING_UP
            if counts.we_are_behind >= BEHIND_RED and rate_in == 0.0:
                health = Health.STALLED
            views.append(
                LinkView(
                    peer=key,
                    name=self.display_name(key),
                    eager_in=counts.eager_in,
                    eager_out=counts.eager_out,
                    lazy=counts.lazy,
                    we_are_behind=counts.we_are_behind,
                    they_are_behind=counts.they_are_behind,
                    msgs_per_s_in=rate_in,
                    msgs_per_s_out=rate_out,
                    bytes_per_s_in=bytes_in,
                    bytes_per_s_out=bytes_out,
                    rtt_ms=getattr(conn, "rtt_ms", None),
                    health=health,
                )
            )
        return views

    def feed_tree(self, feed: bytes) -> FeedTree:
        manager = self._manager()
        replicator = manager.replicator
        targets: list[bytes] = []
        lazy: list[bytes] = []
        for key in manager.sessions():
            state = replicator.link(key).get(feed)
            if state is None:
                continue
            if _flag(state, "tx"):
                targets.append(key)
            elif not _flag(state, "rx"):
                lazy.append(key)
        source = replicator.eager_source(feed)
        return FeedTree(
            feed=feed,
            name=self.display_name(feed),
            local_seq=replicator.local_clock.get(feed, 0),
            eager_source=source if isinstance(source, bytes) else None,
            eager_targets=tuple(targets),
            lazy_peers=tuple(lazy),
            forked=feed in self._forked or feed in manager.forked,
        )

    def feeds(self) -> list[FeedTree]:
        return [self.feed_tree(feed) for feed in sorted(self._wanted)]

    def sync_progress(self) -> SyncProgress:
        manager = self._manager()
        local = manager.replicator.local_clock
        have = sum(local.get(feed, 0) for feed in self._wanted)
        best = {feed: local.get(feed, 0) for feed in self._wanted}
        for key in manager.sessions():
            for feed, state in manager.replicator.link(key).items():
                if feed in best:
                    best[feed] = max(best[feed], _remote_seq(state))
        known = sum(best.values())
        health = Health.IN_SYNC if known <= have else Health.CATCHING_UP
        return SyncProgress(have=have, known=known, feeds=len(self._wanted), health=health)

    # ------------------------------------------------------------------ status

    def status_snapshot(self) -> dict[str, Any]:
        """What `treechat status` shows; also what the benchmarks read."""
        manager = self._manager()
        now = time.time()
        counters = manager.counters.as_dict()
        local = manager.replicator.local_clock
        sessions = manager.sessions()
        peers = []
        link_by_key = {view.peer: view for view in self.links()}
        for view in self.peers():
            link = link_by_key.get(view.key)
            stats = manager.peer_stats.get(view.key)
            peers.append(
                {
                    "key": feed_ref(view.key),
                    "name": view.name,
                    "address": view.address,
                    "source": view.source,
                    "direction": view.direction,
                    "state": view.state,
                    "reason": view.reason,
                    "rtt_ms": None if view.rtt_ms is None else round(view.rtt_ms, 2),
                    "eager_in": link.eager_in if link else None,
                    "eager_out": link.eager_out if link else None,
                    "lazy": link.lazy if link else None,
                    "we_are_behind": link.we_are_behind if link else None,
                    "they_are_behind": link.they_are_behind if link else None,
                    "msgs_in": stats.msgs_in if stats else 0,
                    "msgs_out": stats.msgs_out if stats else 0,
                    "msgs_per_s_in": round(link.msgs_per_s_in, 1) if link else 0.0,
                    "msgs_per_s_out": round(link.msgs_per_s_out, 1) if link else 0.0,
                    "bytes_per_s_in": round(link.bytes_per_s_in) if link else 0,
                    "bytes_per_s_out": round(link.bytes_per_s_out) if link else 0,
                    "connected": view.key in sessions,
                    "connected_since": stats.connected_since if stats else None,
                    "last_error": stats.last_error if stats else None,
                    "feeds": self._feed_rows(view.key) if view.key in sessions else [],
                }
            )
        return {
            "version": status_file.STATUS_VERSION,
            "pid": _pid(),
            "updated_at": now,
            "started_at": self.started_at,
            "feed_id": self.ref,
            "address": self.address,
            "feeds": len(local),
            "messages": sum(local.values()),
            "wanted_feeds": len(self._wanted),
            "peers": peers,
            "refused": dict(list(self._refusals.items())[-20:]),
            "counters": counters,
            "timing": {
                "first_connected_at": manager.first_connected_at,
                "last_stored_at": manager.last_stored_at,
            },
            "rates": {
                "msgs_per_s_in": round(self._rates[0], 1),
                "msgs_per_s_out": round(self._rates[1], 1),
            },
        }

    def _feed_rows(self, key: bytes) -> list[dict[str, Any]]:
        """Per feed of one link: eager or lazy in each direction and who lacks what."""
        rows = []
        for feed, state in sorted(self._manager().replicator.link(key).items())[:STATUS_FEEDS]:
            remote, local = _remote_seq(state), _local_seq(state)
            replicating = remote >= 0 or getattr(state, "remote_seq", None) is None
            rows.append(
                {
                    "feed": feed_ref(feed),
                    "name": self._names.get(feed, ""),
                    "in": "eager" if _flag(state, "rx") else "lazy",
                    "out": ("eager" if _flag(state, "tx") else "lazy") if replicating else "none",
                    "local_seq": local,
                    "remote_seq": remote if remote >= 0 else None,
                    "we_lack": max(0, remote - local),
                    "they_lack": max(0, local - remote) if remote >= 0 else None,
                }
            )
        return rows

    def _update_rates(self) -> None:
        manager = self._manager()
        now = time.monotonic()
        received = manager.counters.msgs_received
        sent = manager.counters.msgs_sent
        if self._rate_prev is not None:
            then, was_in, was_out = self._rate_prev
            span = max(now - then, 1e-6)
            self._rates = ((received - was_in) / span, (sent - was_out) / span)
            for key, stats in manager.peer_stats.items():
                prev_in, prev_out = self._peer_prev.get(key, (stats.msgs_in, stats.msgs_out))
                self._peer_rates[key] = (
                    (stats.msgs_in - prev_in) / span,
                    (stats.msgs_out - prev_out) / span,
                )
            for key, conn in manager.sessions().items():
                was = self._bytes_prev.get(key)
                now_in, now_out = _byte_counts(conn)
                if was is not None and was[0] == id(conn):
                    self._byte_rates[key] = (
                        max(0, now_in - was[1]) / span,
                        max(0, now_out - was[2]) / span,
                    )
                else:
                    self._byte_rates.pop(key, None)
        self._bytes_prev = {
            key: (id(conn), *_byte_counts(conn)) for key, conn in manager.sessions().items()
        }
        self._rate_prev = (now, received, sent)
        self._peer_prev = {
            key: (stats.msgs_in, stats.msgs_out) for key, stats in manager.peer_stats.items()
        }

    async def _async_status_loop(self) -> None:
        while True:
            try:
                self._update_rates()
                if self.options.write_status:
                    snapshot = self.status_snapshot()
                    # Cancelling cannot stop the thread: stop() waits for this write
                    # before it removes the file.
                    self._status_write = asyncio.ensure_future(
                        asyncio.to_thread(status_file.write_status, self.config.data_dir, snapshot)
                    )
                    await asyncio.shield(self._status_write)
            except Exception:
                log.exception("writing the status snapshot failed")
            await asyncio.sleep(self.options.status_interval)


# ---------------------------------------------------------------------- stopping


async def _async_bounded(step: Awaitable[Any], what: str, limit: float = STOP_STEP_TIMEOUT) -> None:
    """Run one step of stopping for at most `limit` seconds; log and go on if it fails.

    Not `asyncio.wait_for`: that waits for the cancelled step to finish, and a step
    that swallows its cancellation would hang us after all.
    """
    task = asyncio.ensure_future(step)
    try:
        done, _ = await asyncio.wait({task}, timeout=limit)
    except BaseException:
        task.cancel()
        raise
    if not done:
        log.warning("stopping: %s did not finish within %.0f s; going on", what, limit)
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=CLOSE_WAIT)
        if not done:
            log.warning("stopping: %s ignores cancellation; left behind", what)
        return
    if not task.cancelled() and task.exception() is not None:
        log.warning("stopping: %s failed", what, exc_info=task.exception())


async def _async_end_tasks(
    tasks: set[asyncio.Task[Any]], owner: str, limit: float = STOP_STEP_TIMEOUT
) -> None:
    """Cancel `tasks` (a live set: tasks started meanwhile are ended too) and await them."""
    deadline = time.monotonic() + limit
    while True:
        pending = {task for task in tasks if not task.done()}
        if not pending:
            return
        left = deadline - time.monotonic()
        if left <= 0:
            names = ", ".join(sorted(task.get_name() for task in pending))
            log.warning("stopping: %s tasks still running after %.0f s: %s", owner, limit, names)
            return
        for task in pending:
            task.cancel()
        await asyncio.wait(pending, timeout=min(left, CLOSE_WAIT))


# ---------------------------------------------------------------------- link helpers


@dataclass(frozen=True, slots=True)
class LinkCounts:
    """Per-link totals over all feeds."""

    eager_in: int
    eager_out: int
    lazy: int
    we_are_behind: int
    they_are_behind: int


def _flag(state: Any, name: str) -> bool:
    return bool(getattr(state, name, False))


def _remote_seq(state: Any) -> int:
    value = getattr(state, "remote_seq", None)
    return int(value) if isinstance(value, int) else -1


def _local_seq(state: Any) -> int:
    value = getattr(state, "local_seq", None)
    return int(value) if isinstance(value, int) else 0


def link_counts(link: Any) -> LinkCounts:
    """Eager/lazy counts and behind totals of one peer's per-feed link states."""
    eager_in = eager_out = lazy = we_behind = they_behind = 0
    states: Iterable[Any] = link.values() if hasattr(link, "values") else ()
    for state in states:
        rx, tx = _flag(state, "rx"), _flag(state, "tx")
        remote, local = _remote_seq(state), _local_seq(state)
        eager_in += rx
        eager_out += tx
        if not rx and not tx and remote >= 0:
            lazy += 1
        if remote >= 0:
            we_behind += max(0, remote - local)
            they_behind += max(0, local - remote)
    return LinkCounts(eager_in, eager_out, lazy, we_behind, they_behind)


def _byte_counts(conn: Any) -> tuple[int, int]:
    """Bytes received and sent on a connection (its own counters, socket level)."""
    return int(getattr(conn, "bytes_in", 0)), int(getattr(conn, "bytes_out", 0))


def _address(host: str, port: int, key: bytes) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"net:{shown}:{port}~shs:{base64.b64encode(key).decode('ascii')}"


def _source(name: str) -> PeerSource:
    try:
        return PeerSource(name)
    except ValueError:
        return PeerSource.OTHER


def _pid() -> int:
    return os.getpid()


__all__ = ["Node", "NodeOptions", "link_counts"]
