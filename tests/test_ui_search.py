"""Pilot tests of search: /search and Ctrl+F find posts and private messages; Enter opens one."""

from __future__ import annotations

from pathlib import Path

from chat.content import post
from chat.views import conversation_view
from tests.test_ui import T0, give_identity, person, running, status_text, type_line, wait_for
from tests.test_ui_private import dm
from ui.screens.search import SearchScreen


async def test_search_finds_an_old_post_and_enter_opens_it_in_its_channel(
    tmp_path: Path,
) -> None:
    bob = person("bob")
    target = bob.write(post("the pineapple plan", "dev"), T0 + 1000)
    for i in range(250):  # the target is pages back: opening it loads older pages
        bob.write(post(f"filler {i}", "dev"), T0 + 2000 + i)
    bob.write(post("pineapples elsewhere", "general"), T0 + 900)
    async with running(tmp_path, people=[bob]) as (app, pilot, _node):
        await type_line(pilot, "/search pineapple plan")
        assert isinstance(app.screen, SearchScreen)
        screen = app.screen
        await wait_for(lambda: screen.searched == "pineapple plan", pilot)
        assert [h.entry.text for h in screen.hits] == ["the pineapple plan"]
        assert [h.view for h in screen.hits] == ["dev"]
        await pilot.press("enter", "enter")  # to the results, then open the first
        await wait_for(lambda: app.main.channel == "dev", pilot)
        conversation = app.main.conversation
        await wait_for(lambda: conversation.selected is not None, pilot)
        assert conversation.selected is not None
        assert conversation.selected.msg_id == target
        assert app.focused is conversation
        assert "in #dev" in status_text(app)


async def test_ctrl_f_finds_private_messages_we_can_read(tmp_path: Path) -> None:
    me = give_identity(tmp_path, "me")
    bob = person("bob", posts=1)
    carol = person("carol")
    dm(bob, [me.feed_id], "the secret handshake is at noon", T0 + 5000)
    dm(carol, [bob.key], "noon is not for me to read", T0 + 6000)  # sealed to bob only
    async with running(tmp_path, people=[bob, carol]) as (app, pilot, _node):
        await pilot.press("ctrl+f")
        assert isinstance(app.screen, SearchScreen)
        screen = app.screen
        await pilot.press(*"noon")
        await wait_for(lambda: screen.searched == "noon", pilot)
        assert [h.entry.text for h in screen.hits] == ["the secret handshake is at noon"]
        await pilot.press("enter", "enter")
        await wait_for(lambda: app.main.channel == conversation_view([bob.key]), pilot)
        assert app.main.conversation.selected is not None
        assert app.main.conversation.selected.text == "the secret handshake is at noon"


async def test_search_with_no_result_says_so_and_esc_closes(tmp_path: Path) -> None:
    async with running(tmp_path, people=[person("bob", posts=2)]) as (app, pilot, _node):
        await type_line(pilot, '/search "NEAR" AND zebra*')
        screen = app.screen
        assert isinstance(screen, SearchScreen)
        await wait_for(lambda: screen.searched != "", pilot)
        assert screen.hits == []
        assert "nothing found" in str(screen.query_one("#search-summary").render())
        await pilot.press("escape")
        assert not isinstance(app.screen, SearchScreen)
        assert app.focused is app.main.input
