"""Pubs: the pub side (invite book, redeeming, following members, the `pub` message) and joining.

A pub is an ordinary `Node` with a `Pub` attached: it announces its public address in a
``pub`` message, takes the incoming links of invite keys away from replication to redeem
them, and follows every member who redeemed an invite. With the default hops of 2 the
members (who follow the pub) then replicate each other through it. The redemption
protocol itself is described in net/invite.py and docs/protocol.md "Invites"; operating
a pub in docs/pub.md.

`async_join` is the member's side (`Node.join`, ``treechat join``, the TUI's /join).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ipaddress
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from chat.config import Address as HostPort
from chat.config import Config, Quotas
from chat.content import pub as pub_content
from chat.identity import load_or_create_identity
from net.address import Address, Invite, parse_address, parse_invite
from net.frames import Bye, InviteOk
from net.frames import Invite as InviteFrame
from net.invite import (
    JoinError,
    JoinStep,
    RedeemState,
    Redemption,
    Rejection,
    claim_is_valid,
    invite_key,
    invite_signing_key,
    new_invite_secret,
)
from net.peer import PeerConnection
from net.server import DialError, async_dial
from store.db import PeerRow, Store
from store.invites import InviteBook, Redeemed
from store.message import feed_ref

if TYPE_CHECKING:
    from chat.node import Node

log = logging.getLogger(__name__)

ANSWER_TIMEOUT = 10.0  # the pub must answer a claim within this
REPLICATION_TIMEOUT = 20.0  # the pub's feed must reach us within this after the invite
INVITE_SESSION_TIMEOUT = 30.0  # the pub closes an invite link that says nothing this long
POLL_INTERVAL = 0.05
PUB_QUOTAS = Quotas(friend=200, other=200)
"""A pub's quotas unless its config sets others: members dial in (and the schedule trims
a class above twice its quota), so the ordinary defaults of 3 and 2 would cut them off."""

__all__ = [
    "JoinError",
    "JoinResult",
    "JoinStep",
    "Pub",
    "PubError",
    "async_create_invite",
    "async_join",
    "pub_config",
]


class PubError(ValueError):
    """The pub cannot run or issue invites as configured; the message says what to change."""


def pub_config(config: Config) -> Config:
    """`config` for running as a pub: `PUB_QUOTAS` unless quotas were configured."""
    if config.quotas != Quotas():
        return config
    return dataclasses.replace(config, quotas=PUB_QUOTAS)


def _is_wildcard(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_unspecified
    except ValueError:
        return False


class _NoReplication:
    """Frame handler for invite links: they never replicate, so notes and messages drop."""

    def receive_notes(self, session: PeerConnection, notes: dict[bytes, int]) -> None:
        return None

    async def async_receive_messages(
        self, session: PeerConnection, raws: tuple[bytes, ...]
    ) -> None:
        return None


# --------------------------------------------------------------------------- pub side


class Pub:
    """Pub behaviour on a started node. Build with `await Pub.async_attach(node)`."""

    def __init__(self, node: Node, book: InviteBook, address: Address) -> None:
        self.node = node
        self.book = book
        self.address = address
        self.redeemed = 0  # invites redeemed since start (status, tests)

    @classmethod
    async def async_attach(cls, node: Node, public: HostPort | None = None) -> Pub:
        """Announce the pub at `public` (default: where the node listens), take invites."""
        if node.address is None:
            raise RuntimeError("start the node before attaching the pub")
        listening = parse_address(node.address)
        public = public or node.config.public_address
        host, port = (public.host, public.port) if public else (listening.host, listening.port)
        if _is_wildcard(host):
            raise PubError(
                f"members cannot dial {host}; give the address they should use with"
                " --public-address HOST:PORT"
            )
        book = await InviteBook.open(node.config.database_path)
        pub = cls(node, book, Address(host, port, node.feed_id))
        try:
            await pub._async_announce()
        except BaseException:
            await book.close()
            raise
        node.incoming_hook = pub._async_incoming
        log.info("pub at %s takes invites", pub.address)
        return pub

    async def async_detach(self) -> None:
        """Stop taking invites (the node goes on) and close the invite book."""
        if self.node.incoming_hook == self._async_incoming:
            self.node.incoming_hook = None
        await self.book.close()

    async def _async_announce(self) -> None:
        """Publish `pub {host, port, key}` unless our latest one already says the same."""
        node = self.node
        own = [p for p in await node.store.pubs() if p.author == node.feed_id]
        latest = max(own, key=lambda p: p.seq, default=None)
        if latest is not None and (latest.host, latest.port, latest.key) == (
            self.address.host,
            self.address.port,
            node.feed_id,
        ):
            return
        content = pub_content(self.address.host, self.address.port, node.feed_id)
        message = await node.store.append_own(node.identity.signing_key, content)
        if node.manager is not None:
            node.manager.local_messages([message])

    async def async_create_invite(self, uses: int = 1) -> Invite:
        """A new invite for this pub (the same as ``treechat invite`` on its data dir)."""
        secret = new_invite_secret()
        await self.book.add(invite_key(secret), uses)
        return Invite(self.address, secret)

    async def _async_incoming(self, conn: PeerConnection) -> bool:
        """Run the link of an invite key here; let every other link replicate."""
        record = await self.book.get(conn.remote)
        if record is None:
            # Maybe an invite we never issued: answer its claim instead of ignoring it.
            conn.on_invite = self._async_unknown_invite
            return False
        conn.on_invite = self._async_redeem
        timer = asyncio.get_running_loop().call_later(
            INVITE_SESSION_TIMEOUT, conn.close, "invite links are short; you said nothing"
        )
        try:
            await conn.async_run(_NoReplication())
        finally:
            timer.cancel()
        await conn.async_wait_closed()
        return True

    async def _async_unknown_invite(
        self, conn: PeerConnection, frame: InviteFrame | InviteOk
    ) -> None:
        if isinstance(frame, InviteFrame):
            log.info("refused an unknown invite for %s", feed_ref(frame.feed))
            conn.close(Rejection.UNKNOWN.bye)

    async def _async_redeem(self, conn: PeerConnection, frame: InviteFrame | InviteOk) -> None:
        if not isinstance(frame, InviteFrame):
            return
        node = self.node
        member = frame.feed
        if not claim_is_valid(frame, node.feed_id, conn.remote):
            conn.close(Rejection.BAD_CLAIM.bye)
            return
        if member == node.feed_id:
            conn.close("invite rejected: that is the pub's own feed")
            return
        if member in await node.store.blocks(node.feed_id):
            conn.close("invite rejected: this pub blocks that feed")
            return
        outcome = await self.book.redeem(conn.remote, member)
        if outcome is Redeemed.USED_UP:
            conn.close(Rejection.USED_UP.bye)
            return
        if outcome is Redeemed.UNKNOWN:  # removed since the handshake
            conn.close(Rejection.UNKNOWN.bye)
            return
        if member not in await node.store.follows(node.feed_id):
            await node.follow(member)
        self.redeemed += outcome is Redeemed.ACCEPTED
        log.info("%s joined with an invite (%s)", feed_ref(member), outcome.value)
        conn.send_frame(InviteOk(member))
        conn.close("goodbye")


async def async_create_invite(config: Config, uses: int) -> Invite:
    """``treechat invite``: store a new invite in the pub's database and return it.

    The address is the one the pub announced in its latest ``pub`` message, else
    ``public_address`` from the config. A data dir with neither has never been a pub
    (most likely the wrong ``--data-dir``): that is an error, not a guess.
    """
    identity = load_or_create_identity(config.data_dir)
    async with await Store.open(config.database_path) as store:
        own = [p for p in await store.pubs() if p.author == identity.feed_id]
    latest = max(own, key=lambda p: p.seq, default=None)
    if latest is not None:
        host, port = latest.host, latest.port
    elif config.public_address is not None:
        host, port = config.public_address.host, config.public_address.port
    else:
        raise PubError(
            f"this data dir ({config.data_dir}) has not announced a pub address yet;"
            " run `treechat pub --public-address HOST:PORT` on it first"
        )
    secret = new_invite_secret()
    async with await InviteBook.open(config.database_path) as book:
        await book.add(invite_key(secret), uses)
    return Invite(Address(host, port, identity.feed_id), secret)


# --------------------------------------------------------------------------- member side


@dataclass(frozen=True, slots=True)
class JoinResult:
    """A join that worked: the pub we follow and remember, how long each part took."""

    pub: bytes
    address: str
    redeem_s: float
    first_replication_s: float


def _dial_reason(exc: DialError) -> str:
    if exc.step == "handshake":
        return (
            f"{exc.detail}; the node at {exc.address} does not hold the key in the invite"
            " or uses another network key"
        )
    return exc.detail


async def async_redeem(
    node: Node, invite: Invite, *, answer_timeout: float = ANSWER_TIMEOUT
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
        raise JoinError(JoinStep(exc.step), _dial_reason(exc)) from exc
    redemption = Redemption(node.identity.signing_key, address.key, bytes(throwaway.verify_key))
    answered = asyncio.Event()

    async def on_invite(_: PeerConnection, frame: InviteFrame | InviteOk) -> None:
        if redemption.receive(frame) is not RedeemState.WAITING:
            answered.set()

    conn.on_invite = on_invite
    conn.send_frame(redemption.claim)
    reader = asyncio.create_task(conn.async_run(_NoReplication()), name="invite-link")
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
    node: Node,
    text: str,
    *,
    answer_timeout: float = ANSWER_TIMEOUT,
    replication_timeout: float = REPLICATION_TIMEOUT,
) -> JoinResult:
    """Redeem the invite `text`, follow and remember the pub, wait for its first messages.

    Raises `AddressError` (a ValueError) for a malformed invite, ValueError for an invite
    to ourselves, and `JoinError(step, reason)` for everything that fails on the way.
    """
    invite = parse_invite(text)
    pub_key = invite.address.key
    if pub_key == node.feed_id:
        raise ValueError("this invite is for this node itself")
    if node.manager is None:
        raise RuntimeError("the node is not open")
    if pub_key in await node.store.blocks(node.feed_id):
        raise ValueError(f"you block the pub {feed_ref(pub_key)}; unblock it to join")
    started = time.monotonic()
    await async_redeem(node, invite, answer_timeout=answer_timeout)
    redeemed = time.monotonic()
    address = str(invite.address)
    await node.store.save_peer(PeerRow(pub_key, address=address, source="pub", permanent=True))
    if pub_key not in await node.store.follows(node.feed_id):
        await node.follow(pub_key)
    try:
        await node.connect(address, source="pub")
    except (DialError, ValueError) as exc:
        raise JoinError(
            JoinStep.FIRST_REPLICATION,
            f"the pub accepted the invite, but connecting again with your own key failed: {exc}",
        ) from exc
    deadline = time.monotonic() + replication_timeout
    while node.manager.replicator.local_clock.get(pub_key, 0) < 1:
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
