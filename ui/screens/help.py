"""The help dialog: every command with its usage, and the keys."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from ui.commands import help_text

KEYS_HELP = """\
F1 help · F2 channels & peers pane · F3 replication pane (? there: what it shows) · F10 light/dark
Ctrl+N next unread channel · PgUp/PgDn scroll a page · End newest · Ctrl+S SVG screenshot
Esc select messages (↑/↓, Enter = how did this get here, r = reply), Esc again = back
In the input: ↑/↓ history, Tab completes names, /commands and #channels
Ctrl+P command palette · Ctrl+Q quit"""


class HelpScreen(ModalScreen[None]):
    """A modal with the command table and key list; any of Esc, F1, q closes it."""

    BINDINGS = [Binding("escape,f1,q", "dismiss", "Close")]

    def __init__(self, topic_text: str | None = None) -> None:
        super().__init__()
        self.topic_text = topic_text

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-box") as box:
            box.border_title = "Help"
            box.border_subtitle = "Esc closes"
            yield Static(self.topic_text or help_text(), id="help-commands")
            yield Static(KEYS_HELP, id="help-keys")
