"""The input line: Up/Down walk the sent-line history, Tab completes names, commands, channels."""

from __future__ import annotations

from collections.abc import Callable

from textual.binding import Binding
from textual.widgets import Input

from ui.commands import completions

HISTORY_LIMIT = 500


class ChatInput(Input):
    """An Input with shell-like history and cycling Tab completion."""

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
        self._names = names
        self._channels = channels
        self.history: list[str] = []
        self._history_pos: int | None = None
        self._draft = ""
        self._cycle: tuple[int, list[str], int, str] | None = None  # start, candidates, i, line

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
