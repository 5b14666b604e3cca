"""Pubs: the pub side (invite book, redeeming, following members, the `pub` message) and joining.

A pub is an ordinary `Node` with a `Pub` attached: it announces its public address in a
``pub`` message, takes the incoming links of invite keys away from replication to redeem
them, and follows every member who redeemed an invite. With the default hops of 2 the
members (who follow the pub) then replicate each other through it. The redemption
protocol itself is described in net/invite.py and docs/protocol.md "Invites"; operating
a pub in docs/pub.md.

The member's side (joining) is chat/joining.py. The pub side sees the node only as a
`PubHost`, so it never imports chat/node.py.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from chat.config import DEFAULT_HISTORY, Config, HostPort, Quotas
from chat.content import pub_announcement
from chat.errors import UserError
from chat.identity import load_or_create_identity
from chat.joining import JoinResult, NoReplication, async_join
from net.address import Address, Invite, parse_address
from net.budget import AddressBudgets, host_of
from net.frames import InviteClaim, InviteOk
from net.invite import (
    JoinError,
    JoinStep,
    Rejection,
    claim_is_valid,
    invite_key,
    new_invite_secret,
)
from net.peer import PeerConnection
from store.db import Store
from store.invites import InviteBook, Redeemed
from store.limits import INVITE_BURST, INVITE_INTERVAL, MAX_INVITE_ADDRESSES
from store.message import Message, feed_ref

log = logging.getLogger(__name__)

INVITE_SESSION_TIMEOUT = 30.0  # the pub closes an invite link that says nothing this long
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


class PubError(ValueError, UserError):
    """The pub cannot run or issue invites as configured; the message says what to change."""


def pub_config(config: Config) -> Config:
    """`config` for running as a pub: `PUB_QUOTAS` unless quotas were configured, and
    all history of every feed unless `history` was configured (a pub is the archive)."""
    if config.quotas == Quotas():
        config = dataclasses.replace(config, quotas=PUB_QUOTAS)
    if config.history == DEFAULT_HISTORY:
        config = dataclasses.replace(config, history=None)
    return config


def _is_wildcard(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_unspecified
    except ValueError:
        return False


class PubHost(Protocol):
    """What the pub side needs from a started node."""

    @property
    def feed_id(self) -> bytes: ...
    @property
    def address(self) -> str | None: ...
    @property
    def config(self) -> Config: ...
    @property
    def store(self) -> Store: ...

    incoming_hook: Callable[[PeerConnection], Awaitable[bool]] | None

    def forget_on_close(self, key: bytes) -> None: ...

    async def append_own(self, content: dict[str, Any]) -> Message: ...
    async def follow(self, feed: bytes) -> None: ...


# --------------------------------------------------------------------------- pub side


class Pub:
    """Pub behaviour on a started node. Build with `await Pub.async_attach(node)`."""

    def __init__(self, node: PubHost, book: InviteBook, address: Address) -> None:
        self.node = node
        self.book = book
        self.address = address
        self.redeemed = 0  # invites redeemed since start (status, tests)
        # Invite attempts per IP address: a burst, then one per INVITE_INTERVAL.
        self.attempts = AddressBudgets(1.0 / INVITE_INTERVAL, INVITE_BURST, MAX_INVITE_ADDRESSES)

    @classmethod
    async def async_attach(cls, node: PubHost, public: HostPort | None = None) -> Pub:
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
        content = pub_announcement(self.address.host, self.address.port, node.feed_id)
        await node.append_own(content)

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
            await conn.async_run(NoReplication())
        finally:
            timer.cancel()
        await conn.async_wait_closed()
        return True

    def _may_try(self, conn: PeerConnection) -> bool:
        """Take one invite attempt from the budget of the link's IP address: a burst of
        INVITE_BURST, then one per INVITE_INTERVAL (guessing is slowed to a crawl)."""
        return self.attempts.take(host_of(conn.address), time.monotonic())

    async def _async_unknown_invite(
        self, conn: PeerConnection, frame: InviteClaim | InviteOk
    ) -> None:
        if isinstance(frame, InviteClaim):
            # A failed guess leaves nothing behind: no counters, no record, no book row.
            self.node.forget_on_close(conn.remote)
            if not self._may_try(conn):
                conn.close(Rejection.TOO_MANY.bye)
                return
            log.info("refused an unknown invite for %s", feed_ref(frame.feed))
            conn.close(Rejection.UNKNOWN.bye)

    async def _async_redeem(self, conn: PeerConnection, frame: InviteClaim | InviteOk) -> None:
        if not isinstance(frame, InviteClaim):
            return
        if not self._may_try(conn):
            conn.close(Rejection.TOO_MANY.bye)
            return
        try:
            await self._async_take(conn, frame)
        except Exception as exc:  # the member must hear why, not a bare goodbye
            log.exception("redeeming an invite for %s failed", feed_ref(frame.feed))
            conn.close(f"invite failed: the pub could not record it ({exc}); try again later")

    async def _async_take(self, conn: PeerConnection, frame: InviteClaim) -> None:
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
