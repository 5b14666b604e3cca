"""The replication pane: overall progress, each link's eager/lazy feeds and lag, trees, provenance.

Numbers are coloured by threshold (Health), not shown raw: a link three messages behind
and one thirty thousand behind must not look alike. The header state is derived from
the links (the worst one wins; "no peers yet" when there are none), so it never says
"in sync" beside a link that is behind. A legend says what eager, lazy and the arrows
mean, in words: in the Details box while nothing is picked, when the terminal is tall
enough for it beside the lists; otherwise one line says that `?` shows it.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import datetime, tzinfo

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import Label, OptionList, ProgressBar, Static
from textual.widgets.option_list import Option

from chat.views import Delivery, FeedTree, Health, LinkView, SyncProgress, TimelineEntry
from ui.widgets.sidebar import format_rtt, theme_colour

HEALTH_COLOUR = {
    Health.IN_SYNC: "success",
    Health.CATCHING_UP: "warning",
    Health.STALLED: "error",
}
LEGEND = (
    "eager: whole messages pushed at once · lazy: only notes, fetched on request · "
    "↓ from that peer ↑ to it · behind: messages we lack / they lack"
)
"""What the link rows mean, in words (the Details box shows it until something is picked)."""
LEGEND_MIN_HEIGHT = 35
"""Terminal rows from which the legend is shown unasked: below, the lists need the room."""
PICK_HINT = "Pick a link or a feed. Esc, Enter on a message: how it got here."
SEVERITY = {Health.IN_SYNC: 0, Health.CATCHING_UP: 1, Health.STALLED: 2}


def overall_health(progress: SyncProgress, links: list[LinkView]) -> Health | None:
    """The one header state: the worst of the links and the overall progress (None: no
    links at all). Never 'in sync' while any link says we or they are behind."""
    if not links:
        return None
    states = [progress.health, *(link.health for link in links)]
    if any(link.we_are_behind or link.they_are_behind for link in links):
        states.append(Health.CATCHING_UP)
    return max(states, key=SEVERITY.__getitem__)


def peer_label(name: str, key: bytes) -> str:
    """A peer's name, or '@' and its short key when it has none (never a bare base64
    prefix such as '/lgdaz', which reads like a command)."""
    if name and base64.b64encode(key).decode().startswith(name):
        return "@" + name
    return name


def format_rate(value: float, unit: str) -> str:
    """A short rate: '0', '12', '3.4k', '1.2M' followed by the unit."""
    for limit, suffix in ((1e6, "M"), (1e3, "k")):
        if value >= limit:
            return f"{value / limit:.1f}{suffix}{unit}"
    if value >= 10 or value == 0:
        return f"{value:.0f}{unit}"
    return f"{value:.1f}{unit}"


def format_count(value: int) -> str:
    return f"{value:,}"


class ReplicationPane(Vertical):
    """Progress bar with counts, a list of links, a list of feeds and a detail box."""

    BINDINGS = [Binding("question_mark", "toggle_legend", "Legend")]

    class FeedChosen(Message):
        """The user picked a feed; the screen fetches its tree."""

        def __init__(self, feed: bytes) -> None:
            super().__init__()
            self.feed = feed

    class LinkChosen(Message):
        """The user picked a link; the screen lists the feeds it carries."""

        def __init__(self, peer: bytes) -> None:
            super().__init__()
            self.peer = peer

    def __init__(
        self, namer: Callable[[bytes], str], *, tz: tzinfo | None = None, id: str | None = None
    ) -> None:
        super().__init__(id=id)
        self.namer = namer
        self.tz = tz
        self.border_title = "Replication"
        self.links: list[LinkView] | None = None  # None: never drawn yet
        self.feed_trees: list[FeedTree] | None = None
        self.progress: SyncProgress | None = None
        self.legend: bool | None = None
        """Legend shown (True), folded to a hint (False), or by the terminal's height."""
        self._idle = True  # the Details box shows the legend or its hint, nothing picked

    def compose(self) -> ComposeResult:
        yield Label("", id="sync-label")
        yield ProgressBar(total=1, show_eta=False, show_percentage=True, id="sync-bar")
        links = OptionList(id="links")
        links.border_title = "Links"
        yield links
        feeds = OptionList(id="feeds")
        feeds.border_title = "Feeds"
        yield feeds
        detail = Static("", id="detail")
        detail.border_title = "Details"
        yield detail

    def on_mount(self) -> None:
        self._show_idle()

    def on_resize(self) -> None:
        if self._idle:
            self._show_idle()

    @property
    def legend_shown(self) -> bool:
        if self.legend is not None:
            return self.legend
        return self.app.size.height >= LEGEND_MIN_HEIGHT

    def legend_text(self) -> Text:
        text = Text(PICK_HINT + "\n")
        if self.legend_shown:
            text.append(LEGEND, style="dim")
        else:
            text.append("? explains the figures", style="dim italic")
        return text

    def _show_idle(self) -> None:
        self._idle = True
        self.query_one("#detail", Static).update(self.legend_text())

    def action_toggle_legend(self) -> None:
        """`?`: show the legend (or fold it back to its hint line)."""
        self.legend = not (self.legend_shown and self._idle)
        self._show_idle()

    def _show_detail(self, text: Text | str) -> None:
        self._idle = False
        self.query_one("#detail", Static).update(text)

    def _colour(self, health: Health) -> str:
        return theme_colour(self.app, HEALTH_COLOUR[health])

    def show(self, progress: SyncProgress, links: list[LinkView], feeds: list[FeedTree]) -> None:
        """Redraw with fresh figures (cheap when nothing changed)."""
        if (progress, links) != (self.progress, self.links):
            self.progress = progress
            health = overall_health(progress, links)
            label = Text()
            if health is None:
                label.append("○ no peers yet", style="dim")
            else:
                label.append(f"● {health.value}", style=self._colour(health))
            label.append(f" · {progress.feeds} feed{'' if progress.feeds == 1 else 's'}\n")
            label.append(f"{format_count(progress.held)} msgs held")
            missing = progress.known - progress.have
            if missing > 0:
                label.append(f", {format_count(missing)} to fetch", style="dim")
            self.query_one("#sync-label", Label).update(label)
            bar = self.query_one("#sync-bar", ProgressBar)
            bar.display = progress.known > 0 and missing > 0
            bar.update(total=max(progress.known, 1), progress=min(progress.have, progress.known))
        if links != self.links:
            self.links = links
            self._show_links(links)
        if feeds != self.feed_trees:
            self.feed_trees = feeds
            self._show_feeds(feeds)

    def _show_links(self, links: list[LinkView]) -> None:
        widget = self.query_one("#links", OptionList)
        highlighted = widget.highlighted
        options: list[Option] = []
        for link in links:
            colour = self._colour(link.health)
            row = Text()
            row.append("● ", style=colour)
            row.append(peer_label(link.name, link.peer), style="bold")
            rtt = format_rtt(link.rtt_ms)
            row.append(f"  {link.health.value}", style=colour)
            if rtt:
                row.append(f" {rtt}", style="dim")
            row.append(f"\n  eager ↓{link.eager_in} ↑{link.eager_out} · lazy {link.lazy}")
            row.append("\n  behind: we ")
            row.append(format_count(link.we_are_behind), style=_lag_style(link.we_are_behind, self))
            row.append(" · they ")
            row.append(
                format_count(link.they_are_behind), style=_lag_style(link.they_are_behind, self)
            )
            row.append(
                f"\n  ↓{format_rate(link.msgs_per_s_in, ' msg/s')}"
                f" {format_rate(link.bytes_per_s_in, 'B/s')}"
                f"  ↑{format_rate(link.msgs_per_s_out, ' msg/s')}"
                f" {format_rate(link.bytes_per_s_out, 'B/s')}",
                style="dim",
            )
            options.append(Option(row, id=link.peer.hex()))
        if not options:
            options.append(Option(Text("no connected peers", style="dim"), disabled=True))
        widget.set_options(options)
        if highlighted is not None and links:
            widget.highlighted = min(highlighted, len(links) - 1)

    def _show_feeds(self, feeds: list[FeedTree]) -> None:
        widget = self.query_one("#feeds", OptionList)
        highlighted = widget.highlighted
        options: list[Option] = []
        for tree in feeds:
            row = Text()
            if tree.forked:
                row.append("⚠ forked ", style=self._colour(Health.STALLED))
            row.append(tree.name, style="bold")
            row.append(f" #{tree.local_seq}", style="dim")
            source = self.namer(tree.eager_source) if tree.eager_source else "(none)"
            row.append(f"  ← {source}", style="dim")
            if tree.eager_targets:
                row.append(f" → {len(tree.eager_targets)}", style="dim")
            options.append(Option(row, id=tree.feed.hex()))
        if not options:
            options.append(Option(Text("no feeds", style="dim"), disabled=True))
        widget.set_options(options)
        if highlighted is not None and feeds:
            widget.highlighted = min(highlighted, len(feeds) - 1)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        option_id = event.option.id
        if option_id is None:
            return
        if event.option_list.id == "feeds":
            self.post_message(self.FeedChosen(bytes.fromhex(option_id)))
        elif event.option_list.id == "links":
            self.post_message(self.LinkChosen(bytes.fromhex(option_id)))

    # ------------------------------------------------------------------ detail box

    def _label(self, key: bytes | None) -> str:
        return "—" if key is None else self.namer(key)

    def show_tree(self, tree: FeedTree) -> None:
        """Show one feed's spanning tree around us: who feeds us, whom we feed, who is lazy."""
        text = Text()
        text.append(f"Feed {tree.name}", style="bold")
        text.append(f"  seq {tree.local_seq}\n")
        if tree.forked:
            text.append("⚠ forked: replication stopped\n", style=self._colour(Health.STALLED))
        source = self._label(tree.eager_source) if tree.eager_source else "none (lazy only)"
        text.append(f"eager source: {source}\n")
        targets = ", ".join(self._label(k) for k in tree.eager_targets) or "nobody"
        text.append(f"we feed eagerly: {targets}\n")
        lazy = ", ".join(self._label(k) for k in tree.lazy_peers) or "nobody"
        text.append(f"lazy (notes only): {lazy}")
        self._show_detail(text)

    def show_link_feeds(self, link: LinkView, feeds: list[FeedTree]) -> None:
        """Show which feeds a link carries eagerly in each direction."""
        inbound = [t.name for t in feeds if t.eager_source == link.peer]
        outbound = [t.name for t in feeds if link.peer in t.eager_targets]
        lazy = [t.name for t in feeds if link.peer in t.lazy_peers]
        text = Text()
        text.append(f"Link {peer_label(link.name, link.peer)}\n", style="bold")
        text.append(f"eager in: {', '.join(inbound) or 'none'}\n")
        text.append(f"eager out: {', '.join(outbound) or 'none'}\n")
        text.append(f"lazy: {', '.join(lazy) or 'none'}")
        self._show_detail(text)

    def show_provenance(self, entry: TimelineEntry, delivery: Delivery | None) -> None:
        """Answer 'how did this message get here?'."""
        text = Text()
        text.append("How did this get here?\n", style="bold")
        posted = datetime.fromtimestamp(entry.timestamp / 1000, tz=self.tz)
        text.append(f"{entry.author_name} #{entry.seq}, written {posted:%H:%M:%S}\n")
        if delivery is None:
            text.append("no delivery record (stored before records were kept)")
        elif delivery.peer is None:
            text.append("written here, by you")
        else:
            received = datetime.fromtimestamp(delivery.received_at / 1000, tz=self.tz)
            who = delivery.peer_name or f"@{delivery.peer.hex()[:6]}"
            text.append(f"delivered by {who} at {received:%H:%M:%S}")
        self._show_detail(text)

    def show_message(self, text: str) -> None:
        self._show_detail(text)


def _lag_style(behind: int, pane: ReplicationPane) -> str:
    if behind == 0:
        return ""
    if behind < 100:
        return theme_colour(pane.app, "warning")
    return theme_colour(pane.app, "error")
