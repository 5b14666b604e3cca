"""`/join` in the TUI redeems an invite of a real pub on 127.0.0.1 through Node.join."""

from __future__ import annotations

from pathlib import Path

from chat.pub import async_join
from tests.nodes import open_node
from tests.test_pub import open_pub
from tests.test_ui import running, status_text, type_line, wait_for


async def test_join_redeems_an_invite_and_shows_why_a_used_one_fails(tmp_path: Path) -> None:
    pub_node, pub = await open_pub(tmp_path / "pub")
    other = await open_node(tmp_path / "other")
    try:
        invite = str(await pub.async_create_invite(1))
        used = str(await pub.async_create_invite(1))
        await async_join(other, used)
        async with running(tmp_path / "me", start=True) as (app, pilot, node):
            await type_line(pilot, f"/join {invite}")
            await wait_for(lambda: "joined the pub" in status_text(app), pilot, within=15)
            assert pub_node.feed_id in await node.store.follows(node.feed_id)
            assert any(
                p.key == pub_node.feed_id and p.state == "connected" and p.source == "pub"
                for p in node.peers()
            )
            await type_line(pilot, f"/join {used}")
            await wait_for(lambda: "could not join" in status_text(app), pilot, within=15)
            assert "join failed at invite rejected" in status_text(app)
            assert "used up" in status_text(app)
            await type_line(pilot, f"/join {pub_node.address}")  # an address, not an invite
            await wait_for(
                lambda: (
                    "could not join" in status_text(app)
                    and "invite rejected" not in status_text(app)
                ),
                pilot,
            )
            assert "invite" in status_text(app)  # the parse error names what was expected
    finally:
        await other.stop()
        await pub_node.stop()
