"""Pubs and invites end to end: real nodes on 127.0.0.1 sockets, real SQLite files."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

import pytest
from nacl.signing import SigningKey

from chat.config import HostPort, Quotas
from chat.joining import NoReplication
from chat.node import Node
from chat.pub import JoinError, JoinStep, Pub, async_create_invite, async_join, pub_config
from net.address import Address, Invite, parse_address, parse_invite
from net.frames import InviteClaim
from net.invite import Rejection, invite_key, invite_signing_key, make_claim, new_invite_secret
from net.peer import PeerConnection
from net.server import async_dial
from store.db import Store
from store.invites import InviteBook
from tests.nodes import make_config, open_node, wait_until
from tests.processes import free_port


async def open_pub(path: Path) -> tuple[Node, Pub]:
    node = await open_node(path)
    return node, await Pub.async_attach(node)


async def texts(node: Node) -> list[str]:
    return [entry.text for entry in await node.timeline("general")]


# ----------------------------------------------------------------------------- the pub


async def test_pub_announces_its_address_once(tmp_path: Path) -> None:
    node, pub = await open_pub(tmp_path / "pub")
    try:
        assert pub.address.key == node.feed_id
        assert node.address == str(pub.address)
        pubs = [p for p in await node.store.pubs() if p.author == node.feed_id]
        assert [(p.host, p.port, p.key) for p in pubs] == [
            (pub.address.host, pub.address.port, node.feed_id)
        ]
        await pub.async_detach()
        again = await Pub.async_attach(node)  # the same address again: no second message
        assert len([p for p in await node.store.pubs() if p.author == node.feed_id]) == 1
        await again.async_detach()
    finally:
        await node.stop()


def test_a_pub_takes_many_members_unless_its_quotas_are_configured(tmp_path: Path) -> None:
    assert pub_config(make_config(tmp_path)).quotas.other >= 100
    assert pub_config(make_config(tmp_path)).quotas.friend >= 100
    mine = Quotas(other=7)
    assert pub_config(make_config(tmp_path, quotas=mine)).quotas == mine


async def test_pub_refuses_a_wildcard_address(tmp_path: Path) -> None:
    # Announced, not bound: a test never listens beyond loopback (tests/conftest.py).
    node = await open_node(tmp_path / "pub", public_address=HostPort("0.0.0.0", 7999))
    try:
        with pytest.raises(ValueError, match="--public-address"):
            await Pub.async_attach(node)
        pub = await Pub.async_attach(node, HostPort("127.0.0.1", 7999))
        assert (pub.address.host, pub.address.port) == ("127.0.0.1", 7999)
        await pub.async_detach()
    finally:
        await node.stop()


async def test_invite_from_another_process_uses_the_announced_address(tmp_path: Path) -> None:
    node, pub = await open_pub(tmp_path / "pub")
    try:
        # What `treechat invite` does: its own connections to the running pub's database.
        invite = await async_create_invite(make_config(tmp_path / "pub"), 3)
        assert invite.address == pub.address
        record = await pub.book.get(invite_key(invite.secret))
        assert record is not None and (record.uses, record.uses_left) == (3, 3)
        assert parse_invite(str(invite)) == invite
    finally:
        await pub.async_detach()
        await node.stop()


async def test_invite_needs_an_announced_or_configured_address(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="treechat pub --public-address"):
        await async_create_invite(make_config(tmp_path / "fresh"), 1)
    config = make_config(tmp_path / "fresh", public_address=HostPort("pub.example", 8008))
    invite = await async_create_invite(config, 1)
    assert (invite.address.host, invite.address.port) == ("pub.example", 8008)


async def test_the_secret_is_not_stored(tmp_path: Path) -> None:
    node, pub = await open_pub(tmp_path / "pub")
    try:
        invite = await pub.async_create_invite(1)
    finally:
        await pub.async_detach()
        await node.stop()
    data = b"".join(p.read_bytes() for p in (tmp_path / "pub").glob("treechat.db*"))
    assert invite.secret not in data
    assert invite_key(invite.secret) in data


# ------------------------------------------------------------------- joining, relaying


async def _join_two_members(tmp_path: Path) -> tuple[Node, Pub, Node, Node]:
    pub_node, pub = await open_pub(tmp_path / "pub")
    a = await open_node(tmp_path / "a")
    b = await open_node(tmp_path / "b")
    for member in (a, b):
        result = await async_join(member, str(await pub.async_create_invite(1)))
        assert result.pub == pub_node.feed_id
        row = await member.store.peer(pub_node.feed_id)
        assert row is not None and row.source == "pub" and row.permanent
        assert row.address == str(pub.address)
        assert pub_node.feed_id in await member.store.follows(member.feed_id)
    assert await pub.book.members() == [a.feed_id, b.feed_id]
    assert {a.feed_id, b.feed_id} <= await pub_node.store.follows(pub_node.feed_id)
    return pub_node, pub, a, b


def _never_linked(a: Node, b: Node) -> None:
    for node, other in ((a, b), (b, a)):
        assert node.manager is not None
        assert other.feed_id not in node.manager.sessions()
        assert other.feed_id not in node.manager.peer_stats


async def test_members_meet_only_through_the_pub(tmp_path: Path) -> None:
    pub_node, pub, a, b = await _join_two_members(tmp_path)
    try:
        await a.post("hello from a", "general")
        await wait_until(lambda: _has(b, "hello from a"), what="a's post at b via the pub")
        await b.post("hello from b", "general")
        await wait_until(lambda: _has(a, "hello from b"), what="b's post at a via the pub")
        _never_linked(a, b)
        record = await b.store.delivery((await b.timeline("general"))[0].msg_id)
        assert record is not None and record.peer == pub_node.feed_id
    finally:
        for node in (a, b, pub_node):
            await node.stop()
        await pub.async_detach()


async def test_an_offline_member_catches_up_from_the_remembered_pub(tmp_path: Path) -> None:
    pub_node, pub, a, b = await _join_two_members(tmp_path)
    try:
        await b.stop()  # B goes offline; A posts; B comes back from the same data dir
        await a.post("while b was away", "general")
        await wait_until(lambda: _has(pub_node, "while b was away"), what="the pub has it")
        b = await open_node(tmp_path / "b")  # nothing dialled by hand: the pub is remembered
        await wait_until(
            lambda: _has(b, "while b was away"), limit=15, what="b catches up after restart"
        )
        _never_linked(a, b)
    finally:
        for node in (a, b, pub_node):
            await node.stop()
        await pub.async_detach()


async def _has(node: Node, text: str) -> bool:
    return text in await texts(node)


async def test_an_invite_with_one_use_fails_the_second_time(tmp_path: Path) -> None:
    pub_node, pub = await open_pub(tmp_path / "pub")
    a = await open_node(tmp_path / "a")
    b = await open_node(tmp_path / "b")
    try:
        invite = str(await pub.async_create_invite(1))
        await async_join(a, invite)
        with pytest.raises(JoinError) as caught:
            await async_join(b, invite)
        assert caught.value.step is JoinStep.INVITE
        assert "used up" in str(caught.value)
        assert str(caught.value).startswith("join failed at invite rejected:")
        assert await b.store.peer(pub_node.feed_id) is None  # nothing remembered
        assert pub_node.feed_id not in await b.store.follows(b.feed_id)
        # The member who redeemed it may retry (its answer may have been lost).
        await async_join(a, invite)
        assert await pub.book.members() == [a.feed_id]
    finally:
        for node in (a, b, pub_node):
            await node.stop()
        await pub.async_detach()


async def test_node_join_is_the_same_join(tmp_path: Path) -> None:
    pub_node, pub = await open_pub(tmp_path / "pub")
    a = await open_node(tmp_path / "a")
    try:
        await a.join(str(await pub.async_create_invite(2)))
        assert pub_node.feed_id in await a.store.follows(a.feed_id)
        with pytest.raises(ValueError, match="without an invite secret"):
            await a.join(str(pub.address))
        await a.block(pub_node.feed_id)
        with pytest.raises(ValueError, match="you block the pub"):
            await a.join(str(await pub.async_create_invite(1)))
    finally:
        await a.stop()
        await pub.async_detach()
        await pub_node.stop()


# ---------------------------------------------------------------------- every failure


async def test_join_fails_at_resolve(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The network rule keeps tests off real DNS (the resolver here is not on loopback),
    # so the loop's resolver answers as a resolver does for a name that does not exist.
    loop = asyncio.get_running_loop()
    real = loop.getaddrinfo

    async def getaddrinfo(host: object, *args: object, **kwargs: object) -> object:
        if host == "nonexistent.invalid":
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return await real(host, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(loop, "getaddrinfo", getaddrinfo)
    a = await open_node(tmp_path / "a")
    try:
        invite = Invite(Address("nonexistent.invalid", 7708, bytes(32)), new_invite_secret())
        with pytest.raises(JoinError) as caught:
            await async_join(a, str(invite))
        assert caught.value.step is JoinStep.RESOLVE
        assert "nonexistent.invalid" in caught.value.reason
    finally:
        await a.stop()


async def test_join_fails_at_connect_when_refused(tmp_path: Path) -> None:
    a = await open_node(tmp_path / "a")
    try:
        invite = Invite(Address("127.0.0.1", free_port(), bytes(32)), new_invite_secret())
        with pytest.raises(JoinError) as caught:
            await async_join(a, str(invite))
        assert caught.value.step is JoinStep.CONNECT
        assert "refused" in caught.value.reason.lower()
    finally:
        await a.stop()


async def test_join_fails_at_handshake_with_the_wrong_key(tmp_path: Path) -> None:
    pub_node, pub = await open_pub(tmp_path / "pub")
    a = await open_node(tmp_path / "a")
    try:
        real = await pub.async_create_invite(1)
        other_key = invite_key(new_invite_secret())  # any key but the pub's
        wrong = Invite(Address(real.address.host, real.address.port, other_key), real.secret)
        with pytest.raises(JoinError) as caught:
            await async_join(a, str(wrong))
        assert caught.value.step is JoinStep.HANDSHAKE
        assert "does not hold the key in the invite" in caught.value.reason
        record = await pub.book.get(invite_key(real.secret))
        assert record is not None and record.uses_left == 1  # nothing was spent
    finally:
        await a.stop()
        await pub.async_detach()
        await pub_node.stop()


async def test_join_fails_at_handshake_on_another_network(tmp_path: Path) -> None:
    pub_node, pub = await open_pub(tmp_path / "pub")
    a = await open_node(tmp_path / "a", network_key=bytes(range(32)))
    try:
        with pytest.raises(JoinError) as caught:
            await async_join(a, str(await pub.async_create_invite(1)))
        assert caught.value.step is JoinStep.HANDSHAKE
        assert "network key" in caught.value.reason
    finally:
        await a.stop()
        await pub.async_detach()
        await pub_node.stop()


async def test_join_fails_with_an_unknown_invite(tmp_path: Path) -> None:
    pub_node, pub = await open_pub(tmp_path / "pub")
    a = await open_node(tmp_path / "a")
    try:
        unknown = Invite(pub.address, new_invite_secret())  # right pub, never issued
        with pytest.raises(JoinError) as caught:
            await async_join(a, str(unknown))
        assert caught.value.step is JoinStep.INVITE
        assert caught.value.reason.startswith("unknown invite")
        assert a.feed_id not in await pub_node.store.follows(pub_node.feed_id)
    finally:
        await a.stop()
        await pub.async_detach()
        await pub_node.stop()


async def test_an_ordinary_node_says_it_takes_no_invites(tmp_path: Path) -> None:
    plain = await open_node(tmp_path / "plain")
    a = await open_node(tmp_path / "a")
    try:
        assert plain.address is not None
        invite = Invite(parse_address(plain.address), new_invite_secret())
        with pytest.raises(JoinError) as caught:
            await async_join(a, str(invite))
        assert caught.value.step is JoinStep.INVITE
        assert "not a pub" in caught.value.reason
    finally:
        await a.stop()
        await plain.stop()


async def test_join_fails_at_first_replication_when_the_pub_goes_away(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pub_node, pub = await open_pub(tmp_path / "pub")
    a = await open_node(tmp_path / "a")
    try:
        invite = str(await pub.async_create_invite(1))
        original = pub._async_redeem

        async def redeem_then_stop_listening(conn: PeerConnection, frame: Any) -> None:
            await original(conn, frame)
            assert pub_node.connections.server is not None
            pub_node.connections.server.close()  # the link with the member's own key is refused

        monkeypatch.setattr(pub, "_async_redeem", redeem_then_stop_listening)
        with pytest.raises(JoinError) as caught:
            await async_join(a, invite)
        assert caught.value.step is JoinStep.FIRST_REPLICATION
        assert "accepted the invite" in caught.value.reason
        row = await a.store.peer(pub_node.feed_id)
        assert row is not None and row.permanent  # remembered, to be retried later
    finally:
        await a.stop()
        await pub.async_detach()
        await pub_node.stop()


async def test_invite_book_is_shared_with_the_database(tmp_path: Path) -> None:
    path = tmp_path / "treechat.db"
    async with await Store.open(path) as store:
        version = await store.schema_version()
    async with await InviteBook.open(path) as book:
        await book.add(bytes(32), 2)
    async with await Store.open(path) as store:
        assert await store.schema_version() == version  # the main schema is untouched


# ------------------------------------------------------------------ hostile members


async def _dial_as_invite(node: Node, invite: Invite) -> PeerConnection:
    return await async_dial(
        invite.address.host,
        invite.address.port,
        invite.address.key,
        invite_signing_key(invite.secret),
        node.config.network_key,
    )


async def test_a_claim_for_somebody_elses_feed_is_rejected(tmp_path: Path) -> None:
    pub_node, pub = await open_pub(tmp_path / "pub")
    mallory = await open_node(tmp_path / "mallory")
    victim = SigningKey(b"v" * 32)
    try:
        invite = await pub.async_create_invite(1)
        conn = await _dial_as_invite(mallory, invite)
        throwaway = invite_key(invite.secret)
        honest = make_claim(mallory.identity.signing_key, pub.address.key, throwaway)
        conn.send_frame(InviteClaim(bytes(victim.verify_key), honest.sig))  # not victim's sig
        await conn.async_run(NoReplication())
        assert conn.bye_reason == Rejection.BAD_CLAIM.bye
        record = await pub.book.get(invite_key(invite.secret))
        assert record is not None and record.uses_left == 1
        assert bytes(victim.verify_key) not in await pub_node.store.follows(pub_node.feed_id)
    finally:
        await mallory.stop()
        await pub.async_detach()
        await pub_node.stop()


async def test_a_silent_invite_link_is_closed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("chat.pub.INVITE_SESSION_TIMEOUT", 0.5)
    pub_node, pub = await open_pub(tmp_path / "pub")
    lurker = await open_node(tmp_path / "lurker")
    try:
        invite = await pub.async_create_invite(1)
        conn = await _dial_as_invite(lurker, invite)
        await asyncio.wait_for(conn.async_run(NoReplication()), 5)
        assert conn.bye_reason == "invite links are short; you said nothing"
        # The invite link never reached replication on the pub.
        assert pub_node.manager is not None
        assert invite_key(invite.secret) not in pub_node.manager.peer_stats
        assert not pub_node.manager.sessions()
    finally:
        await lurker.stop()
        await pub.async_detach()
        await pub_node.stop()
