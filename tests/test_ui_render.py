"""Pilot tests of how messages are drawn: selection, colours, wrapping, replies, names."""

from __future__ import annotations

from pathlib import Path

from chat.content import about, post
from store.db import Store
from tests.test_ui import T0, person, running, shown_lines, wait_for


def line_of(app: object, text: str) -> int:
    from ui.app import TreechatApp

    assert isinstance(app, TreechatApp)
    lines = shown_lines(app)
    return next(i for i, line in enumerate(lines) if text in line)


async def test_the_selected_message_has_a_real_background(tmp_path: Path) -> None:
    bob = person("bob", posts=3)
    async with running(tmp_path, people=[bob]) as (app, pilot, _node):
        await pilot.press("escape")  # select the newest message
        conversation = app.main.conversation
        assert conversation.selected is not None and conversation.selected.text == "bob says 2"
        cursor_bg = conversation.get_component_rich_style("conversation--cursor").bgcolor
        plain_bg = conversation.rich_style.bgcolor
        assert cursor_bg is not None and cursor_bg != plain_bg
        y = line_of(app, "bob says 2") - conversation.scroll_offset.y
        selected = conversation.render_line(y)
        other = conversation.render_line(line_of(app, "bob says 1") - conversation.scroll_offset.y)
        # every cell of the selected line, text included, is painted: not only the padding
        assert {seg.style.bgcolor for seg in selected if seg.style} == {cursor_bg}
        assert cursor_bg not in {seg.style.bgcolor for seg in other if seg.style}


async def test_a_wrapped_message_keeps_one_text_colour_and_clears_the_scrollbar(
    tmp_path: Path,
) -> None:
    bob = person("bob", posts=40)  # enough to need a scrollbar
    long = " ".join(f"word{i}" for i in range(60))
    bob.write(post(long, "general"), T0 + 100_000)
    async with running(tmp_path, people=[bob], size=(120, 35)) as (app, _pilot, _node):
        conversation = app.main.conversation
        assert conversation.show_vertical_scrollbar
        first = line_of(app, "word0")
        rows = [
            conversation._lines[n].strip
            for n in range(first, len(conversation._lines))
            if conversation._lines[n].entry == conversation._lines[first].entry
        ]
        assert len(rows) >= 2
        colours = {
            seg.style.color if seg.style else None
            for row in rows
            for seg in row
            if seg.text.strip().startswith("word")
        }
        assert len(colours) == 1  # the first line is not grey while the others are white
        width = conversation.scrollable_content_region.width
        assert all(row.cell_length <= width for row in rows)
        assert "word59" in "".join(line for line in shown_lines(app))


async def test_a_reply_quotes_its_parent_on_its_own_timed_line(tmp_path: Path) -> None:
    bob = person("bob")
    parent = bob.write(post("morning all, the pub is back up and running again", "general"), T0)
    carol = person("carol")
    carol.write(post("great news", "general", reply_to=parent), T0 + 60_000)
    async with running(tmp_path, people=[bob, carol]) as (app, _pilot, _node):
        lines = shown_lines(app)
        quote = line_of(app, "↳ bob: morning all")
        assert lines[quote].startswith(lines[quote][:5]) and lines[quote][:2].isdigit()
        assert "carol: great news" in lines[quote + 1]
        assert len(lines[quote].rstrip()) <= 6 + 60


async def test_names_on_screen_change_when_an_about_arrives(tmp_path: Path) -> None:
    bob = person("bob", posts=2)
    async with running(tmp_path, people=[bob], start=True) as (app, pilot, _node):
        assert any(
            line.strip().startswith(("00:", "01:")) or "bob:" in line for line in shown_lines(app)
        )
        bob.write(about("robert"), T0 + 50_000)
        async with await Store.open(tmp_path / "treechat.db") as other:
            assert not (await other.add_received(bob.raws[-1:])).errors
        await wait_for(
            lambda: any("robert: bob says 1" in line for line in shown_lines(app)), pilot
        )
        assert not any("bob: bob says" in line for line in shown_lines(app))


async def test_follow_newest_survives_a_resize(tmp_path: Path) -> None:
    bob = person("bob", posts=60)
    async with running(tmp_path, people=[bob], size=(120, 35)) as (app, pilot, _node):
        conversation = app.main.conversation
        await conversation.jump_to_latest()  # it opened at the "new messages" rule
        await pilot.pause()
        assert conversation.is_following
        for size in ((80, 24), (160, 45), (100, 30)):
            await pilot.resize_terminal(*size)
            await pilot.pause()
            await pilot.pause()
            assert conversation.is_following, size
