"""Under the conversation: whispers from "someone nearby" and who is typing (docs/ephemeral.md).

Whispers are never stored, so they are not part of the conversation's timeline: they
are shown here, in italics and the accent colour, until they expire. The typing line
names who is typing in this channel for a few seconds after their last key.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.widgets import Static

from ui.port import WhisperLike
from ui.widgets.sidebar import theme_colour

SHOWN_WHISPERS = 3  # the newest ones; older ones stay until they expire, unseen


def typing_line(names: Sequence[str], channel: str) -> str:
    """ "alice is typing in #dev…", "alice and bob are typing…", "3 people are typing…"."""
    if not names:
        return ""
    if len(names) == 1:
        who, verb = names[0], "is"
    elif len(names) == 2:
        who, verb = f"{names[0]} and {names[1]}", "are"
    else:
        who, verb = f"{len(names)} people", "are"
    return f"{who} {verb} typing in #{channel}…"


class NearbyLine(Static):
    """Whispers and the typing line of the current channel; hidden when there is neither."""

    DEFAULT_CSS = """
    NearbyLine { height: auto; max-height: 4; padding: 0 1; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("", id=id)
        self.shown: tuple[tuple[str, ...], str] = ((), "")

    def show(self, whispers: Sequence[WhisperLike], typing: Sequence[str], channel: str) -> None:
        lines = tuple(
            ("you whispered: " if w.own else "someone nearby whispers: ") + w.text
            for w in whispers[-SHOWN_WHISPERS:]
        )
        typed = typing_line(typing, channel)
        if (lines, typed) == self.shown:
            return
        self.shown = (lines, typed)
        accent = theme_colour(self.app, "accent")
        text = Text()
        for line in lines:
            text.append(("\n" if text else "") + "~ " + line, style=f"italic {accent}")
        if typed:
            text.append(("\n" if text else "") + typed, style="dim italic")
        self.update(text)
        self.display = bool(lines or typed)
