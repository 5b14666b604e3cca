"""The left pane: channels with quiet unread sigils; peers with source, state, reason and RTT."""

from __future__ import annotations

import textwrap

from rich.text import Text
from textual.app import App
from textual.color import Color
from textual.message import Message
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from chat.views import ChannelInfo, PeerView

STATE_GLYPHS = {
    "connected": ("●", "success"),
    "connecting": ("◌", "warning"),
    "handshake": ("◌", "warning"),
    "backoff": ("○", "error"),
    "failed": ("✕", "error"),
    "blocked": ("⊘", "error"),
}
"""Peer state -> (glyph, theme colour); anything else is drawn dim."""


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


PRIVATE_VIEW = "@private"
"""The pseudo-channel listing private messages (a public channel cannot start with '@')."""


class ChannelList(OptionList):
    """Channels, the current one highlighted; unread ones bold with a sigil and a count,
    and '@N' when N of the unread posts mention us."""

    class ChannelChosen(Message):
        """The user picked a channel in the list."""

        def __init__(self, channel: str) -> None:
            super().__init__()
            self.channel = channel

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.border_title = "Channels"
        self.channels: list[ChannelInfo] = []
        self.current = ""
        self._quiet = False

    def show(self, channels: list[ChannelInfo], current: str) -> None:
        """Redraw with these channels (the current one is always listed)."""
        if not any(c.name == current for c in channels) and current:
            channels = [*channels, ChannelInfo(current)]
        channels = sorted((c for c in channels if c.name != PRIVATE_VIEW), key=lambda c: c.name)
        channels.append(ChannelInfo(PRIVATE_VIEW))
        if channels == self.channels and current == self.current:
            return
        self.channels = channels
        self.current = current
        options = []
        for info in channels:
            label = Text("✉ private" if info.name == PRIVATE_VIEW else f"#{info.name}")
            if info.unread and info.name != current:
                label.stylize("bold")
                label.append(f" ● {info.unread}", style="bold")
                if info.mentions:
                    label.append(
                        f" @{info.mentions}", style=f"bold {theme_colour(self.app, 'warning')}"
                    )
            options.append(Option(label, id=info.name))
        self._quiet = True
        self.set_options(options)
        for index, info in enumerate(channels):
            if info.name == current:
                self.highlighted = index
        self._quiet = False

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        if event.option.id is not None:
            self.post_message(self.ChannelChosen(event.option.id))


class PeerList(OptionList):
    """One two-line row per peer: who and how fast, then where from and why (not) connected."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.border_title = "Peers"
        self.peers: list[PeerView] = []

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
            details = [peer.source]
            if peer.direction:
                details.append("→out" if peer.direction == "out" else "←in")
            rtt = format_rtt(peer.rtt_ms)
            if rtt:
                details.append(rtt)
            row.append("\n  " + " ".join(details), style="dim")
            shown_reason = peer.reason and peer.reason not in (peer.state, "linked")
            state = peer.state + (f": {peer.reason}" if shown_reason else "")
            for piece in textwrap.wrap(state, width - 2):
                row.append(f"\n  {piece}", style=style if colour != "success" else "")
            options.append(Option(row, id=peer.key.hex()))
        self.set_options(options)
        if options:
            self.highlighted = min(highlighted or 0, len(options) - 1)
        if not peers:
            self.set_options([Option(Text("no peers yet", style="dim"), disabled=True)])

    def on_resize(self) -> None:
        if self.peers:
            self.show(self.peers, force=True)
