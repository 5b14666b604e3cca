"""A peer that claims more than it sends, over real sockets: not believed after the
re-asks, left out of progress, and named in the status ("claims X #1000, sent nothing")
and in the TUI's peers pane (the real app, driven by Pilot)."""

from __future__ import annotations

import dataclasses
from datetime import UTC
from pathlib import Path

from nacl.signing import SigningKey

from chat.status import format_status
from net.ebt import EbtConfig, encode_note
from tests.nodes import FAST, open_node, wait_until
from tests.test_ui import type_line, wait_for
from ui.app import build_app
from ui.widgets.sidebar import PeerList

QUICK = dataclasses.replace(FAST, ebt=EbtConfig(stall_timeout=0.2), write_status=False)


async def test_a_peer_claiming_what_it_never_sends_is_named_and_not_counted(
    tmp_path: Path,
) -> None:
    feed = bytes(SigningKey(b"L" * 32).verify_key)
    a = await open_node(tmp_path / "a", QUICK)
    b = await open_node(tmp_path / "b", QUICK)
    try:
        for node in (a, b):
            await node.follow(feed)
        assert b.address is not None
        await a.connect(b.address)
        session = a.manager.session(b.feed_id)
        assert session is not None
        # b "says" it holds 1000 messages of the feed (nobody does): a grafts it, asks
        # again three times with growing waits, then stops believing it.
        a.manager.receive_notes(session, {feed: encode_note(1000, False)})
        assert a.sync_progress().known >= 1000

        def doubted() -> bool:
            state = a.manager.replicator.link(b.feed_id).get(feed)
            return state is not None and state.doubted

        await wait_until(doubted, 20, "the claim doubted")
        assert a.sync_progress().known < 1000
        snapshot = a.status_snapshot()
        row = next(p for p in snapshot["peers"] if p["key"].endswith(b.ref[1:]))
        (line,) = row["doubts"]
        assert line.startswith("claims ") and "#1000, sent nothing for " in line
        assert "#1000, sent nothing for" in format_status(snapshot)
        app = build_app(a, tz=UTC, screenshot_dir=tmp_path)
        async with app.run_test(size=(120, 40)) as pilot:
            await type_line(pilot, "/peers")
            pane = app.main.query_one("#peers", PeerList)

            def shown() -> str:
                rows = [pane.get_option_at_index(i).prompt for i in range(pane.option_count)]
                return " ".join(" ".join(str(row).split()) for row in rows)

            await wait_for(lambda: "#1000, sent nothing for" in shown(), pilot)
            assert "claims " in shown()
    finally:
        await a.stop()
        await b.stop()
