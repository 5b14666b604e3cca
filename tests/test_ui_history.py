"""Scrolling back past what the store holds asks peers for older messages, and /history
keeps a whole feed (saved, applied after a restart): real nodes on 127.0.0.1, the real
app driven by Pilot."""

from __future__ import annotations

from datetime import UTC
from pathlib import Path

from nacl.signing import SigningKey

from chat.content import post
from chat.node import Node
from chat.views import OlderHistory
from store.message import Message, create_message, feed_ref
from tests.nodes import open_node, wait_until
from tests.test_ui import T0, shown_lines, status_text, type_line, wait_for
from tests.test_ui_fakes import FakeNode
from ui.app import build_app

BOB = SigningKey(b"u" * 32)
COUNT = 300


def bob_posts(count: int) -> list[Message]:
    messages: list[Message] = []
    prev: bytes | None = None
    for seq in range(1, count + 1):
        message = create_message(BOB, seq, prev, T0 + seq * 1000, post(f"bob {seq}", "general"))
        messages.append(message)
        prev = message.id
    return messages


async def member_of_pub(tmp_path: Path) -> tuple[Node, Node]:
    """A pub holding COUNT posts of bob, and a member (history = 100) that follows bob,
    is linked with the pub and holds bob's newest 100."""
    pub = await open_node(tmp_path / "pub", history=None)
    member = await open_node(tmp_path / "member", history=100)
    bob = bytes(BOB.verify_key)
    await pub.follow(bob)
    await pub.store.add_received([m.raw for m in bob_posts(COUNT)])
    await pub.manager.async_catch_up_store()
    await member.follow(bob)
    assert pub.address is not None
    await member.connect(pub.address)

    async def window() -> bool:
        return await member.store.ranges(bob) == [(COUNT - 99, COUNT)]

    await wait_until(window, 20, "bob's newest 100 at the member")
    return pub, member


async def test_scrolling_to_the_top_fetches_older_messages_from_peers(tmp_path: Path) -> None:
    pub, member = await member_of_pub(tmp_path)
    try:
        app = build_app(member, tz=UTC, now=lambda: T0 / 1000, screenshot_dir=tmp_path)
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.pause()
            conversation = app.main.conversation
            await wait_for(lambda: any("bob 300" in line for line in shown_lines(app)), pilot)
            assert not any("bob 200" in line for line in shown_lines(app))
            conversation.focus()
            for _ in range(40):  # to the top, again and again: older pages come from the pub
                await pilot.press("home")
                await pilot.pause(0.1)
                if any("bob 150" in line for line in shown_lines(app)):
                    break
            await wait_for(lambda: any("bob 150" in line for line in shown_lines(app)), pilot, 20)
            numbers = [int(e.text.rsplit(" ", 1)[1]) for e in conversation.entries]
            assert numbers == sorted(numbers)
            assert numbers[-1] == COUNT
    finally:
        await member.stop()
        await pub.stop()


async def test_history_all_for_one_person_fetches_their_whole_feed_and_is_kept(
    tmp_path: Path,
) -> None:
    pub, member = await member_of_pub(tmp_path)
    bob = bytes(BOB.verify_key)
    try:

        async def held(ranges: list[tuple[int, int]]) -> bool:
            return await member.store.ranges(bob) == ranges

        app = build_app(member, tz=UTC, now=lambda: T0 / 1000, screenshot_dir=tmp_path)
        async with app.run_test(size=(120, 30)) as pilot:
            await pilot.pause()
            await type_line(pilot, f"/history {feed_ref(bob)} all")
            assert "all of it (set for them)" in status_text(app)
            await wait_until(lambda: held([(1, COUNT)]), 20, "all of bob's feed")
            await type_line(pilot, "/history")
            name = member.display_name(bob)
            assert f"the newest 100 of each feed; {name}: all of it" in status_text(app)
            await type_line(pilot, "/history bob lots")
            assert "a number of messages" in status_text(app)
        await member.stop()
        # Saved: a restarted member keeps fetching all of bob's feed, and the rest the default.
        member = await open_node(tmp_path / "member", history=100)
        setting = member.history_setting(bob)
        assert (setting.keep, setting.own, setting.held_from) == (None, True, 1)
        view = member.history_view(bob)
        assert view is not None and view.wanted_from == 1
        await member.reset_history(bob)
        assert await member.store.history_overrides() == {}
        assert member.history_setting(bob).keep == 100
    finally:
        await member.stop()
        await pub.stop()


async def test_the_top_line_says_who_is_asked_and_when_nobody_has_it(tmp_path: Path) -> None:
    node = FakeNode("me")
    alice = node.add_person("alice")
    node.add_post(alice, "the oldest post held", minutes=0)
    node.older = OlderHistory(missing=True, asking=0, unavailable=False)
    app = build_app(node, tz=UTC, now=lambda: T0 / 1000, screenshot_dir=tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        conversation = app.main.conversation
        # Everything held fits on the screen: the view is at the top, so it asks at once.
        assert node.calls.count(("fetch_older", None)) == 1
        node.older = OlderHistory(missing=True, asking=2, unavailable=False)
        conversation.refresh_top()
        assert any("loading older messages from 2 peers…" in s for s in shown_lines(app))
        node.older = OlderHistory(missing=True, asking=0, unavailable=True)
        conversation.refresh_top()
        assert any(
            "older messages are not available from anyone connected" in s for s in shown_lines(app)
        )
        node.older = OlderHistory(missing=False, asking=0, unavailable=False)
        conversation.refresh_top()
        assert any("beginning of #general" in s for s in shown_lines(app))
