"""SVG snapshots of the chat views at the four terminal sizes, a private conversation,
search results, a selected message and the replication pane with its legend.

Same deterministic `FakeNode` scene as tests/test_snapshots.py; update with
`pytest tests/test_snapshots_chat.py --snapshot-update` after looking at the SVGs.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from textual.pilot import Pilot

from chat.views import conversation_view
from tests.test_snapshots import SnapCompare, make_app, settle
from tests.test_ui_fakes import FakeNode, key_from_seed, scene
from ui.app import TreechatApp
from ui.screens.search import SearchScreen


def pressing(*keys: str) -> Callable[[Pilot[Any]], Awaitable[None]]:
    """A `run_before` that settles the app, presses `keys` and lets them take effect."""

    async def press(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        await pilot.press(*keys)
        await pilot.pause(0.2)

    return press


@pytest.mark.parametrize("size", [(80, 24), (100, 30), (120, 35), (160, 45)])
def test_main_screen_at_each_size(snap_compare: SnapCompare, size: tuple[int, int]) -> None:
    """Channels with the DM conversations under them, peers, the conversation; below 110
    columns the replication pane starts hidden."""
    assert snap_compare(make_app(scene()), terminal_size=size, run_before=settle)


def test_replication_pane_at_80x24_takes_the_sidebars_place(snap_compare: SnapCompare) -> None:
    """F3 in a narrow terminal: the replication pane shows with its links list focused,
    the sidebar steps aside; the legend is folded to a line saying that ? shows it."""
    assert snap_compare(make_app(scene()), terminal_size=(80, 24), run_before=pressing("f3"))


def test_question_mark_explains_the_replication_pane_at_80x24(
    snap_compare: SnapCompare,
) -> None:
    """F3 then ?: the Details box says what eager, lazy, the arrows and behind mean."""
    explain = pressing("f3", "question_mark")
    assert snap_compare(make_app(scene()), terminal_size=(80, 24), run_before=explain)


def test_whois_fills_the_details_box(snap_compare: SnapCompare) -> None:
    """/whois alice: her key, the follows both ways, who feeds her feed to us eagerly and
    who lazily, her link and presence, in the Details box."""
    whois = pressing(*"/whois alice", "enter")
    assert snap_compare(make_app(scene()), terminal_size=(120, 35), run_before=whois)


def test_a_private_conversation(snap_compare: SnapCompare) -> None:
    """The conversation with bob: his message, ours with '→ bob'."""

    async def open_dm(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        app = pilot.app
        assert isinstance(app, TreechatApp)
        await app.main.switch_channel(conversation_view([key_from_seed("bob")]))
        await pilot.pause(0.2)

    assert snap_compare(make_app(scene()), terminal_size=(120, 35), run_before=open_dm)


def test_search_results(snap_compare: SnapCompare) -> None:
    """Ctrl+F and a word: results with where, who and when."""

    async def search(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        await pilot.press("ctrl+f", *"links")
        screen = pilot.app.screen
        assert isinstance(screen, SearchScreen)
        for _ in range(50):
            if screen.searched == "links":
                break
            await pilot.pause(0.05)
        await pilot.pause(0.1)

    assert snap_compare(make_app(scene()), terminal_size=(120, 35), run_before=search)


def test_the_selected_message_is_highlighted(snap_compare: SnapCompare) -> None:
    """Esc then ↑: the selected message is a solid bar, text included."""
    select = pressing("escape", "up")
    assert snap_compare(make_app(scene()), terminal_size=(100, 30), run_before=select)


def test_replication_pane_legend_on_a_fresh_node(snap_compare: SnapCompare) -> None:
    """Alone: 'no peers yet' (not 'in sync'), no empty progress bar, and the legend that
    says what eager, lazy and the arrows mean."""
    node = FakeNode("me")
    node.add_post(node.feed_id, "hello, is anyone here?")
    assert snap_compare(make_app(node), terminal_size=(130, 36), run_before=settle)
