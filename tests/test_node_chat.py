"""Node chat views on a real SQLite file: mentions, unread by arrival, names, private messages."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from chat.content import about, post, seal_private
from chat.node import Node
from store.message import feed_ref
from tests.nodes import FAST
from tests.test_ui import T0, Person, config_for, give_identity, person, prefill, running
from ui.widgets.sidebar import ChannelList


@asynccontextmanager
async def node_with(path: Path, people: list[Person]) -> AsyncIterator[Node]:
    give_identity(path, "me")
    await prefill(path, people)
    node = await Node.open(config_for(path), FAST)
    try:
        yield node
    finally:
        await node.stop()


async def deliver(node: Node, someone: Person, count: int = 1) -> None:
    """Store `someone`'s newest `count` messages as if a peer had just delivered them."""
    result = await node.store.add_received(someone.raws[-count:], source=someone.key)
    assert not result.errors and len(result.stored) == count


async def unread(node: Node, channel: str = "general") -> tuple[int, int]:
    info = next(c for c in await node.channels() if c.name == channel)
    return info.unread, info.mentions


async def test_post_finds_mentions_by_name_and_by_key(tmp_path: Path) -> None:
    bob, carol = person("bob"), person("carol")
    sam, other_sam = person("sam"), Person("sam two")  # '@sam' names nobody for sure
    other_sam.write(about("sam"), T0)
    async with node_with(tmp_path, [bob, carol, sam, other_sam]) as node:
        text = f"hi @Bob, @sam and {feed_ref(carol.key)}; mail bob@example.org @nobody"
        entry = await node.post(text, "general")
        assert entry.mentions == (bob.key, carol.key)
        (stored,) = await node.timeline("general")
        assert stored.mentions == (bob.key, carol.key)  # in the signed content
        assert (await node.post("no one here", "general")).mentions == ()


async def test_unread_mentions_of_us_are_counted_per_channel(tmp_path: Path) -> None:
    me = give_identity(tmp_path, "me")
    bob = person("bob")
    async with node_with(tmp_path, [bob]) as node:
        await node.mark_read("general")
        bob.write(post("hey @me", "general", mentions=[me.feed_id]), T0 + 5000)
        bob.write(post("just chatting", "general"), T0 + 6000)
        await deliver(node, bob, 2)
        await node.post(f"talking to myself {feed_ref(me.feed_id)}", "general")
        assert await unread(node) == (2, 1)  # our own post is never unread
        await node.mark_read("general")
        assert await unread(node) == (0, 0)


async def test_unread_follows_arrival_not_claimed_time(tmp_path: Path) -> None:
    bob = person("bob", posts=2)
    async with node_with(tmp_path, [bob]) as node:
        assert await unread(node) == (2, 0)  # never opened: everything is unread
        await node.mark_read("general")
        assert await unread(node) == (0, 0)
        bob.write(post("written long ago, arrives now", "general"), T0 - 86_400_000)
        await deliver(node, bob)
        assert await unread(node) == (1, 0)  # a late arrival with an old timestamp
        await node.mark_read("general")
        future = int(time.time() * 1000) + 86_400_000
        bob.write(post("from a clock a day ahead", "general"), future)
        await deliver(node, bob)
        assert await unread(node) == (1, 0)
        await node.mark_read("general")
        assert await unread(node) == (0, 0)  # read once seen, not unread until tomorrow


async def test_a_key_suffix_only_when_two_people_share_a_name(tmp_path: Path) -> None:
    bob = person("bob", posts=1)
    real, fake = person("carol", posts=1), Person("mallory")
    fake.write(about("carol"), T0)
    fake.write(post("I am carol too", "general"), T0 + 9000)
    async with node_with(tmp_path, [bob, real, fake]) as node:
        assert node.display_name(bob.key) == "bob"
        assert node.display_name(real.key).startswith("carol (")
        assert node.display_name(fake.key) != node.display_name(real.key)
        entries = {e.author: e for e in await node.timeline("general")}
        assert (entries[bob.key].author_name, entries[bob.key].name_collision) == ("bob", False)
        assert entries[fake.key].name_collision and entries[real.key].name_collision


async def test_private_timeline_holds_the_newest_messages_oldest_first(tmp_path: Path) -> None:
    me = give_identity(tmp_path, "me")
    bob, eve = person("bob"), person("eve")
    for i in range(6):
        bob.write(seal_private(post(f"to me {i}", "private"), [me.feed_id], bob.key), T0 + i)
        eve.write(seal_private(post(f"not for me {i}", "private"), [bob.key], eve.key), T0 + i)
    async with node_with(tmp_path, [bob, eve]) as node:
        assert [e.text for e in await node.private_timeline(4)] == [
            f"to me {i}" for i in range(2, 6)
        ]
        await node.send_private([bob.key], "newest")
        texts = [e.text for e in await node.private_timeline(3)]
        assert texts == ["to me 4", "to me 5", "newest"]
        assert len(await node.private_timeline()) == 7


async def test_a_damaged_private_message_does_not_stop_the_index(tmp_path: Path) -> None:
    """A box whose slot opens for us but whose body fails its check is skipped; the
    private messages around it are still indexed, listed and searchable."""
    me = give_identity(tmp_path, "me")
    bob = person("bob")
    bob.write(seal_private(post("before", "private"), [me.feed_id], bob.key), T0 + 1)
    damaged = seal_private(post("tampered", "private"), [me.feed_id], bob.key)
    bob.write(damaged[:-1] + bytes([damaged[-1] ^ 1]), T0 + 2)
    bob.write(seal_private(post("after", "private"), [me.feed_id], bob.key), T0 + 3)
    async with node_with(tmp_path, [bob]) as node:
        [info] = await node.conversations()
        assert info.unread == 2
        texts = [e.text for e in await node.conversation(info.view)]
        assert texts == ["before", "after"]
        assert [h.entry.text for h in await node.search("after")] == ["after"]


async def test_the_channel_list_marks_unread_mentions(tmp_path: Path) -> None:
    me = give_identity(tmp_path, "me")
    bob = person("bob")
    bob.write(post("hello", "general"), T0 + 1000)
    bob.write(post("@me look", "random", mentions=[me.feed_id]), T0 + 2000)
    async with running(tmp_path, people=[bob]) as (app, _pilot, _node):
        channels = app.main.query_one(ChannelList)
        labels = [str(channels.get_option_at_index(i).prompt) for i in range(channels.option_count)]
        assert "#random ● 1 @1" in labels
        assert "#general" in labels
