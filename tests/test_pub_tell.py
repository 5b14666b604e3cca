"""`tell = mutuals` end to end: a node serves its own feed to mutual follows only."""

from __future__ import annotations

import asyncio
from pathlib import Path

from chat.identity import load_or_create_identity
from chat.node import Node
from net.policy import Audience
from tests.nodes import open_node, wait_until


def _seq(node: Node, feed: bytes) -> int:
    assert node.manager is not None
    return node.manager.replicator.local_clock.get(feed, 0)


async def test_tell_mutuals_serves_our_feed_to_mutuals_only(tmp_path: Path) -> None:
    carol_id = load_or_create_identity(tmp_path / "carol").feed_id
    mutual_id = load_or_create_identity(tmp_path / "mutual").feed_id
    carol = await open_node(tmp_path / "carol", tell=Audience.MUTUALS)
    mutual = await open_node(tmp_path / "mutual")
    stranger = await open_node(tmp_path / "stranger")  # follows carol; carol does not follow it
    try:
        await carol.follow(mutual_id)
        await mutual.follow(carol_id)
        await stranger.follow(carol_id)
        await carol.post("for mutuals only", "general")
        assert carol.address is not None
        await mutual.connect(carol.address)
        await stranger.connect(carol.address)
        # The positive control: the mutual gets carol's feed over the same kind of link.
        await wait_until(lambda: _seq(mutual, carol_id) >= 2, what="carol's feed at the mutual")
        await asyncio.sleep(0.5)  # the stranger had the same time and more
        assert stranger.manager is not None and carol_id in stranger.manager.wanted
        assert _seq(stranger, carol_id) == 0
    finally:
        for node in (carol, mutual, stranger):
            await node.stop()
