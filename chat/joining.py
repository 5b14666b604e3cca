"""Joining a pub, the member's side of invites (`Node.join`, ``treechat join``, /join).

The redemption protocol is described in net/invite.py and docs/protocol.md "Invites".
This module needs only a `Member` (what a node offers), so it never imports the node.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Protocol

from chat.config import Config
from chat.errors import NodeError, UserError
from chat.identity import Identity
from chat.options import NodeOptions
from net.address import Invite, parse_invite
from net.frames import Bye, InviteClaim, InviteOk, RangeDone, RangeMsgs, RangeRequest
from net.invite import JoinError, JoinStep, RedeemState, Redemption, invite_signing_key
from net.peer import PeerConnection
from net.server import DialError, DialStep, async_dial
from store.db import SavedPeer, Store
from store.message import feed_ref

log = logging.getLogger(__name__)

ANSWER_TIMEOUT = 10.0  # the pub must answer a claim within this
REPLICATION_TIMEOUT = 20.0  # the pub's feed must reach us within this after the invite
POLL_INTERVAL = 0.05


class Member(Protocol):
    """What joining needs from a node."""

    @property
    def feed_id(self) -> bytes: ...
    @property
    def config(self) -> Config: ...
    @property
    def options(self) -> NodeOptions: ...
    @property
    def identity(self) -> Identity: ...
    @property
    def store(self) -> Store: ...

    async def follow(self, feed: bytes) -> None: ...
    async def connect(self, address: str, *, source: str = "manual") -> None: ...
    def local_seq(self, feed: bytes) -> int: ...


class NoReplication:
    """Frame handler for invite links: they never replicate, so notes and messages drop."""

    def receive_notes(self, session: PeerConnection, notes: dict[bytes, int]) -> None:
        return None

    async def async_receive_messages(
        self, session: PeerConnection, raws: tuple[bytes, ...]
    ) -> None:
        return None

    async def async_receive_range(
        self, session: PeerConnection, frame: RangeRequest | RangeMsgs | RangeDone
    ) -> None:
        return None


@dataclass(frozen=True, slots=True)
class JoinResult:
    """A join that worked: the pub we follow and remember, how long each part took."""

    pub: bytes
    address: str
    redeem_s: float
    first_replication_s: float


def _dial_reason(exc: DialError) -> str:
    if exc.step is DialStep.HANDSHAKE:
        return (
            f"{exc.detail}; the node at {exc.address} does not hold the key in the invite"
            " or uses another network key"
        )
    return exc.detail


async def async_redeem(
    node: Member, invite: Invite, *, answer_timeout: float = ANSWER_TIMEOUT
) -> None:
    """Dial the pub as the invite key and claim the invite for our feed (steps 1-4)."""
    address = invite.address
    throwaway = invite_signing_key(invite.secret)
    try:
        conn = await async_dial(
            address.host,
            address.port,
            address.key,
            throwaway,
            node.config.network_key,
            handshake_timeout=node.options.handshake_timeout,
        )
    except DialError as exc:
        raise JoinError(JoinStep(exc.step.value), _dial_reason(exc)) from exc
    redemption = Redemption(node.identity.signing_key, address.key, bytes(throwaway.verify_key))
    answered = asyncio.Event()

    async def on_invite(_: PeerConnection, frame: InviteClaim | InviteOk) -> None:
        if redemption.receive(frame) is not RedeemState.WAITING:
            answered.set()

    conn.on_invite = on_invite
    conn.send_frame(redemption.claim)
    reader = asyncio.create_task(conn.async_run(NoReplication()), name="invite-link")
    waiter = asyncio.create_task(answered.wait())
    try:
        await asyncio.wait(
            {reader, waiter}, timeout=answer_timeout, return_when=asyncio.FIRST_COMPLETED
        )
        if reader.done() and not answered.is_set():
            error = reader.result()
            if conn.bye_reason is not None and conn.bye_reason != "goodbye":
                redemption.receive(Bye(conn.bye_reason))
            redemption.closed(error)
        elif not answered.is_set():
            redemption.closed(f"the pub did not answer within {answer_timeout:g} s")
    finally:
        waiter.cancel()
        conn.close("goodbye")
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await reader
        await conn.async_wait_closed()
    if redemption.state is not RedeemState.ACCEPTED:
        raise JoinError(JoinStep.INVITE, redemption.reason or "no reason given")


async def async_join(
    node: Member,
    text: str,
    *,
    answer_timeout: float = ANSWER_TIMEOUT,
    replication_timeout: float = REPLICATION_TIMEOUT,
    connect: bool = True,
) -> JoinResult:
    """Redeem the invite `text`, follow and remember the pub, wait for its first messages
    (unless not `connect`: another node running on the data dir links it).

    Raises `AddressError` (a ValueError) for a malformed invite, ValueError for an invite
    to ourselves, and `JoinError(step, reason)` for everything that fails on the way.
    """
    invite = parse_invite(text)
    pub_key = invite.address.key
    if pub_key == node.feed_id:
        raise NodeError("this invite is for this node itself")
    if pub_key in await node.store.blocks(node.feed_id):
        raise NodeError(f"you block the pub {feed_ref(pub_key)}; unblock it to join")
    started = time.monotonic()
    await async_redeem(node, invite, answer_timeout=answer_timeout)
    redeemed = time.monotonic()
    address = str(invite.address)
    await node.store.save_peer(SavedPeer(pub_key, address=address, source="pub", permanent=True))
    if pub_key not in await node.store.follows(node.feed_id):
        await node.follow(pub_key)
    if not connect:
        return JoinResult(pub_key, address, redeemed - started, 0.0)
    try:
        await node.connect(address, source="pub")
    except UserError as exc:
        raise JoinError(
            JoinStep.FIRST_REPLICATION,
            f"the pub accepted the invite, but connecting again with your own key failed: {exc}",
        ) from exc
    deadline = time.monotonic() + replication_timeout
    while node.local_seq(pub_key) < 1:
        if time.monotonic() > deadline:
            raise JoinError(
                JoinStep.FIRST_REPLICATION,
                f"the pub accepted the invite, but none of its messages arrived within"
                f" {replication_timeout:g} s; it stays remembered and will be retried",
            )
        await asyncio.sleep(POLL_INTERVAL)
    done = time.monotonic()
    log.info("joined the pub %s at %s", feed_ref(pub_key), address)
    return JoinResult(pub_key, address, redeemed - started, done - redeemed)
