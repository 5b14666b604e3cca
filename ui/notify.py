"""Telling the user something arrived: the terminal bell and a desktop notification.

The desktop notification is asked for with OSC 9 (iTerm2, Windows Terminal, kitty, foot,
WezTerm) and OSC 777 (urxvt, VTE terminals such as GNOME Terminal); a terminal that knows
neither ignores both. `notify = false` in config.toml turns all of it off.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from textual.app import App

CONTROL = {ord(c): " " for c in "\x07\x1b\x9c\n\r\t;"}


def osc_notifications(title: str, body: str) -> str:
    """The OSC 9 and OSC 777 sequences for one notification (control characters removed,
    so a message text cannot end the sequence early or inject its own)."""
    title, body = title.translate(CONTROL)[:80], body.translate(CONTROL)[:200]
    return f"\x1b]9;{title}: {body}\x07\x1b]777;notify;{title};{body}\x07"


class Notifier:
    """Rings the bell and writes the notification sequences, unless disabled."""

    def __init__(self, *, enabled: bool = True, write: Callable[[str], None] | None = None):
        self.enabled = enabled
        self._write = write
        self.sent: list[str] = []
        """Texts notified so far (tests read it)."""

    def alert(self, app: App[Any], title: str, body: str) -> None:
        if not self.enabled:
            return
        self.sent.append(body)
        app.bell()
        sequence = osc_notifications(title, body)
        if self._write is not None:
            self._write(sequence)
            return
        driver = app._driver
        if driver is not None and not app.is_headless:
            driver.write(sequence)
            driver.flush()
