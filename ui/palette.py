"""Command palette provider: every slash command, channel switch and pane toggle, searchable."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial
from typing import TYPE_CHECKING

from textual.command import DiscoveryHit, Hit, Hits, Provider

from ui.commands import COMMANDS, Command, CommandSpec, Help, Quit, Search, ShowPeers

if TYPE_CHECKING:
    from ui.screens.main import MainScreen


class TreechatCommands(Provider):
    """Offers /commands (filling the input when they need arguments) and channel switches."""

    def _main(self) -> MainScreen | None:
        from ui.screens.main import MainScreen

        for screen in self.app.screen_stack:
            if isinstance(screen, MainScreen):
                return screen
        return None

    def _entries(self) -> list[tuple[str, Callable[[], Awaitable[None] | None], str]]:
        main = self._main()
        if main is None:
            return []
        entries: list[tuple[str, Callable[[], Awaitable[None] | None], str]] = []
        for spec in COMMANDS:
            entries.append((spec.usage, partial(self._start, main, spec), spec.help))
        views = [*main._channel_names, *(c.view for c in main.conversation_infos)]
        for name in views:
            entries.append(
                (
                    f"Switch to {main.view_title(name)}",
                    partial(main.switch_channel, name),
                    "show this channel or conversation",
                )
            )
        entries.append(("Toggle channels and peers pane", main.action_toggle_sidebar, "F2"))
        entries.append(("Toggle replication pane", main.action_toggle_replication, "F3"))
        entries.append(("Jump to next unread channel", main.action_next_unread, "Ctrl+N"))
        return entries

    async def _start(self, main: MainScreen, spec: CommandSpec) -> None:
        if spec.needs_args:
            main.input.value = f"/{spec.name} "
            main.input.cursor_position = len(main.input.value)
            main.input.focus()
            return
        direct: dict[str, Command] = {
            "peers": ShowPeers(),
            "help": Help(),
            "quit": Quit(),
            "search": Search(),
        }
        command = direct.get(spec.name)
        if command is not None:
            await main.run_command(command)

    async def discover(self) -> Hits:
        for title, callback, help_text in self._entries():
            yield DiscoveryHit(title, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, callback, help_text in self._entries():
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), callback, help=help_text)
