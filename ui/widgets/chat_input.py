"""The input line: Enter sends exactly what was typed, once; history, completion, pasted blocks.

Textual runs a widget's key bindings (Enter, Backspace, Up, Tab...) only once the key
has bubbled up to the app, by which time the next keys may already be in the field: Enter
then sent the line with later keys in it, again and again. Here every key the input binds
is acted on in the input's own key handler, in arrival order. Enter takes the line and
empties the field in that one synchronous step; the line travels to the screen as a
`ChatInput.Line` message, and the screen handles lines one at a time in order.
"""

from __future__ import annotations

from collections.abc import Callable

from textual import events
from textual.binding import Binding
from textual.message import Message
from textual.widgets import Input

from chat.content import MAX_TEXT_BYTES
from ui.commands import completions

HISTORY_LIMIT = 500
PASTE_CONFIRM_LINES = 10
"""A pasted block longer than this needs a second Enter before it is posted."""


class ChatInput(Input):
    """An Input with shell-like history, cycling Tab completion and multi-line paste."""

    class Line(Message):
        """A line (or a pasted block) the user sent; the field is already empty."""

        def __init__(self, text: str, *, pasted: bool = False) -> None:
            super().__init__()
            self.text = text
            self.pasted = pasted

    class PasteChanged(Message):
        """A pasted block is held, needs confirming, was refused or dropped (words for it)."""

        def __init__(self, text: str, *, error: bool = False) -> None:
            super().__init__()
            self.text = text
            self.error = error

    BINDINGS = [
        Binding("up", "history(-1)", "Previous line", show=False),
        Binding("down", "history(1)", "Next line", show=False),
        Binding("tab", "complete", "Complete", show=False),
    ]

    def __init__(
        self,
        *,
        names: Callable[[], list[str]],
        channels: Callable[[], list[str]],
        placeholder: str = "",
        id: str | None = None,
    ) -> None:
        super().__init__(placeholder=placeholder, id=id, select_on_focus=False)
        self._placeholder = placeholder
        self._names = names
        self._channels = channels
        self.history: list[str] = []
        self._history_pos: int | None = None
        self._draft = ""
        self._cycle: tuple[int, list[str], int, str] | None = None  # start, candidates, i, line
        self.pasted: str | None = None
        """A multi-line paste waiting for Enter (it is posted as one message)."""
        self._paste_confirmed = False

    async def _on_key(self, event: events.Key) -> None:
        for key in event.aliases:
            for binding in self._bindings.key_to_bindings.get(key, ()):
                if await self.app.run_action(binding.action, self):
                    # Handled here; an action that declines (PageUp: nothing to scroll)
                    # lets the key bubble on to the screen's bindings as before.
                    event.stop()
                    event.prevent_default()
                    self._restart_blink()
                    return
        # Anything else (a printable key) falls through to Input's own handler.

    async def action_submit(self) -> None:
        """Take the line and empty the field in one step, then hand the line on."""
        line, self.value = self.value, ""
        self._cycle = None
        if self.pasted is not None:
            self._submit_paste(line)
            return
        if not line.strip():
            return
        self.remember(line)
        self.post_message(self.Line(line))

    def _submit_paste(self, typed: str) -> None:
        assert self.pasted is not None
        lines = self.pasted.count("\n") + 1
        if lines > PASTE_CONFIRM_LINES and not self._paste_confirmed:
            self.value = typed
            self._paste_confirmed = True
            self.post_message(
                self.PasteChanged(f"{lines} lines pasted: Enter again posts them, Esc drops")
            )
            return
        text = f"{typed.rstrip()}\n{self.pasted}" if typed.strip() else self.pasted
        self.drop_paste(quiet=True)
        self.post_message(self.Line(text, pasted=True))

    def drop_paste(self, *, quiet: bool = False) -> bool:
        """Forget a held paste; True if there was one."""
        if self.pasted is None:
            return False
        self.pasted = None
        self._paste_confirmed = False
        self.placeholder = self._placeholder
        if not quiet:
            self.post_message(self.PasteChanged("paste dropped"))
        return True

    def _on_paste(self, event: events.Paste) -> None:
        text = event.text.replace("\r\n", "\n").replace("\r", "\n").strip("\n")
        if "\n" not in text:
            return  # one line: Input's own handler inserts it
        event.stop()
        event.prevent_default()
        held = text if self.pasted is None else f"{self.pasted}\n{text}"
        size = len(held.encode("utf-8"))
        if size > MAX_TEXT_BYTES:
            self.post_message(
                self.PasteChanged(
                    f"not pasted: a message is at most {MAX_TEXT_BYTES:,} bytes and this paste "
                    f"is {size:,}; split it or share it as a file",
                    error=True,
                )
            )
            return
        self.pasted = held
        self._paste_confirmed = False
        lines = held.count("\n") + 1
        self.placeholder = f"[{lines} pasted lines] Enter posts them as one message, Esc drops"
        self.post_message(
            self.PasteChanged(
                f"{lines} lines pasted: Enter posts them as one message"
                + (" (after a confirm)" if lines > PASTE_CONFIRM_LINES else "")
                + ", Esc drops them"
            )
        )

    def remember(self, line: str) -> None:
        """Add a sent line to the history (consecutive duplicates are kept once)."""
        if line and (not self.history or self.history[-1] != line):
            self.history.append(line)
            del self.history[:-HISTORY_LIMIT]
        self._history_pos = None
        self._draft = ""

    def action_history(self, step: int) -> None:
        if not self.history:
            return
        if self._history_pos is None:
            if step > 0:
                return
            self._draft = self.value
            self._history_pos = len(self.history)
        position = self._history_pos + step
        if position < 0:
            return
        if position >= len(self.history):
            self._history_pos = None
            self._set(self._draft)
            return
        self._history_pos = position
        self._set(self.history[position])

    def _set(self, value: str) -> None:
        self.value = value
        self.cursor_position = len(value)

    def action_complete(self) -> None:
        line = self.value
        if self._cycle is not None and self._cycle[3] == line:
            start, candidates, index, _ = self._cycle
            index = (index + 1) % len(candidates)
        else:
            start, candidates = completions(
                line, self.cursor_position, names=self._names(), channels=self._channels()
            )
            if not candidates:
                self.app.bell()
                return
            index = 0
        end = line.find(" ", start)
        end = len(line) if end < 0 else end
        choice = candidates[index]
        suffix = "" if len(candidates) > 1 else " "
        new_line = line[:start] + choice + suffix + line[end:].lstrip(" ")
        self.value = new_line
        self.cursor_position = start + len(choice) + len(suffix)
        self._cycle = (start, candidates, index, new_line) if len(candidates) > 1 else None

    def on_input_changed(self, event: Input.Changed) -> None:
        if self._cycle is not None and self._cycle[3] != event.value:
            self._cycle = None
