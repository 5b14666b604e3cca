"""The replication pane's words: one header state from the links, peers without names, `?`."""

from __future__ import annotations

import base64
from dataclasses import replace

from textual.widgets import Static

from chat.views import Health, LinkView, PeerView, SyncProgress
from tests.test_snapshots import make_app
from tests.test_ui_fakes import scene
from ui.widgets.replication import LEGEND, overall_health, peer_label
from ui.widgets.sidebar import peer_reason

KEY = bytes(range(32))


def link(health: Health = Health.IN_SYNC, we: int = 0, they: int = 0) -> LinkView:
    return LinkView(KEY, "bob", 1, 1, 0, we, they, health=health)


def test_the_header_is_never_in_sync_while_a_link_is_behind() -> None:
    settled = SyncProgress(have=10, known=10, feeds=2)
    assert overall_health(settled, []) is None  # alone: "no peers yet"
    assert overall_health(settled, [link()]) is Health.IN_SYNC
    assert overall_health(settled, [link(), link(they=1)]) is Health.CATCHING_UP
    assert overall_health(settled, [link(we=3)]) is Health.CATCHING_UP
    assert overall_health(settled, [link(Health.STALLED), link(we=3)]) is Health.STALLED
    behind = SyncProgress(have=5, known=10, feeds=2, health=Health.CATCHING_UP)
    assert overall_health(behind, [link()]) is Health.CATCHING_UP


def test_an_unnamed_peer_reads_as_at_key_not_as_a_command() -> None:
    key = base64.b64decode("/lgdaz" + "A" * 38)
    short = base64.b64encode(key).decode()[:6]
    assert short == "/lgdaz"
    assert peer_label(short, key) == "@/lgdaz"
    assert peer_label("bob", key) == "bob"


async def test_question_mark_explains_the_pane_and_is_typed_elsewhere() -> None:
    """At 80x24 the legend starts folded. `?` unfolds it only with focus in the pane; in
    the input it is a character like any other, and typing after `?` goes to the input."""
    app = make_app(scene())
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        pane = app.main.replication
        assert not pane.legend_shown
        await pilot.press("question_mark")
        assert app.main.input.value == "?" and not pane.legend_shown
        app.main.input.value = ""
        await pilot.press("f3")
        assert app.main.focused is pane.query_one("#links")
        await pilot.press("question_mark")
        assert pane.legend_shown
        assert LEGEND in str(pane.query_one("#detail", Static).render())
        await pilot.press("question_mark", "h", "i")
        assert not pane.legend_shown
        assert app.main.input.value == "hi" and app.main.focused is app.main.input
        await pilot.press("f3")
        assert not pane.display and app.main.focused is app.main.input


def test_a_peer_reason_that_repeats_its_state_is_left_out() -> None:
    """The peers pane and /whois both say 'connected', not 'connected (connected (incoming))'."""
    linked = PeerView(KEY, "bob", "AAEC", "friend", "connected", "connected (incoming)")
    assert peer_reason(linked) == ""
    waiting = replace(linked, state="backoff", reason="connection refused; retry in 16s")
    assert peer_reason(waiting) == "connection refused; retry in 16s"
