"""Newest first over real sockets: a member with `history = 100` joins a node holding
2,000 messages per feed, gets the newest 100 of each, then scrolls back for older ones."""

from __future__ import annotations

import asyncio
from pathlib import Path

from nacl.signing import SigningKey

from chat.cli import main
from chat.content import post
from chat.node import Node
from store.message import Message, create_message, feed_ref
from tests.nodes import open_node, wait_until

PER_FEED = 2000
KEYS = [SigningKey(bytes([70 + n]) * 32) for n in range(2)]
FEEDS = [bytes(key.verify_key) for key in KEYS]


def feed(key: SigningKey, count: int) -> list[Message]:
    messages: list[Message] = []
    prev: bytes | None = None
    for seq in range(1, count + 1):
        message = create_message(key, seq, prev, 1_700_000_000_000 + seq, post(f"m{seq}", "h"))
        messages.append(message)
        prev = message.id
    return messages


async def archive(path: Path) -> tuple[Node, list[list[Message]]]:
    """A node that follows FEEDS and holds all of them (history = all)."""
    node = await open_node(path, history=None)
    chains = [feed(key, PER_FEED) for key in KEYS]
    for chain in chains:
        await node.follow(chain[0].author)
        result = await node.store.add_received([m.raw for m in chain])
        assert len(result.stored) == PER_FEED
    await node.manager.async_catch_up_store()
    return node, chains


async def test_history_100_gets_the_newest_100_then_older_on_demand(tmp_path: Path) -> None:
    pub, chains = await archive(tmp_path / "pub")
    member = await open_node(tmp_path / "member", history=100)
    try:
        for author in FEEDS:
            await member.follow(author)
        assert pub.address is not None
        await member.connect(pub.address)

        async def newest_held() -> bool:  # stored, and the core told so
            held = [await member.store.ranges(author) for author in FEEDS]
            views = [member.history_view(author) for author in FEEDS]
            told = all(v is not None and v.held_from == PER_FEED - 99 for v in views)
            return told and all(ranges == [(PER_FEED - 99, PER_FEED)] for ranges in held)

        await wait_until(newest_held, 20, "the newest 100 of every feed")
        for author in FEEDS:
            assert member.local_seq(author) == PER_FEED
            view = member.history_view(author)
            assert view is not None
            assert (view.held_from, view.wanted_from, view.unavailable) == (1901, 1901, False)
        # Nothing older is fetched on its own: history = 100.
        await wait_until(lambda: member.manager.replicator.open_ranges == 0, 10, "quiet")
        held = await member.store.held_ranges()
        assert {author: held[author] for author in FEEDS} == {
            author: [(PER_FEED - 99, PER_FEED)] for author in FEEDS
        }

        # Scrolling back asks for an older range, which arrives and joins the window.
        member.fetch_older(FEEDS[0], 100)

        async def older_held() -> bool:
            return await member.store.ranges(FEEDS[0]) == [(PER_FEED - 199, PER_FEED)]

        await wait_until(older_held, 20, "an older range of the first feed")
        raws = await member.store.get_range(FEEDS[0], PER_FEED - 199, 200)
        assert raws == [m.raw for m in chains[0][PER_FEED - 200 :]]
        assert await member.store.ranges(FEEDS[1]) == [(PER_FEED - 99, PER_FEED)]

        # Live messages still flow as usual on top of the window.
        chain = chains[1]
        live = create_message(
            KEYS[1], PER_FEED + 1, chain[-1].id, chain[-1].timestamp + 1, post("live", "h")
        )
        stored = await pub.store.add_received([live.raw])
        pub.manager.local_messages(stored.stored)
        await wait_until(lambda: member.local_seq(FEEDS[1]) == PER_FEED + 1, 20, "live message")
        assert await member.store.ranges(FEEDS[1]) == [(PER_FEED - 99, PER_FEED + 1)]
    finally:
        await member.stop()
        await pub.stop()


async def test_scrolling_back_past_what_anyone_connected_holds_says_so(tmp_path: Path) -> None:
    pub, _ = await archive(tmp_path / "pub")
    middle = await open_node(tmp_path / "middle", history=100)
    member = await open_node(tmp_path / "member", history=50)
    try:
        for node in (middle, member):
            for author in FEEDS:
                await node.follow(author)
        assert pub.address is not None and middle.address is not None
        await middle.connect(pub.address)

        async def middle_holds() -> bool:
            held = [await middle.store.ranges(author) for author in FEEDS]
            return all(ranges == [(PER_FEED - 99, PER_FEED)] for ranges in held)

        await wait_until(middle_holds, 20, "the middle node's newest 100 of every feed")
        await pub.stop()
        await member.connect(middle.address)

        async def windows_held() -> bool:  # the newest 10 come first, then the rest of 50
            held = [await member.store.ranges(author) for author in FEEDS]
            return all(ranges == [(PER_FEED - 49, PER_FEED)] for ranges in held)

        await wait_until(windows_held, 20, "the member's newest 50 of every feed")
        member.fetch_older(FEEDS[0], 50)  # the middle node holds these (1901..1950)
        await wait_until(
            lambda: member.history_view(FEEDS[0]).held_from == 1901,  # type: ignore[union-attr]
            20,
            "older messages from the middle node",
        )
        member.fetch_older(FEEDS[0], 50)  # nobody connected holds 1851..1900

        def unavailable() -> bool:
            view = member.history_view(FEEDS[0])
            return view is not None and view.unavailable

        await wait_until(unavailable, 20, "history reported unavailable")
        assert (await member.store.ranges(FEEDS[0]))[0][0] == 1901
    finally:
        await member.stop()
        await middle.stop()
        await pub.stop()


async def test_treechat_history_beside_a_running_node_takes_effect(tmp_path: Path) -> None:
    node = await open_node(tmp_path / "node", history=100)
    try:
        await node.follow(FEEDS[0])
        argv = ["--data-dir", str(tmp_path / "node"), "history", feed_ref(FEEDS[0]), "all"]
        assert await asyncio.to_thread(main, argv) == 0
        await wait_until(lambda: node.history_setting(FEEDS[0]).own, 5, "the new setting")
        assert node.history_setting(FEEDS[0]).keep is None
        view = node.history_view(FEEDS[0])
        assert view is not None and view.wanted_from == 1
        assert await asyncio.to_thread(main, [*argv[:4], "default"]) == 0
        await wait_until(lambda: not node.history_setting(FEEDS[0]).own, 5, "the default again")
    finally:
        await node.stop()
