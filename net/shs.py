"""The secret handshake (SSB's design), sans-IO: client and server state machines.

Rules (docs/protocol.md "Handshake", byte-compatible with the npm `secret-handshake` package):

K is the 32-byte network key; a/b the client's/server's ephemeral Curve25519 keys; A/B
their long-term ed25519 keys. hmac = HMAC-SHA-512 truncated to 32 bytes (libsodium
`crypto_auth`). box = secretbox with a 24-byte zero nonce (every key is used once).

    1. client -> server  64 B   hmac(K, a_pub) || a_pub
    2. server -> client  64 B   hmac(K, b_pub) || b_pub
       ab = a*b   aB = a*curve(B)
    3. client -> server 112 B   box[sha256(K||ab||aB)](sig_A || A_pub)
       sig_A = sign_A(K || B_pub || sha256(ab))          Ab = curve(A)*b
    4. server -> client  80 B   box[sha256(K||ab||aB||Ab)](sig_B)
       sig_B = sign_B(K || sig_A || A_pub || sha256(ab))

Afterwards, with secret = sha256(sha256(K||ab||aB||Ab)), each side encrypts with
key sha256(secret || remote long-term key) and nonce = the remote's step-1/2 hmac[:24],
and decrypts with key sha256(secret || own long-term key) and nonce = its own hmac[:24].

Why the steps fail, and what a user is told (`HandshakeFailure`): a wrong hmac in 1 or 2
means another network key (or, when the bytes look like text, not a treechat peer at
all); a box in 3 that does not open means the client dialled another server key; a
server that hangs up after 3 either is not the key we dialled or refused us (it cannot
tell us which without leaking who it is); a box in 4 that does not open or verify means
the server is not who we dialled. The client's identity is only revealed inside the
box of step 3, so the server can refuse (blocked keys) before proving its own.

Both machines take bytes with `receive_data()` and return the bytes to send; failure
raises `HandshakeError` and leaves the machine FAILED, after which the shell closes the
socket. Bytes received beyond the last handshake message are kept in `unused_data`
(the start of the box-stream).
"""

from __future__ import annotations

import enum
import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass

import nacl.bindings as sodium
import nacl.exceptions
from nacl.public import PrivateKey
from nacl.signing import SigningKey, VerifyKey

from net.boxstream import BoxStreamDecoder, BoxStreamEncoder
from net.errors import HandshakeError, HandshakeFailure, LocalProtocolError

NETWORK_KEY_DEFAULT = hashlib.sha256(b"treechat network v1").digest()

CHALLENGE_SIZE = 64
CLIENT_AUTH_SIZE = 112
SERVER_ACCEPT_SIZE = 80
_ZERO_NONCE = bytes(24)


def auth_tag(key: bytes, message: bytes) -> bytes:
    """HMAC-SHA-512-256, libsodium's `crypto_auth`."""
    return hmac.new(key, message, hashlib.sha512).digest()[:32]


def _sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _check_key(name: str, key: bytes) -> None:
    if not isinstance(key, bytes) or len(key) != 32:
        raise LocalProtocolError(f"{name} must be 32 bytes")


def _looks_like_text(data: bytes) -> bool:
    """Heuristic for "this peer speaks another protocol" (HTTP, an SSH banner, a shell).

    Handshake bytes are uniformly random, so a dozen printable bytes in a row, or a short
    printable line, practically never happen by chance. Only applied to the first message
    a side receives: after a valid hmac the peer evidently speaks the handshake.
    """
    if len(data) < 4 or not all(32 <= c < 127 or c in (9, 10, 13) for c in data):
        return False
    return len(data) >= 12 or data.endswith(b"\n")


def _preview(data: bytes) -> str:
    return repr(data[:24].decode("ascii", "replace"))


@dataclass(frozen=True, slots=True)
class HandshakeResult:
    """What a completed handshake establishes: who the peer is and the box-stream keys."""

    remote_key: bytes  # the peer's long-term ed25519 public key (its feed id)
    encrypt_key: bytes
    encrypt_nonce: bytes
    decrypt_key: bytes
    decrypt_nonce: bytes

    def encoder(self) -> BoxStreamEncoder:
        """The box-stream writer for what we send."""
        return BoxStreamEncoder(self.encrypt_key, self.encrypt_nonce)

    def decoder(self) -> BoxStreamDecoder:
        """The box-stream reader for what the peer sends."""
        return BoxStreamDecoder(self.decrypt_key, self.decrypt_nonce)


class HandshakeState(enum.Enum):
    """Where a handshake machine is; the AWAIT_* states name the message being waited for."""

    AWAIT_CHALLENGE = "await challenge"  # server: message 1; client: message 2
    AWAIT_AUTH = "await auth"  # server: message 3
    AWAIT_DECISION = "await decision"  # server: client known, accept() or refuse() pending
    AWAIT_ACCEPT = "await accept"  # client: message 4
    DONE = "done"
    FAILED = "failed"


class _Side:
    """What both ends share: buffering, the ephemeral key, the step-1/2 exchange."""

    def __init__(self, identity: SigningKey, network_key: bytes, ephemeral: PrivateKey | None):
        _check_key("network key", network_key)
        self._identity = identity
        self._network_key = network_key
        self._ephemeral = ephemeral if ephemeral is not None else PrivateKey.generate()
        self._eph_pub = bytes(self._ephemeral.public_key)
        self._own_mac = auth_tag(network_key, self._eph_pub)
        self._buffer = bytearray()
        self._remote_eph: bytes = b""
        self._remote_mac: bytes = b""
        self._shared_ab: bytes = b""  # a*b
        self._shared_aB: bytes = b""  # client ephemeral * server long-term
        self._secret_hash: bytes = b""  # sha256(ab)
        self.state = HandshakeState.AWAIT_CHALLENGE
        self.result: HandshakeResult | None = None
        self.unused_data = b""

    @property
    def done(self) -> bool:
        return self.state is HandshakeState.DONE

    def _challenge(self) -> bytes:
        return self._own_mac + self._eph_pub

    def _fail(self, step: int, reason: HandshakeFailure, detail: str = "") -> HandshakeError:
        self.state = HandshakeState.FAILED
        self._buffer.clear()
        return HandshakeError(step, reason, detail)

    def _take(self, size: int) -> bytes | None:
        if len(self._buffer) < size:
            return None
        chunk = bytes(self._buffer[:size])
        del self._buffer[:size]
        return chunk

    def _check_open(self) -> None:
        if self.state is HandshakeState.FAILED:
            raise LocalProtocolError("the handshake already failed")
        if self.state is HandshakeState.DONE:
            raise LocalProtocolError("the handshake is already complete")

    def _verify_challenge(self, step: int, challenge: bytes) -> None:
        mac, remote_eph = challenge[:32], challenge[32:]
        if not hmac.compare_digest(mac, auth_tag(self._network_key, remote_eph)):
            if _looks_like_text(challenge):
                raise self._fail(
                    step,
                    HandshakeFailure.GARBAGE,
                    f"it sent text {_preview(challenge)}: another protocol, not treechat",
                )
            raise self._fail(step, HandshakeFailure.WRONG_NETWORK)
        try:
            self._shared_ab = sodium.crypto_scalarmult(bytes(self._ephemeral), remote_eph)
        except nacl.exceptions.CryptoError:
            raise self._fail(step, HandshakeFailure.GARBAGE, "weak ephemeral key") from None
        self._remote_eph = remote_eph
        self._remote_mac = mac
        self._secret_hash = _sha256(self._shared_ab)

    def _finish(self, remote_key: bytes, shared_Ab: bytes) -> None:
        shared = self._shared_ab + self._shared_aB + shared_Ab
        secret = _sha256(_sha256(self._network_key + shared))
        own_key = bytes(self._identity.verify_key)
        self.result = HandshakeResult(
            remote_key=remote_key,
            encrypt_key=_sha256(secret + remote_key),
            encrypt_nonce=self._remote_mac[:24],
            decrypt_key=_sha256(secret + own_key),
            decrypt_nonce=self._own_mac[:24],
        )
        self.state = HandshakeState.DONE
        self.unused_data = bytes(self._buffer)
        self._buffer.clear()
        # Forget the ephemeral secret: past sessions stay private if a long-term key leaks.
        self._ephemeral = PrivateKey(bytes(32))
        self._shared_ab = self._shared_aB = b""

    def step(self) -> int:
        """The number (1-4) of the handshake message this side is waiting for."""
        raise NotImplementedError

    def reset(self) -> HandshakeError:
        """Mark the handshake failed because the peer reset the connection; raise the result."""
        return self._fail(self.step(), HandshakeFailure.RESET)

    def timed_out(self) -> HandshakeError:
        """Mark the handshake failed because the shell's timer ran out; raise the result."""
        return self._fail(self.step(), HandshakeFailure.TIMED_OUT)

    def _check_early_text(self) -> None:
        """A short line of text (an SSH banner, an HTTP request) is named at once: such a
        peer waits for our answer, so waiting for the rest of the challenge would only
        end in a timeout that tells the user nothing."""
        if self._buffer.endswith(b"\n") and _looks_like_text(bytes(self._buffer)):
            raise self._truncated()

    def _truncated(self) -> HandshakeError:
        step = self.step()
        first = self.state is HandshakeState.AWAIT_CHALLENGE
        if first and _looks_like_text(bytes(self._buffer)):
            return self._fail(
                step,
                HandshakeFailure.GARBAGE,
                f"it sent text {_preview(bytes(self._buffer))}: another protocol, not treechat",
            )
        return self._fail(step, HandshakeFailure.TRUNCATED)


class ClientHandshake(_Side):
    """The dialling side: knows the server's long-term key in advance."""

    def __init__(
        self,
        identity: SigningKey,
        server_key: bytes,
        network_key: bytes = NETWORK_KEY_DEFAULT,
        *,
        ephemeral: PrivateKey | None = None,
    ) -> None:
        super().__init__(identity, network_key, ephemeral)
        _check_key("server key", server_key)
        self._server_key = server_key
        self._hello = b""  # sig_A || A_pub
        self._started = False

    def step(self) -> int:
        return 2 if self.state is HandshakeState.AWAIT_CHALLENGE else 4

    def start(self) -> bytes:
        """Message 1, to send right after connecting."""
        if self._started:
            raise LocalProtocolError("the handshake was already started")
        self._started = True
        return self._challenge()

    def receive_data(self, data: bytes) -> bytes:
        """Feed bytes from the server; returns bytes to send (message 3, or nothing)."""
        self._check_open()
        if not self._started:
            raise LocalProtocolError("call start() and send message 1 first")
        self._buffer += data
        out = b""
        if self.state is HandshakeState.AWAIT_CHALLENGE:
            challenge = self._take(CHALLENGE_SIZE)
            if challenge is None:
                self._check_early_text()
                return out
            out = self._on_challenge(challenge)
        if self.state is HandshakeState.AWAIT_ACCEPT:
            accept = self._take(SERVER_ACCEPT_SIZE)
            if accept is not None:
                self._on_accept(accept)
        return out

    def receive_eof(self) -> None:
        """The server closed the connection; always an error before DONE."""
        if self.state in (HandshakeState.DONE, HandshakeState.FAILED):
            return
        if not self._buffer and self.state is HandshakeState.AWAIT_CHALLENGE:
            raise self._fail(
                2, HandshakeFailure.WRONG_NETWORK, "the server hung up without answering our hello"
            )
        if not self._buffer and self.state is HandshakeState.AWAIT_ACCEPT:
            raise self._fail(4, HandshakeFailure.REJECTED)
        raise self._truncated()

    def _on_challenge(self, challenge: bytes) -> bytes:
        self._verify_challenge(2, challenge)
        try:
            server_curve = sodium.crypto_sign_ed25519_pk_to_curve25519(self._server_key)
        except nacl.exceptions.CryptoError:
            raise self._fail(
                2, HandshakeFailure.WRONG_SERVER_KEY, "that is not a valid ed25519 public key"
            ) from None
        self._shared_aB = sodium.crypto_scalarmult(bytes(self._ephemeral), server_curve)
        signed = self._network_key + self._server_key + self._secret_hash
        sig_a = self._identity.sign(signed).signature
        self._hello = sig_a + bytes(self._identity.verify_key)
        box_key = _sha256(self._network_key + self._shared_ab + self._shared_aB)
        self.state = HandshakeState.AWAIT_ACCEPT
        return sodium.crypto_secretbox_easy(self._hello, _ZERO_NONCE, box_key)

    def _on_accept(self, boxed: bytes) -> None:
        own_curve = self._identity.to_curve25519_private_key()
        shared_Ab = sodium.crypto_scalarmult(bytes(own_curve), self._remote_eph)
        box_key = _sha256(self._network_key + self._shared_ab + self._shared_aB + shared_Ab)
        try:
            sig_b = sodium.crypto_secretbox_open_easy(boxed, _ZERO_NONCE, box_key)
            signed = self._network_key + self._hello + self._secret_hash
            VerifyKey(self._server_key).verify(signed, sig_b)
        except nacl.exceptions.CryptoError:
            raise self._fail(
                4, HandshakeFailure.WRONG_SERVER_KEY, "its proof of identity did not verify"
            ) from None
        self._finish(self._server_key, shared_Ab)


class ServerHandshake(_Side):
    """The accepting side: learns the client's key in message 3 and may refuse it.

    With `authorize` given, the decision is made at once; without it the machine stops in
    AWAIT_DECISION with `client_key` set, and the shell calls `accept()` or `refuse()`
    (for a decision that needs I/O, such as looking up an invite).
    """

    def __init__(
        self,
        identity: SigningKey,
        network_key: bytes = NETWORK_KEY_DEFAULT,
        *,
        authorize: Callable[[bytes], bool] | None = None,
        ephemeral: PrivateKey | None = None,
    ) -> None:
        super().__init__(identity, network_key, ephemeral)
        self._authorize = authorize
        self._hello = b""
        self._shared_Ab = b""
        self.client_key: bytes | None = None

    def step(self) -> int:
        return 1 if self.state is HandshakeState.AWAIT_CHALLENGE else 3

    def receive_data(self, data: bytes) -> bytes:
        """Feed bytes from the client; returns bytes to send (message 2 and/or 4)."""
        self._check_open()
        self._buffer += data
        out = b""
        if self.state is HandshakeState.AWAIT_CHALLENGE:
            challenge = self._take(CHALLENGE_SIZE)
            if challenge is None:
                self._check_early_text()
                return out
            self._verify_challenge(1, challenge)
            self.state = HandshakeState.AWAIT_AUTH
            out += self._challenge()
        if self.state is HandshakeState.AWAIT_AUTH:
            auth = self._take(CLIENT_AUTH_SIZE)
            if auth is not None:
                self._on_auth(auth)
                if self._authorize is not None:
                    if self._authorize(self.client_key or b""):
                        out += self.accept()
                    else:
                        raise self.refuse()
        return out

    def receive_eof(self) -> None:
        """The client closed the connection; an error unless the handshake got far enough."""
        if self.state in (HandshakeState.DONE, HandshakeState.FAILED):
            return
        raise self._truncated()

    def _on_auth(self, boxed: bytes) -> None:
        self._shared_aB = sodium.crypto_scalarmult(
            bytes(self._identity.to_curve25519_private_key()), self._remote_eph
        )
        box_key = _sha256(self._network_key + self._shared_ab + self._shared_aB)
        try:
            hello = sodium.crypto_secretbox_open_easy(boxed, _ZERO_NONCE, box_key)
        except nacl.exceptions.CryptoError:
            raise self._fail(
                3, HandshakeFailure.WRONG_SERVER_KEY, "the client dialled another key than ours"
            ) from None
        sig_a, client_key = hello[:64], hello[64:]
        signed = self._network_key + bytes(self._identity.verify_key) + self._secret_hash
        try:
            VerifyKey(client_key).verify(signed, sig_a)
            client_curve = sodium.crypto_sign_ed25519_pk_to_curve25519(client_key)
            self._shared_Ab = sodium.crypto_scalarmult(bytes(self._ephemeral), client_curve)
        except (nacl.exceptions.CryptoError, ValueError):
            raise self._fail(3, HandshakeFailure.CLIENT_NOT_AUTHENTIC) from None
        self._hello = hello
        self.client_key = client_key
        self.state = HandshakeState.AWAIT_DECISION

    def accept(self) -> bytes:
        """Let the client in: returns message 4 and completes the handshake."""
        if self.state is not HandshakeState.AWAIT_DECISION:
            raise LocalProtocolError(f"cannot accept in state {self.state.value}")
        assert self.client_key is not None
        signed = self._network_key + self._hello + self._secret_hash
        sig_b = self._identity.sign(signed).signature
        box_key = _sha256(self._network_key + self._shared_ab + self._shared_aB + self._shared_Ab)
        message = sodium.crypto_secretbox_easy(sig_b, _ZERO_NONCE, box_key)
        self._finish(self.client_key, self._shared_Ab)
        return message

    def refuse(self) -> HandshakeError:
        """Turn the client away (blocked, unknown invite): nothing is sent, the shell closes.

        Returns the resulting `HandshakeError` for the shell to log.
        """
        if self.state is not HandshakeState.AWAIT_DECISION:
            raise LocalProtocolError(f"cannot refuse in state {self.state.value}")
        return self._fail(3, HandshakeFailure.REFUSED, "the client's key is not allowed here")
