"""Frames inside the box-stream: length-prefixed msgpack arrays `[kind, body]`, sans-IO.

On the wire a frame is a 4-byte big-endian length N (1 <= N <= 1 MiB) followed by N
bytes: the msgpack encoding of `[kind, body]` (bin type for bytes). The prefix lets a
reader refuse an oversize frame from its first four bytes instead of buffering it, and
keeps frames independent of box-stream chunk boundaries.

    ["clock", [feed, note, feed, note, ...]]           EBT notes, whole or partial; a feed is
                                                        its 32-byte id the first time a
                                                        session names it, then a number
                                                        (net/notes.py)
    ["msgs",  [message_bytes, ...]]                     raw signed messages (the store validates)
    ["ping",  n] / ["pong", n]                          n: int 0 .. 2**64-1
    ["bye",   reason]                                   reason: str, before a clean close
    ["invite", {"feed": id, "sig": 64 B}]               redeem a pub invite (chat/pub.py)
    ["invite_ok", {"feed": id}]                         the pub accepted the invite for id
    ["eph", {"id", "kind", "hops", "exp", "body", "proxy"}]  ephemeral datum (net/ephemeral.py)
    ["eph_ack", {"id": 16 B, "ok": bool}]               a proxy took (or refused) a datum
    ["range", [feed_id, first, last]]                   send me seq first..last of feed
    ["rmsgs", [message_bytes, ...]]                     messages answering range requests
    ["rdone", [feed_id, first, last, count]]            that request is answered: count sent

A frame of an unknown kind is decoded as `Unknown(kind)` so the shell can log and skip it
(forward compatibility). Anything else that is wrong raises `RemoteProtocolError` naming
what was wrong; nothing a peer sends can raise anything else out of `FrameDecoder.feed`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import msgpack

from net.ephemeral import Datum, DatumError
from net.errors import LocalProtocolError, RemoteProtocolError
from net.notes import FEED_ID_SIZE, NoteReader, NoteWriter

FRAME_LIMIT = 1 << 20  # largest msgpack body of one frame, in bytes
PREFIX_SIZE = 4
_MAX_UINT64 = (1 << 64) - 1


@dataclass(frozen=True, slots=True)
class Clock:
    """EBT notes for some feeds: -1 = not replicating, else 2*seq + (0 eager | 1 lazy)."""

    notes: Mapping[bytes, int]


@dataclass(frozen=True, slots=True)
class Msgs:
    """Raw signed messages, in order per feed."""

    messages: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class Ping:
    """Round-trip probe; the peer answers with `Pong` carrying the same number."""

    n: int


@dataclass(frozen=True, slots=True)
class Pong:
    """Answer to a `Ping`."""

    n: int


@dataclass(frozen=True, slots=True)
class Bye:
    """The peer is about to close the connection, and why."""

    reason: str


@dataclass(frozen=True, slots=True)
class InviteClaim:
    """Redeem a pub invite for `feed`; `sig` is `feed`'s signature of the claim (net/invite.py)."""

    feed: bytes
    sig: bytes


@dataclass(frozen=True, slots=True)
class InviteOk:
    """The pub accepted the invite and now follows `feed`."""

    feed: bytes


MAX_RANGE = 2000  # most seqs one range request may span (docs/protocol.md)


@dataclass(frozen=True, slots=True)
class RangeRequest:
    """Send me the messages of `feed` from `first` to `last` (both included) you hold."""

    feed: bytes
    first: int
    last: int


@dataclass(frozen=True, slots=True)
class RangeMsgs:
    """Messages answering range requests (stored as ranges, not as the next of a feed)."""

    messages: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class RangeDone:
    """The request `feed` `first`..`last` is answered; `count` messages were sent."""

    feed: bytes
    first: int
    last: int
    count: int


@dataclass(frozen=True, slots=True)
class Ephemeral:
    """An ephemeral datum (never stored in a feed); `proxy` asks us to emit it as ours."""

    datum: Datum
    proxy: bool = False


@dataclass(frozen=True, slots=True)
class EphemeralAck:
    """The answer of a proxy: it took the datum `id` (ok) or refused it."""

    id: bytes
    ok: bool


@dataclass(frozen=True, slots=True)
class Unknown:
    """A frame of a kind this version does not know; ignore it (maybe log it)."""

    kind: str


Frame = (
    Clock
    | Msgs
    | Ping
    | Pong
    | Bye
    | InviteClaim
    | InviteOk
    | Ephemeral
    | EphemeralAck
    | RangeRequest
    | RangeMsgs
    | RangeDone
    | Unknown
)
_KINDS = (
    "clock",
    "msgs",
    "ping",
    "pong",
    "bye",
    "invite",
    "invite_ok",
    "eph",
    "eph_ack",
    "range",
    "rmsgs",
    "rdone",
)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_range(feed: object, first: object, last: object, error: type[Exception]) -> None:
    if not isinstance(feed, bytes) or len(feed) != FEED_ID_SIZE:
        raise error("a range needs a 32-byte feed id")
    if not _is_int(first) or not _is_int(last):
        raise error(f"range bounds {first!r}..{last!r} are not integers")
    assert isinstance(first, int) and isinstance(last, int)
    if not 1 <= first <= last < 2**62:
        raise error(f"range {first}..{last} is empty or out of bounds")
    if last - first + 1 > MAX_RANGE:
        raise error(f"range {first}..{last} spans more than {MAX_RANGE} messages")


def _decode_range(kind: str, body: object) -> RangeRequest | RangeDone:
    size = 3 if kind == "range" else 4
    if not isinstance(body, list) or len(body) != size:
        raise RemoteProtocolError(f"{kind} frame body is not an array of {size}")
    feed, first, last = body[0], body[1], body[2]
    _check_range(feed, first, last, RemoteProtocolError)
    if kind == "range":
        return RangeRequest(feed, first, last)
    count = body[3]
    if not _is_int(count) or not 0 <= count <= last - first + 1:
        raise RemoteProtocolError(f"rdone frame count {count!r} does not fit its range")
    return RangeDone(feed, first, last, count)


def _body_of(frame: Frame) -> tuple[str, Any]:
    match frame:
        case Clock(notes):
            for feed, note in notes.items():
                if not isinstance(feed, bytes) or len(feed) != FEED_ID_SIZE:
                    raise LocalProtocolError("clock keys must be 32-byte feed ids")
                if not _is_int(note) or not -1 <= note <= _MAX_UINT64:
                    raise LocalProtocolError(f"clock note {note!r} is not an int >= -1")
            return "clock", notes
        case Msgs(messages):
            if not all(isinstance(m, bytes) for m in messages):
                raise LocalProtocolError("msgs must hold bytes")
            return "msgs", list(messages)
        case Ping(n):
            return "ping", n
        case Pong(n):
            return "pong", n
        case Bye(reason):
            return "bye", reason
        case InviteClaim(feed, sig):
            if not isinstance(feed, bytes) or len(feed) != FEED_ID_SIZE or len(sig) != 64:
                raise LocalProtocolError("invite needs a 32-byte feed id and a 64-byte signature")
            return "invite", {"feed": feed, "sig": sig}
        case InviteOk(feed):
            if not isinstance(feed, bytes) or len(feed) != FEED_ID_SIZE:
                raise LocalProtocolError("invite_ok needs a 32-byte feed id")
            return "invite_ok", {"feed": feed}
        case Ephemeral(datum, proxy):
            try:
                datum.check()
            except DatumError as error:
                raise LocalProtocolError(str(error)) from None
            return "eph", {
                "id": datum.id,
                "kind": datum.kind,
                "hops": datum.hops_left,
                "exp": float(datum.expires),
                "body": datum.body,
                "proxy": bool(proxy),
            }
        case EphemeralAck(datum_id, ok):
            return "eph_ack", {"id": datum_id, "ok": bool(ok)}
        case RangeRequest(feed, first, last):
            _check_range(feed, first, last, LocalProtocolError)
            return "range", [feed, first, last]
        case RangeMsgs(messages):
            if not all(isinstance(m, bytes) for m in messages):
                raise LocalProtocolError("rmsgs must hold bytes")
            return "rmsgs", list(messages)
        case RangeDone(feed, first, last, count):
            _check_range(feed, first, last, LocalProtocolError)
            if not _is_int(count) or not 0 <= count <= last - first + 1:
                raise LocalProtocolError(f"rdone count {count!r} does not fit the range")
            return "rdone", [feed, first, last, count]
        case Unknown(kind):
            raise LocalProtocolError(f"cannot send a frame of unknown kind {kind!r}")
    raise LocalProtocolError(f"not a frame: {frame!r}")


def encode_frame(frame: Frame, notes: NoteWriter | None = None) -> bytes:
    """The wire bytes of one frame (length prefix included).

    A clock is encoded with the session's `notes` writer (feeds it named before go as
    numbers); without one, every feed is named in full (valid at any point of a session).
    """
    kind, body = _body_of(frame)
    staged = None
    if kind == "clock":
        body, staged = (notes if notes is not None else NoteWriter()).prepare(body)
    if kind in ("ping", "pong") and (not _is_int(body) or not 0 <= body <= _MAX_UINT64):
        raise LocalProtocolError(f"{kind} number must be an int in 0..2**64-1")
    if kind == "bye" and not isinstance(body, str):
        raise LocalProtocolError("bye reason must be a str")
    packed: bytes = msgpack.packb([kind, body], use_bin_type=True)
    if len(packed) > FRAME_LIMIT:
        raise LocalProtocolError(f"{kind} frame of {len(packed)} bytes exceeds {FRAME_LIMIT}")
    if staged is not None and notes is not None:
        notes.commit(staged)  # only a frame that goes out advances the numbering
    return len(packed).to_bytes(PREFIX_SIZE, "big") + packed


def _bin_header_size(length: int) -> int:
    return 2 if length < 1 << 8 else 3 if length < 1 << 16 else 5


def _array_header_size(count: int) -> int:
    return 1 if count < 16 else 3 if count < 1 << 16 else 5


def encode_msgs_batches(raws: Iterable[bytes], max_bytes: int = FRAME_LIMIT) -> list[bytes]:
    """Encode messages as `msgs` frames, in order, each body at most `max_bytes`.

    Raises `LocalProtocolError` if one message alone cannot fit in a frame.
    """
    fixed = 1 + 5  # outer array of 2 + the str "msgs"
    frames: list[bytes] = []
    batch: list[bytes] = []
    size = 0  # sum of encoded message sizes in `batch`
    for raw in raws:
        item = _bin_header_size(len(raw)) + len(raw)
        if fixed + _array_header_size(1) + item > max_bytes:
            raise LocalProtocolError(
                f"a message of {len(raw)} bytes does not fit in a frame of {max_bytes} bytes"
            )
        if batch and fixed + _array_header_size(len(batch) + 1) + size + item > max_bytes:
            frames.append(encode_frame(Msgs(tuple(batch))))
            batch, size = [], 0
        batch.append(raw)
        size += item
    if batch:
        frames.append(encode_frame(Msgs(tuple(batch))))
    return frames


def _decode_msgs(body: object) -> Msgs:
    if not isinstance(body, list):
        raise RemoteProtocolError(f"msgs frame body is {type(body).__name__}, not an array")
    if not all(isinstance(m, bytes) for m in body):
        raise RemoteProtocolError("msgs frame holds something other than message bytes")
    return Msgs(tuple(body))


def _decode_number(kind: str, body: object) -> int:
    if isinstance(body, int) and not isinstance(body, bool) and 0 <= body <= _MAX_UINT64:
        return body
    raise RemoteProtocolError(f"{kind} frame body {body!r} is not an int in 0..2**64-1")


def _decode_invite(kind: str, body: object) -> InviteClaim | InviteOk:
    if not isinstance(body, dict):
        raise RemoteProtocolError(f"{kind} frame body is {type(body).__name__}, not a map")
    feed = body.get("feed")
    if not isinstance(feed, bytes) or len(feed) != FEED_ID_SIZE:
        raise RemoteProtocolError(f"{kind} frame has no 32-byte feed id")
    if kind == "invite_ok":
        return InviteOk(feed)
    sig = body.get("sig")
    if not isinstance(sig, bytes) or len(sig) != 64:
        raise RemoteProtocolError("invite frame has no 64-byte signature")
    return InviteClaim(feed, sig)


def _decode_ephemeral(kind: str, body: object) -> Ephemeral | EphemeralAck:
    if not isinstance(body, dict):
        raise RemoteProtocolError(f"{kind} frame body is {type(body).__name__}, not a map")
    if kind == "eph_ack":
        datum_id, ok = body.get("id"), body.get("ok")
        if not isinstance(datum_id, bytes) or not isinstance(ok, bool):
            raise RemoteProtocolError("eph_ack frame needs an id (bytes) and ok (bool)")
        return EphemeralAck(datum_id, ok)
    expires, proxy = body.get("exp"), body.get("proxy", False)
    if isinstance(expires, int) and not isinstance(expires, bool):
        expires = float(expires)
    datum = Datum(body.get("id"), body.get("kind"), body.get("hops"), expires, body.get("body"))  # type: ignore[arg-type]
    try:
        datum.check()
    except DatumError as error:
        raise RemoteProtocolError(f"eph frame: {error}") from None
    if not isinstance(proxy, bool):
        raise RemoteProtocolError("eph frame: proxy must be true or false")
    return Ephemeral(datum, proxy)


def decode_frame_body(packed: bytes, notes: NoteReader | None = None) -> Frame:
    """Decode the msgpack part of one frame (without its length prefix); a clock with the
    session's `notes` reader (without one, only feeds named in full are understood)."""
    try:
        value = msgpack.unpackb(packed, raw=False, strict_map_key=False, use_list=True)
    except Exception as error:  # msgpack raises many types on hostile input
        raise RemoteProtocolError(f"frame is not valid msgpack ({error})") from None
    if not isinstance(value, list) or not value:
        raise RemoteProtocolError(f"frame is {type(value).__name__}, not an array [kind, body]")
    kind = value[0]
    if not isinstance(kind, str):
        raise RemoteProtocolError(f"frame kind is {type(kind).__name__}, not a string")
    if kind not in _KINDS:
        return Unknown(kind)
    if len(value) != 2:
        raise RemoteProtocolError(f"{kind} frame has {len(value)} items, not 2")
    body = value[1]
    if kind == "clock":
        return Clock((notes if notes is not None else NoteReader()).decode(body))
    if kind == "msgs":
        return _decode_msgs(body)
    if kind == "rmsgs":
        return RangeMsgs(_decode_msgs(body).messages)
    if kind in ("range", "rdone"):
        return _decode_range(kind, body)
    if kind == "ping":
        return Ping(_decode_number(kind, body))
    if kind == "pong":
        return Pong(_decode_number(kind, body))
    if kind in ("invite", "invite_ok"):
        return _decode_invite(kind, body)
    if kind in ("eph", "eph_ack"):
        return _decode_ephemeral(kind, body)
    if not isinstance(body, str):
        raise RemoteProtocolError(f"bye frame reason is {type(body).__name__}, not a string")
    return Bye(body)


class FrameDecoder:
    """Reassembles frames from a byte stream; raises `RemoteProtocolError` on bad input.

    After an error the decoder stays failed: the connection must be closed.
    """

    def __init__(self, limit: int = FRAME_LIMIT) -> None:
        self._limit = limit
        self.notes = NoteReader()  # the peer's feed numbering in this session
        self._buffer = bytearray()
        self._error: RemoteProtocolError | None = None

    def feed(self, data: bytes) -> list[Frame]:
        """Add received plaintext; return the frames now complete, in order."""
        if self._error is not None:
            raise self._error
        self._buffer += data
        buffer = self._buffer
        frames: list[Frame] = []
        pos = 0  # consumed bytes; trimmed once at the end (no quadratic copying)
        try:
            while len(buffer) - pos >= PREFIX_SIZE:
                length = int.from_bytes(buffer[pos : pos + PREFIX_SIZE], "big")
                if length == 0:
                    raise RemoteProtocolError("frame of length 0")
                if length > self._limit:
                    raise RemoteProtocolError(
                        f"frame of {length} bytes exceeds the limit of {self._limit}"
                    )
                end = pos + PREFIX_SIZE + length
                if len(buffer) < end:
                    break
                packed = bytes(buffer[pos + PREFIX_SIZE : end])
                pos = end
                frames.append(decode_frame_body(packed, self.notes))
        except RemoteProtocolError as error:
            self._error = error
            buffer.clear()
            raise
        del buffer[:pos]
        return frames

    @property
    def pending(self) -> int:
        """Bytes buffered towards an incomplete frame."""
        return len(self._buffer)
