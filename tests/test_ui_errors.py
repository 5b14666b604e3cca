"""The TUI shows a user error in its own words, and a bug as "internal error, see the log"
with the traceback in the log (never a bug's message dressed up as the user's mistake);
a node's store error (a full disk) is shown in words, once, and so is its end."""

from __future__ import annotations

import logging
from datetime import UTC
from pathlib import Path

import pytest
from textual.widgets import Static

from chat.errors import NodeError
from tests.nodes import open_node
from tests.test_hostile import FullDisk
from tests.test_ui import running, status_text, wait_for
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
    app = build_app(node, tz=UTC, now=lambda: BASE_TIME_MS / 1000)
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


async def test_a_full_disk_is_shown_in_words_once_and_its_end_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = await open_node(tmp_path / "other")
    try:
        async with running(tmp_path / "me", start=True) as (app, pilot, node):
            assert other.address is not None and node.manager is not None
            node.manager.store_fault.retry_first, node.manager.store_fault.retry_max = 0.05, 0.1
            await node.follow(other.feed_id)
            await node.connect(other.address)
            disk = FullDisk(monkeypatch, node.store)
            disk.fill()
            await other.post("while the disk is full", "general")
            await wait_for(lambda: disk.attempts >= 4, pilot)
            await pilot.pause()
            assert "⚠ the database refuses new messages" in status_text(app)
            assert "disk is full" in status_text(app)
            assert len(app.main.errors) == 1  # said once, not once per attempt
            disk.free()
            await wait_for(lambda: "the database works again" in status_text(app), pilot)
            assert "⚠" not in status_text(app) and len(app.main.errors) == 1
    finally:
        await other.stop()
