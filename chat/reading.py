"""Reading: timelines, private conversations, unread counts, read marks, search, provenance.

Unread is by arrival order (the store's rowid), not by the authors' clocks: a late
arrival with an old timestamp is unread, a future-dated post is read once seen; our own
messages are never unread. Read marks live in the database (a local table, not a feed
message), so a restart shows the same counts and the same "new messages" rule.

Private messages are opened once: an indexing pass (`async_index_private`) tries every
private message that arrived since the last pass, and records the ones sealed to us with
their conversation (everyone in it but us) and their text (for search). Views, counts
and search then read the index instead of decrypting again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable

from chat.content import (
    MAX_TEXT_BYTES,
    ContentError,
    Post,
    is_channel,
    open_private,
    parse_content,
    visible,
)
from chat.identity import Identity
from chat.names import Names
from chat.views import (
    ChannelInfo,
    ConversationInfo,
    Delivery,
    Relation,
    SearchHit,
    TimelineEntry,
    conversation_people,
    conversation_view,
)
from store.db import PrivateIndexRow, Store
from store.message import Message, decode_message

log = logging.getLogger(__name__)

OPENED_CACHE = 20_000
"""Private messages whose opened text and recipients are kept in memory."""


class Reader:
    """Turns stored messages into `TimelineEntry`s and keeps the read marks."""

    def __init__(self, store: Store, names: Names, identity: Identity | None = None) -> None:
        """Without an `identity` only public posts can be read (``treechat log``)."""
        self.store = store
        self.identity = identity
        self.names = names
        self._read_marks: dict[str, int] = {}  # view -> store arrival cursor (rowid)
        self.parted: set[str] = set()
        """Channels left with /part: left out of `channels` until joined again."""
        self._cursor = 0  # arrival cursor of the newest message a view may have shown
        self._indexing = asyncio.Lock()
        self.hidden: Callable[[], Iterable[bytes]] = tuple
        """Authors whose posts timelines leave out (the node: the keys we block)."""
        self._opened: dict[bytes, tuple[str, tuple[bytes, ...]]] = {}  # id -> text, recipients

    async def async_load(self) -> None:
        """The arrival cursor and the read marks. Private messages are indexed later, by
        the first view that needs the index (opening thousands takes a second, and a
        channel's first paint does not need them)."""
        self._cursor = await self.store.post_cursor()
        self._read_marks = await self.store.read_marks()
        self.parted = await self.store.parted_channels()

    async def async_index_private(self, page_size: int = 500) -> None:
        """Open the private messages that arrived since the last pass and index ours.

        The boxes are tried in a worker thread (a curve25519 operation per slot; libsodium
        releases the GIL), so a first pass over thousands does not stall the event loop."""
        if self.identity is None:
            return  # nobody to open them for
        identity = self.identity
        async with self._indexing:
            after = await self.store.private_index_cursor()
            while page := await self.store.private_messages(after, page_size):
                unopened = [m for _, m in page if m.id not in self._opened]
                for message_id, opened in await asyncio.to_thread(open_for, identity, unopened):
                    self._remember(message_id, opened)
                rows = []
                for arrival, message in page:
                    found = self._opened.get(message.id)
                    if found is None:
                        continue
                    text, recipients = found
                    people = {*recipients, message.author} - {identity.feed_id} or {
                        identity.feed_id
                    }
                    view = conversation_view(people)
                    rows.append(PrivateIndexRow(arrival, view, message.author, text))
                after = page[-1][0]
                await self.store.index_private(rows, after)

    async def timeline(
        self, channel: str | None, before: int | None = None, limit: int = 100
    ) -> list[TimelineEntry]:
        """The latest `limit` posts of `channel` (every channel if None), oldest first."""
        await self.async_refresh_cursor()
        posts = await self.store.timeline(channel, before, limit, hide=self.hidden())
        entries = []
        for stored in posts:
            try:
                parsed = parse_content(stored.message.content)
            except ContentError:
                continue
            if isinstance(parsed, Post):
                entries.append(self.entry(stored.message, parsed, stored.arrival))
        return entries

    async def conversations(self) -> list[ConversationInfo]:
        """Private conversations we are in, with their unread messages (from others)."""
        await self.async_index_private()
        await self.async_refresh_cursor()
        infos = []
        if self.identity is None:
            return []
        for stat in await self.store.conversations(exclude_author=self.identity.feed_id):
            people = conversation_people(stat.conversation)
            title = ", ".join(sorted(self.names.display_name(k) for k in people))
            infos.append(
                ConversationInfo(
                    stat.conversation,
                    people,
                    title,
                    stat.unread,
                    stat.last_timestamp,
                    self._read_marks.get(stat.conversation, 0),
                )
            )
        return infos

    async def conversation(
        self, view: str, before: int | None = None, limit: int = 100
    ) -> list[TimelineEntry]:
        """A private conversation's latest `limit` messages written before `before` (ms)."""
        await self.async_index_private()
        await self.async_refresh_cursor()
        entries = []
        for arrival, message in await self.store.conversation_messages(view, before, limit):
            entry = self._private_entry(message, arrival)
            if entry is not None:
                entries.append(entry)
        return entries

    async def search(self, text: str, limit: int = 50) -> list[SearchHit]:
        """Posts and private messages we can read containing `text`'s words, newest first."""
        await self.async_index_private()
        hits = []
        for row in await self.store.search(text, limit):
            with contextlib.suppress(Exception):  # a row we cannot read is skipped
                message = decode_message(row.raw)
                if row.conversation is not None:
                    entry = self._private_entry(message, row.arrival)
                    if entry is not None:
                        hits.append(SearchHit(entry, row.conversation))
                elif row.channel is not None:
                    parsed = parse_content(message.content)
                    if isinstance(parsed, Post):
                        hits.append(
                            SearchHit(self.entry(message, parsed, row.arrival), row.channel)
                        )
        return hits

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

    def _open(self, message: Message) -> tuple[str, tuple[bytes, ...]] | None:
        """A private message's text and recipients if it is sealed to us (remembered for
        the newest OPENED_CACHE messages: opening costs a curve25519 try per slot)."""
        cached = self._opened.get(message.id)
        if cached is not None:
            return cached
        assert self.identity is not None
        for message_id, opened in open_for(self.identity, [message]):
            self._remember(message_id, opened)
            return opened
        return None

    def _remember(self, message_id: bytes, opened: tuple[str, tuple[bytes, ...]]) -> None:
        self._opened[message_id] = opened
        if len(self._opened) > OPENED_CACHE:
            del self._opened[next(iter(self._opened))]

    def _private_entry(self, message: Message, arrival: int = 0) -> TimelineEntry | None:
        opened = self._open(message)
        if opened is None:
            return None
        text, recipients = opened
        return TimelineEntry(
            msg_id=message.id,
            author=message.author,
            seq=message.seq,
            timestamp=message.timestamp,
            channel="private",
            text=visible(text, MAX_TEXT_BYTES),
            author_name=self.names.display_name(message.author),
            private=True,
            recipients=recipients,
            arrival=arrival,
        )

    def entry(self, message: Message, content: Post, arrival: int = 0) -> TimelineEntry:
        """The view of one post."""
        name = self.names.get(message.author)
        collision = name is not None and self.names.clash(message.author, name)
        return TimelineEntry(
            msg_id=message.id,
            author=message.author,
            seq=message.seq,
            timestamp=message.timestamp,
            channel=content.channel,
            text=visible(content.text),
            author_name=self.names.display_name(message.author),
            name_collision=collision,
            reply_to=content.reply_to,
            mentions=content.mentions,
            arrival=arrival,
        )

    async def channels(self) -> list[ChannelInfo]:
        """Channels we did not leave, with their unread posts (not ours) and unread
        mentions of us.

        A channel name the rules refuse (a row an older indexer wrote, before the
        reindex migration ran) is never listed, as `Names` drops such names."""
        await self.async_refresh_cursor()
        own = self.identity.feed_id if self.identity is not None else None
        infos = []
        for stat in await self.store.channels():
            if stat.name in self.parted or not is_channel(stat.name):
                continue
            mark = self._read_marks.get(stat.name, 0)
            unread = await self.store.count_posts_since(stat.name, mark, exclude_author=own)
            mentions = 0
            if unread and own is not None:
                mentions = await self.store.count_mentions_since(stat.name, mark, own, own)
            infos.append(
                ChannelInfo(stat.name, unread, stat.last_timestamp or 0, mentions, read_upto=mark)
            )
        return infos

    async def set_parted(self, channel: str, parted: bool) -> None:
        """Leave `channel` (/part) or join it again; kept in the database."""
        if (channel in self.parted) == parted:
            return
        await self.store.set_parted(channel, parted)
        if parted:
            self.parted.add(channel)
        else:
            self.parted.discard(channel)

    async def mark_read(self, view: str) -> None:
        """Messages of `view` (a channel or a conversation) that arrived before the last
        view call (or that the node stored itself since) are read; kept in the database."""
        cursor = self._cursor
        if self._read_marks.get(view) == cursor:
            return
        self._read_marks[view] = cursor
        await self.store.save_read_mark(view, cursor)

    async def async_refresh_cursor(self) -> None:
        self._cursor = max(self._cursor, await self.store.post_cursor())

    async def async_note_arrivals(self) -> None:
        """Move the arrival cursor after new messages were stored (best effort)."""
        try:
            await self.async_refresh_cursor()
        except Exception:  # the next view refreshes it anyway
            log.debug("reading the arrival cursor failed", exc_info=True)

    async def relation(self, feed: bytes) -> Relation:
        """Whether we follow or block `feed`, and whether it follows us (their feed's
        latest contact messages, as far as we hold it)."""
        own = self.identity.feed_id if self.identity is not None else b""
        return Relation(
            we_follow=feed in await self.store.follows(own),
            we_block=feed in await self.store.blocks(own),
            they_follow_us=own in await self.store.follows(feed),
        )

    async def provenance(self, msg_id: bytes) -> Delivery | None:
        """Which peer delivered a message to us, and when."""
        record = await self.store.delivery(msg_id)
        if record is None:
            return None
        peer_name = self.names.display_name(record.peer) if record.peer is not None else None
        return Delivery(msg_id, record.peer, peer_name, record.received_at)


def open_for(
    identity: Identity, messages: Iterable[Message]
) -> list[tuple[bytes, tuple[str, tuple[bytes, ...]]]]:
    """`(message id, (text, recipients))` of the private messages sealed to `identity`.

    Pure (safe in a worker thread). A box that opens for us but is damaged or lies about
    its sender is skipped with a log line: one hostile message must not stop the index."""
    found = []
    for message in messages:
        if not isinstance(message.content, bytes):
            continue
        try:
            opened = open_private(message.content, identity, message.author)
        except ContentError as exc:
            log.info("skipped an unreadable private message %s: %s", message.id.hex()[:12], exc)
            continue
        text = opened.content.get("text") if opened is not None else None
        if opened is not None and isinstance(text, str):
            found.append((message.id, (text, opened.recipients)))
    return found
