"""Reading: the channel timelines, the private view, unread counts and provenance.

Unread is by arrival order (the store's rowid), not by the authors' clocks: a late
arrival with an old timestamp is unread, a future-dated post is read once seen.
"""

from __future__ import annotations

import contextlib
import logging

from chat.content import MAX_TEXT_BYTES, ContentError, Post, open_private, parse_content, visible
from chat.identity import Identity
from chat.names import Names
from chat.views import ChannelInfo, Delivery, TimelineEntry
from store.db import Store
from store.message import Message

log = logging.getLogger(__name__)


class Reader:
    """Turns stored messages into `TimelineEntry`s and keeps the read marks."""

    def __init__(self, store: Store, names: Names, identity: Identity | None = None) -> None:
        """Without an `identity` only public posts can be read (``treechat log``)."""
        self.store = store
        self.identity = identity
        self.names = names
        self._read_marks: dict[str, int] = {}  # channel -> store arrival cursor (rowid)
        self._cursor = 0  # arrival cursor of the newest message a view may have shown

    async def async_load(self) -> None:
        self._cursor = await self.store.post_cursor()

    async def timeline(
        self, channel: str | None, before: int | None = None, limit: int = 100
    ) -> list[TimelineEntry]:
        """The latest `limit` posts of `channel` (every channel if None), oldest first."""
        await self.async_refresh_cursor()
        posts = await self.store.timeline(channel, before, limit)
        entries = []
        for stored in posts:
            try:
                parsed = parse_content(stored.message.content)
            except ContentError:
                continue
            if isinstance(parsed, Post):
                entries.append(self.entry(stored.message, parsed))
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
        assert isinstance(message.content, bytes) and self.identity is not None
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
            text=visible(text, MAX_TEXT_BYTES),
            author_name=self.names.display_name(message.author),
            private=True,
            recipients=opened.recipients,
        )

    def entry(self, message: Message, content: Post) -> TimelineEntry:
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
        )

    async def channels(self) -> list[ChannelInfo]:
        """Channels with their unread posts and unread mentions of us."""
        await self.async_refresh_cursor()
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
        assert self.identity is not None
        own = self.identity.feed_id
        count = 0
        for message in await self.store.posts_since_containing(channel, cursor, own):
            if message.author == own:
                continue
            with contextlib.suppress(ContentError):
                parsed = parse_content(message.content)
                if isinstance(parsed, Post) and own in parsed.mentions:
                    count += 1
        return count

    def mark_read(self, channel: str) -> None:
        """Posts of `channel` that arrived before the last `channels()` / `timeline()` call
        (or that the node stored itself since) are read."""
        self._read_marks[channel] = self._cursor

    async def async_refresh_cursor(self) -> None:
        self._cursor = max(self._cursor, await self.store.post_cursor())

    async def async_note_arrivals(self) -> None:
        """Move the arrival cursor after new messages were stored (best effort)."""
        try:
            await self.async_refresh_cursor()
        except Exception:  # the next view refreshes it anyway
            log.debug("reading the arrival cursor failed", exc_info=True)

    async def provenance(self, msg_id: bytes) -> Delivery | None:
        """Which peer delivered a message to us, and when."""
        record = await self.store.delivery(msg_id)
        if record is None:
            return None
        peer_name = self.names.display_name(record.peer) if record.peer is not None else None
        return Delivery(msg_id, record.peer, peer_name, record.received_at)
