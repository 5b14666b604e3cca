"""Notes on the wire (net/notes.py): feeds named once per session, then numbers and deltas."""

from __future__ import annotations

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from net.errors import LocalProtocolError, RemoteProtocolError
from net.frames import Clock, FrameDecoder, encode_frame
from net.notes import NoteReader, NoteWriter, body_bytes

FEEDS = [bytes([i]) * 32 for i in range(6)]

note_values = st.one_of(st.just(-1), st.integers(0, 2**40))
frames = st.lists(st.dictionaries(st.sampled_from(FEEDS), note_values, max_size=6), max_size=12)


@settings(max_examples=200, deadline=None)
@given(frames)
def test_any_sequence_of_frames_decodes_to_what_was_sent(sent: list[dict[bytes, int]]) -> None:
    writer, reader = NoteWriter(), NoteReader()
    for notes in sent:
        body = writer.encode(notes)
        wire = msgpack.unpackb(msgpack.packb(body, use_bin_type=True), raw=False)
        assert reader.decode(wire) == notes
        assert body_bytes(body) == len(msgpack.packb(body, use_bin_type=True))


def test_a_feed_is_named_once_then_numbered_with_deltas() -> None:
    writer, reader = NoteWriter(), NoteReader()
    a, b = FEEDS[0], FEEDS[1]
    first = writer.encode({a: 2 * 5000 + 1, b: -1})
    assert first == [a, 10001, b, -1]
    later = writer.encode({a: 2 * 5001 + 1, b: 2 * 3})  # a: one more, lazy; b: eager from 3
    assert later == [0, 3, 1, 6]
    assert len(msgpack.packb(later)) == 5  # two entries of 37 bytes each became 4 bytes
    assert reader.decode(first) == {a: 10001, b: -1}
    assert reader.decode(later) == {a: 10003, b: 6}


def test_a_seq_going_back_is_restated_in_full_and_keeps_its_number() -> None:
    writer, reader = NoteWriter(), NoteReader()
    a = FEEDS[0]
    reader.decode(writer.encode({a: 2 * 9}))
    back = writer.encode({a: 2 * 4 + 1})
    assert back == [a, 9]
    assert reader.decode(back) == {a: 9}
    assert writer.encode({a: 2 * 5}) == [0, 2]
    assert reader.decode([0, 2]) == {a: 10}


def test_each_session_starts_from_nothing() -> None:
    old = NoteWriter()
    old.encode({FEEDS[0]: 4})
    assert NoteWriter().encode({FEEDS[0]: 4}) == [FEEDS[0], 4]
    with pytest.raises(RemoteProtocolError, match="never named"):
        NoteReader().decode(old.encode({FEEDS[0]: 6}))


def test_a_frame_too_large_to_send_does_not_advance_the_numbering() -> None:
    writer = NoteWriter()
    huge = {i.to_bytes(32, "big"): 1 for i in range(30_000)}  # 30,000 x 35 bytes > 1 MiB
    with pytest.raises(LocalProtocolError, match="exceeds"):
        encode_frame(Clock(huge), writer)
    assert writer.named == 0
    decoder = FrameDecoder()
    assert decoder.feed(encode_frame(Clock({FEEDS[0]: 2}), writer)) == [Clock({FEEDS[0]: 2})]
    assert decoder.feed(encode_frame(Clock({FEEDS[0]: 4}), writer)) == [Clock({FEEDS[0]: 4})]


def test_a_peer_naming_too_many_feeds_is_refused() -> None:
    reader = NoteReader(limit=3)
    reader.decode([FEEDS[0], 1, FEEDS[1], 1, FEEDS[2], 1])
    reader.decode([FEEDS[0], 3])  # naming a known feed again costs nothing
    with pytest.raises(RemoteProtocolError, match="more than 3 feeds"):
        reader.decode([FEEDS[3], 1])


def test_a_delta_beyond_2_64_is_refused() -> None:
    reader = NoteReader()
    reader.decode([FEEDS[0], 2**64 - 2])
    with pytest.raises(RemoteProtocolError, match="beyond 2"):
        reader.decode([0, 2**63])
