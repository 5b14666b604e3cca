"""Pilot tests of the TUI on a real Node (real SQLite file, real loopback sockets).

Each test drives the app like a user (keys, typed commands) and then checks both what
the screen shows and what the node did (its store, its peers).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import OptionList, Static

from chat.config import Config, HostPort
from chat.content import about, post
from chat.identity import Identity, ensure_data_dir, save_identity, secret_path
from chat.node import Node
from store.db import Store
from store.message import create_message
from tests.nodes import FAST
from ui.app import TreechatApp, build_app
from ui.screens.help import HelpScreen
from ui.screens.main import FLUSH_INTERVAL
from ui.widgets.conversation import MAX_WINDOW, PAGE, LineKind
from ui.widgets.sidebar import PeerList

T0 = 1_795_000_000_000  # fixed claimed timestamps (ms) for prefilled posts


def seed(name: str) -> bytes:
    return name.encode().ljust(32, b".")


def config_for(path: Path) -> Config:
    return Config(
        data_dir=path, listen=HostPort("127.0.0.1", 0), discovery=False, interfaces=("127.0.0.1",)
    )


def give_identity(path: Path, name: str) -> Identity:
    identity = Identity.from_seed(seed(name))
    ensure_data_dir(path)
    if not secret_path(path).exists():
        save_identity(identity, secret_path(path))
    return identity


class Person:
    """Someone else's feed, written by hand and stored as if a peer delivered it."""

    def __init__(self, name: str) -> None:
        self.identity = Identity.from_seed(seed(name))
        self.key = self.identity.feed_id
        self.raws: list[bytes] = []
        self.ids: list[bytes] = []
        self.name = name

    def write(self, content: dict[str, Any] | bytes, timestamp: int) -> bytes:
        prev = self.ids[-1] if self.ids else None
        message = create_message(
            self.identity.signing_key, len(self.raws) + 1, prev, timestamp, content
        )
        self.raws.append(message.raw)
        self.ids.append(message.id)
        return message.id


async def prefill(path: Path, people: list[Person], via: bytes | None = None) -> None:
    async with await Store.open(path / "treechat.db") as store:
        for person in people:
            result = await store.add_received(person.raws, source=via)
            assert not result.errors


def person(name: str, posts: int = 0, channel: str = "general", start: int = T0) -> Person:
    someone = Person(name)
    someone.write(about(name), start)
    for i in range(posts):
        someone.write(post(f"{name} says {i}", channel), start + 1000 * (i + 1))
    return someone


@asynccontextmanager
async def running(
    path: Path,
    *,
    people: list[Person] = (),  # type: ignore[assignment]
    via: bytes | None = None,
    start: bool = False,
    size: tuple[int, int] = (120, 32),
) -> AsyncIterator[tuple[TreechatApp, Pilot[None], Node]]:
    """A real node on `path` (identity 'me'), optionally pre-filled, with the app running."""
    give_identity(path, "me")
    if people:
        await prefill(path, list(people), via)
    node = await Node.open(config_for(path), FAST)
    try:
        if start:
            await node.start()
        app = build_app(node, tz=UTC, now=lambda: T0 / 1000, screenshot_dir=path)
        async with app.run_test(size=size) as pilot:
            await pilot.pause()
            app.main.input.cursor_blink = False
            yield app, pilot, node
    finally:
        await node.stop()


async def type_line(pilot: Pilot[None], line: str) -> None:
    app = pilot.app
    assert isinstance(app, TreechatApp)
    app.main.input.focus()
    app.main.input.value = line
    await pilot.press("enter")
    await pilot.pause()


def status_text(app: TreechatApp) -> str:
    return str(app.main.query_one("#status", Static).render())


def shown_lines(app: TreechatApp) -> list[str]:
    return [line.strip.text for line in app.main.conversation._lines]


async def wait_for(
    check: Callable[[], bool | Awaitable[bool]], pilot: Pilot[None], within: float = 8.0
) -> None:
    deadline = time.monotonic() + within
    while True:
        result = check()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        assert time.monotonic() < deadline, "timed out"
        await pilot.pause(0.05)


def svg_files(path: Path) -> list[Path]:
    return sorted(path.glob("treechat-*.svg"))


# ---------------------------------------------------------------------- posting, basics


async def test_typing_posts_to_the_current_channel(tmp_path: Path) -> None:
    async with running(tmp_path) as (app, pilot, node):
        app.main.input.value = "hello world"
        await pilot.press("enter")
        await pilot.pause()
        stored = await node.timeline("general")
        assert [e.text for e in stored] == ["hello world"]
        assert stored[0].author == node.feed_id
        assert any("hello world" in line for line in shown_lines(app))
        assert app.main.input.value == ""


async def test_double_slash_posts_a_literal_slash(tmp_path: Path) -> None:
    async with running(tmp_path) as (_app, pilot, node):
        await type_line(pilot, "//shrug")
        assert [e.text for e in await node.timeline("general")] == ["/shrug"]


async def test_unknown_command_is_an_error_in_plain_words(tmp_path: Path) -> None:
    async with running(tmp_path) as (app, pilot, node):
        await type_line(pilot, "/frobnicate now")
        assert "unknown command /frobnicate" in status_text(app)
        assert app.main.query_one("#status").has_class("-error")
        assert await node.timeline("general") == []


# ---------------------------------------------------------------------- commands


async def test_nick_publishes_our_name(tmp_path: Path) -> None:
    async with running(tmp_path) as (app, pilot, node):
        await type_line(pilot, "/nick alice")
        assert node.display_name(node.feed_id).startswith("alice")
        assert "you are now alice" in status_text(app)
        await type_line(pilot, "hi")
        await pilot.pause()
        assert any("alice" in line and "hi" in line for line in shown_lines(app))


async def test_nick_without_a_name_says_how(tmp_path: Path) -> None:
    async with running(tmp_path) as (app, pilot, _node):
        await type_line(pilot, "/nick")
        assert "/nick needs more: /nick NAME" in status_text(app)


async def test_channel_switches_and_posts_go_there(tmp_path: Path) -> None:
    async with running(tmp_path) as (app, pilot, node):
        await type_line(pilot, "/channel #Random")
        assert app.main.conversation.border_title == "#random"
        assert app.main.channel == "random"
        await type_line(pilot, "over here")
        await pilot.pause()
        assert [e.text for e in await node.timeline("random")] == ["over here"]
        assert await node.timeline("general") == []
        channels = app.main.query_one("#channels", OptionList)
        assert "#random" in [
            str(channels.get_option_at_index(i).prompt) for i in range(channels.option_count)
        ]


async def test_msg_sends_a_private_message(tmp_path: Path) -> None:
    bob = person("bob")
    async with running(tmp_path, people=[bob]) as (app, pilot, node):
        await type_line(pilot, "/msg bob the secret is 42")
        assert "private message sent to bob" in status_text(app)
        private = await node.private_timeline()
        assert [(e.text, e.private) for e in private] == [("the secret is 42", True)]
        assert bob.key in private[0].recipients
        assert await node.timeline("general") == []


async def test_msg_to_an_unknown_name_is_refused(tmp_path: Path) -> None:
    async with running(tmp_path) as (app, pilot, node):
        await type_line(pilot, "/msg zed hello")
        assert "zed" in status_text(app) and "known" in status_text(app)
        assert await node.private_timeline() == []


async def test_follow_unfollow_block_unblock(tmp_path: Path) -> None:
    bob = person("bob")
    async with running(tmp_path, people=[bob]) as (app, pilot, node):
        await type_line(pilot, "/follow bob")
        assert bob.key in await node.store.follows(node.feed_id)
        assert status_text(app).startswith("following bob")
        await type_line(pilot, "/unfollow bob")
        assert bob.key not in await node.store.follows(node.feed_id)
        assert status_text(app).startswith("no longer following bob")
        await type_line(pilot, "/block bob")
        assert bob.key in await node.store.blocks(node.feed_id)
        assert status_text(app).startswith("blocked bob")
        await type_line(pilot, "/unblock bob")
        assert bob.key not in await node.store.blocks(node.feed_id)
        assert status_text(app).startswith("unblocked bob")


async def test_peers_shows_and_focuses_the_peers_pane(tmp_path: Path) -> None:
    async with running(tmp_path) as (app, pilot, _node):
        await pilot.press("f2")
        assert not app.main.query_one("#sidebar").display
        await type_line(pilot, "/peers")
        assert app.main.query_one("#sidebar").display
        assert app.focused is app.main.query_one("#peers")
        assert status_text(app) == "0 peers: 0 connected, 0 not"


async def test_connect_links_two_nodes_and_the_panes_show_it(tmp_path: Path) -> None:
    give_identity(tmp_path / "bob", "bob")
    bob = await Node.open(config_for(tmp_path / "bob"), FAST)
    await bob.start()
    try:
        async with running(tmp_path / "me", start=True) as (app, pilot, node):
            assert bob.address is not None
            await type_line(pilot, f"/connect {bob.address}")
            await wait_for(lambda: any(p.state == "connected" for p in node.peers()), pilot)
            await wait_for(lambda: status_text(app).startswith("connected to"), pilot)
            pane = app.main.query_one("#peers", PeerList)
            await wait_for(lambda: len(pane.peers or []) == 1, pilot)
            peer = (pane.peers or [])[0]
            assert peer.key == bob.feed_id and peer.state == "connected"
            assert bob.feed_id in await node.store.follows(node.feed_id)  # dialled = wanted
            await pilot.press("f3")
            await wait_for(lambda: len(app.main.replication.links or []) == 1, pilot)
            assert (app.main.replication.links or [])[0].peer == bob.feed_id
    finally:
        await bob.stop()


async def test_the_first_screen_says_what_to_do_and_whoami_copies_the_address(
    tmp_path: Path,
) -> None:
    async with running(tmp_path, start=True) as (app, pilot, node):
        assert node.address is not None
        assert status_text(app) == (
            "waiting for peers on the LAN · or /join INVITE\n"
            f"your address (F6 copies it):\n{node.address}"
        )
        # All of it on screen (wrapped, not cut), even where the column is narrow.
        status = app.main.query_one("#status", Static)
        shown = "".join(s.text.strip() for s in status.render_lines(status.region.reset_offset))
        assert shown.endswith(node.address[-20:]), shown
        host_port = node.address.removeprefix("net:").split("~")[0]
        assert app.main.query_one("#peers", PeerList).border_subtitle == f"you: {host_port}"
        # Someone arrives: no longer waiting, the hint goes.
        bob = await Node.open(config_for(tmp_path / "bob"), FAST)
        try:
            await bob.start()
            await bob.connect(node.address)
            await wait_for(lambda: status_text(app) == "", pilot)
        finally:
            await bob.stop()
        await type_line(pilot, "/whoami")
        saved = Path(app.main.screenshot_dir) / "treechat-address.txt"
        assert status_text(app) == (
            f"you are {node.ref} at {node.address} (copied; also saved to {saved})"
        )
        assert saved.read_text() == f"{node.ref}\n{node.address}\n"


async def test_connect_failure_names_the_step(tmp_path: Path) -> None:
    async with running(tmp_path, start=True) as (app, pilot, node):
        # A listening port nobody answers on: grab one and close it.
        server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        server.close()
        await server.wait_closed()
        key = node.ref[1 : -len(".ed25519")]
        other = Identity.from_seed(seed("ghost")).ref[1 : -len(".ed25519")]
        assert key != other
        await type_line(pilot, f"/connect net:127.0.0.1:{port}~shs:{other}")
        await wait_for(lambda: any("could not connect" in e for e in app.main.errors), pilot)
        shown = next(e for e in app.main.errors if "could not connect" in e)
        assert f"127.0.0.1:{port}" in shown
        assert not any(p.state == "connected" for p in node.peers())


async def test_connect_with_a_bad_address_says_so(tmp_path: Path) -> None:
    async with running(tmp_path, start=True) as (app, pilot, node):
        await type_line(pilot, "/connect not-an-address")
        await wait_for(lambda: "could not connect to not-an-address" in status_text(app), pilot)
        assert node.peers() == []


async def test_join_shows_the_nodes_reason_when_it_fails(tmp_path: Path) -> None:
    async with running(tmp_path, start=True) as (app, pilot, node):
        invite = "net:127.0.0.1:1~shs:" + "A" * 43 + "=:" + "B" * 43 + "="
        try:
            await node.join(invite)
            expected = None
        except Exception as exc:
            expected = str(exc)
        await type_line(pilot, f"/join {invite}")
        if expected is None:
            await wait_for(lambda: "joined" in status_text(app), pilot)
        else:
            await wait_for(lambda: "could not join" in status_text(app), pilot)
            assert expected in status_text(app)


async def test_help_opens_and_closes(tmp_path: Path) -> None:
    async with running(tmp_path) as (app, pilot, _node):
        await type_line(pilot, "/help")
        assert isinstance(app.screen, HelpScreen)
        text = str(app.screen.query_one("#help-commands", Static).render())
        for command in ("/join", "/nick", "/channel", "/msg", "/follow", "/connect", "/quit"):
            assert command in text
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)
        await type_line(pilot, "/help msg")
        # One command's help is a status line, not a dialog that swallows the next keys.
        assert not isinstance(app.screen, HelpScreen)
        assert "/msg NAME" in status_text(app)
        await pilot.press("o", "k")
        assert app.main.input.value == "ok"


@pytest.mark.parametrize("how", ["/quit", "/exit", "ctrl+q"])
async def test_quit_exits(tmp_path: Path, how: str) -> None:
    async with running(tmp_path) as (app, pilot, _node):
        if how.startswith("/"):
            await type_line(pilot, how)
        else:
            await pilot.press(how)
        await pilot.pause()
        assert app._exit


async def test_choosing_a_channel_in_the_list(tmp_path: Path) -> None:
    bob = person("bob", posts=2, channel="random")
    bob.write(post("in general", "general"), T0 - 1000)
    async with running(tmp_path, people=[bob]) as (app, pilot, _node):
        channels = app.main.query_one("#channels", OptionList)
        channels.focus()
        await pilot.press("down", "enter")
        await pilot.pause()
        assert app.main.channel == "random"
        assert [e.text for e in app.main.conversation.entries] == ["bob says 0", "bob says 1"]
        assert app.main.input.has_focus


async def test_node_errors_reach_the_status_line(tmp_path: Path) -> None:
    # A peer on another network fails the handshake: a real error (a blocked key is our
    # own refusal and is not one: tests/test_ui_irc.py).
    give_identity(tmp_path / "bob", "bob")
    elsewhere = replace(config_for(tmp_path / "bob"), network_key=b"n" * 32)
    bob = await Node.open(elsewhere, FAST)
    await bob.start()
    try:
        async with running(tmp_path / "me", start=True) as (app, pilot, node):
            assert node.address is not None
            with pytest.raises(Exception):  # noqa: B017 - the dial fails at the handshake
                await bob.connect(node.address)
            await wait_for(lambda: any("refused" in e for e in app.main.errors), pilot)
            assert app.main.query_one("#status").has_class("-error")
    finally:
        await bob.stop()


# ---------------------------------------------------------------------- keys


async def test_f1_f2_f3_f10_keys(tmp_path: Path) -> None:
    async with running(tmp_path) as (app, pilot, _node):
        await pilot.press("f1")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        sidebar, pane = app.main.query_one("#sidebar"), app.main.replication
        assert sidebar.display and pane.display  # 120 columns: everything shown
        await pilot.press("f2")
        assert not sidebar.display
        await pilot.press("f2", "f3")
        assert sidebar.display and not pane.display
        await pilot.press("f3")
        assert pane.display
        dark = app.current_theme.dark
        await pilot.press("f10")
        assert app.current_theme.dark is not dark


async def test_narrow_terminal_starts_without_the_replication_pane(tmp_path: Path) -> None:
    async with running(tmp_path, size=(80, 24)) as (app, pilot, _node):
        assert not app.main.replication.display
        assert app.main.query_one("#sidebar").display
        await pilot.press("f3")
        assert app.main.replication.display


async def test_ctrl_n_jumps_to_the_next_unread_channel(tmp_path: Path) -> None:
    bob = person("bob", posts=3, channel="random")
    bob.write(post("over in general", "general"), T0 - 1000)
    async with running(tmp_path, people=[bob]) as (app, pilot, node):
        assert app.main.channel == "general"
        channels = {c.name: c.unread for c in await node.channels()}
        assert channels["random"] == 3
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert app.main.channel == "random"
        assert any("new messages" in line for line in shown_lines(app))
        assert {c.name: c.unread for c in await node.channels()}["random"] == 0
        await pilot.press("ctrl+n")
        assert "no unread messages" in status_text(app)


async def test_page_keys_scroll_by_a_page_and_load_older(tmp_path: Path) -> None:
    bob = person("bob", posts=3 * PAGE)
    async with running(tmp_path, people=[bob], size=(100, 30)) as (app, pilot, _node):
        conversation = app.main.conversation
        assert len(conversation.entries) == PAGE  # only a window is loaded
        bottom = conversation.scroll_y
        height = conversation.scrollable_content_region.height
        await pilot.press("pageup")
        await pilot.pause()
        assert bottom - conversation.scroll_y == pytest.approx(height, abs=1)
        for _ in range(PAGE // height + 2):
            await pilot.press("pageup")
            await pilot.pause()
        await wait_for(lambda: len(conversation.entries) > PAGE, pilot)
        texts = [e.text for e in conversation.entries]
        assert texts == sorted(texts, key=lambda t: int(t.rsplit(" ", 1)[1]))
        top = conversation.scroll_y
        await pilot.press("pagedown")
        assert conversation.scroll_y - top == pytest.approx(height, abs=1)


async def test_reading_far_back_keeps_a_bounded_window_without_gaps(tmp_path: Path) -> None:
    total = MAX_WINDOW + 2 * PAGE
    bob = person("bob", posts=total)
    async with running(tmp_path, people=[bob], size=(100, 30)) as (app, pilot, _node):
        conversation = app.main.conversation
        conversation.focus()

        def numbers() -> list[int]:
            return [int(e.text.rsplit(" ", 1)[1]) for e in conversation.entries]

        for _ in range(total // PAGE + 2):  # Home: to the top of the window, loads a page
            await pilot.press("home")
            await wait_for(lambda: not conversation._loading_older, pilot)
        assert not conversation.has_older and numbers()[0] == 0
        assert len(conversation.entries) <= MAX_WINDOW and conversation.has_newer
        assert numbers() == list(range(numbers()[0], numbers()[0] + len(numbers())))
        for _ in range(total // PAGE + 2):  # to the bottom: dropped pages come back
            conversation.scroll_to(y=conversation.max_scroll_y, animate=False, immediate=True)
            await wait_for(lambda: not conversation._loading_newer, pilot)
            await pilot.pause()
        assert not conversation.has_newer and numbers()[-1] == total - 1
        assert len(conversation.entries) <= MAX_WINDOW
        assert numbers() == list(range(numbers()[0], total))
        await pilot.press("home", "home", "end")  # End: straight back to the newest
        await pilot.pause()
        assert numbers()[-1] == total - 1 and conversation.is_following


async def test_up_down_walk_the_input_history(tmp_path: Path) -> None:
    async with running(tmp_path) as (app, pilot, _node):
        await type_line(pilot, "first")
        await type_line(pilot, "second")
        app.main.input.value = "draft"
        await pilot.pause()
        field = app.main.input
        await pilot.press("up")
        assert field.value == "second"
        await pilot.press("up")
        assert field.value == "first"
        await pilot.press("down", "down")
        assert field.value == "draft"


async def test_tab_completes_commands_names_and_channels(tmp_path: Path) -> None:
    bob = person("bob", posts=1, channel="random")
    async with running(tmp_path, people=[bob]) as (app, pilot, _node):
        field = app.main.input

        async def typed(text: str) -> None:
            field.value = text
            field.cursor_position = len(text)
            await pilot.press("tab")

        await typed("/fol")
        assert field.value == "/follow "
        await typed("/follow bo")
        assert field.value == "/follow bob "
        await typed("see #ra")
        assert field.value == "see #random "
        await typed("/un")
        first = field.value
        await pilot.press("tab")
        assert {first, field.value} == {"/unblock", "/unfollow"}


async def test_escape_enter_shows_how_a_message_got_here(tmp_path: Path) -> None:
    bob, carol = person("bob", posts=2), person("carol")
    give_identity(tmp_path, "me")
    await prefill(tmp_path, [carol])
    async with running(tmp_path, people=[bob], via=carol.key) as (app, pilot, _node):
        await pilot.press("escape")
        conversation = app.main.conversation
        assert app.focused is conversation
        assert conversation.selected is not None
        assert conversation.selected.text == "bob says 1"
        await pilot.press("up", "enter")
        await pilot.pause()
        detail = str(app.main.query_one("#detail", Static).render())
        assert "bob" in detail and "#2" in detail
        assert "delivered by carol" in detail
        await pilot.press("escape")
        assert app.main.input.has_focus


async def test_r_replies_to_the_selected_message(tmp_path: Path) -> None:
    bob = person("bob", posts=2)
    async with running(tmp_path, people=[bob]) as (app, pilot, node):
        await pilot.press("escape", "r")
        assert app.focused is app.main.input
        assert "replying to bob" in str(app.main.query_one("#reply-bar", Static).render())
        app.main.input.value = "agreed"
        await pilot.press("enter")
        await pilot.pause()
        mine = [e for e in await node.timeline("general") if e.author == node.feed_id]
        assert [(e.text, e.reply_to) for e in mine] == [("agreed", bob.ids[-1])]
        assert any("↳ bob: bob says 1" in line for line in shown_lines(app))
        assert not app.main.query_one("#reply-bar").display


async def test_ctrl_s_saves_an_svg_screenshot(tmp_path: Path) -> None:
    async with running(tmp_path) as (app, pilot, _node):
        await pilot.press("ctrl+s")
        files = svg_files(tmp_path)
        assert len(files) == 1
        assert files[0].read_text().startswith("<svg")
        assert str(files[0]) in status_text(app)


async def test_command_palette_runs_commands(tmp_path: Path) -> None:
    async with running(tmp_path) as (app, pilot, _node):
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"/peers")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await pilot.pause()
        assert app.focused is app.main.query_one("#peers")
        await pilot.press("ctrl+p", *"/nick")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await pilot.pause()
        assert app.main.input.value == "/nick "


# ---------------------------------------------------------------------- the live network


async def test_messages_from_a_peer_appear_live_and_mentions_stand_out(tmp_path: Path) -> None:
    give_identity(tmp_path / "bob", "bob")
    bob = await Node.open(config_for(tmp_path / "bob"), FAST)
    await bob.start()
    try:
        async with running(tmp_path / "me", start=True) as (app, pilot, node):
            await bob.set_name("bob")
            await type_line(pilot, "/nick me")
            await type_line(pilot, f"/follow {bob.ref}")
            assert bob.address is not None
            await type_line(pilot, f"/connect {bob.address}")
            await wait_for(lambda: "bob" in node.known_names(), pilot)
            screen = app.main
            events: list[str] = []
            node.subscribe(lambda event: events.append(event.kind))
            redraws = 0
            original = screen.refresh_messages

            async def counting() -> None:
                nonlocal redraws
                redraws += 1
                await original()

            screen.refresh_messages = counting  # type: ignore[method-assign]
            started = time.monotonic()
            for i in range(100):
                await bob.post(f"burst {i}", "general")
            await wait_for(lambda: any("burst 99" in s for s in shown_lines(app)), pilot)
            elapsed = time.monotonic() - started
            assert [e.text for e in screen.conversation.entries][-100:] == [
                f"burst {i}" for i in range(100)
            ]
            # Coalesced: one redraw per flush interval at most, not one per event.
            assert redraws <= events.count("messages")
            assert redraws <= elapsed / FLUSH_INTERVAL + 2
    finally:
        await bob.stop()


async def test_a_post_naming_us_is_highlighted(tmp_path: Path) -> None:
    """The node's data decides (the post's `mentions`), not the text: '@me' alone is not
    our key, a post whose mentions hold our key is."""
    me = give_identity(tmp_path, "me")
    bob = person("bob")
    bob.write(post("hey @Me, look at this", "general", mentions=[me.feed_id]), T0 + 5000)
    bob.write(post("@me in words only", "general"), T0 + 6000)
    bob.write(post("unrelated", "general"), T0 + 7000)
    async with running(tmp_path, people=[bob]) as (app, pilot, _node):
        conversation = app.main.conversation
        await type_line(pilot, "/nick me")
        marked = {
            conversation.entries[line.entry].text
            for line in conversation._lines
            if line.kind is LineKind.MENTION
        }
        assert marked == {"hey @Me, look at this"}


async def test_a_name_clash_is_flagged(tmp_path: Path) -> None:
    real, fake = Person("carol"), Person("mallory")
    real.write(about("carol"), T0)
    fake.write(about("carol"), T0)
    real.write(post("hello, carol here", "general"), T0 + 1000)
    fake.write(post("hello, I am carol too", "general"), T0 + 2000)
    async with running(tmp_path, people=[real, fake]) as (app, _pilot, _node):
        entries = app.main.conversation.entries
        assert all(e.name_collision for e in entries)
        assert entries[0].author_name != entries[1].author_name
        assert all(
            line.lstrip()[6:].startswith("⚠") for line in shown_lines(app) if "hello" in line
        )
        assert "name clash" in str(app.main.conversation.border_subtitle)
