"""Invite pieces without a network: keys, the signed claim, the member's state machine,
the invite frames, and the invite book on a real SQLite file."""

from __future__ import annotations

import asyncio
from pathlib import Path

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st
from nacl.signing import SigningKey

from net.errors import RemoteProtocolError
from net.frames import Bye, FrameDecoder, InviteClaim, InviteOk, Ping, encode_frame
from net.invite import (
    REJECTED_PREFIX,
    JoinError,
    JoinStep,
    RedeemState,
    Redemption,
    Rejection,
    claim_is_valid,
    invite_key,
    invite_signing_key,
    make_claim,
    new_invite_secret,
)
from store.invites import InviteBook, Redeemed

PUB = bytes(SigningKey(b"p" * 32).verify_key)
MEMBER = SigningKey(b"m" * 32)
SECRET = b"s" * 32


def test_the_invite_key_is_derived_from_the_secret_only() -> None:
    assert invite_key(SECRET) == invite_key(SECRET)
    assert invite_key(SECRET) != invite_key(b"t" * 32)
    # Not the secret used directly as a seed: the context string separates the uses.
    assert invite_key(SECRET) != bytes(SigningKey(SECRET).verify_key)
    assert bytes(invite_signing_key(SECRET).verify_key) == invite_key(SECRET)
    with pytest.raises(ValueError, match="32 bytes"):
        invite_key(b"short")
    assert len(new_invite_secret()) == 32 and new_invite_secret() != new_invite_secret()


def test_a_claim_verifies_only_for_its_pub_invite_and_feed() -> None:
    invite = invite_key(SECRET)
    claim = make_claim(MEMBER, PUB, invite)
    assert claim.feed == bytes(MEMBER.verify_key)
    assert claim_is_valid(claim, PUB, invite)
    assert not claim_is_valid(claim, invite, invite)  # another pub
    assert not claim_is_valid(claim, PUB, PUB)  # another invite
    other = bytes(SigningKey(b"o" * 32).verify_key)
    assert not claim_is_valid(InviteClaim(other, claim.sig), PUB, invite)  # another feed
    flipped = bytes([claim.sig[0] ^ 1]) + claim.sig[1:]
    assert not claim_is_valid(InviteClaim(claim.feed, flipped), PUB, invite)
    assert not claim_is_valid(InviteClaim(bytes(32), claim.sig), PUB, invite)  # not a key


def test_redemption_accepts_only_an_invite_ok_for_us() -> None:
    redemption = Redemption(MEMBER, PUB, invite_key(SECRET))
    assert redemption.receive(Ping(1)) is RedeemState.WAITING
    assert redemption.receive(InviteOk(bytes(MEMBER.verify_key))) is RedeemState.ACCEPTED
    assert redemption.receive(Bye("invite rejected: the invite is used up")) is (
        RedeemState.ACCEPTED
    )  # the answer is final
    assert redemption.closed() is RedeemState.ACCEPTED and redemption.reason is None

    other = Redemption(MEMBER, PUB, invite_key(SECRET))
    assert other.receive(InviteOk(PUB)) is RedeemState.REJECTED
    assert other.reason == "the pub accepted the invite for another feed"


def test_redemption_reports_the_pubs_words_or_the_silence() -> None:
    rejected = Redemption(MEMBER, PUB, invite_key(SECRET))
    rejected.receive(Bye(Rejection.USED_UP.bye))
    assert rejected.state is RedeemState.REJECTED
    assert rejected.reason == "the invite is used up"  # without the prefix
    assert Rejection.USED_UP.bye == REJECTED_PREFIX + "the invite is used up"

    silent = Redemption(MEMBER, PUB, invite_key(SECRET))
    assert silent.closed() is RedeemState.REJECTED
    assert silent.reason is not None and "without answering" in silent.reason
    broken = Redemption(MEMBER, PUB, invite_key(SECRET))
    broken.closed("the connection broke (ConnectionResetError)")
    assert broken.reason == "the connection broke (ConnectionResetError)"


def test_join_error_names_the_step() -> None:
    error = JoinError(JoinStep.HANDSHAKE, "wrong key")
    assert str(error) == "join failed at handshake: wrong key"
    assert [step.value for step in JoinStep] == [
        "resolve",
        "connect",
        "handshake",
        "invite rejected",
        "first replication",
    ]


def test_invite_frames_round_trip_and_refuse_bad_bodies() -> None:
    claim = make_claim(MEMBER, PUB, invite_key(SECRET))
    decoder = FrameDecoder()
    assert decoder.feed(encode_frame(claim) + encode_frame(InviteOk(PUB))) == [claim, InviteOk(PUB)]
    for body in ({"feed": PUB}, {"feed": b"x", "sig": bytes(64)}, [PUB], {"sig": bytes(64)}):
        packed = msgpack.packb(["invite", body], use_bin_type=True)
        with pytest.raises(RemoteProtocolError, match="invite"):
            FrameDecoder().feed(len(packed).to_bytes(4, "big") + packed)
    packed = msgpack.packb(["invite_ok", {"feed": b"short"}], use_bin_type=True)
    with pytest.raises(RemoteProtocolError, match="invite_ok"):
        FrameDecoder().feed(len(packed).to_bytes(4, "big") + packed)


# ----------------------------------------------------------------------- invite book


async def test_uses_are_counted_and_a_member_may_retry(tmp_path: Path) -> None:
    async with await InviteBook.open(tmp_path / "treechat.db") as book:
        key = invite_key(SECRET)
        await book.add(key, 2)
        ann, bob, cat = (bytes([n]) * 32 for n in (1, 2, 3))
        assert await book.redeem(key, ann) is Redeemed.ACCEPTED
        assert await book.redeem(key, ann) is Redeemed.AGAIN
        assert await book.redeem(key, bob) is Redeemed.ACCEPTED
        assert await book.redeem(key, cat) is Redeemed.USED_UP
        assert await book.redeem(bytes(32), ann) is Redeemed.UNKNOWN
        record = await book.get(key)
        assert record is not None and (record.uses, record.uses_left) == (2, 0)
        assert await book.members() == [ann, bob]
        with pytest.raises(ValueError):
            await book.add(invite_key(b"u" * 32), 0)


async def test_two_processes_racing_for_the_last_use_get_one(tmp_path: Path) -> None:
    path = tmp_path / "treechat.db"
    key = invite_key(SECRET)
    async with await InviteBook.open(path) as book:
        await book.add(key, 1)
    # Separate connections, as the pub and a second pub process would hold.
    books = [await InviteBook.open(path) for _ in range(6)]
    try:
        outcomes = await asyncio.gather(
            *(book.redeem(key, bytes([n + 1]) * 32) for n, book in enumerate(books))
        )
    finally:
        for book in books:
            await book.close()
    assert outcomes.count(Redeemed.ACCEPTED) == 1
    assert outcomes.count(Redeemed.USED_UP) == 5


async def test_invites_survive_a_reopen(tmp_path: Path) -> None:
    path = tmp_path / "treechat.db"
    async with await InviteBook.open(path) as book:
        await book.add(invite_key(SECRET), 3)
    async with await InviteBook.open(path) as book:
        assert [r.uses_left for r in await book.invites()] == [3]


_BODIES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.binary(max_size=80)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(["feed", "sig", "x"]), inner, max_size=3)
    ),
    max_leaves=8,
)


@given(kind=st.sampled_from(["invite", "invite_ok"]), body=_BODIES)
def test_hostile_invite_frames_only_raise_protocol_errors(kind: str, body: object) -> None:
    packed = msgpack.packb([kind, body], use_bin_type=True)
    try:
        frames = FrameDecoder().feed(len(packed).to_bytes(4, "big") + packed)
    except RemoteProtocolError:
        return
    assert len(frames) == 1 and isinstance(frames[0], InviteClaim | InviteOk)
    assert len(frames[0].feed) == 32
