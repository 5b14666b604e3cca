"""The left pane: channels with quiet unread sigils; peers with source, state, reason and RTT."""

from __future__ import annotations

import textwrap
from datetime import datetime, tzinfo

from rich.text import Text
from textual.app import App
from textual.color import Color
from textual.message import Message
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from chat.views import CONVERSATION_PREFIX, ChannelInfo, ConversationInfo, PeerView

STATE_GLYPHS = {
    "connected": ("●", "success"),
    "connecting": ("◌", "warning"),
    "handshake": ("◌", "warning"),
    "backoff": ("○", "error"),
    "failed": ("✕", "error"),
    "blocked": ("⊘", "error"),
}
"""Peer state -> (glyph, theme colour); anything else is drawn dim."""

PRESENCE_DOTS = {"online": ("◆", "success"), "away": ("◇", "warning"), "offline": ("◇", "")}
"""Presence (docs/ephemeral.md) -> (dot after the name, theme colour)."""


def theme_colour(app: App[object], name: str) -> str:
    """A theme colour as an opaque '#rrggbb' Rich can use ('' if the theme lacks it)."""
    value = app.theme_variables.get(name)
    if not value:
        return ""
    try:
        colour = Color.parse(value)
        if colour.a < 1:
            colour = Color.parse(app.theme_variables.get("background", "#000000")) + colour
    except Exception:
        return ""
    return colour.hex6


def format_rtt(rtt_ms: float | None) -> str:
    if rtt_ms is None:
        return ""
    if rtt_ms < 10:
        return f"{rtt_ms:.1f}ms"
    return f"{rtt_ms:.0f}ms"


def peer_reason(peer: PeerView) -> str:
    """The peer's reason unless it only repeats its state: "connected: connected
    (incoming)" says it twice, and the direction is shown as ←in / →out anyway."""
    if peer.reason.startswith((peer.state, "linked")):
        return ""
    return peer.reason


def conversation_label(title: str) -> str:
    """How a private conversation is named in lists and titles."""
    return f"✉ {title}"


class ChannelList(OptionList):
    """Channels, then private conversations (one per person or group), the current one
    highlighted; unread ones bold with a sigil and a count, and '@N' when N of the unread
    posts mention us."""

    class ChannelChosen(Message):
        """The user picked a channel or a conversation in the list."""

        def __init__(self, channel: str) -> None:
            super().__init__()
            self.channel = channel

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.border_title = "Channels"
        self.channels: list[ChannelInfo] = []
        self.conversations: list[ConversationInfo] = []
        self.current = ""
        self._quiet = False

    def show(
        self,
        channels: list[ChannelInfo],
        current: str,
        conversations: list[ConversationInfo] = (),  # type: ignore[assignment]
        current_title: str = "",
    ) -> None:
        """Redraw with these channels and conversations (the current view always listed)."""
        private = current.startswith(CONVERSATION_PREFIX)
        if current and not private and not any(c.name == current for c in channels):
            channels = [*channels, ChannelInfo(current)]
        if private and not any(c.view == current for c in conversations):
            conversations = [*conversations, ConversationInfo(current, (), current_title)]
        channels = sorted(channels, key=lambda c: c.name)
        conversations = sorted(conversations, key=lambda c: c.title.lower())
        if (channels, conversations, current) == (self.channels, self.conversations, self.current):
            return
        self.channels = channels
        self.conversations = list(conversations)
        self.current = current
        warning = theme_colour(self.app, "warning")
        rows: list[tuple[str, Text, int, int]] = [
            (c.name, Text(f"#{c.name}"), c.unread, c.mentions) for c in channels
        ]
        rows += [(c.view, Text(conversation_label(c.title)), c.unread, 0) for c in conversations]
        options = []
        for view, label, unread, mentions in rows:
            if unread and view != current:
                label.stylize("bold")
                label.append(f" ● {unread}", style=f"bold {warning}" if view[0] == "@" else "bold")
                if mentions:
                    label.append(f" @{mentions}", style=f"bold {warning}")
            options.append(Option(label, id=view))
        self._quiet = True
        self.set_options(options)
        for index, (view, *_rest) in enumerate(rows):
            if view == current:
                self.highlighted = index
        self._quiet = False

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        if event.option.id is not None:
            self.post_message(self.ChannelChosen(event.option.id))


class PeerList(OptionList):
    """One two-line row per peer: who and how fast, then where from and why (not) connected."""

    def __init__(self, *, id: str | None = None, tz: tzinfo | None = None) -> None:
        super().__init__(id=id)
        self.border_title = "Peers"
        self.peers: list[PeerView] | None = None  # None: never drawn yet
        self.tz = tz

    def show(self, peers: list[PeerView], *, force: bool = False) -> None:
        peers = sorted(peers, key=lambda p: (p.state != "connected", p.name.lower(), p.key))
        if peers == self.peers and not force:
            return
        self.peers = peers
        highlighted = self.highlighted
        options: list[Option] = []
        width = max(12, self.scrollable_content_region.width or 22)
        for peer in peers:
            glyph, colour = STATE_GLYPHS.get(peer.state, ("·", "foreground-muted"))
            style = theme_colour(self.app, colour)
            row = Text()
            row.append(f"{glyph} ", style=style)
            if peer.name:
                row.append(peer.name, style="bold")
                row.append(f" @{peer.short_key}", style="dim")
            else:
                row.append(f"@{peer.short_key}", style="bold")
            if peer.presence in PRESENCE_DOTS:
                dot, dot_colour = PRESENCE_DOTS[peer.presence]
                row.append(f" {dot}", style=theme_colour(self.app, dot_colour) or "dim")
            details = [peer.source]
            if peer.presence in ("online", "away"):
                details.append(peer.presence)
            elif peer.last_seen is not None:
                seen = datetime.fromtimestamp(peer.last_seen, self.tz)
                details.append(f"last seen {seen:%H:%M}")
            if peer.direction:
                details.append("→out" if peer.direction == "out" else "←in")
            rtt = format_rtt(peer.rtt_ms)
            if rtt:
                details.append(rtt)
            # Wrapped here with the indent: the list would wrap a long line to column 0.
            for piece in textwrap.wrap(" ".join(details), width - 2):
                row.append(f"\n  {piece}", style="dim")
            reason = peer_reason(peer)
            state = peer.state + (f": {reason}" if reason else "")
            for piece in textwrap.wrap(state, width - 2):
                row.append(f"\n  {piece}", style=style if colour != "success" else "")
            # Claims it never made good are not believed; say which (the liar rule).
            for doubt in peer.doubts:
                for piece in textwrap.wrap(doubt, width - 2):
                    row.append(f"\n  {piece}", style=theme_colour(self.app, "warning") or "")
            options.append(Option(row, id=peer.key.hex()))
        self.set_options(options)
        if options:
            self.highlighted = min(highlighted or 0, len(options) - 1)
        if not peers:
            self.set_options([Option(Text("no peers yet", style="dim"), disabled=True)])

    def on_resize(self) -> None:
        if self.peers:
            self.show(self.peers, force=True)
