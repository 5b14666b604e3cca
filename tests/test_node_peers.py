"""The peers pane tells the truth: state and reason come from the gossip schedule's table."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import socket
from dataclasses import replace
from pathlib import Path

import pytest

from chat import status as status_file
from chat.cli import main as cli_main
from chat.identity import Identity, short_key
from chat.node import Node
from store.db import SavedPeer, Store
from store.message import feed_ref
from tests.nodes import FAST, open_node, wait_until
from tests.test_ui import running, seed, wait_for
from ui.widgets.sidebar import PeerList

BACKING_OFF = re.compile(r"backing off until \d\d:\d\d:\d\d after 1 failure")


def refusing_address(name: str) -> tuple[bytes, str]:
    """The address of a key on a loopback port nobody listens on (connections are refused)."""
    key = Identity.from_seed(seed(name)).feed_id
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return key, f"net:127.0.0.1:{port}~shs:{base64.b64encode(key).decode()}"


def backing_off(node: Node, key: bytes) -> bool:
    return any(p.key == key and p.state == "backoff" for p in node.peers())


async def test_a_refusing_remembered_peer_shows_its_backoff_everywhere(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key, address = refusing_address("nobody home")
    async with running(tmp_path, start=True) as (app, pilot, node):
        node.remember_peer(address, source="manual")
        await wait_for(lambda: backing_off(node, key), pilot)
        view = next(p for p in node.peers() if p.key == key)
        assert BACKING_OFF.search(view.reason), view.reason
        assert view.source == "manual"
        assert view.direction is None

        pane = app.main.query_one("#peers", PeerList)
        await wait_for(lambda: any(p == view for p in pane.peers or []), pilot)
        rendered = " ".join(
            str(pane.get_option_at_index(i).prompt) for i in range(pane.option_count)
        )
        assert BACKING_OFF.search(" ".join(rendered.split())), rendered

        snapshot = node.status_snapshot()
    status_file.write_status(tmp_path, snapshot)  # what the running node's writer does
    capsys.readouterr()
    assert cli_main(["--data-dir", str(tmp_path), "status", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    (row,) = shown["peers"]
    assert (row["state"], row["source"], row["direction"]) == ("backoff", "manual", None)
    assert BACKING_OFF.search(row["reason"]), row
    assert cli_main(["--data-dir", str(tmp_path), "status"]) == 0
    assert BACKING_OFF.search(capsys.readouterr().out)


async def test_direction_source_and_reason_of_a_live_link(tmp_path: Path) -> None:
    a = await open_node(tmp_path / "a")
    b = await open_node(tmp_path / "b")
    try:
        assert a.address is not None
        await b.connect(a.address, follow=True)
        await wait_until(lambda: any(p.state == "connected" for p in a.peers()))
        (at_b,) = b.peers()
        assert (at_b.key, at_b.direction, at_b.source) == (a.feed_id, "out", "manual")
        assert at_b.reason == "connected"
        (at_a,) = a.peers()
        assert (at_a.key, at_a.direction, at_a.state) == (b.feed_id, "in", "connected")
        # a does not follow b: the link is up, and the reason says why nothing flows to a.
        assert at_a.reason.startswith("connected (incoming); their feed is not replicated")
    finally:
        await a.stop()
        await b.stop()


async def test_a_peer_remembered_by_another_process_is_dialled_without_restart(
    tmp_path: Path,
) -> None:
    a = await open_node(tmp_path / "a")
    pub = await open_node(tmp_path / "pub")
    try:
        assert pub.address is not None
        await asyncio.sleep(0.6)  # the watcher has seen the start-up state
        # What `treechat join` does from its own process: a row in a's database.
        async with await Store.open(tmp_path / "a" / "treechat.db") as other:
            await other.save_peer(
                SavedPeer(pub.feed_id, address=pub.address, source="pub", permanent=True)
            )
        await wait_until(
            lambda: any(p.key == pub.feed_id and p.state == "connected" for p in a.peers()),
            what="a dials the pub it did not know at start",
        )
        (view,) = a.peers()
        assert (view.source, view.direction) == ("pub", "out")
    finally:
        await a.stop()
        await pub.stop()


async def test_links_show_bytes_per_second_both_ways(tmp_path: Path) -> None:
    a = await open_node(tmp_path / "a", replace(FAST, status_interval=0.2))
    b = await open_node(tmp_path / "b", replace(FAST, status_interval=0.2))
    try:
        assert a.address is not None
        await b.follow(a.feed_id)
        await b.connect(a.address)
        seen: list[tuple[float, float]] = []

        async def flowing() -> bool:
            await a.post("x" * 2000, "general")
            links_a, links_b = a.links(), b.links()
            if links_a and links_b:
                seen.append((links_a[0].bytes_per_s_out, links_b[0].bytes_per_s_in))
            return any(out > 1000 and inbound > 1000 for out, inbound in seen)

        await wait_until(flowing, what="byte rates on both ends")
        assert a.status_snapshot()["peers"][0]["bytes_per_s_out"] >= 0
    finally:
        await a.stop()
        await b.stop()


async def test_dialling_a_person_follows_them_once_and_an_unfollowed_link_says_why(
    tmp_path: Path,
) -> None:
    a = await open_node(tmp_path / "a")
    b = await open_node(tmp_path / "b")
    c = await open_node(tmp_path / "c")
    try:
        await b.post("from b", "general")
        assert b.address is not None and c.address is not None
        await a.connect(b.address, follow=True)
        await wait_until(lambda: a.local_seq(b.feed_id) == 1, what="b's feed on a")
        await a.connect(b.address, follow=True)  # again: no second follow
        contacts = [e for e in await a.store.contacts() if e.author == a.feed_id]
        assert len(contacts) == 1 and contacts[0].contact == b.feed_id

        await a.connect(c.address)  # --no-follow: the link is up, c's feed is not wanted
        await wait_until(
            lambda: any(p.key == c.feed_id and p.state == "connected" for p in a.peers()),
            what="a linked to c",
        )
        view = next(p for p in a.peers() if p.key == c.feed_id)
        hint = f"their feed is not replicated: not followed (/follow {short_key(c.feed_id)})"
        assert view.reason.endswith(hint), view.reason
        row = next(p for p in a.status_snapshot()["peers"] if p["key"] == c.ref)
        assert row["reason"].endswith(hint)
    finally:
        for node in (a, b, c):
            await node.stop()


async def test_forget_and_block_in_another_process_reach_the_running_node(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key, address = refusing_address("a typo")
    node = await open_node(tmp_path / "me", FAST)
    try:
        async with await Store.open(node.config.database_path) as other:  # `treechat` elsewhere
            await other.save_peer(SavedPeer(key, address=address, source="manual", permanent=True))
        await wait_until(lambda: backing_off(node, key), what="the typo dialled and failing")
        assert (
            await asyncio.to_thread(
                cli_main, ["--data-dir", str(tmp_path / "me"), "forget", address]
            )
            == 0
        )
        await wait_until(
            lambda: all(p.key != key for p in node.peers()), what="the forgotten peer gone"
        )
        blocked, _ = refusing_address("a pest")
        assert (
            await asyncio.to_thread(
                cli_main, ["--data-dir", str(tmp_path / "me"), "block", feed_ref(blocked)]
            )
            == 0
        )
        await wait_until(
            lambda: node.connections.book.is_blocked(blocked), what="the block in the peer book"
        )
    finally:
        await node.stop()


async def test_forgetting_a_linked_peer_hangs_up_on_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`treechat forget` takes effect on the running node: the link goes, the row goes,
    and the command says so."""
    me = await open_node(tmp_path / "me", replace(FAST, write_status=True))
    them = await open_node(tmp_path / "them", FAST)
    try:
        assert them.address is not None
        await me.connect(them.address)  # remembered as a manual peer

        def linked_in_status() -> bool:
            snapshot = status_file.read_status(tmp_path / "me")
            return any(
                p["key"] == them.ref and p["state"] == "connected" for p in snapshot["peers"]
            )

        await wait_until(linked_in_status, 10, "the link in the status file")
        capsys.readouterr()
        code = await asyncio.to_thread(
            cli_main, ["--data-dir", str(tmp_path / "me"), "forget", them.address]
        )
        out = capsys.readouterr().out
        assert code == 0 and out.startswith(f"forgot {them.address}"), out
        assert "the running node hangs up on it now" in out
        await wait_until(lambda: me.manager.session(them.feed_id) is None, 10, "the link closed")
        await wait_until(lambda: all(p.key != them.feed_id for p in me.peers()), 10, "row gone")
        assert await me.store.peer(them.feed_id) is None
    finally:
        await them.stop()
        await me.stop()


async def test_a_peer_saved_while_the_book_reloads_is_not_taken_for_forgotten(
    tmp_path: Path,
) -> None:
    """A reload that read the peers before a /connect saved one must not hang it up."""
    me = await open_node(tmp_path / "me", FAST)
    them = await open_node(tmp_path / "them", FAST)
    stored_peers = me.store.peers
    try:
        read, go_on = asyncio.Event(), asyncio.Event()

        async def peers_read_early() -> list[SavedPeer]:
            rows = await stored_peers()
            read.set()
            await go_on.wait()
            return rows

        me.store.peers = peers_read_early  # type: ignore[method-assign]
        reload = asyncio.create_task(me.connections.async_reload_peers())
        await read.wait()
        assert them.address is not None
        await me.connect(them.address)  # remembered now, after the reload's read
        go_on.set()
        await reload
        assert me.connections.book.get(them.feed_id) is not None
        assert me.manager.session(them.feed_id) is not None
    finally:
        me.store.peers = stored_peers  # type: ignore[method-assign]
        await them.stop()
        await me.stop()
