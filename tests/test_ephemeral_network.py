"""Ephemeral gossip between five real nodes on 127.0.0.1 (chat/ephemeral.py over TCP).

    A - B - C - D
            |   |
            +-- E      D and E follow each other; E tells mutuals only.

Distances from A: B 1, C 2, D 3, E 3.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

from chat.ephemeral import EphemeralOptions
from chat.node import Node
from net.ephemeral import ID_SIZE, Datum
from net.frames import Ephemeral
from net.policy import Audience
from net.server import DialError
from tests.nodes import FAST, open_node, wait_until

QUICK = EphemeralOptions(presence_interval=0.3, tick=0.1)


def _options(**changes: object) -> object:
    return replace(FAST, ephemeral=replace(QUICK, **changes))  # type: ignore[arg-type]


def _whispers(node: Node, channel: str = "dev") -> list[str]:
    return [w.text for w in node.ephemeral.whispers_in(channel)]


async def test_presence_typing_whispers_and_tell_over_five_nodes(tmp_path: Path) -> None:
    a = await open_node(tmp_path / "a", _options())  # type: ignore[arg-type]
    b = await open_node(tmp_path / "b", _options())  # type: ignore[arg-type]
    c = await open_node(tmp_path / "c", _options())  # type: ignore[arg-type]
    # D says it is here once, when a link comes up, and that it is good for 1 s.
    d = await open_node(tmp_path / "d", _options(presence_interval=60.0, presence_ttl=1.0))  # type: ignore[arg-type]
    e = await open_node(tmp_path / "e", _options(), tell=Audience.MUTUALS)  # type: ignore[arg-type]
    nodes = (a, b, c, d, e)
    try:
        await d.follow(e.feed_id)
        await e.follow(d.feed_id)
        for dialler, target in ((b, a), (c, b), (d, c), (e, d), (e, c)):
            assert target.address is not None
            await dialler.connect(target.address)
        await wait_until(lambda: d.feed_id in e.scope.mutuals, what="E sees D as a mutual")

        # Presence appears (A's at B) ...
        await wait_until(lambda: b.ephemeral.state_of(a.feed_id)[0] == "online", what="A at B")
        # ... and expires: D's lasts 1 s and is not renewed; C then shows when it was seen.
        await wait_until(lambda: c.ephemeral.state_of(d.feed_id)[0] == "online", what="D at C")
        await wait_until(lambda: c.ephemeral.state_of(d.feed_id)[0] == "offline", what="expiry")
        assert c.ephemeral.state_of(d.feed_id)[1] is not None  # last seen

        # tell = mutuals: E's presence reaches D (mutual) again and again, never C.
        await wait_until(lambda: d.ephemeral.state_of(e.feed_id)[0] == "online", what="E at D")
        first = d.ephemeral.presence[e.feed_id].heard_at
        await wait_until(lambda: d.ephemeral.presence[e.feed_id].heard_at > first, what="again")
        assert c.ephemeral.state_of(e.feed_id) == ("", None)

        # Typing at hops 1 reaches B (direct), not C (2 hops) ...
        a.ephemeral.typing_in("dev")
        await wait_until(lambda: ("dev", a.feed_id) in b.ephemeral.typing, what="typing at B")
        # ... and a whisper with hops 2 reaches exactly B and C. It follows the typing
        # datum down the same FIFO links, so once C has it C would have the typing too.
        a.ephemeral.whisper("dev", "psst, two hops", hops=2)
        await wait_until(lambda: _whispers(c) == ["psst, two hops"], what="whisper at C")
        assert _whispers(b) == ["psst, two hops"]
        assert ("dev", a.feed_id) not in c.ephemeral.typing
        # The control: a whisper with hops 3 gets to D and E over the same links; the first
        # one never did.
        a.ephemeral._last_whisper = 0.0  # the one-a-second limit is not under test here
        a.ephemeral.whisper("dev", "three hops", hops=3)
        for far in (d, e):
            await wait_until(lambda far=far: _whispers(far) == ["three hops"], what="3 hops")  # type: ignore[misc]
        assert _whispers(c) == ["psst, two hops", "three hops"]
        assert not any(w.own for w in c.ephemeral.whispers)
    finally:
        for node in nodes:
            await node.stop()


async def test_hear_and_tell_turn_a_link_away_both_ways_with_a_reason(tmp_path: Path) -> None:
    closed = await open_node(tmp_path / "closed", hear=Audience.MUTUALS, tell=Audience.MUTUALS)
    stranger = await open_node(tmp_path / "stranger")
    try:
        assert closed.address is not None and stranger.address is not None
        # They dial us: the link is closed with the reason in a bye, and they rest 30 min.
        await stranger.connect(closed.address)

        def refused() -> str:
            rows = [p for p in stranger.peers() if p.key == closed.feed_id]
            return rows[0].reason if rows else ""

        await wait_until(lambda: refused().startswith("refused (not heard or told"), what="why")
        assert "this node hears mutuals and tells mutuals" in refused()
        row = stranger.connections.book.row(closed.feed_id)
        assert row.next_attempt - row.state_changed >= 29 * 60
        # We dial them: our own settings refuse before a byte is sent.
        try:
            await closed.connect(stranger.address)
        except DialError as exc:
            assert "not heard or told" in str(exc)
        else:
            raise AssertionError("a dial our hear/tell refuses went through")
        assert closed.manager.session(stranger.feed_id) is None
    finally:
        for node in (closed, stranger):
            await node.stop()


async def test_a_flooding_peer_is_cut_off_and_named_in_the_peers_view(tmp_path: Path) -> None:
    victim = await open_node(tmp_path / "victim")
    flooder = await open_node(tmp_path / "flooder")
    try:
        await flooder.set_name("floody")
        await victim.follow(flooder.feed_id)  # so the victim knows the name
        assert victim.address is not None
        await flooder.connect(victim.address)
        await wait_until(lambda: victim.names.get(flooder.feed_id) == "floody", what="name")
        conn = flooder.manager.session(victim.feed_id)
        assert conn is not None
        expires = time.time() + 60
        for n in range(150):  # far over 20 a second (burst 100), all at once
            datum = Datum(n.to_bytes(ID_SIZE, "big"), "whisper", 0, expires, b"\x80")
            conn.send_frame(Ephemeral(datum))

        def reason() -> str:
            return next((p.reason for p in victim.peers() if p.key == flooder.feed_id), "")

        await wait_until(lambda: "floody sent more than 20 ephemeral data" in reason())
        assert victim.manager.session(flooder.feed_id) is not None  # feeds go on
    finally:
        for node in (victim, flooder):
            await node.stop()


async def test_proxy_pass_over_real_links_is_confirmed_and_delivers(tmp_path: Path) -> None:
    """A - B - C with `pass = true`: each whisper at hops 1 reaches B, by the ordinary
    path or handed to B as a proxy (which acks it and emits it as its own, so C may get
    it too); every hand-over is confirmed, none waits for the 30 s retry."""
    a, b, c = [
        await open_node(tmp_path / name, _options(), proxy_pass=True)  # type: ignore[arg-type]
        for name in "abc"
    ]
    try:
        assert a.address is not None and b.address is not None
        await b.connect(a.address)
        await c.connect(b.address)
        await wait_until(lambda: len(b.ephemeral.links) == 2, what="B linked to both")
        texts = [f"whisper {n}" for n in range(8)]
        for text in texts:
            a.ephemeral._last_whisper = 0.0  # the one-a-second limit is not under test here
            a.ephemeral.whisper("dev", text, hops=1)
        await wait_until(lambda: _whispers(b) == texts, what="every whisper at B")
        await wait_until(lambda: not a.ephemeral.core.proxying, what="every hand-over acked")
        assert "proxy silent" not in a.ephemeral.core.dropped
        assert set(_whispers(c)) <= set(texts)  # only what B proxied went one hop further
    finally:
        for node in (a, b, c):
            await node.stop()
