"""The TUI's ephemeral pieces on two real nodes over loopback: a whisper from a peer is
shown as "someone nearby", its typing under the conversation, its presence in the
peers pane; our own typing and /whisper reach the peer."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC
from pathlib import Path

from chat.ephemeral import EphemeralOptions
from tests.nodes import FAST, open_node, wait_until
from ui.app import build_app
from ui.widgets.nearby import NearbyLine, typing_line
from ui.widgets.sidebar import PeerList

QUICK = replace(FAST, ephemeral=EphemeralOptions(presence_interval=0.5, tick=0.1))


def test_typing_line_wording() -> None:
    assert typing_line([], "dev") == ""
    assert typing_line(["alice"], "dev") == "alice is typing in #dev…"
    assert typing_line(["alice", "bob"], "dev") == "alice and bob are typing in #dev…"
    assert typing_line(["a", "b", "c"], "dev") == "3 people are typing in #dev…"


async def test_whispers_typing_and_presence_in_the_tui(tmp_path: Path) -> None:
    me = await open_node(tmp_path / "me", QUICK)
    peer = await open_node(tmp_path / "peer", QUICK)
    try:
        assert me.address is not None
        await peer.connect(me.address)
        app = build_app(me, channel="general", tz=UTC, screenshot_dir=tmp_path)
        async with app.run_test(size=(110, 30)) as pilot:
            screen = app.main
            nearby = screen.query_one("#nearby", NearbyLine)
            peer.ephemeral.set_here("general")  # the peer looks at #general too

            def title() -> str:
                return str(screen.conversation.border_title)

            await wait_until(lambda: title().startswith("#general · here now: you, "))
            peer.ephemeral.whisper("general", "psst from nearby")
            peer.ephemeral.typing_in("general")
            await wait_until(lambda: len(nearby.shown[0]) == 1 and bool(nearby.shown[1]))
            assert nearby.shown[0] == ("someone nearby whispers: psst from nearby",)
            assert "psst" in str(nearby.render()) and nearby.display
            rows = screen.query_one("#peers", PeerList)
            await wait_until(lambda: any(p.presence == "online" for p in rows.peers or ()))

            await pilot.press(*"hello")  # typing in the input tells the peer
            await wait_until(lambda: peer.ephemeral.typing_names("general") != [])
            await pilot.press(*(["backspace"] * 5), *"/w meet at the pub?", "enter")
            await wait_until(
                lambda: (
                    [w.text for w in peer.ephemeral.whispers_in("general")]
                    == ["psst from nearby", "meet at the pub?"]
                )
            )
            assert "you whispered: meet at the pub?" in nearby.shown[0]
    finally:
        for node in (me, peer):
            await node.stop()
