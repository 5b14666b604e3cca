"""The feed message format: encoding, signing, decoding and validation (pure, no I/O).

A message is the msgpack encoding of ``[1, author, seq, prev, timestamp_ms, content]``
(bin type for bytes, maps only with str keys) followed by a 64-byte ed25519 signature
over ``MSG_PREFIX + encoded``. These exact bytes (``raw``) are what is stored and sent;
nothing is ever re-encoded, so no canonical form is needed. The id of a message is the
BLAKE2b-256 hash of ``raw``.

One verdict per message: every message's own signature is verified, whatever path it
came by. ``validate_next`` checks one message against the head of its feed (shape,
size, sequence, hash link to the previous message, signature); ``validate_run`` checks
a contiguous run of one feed the same way, message by message, and raises at the first
failure. A later, validly signed message linking to an unsigned one does not vouch for
it: a node that received the unsigned one alone would reject it, and two honest nodes
must never reach different verdicts on one message (docs/store.md).

Every failure is an ``InvalidMessage`` naming the feed, the sequence number (when they
could be read) and the reason in plain words.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import msgpack
from nacl.bindings import crypto_sign_open
from nacl.exceptions import CryptoError
from nacl.signing import SigningKey

from store.errors import UserError

MSG_PREFIX = b"treechat/msg/v1"
MAX_MESSAGE_SIZE = 8192
FORMAT_VERSION = 1
SIGNATURE_SIZE = 64
KEY_SIZE = 32
ID_SIZE = 32
MAX_TYPE_LENGTH = 32
# Sequence numbers and timestamps must fit a signed 64-bit SQLite integer.
MAX_SEQ = 2**62
MAX_TIMESTAMP = 2**62

Content = dict[str, Any] | bytes


def feed_ref(feed: bytes) -> str:
    """Text form of a feed id: ``@<standard base64>.ed25519`` (as SSB writes it)."""
    return "@" + base64.b64encode(feed).decode("ascii") + ".ed25519"


def parse_feed_ref(text: str) -> bytes:
    """Inverse of ``feed_ref``; also accepts bare base64. Raises ``ValueError``."""
    body = text.strip()
    if body.startswith("@"):
        body = body[1:]
    if body.endswith(".ed25519"):
        body = body[: -len(".ed25519")]
    try:
        key = base64.b64decode(body, validate=True)
    except ValueError as exc:
        raise ValueError(f"{text!r} is not a feed id (expected @<base64>.ed25519)") from exc
    if len(key) != KEY_SIZE:
        raise ValueError(f"{text!r} is not a feed id (the key must be {KEY_SIZE} bytes)")
    return key


_blake2b = hashlib.blake2b


def message_id(raw: bytes) -> bytes:
    """BLAKE2b-256 of the full signed bytes."""
    return _blake2b(raw, digest_size=ID_SIZE).digest()


class InvalidMessage(ValueError, UserError):
    """A message that fails validation; ``feed`` and ``seq`` are None when unreadable."""

    def __init__(self, feed: bytes | None, seq: int | None, reason: str) -> None:
        self.feed = feed
        self.seq = seq
        self.reason: str = reason
        super().__init__(self._describe())

    def _describe(self) -> str:
        if self.feed is None:
            return f"message is invalid: {self.reason}"
        if self.seq is None:
            return f"a message of feed {feed_ref(self.feed)} is invalid: {self.reason}"
        return f"message {self.seq} of feed {feed_ref(self.feed)} is invalid: {self.reason}"

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.feed, self.seq, self.reason))


class ForkDetected(InvalidMessage):
    """The author signed two different messages for one sequence number.

    ``existing_id`` is the id of the message we kept at ``seq`` (the first one seen);
    ``message`` is the conflicting, validly signed one.
    """

    def __init__(
        self, feed: bytes, seq: int, existing_id: bytes, message: Message, reason: str = ""
    ) -> None:
        self.existing_id = existing_id
        self.message = message
        super().__init__(
            feed,
            seq,
            reason or "fork: the author signed two different messages with this sequence number",
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.feed, self.seq, self.existing_id, self.message, self.reason))


@dataclass(frozen=True, slots=True)
class Message:
    """One decoded feed message; ``raw`` is the authoritative stored and sent form."""

    raw: bytes
    author: bytes
    seq: int
    prev: bytes | None
    timestamp: int
    content: Content
    id: bytes

    @property
    def signed(self) -> bytes:
        """The signed part: the msgpack body without the signature."""
        return self.raw[:-SIGNATURE_SIZE]

    @property
    def signature(self) -> bytes:
        return self.raw[-SIGNATURE_SIZE:]


@dataclass(frozen=True, slots=True)
class FeedHead:
    """The latest message of a feed as far as we hold it."""

    seq: int
    id: bytes


_SCALARS = frozenset({str, int, float, bool, bytes, type(None)})


def _check_content(feed: bytes | None, seq: int | None, content: Any) -> None:
    if type(content) is bytes:
        return
    if type(content) is not dict:
        raise InvalidMessage(feed, seq, "content must be a map or bytes")
    kind = content.get("type")
    if type(kind) is not str or not 1 <= len(kind) <= MAX_TYPE_LENGTH:
        raise InvalidMessage(
            feed, seq, f"content type must be a string of 1 to {MAX_TYPE_LENGTH} characters"
        )
    # msgpack hands out exact builtin types, so ``type(x) in`` suffices (and is fast).
    for key, value in content.items():
        if type(key) is not str:
            raise InvalidMessage(feed, seq, "content has a map key that is not a string")
        if type(value) not in _SCALARS:
            _check_nested(feed, seq, value)


def _check_nested(feed: bytes | None, seq: int | None, value: Any) -> None:
    # Walk iteratively: 8 KiB of nested arrays would exhaust Python's recursion limit.
    stack: list[Any] = [value]
    while stack:
        value = stack.pop()
        kind = type(value)
        if kind is dict:
            for key, item in value.items():
                if type(key) is not str:
                    raise InvalidMessage(feed, seq, "content has a map key that is not a string")
                stack.append(item)
        elif kind is list:
            stack.extend(value)
        elif kind not in _SCALARS:
            raise InvalidMessage(feed, seq, "content holds an unsupported msgpack extension type")


# Building a frozen dataclass through its __init__ costs one object.__setattr__ per
# field; receiving tens of thousands of messages a second makes that visible, so
# decode_message fills the slots directly through their descriptors.
_new = object.__new__
_slots: dict[str, Any] = dict(vars(Message))
_set_raw = _slots["raw"].__set__
_set_author = _slots["author"].__set__
_set_seq = _slots["seq"].__set__
_set_prev = _slots["prev"].__set__
_set_timestamp = _slots["timestamp"].__set__
_set_content = _slots["content"].__set__
_set_id = _slots["id"].__set__


def _build_message(
    raw: bytes,
    author: bytes,
    seq: int,
    prev: bytes | None,
    timestamp: int,
    content: Content,
    msg_id: bytes,
) -> Message:
    message: Message = _new(Message)
    _set_raw(message, raw)
    _set_author(message, author)
    _set_seq(message, seq)
    _set_prev(message, prev)
    _set_timestamp(message, timestamp)
    _set_content(message, content)
    _set_id(message, msg_id)
    return message


def _encode_body(
    author: bytes, seq: int, prev: bytes | None, timestamp_ms: int, content: Content
) -> bytes:
    return msgpack.packb(  # type: ignore[no-any-return]
        [FORMAT_VERSION, author, seq, prev, timestamp_ms, content], use_bin_type=True
    )


def create_message(
    signing_key: SigningKey,
    seq: int,
    prev: bytes | None,
    timestamp_ms: int,
    content: Content,
) -> Message:
    """Encode and sign a new message; raises ``InvalidMessage`` if it would be invalid."""
    author = bytes(signing_key.verify_key)
    if isinstance(content, dict):
        content = dict(content)
    try:
        signed = _encode_body(author, seq, prev, timestamp_ms, content)
    except (TypeError, ValueError, OverflowError) as exc:
        raise InvalidMessage(author, seq, f"content cannot be encoded: {exc}") from exc
    signature = signing_key.sign(MSG_PREFIX + signed).signature
    raw = signed + signature
    # Run the same checks a receiver will, so we never publish something peers reject.
    try:
        message = decode_message(raw)
    except InvalidMessage as exc:
        raise InvalidMessage(author, seq, exc.reason) from exc
    if (seq == 1) != (prev is None):
        raise InvalidMessage(author, seq, "prev must be None exactly for seq 1")
    return message


def decode_message(raw: bytes) -> Message:
    """Parse and check the shape, field types and size of a message (not its signature)."""
    if not isinstance(raw, bytes):
        raise InvalidMessage(None, None, "a message must be bytes")
    if len(raw) > MAX_MESSAGE_SIZE:
        raise InvalidMessage(
            None, None, f"too large ({len(raw)} bytes, the limit is {MAX_MESSAGE_SIZE})"
        )
    if len(raw) <= SIGNATURE_SIZE:
        raise InvalidMessage(None, None, f"too short ({len(raw)} bytes)")
    try:
        body = msgpack.unpackb(raw[:-SIGNATURE_SIZE], raw=False, strict_map_key=True, use_list=True)
    except Exception as exc:  # msgpack raises many types for malformed input
        raise InvalidMessage(None, None, "not a valid msgpack encoding") from exc
    if type(body) is not list or len(body) != 6:
        raise InvalidMessage(None, None, "not a message (expected an array of 6 fields)")
    version, author, seq, prev, timestamp, content = body
    if type(version) is not int or version != FORMAT_VERSION:
        raise InvalidMessage(None, None, f"unknown format version {version!r}")
    if type(author) is not bytes or len(author) != KEY_SIZE:
        raise InvalidMessage(None, None, f"author must be {KEY_SIZE} bytes")
    if type(seq) is not int or not 1 <= seq <= MAX_SEQ:
        raise InvalidMessage(author, None, "seq must be a positive integer")
    if seq == 1:
        if prev is not None:
            raise InvalidMessage(author, seq, "the first message must have no prev")
    elif type(prev) is not bytes or len(prev) != ID_SIZE:
        raise InvalidMessage(author, seq, f"prev must be a {ID_SIZE}-byte message id")
    if type(timestamp) is not int or not -MAX_TIMESTAMP <= timestamp <= MAX_TIMESTAMP:
        raise InvalidMessage(author, seq, "timestamp must be an integer (milliseconds)")
    _check_content(author, seq, content)
    return _build_message(
        raw, author, seq, prev, timestamp, content, _blake2b(raw, digest_size=ID_SIZE).digest()
    )


def signature_ok(message: Message) -> bool:
    """Whether the author signed this message (one ed25519 verification)."""
    raw = message.raw
    try:
        crypto_sign_open(raw[-SIGNATURE_SIZE:] + MSG_PREFIX + raw[:-SIGNATURE_SIZE], message.author)
    except (CryptoError, ValueError, TypeError):
        return False
    return True


def raw_signature_ok(raw: bytes) -> bool | None:
    """``signature_ok(decode_message(raw))`` read from the raw bytes, without decoding:
    a message with the standard head (``peek_feed_seq``) carries its author at bytes
    4..36. None when the head is not the standard one (decode it first)."""
    if raw[:4] != _MSG_HEAD or len(raw) <= 36 + SIGNATURE_SIZE:
        return None
    try:
        crypto_sign_open(raw[-SIGNATURE_SIZE:] + MSG_PREFIX + raw[:-SIGNATURE_SIZE], raw[4:36])
    except (CryptoError, ValueError, TypeError):
        return False
    return True


def verify_signature(message: Message) -> None:
    """Raise ``InvalidMessage`` unless the author signed this message."""
    if not signature_ok(message):
        raise InvalidMessage(message.author, message.seq, "bad signature")


Verify = Callable[[Message], None]
"""Checks one message's signature, raising ``InvalidMessage`` (``verify_signature``, or
a verdict computed ahead on several cores: ``store.verify.Verdicts.check``)."""


def _check_link(head: FeedHead | None, message: Message) -> None:
    expected = 1 if head is None else head.seq + 1
    if message.seq != expected:
        raise InvalidMessage(message.author, message.seq, f"out of order (expected seq {expected})")
    if head is not None and message.prev != head.id:
        raise InvalidMessage(
            message.author,
            message.seq,
            f"prev does not match the id of message {head.seq}",
        )


def check_next(head: FeedHead | None, message: Message, verify: Verify = verify_signature) -> None:
    """``validate_next`` for an already decoded message: link and signature.

    A message that comes right after ``head`` but names another ``prev``, and is
    validly signed, proves that the author signed two chains: ``ForkDetected`` with
    ``existing_id`` the id of our message ``seq - 1`` (the one it should follow).
    """
    try:
        _check_link(head, message)
    except InvalidMessage:
        if head is None or message.seq != head.seq + 1:
            raise
        verify(message)  # not signed by the author: merely invalid
        raise ForkDetected(
            message.author,
            message.seq,
            head.id,
            message,
            f"fork: the author signed this message {message.seq} on top of another "
            f"message {head.seq} than ours (two chains)",
        ) from None
    verify(message)


def check_run(head: FeedHead | None, messages: Sequence[Message]) -> None:
    """``validate_run`` for already decoded messages: every link and every signature."""
    current = head
    author = messages[0].author if messages else None
    for message in messages:
        if message.author != author:
            assert author is not None
            raise InvalidMessage(
                message.author,
                message.seq,
                f"does not belong to the run of feed {feed_ref(author)}",
            )
        _check_link(current, message)
        verify_signature(message)
        current = FeedHead(message.seq, message.id)


def validate_next(head: FeedHead | None, raw: bytes) -> Message:
    """Validate one message as the next of a feed whose latest message is ``head``."""
    message = decode_message(raw)
    check_next(head, message)
    return message


def validate_run(head: FeedHead | None, raws: Sequence[bytes]) -> list[Message]:
    """Validate a contiguous run of one feed: every hash link and every signature."""
    messages = [decode_message(raw) for raw in raws]
    check_run(head, messages)
    return messages


_MSG_HEAD = b"\x96\x01\xc4\x20"  # array of 6, version 1, bin8 of 32 bytes (the author)


def peek_feed_seq(raw: bytes) -> tuple[bytes, int] | None:
    """Author and seq of a raw message without decoding it all (None if it is not one).

    A message starts ``0x96 0x01 0xc4 0x20 <32-byte author> <seq>``; reading those
    bytes directly costs far less than unpacking the message, and the Store still
    validates everything before anything is kept.
    """
    if raw[:4] != _MSG_HEAD or len(raw) < 37:
        return None
    tag = raw[36]
    if tag < 0x80:
        seq = tag
    elif tag == 0xCC:
        seq = raw[37]
    elif tag == 0xCD:
        seq = int.from_bytes(raw[37:39], "big")
    elif tag == 0xCE:
        seq = int.from_bytes(raw[37:41], "big")
    elif tag == 0xCF:
        seq = int.from_bytes(raw[37:45], "big")
    else:
        return None
    if seq < 1 or len(raw) < 46:
        return None
    return raw[4:36], seq
