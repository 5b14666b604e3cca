"""Pilot tests of private conversations, read marks that survive a restart, and alerts."""

from __future__ import annotations

from datetime import UTC
from pathlib import Path

from textual.widgets import OptionList

from chat.content import post, seal_private
from chat.node import Node
from chat.views import conversation_view
from store.db import Store
from tests.nodes import FAST
from tests.test_ui import (
    T0,
    Person,
    config_for,
    give_identity,
    person,
    prefill,
    running,
    shown_lines,
    status_text,
    type_line,
    wait_for,
)
from tests.test_ui_fakes import FakeNode
from ui.app import build_app
from ui.notify import Notifier, osc_notifications


def channel_rows(app: object) -> list[str]:
    from ui.app import TreechatApp

    assert isinstance(app, TreechatApp)
    widget = app.main.query_one("#channels", OptionList)
    return [str(widget.get_option_at_index(i).prompt) for i in range(widget.option_count)]


def dm(sender: Person, to: list[bytes], text: str, at: int) -> None:
    sender.write(seal_private(post(text, "private"), to, sender.key), at)


async def test_a_dm_gets_its_own_conversation_badge_and_ctrl_n_goes_there(
    tmp_path: Path,
) -> None:
    me = give_identity(tmp_path, "me")
    bob = person("bob", posts=2)
    carol = person("carol", posts=1, channel="random")
    dm(bob, [me.feed_id], "psst, only for you", T0 + 9000)
    async with running(tmp_path, people=[bob, carol]) as (app, pilot, _node):
        rows = channel_rows(app)
        assert rows[:2] == ["#general", "#random ● 1"]
        assert rows[2] == "✉ bob ● 1"  # listed under the channels, with its own badge
        await pilot.press("ctrl+n")  # DMs first, though #random is next alphabetically
        await wait_for(lambda: app.main.channel.startswith("@"), pilot)
        assert app.main.channel == conversation_view([bob.key])
        assert app.main.conversation.border_title == "✉ bob"
        assert [e.text for e in app.main.conversation.entries] == ["psst, only for you"]
        assert channel_rows(app)[2] == "✉ bob"  # read now


async def test_query_opens_a_conversation_and_lines_typed_there_are_private(
    tmp_path: Path,
) -> None:
    bob = person("bob")
    async with running(tmp_path, people=[bob]) as (app, pilot, node):
        await type_line(pilot, "/query bob")
        assert app.main.channel == conversation_view([bob.key])
        await type_line(pilot, "just between us")
        await wait_for(lambda: bool(app.main.conversation.entries), pilot)
        private = await node.private_timeline()
        assert [(e.text, e.recipients) for e in private] == [
            ("just between us", tuple(sorted((bob.key, node.feed_id))))
        ] or [e.text for e in private] == ["just between us"]
        assert bob.key in private[0].recipients
        assert await node.timeline("general") == []
        # our own private message says whom it went to
        assert any("→ bob" in line and "just between us" in line for line in shown_lines(app))
        await type_line(pilot, "/msg bob second one")
        await wait_for(lambda: len(app.main.conversation.entries) == 2, pilot)


async def test_channel_private_is_refused_in_words(tmp_path: Path) -> None:
    async with running(tmp_path) as (app, pilot, _node):
        await type_line(pilot, "/channel private")
        assert "public channel" in status_text(app) and "/query" in status_text(app)
        assert app.main.channel == "general"


async def test_read_marks_survive_a_restart_count_and_rule(tmp_path: Path) -> None:
    bob = person("bob", posts=5)
    async with running(tmp_path, people=[bob]) as (app, pilot, _node):
        await type_line(pilot, "mine, read")
        assert not any("new messages" in line for line in shown_lines(app))
    # Bob writes three more while we are away.
    stored = len(bob.raws)
    for i in range(5, 8):
        bob.write(post(f"bob says {i}", "general"), T0 + 100_000 + i)
    async with await Store.open(tmp_path / "treechat.db") as store:
        assert not (await store.add_received(bob.raws[stored:])).errors

    async def reopen() -> tuple[int, list[str]]:
        node = await Node.open(config_for(tmp_path), FAST)
        try:
            unread = {c.name: c.unread for c in await node.channels()}.get("general", 0)
            app = build_app(node, tz=UTC, now=lambda: T0 / 1000, screenshot_dir=tmp_path)
            async with app.run_test(size=(120, 32)) as pilot:
                await pilot.pause()
                return unread, shown_lines(app)
        finally:
            await node.stop()

    unread, lines = await reopen()
    assert unread == 3  # bob's three, not our own post
    rule = next(i for i, line in enumerate(lines) if "new messages" in line)
    assert "bob says 4" in lines[rule - 1] and "bob says 5" in lines[rule + 1]
    # our post is newer than bob's (the clock of now) but read: shown below, not counted
    assert any("mine, read" in line for line in lines[rule + 1 :])
    unread, lines = await reopen()  # opened = read, and that was kept on disk
    assert unread == 0
    assert not any("new messages" in line for line in lines)


async def test_a_dm_or_a_mention_arriving_rings_and_notifies(tmp_path: Path) -> None:
    me = give_identity(tmp_path, "me")
    bob = person("bob")
    await prefill(tmp_path, [bob])
    written: list[str] = []
    node = await Node.open(config_for(tmp_path), FAST)
    try:
        await node.start()  # it notices what another process writes to its database
        notifier = Notifier(write=written.append)
        app = build_app(node, tz=UTC, screenshot_dir=tmp_path, notifier=notifier)
        async with app.run_test(size=(120, 32)) as pilot:
            await pilot.pause()
            assert notifier.sent == []  # what was there at start is not news
            dm(bob, [me.feed_id], "are you there?", T0 + 5000)
            async with await Store.open(tmp_path / "treechat.db") as other:
                assert not (await other.add_received(bob.raws[-1:])).errors
            await wait_for(lambda: bool(notifier.sent), pilot)
            assert notifier.sent == ["private message from ✉ bob"]
            assert written == [osc_notifications("treechat", "private message from ✉ bob")]
    finally:
        await node.stop()


def test_notification_text_cannot_break_out_of_the_escape_sequence() -> None:
    sequence = osc_notifications("treechat", "evil\x07\x1b]0;pwned\x07 text;more")
    assert sequence.count("\x07") == 2 and sequence.count("\x1b") == 2
    assert sequence.startswith("\x1b]9;treechat: evil")


async def test_notify_false_keeps_quiet(tmp_path: Path) -> None:
    notifier = Notifier(enabled=False, write=lambda text: None)
    app = build_app(FakeNode(), notifier=notifier)
    notifier.alert(app, "treechat", "x")
    assert notifier.sent == []
