"""The Node: the one facade the CLI and the UI call (docs/node-api.md).

It opens the identity and the Store, builds the replication manager (one EBT
`Replicator`) and wires the rooms that do the work, each in its own module:

- `chat.connections`: listening, dialling, accepting, the gossip schedule, LAN discovery;
- `chat.scope`: which feeds we replicate, who may connect, what we share with whom;
- `chat.names`: display names and mentions; `chat.writing`: appends to our feed;
- `chat.reading`: timelines, the private view, unread counts, provenance;
- `chat.network_views`: peers, links, feed trees, sync progress, rates, status file;
- `chat.joining`: redeeming a pub invite; `chat.tasks`: the bounded task group;
- `chat.history`: per feed history settings (persisted) and older messages on demand;
- `chat.ephemeral`: presence, typing and whispers beside the feeds (`node.ephemeral`).

What the facade itself does is the glue: a stored message updates names, scope and
the read cursor; another process (``treechat post``) may write our database, so the
node polls SQLite's ``data_version`` twice a second and hands what is new to the
replicator, so it reaches peers within a second.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any

from chat.config import Config
from chat.connections import Connections
from chat.doctor import Finding, run_checks
from chat.ephemeral import EphemeralRoom
from chat.errors import ListenError
from chat.events import EventBus
from chat.history import History
from chat.identity import Identity, load_or_create_identity
from chat.joining import async_join
from chat.names import Names
from chat.network_views import NetworkViews
from chat.options import NodeOptions
from chat.reading import Reader
from chat.scope import Scope
from chat.tasks import STOP_STEP_TIMEOUT, TaskGroup, async_bounded
from chat.views import (
    ChannelInfo,
    ConversationInfo,
    Delivery,
    FeedTree,
    HistorySetting,
    LinkView,
    NodeEvent,
    OlderHistory,
    PeerView,
    Relation,
    SearchHit,
    SyncProgress,
    TimelineEntry,
)
from chat.writing import Writer
from net.address import parse_address
from net.discovery import Discovery
from net.peer import PeerConnection
from net.ranges import HistoryView, RangeConfig
from net.replication import ReplicationManager
from net.schedule import ScheduleRunner
from store.db import Store
from store.message import Content, Message

log = logging.getLogger(__name__)

EXTERNAL_POLL_INTERVAL = 0.5

__all__ = ["ListenError", "Node", "NodeOptions"]


class Node:
    """A running treechat node. Build with `await Node.open(config)`, then `start()`."""

    def __init__(
        self,
        config: Config,
        identity: Identity,
        store: Store,
        options: NodeOptions,
        names: Names,
        scope: Scope,
        local_clock: dict[bytes, int],
        held_from: dict[bytes, int] | None = None,
    ) -> None:
        self.config = config
        self.identity = identity
        self.store = store
        self.options = options
        self.feed_id: bytes = identity.feed_id
        self.ref: str = identity.ref
        self.names = names
        self.scope = scope
        self.events = EventBus()
        self.tasks = TaskGroup("node")
        ebt = options.ebt
        if options.newest_first:
            ranges = ebt.ranges if ebt.ranges is not None else RangeConfig()
            ebt = dataclasses.replace(ebt, ranges=ranges, history=config.history)
        self.manager = ReplicationManager(
            store,
            local_clock,
            scope.wanted,
            config=ebt,
            shareable=scope.shareable,
            on_stored=self._on_stored,
            on_error=self._on_peer_error,
            on_store_error=self._on_store_error,
            own=identity.feed_id,
            held_from=held_from,
        )
        scope.bind(self.manager)
        self.history = History(store, self.manager, ebt.history if options.newest_first else None)
        self.reader = Reader(store, names, identity)
        self.reader.hidden = lambda: self.scope.blocked  # blocked people's posts are hidden
        self.writer = Writer(store, identity, names, self._on_appended)
        self.connections = Connections(
            config, identity, options, store, self.manager, scope, names, self.events, self.tasks
        )
        self.network = NetworkViews(
            config, options, self.ref, self.manager, scope, names, self.connections
        )
        self.ephemeral = EphemeralRoom(
            config, identity, scope, names, self.events, options.ephemeral
        )
        self.connections.on_link_up = self.ephemeral.attach
        self.connections.on_link_down = self.ephemeral.detach
        self._stopping = False
        self._stopped = asyncio.Event()

    # ------------------------------------------------------------------ lifecycle

    @classmethod
    async def open(cls, config: Config, options: NodeOptions | None = None) -> Node:
        """Open (creating on first run) the identity and the database; no network yet."""
        identity = load_or_create_identity(config.data_dir)
        store = await Store.open(config.database_path)
        try:
            names = Names(await store.names())
            scope = Scope(store, identity.feed_id, config)
            await scope.async_load()
            local_clock = await store.clock()
            held = await store.held_ranges()
            node = cls(
                config,
                identity,
                store,
                options if options is not None else NodeOptions(),
                names,
                scope,
                local_clock,
                {feed: ranges[-1][0] for feed, ranges in held.items()},
            )
            await node.reader.async_load()
            await node.history.async_load()
            await store.changed_externally()  # remember the current data_version
        except BaseException:
            await store.close()
            raise
        return node

    async def start(self) -> None:
        """Listen, start replication, the external-append watcher and the status writer."""
        self.manager.start()
        await self.connections.async_start()
        self.tasks.spawn(self._async_watch_external(), "external-appends")
        self.tasks.spawn(self.network.async_status_loop(), "rates and status")
        self.tasks.spawn(self.ephemeral.async_run(), "ephemeral gossip")
        await self.connections.async_start_peering()
        log.info("listening at %s", self.address)

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
            self.ephemeral.goodbye()
            await self.connections.async_stop_peering()
            # Says bye on every link, then writes what is queued (up to 20,000 messages
            # to validate: more time) and the peer records.
            await async_bounded(
                self.manager.async_stop(), "the replication manager", 3 * STOP_STEP_TIMEOUT
            )
            await self.tasks.async_end()
            await self.connections.async_wait_closed()
            await self.network.async_remove_status()
            await async_bounded(self.store.close(), "closing the database", 2 * STOP_STEP_TIMEOUT)
        finally:
            self._stopped.set()

    # ------------------------------------------------------------------ wiring

    @property
    def address(self) -> str | None:
        """Where peers reach us (`net:HOST:PORT~shs:KEY`), once started."""
        return self.connections.address

    @property
    def addresses(self) -> list[str]:
        """Every address people can dial us at (one per interface when listening on all)."""
        return list(self.connections.own_addresses)

    @property
    def listen_notice(self) -> str | None:
        """What the user should know about how we listen (the default port was taken)."""
        return self.connections.notice

    @property
    def started_at(self) -> float:
        return self.network.started_at

    @property
    def schedule(self) -> ScheduleRunner | None:
        return self.connections.schedule

    @property
    def discovery(self) -> Discovery | None:
        return self.connections.discovery

    @property
    def incoming_hook(self) -> Callable[[PeerConnection], Awaitable[bool]] | None:
        """chat/pub.py: sees each incoming link first; True = it took the link."""
        return self.connections.incoming_hook

    @incoming_hook.setter
    def incoming_hook(self, hook: Callable[[PeerConnection], Awaitable[bool]] | None) -> None:
        self.connections.incoming_hook = hook

    def forget_on_close(self, key: bytes) -> None:
        """chat/pub.py: keep nothing of `key` once its link closes (a failed invite guess)."""
        self.connections.forget_on_close(key)

    def local_seq(self, feed: bytes) -> int:
        """How many messages of `feed` we hold."""
        return self.manager.local_seq(feed)

    # ------------------------------------------------------------------ history

    def fetch_older(self, feed: bytes | None = None, count: int = 100) -> None:
        """Scrolling back: ask connected peers for `count` messages of `feed` (None: of
        every feed held from above seq 1) older than what we hold."""
        self.history.fetch_older(feed, count)

    def older_history(self) -> OlderHistory:
        """Whether older messages exist than we hold, who is asked, whether anyone has them."""
        return self.history.older()

    async def set_history(self, feed: bytes, keep: int | None) -> None:
        """Keep fetching the newest `keep` messages of `feed` (None = all of it); saved."""
        await self.history.async_set(feed, keep)

    async def reset_history(self, feed: bytes) -> None:
        """`feed` follows the config's `history` setting again."""
        await self.history.async_reset(feed)

    def history_setting(self, feed: bytes) -> HistorySetting:
        """How much of `feed` we keep fetching and hold."""
        return self.history.setting(feed)

    def history_settings(self) -> tuple[int | None, list[HistorySetting]]:
        """The default (the config's `history`, None = all) and the feeds set apart."""
        return self.history.default, self.history.settings()

    def history_view(self, feed: bytes) -> HistoryView | None:
        """How much of `feed` we hold and what is being fetched (None: fetched whole)."""
        return self.history.view(feed)

    def _on_appended(self, message: Message) -> None:
        self.manager.local_messages([message])
        self._on_stored([message])

    def _on_store_error(self, error: str | None) -> None:
        """The database started (or stopped) refusing received messages: say so once."""
        if error is not None:
            self.events.emit(NodeEvent("error", f"the database refuses new messages: {error}"))
        else:
            self.events.emit(NodeEvent("info", "the database works again"))

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
                    self.names.set(message.author, name)
            elif kind == "contact":
                self.scope.dirty = True
        if self.scope.dirty:
            self.tasks.spawn(self.scope.async_refresh(), "scope")
        if not self._stopping:
            self.tasks.spawn(self.reader.async_note_arrivals(), "arrival cursor")
            if any(isinstance(m.content, bytes) for m in messages):
                self.tasks.spawn(self.reader.async_index_private(), "private index")
        if self.schedule is not None:
            self.schedule.note_new_message()
        self.events.emit(NodeEvent("messages", f"{len(messages)} new", tuple(sorted(channels))))

    def _on_peer_error(self, key: bytes, error: str) -> None:
        self.events.emit(NodeEvent("error", f"{self.display_name(key)}: {error}"))

    async def _async_watch_external(self) -> None:
        """Notice commits of other processes (``treechat post``) within a second."""
        while True:
            await asyncio.sleep(EXTERNAL_POLL_INTERVAL)
            try:
                if await self.store.changed_externally():
                    self.scope.dirty = True
                    await self.scope.async_refresh()
                    self.names.replace(await self.store.names())
                    self.connections.sync_blocks(self.scope.blocked)
                    await self.history.async_load()
                    if await self.connections.async_reload_peers():
                        self.events.emit(NodeEvent("peers", "peers remembered by another process"))
                    added = await self.manager.async_catch_up_store()
                    if added:
                        self.events.emit(NodeEvent("messages", f"{added} new (another process)"))
            except Exception:
                log.exception("checking for messages written by another process failed")

    # ------------------------------------------------------------------ writing

    async def append_own(self, content: Content) -> Message:
        """Append any content to our feed (the pub's announcement); peers get it at once."""
        return await self.writer.append_own(content)

    async def post(self, text: str, channel: str, reply_to: bytes | None = None) -> TimelineEntry:
        """Append a post; `@name` and `@<key>.ed25519` in the text become its `mentions`."""
        message, content = await self.writer.post(text, channel, reply_to)
        return self.reader.entry(message, content)

    async def set_name(self, name: str) -> None:
        await self.writer.set_name(name)

    async def follow(self, feed: bytes) -> None:
        await self._async_contact(feed, following=True)

    async def unfollow(self, feed: bytes) -> None:
        await self._async_contact(feed, following=False)

    async def block(self, feed: bytes) -> None:
        await self._async_contact(feed, blocking=True)
        self.scope.block(feed)
        self.connections.block(feed)

    async def unblock(self, feed: bytes) -> None:
        await self._async_contact(feed, blocking=False)
        self.scope.unblock(feed)
        self.connections.unblock(feed)

    async def _async_contact(
        self, feed: bytes, *, following: bool | None = None, blocking: bool | None = None
    ) -> None:
        await self.writer.contact(feed, following=following, blocking=blocking)
        self.scope.dirty = True
        await self.scope.async_refresh()

    async def send_private(self, recipients: list[bytes], text: str) -> None:
        await self.writer.send_private(recipients, text)

    # ------------------------------------------------------------------ reading

    async def timeline(
        self, channel: str, before: int | None = None, limit: int = 100
    ) -> list[TimelineEntry]:
        return await self.reader.timeline(channel, before, limit)

    async def private_timeline(self, limit: int = 500) -> list[TimelineEntry]:
        """The newest `limit` private messages we can open, oldest to newest."""
        return await self.reader.private_timeline(limit)

    async def channels(self) -> list[ChannelInfo]:
        """Channels with their unread posts and unread mentions of us."""
        return await self.reader.channels()

    async def mark_read(self, view: str) -> None:
        """`view` (a channel or a private conversation) is read up to now; kept on disk."""
        await self.reader.mark_read(view)

    async def part_channel(self, channel: str) -> None:
        """Leave `channel`: `channels` leaves it out, after a restart too, until it is
        joined again (kept on disk; a feed has no membership to leave)."""
        await self.reader.set_parted(channel, True)

    async def join_channel(self, channel: str) -> None:
        """Join `channel` again after a /part (nothing to do for any other channel)."""
        await self.reader.set_parted(channel, False)

    async def conversations(self) -> list[ConversationInfo]:
        """Private conversations (one per person or group) with their unread counts."""
        return await self.reader.conversations()

    async def conversation(
        self, view: str, before: int | None = None, limit: int = 100
    ) -> list[TimelineEntry]:
        """A private conversation's messages, like `timeline` for a channel."""
        return await self.reader.conversation(view, before, limit)

    async def relation(self, feed: bytes) -> Relation:
        """Follow and block facts between us and `feed` (for /whois)."""
        return await self.reader.relation(feed)

    async def search(self, text: str, limit: int = 50) -> list[SearchHit]:
        """Posts and private messages we can read that contain `text`, newest first."""
        return await self.reader.search(text, limit)

    async def provenance(self, msg_id: bytes) -> Delivery | None:
        return await self.reader.provenance(msg_id)

    def resolve_name(self, name_or_ref: str) -> bytes:
        return self.names.resolve_name(name_or_ref)

    def find_mentions(self, text: str) -> list[bytes]:
        return self.names.find_mentions(text)

    def display_name(self, feed: bytes) -> str:
        return self.names.display_name(feed)

    def known_names(self) -> list[str]:
        return self.names.known_names()

    # ------------------------------------------------------------------ network

    async def connect(self, address: str, *, source: str = "manual", follow: bool = False) -> None:
        """Dial `address` (net:HOST:PORT~shs:KEY); returns once the link is up.

        With `follow`, the key is followed first (unless it already is, is us or is
        blocked): dialling a person means wanting their feed, and a later redial by the
        schedule replicates it even if this first dial fails. Raises `ValueError` for a
        bad address and `DialError` naming the failed step. The peer is remembered: the
        schedule redials it when the link drops.
        """
        if follow:
            await self.follow_once(parse_address(address).key)
        await self.connections.async_connect(address, source=source)

    async def follow_once(self, feed: bytes) -> bool:
        """Follow `feed` unless we already do (a pub is not followed twice), it is us or
        it is blocked; True if a follow was written."""
        if feed == self.feed_id or feed in self.scope.blocked:
            return False
        if feed in await self.store.follows(self.feed_id):
            return False
        await self.follow(feed)
        return True

    def remember_peer(self, address: str, *, source: str = "other") -> None:
        """Keep a link to `address` (redialled with backoff); needs the schedule."""
        self.connections.remember_peer(address, source=source)

    async def join(self, invite: str) -> None:
        """Redeem a pub invite (chat/joining.py); raises `JoinError(step, reason)` or ValueError."""
        await async_join(self, invite)

    def subscribe(self, callback: Callable[[NodeEvent], None]) -> Callable[[], None]:
        return self.events.subscribe(callback)

    def peers(self) -> list[PeerView]:
        return self.ephemeral.annotate(self.network.peers())

    def links(self) -> list[LinkView]:
        return self.network.links()

    def feed_tree(self, feed: bytes) -> FeedTree:
        return self.network.feed_tree(feed)

    def feeds(self) -> list[FeedTree]:
        return self.network.feeds()

    def sync_progress(self) -> SyncProgress:
        return self.network.sync_progress()

    def status_snapshot(self) -> dict[str, Any]:
        """What `treechat status` shows; also what the benchmarks read."""
        return self.network.status_snapshot()

    async def doctor(self) -> list[Finding]:
        """`treechat doctor`'s checks, seen from this running node (``/doctor``)."""
        status = {**self.status_snapshot(), "running": True, "pid": os.getpid()}
        return await asyncio.to_thread(
            run_checks, self.config, env=os.environ, is_tty=True, status=status
        )
