"""The conversation pane: a windowed timeline of one channel, drawn with Textual's line API.

Why a line-API widget and not one widget per message: a channel may hold 100,000 posts.
Only a window is loaded (the newest page, then older pages as the view nears the top,
through `Node.timeline(channel, before, limit)`), each entry is wrapped once per width
and cached by message id, and only the visible lines are drawn. Prepending older pages
shifts the scroll offset by the lines added, so what the user reads does not move.
"""

from __future__ import annotations

import bisect
import re
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, replace
from datetime import datetime, tzinfo
from enum import Enum

from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.worker import WorkType

from chat.views import OlderHistory, TimelineEntry

PAGE = 100
"""Entries fetched per request."""
MAX_WINDOW = 6 * PAGE
"""Entries kept loaded; past this, pages far from the view are dropped (and refetched)."""
MAX_CATCH_UP_PAGES = 50
"""Bound on pages fetched at once to merge a burst of new messages."""
TIME_WIDTH = 6  # "HH:MM "

_MENTION = re.compile(r"@[\w][\w.-]*")
NAME_COLOURS = (
    "#1f8fbf",
    "#c0661a",
    "#5c9a1a",
    "#9b4fd0",
    "#c0407a",
    "#14968c",
    "#7a6fe0",
    "#b5891a",
)
"""Author colours that read on both the light and the dark theme."""

Timeline = Callable[[str, int | None, int], Awaitable[list[TimelineEntry]]]
OlderSource = tuple[Callable[[], OlderHistory], Callable[[], None]]
"""How the view learns about history older than the store holds, and asks for it."""
ASK_OLDER_EVERY = 2.0  # seconds between asks while the view sits at the top


class LineKind(Enum):
    """What a drawn line belongs to, for the background it gets."""

    ENTRY = "entry"
    MENTION = "mention"
    SEPARATOR = "separator"
    UNREAD = "unread"


@dataclass(frozen=True, slots=True)
class _Line:
    entry: int  # index into entries, -1 for separators
    strip: Strip
    kind: LineKind


def name_colour(author: bytes) -> str:
    """A stable colour for an author key."""
    return NAME_COLOURS[sum(author[:4]) % len(NAME_COLOURS)]


def page_cursor(entry: TimelineEntry) -> int:
    """The `before` value (exclusive, ms) that asks `Node.timeline` for this entry and older.

    One millisecond past the entry, so posts sharing its timestamp are not skipped; the
    overlap is removed by message id.
    """
    return entry.timestamp + 1


class Conversation(ScrollView, can_focus=True):
    """A scrollable, selectable timeline window of one channel."""

    COMPONENT_CLASSES = {
        "conversation--time",
        "conversation--own",
        "conversation--collision",
        "conversation--mention",
        "conversation--mention-line",
        "conversation--cursor",
        "conversation--cursor-blur",
        "conversation--unread",
        "conversation--separator",
        "conversation--reply",
    }

    BINDINGS = [
        Binding("up", "cursor(-1)", "Previous message", show=False),
        Binding("down", "cursor(1)", "Next message", show=False),
        Binding("enter", "select_entry", "How did this get here?"),
        Binding("r", "reply", "Reply"),
        Binding("home", "scroll_home", "Oldest", show=False),
        Binding("end", "latest", "Newest", show=False),
    ]

    class EntrySelected(Message):
        """The user asked where a message came from (Enter or a click)."""

        def __init__(self, entry: TimelineEntry) -> None:
            super().__init__()
            self.entry = entry

    class ReplyRequested(Message):
        """The user wants to reply to a message."""

        def __init__(self, entry: TimelineEntry) -> None:
            super().__init__()
            self.entry = entry

    def __init__(
        self,
        timeline: Timeline,
        own_feed: bytes,
        *,
        namer: Callable[[bytes], str] = lambda key: key.hex()[:6],
        tz: tzinfo | None = None,
        id: str | None = None,
        older: OlderSource | None = None,
    ) -> None:
        super().__init__(id=id)
        self._namer = namer
        self._timeline = timeline
        self._older = older
        self._asked_older_at: float | None = None
        self.own_feed = own_feed
        self.tz = tz
        self.channel = ""
        self.entries: list[TimelineEntry] = []
        self._ids: set[bytes] = set()
        self._by_id: dict[bytes, TimelineEntry] = {}
        self.has_older = False
        self.unread_id: bytes | None = None
        self.cursor: int | None = None
        self._lines: list[_Line] = []
        self._block_cache: dict[bytes, list[Strip]] = {}
        self._cache_width = 0
        self._loading_older = False
        self._loading_newer = False
        self._evicted: list[int] = []  # newest timestamps of pages dropped at the new end
        self._unplaced = False
        self._jump_to_unread = False
        self._following = True

    # ------------------------------------------------------------------ data

    async def show_channel(
        self, channel: str, unread: int = 0, *, read_upto: int = 0, before: int | None = None
    ) -> None:
        """Load the newest page of `channel` (or the page just older than `before`, ms),
        with a "new messages" rule above the first post by someone else that arrived after
        `read_upto` (an arrival position), when `unread` says there are such posts."""
        entries = await self._timeline(channel, before, PAGE)
        self.channel = channel
        self.entries = sorted(entries, key=_order)
        self._ids = {e.msg_id for e in self.entries}
        self._by_id = {e.msg_id: e for e in self.entries}
        self.has_older = len(entries) >= PAGE
        self._evicted = []
        self._block_cache.clear()
        self.cursor = None
        self.unread_id = None
        self._jump_to_unread = 0 < unread <= len(self.entries)
        if unread > 0 and self.entries:
            others = [e for e in self.entries if e.author != self.own_feed]
            fresh = [e for e in others if e.arrival > read_upto]
            # Entries without an arrival position (0) fall back to counting others' posts
            # back from the newest.
            if not fresh and others:
                fresh = others[max(0, len(others) - unread) :]
            self.unread_id = fresh[0].msg_id if fresh else None
        self._rebuild()
        self._scroll_to_start_point()
        # Before the first layout the height is unknown: place the view again after it.
        self.call_after_refresh(self._scroll_to_start_point)

    def _scroll_to_start_point(self) -> None:
        self._unplaced = not self.scrollable_content_region.height
        if not self._unplaced and not self.has_older and self.max_scroll_y == 0:
            self.ask_older()  # all we hold fits: the view is at the top already
        if self.unread_id is not None and self._jump_to_unread:
            line = self._line_of_entry(self._index_of(self.unread_id))
            height = self.scrollable_content_region.height
            tail = len(self._lines) - line
            if tail > height:
                self.scroll_to(y=max(0, line - 2), animate=False, immediate=True)
                return
        self.scroll_to(y=self.max_scroll_y, animate=False, immediate=True)

    async def load_older(self) -> int:
        """Fetch one page older than the oldest loaded entry; returns how many were added."""
        if not self.has_older or not self.entries or self._loading_older:
            return 0
        self._loading_older = True
        try:
            channel = self.channel
            older = await self._timeline(channel, page_cursor(self.entries[0]), PAGE)
            if channel != self.channel:
                return 0
            fresh = [e for e in older if e.msg_id not in self._ids]
            if not fresh and len(older) >= PAGE:
                # A whole page shares one millisecond: step past it.
                older = await self._timeline(channel, self.entries[0].timestamp, PAGE)
                fresh = [e for e in older if e.msg_id not in self._ids]
            self.has_older = len(older) >= PAGE
            if not fresh:
                self.has_older = False
                self._rebuild()
                return 0
            anchor = self._anchor()
            self._merge(fresh)
            if self.cursor is not None:
                self.cursor += len(fresh)
            while len(self.entries) > MAX_WINDOW:
                # Drop the newest page (below the view); load_newer fetches it again.
                self._evicted.append(self.entries[-1].timestamp)
                self._forget(self.entries[-PAGE:])
                del self.entries[-PAGE:]
                if self.cursor is not None and self.cursor >= len(self.entries):
                    self.cursor = None
            self._rebuild()
            self._restore(anchor)
            return len(fresh)
        finally:
            self._loading_older = False

    def _anchor(self) -> tuple[bytes, int] | None:
        """The entry at the top of the view and how many lines into it the view starts."""
        top = self.scroll_offset.y
        for n in range(top, len(self._lines)):
            index = self._lines[n].entry
            if index >= 0:
                return self.entries[index].msg_id, top - self._line_of_entry(index)
        return None

    def _restore(self, anchor: tuple[bytes, int] | None) -> None:
        """Scroll so the anchored entry is where it was before lines came or went above it."""
        if anchor is None or anchor[0] not in self._ids:
            return
        line = self._line_of_entry(self._index_of(anchor[0]))
        self.scroll_to(y=max(0, line + anchor[1]), animate=False, immediate=True)

    def _forget(self, entries: list[TimelineEntry]) -> None:
        for entry in entries:
            self._ids.discard(entry.msg_id)
            self._by_id.pop(entry.msg_id, None)
            self._block_cache.pop(entry.msg_id, None)

    @property
    def has_newer(self) -> bool:
        """True when pages newer than the window were dropped (scrolling down refetches)."""
        return bool(self._evicted)

    async def load_newer(self) -> int:
        """Fetch back the dropped page just newer than the window; returns entries added."""
        if not self._evicted or self._loading_newer:
            return 0
        self._loading_newer = True
        try:
            channel = self.channel
            newest_of_page = self._evicted[-1]
            # A little slack so posts sharing the boundary millisecond are not cut off.
            page = await self._timeline(channel, newest_of_page + 1, PAGE + PAGE // 5)
            if channel != self.channel:
                return 0
            self._evicted.pop()
            fresh = [e for e in page if e.msg_id not in self._ids]
            anchor = self._anchor()
            selected = self.selected
            self._merge(fresh)
            while len(self.entries) > MAX_WINDOW:
                # Drop the oldest page (above the view); load_older fetches it again.
                self._forget(self.entries[:PAGE])
                del self.entries[:PAGE]
                self.has_older = True
            self.cursor = (
                self._index_of(selected.msg_id)
                if selected is not None and selected.msg_id in self._ids
                else None
            )
            self._rebuild()
            self._restore(anchor)
            return len(fresh)
        finally:
            self._loading_newer = False

    async def reveal(self, msg_id: bytes, max_pages: int = 200) -> bool:
        """Select the message `msg_id` (loading older pages until it is in the window)
        and scroll it into view; False if it is not in this channel."""
        for _ in range(max_pages):
            if msg_id in self._ids or not self.has_older:
                break
            if not await self.load_older():
                break
        if msg_id not in self._ids:
            return False
        self.cursor = self._index_of(msg_id)
        line = self._line_of_entry(self.cursor)
        height = self.scrollable_content_region.height or 1
        self.scroll_to(y=max(0, line - height // 3), animate=False, immediate=True)
        self.refresh()
        return True

    async def jump_to_latest(self) -> None:
        """Show the newest posts (reloading the window if newer pages were dropped)."""
        if self.has_newer:
            await self.show_channel(self.channel)
        self.scroll_to(y=self.max_scroll_y, animate=False, immediate=True)

    async def load_new(self) -> list[TimelineEntry]:
        """Fetch what arrived since the newest loaded entry and merge it; returns the new ones.

        While newer pages are dropped (the user reads far back), nothing is merged: the
        new posts are fetched when the user scrolls down or jumps to the latest."""
        if self.has_newer:
            return []
        channel = self.channel
        following = self.is_following
        fresh: list[TimelineEntry] = []
        seen: set[bytes] = set()
        before: int | None = None
        for _ in range(MAX_CATCH_UP_PAGES):
            page = await self._timeline(channel, before, PAGE)
            if channel != self.channel:
                return []
            new = [e for e in page if e.msg_id not in self._ids]
            fresh.extend(e for e in new if e.msg_id not in seen)
            seen.update(e.msg_id for e in new)
            if len(page) < PAGE or len(new) < len(page) or not self.entries:
                break
            oldest = min(page, key=_order)
            if before == page_cursor(oldest):
                break
            before = page_cursor(oldest)
        if not fresh:
            return []
        if not self.entries:
            self.has_older = len(fresh) >= PAGE
        self._merge(fresh)
        self._rebuild()
        if following:
            self.scroll_to(y=self.max_scroll_y, animate=False, immediate=True)
        return fresh

    def _merge(self, fresh: list[TimelineEntry]) -> None:
        batch = sorted((e for e in fresh if e.msg_id not in self._ids), key=_order)
        if batch and self.entries and _order(batch[-1]) < _order(self.entries[0]):
            # An older page: prepend in one go.
            self.entries[:0] = batch
            self._ids.update(e.msg_id for e in batch)
            self._by_id.update((e.msg_id, e) for e in batch)
            return
        for entry in batch:
            if entry.msg_id in self._ids:
                continue
            self._ids.add(entry.msg_id)
            self._by_id[entry.msg_id] = entry
            if not self.entries or _order(entry) >= _order(self.entries[-1]):
                self.entries.append(entry)
            else:
                keys = [_order(e) for e in self.entries]
                self.entries.insert(bisect.bisect_right(keys, _order(entry)), entry)

    def mentions_us(self, entry: TimelineEntry) -> bool:
        """True if the node found our key among the post's mentions (someone else's post)."""
        return entry.author != self.own_feed and self.own_feed in entry.mentions

    def clear_unread_marker(self) -> None:
        if self.unread_id is not None:
            self.unread_id = None
            self._rebuild()

    @property
    def is_following(self) -> bool:
        """True when the newest line is in view, so new messages keep it there."""
        return not self.has_newer and self.scroll_y >= self.max_scroll_y - 1

    @property
    def selected(self) -> TimelineEntry | None:
        if self.cursor is None or not (0 <= self.cursor < len(self.entries)):
            return None
        return self.entries[self.cursor]

    # ------------------------------------------------------------------ layout

    def _index_of(self, msg_id: bytes) -> int:
        for i in range(len(self.entries) - 1, -1, -1):
            if self.entries[i].msg_id == msg_id:
                return i
        return 0

    def _line_of_entry(self, index: int) -> int:
        for n, line in enumerate(self._lines):
            if line.entry == index:
                return n
        return max(0, len(self._lines) - 1)

    def _wrap_width(self) -> int:
        """Text width: the scrollbar's column is always kept free, so wrapping does not
        change (and no character hides under it) when the scrollbar comes and goes."""
        width = self.scrollable_content_region.width or self.size.width or 80
        if not self.show_vertical_scrollbar:
            width -= int(self.styles.scrollbar_size_vertical)
        return max(20, width)

    def _part(self, name: str) -> Style:
        """A component's own style without a background: the line's background (plain,
        selected, mentioning us) is painted under every segment in `render_line`."""
        return self.get_component_rich_style(name, partial=True)

    def hide_author(self, author: bytes) -> None:
        """Drop a (just blocked) author's messages from the loaded window."""
        gone = [e for e in self.entries if e.author == author]
        if not gone:
            return
        selected = self.selected
        self._forget(gone)
        self.entries = [e for e in self.entries if e.author != author]
        self.cursor = (
            self._index_of(selected.msg_id)
            if selected is not None and selected.msg_id in self._ids
            else None
        )
        self._rebuild()

    def rename(self, namer: Callable[[bytes], str]) -> None:
        """Names changed (an `about` arrived): redraw every loaded message with new names."""
        changed = False
        for index, entry in enumerate(self.entries):
            name = namer(entry.author)
            if name != entry.author_name:
                self.entries[index] = replace(entry, author_name=name)
                self._by_id[entry.msg_id] = self.entries[index]
                changed = True
        if changed:
            self._block_cache.clear()
            self._rebuild()

    def _rebuild(self) -> None:
        width = self._wrap_width()
        if width != self._cache_width:
            self._block_cache.clear()
            self._cache_width = width
        console = self.app.console
        lines: list[_Line] = []
        sep_style = self._part("conversation--separator")
        if self.has_older:
            lines.append(self._separator("loading older messages…", width, sep_style))
        elif self.channel.startswith("@"):
            lines.append(self._separator("beginning of the conversation", width, sep_style))
        elif self.channel:
            lines.append(self._separator(self._top_text(), width, sep_style))
        previous_day = ""
        unread_style = self._part("conversation--unread")
        for index, entry in enumerate(self.entries):
            day = self._when(entry).strftime("%a %d %b %Y")
            if day != previous_day:
                lines.append(self._separator(day, width, sep_style))
                previous_day = day
            if entry.msg_id == self.unread_id:
                lines.append(self._separator("new messages", width, unread_style, LineKind.UNREAD))
            block = self._block_cache.get(entry.msg_id)
            if block is None:
                block = self._render_entry(entry, width, console)
                self._block_cache[entry.msg_id] = block
            kind = LineKind.MENTION if self.mentions_us(entry) else LineKind.ENTRY
            lines.extend(_Line(index, strip, kind) for strip in block)
        self._lines = lines
        clashes = sorted({e.author_name for e in self.entries if e.name_collision})
        self.border_subtitle = f"⚠ name clash: {', '.join(clashes)}" if clashes else ""
        self.virtual_size = Size(width, len(lines))
        self.refresh()

    def _separator(
        self, label: str, width: int, style: Style, kind: LineKind = LineKind.SEPARATOR
    ) -> _Line:
        text = Text(f" {label} ", style=style)
        side = max(0, (width - text.cell_len) // 2)
        line = Text("─" * side, style=style) + text + Text("─" * side, style=style)
        line.truncate(width)
        return _Line(-1, Strip(list(line.render(self.app.console))), kind)

    def _when(self, entry: TimelineEntry) -> datetime:
        return datetime.fromtimestamp(entry.timestamp / 1000, tz=self.tz)

    def _render_entry(self, entry: TimelineEntry, width: int, console: object) -> list[Strip]:
        from rich.console import Console

        assert isinstance(console, Console)
        time_style = self._part("conversation--time")
        quiet = self._part("conversation--reply")
        strips: list[Strip] = []
        pad = Text(" " * TIME_WIDTH)
        stamp = Text(self._when(entry).strftime("%H:%M").ljust(TIME_WIDTH), style=time_style)
        text_width = max(10, width - TIME_WIDTH)
        if entry.reply_to is not None:
            # A compact quote on the reply's own first line (it carries the time), so it
            # reads as part of this message and not of the one above.
            target = self._by_id.get(entry.reply_to)
            if target is not None:
                first = target.text.splitlines()[0] if target.text else ""
                context = Text(f"↳ {target.author_name}: {first}", style=quiet)
            else:
                context = Text("↳ an earlier message", style=quiet)
            context.truncate(min(text_width, 60), overflow="ellipsis")
            strips.append(self._row(stamp, context, console))
            stamp = pad
        body = Text()
        if entry.name_collision:
            body.append("⚠ ", style=self._part("conversation--collision"))
        name_style = Style(color=name_colour(entry.author), bold=True)
        if entry.author == self.own_feed:
            name_style += self._part("conversation--own")
        action = entry.text.startswith("/me ")
        if action:  # '/me waves' reads '* alice waves'
            body.append("* ", style=name_style)
        body.append(entry.author_name, style=name_style)
        if entry.private and entry.author == self.own_feed:
            # Our own private messages say whom they went to.
            others = [k for k in entry.recipients if k != self.own_feed]
            names = ", ".join(self._namer(k) for k in others) or "yourself"
            body.append(f" → {names}", style=quiet)
        body.append(" " if action else ": ")
        start = len(body.plain)
        text = entry.text[4:] if action else entry.text
        body.append(text, style=self._part("conversation--reply") if action else "")
        mention_style = self._part("conversation--mention")
        for match in _MENTION.finditer(text):
            body.stylize(mention_style, start + match.start(), start + match.end())
        for n, piece in enumerate(body.wrap(console, text_width, overflow="fold")):
            piece.rstrip()
            strips.append(self._row(stamp if n == 0 else pad, piece, console))
        return strips

    @staticmethod
    def _row(left: Text, right: Text, console: object) -> Strip:
        """One drawn line: the time column then text; each part keeps its own style (one
        text colour for every line of a message, the time alone muted)."""
        from rich.console import Console

        assert isinstance(console, Console)
        row = Text()
        row.append_text(left)
        row.append_text(right)
        return Strip(list(row.render(console)))

    # ------------------------------------------------------------------ drawing

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        index = self.scroll_offset.y + y
        if index >= len(self._lines):
            return Strip.blank(width, self.rich_style)
        line = self._lines[index]
        style = self.rich_style
        if line.entry >= 0 and line.entry == self.cursor and self.has_focus:
            style = style + self.get_component_rich_style("conversation--cursor")
        elif line.entry >= 0 and line.entry == self.cursor:
            style = style + self.get_component_rich_style("conversation--cursor-blur")
        elif line.kind is LineKind.MENTION:
            style = style + self.get_component_rich_style("conversation--mention-line")
        return line.strip.crop_extend(0, width, None).apply_style(style)

    def on_resize(self, event: events.Resize) -> None:
        # "Follow newest" as it was before this resize: the resize itself moved the
        # scroll position, so it cannot be read off the view now.
        following = self._following
        if self._wrap_width() != self._cache_width:
            self._rebuild()
        if following:
            self.scroll_to(y=self.max_scroll_y, animate=False, immediate=True)
        if self._unplaced and self.scrollable_content_region.height:
            self._scroll_to_start_point()

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._block_cache.clear()
        if self.is_mounted and self.entries:
            self._rebuild()

    def _top_text(self) -> str:
        """The line above the oldest loaded post when the store holds nothing older."""
        if self._older is not None:
            state = self._older[0]()
            if state.asking:
                peers = "peer" if state.asking == 1 else "peers"
                return f"loading older messages from {state.asking} {peers}…"
            if state.unavailable:
                return "older messages are not available from anyone connected"
            if state.missing:
                return "scroll up for older messages"
        return f"beginning of #{self.channel}"

    def ask_older(self) -> bool:
        """At the top with nothing older stored: ask peers for older history (at most
        every ASK_OLDER_EVERY seconds). True if asked."""
        if self._older is None or self.has_older:
            return False
        now = time.monotonic()
        if self._asked_older_at is not None and now - self._asked_older_at < ASK_OLDER_EVERY:
            return False
        state = self._older[0]()
        if not state.missing or state.asking:
            return False
        self._asked_older_at = now
        self._older[1]()
        self._rebuild()
        return True

    def refresh_top(self) -> None:
        """Redraw the top line (what is known about older history may have changed)."""
        if self.entries and not self.has_older:
            self._rebuild()

    def _load_in_worker(self, load: Callable[[], Coroutine[None, None, int]], group: str) -> None:
        """Load a page in the group's one worker; a load cancelled before it starts never runs."""
        work: WorkType[int] = load
        self.run_worker(work, group=group, exclusive=True)

    def older_arrived(self) -> None:
        """Messages were stored after we asked for older history: look for older posts."""
        if self._asked_older_at is None or self.has_older or not self.entries:
            return
        self.has_older = True
        self._load_in_worker(self.load_older, "older")

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        if self._cache_width == self._wrap_width():  # not in the middle of a resize
            self._following = self.is_following
        height = self.scrollable_content_region.height
        if self._unplaced or not height:
            return
        if new_value < max(3, height) and not self.has_older:
            self.ask_older()
        if new_value < max(3, height) and self.has_older and not self._loading_older:
            self._load_in_worker(self.load_older, "older")
        elif (
            new_value > self.max_scroll_y - max(3, height)
            and self.has_newer
            and not self._loading_newer
        ):
            self._load_in_worker(self.load_newer, "newer")

    # ------------------------------------------------------------------ actions

    def action_cursor(self, step: int) -> None:
        if not self.entries:
            return
        if self.cursor is None:
            self.cursor = len(self.entries) - 1 if step < 0 else 0
            if step < 0 and not self.is_following:
                self.cursor = self._first_visible_entry()
        else:
            self.cursor = max(0, min(len(self.entries) - 1, self.cursor + step))
        self._scroll_cursor_into_view()
        self.refresh()

    def _first_visible_entry(self) -> int:
        for line in self._lines[self.scroll_offset.y :]:
            if line.entry >= 0:
                return line.entry
        return len(self.entries) - 1

    def _scroll_cursor_into_view(self) -> None:
        if self.cursor is None:
            return
        first = self._line_of_entry(self.cursor)
        last = first
        while last + 1 < len(self._lines) and self._lines[last + 1].entry == self.cursor:
            last += 1
        height = self.scrollable_content_region.height
        top = self.scroll_offset.y
        if first < top:
            self.scroll_to(y=first, animate=False, immediate=True)
        elif last >= top + height:
            self.scroll_to(y=last - height + 1, animate=False, immediate=True)

    def action_scroll_home(self) -> None:
        """To the top; already there with nothing older stored: ask peers for more."""
        super().action_scroll_home()
        if not self.has_older:
            self.ask_older()

    async def action_latest(self) -> None:
        await self.jump_to_latest()

    def action_select_entry(self) -> None:
        entry = self.selected
        if entry is not None:
            self.post_message(self.EntrySelected(entry))

    def action_reply(self) -> None:
        entry = self.selected
        if entry is not None:
            self.post_message(self.ReplyRequested(entry))

    def on_click(self, event: events.Click) -> None:
        index = self.scroll_offset.y + event.y
        if 0 <= index < len(self._lines) and self._lines[index].entry >= 0:
            self.cursor = self._lines[index].entry
            self.refresh()
            self.action_select_entry()

    def on_focus(self) -> None:
        self.refresh()

    def on_blur(self) -> None:
        self.refresh()


def _order(entry: TimelineEntry) -> tuple[int, bytes, int]:
    return (entry.timestamp, entry.author, entry.seq)
