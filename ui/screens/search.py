"""The search dialog: words in, matching posts and private messages out; Enter opens one.

Results come from the node's full-text index (docs/store.md), newest first, each with
where it lives (#channel or ✉ people), who wrote it and when. Typing searches again
after a short pause; Enter in the field (or ↓) moves to the results, Enter on a result
closes the dialog and the main screen jumps to that message in its conversation.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, tzinfo

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, OptionList, Static
from textual.widgets.option_list import Option

from chat.views import SearchHit

SEARCH_DELAY = 0.15
"""Seconds of no typing before the words are searched."""
RESULT_LIMIT = 50

Searcher = Callable[[str, int], Awaitable[list[SearchHit]]]


class SearchScreen(ModalScreen[SearchHit | None]):
    """Ctrl+F or /search: a field, the results, Enter to open one, Esc to close."""

    BINDINGS = [
        Binding("escape", "dismiss_none", "Close"),
        Binding("down", "to_results", "Results", show=False),
    ]

    def __init__(
        self,
        search: Searcher,
        title_of: Callable[[str], str],
        *,
        query: str = "",
        tz: tzinfo | None = None,
    ) -> None:
        super().__init__()
        self._search = search
        self._title_of = title_of
        self.query_text = query
        self.tz = tz
        self.hits: list[SearchHit] = []
        self.searched = ""
        """The words the shown results are for (tests wait on it)."""

    def compose(self) -> ComposeResult:
        with Vertical(id="search-box") as box:
            box.border_title = "Search"
            box.border_subtitle = "Enter opens · Esc closes"
            yield Input(value=self.query_text, placeholder="words to find", id="search-input")
            yield Static("", id="search-summary")
            yield OptionList(id="search-results")

    def on_mount(self) -> None:
        self.query_one("#search-input", Input).focus()
        if self.query_text.strip():
            self.run_search(self.query_text, delay=0)

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self.run_search(event.value, delay=SEARCH_DELAY)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if self.searched != event.value:
            self.run_search(event.value, delay=0, then_focus=True)
        else:
            self.action_to_results()

    @work(exclusive=True, group="search", exit_on_error=False)
    async def run_search(self, words: str, *, delay: float, then_focus: bool = False) -> None:
        if delay:
            import asyncio

            await asyncio.sleep(delay)
        summary = self.query_one("#search-summary", Static)
        try:
            hits = await self._search(words, RESULT_LIMIT) if words.strip() else []
        except Exception as exc:
            summary.update(f"⚠ search failed: {exc}")
            return
        self.hits = hits
        self.searched = words
        self._show(hits, words)
        if then_focus:
            self.action_to_results()

    def _show(self, hits: list[SearchHit], words: str) -> None:
        summary = self.query_one("#search-summary", Static)
        if not words.strip():
            summary.update("type words to find in posts and private messages")
        elif not hits:
            summary.update(f"nothing found for “{words.strip()}”")
        else:
            more = "+" if len(hits) >= RESULT_LIMIT else ""
            summary.update(f"{len(hits)}{more} found, newest first")
        results = self.query_one("#search-results", OptionList)
        results.set_options(self._row(i, hit) for i, hit in enumerate(hits))
        if hits:
            results.highlighted = 0

    def _row(self, index: int, hit: SearchHit) -> Option:
        entry = hit.entry
        when = datetime.fromtimestamp(entry.timestamp / 1000, tz=self.tz)
        row = Text()
        row.append(self._title_of(hit.view), style="bold")
        row.append(f" · {entry.author_name} · {when:%d %b %Y %H:%M}", style="dim")
        first = entry.text.splitlines()[0] if entry.text else ""
        extra = " …" if len(entry.text.splitlines()) > 1 else ""
        row.append(f"\n  {first}{extra}")
        return Option(row, id=str(index))

    def action_to_results(self) -> None:
        results = self.query_one("#search-results", OptionList)
        if self.hits:
            results.focus()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        if event.option.id is not None:
            self.dismiss(self.hits[int(event.option.id)])

    def action_dismiss_none(self) -> None:
        self.dismiss(None)
