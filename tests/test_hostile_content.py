"""A stranger's feed full of terminal tricks: the store indexes none of them, and neither
`treechat log` nor the TUI lets a control character, ESC sequence or bidi override through."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from chat.cli import main as cli_main
from chat.content import post
from store.db import Store
from tests.test_ui import T0, Person, running, shown_lines
from ui.widgets.sidebar import ChannelList

HIDDEN = ("\x1b", "\x07", "\x9b", "\u202e", "\u2066", "\u200b", "\u2028")
"""ESC, BEL, CSI (C1), right-to-left override, left-to-right isolate, zero-width space,
line separator."""

LONG_NAME = "evil\n\x1b[2J\x1b]0;owned\x07" + "x" * 100  # 115 characters, as found in the wild


def hostile() -> Person:
    stranger = Person("stranger")
    stranger.write({"type": "about", "name": LONG_NAME}, T0)
    stranger.write({"type": "about", "name": "\u202eadmin"}, T0 + 1)
    stranger.write({"type": "post", "text": "shouting", "channel": "NOT a Channel!"}, T0 + 2)
    stranger.write({"type": "post", "text": "esc", "channel": "gen\x1beral"}, T0 + 3)
    text = "look \x1b[31mred\x1b[0m \x9b2J \u202egnp.exe \u2066iso\u2069 zero\u200bwidth\u2028end"
    stranger.write(post(text), T0 + 4)
    stranger.write({"type": "pub", "host": "h\x1b[2J", "port": 7708, "key": b"k" * 32}, T0 + 5)
    return stranger


def assert_clean(text: str) -> None:
    for ch in HIDDEN:
        assert ch not in text, f"{ch!r} got through: {text!r}"


async def test_the_store_indexes_no_hostile_name_channel_or_pub(tmp_path: Path) -> None:
    stranger = hostile()
    async with await Store.open(tmp_path / "treechat.db") as store:
        result = await store.add_received(stranger.raws)
        assert not result.errors and len(result.stored) == 6, "stored all the same"
        assert await store.names() == {}
        assert [c.name for c in await store.channels()] == ["general"]
        assert await store.pubs() == []


async def test_log_and_the_tui_show_hostile_text_harmlessly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stranger = hostile()
    async with running(tmp_path, people=[stranger]) as (app, _pilot, node):
        lines = shown_lines(app)
        assert any("gnp.exe" in line for line in lines), lines
        for line in lines:
            assert_clean(line)
        channels = app.main.query_one("#channels", ChannelList)
        shown = [str(channels.get_option_at_index(i).prompt) for i in range(channels.option_count)]
        assert not any("NOT" in c for c in shown), shown
        (entry,) = await node.timeline("general")
        assert_clean(entry.text)
        assert entry.author_name == stranger.identity.short
        assert_clean(node.display_name(stranger.key))

    capsys.readouterr()
    assert await asyncio.to_thread(cli_main, ["--data-dir", str(tmp_path), "log"]) == 0
    out = capsys.readouterr().out
    assert "red" in out and "gnp.exe" in out and "shouting" not in out
    assert_clean(out)
    assert await asyncio.to_thread(cli_main, ["--data-dir", str(tmp_path), "log", "--json"]) == 0
    assert_clean(capsys.readouterr().out)
