"""EBT notes on the wire: each side of a session numbers the feeds it names, sans-IO.

A `clock` frame's body is a flat array of (feed, note) pairs (docs/protocol.md, "Notes
on the wire"). The first time a sender names a feed in a session it writes the 32-byte
id and the note in full (`2*seq + lazy`, or -1); that feed gets the sender's next
number (0, 1, 2, ...). Later it writes the number instead, and the note as a delta
against the seq it last sent for that feed (`2*(seq - last) + lazy`, or -1). A 37-byte
entry becomes two or three bytes. Numbers live as long as the session: a new connection
starts from nothing, so nothing is remembered across reconnects and request skipping
is unchanged. Writing a feed's id again (allowed at any time) restates it in full and
keeps its number; the writer does so when a seq would go backwards.

`NoteWriter` is our side of one session, `NoteReader` the peer's; the socket shell
(net/peer.py, through net/frames.py), the simulator and the Maelstrom node each keep
one pair per connection, so all three put the same notes on the wire.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from net.errors import RemoteProtocolError
from store.limits import MAX_NAMED_FEEDS

FEED_ID_SIZE = 32
_NOTE_LIMIT = 1 << 64  # a note (2*seq + 1) stays a msgpack uint64

NoteBody = list[bytes | int]
"""The wire body of a clock frame: feed (32-byte id or number), note, feed, note, ..."""


@dataclass(slots=True)
class _Staged:
    """What encoding one frame changes in a writer; applied once the frame is sent."""

    named: list[bytes]
    bases: dict[int, int]


class NoteWriter:
    """Encodes the notes we send on one session (numbers the feeds we name)."""

    __slots__ = ("_bases", "_numbers")

    def __init__(self) -> None:
        self._numbers: dict[bytes, int] = {}
        self._bases: list[int] = []  # per number: the seq we last sent (0 after -1)

    def encode(self, notes: Mapping[bytes, int]) -> NoteBody:
        """The body for `notes`, taking effect at once (see `prepare` to defer it)."""
        body, staged = self.prepare(notes)
        self.commit(staged)
        return body

    def prepare(self, notes: Mapping[bytes, int]) -> tuple[NoteBody, _Staged]:
        """The body for `notes` and the numbering change it implies, not yet applied:
        a frame that turns out too large to send must not advance the numbering."""
        numbers, bases = self._numbers, self._bases
        body: NoteBody = []
        staged = _Staged([], {})
        for feed, value in notes.items():
            number = numbers.get(feed)
            if number is None:
                number = len(numbers) + len(staged.named)
                staged.named.append(feed)
            if value == -1:
                body += (number, -1) if number < len(numbers) else (feed, -1)
                staged.bases[number] = 0
                continue
            seq = value >> 1
            base = staged.bases.get(number, bases[number] if number < len(numbers) else -1)
            if base < 0 or seq < base:  # new here, or going back: restate in full
                body += (feed, value)
            else:
                body += (number, 2 * (seq - base) + (value & 1))
            staged.bases[number] = seq
        return body, staged

    def commit(self, staged: _Staged) -> None:
        """Apply what `prepare` staged (the frame was sent)."""
        for feed in staged.named:
            self._numbers[feed] = len(self._numbers)
            self._bases.append(0)
        for number, base in staged.bases.items():
            self._bases[number] = base

    @property
    def named(self) -> int:
        """Feeds named so far in this session."""
        return len(self._numbers)


class NoteReader:
    """Decodes the notes a peer sends on one session (follows its numbering)."""

    __slots__ = ("_bases", "_feeds", "_id_size", "_limit", "_numbers")

    def __init__(self, limit: int = MAX_NAMED_FEEDS, id_size: int | None = FEED_ID_SIZE) -> None:
        self._limit = limit
        self._id_size = id_size  # None: any bytes name a feed (the Maelstrom node's names)
        self._feeds: list[bytes] = []
        self._numbers: dict[bytes, int] = {}
        self._bases: list[int] = []

    def decode(self, body: object) -> dict[bytes, int]:
        """{feed id: note} (notes as `net.ebt.decode_note` reads them).

        Raises RemoteProtocolError, naming what was wrong, for a body that is not an
        array of pairs, a feed that is neither a 32-byte id nor a number this session
        named, a note that is not an int >= -1, or more than `limit` feeds named.
        """
        if not isinstance(body, list) or len(body) % 2:
            raise RemoteProtocolError("clock frame body is not an array of (feed, note) pairs")
        notes: dict[bytes, int] = {}
        feeds, numbers, bases = self._feeds, self._numbers, self._bases
        for i in range(0, len(body), 2):
            ref, value = body[i], body[i + 1]
            if type(value) is not int or value < -1:
                raise RemoteProtocolError(f"clock frame has note {value!r}, not an int >= -1")
            if type(ref) is bytes:
                if self._id_size is not None and len(ref) != self._id_size:
                    raise RemoteProtocolError("clock frame names a feed that is not 32 bytes")
                number = numbers.get(ref)
                if number is None:
                    if len(feeds) >= self._limit:
                        raise RemoteProtocolError(
                            f"the peer named more than {self._limit} feeds in one session"
                        )
                    number = numbers[ref] = len(feeds)
                    feeds.append(ref)
                    bases.append(0)
                notes[ref] = value
                bases[number] = value >> 1 if value >= 0 else 0
                continue
            if type(ref) is not int or not 0 <= ref < len(feeds):
                raise RemoteProtocolError(
                    f"clock frame refers to feed {ref!r}, which the peer never named"
                )
            feed = feeds[ref]
            if value == -1:
                notes[feed] = -1
                bases[ref] = 0
                continue
            seq = bases[ref] + (value >> 1)
            note = 2 * seq + (value & 1)
            if note >= _NOTE_LIMIT:
                raise RemoteProtocolError("clock frame has a note beyond 2**64")
            notes[feed] = note
            bases[ref] = seq
        return notes

    @property
    def named(self) -> int:
        """Feeds the peer named so far in this session."""
        return len(self._feeds)


def body_bytes(body: Sequence[bytes | int]) -> int:
    """The msgpack size of a clock body, computed, not packed (the simulator's count;
    a test checks it against msgpack)."""
    n = len(body)
    size = 1 if n < 16 else 3 if n < 0x10000 else 5
    for item in body:
        if type(item) is bytes:
            k = len(item)
            size += k + (2 if k < 0x100 else 3 if k < 0x10000 else 5)
        else:
            size += _int_size(item)  # type: ignore[arg-type]
    return size


def _int_size(v: int) -> int:
    if -32 <= v <= 127:
        return 1
    if v < 0:
        return 2 if v >= -128 else 3 if v >= -(2**15) else 5 if v >= -(2**31) else 9
    return 2 if v <= 0xFF else 3 if v <= 0xFFFF else 5 if v <= 0xFFFFFFFF else 9
