"""The TUI shows a user error in its own words, and a bug as "internal error, see the log"
with the traceback in the log (never a bug's message dressed up as the user's mistake)."""

from __future__ import annotations

import logging
from datetime import UTC

import pytest
from textual.widgets import Static

from chat.errors import NodeError
from tests.test_ui_fakes import BASE_TIME_MS, FakeNode
from ui.app import build_app
from ui.screens.main import INTERNAL_ERROR


class BuggyNode(FakeNode):
    """Joining fails with a user error; following has a bug."""

    async def join(self, invite: str) -> None:
        raise NodeError("this invite is for this node itself")

    async def follow(self, feed: bytes) -> None:
        raise KeyError("a bug deep inside")


async def test_user_errors_are_words_and_bugs_are_internal_errors(
    caplog: pytest.LogCaptureFixture,
) -> None:
    node = BuggyNode()
    node.add_person("ada")
    app = build_app(node, tz=UTC, clock=lambda: BASE_TIME_MS / 1000)
    async with app.run_test(size=(100, 30)) as pilot:
        main = app.main

        async def say(line: str) -> None:
            main.input.focus()
            main.input.value = line
            await pilot.press("enter")
            for _ in range(20):
                await pilot.pause()
                if main.errors:
                    return

        await say("/join net:127.0.0.1:1~shs:x")
        assert main.errors[-1] == "could not join: this invite is for this node itself"
        with caplog.at_level(logging.ERROR):
            await say("/follow ada")
        status = str(main.query_one("#status", Static).render())
        assert INTERNAL_ERROR in main.errors[-1] and INTERNAL_ERROR in status
        assert "a bug deep inside" not in status
        logged = [r.exc_info[1] for r in caplog.records if r.exc_info]
        assert logged and "a bug deep inside" in str(logged[-1])
