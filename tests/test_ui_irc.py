"""Pilot tests of IRC habits: /join #x, /me, /part, /whois, 'did you mean', /block."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import Static

from chat.content import post
from tests.nodes import open_node
from tests.test_ui import T0, person, running, shown_lines, status_text, type_line, wait_for
from tests.test_ui_private import channel_rows
from ui.commands import CommandError, Join, SwitchChannel, parse_line
from ui.screens.main import FLUSH_INTERVAL


def test_join_tells_a_channel_from_an_invite_by_its_shape() -> None:
    assert parse_line("/join #dev") == SwitchChannel("dev")
    assert parse_line("/join dev") == SwitchChannel("dev")
    invite = "net:127.0.0.1:7708~shs:" + "A" * 44 + ":" + "B" * 44
    assert parse_line(f"/join {invite}") == Join(invite)


@pytest.mark.parametrize(
    ("line", "hint"),
    [("/nmae bob", "did you mean /name?"), ("/qurey bob", "did you mean /query?")],
)
def test_an_unknown_command_suggests_the_closest(line: str, hint: str) -> None:
    with pytest.raises(CommandError, match=hint):
        parse_line(line)


async def test_join_hash_channel_switches_channel(tmp_path: Path) -> None:
    async with running(tmp_path) as (app, pilot, node):
        await type_line(pilot, "/join #dev")
        assert app.main.channel == "dev"
        assert "bad address" not in status_text(app)
        await type_line(pilot, "hello dev")
        await wait_for(lambda: bool(app.main.conversation.entries), pilot)
        assert [e.text for e in await node.timeline("dev")] == ["hello dev"]


async def test_me_posts_an_action(tmp_path: Path) -> None:
    async with running(tmp_path) as (app, pilot, node):
        await type_line(pilot, "/nick alma")
        await type_line(pilot, "/me waves")
        await wait_for(lambda: any("* alma waves" in line for line in shown_lines(app)), pilot)
        assert [e.text for e in await node.timeline("general")] == ["/me waves"]


async def test_a_parted_channel_stays_parted_across_a_restart_until_join(
    tmp_path: Path,
) -> None:
    bob = person("bob", posts=1, channel="dev")
    async with running(tmp_path, people=[bob]) as (app, pilot, node):
        await type_line(pilot, "/join #dev")
        await type_line(pilot, "/part")
        assert app.main.channel == "general"
        assert "#dev" not in " ".join(channel_rows(app))
        bob.write(post("back in dev", "dev"), T0 + 90_000)
        assert not (await node.store.add_received(bob.raws[-1:], source=bob.key)).errors
        await app.main.refresh_channels()
        assert "#dev" not in " ".join(channel_rows(app))  # a new post does not rejoin it
    async with running(tmp_path) as (app, pilot, node):
        assert "#dev" not in " ".join(channel_rows(app))
        assert "dev" not in [c.name for c in await node.channels()]
        await type_line(pilot, "/join #dev")
        assert app.main.channel == "dev"
        assert app.main.conversation.entries[-1].text == "back in dev"
    async with running(tmp_path) as (app, _pilot, _node):
        assert "#dev" in channel_rows(app)


async def test_the_only_channel_cannot_be_parted(tmp_path: Path) -> None:
    async with running(tmp_path) as (app, pilot, _node):
        await type_line(pilot, "/part")
        assert app.main.channel == "general"
        assert "only channel" in status_text(app)
        assert "#general" in channel_rows(app)


async def test_whois_shows_key_and_replication(tmp_path: Path) -> None:
    bob = person("bob", posts=2)
    async with running(tmp_path, people=[bob]) as (app, pilot, _node):
        await type_line(pilot, "/follow bob")
        await type_line(pilot, "/whois bob")
        detail = str(app.main.query_one("#detail", Static).render())
        assert "bob" in detail and ".ed25519" in detail
        assert "you follow them; they do not follow you" in detail
        assert "not one of our peers" in detail and "last seen: never" in detail
        assert app.main.replication.display


async def test_block_hides_posts_at_once_and_unblock_brings_them_back(tmp_path: Path) -> None:
    bob = person("bob", posts=2)
    carol = person("carol", posts=1)
    async with running(tmp_path, people=[bob, carol]) as (app, pilot, _node):
        assert any("bob says 1" in line for line in shown_lines(app))
        await type_line(pilot, "/block bob")
        assert not any("bob says" in line for line in shown_lines(app))
        assert any("carol says 0" in line for line in shown_lines(app))
        await pilot.press("escape")  # a new view of the channel still hides them
        await type_line(pilot, "/ch random")
        await type_line(pilot, "/ch general")
        assert not any("bob says" in line for line in shown_lines(app))
        await type_line(pilot, "/unblock bob")
        await wait_for(lambda: any("bob says 1" in line for line in shown_lines(app)), pilot)


async def test_unblock_restores_the_follow_state_from_before_the_block(tmp_path: Path) -> None:
    bob = person("bob", posts=1)
    async with running(tmp_path, people=[bob]) as (_app, pilot, node):
        await type_line(pilot, "/follow bob")
        await type_line(pilot, "/block bob")
        await type_line(pilot, "/unblock bob")
        assert bob.key in await node.store.follows(node.feed_id)
        assert bob.key not in await node.store.blocks(node.feed_id)


async def test_connection_attempts_from_a_blocked_key_are_not_errors(tmp_path: Path) -> None:
    async with running(tmp_path / "a", start=True) as (app, pilot, node):
        other = await open_node(tmp_path / "b")
        try:
            await type_line(pilot, f"/block {other.ref}")
            assert "blocked" in status_text(app)
            assert node.address is not None
            with pytest.raises(Exception):  # noqa: B017 - the handshake is refused
                await other.connect(node.address)
            await pilot.pause(2 * FLUSH_INTERVAL + 0.2)
            assert app.main.errors == []
            assert not app.main.query_one("#status").has_class("-error")
        finally:
            await other.stop()
