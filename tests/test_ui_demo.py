"""`treechat demo`: four real nodes on loopback, the scripted conversation reaching the TUI."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from chat.cli import resolve_handler
from chat.demo import BOT_NAMES, SCRIPT, DemoNetwork
from ui.app import build_app


async def test_demo_conversation_reaches_the_tui_over_eager_and_lazy_links(
    tmp_path: Path,
) -> None:
    network = await DemoNetwork.start(tmp_path)
    try:
        deadline = time.monotonic() + 10
        while True:  # the bots' names arrive over the links just made
            names = sorted(network.you.display_name(b.feed_id) for b in network.bots.values())
            if names == sorted(BOT_NAMES) or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
        assert names == sorted(BOT_NAMES)  # unique names: no key suffix
        app = build_app(network.you)
        async with app.run_test(size=(130, 40)) as pilot:
            posted = await network.async_run_script(speed=50)
            assert posted == len(SCRIPT)
            general = [
                line.text for line in SCRIPT if line.channel == "general" and not line.private
            ]
            deadline = time.monotonic() + 15
            while [e.text for e in app.main.conversation.entries] != general:
                assert time.monotonic() < deadline, [e.text for e in app.main.conversation.entries]
                await pilot.pause(0.05)
            replies = [e for e in app.main.conversation.entries if e.reply_to is not None]
            assert len(replies) == sum(
                1 for line in SCRIPT if line.reply_to is not None and line.channel == "general"
            )
            random = next(c for c in await network.you.channels() if c.name == "random")
            assert random.unread == sum(1 for line in SCRIPT if line.channel == "random")
            private = [e.text for e in await network.you.private_timeline()]
            assert private == [line.text for line in SCRIPT if line.private]
            # Every bot is linked to us; each bot feed has exactly one eager source.
            await pilot.pause(1.2)
            links = app.main.replication.links or []
            assert sorted(link.peer for link in links) == sorted(
                b.feed_id for b in network.bots.values()
            )
            for bot in network.bots.values():
                tree = network.you.feed_tree(bot.feed_id)
                assert tree.eager_source is not None
                assert tree.eager_source not in tree.lazy_peers
            # Each feed's tree uses 3 of the 6 links of the mesh, the rest are lazy.
            # Which ones depends on timing: your node may well be the hub every bot
            # takes the others' feeds from (all your links eager), so count them all.
            nodes = [network.you, *network.bots.values()]
            assert sum(link.lazy for node in nodes for link in node.links()) > 0
    finally:
        await network.stop()


def test_the_cli_dispatches_tui_and_demo_to_the_ui() -> None:
    assert resolve_handler("demo").__module__ == "ui.demo"
    assert resolve_handler("tui").__module__ == "ui.app"
