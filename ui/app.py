"""The one factory that builds the treechat TUI, for the CLI, the demo, tests and screenshots."""

from __future__ import annotations

import argparse
import asyncio
import logging
import time
from collections.abc import Callable
from datetime import tzinfo
from pathlib import Path

from textual.app import App

from chat.config import Config
from ui.notify import Notifier
from ui.palette import TreechatCommands
from ui.port import ChatNode
from ui.screens.main import MainScreen


class TreechatApp(App[None]):
    """The TUI around one running node; it never starts or stops the node itself."""

    CSS_PATH = "app.tcss"
    TITLE = "treechat"
    COMMANDS = App.COMMANDS | {TreechatCommands}

    def __init__(
        self,
        node: ChatNode,
        *,
        channel: str | None = None,
        tz: tzinfo | None = None,
        now: Callable[[], float] = time.time,
        screenshot_dir: str | Path = ".",
        theme: str = "textual-dark",
        notifier: Notifier | None = None,
    ) -> None:
        super().__init__()
        self._notifier = notifier
        self.node = node
        self._channel = channel
        self._tz = tz
        self._now = now
        self._screenshot_dir = str(screenshot_dir)
        self.theme = theme

    def on_mount(self) -> None:
        self.push_screen(
            MainScreen(
                self.node,
                channel=self._channel,
                tz=self._tz,
                now=self._now,
                screenshot_dir=self._screenshot_dir,
                notifier=self._notifier,
            )
        )

    @property
    def main(self) -> MainScreen:
        """The chat screen (tests and the screenshot script drive it)."""
        for screen in self.screen_stack:
            if isinstance(screen, MainScreen):
                return screen
        raise LookupError("the main screen is not mounted yet")


def build_app(
    node: ChatNode,
    *,
    channel: str | None = None,
    tz: tzinfo | None = None,
    now: Callable[[], float] = time.time,
    screenshot_dir: str | Path = ".",
    theme: str = "textual-dark",
    notifier: Notifier | None = None,
) -> TreechatApp:
    """Build the TUI for `node` (already opened; started or not).

    channel: the channel shown first (default: #general, else the most recent one).
    tz: time zone for timestamps (default: local; tests pass UTC).
    now: seconds since the epoch, for screenshot names (tests freeze it).
    screenshot_dir: where Ctrl+S writes SVG screenshots.
    theme: a Textual theme name; F10 switches light/dark.
    notifier: bell and desktop notification on a DM or a mention (default: off).
    """
    return TreechatApp(
        node,
        channel=channel,
        tz=tz,
        now=now,
        screenshot_dir=screenshot_dir,
        theme=theme,
        notifier=notifier,
    )


def run(args: argparse.Namespace, config: Config) -> int:
    """`treechat` with no command: open and start the node, run the TUI, stop the node."""
    return asyncio.run(async_run_tui(config))


async def async_run_tui(config: Config) -> int:
    """Run the TUI on a node built from `config` until the user quits."""
    from chat.node import Node

    node = await Node.open(config)
    # The screen belongs to the TUI: the node's log goes to a file in the data dir.
    logging.basicConfig(
        filename=config.data_dir / "tui.log",
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        await node.start()  # a ListenError reaches the CLI: one line, exit 1
        app = build_app(
            node, screenshot_dir=config.data_dir, notifier=Notifier(enabled=config.notify)
        )
        await app.run_async()
    finally:
        await node.stop()
    return 0
