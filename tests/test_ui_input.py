"""Pilot tests of the input line: every key lands once, in order, wherever focus is.

Keys are fed to the app the way a terminal does, without waiting for the app to catch
up, so a post being written while the next line is typed is exercised for real.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from textual import events

from tests.test_ui import person, running, shown_lines, status_text, wait_for
from ui.app import TreechatApp
from ui.widgets.chat_input import PASTE_CONFIRM_LINES


def send_keys(app: TreechatApp, text: str, *, enter: bool = True) -> None:
    """Queue `text` (then Enter) as key events, as a terminal delivers them (no waiting).
    A backspace character stands for the Backspace key."""
    driver = app._driver
    assert driver is not None
    keys = [("space" if c == " " else "backspace" if c == "\b" else c, c) for c in text]
    if enter:
        keys.append(("enter", "\r"))
    for key, char in keys:
        event = events.Key(key, char if char.isprintable() else None)
        event.set_sender(app)
        driver.send_message(event)


async def test_backspace_and_enter_typed_fast_act_in_order(tmp_path: Path) -> None:
    async with running(tmp_path) as (app, pilot, node):
        send_keys(app, "helx\blo")
        send_keys(app, "next")

        async def both() -> bool:
            return len(await node.timeline("general")) == 2

        await wait_for(both, pilot)
        assert [e.text for e in await node.timeline("general")] == ["hello", "next"]


async def test_fifty_lines_typed_10ms_apart_post_exactly_fifty_in_order(tmp_path: Path) -> None:
    async with running(tmp_path) as (app, pilot, node):
        lines = [f"fast {i:02d}" for i in range(50)]
        for line in lines:
            send_keys(app, line)
            await asyncio.sleep(0.01)

        async def all_posted() -> bool:
            return len(await node.timeline("general")) >= len(lines)

        await wait_for(all_posted, pilot, within=30)
        await pilot.pause(0.3)  # a duplicate would be written by now
        assert [e.text for e in await node.timeline("general")] == lines
        assert app.main.input.value == ""
        assert app.main.input.history[-1] == "fast 49"


async def test_switch_channel_then_text_at_once_goes_to_the_new_channel(tmp_path: Path) -> None:
    async with running(tmp_path) as (app, pilot, node):
        send_keys(app, "/ch dev")
        send_keys(app, "straight after")
        await wait_for(lambda: app.main.channel == "dev", pilot)

        async def posted() -> bool:
            return bool(await node.timeline("dev"))

        await wait_for(posted, pilot)
        assert [e.text for e in await node.timeline("dev")] == ["straight after"]
        assert await node.timeline("general") == []


async def test_keys_typed_with_focus_on_the_peers_list_land_in_the_input(tmp_path: Path) -> None:
    async with running(tmp_path) as (app, pilot, node):
        await pilot.press(*"/peers", "enter")
        await wait_for(lambda: app.focused is app.main.query_one("#peers"), pilot)
        await pilot.press("h", "i", "space", "a", "l", "l")
        assert app.focused is app.main.input
        assert app.main.input.value == "hi all"
        await pilot.press("enter")
        await wait_for(lambda: any("hi all" in line for line in shown_lines(app)), pilot)
        assert [e.text for e in await node.timeline("general")] == ["hi all"]


async def test_keys_typed_after_escape_land_in_the_input_but_r_still_replies(
    tmp_path: Path,
) -> None:
    bob = person("bob", posts=1)
    async with running(tmp_path, people=[bob]) as (app, pilot, _node):
        await pilot.press("escape")
        assert app.focused is app.main.conversation
        await pilot.press("r")
        assert app.main.reply_to is not None  # the conversation's own key still works
        await pilot.press("escape", "escape")  # cancel the reply, select again
        assert app.focused is app.main.conversation
        await pilot.press("o", "k")
        assert app.main.input.has_focus
        assert app.main.input.value == "ok"


async def test_a_multi_line_paste_posts_one_multi_line_message(tmp_path: Path) -> None:
    async with running(tmp_path) as (app, pilot, node):
        app.main.input.focus()
        app.main.input.post_message(events.Paste("first line\nsecond line\r\nthird\n"))
        await pilot.pause()
        assert "3 lines pasted" in status_text(app)
        assert app.main.input.value == ""
        await pilot.press("enter")

        async def posted() -> bool:
            return bool(await node.timeline("general"))

        await wait_for(posted, pilot)
        texts = [e.text for e in await node.timeline("general")]
        assert texts == ["first line\nsecond line\nthird"]
        await wait_for(lambda: any("third" in line for line in shown_lines(app)), pilot)


async def test_a_long_paste_needs_a_confirm_and_esc_drops_it(tmp_path: Path) -> None:
    async with running(tmp_path) as (app, pilot, node):
        many = "\n".join(f"row {i}" for i in range(PASTE_CONFIRM_LINES + 5))
        app.main.input.focus()
        app.main.input.post_message(events.Paste(many))
        await pilot.pause()
        await pilot.press("enter")
        assert "Enter again posts" in status_text(app)
        assert await node.timeline("general") == []
        await pilot.press("escape")
        assert "paste dropped" in status_text(app)
        await pilot.press("enter")
        await pilot.pause()
        assert await node.timeline("general") == []
        app.main.input.post_message(events.Paste(many))
        await pilot.pause()
        await pilot.press("enter", "enter")

        async def posted() -> bool:
            return bool(await node.timeline("general"))

        await wait_for(posted, pilot)
        assert [e.text for e in await node.timeline("general")] == [many]


async def test_a_paste_too_big_for_one_message_is_refused_in_words(tmp_path: Path) -> None:
    async with running(tmp_path) as (app, pilot, node):
        app.main.input.focus()
        app.main.input.post_message(events.Paste("x" * 4000 + "\n" + "y" * 4000))
        await pilot.pause()
        assert "not pasted" in status_text(app) and "6,000 bytes" in status_text(app)
        assert app.main.input.pasted is None
        await pilot.press("enter")
        await pilot.pause()
        assert await node.timeline("general") == []
