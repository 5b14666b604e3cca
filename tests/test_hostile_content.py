"""A stranger's feed full of terminal tricks: the store indexes none of them, and neither
`treechat log` nor the TUI lets a control character, ESC sequence or bidi override through."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from chat.cli import main as cli_main
from chat.content import post
from chat.names import Names
from chat.reading import Reader
from store.db import Store
from store.schema import SCHEMA_VERSION
from store.search import POST_TEXT_FUNCTION, post_text
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


def write_as_the_old_indexer(path: Path, stranger: Person, ada: Person) -> None:
    """What the loose indexer wrote for these feeds: every channel and every
    latest name as sent, the refused posts in the search index; then mark it version 8."""
    with sqlite3.connect(path) as raw:
        raw.create_function(POST_TEXT_FUNCTION, 1, post_text)
        for seq, channel in ((3, "NOT a Channel!"), (4, "gen\x1beral")):
            raw.execute(
                "UPDATE messages SET channel = ? WHERE author = ? AND seq = ?",
                (channel, stranger.key, seq),
            )
            raw.execute(
                "INSERT INTO search_text (rowid, text) SELECT rowid, post_text(raw)"
                " FROM messages WHERE author = ? AND seq = ?",
                (stranger.key, seq),
            )
        raw.execute(
            "INSERT INTO mentions (feed, msg_rowid) SELECT ?, rowid FROM messages"
            " WHERE author = ? AND seq = 3",
            (ada.key.hex(), stranger.key),
        )
        raw.executemany(
            "INSERT OR REPLACE INTO names (author, name, seq) VALUES (?, ?, ?)",
            [(stranger.key, "\u202eadmin", 2), (ada.key, "ada\x1b[2J", 2)],
        )
        raw.execute("PRAGMA user_version = 8")  # the reindex is migration 9


async def test_an_old_database_is_reindexed_by_todays_rules(tmp_path: Path) -> None:
    stranger, ada = hostile(), Person("ada")
    ada.write({"type": "about", "name": "ada"}, T0)
    ada.write({"type": "about", "name": "ada\x1b[2J"}, T0 + 1)  # refused: ada stays "ada"
    path = tmp_path / "treechat.db"
    async with await Store.open(path) as store:
        for person in (stranger, ada):
            assert not (await store.add_received(person.raws)).errors
    write_as_the_old_indexer(path, stranger, ada)
    async with await Store.open(path) as store:
        assert await store.schema_version() == SCHEMA_VERSION
        assert [c.name for c in await store.channels()] == ["general"]
        assert await store.names() == {ada.key: "ada"}
        assert await store.search("shouting") == [] and await store.search("esc") == []
        assert [hit.channel for hit in await store.search("gnp")] == ["general"]
    with sqlite3.connect(path) as raw:
        assert raw.execute("SELECT count(*) FROM mentions").fetchone() == (0,)


async def test_channels_the_rules_refuse_are_never_listed(tmp_path: Path) -> None:
    # A row written before the reindex (here by hand, as no migration will come to it):
    # the chat layer drops it on read, as Names drops such names.
    stranger = hostile()
    path = tmp_path / "treechat.db"
    async with await Store.open(path) as store:
        assert not (await store.add_received(stranger.raws)).errors
    with sqlite3.connect(path) as raw:
        raw.execute("UPDATE messages SET channel = 'NOT a Channel!' WHERE seq = 3")
    async with await Store.open(path) as store:
        assert "NOT a Channel!" in [c.name for c in await store.channels()]
        reader = Reader(store, Names(await store.names()), Person("me").identity)
        assert [c.name for c in await reader.channels()] == ["general"]
