"""Frames: round trips, limits, forward compatibility, hostile input never crashes."""

from __future__ import annotations

import itertools
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from net.errors import LocalProtocolError, RemoteProtocolError
from net.frames import (
    FRAME_LIMIT,
    Bye,
    Clock,
    Frame,
    FrameDecoder,
    Msgs,
    Ping,
    Pong,
    RangeDone,
    RangeMsgs,
    RangeRequest,
    Unknown,
    encode_frame,
    encode_msgs_batches,
)

FEED_A = bytes(range(32))
FEED_B = bytes(range(1, 33))


def raw_frame(value: Any) -> bytes:
    """A frame as a (possibly misbehaving) peer would put it on the wire."""
    packed: bytes = msgpack.packb(value, use_bin_type=True)
    return len(packed).to_bytes(4, "big") + packed


FRAMES: list[Frame] = [
    Clock({FEED_A: -1, FEED_B: 2 * 17 + 1}),
    Clock({}),
    Msgs((b"\x93\x01abc", b"", bytes(8192))),
    Msgs(()),
    Ping(0),
    Pong(2**64 - 1),
    Bye("shutting down"),
    RangeRequest(FEED_A, 9901, 10000),
    RangeMsgs((b"\x93\x01abc",)),
    RangeDone(FEED_B, 1, 2000, 0),
    RangeDone(FEED_B, 5, 5, 1),
]


@pytest.mark.parametrize("frame", FRAMES, ids=lambda f: type(f).__name__)
def test_round_trip(frame: Frame) -> None:
    assert FrameDecoder().feed(encode_frame(frame)) == [frame]


def test_many_frames_fed_byte_by_byte() -> None:
    wire = b"".join(encode_frame(f) for f in FRAMES)
    decoder = FrameDecoder()
    out: list[Frame] = []
    for i in range(len(wire)):
        out.extend(decoder.feed(wire[i : i + 1]))
    assert out == FRAMES
    assert decoder.pending == 0


def test_wire_format_is_length_prefixed_msgpack_array() -> None:
    wire = encode_frame(Ping(5))
    assert wire[:4] == (len(wire) - 4).to_bytes(4, "big")
    assert msgpack.unpackb(wire[4:]) == ["ping", 5]
    clock = encode_frame(Clock({FEED_A: 4}))
    assert msgpack.unpackb(clock[4:], raw=False) == ["clock", [FEED_A, 4]]


def test_unknown_kind_is_skipped_and_the_stream_goes_on() -> None:
    wire = raw_frame(["emoji-reaction", {"x": 1}, "extra"]) + encode_frame(Ping(3))
    assert FrameDecoder().feed(wire) == [Unknown("emoji-reaction"), Ping(3)]


def test_oversize_frame_refused_from_its_prefix_alone() -> None:
    decoder = FrameDecoder()
    with pytest.raises(RemoteProtocolError, match="exceeds the limit"):
        decoder.feed((FRAME_LIMIT + 1).to_bytes(4, "big"))
    with pytest.raises(RemoteProtocolError):  # the decoder stays failed
        decoder.feed(encode_frame(Ping(1)))


def test_frame_at_the_limit_is_accepted() -> None:
    padding = FRAME_LIMIT - len(msgpack.packb(["msgs", [b""]], use_bin_type=True))
    frame = Msgs((bytes(padding - 3),))  # bin32 header: 5 bytes instead of 2
    wire = encode_frame(frame)
    assert len(wire) - 4 == FRAME_LIMIT
    assert FrameDecoder().feed(wire) == [frame]
    with pytest.raises(LocalProtocolError):
        encode_frame(Msgs((bytes(padding - 2),)))


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ({"kind": "ping"}, "not an array"),
        ([], "not an array"),
        ([7, 1], "kind is int"),
        (["ping"], "1 items"),
        (["ping", 1, 2], "3 items"),
        (["ping", -1], "not an int"),
        (["pong", "1"], "not an int"),
        (["ping", True], "not an int"),
        (["clock", {FEED_A: 1}], "not an array of .feed, note. pairs"),
        (["clock", [FEED_A]], "not an array of .feed, note. pairs"),
        (["clock", [FEED_A[:31], 1]], "not 32 bytes"),
        (["clock", ["feed", 1]], "never named"),
        (["clock", [0, 1]], "never named"),
        (["clock", [FEED_A, 1, 1, 1]], "never named"),
        (["clock", [FEED_A, -2]], "int >= -1"),
        (["clock", [FEED_A, 1.5]], "int >= -1"),
        (["clock", [FEED_A, False]], "int >= -1"),
        (["msgs", b"abc"], "not an array"),
        (["msgs", [b"ok", "text"]], "other than message bytes"),
        (["bye", 3], "not a string"),
        (["range", [FEED_A, 1]], "not an array of 3"),
        (["range", [FEED_A[:31], 1, 2]], "32-byte feed id"),
        (["range", [FEED_A, 0, 2]], "empty or out of bounds"),
        (["range", [FEED_A, 5, 4]], "empty or out of bounds"),
        (["range", [FEED_A, 1, 2001]], "more than 2000"),
        (["range", [FEED_A, 1.0, 2]], "not integers"),
        (["rmsgs", [1]], "other than message bytes"),
        (["rdone", [FEED_A, 1, 10, 11]], "does not fit"),
        (["rdone", [FEED_A, 1, 10, -1]], "does not fit"),
    ],
)
def test_malformed_frames_name_the_problem(value: Any, problem: str) -> None:
    with pytest.raises(RemoteProtocolError, match=problem):
        FrameDecoder().feed(raw_frame(value))


def test_invalid_msgpack_and_empty_frame() -> None:
    with pytest.raises(RemoteProtocolError, match="not valid msgpack"):
        FrameDecoder().feed(b"\x00\x00\x00\x02\x92\xc1")
    with pytest.raises(RemoteProtocolError, match="not valid msgpack"):
        FrameDecoder().feed(b"\x00\x00\x00\x03\x92\xa1\xff")  # bad UTF-8 kind
    with pytest.raises(RemoteProtocolError, match="length 0"):
        FrameDecoder().feed(bytes(4))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_never_crash_the_decoder(data: bytes) -> None:
    decoder = FrameDecoder()
    try:
        frames = decoder.feed(data)
    except RemoteProtocolError:
        return
    known = Clock | Msgs | Ping | Pong | Bye | RangeRequest | RangeMsgs | RangeDone | Unknown
    assert all(isinstance(f, known) for f in frames)


msgpack_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats()
    | st.text(max_size=10)
    | st.binary(max_size=40),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=5) | st.binary(max_size=33), inner, max_size=4)
    ),
    max_leaves=8,
)


@settings(max_examples=100, deadline=None)
@given(
    st.sampled_from(["clock", "msgs", "ping", "pong", "bye", "range", "rmsgs", "rdone", "other"]),
    st.lists(msgpack_values, max_size=3),
)
def test_well_framed_nonsense_is_decoded_or_refused(kind: str, rest: list[Any]) -> None:
    """Structurally plausible frames with random bodies: a frame or a RemoteProtocolError."""
    try:
        frames = FrameDecoder().feed(raw_frame([kind, *rest]))
    except RemoteProtocolError:
        return
    assert len(frames) == 1


def test_encode_refuses_what_the_peer_would_refuse() -> None:
    with pytest.raises(LocalProtocolError):
        encode_frame(Clock({b"short": 1}))
    with pytest.raises(LocalProtocolError):
        encode_frame(Clock({FEED_A: -5}))
    with pytest.raises(LocalProtocolError):
        encode_frame(Ping(-1))
    with pytest.raises(LocalProtocolError):
        encode_frame(Unknown("x"))
    with pytest.raises(LocalProtocolError):
        encode_frame(RangeRequest(FEED_A, 1, 5000))
    with pytest.raises(LocalProtocolError):
        encode_frame(RangeDone(FEED_A, 1, 5, 6))


@settings(max_examples=40, deadline=None)
@given(
    sizes=st.lists(st.integers(min_value=0, max_value=3000), max_size=40),
    max_bytes=st.integers(min_value=3020, max_value=20000),
)
def test_msgs_batches_fit_keep_order_and_are_full(sizes: list[int], max_bytes: int) -> None:
    raws = [bytes([i % 256]) * size for i, size in enumerate(sizes)]
    wire = encode_msgs_batches(raws, max_bytes)
    decoded = FrameDecoder().feed(b"".join(wire))
    batches = [f.messages for f in decoded if isinstance(f, Msgs)]
    assert len(batches) == len(wire)
    assert [m for batch in batches for m in batch] == raws
    for frame in wire:
        assert len(frame) - 4 <= max_bytes
    # No batch could have taken the next message too: batches are as full as allowed.
    for batch, following in itertools.pairwise(batches):
        merged = encode_frame(Msgs((*batch, following[0])))
        assert len(merged) - 4 > max_bytes


def test_msgs_batches_default_limit_and_oversized_message() -> None:
    raws = [bytes(8192)] * 300  # about 2.4 MiB
    wire = encode_msgs_batches(raws)
    assert len(wire) == 3
    assert all(len(frame) - 4 <= FRAME_LIMIT for frame in wire)
    assert encode_msgs_batches([]) == []
    with pytest.raises(LocalProtocolError, match="does not fit"):
        encode_msgs_batches([bytes(100)], max_bytes=50)
