"""Typed errors of the wire protocol: who broke it (local or remote) and, for the handshake, how."""

from __future__ import annotations

import enum


class ProtocolError(Exception):
    """Base of every wire-protocol error; the message is meant to be shown to a user."""


class RemoteProtocolError(ProtocolError):
    """The peer broke the protocol (bad frame, bad MAC, oversize...): close that one link."""


class LocalProtocolError(ProtocolError):
    """We tried to do something the protocol does not allow (a bug on our side)."""


class HandshakeFailure(enum.Enum):
    """Why a secret handshake failed, in words a user can act on."""

    WRONG_NETWORK = "the peer uses a different network key"
    WRONG_SERVER_KEY = "the server is not who we dialled (wrong server key)"
    REJECTED = (
        "the server hung up after our proof of identity: either it is not the key we"
        " dialled, or it refused us"
    )
    REFUSED = "we refused the client"
    CLIENT_NOT_AUTHENTIC = "the client's proof of identity did not verify"
    TRUNCATED = "the connection closed in the middle of the handshake"
    GARBAGE = "the peer sent bytes that are not a handshake"
    TIMED_OUT = "the handshake timed out"
    RESET = (
        "the peer reset the connection (busy, or turning connections from this address"
        " away for now: try again later)"
    )


class HandshakeError(ProtocolError):
    """The secret handshake failed at `step` (1 to 4, the message being read) for `reason`."""

    def __init__(self, step: int, reason: HandshakeFailure, detail: str = "") -> None:
        self.step = step
        self.reason = reason
        self.detail = detail
        text = f"handshake failed at step {step}: {reason.value}"
        if detail:
            text += f" ({detail})"
        super().__init__(text)
