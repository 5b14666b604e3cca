"""Pub invites, sans-IO: the invite key, the member's signed claim, join steps and errors.

How an invite is redeemed (the SSB design, with one addition; docs/protocol.md "Invites"):

1. The invite is ``net:HOST:PORT~shs:PUBKEY:SECRET``. The SECRET (32 random bytes)
   seeds a throwaway ed25519 *invite key* (``invite_signing_key``); the pub stores only
   its public half.
2. The member dials the pub **as the invite key**: the secret handshake proves to the
   member that it reached PUBKEY, and proves to the pub that the caller holds the secret.
3. The member sends ``["invite", {"feed": member_id, "sig": claim signature}]``. The claim
   (``claim_bytes``) names the pub, the invite key and the member and is signed with the
   member's *real* key, so an invite cannot be spent to enrol somebody else's feed.
4. The pub answers ``["invite_ok", {"feed": member_id}]`` (it has taken a use and follows
   the member) or ``["bye", "invite rejected: <why>"]`` and closes.
5. The member follows the pub, remembers it as a permanent peer and dials again with
   its real key; the first replication from the pub ends the join.

Every failure is a `JoinError` whose `step` says where it stopped.
"""

from __future__ import annotations

import enum
import hashlib
import os

from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

from net.frames import Bye, Frame, InviteClaim, InviteOk
from store.errors import UserError

CLAIM_CONTEXT = b"treechat/invite/v1"
SECRET_SIZE = 32
REJECTED_PREFIX = "invite rejected: "


class JoinStep(enum.Enum):
    """Where a join stopped, in the order they happen."""

    RESOLVE = "resolve"
    CONNECT = "connect"
    HANDSHAKE = "handshake"
    INVITE = "invite rejected"
    FIRST_REPLICATION = "first replication"


class JoinError(UserError):
    """Joining a pub failed at `step`; `reason` says why in the user's words."""

    step: JoinStep
    reason: str

    def __init__(self, step: JoinStep, reason: str) -> None:
        self.step = step
        self.reason = reason
        super().__init__(f"join failed at {step.value}: {reason}")


class Rejection(enum.Enum):
    """Why a pub turns an invite down (sent as ``bye "invite rejected: <value>"``)."""

    UNKNOWN = "unknown invite (this pub never issued it, or it was issued by another pub)"
    USED_UP = "the invite is used up"
    BAD_CLAIM = "the claim is not signed by the feed it names"
    NOT_A_PUB = "this node is not a pub and takes no invites"
    TOO_MANY = "too many invite attempts from your address; wait a few seconds and try again"

    @property
    def bye(self) -> str:
        return REJECTED_PREFIX + self.value


def new_invite_secret() -> bytes:
    """32 fresh random bytes: the SECRET of a new invite."""
    return os.urandom(SECRET_SIZE)


def invite_signing_key(secret: bytes) -> SigningKey:
    """The throwaway handshake key an invite secret stands for."""
    if len(secret) != SECRET_SIZE:
        raise ValueError(f"an invite secret is {SECRET_SIZE} bytes, not {len(secret)}")
    return SigningKey(hashlib.sha256(CLAIM_CONTEXT + secret).digest())


def invite_key(secret: bytes) -> bytes:
    """The public invite key: what the pub stores and recognises."""
    return bytes(invite_signing_key(secret).verify_key)


def claim_bytes(pub: bytes, invite: bytes, member: bytes) -> bytes:
    """What the member signs: this invite, at this pub, is redeemed for this feed."""
    return CLAIM_CONTEXT + pub + invite + member


def make_claim(member: SigningKey, pub: bytes, invite: bytes) -> InviteClaim:
    """The ``invite`` frame the member sends once the handshake with the invite key is done."""
    feed = bytes(member.verify_key)
    return InviteClaim(feed, member.sign(claim_bytes(pub, invite, feed)).signature)


def claim_is_valid(frame: InviteClaim, pub: bytes, invite: bytes) -> bool:
    """True if ``frame.sig`` is the named feed's signature of the claim."""
    try:
        VerifyKey(frame.feed).verify(claim_bytes(pub, invite, frame.feed), frame.sig)
    except (BadSignatureError, ValueError, TypeError):
        return False
    return True


class RedeemState(enum.Enum):
    """The member's side of one redemption connection."""

    WAITING = "waiting"  # claim sent, no answer yet
    ACCEPTED = "accepted"
    REJECTED = "rejected"


class Redemption:
    """The member's side after the handshake: send the claim, then read the pub's answer.

    Feed it every frame (`receive`) and the end of the connection (`closed`). Frames of
    other kinds (the pub's pings) are ignored. When `state` leaves WAITING, `reason` says
    why it was rejected (None when accepted).
    """

    def __init__(self, member: SigningKey, pub: bytes, invite: bytes) -> None:
        self.member = bytes(member.verify_key)
        self.claim = make_claim(member, pub, invite)
        self.state = RedeemState.WAITING
        self.reason: str | None = None

    def receive(self, frame: Frame) -> RedeemState:
        if self.state is not RedeemState.WAITING:
            return self.state
        if isinstance(frame, InviteOk):
            if frame.feed == self.member:
                self.state = RedeemState.ACCEPTED
            else:
                self._reject("the pub accepted the invite for another feed")
        elif isinstance(frame, Bye):
            self._reject(frame.reason)
        return self.state

    def closed(self, error: str | None = None) -> RedeemState:
        """The connection ended; without an answer that is a rejection."""
        if self.state is RedeemState.WAITING:
            self._reject(error or "the pub closed the connection without answering the invite")
        return self.state

    def _reject(self, reason: str) -> None:
        self.state = RedeemState.REJECTED
        self.reason = reason.removeprefix(REJECTED_PREFIX)
