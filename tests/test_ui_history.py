"""Scrolling back past what the store holds asks peers for older messages (real nodes on
127.0.0.1, the real app driven by Pilot)."""

from __future__ import annotations

from datetime import UTC
from pathlib import Path

from nacl.signing import SigningKey

from chat.content import post
from chat.views import OlderHistory
from store.message import Message, create_message
from tests.nodes import open_node, wait_until
from tests.test_ui import T0, shown_lines, wait_for
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


async def test_scrolling_to_the_top_fetches_older_messages_from_peers(tmp_path: Path) -> None:
    pub = await open_node(tmp_path / "pub", history=None)
    member = await open_node(tmp_path / "member", history=100)
    bob = bytes(BOB.verify_key)
    try:
        await pub.follow(bob)
        await pub.store.add_received([m.raw for m in bob_posts(COUNT)])
        await pub.manager.async_catch_up_store()
        await member.follow(bob)
        assert pub.address is not None
        await member.connect(pub.address)
        await wait_until(lambda: member.local_seq(bob) == COUNT, 20, "the newest window")
        app = build_app(member, tz=UTC, clock=lambda: T0 / 1000, screenshot_dir=tmp_path)
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


async def test_the_top_line_says_who_is_asked_and_when_nobody_has_it(tmp_path: Path) -> None:
    node = FakeNode("me")
    alice = node.add_person("alice")
    node.add_post(alice, "the oldest post held", minutes=0)
    node.older = OlderHistory(missing=True, asking=0, unavailable=False)
    app = build_app(node, tz=UTC, clock=lambda: T0 / 1000, screenshot_dir=tmp_path)
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
