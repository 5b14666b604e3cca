"""SVG snapshots of the TUI: fixed terminal size, fixed keys and timestamps, UTC, no cursor blink.

The node is the deterministic `FakeNode` scene (tests/test_ui_fakes.py): a live node's
rates, RTTs and backoff timers move between runs, and a snapshot must not.
Update with `pytest tests/test_snapshots.py --snapshot-update` after checking the SVGs.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC
from typing import Any

from textual.pilot import Pilot

from tests.test_ui_fakes import BASE_TIME_MS, FakeNode, scene
from ui.app import TreechatApp, build_app
from ui.widgets.chat_input import ChatInput

SnapCompare = Callable[..., bool]


def make_app(node: FakeNode) -> TreechatApp:
    return build_app(node, tz=UTC, now=lambda: BASE_TIME_MS / 1000)


async def settle(pilot: Pilot[Any]) -> None:
    """Stop the cursor blinking and let the first load and timers run."""
    await pilot.pause()
    app = pilot.app
    assert isinstance(app, TreechatApp)
    app.main.input.cursor_blink = False
    await pilot.pause(0.3)


def test_main_screen_at_80x24(snap_compare: SnapCompare) -> None:
    """Channels (one unread), peers, the conversation with a reply, a mention, a name clash."""
    assert snap_compare(make_app(scene()), terminal_size=(80, 24), run_before=settle)


def test_replication_pane_with_eager_and_lazy_links(snap_compare: SnapCompare) -> None:
    """Wide terminal: the replication pane shows a link in sync and one catching up, and
    the tree of the first feed after choosing it."""

    async def choose_feed(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        pilot.app.screen.query_one("#feeds").focus()
        await pilot.press("down", "enter")
        await pilot.pause(0.2)

    assert snap_compare(make_app(scene()), terminal_size=(130, 36), run_before=choose_feed)


def test_peers_pane_with_backing_off_peer(snap_compare: SnapCompare) -> None:
    """/peers focuses the peers list; the backing-off peer shows its reason."""

    async def peers(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        await pilot.press(*"/peers", "enter")
        await pilot.pause(0.2)

    assert snap_compare(make_app(scene()), terminal_size=(100, 30), run_before=peers)


def test_error_message(snap_compare: SnapCompare) -> None:
    """A failed command shows its reason in plain words on the status line and as a toast."""

    async def fail(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        await pilot.press(*"/follow nobody", "enter")
        await pilot.pause(0.2)
        assert isinstance(pilot.app.focused, ChatInput)

    assert snap_compare(make_app(scene()), terminal_size=(80, 24), run_before=fail)


def test_main_screen_light_theme(snap_compare: SnapCompare) -> None:
    """The same scene in the light theme: every colour comes from theme variables."""
    app = build_app(scene(), tz=UTC, now=lambda: BASE_TIME_MS / 1000, theme="textual-light")
    assert snap_compare(app, terminal_size=(120, 30), run_before=settle)


def test_presence_typing_and_whispers(snap_compare: SnapCompare) -> None:
    """Presence dots and "last seen" in the peers pane (alice's details wrap under their
    indent, not to column 0), "here now" in the channel header, a whisper from someone
    nearby and our own (sent with /whisper), the typing line."""
    from dataclasses import replace

    node = scene()
    alice, bob, carol = node.peer_views
    node.peer_views = [
        replace(alice, presence="online", source="friend"),
        replace(bob, presence="away"),
        replace(carol, presence="offline", last_seen=BASE_TIME_MS / 1000 - 3600),
    ]
    nearby = node.ephemeral
    nearby.here["general"] = ["alice", "bob"]
    nearby.typing["general"] = ["alice"]
    nearby.whisper("general", "the coffee machine on 3 is free")
    nearby.whispers[-1] = replace(nearby.whispers[-1], own=False)

    async def whisper(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        await pilot.press(*"/whisper meet at the pub?", "enter")
        await pilot.pause(0.3)

    assert snap_compare(make_app(node), terminal_size=(100, 30), run_before=whisper)
