"""Box-stream: npm pull-box-stream vectors, chunking, round trips, tampering, goodbye."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import nacl.bindings as sodium
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from net.boxstream import HEADER_SIZE, MAX_CHUNK, BoxStreamDecoder, BoxStreamEncoder
from net.errors import LocalProtocolError, RemoteProtocolError

VECTORS = json.loads((Path(__file__).parent / "data" / "shs_vectors.json").read_text())
KEY = bytes(range(32))
NONCE = bytes(range(100, 124))


@pytest.mark.parametrize("case", VECTORS["boxstream"])
def test_encrypts_like_pull_box_stream(case: dict[str, Any]) -> None:
    encoder = BoxStreamEncoder(bytes.fromhex(case["key"]), bytes.fromhex(case["nonce"]))
    wire = b"".join(encoder.encrypt(bytes.fromhex(h)) for h in case["inputs"]) + encoder.goodbye()
    assert wire == b"".join(bytes.fromhex(h) for h in case["output"])


@pytest.mark.parametrize("case", VECTORS["boxstream"])
def test_decrypts_pull_box_stream_output(case: dict[str, Any]) -> None:
    decoder = BoxStreamDecoder(bytes.fromhex(case["key"]), bytes.fromhex(case["nonce"]))
    chunks: list[bytes] = []
    for piece in case["output"]:  # the reference's own write boundaries
        chunks.extend(decoder.feed(bytes.fromhex(piece)))
    assert decoder.closed
    assert b"".join(chunks) == b"".join(bytes.fromhex(h) for h in case["inputs"])
    assert all(len(c) <= MAX_CHUNK for c in chunks)


def test_chunks_at_4096() -> None:
    encoder = BoxStreamEncoder(KEY, NONCE)
    wire = encoder.encrypt(bytes(MAX_CHUNK + 1))
    assert len(wire) == HEADER_SIZE + MAX_CHUNK + HEADER_SIZE + 1
    decoder = BoxStreamDecoder(KEY, NONCE)
    assert [len(c) for c in decoder.feed(wire)] == [MAX_CHUNK, 1]


def test_exactly_4096_is_one_chunk_and_empty_is_nothing() -> None:
    encoder = BoxStreamEncoder(KEY, NONCE)
    assert len(encoder.encrypt(bytes(MAX_CHUNK))) == HEADER_SIZE + MAX_CHUNK
    assert encoder.encrypt(b"") == b""


@settings(max_examples=60, deadline=None)
@given(
    messages=st.lists(st.binary(max_size=9000), max_size=6),
    cuts=st.lists(st.integers(min_value=1, max_value=5000), max_size=8),
)
def test_round_trip_with_any_read_boundaries(messages: list[bytes], cuts: list[int]) -> None:
    encoder = BoxStreamEncoder(KEY, NONCE)
    wire = b"".join(encoder.encrypt(m) for m in messages) + encoder.goodbye()
    decoder = BoxStreamDecoder(KEY, NONCE)
    out: list[bytes] = []
    position = 0
    for cut in [*cuts, len(wire)]:
        out.extend(decoder.feed(wire[position : position + cut]))
        position += cut
    out.extend(decoder.feed(wire[position:]))
    assert b"".join(out) == b"".join(messages)
    assert decoder.closed


@pytest.mark.parametrize("position", [0, 17, HEADER_SIZE - 1, HEADER_SIZE, HEADER_SIZE + 4])
def test_any_flipped_bit_is_caught(position: int) -> None:
    wire = bytearray(BoxStreamEncoder(KEY, NONCE).encrypt(b"hello there"))
    wire[position] ^= 0x10
    decoder = BoxStreamDecoder(KEY, NONCE)
    with pytest.raises(RemoteProtocolError, match="failed authentication"):
        decoder.feed(bytes(wire))
    with pytest.raises(RemoteProtocolError):  # stays failed
        decoder.feed(b"")


def test_wrong_key_is_caught() -> None:
    wire = BoxStreamEncoder(KEY, NONCE).encrypt(b"secret")
    with pytest.raises(RemoteProtocolError):
        BoxStreamDecoder(bytes(32), NONCE).feed(wire)


def test_replayed_or_reordered_chunk_is_caught() -> None:
    encoder = BoxStreamEncoder(KEY, NONCE)
    first = encoder.encrypt(b"one")
    second = encoder.encrypt(b"two")
    decoder = BoxStreamDecoder(KEY, NONCE)
    with pytest.raises(RemoteProtocolError):
        decoder.feed(second + first)
    decoder = BoxStreamDecoder(KEY, NONCE)
    assert decoder.feed(first) == [b"one"]
    with pytest.raises(RemoteProtocolError):
        decoder.feed(first)


def test_goodbye_closes_cleanly() -> None:
    encoder = BoxStreamEncoder(KEY, NONCE)
    wire = encoder.encrypt(b"last words") + encoder.goodbye()
    assert encoder.closed
    with pytest.raises(LocalProtocolError):
        encoder.encrypt(b"more")
    with pytest.raises(LocalProtocolError):
        encoder.goodbye()
    decoder = BoxStreamDecoder(KEY, NONCE)
    assert decoder.feed(wire) == [b"last words"]
    assert decoder.closed
    decoder.receive_eof()  # fine after a goodbye


def test_data_after_goodbye_is_a_violation() -> None:
    encoder = BoxStreamEncoder(KEY, NONCE)
    goodbye = encoder.goodbye()
    decoder = BoxStreamDecoder(KEY, NONCE)
    with pytest.raises(RemoteProtocolError, match="after its box-stream goodbye"):
        decoder.feed(goodbye + b"extra")


def test_cut_connection_without_goodbye_is_an_error() -> None:
    decoder = BoxStreamDecoder(KEY, NONCE)
    decoder.feed(BoxStreamEncoder(KEY, NONCE).encrypt(b"partial")[:-2])
    with pytest.raises(RemoteProtocolError, match="without a box-stream goodbye"):
        decoder.receive_eof()


def _forged_header(length: int) -> bytes:
    plain = length.to_bytes(2, "big") + bytes(range(1, 17))
    return sodium.crypto_secretbox_easy(plain, NONCE, KEY)


@pytest.mark.parametrize("length", [0, MAX_CHUNK + 1, 65535])
def test_header_lengths_outside_the_rules_are_refused(length: int) -> None:
    """Even an authentic header (the peer has the key) may not announce such a body."""
    with pytest.raises(RemoteProtocolError, match=r"outside 1\.\.4096"):
        BoxStreamDecoder(KEY, NONCE).feed(_forged_header(length))


def test_nonce_counter_carries_across_bytes() -> None:
    nonce = bytes(22) + b"\xff\xfe"
    encoder = BoxStreamEncoder(KEY, nonce)
    encoder.encrypt(b"a")  # header at ..fffe, body at ..ffff
    second = encoder.encrypt(b"b")  # header at ..0100 + carry
    header = sodium.crypto_secretbox_open_easy(
        second[:HEADER_SIZE], bytes(21) + b"\x01\x00\x00", KEY
    )
    assert header[:2] == b"\x00\x01"


def test_bad_key_or_nonce_sizes() -> None:
    with pytest.raises(LocalProtocolError):
        BoxStreamEncoder(b"short", NONCE)
    with pytest.raises(LocalProtocolError):
        BoxStreamDecoder(KEY, b"short")
