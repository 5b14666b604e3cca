"""Feed message format: encoding, every validation rule, batch runs, and fuzzing."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nacl.signing import SigningKey

from store.message import (
    MAX_MESSAGE_SIZE,
    MSG_PREFIX,
    FeedHead,
    ForkDetected,
    InvalidMessage,
    Message,
    create_message,
    decode_message,
    feed_ref,
    parse_feed_ref,
    validate_next,
    validate_run,
)

ALICE = SigningKey(bytes(range(32)))
BOB = SigningKey(bytes(range(1, 33)))


def post(text: str = "hello") -> dict[str, Any]:
    return {"type": "post", "text": text, "channel": "general"}


def chain(key: SigningKey, count: int, start_ts: int = 1_000) -> list[Message]:
    messages: list[Message] = []
    prev: bytes | None = None
    for seq in range(1, count + 1):
        message = create_message(key, seq, prev, start_ts + seq, post(f"m{seq}"))
        messages.append(message)
        prev = message.id
    return messages


def sign_body(key: SigningKey, body: Any) -> bytes:
    """Sign an arbitrary msgpack body, bypassing create_message's checks."""
    signed = msgpack.packb(body, use_bin_type=True)
    return bytes(signed + key.sign(MSG_PREFIX + signed).signature)


def head_of(message: Message) -> FeedHead:
    return FeedHead(message.seq, message.id)


AUTHOR = bytes(ALICE.verify_key)


# ---------------------------------------------------------------- format


def test_raw_is_signed_body_plus_signature_and_id_is_blake2b() -> None:
    message = create_message(ALICE, 1, None, 1234, post())
    assert message.raw == message.signed + message.signature
    assert len(message.signature) == 64
    assert message.id == hashlib.blake2b(message.raw, digest_size=32).digest()
    assert msgpack.unpackb(message.signed, raw=False) == [1, AUTHOR, 1, None, 1234, post()]
    ALICE.verify_key.verify(MSG_PREFIX + message.signed, message.signature)


def test_decode_round_trip() -> None:
    first = create_message(ALICE, 1, None, 5, post())
    second = create_message(ALICE, 2, first.id, 6, b"\x00sealed box")
    assert decode_message(second.raw) == second
    assert isinstance(second.content, bytes)
    assert isinstance(first.content, dict) and first.content["type"] == "post"


def test_feed_ref_is_standard_base64_and_parses_back() -> None:
    ref = feed_ref(AUTHOR)
    assert ref == "@" + base64.b64encode(AUTHOR).decode() + ".ed25519"
    assert parse_feed_ref(ref) == AUTHOR
    assert parse_feed_ref(base64.b64encode(AUTHOR).decode()) == AUTHOR
    with pytest.raises(ValueError, match="not a feed id"):
        parse_feed_ref("@abc.ed25519")


def test_error_names_feed_seq_and_reason() -> None:
    first, second = chain(ALICE, 2)
    forged = second.raw[:-1] + bytes([second.raw[-1] ^ 1])
    with pytest.raises(InvalidMessage) as info:
        validate_next(head_of(first), forged)
    assert str(info.value) == f"message 2 of feed {feed_ref(AUTHOR)} is invalid: bad signature"
    assert (info.value.feed, info.value.seq, info.value.reason) == (AUTHOR, 2, "bad signature")


def test_fork_detected_is_an_invalid_message() -> None:
    message = create_message(ALICE, 1, None, 1, post())
    error = ForkDetected(AUTHOR, 1, b"\x01" * 32, message)
    assert isinstance(error, InvalidMessage)
    assert error.existing_id == b"\x01" * 32 and error.message is message
    assert "fork" in str(error) and feed_ref(AUTHOR) in str(error)


# ---------------------------------------------------------------- validation rules


def test_first_message_validates_without_head() -> None:
    message = create_message(ALICE, 1, None, 1, post())
    assert validate_next(None, message.raw) == message


def test_next_message_validates_against_head() -> None:
    first, second = chain(ALICE, 2)
    assert validate_next(head_of(first), second.raw) == second


def test_seq_gap_is_rejected() -> None:
    first, _, third = chain(ALICE, 3)
    with pytest.raises(InvalidMessage, match=r"out of order \(expected seq 2\)"):
        validate_next(head_of(first), third.raw)


def test_first_message_needs_empty_feed() -> None:
    first, second = chain(ALICE, 2)
    with pytest.raises(InvalidMessage, match="expected seq 1"):
        validate_next(None, second.raw)
    with pytest.raises(InvalidMessage, match="expected seq 2"):
        validate_next(head_of(first), first.raw)


def test_wrong_prev_is_rejected() -> None:
    first = create_message(ALICE, 1, None, 1, post())
    stray = create_message(ALICE, 2, b"\x07" * 32, 2, post())
    # Signed by the author on top of another message 1: a fork, not just a bad link.
    with pytest.raises(ForkDetected, match="two chains") as raised:
        validate_next(head_of(first), stray.raw)
    assert raised.value.existing_id == first.id and raised.value.message.raw == stray.raw
    forged = stray.raw[:-1] + bytes([stray.raw[-1] ^ 1])
    with pytest.raises(InvalidMessage, match="bad signature") as plain:
        validate_next(head_of(first), forged)
    assert not isinstance(plain.value, ForkDetected)
    # A run checks links only (one signature): a broken link there is just invalid.
    with pytest.raises(InvalidMessage, match="prev does not match"):
        validate_run(head_of(first), [stray.raw])


def test_bad_signature_is_rejected() -> None:
    # Bob signs a message claiming Alice as author.
    raw = sign_body(BOB, [1, AUTHOR, 1, None, 1, post()])
    with pytest.raises(InvalidMessage, match="bad signature"):
        validate_next(None, raw)


def test_tampered_content_breaks_signature() -> None:
    message = create_message(ALICE, 1, None, 1, post("hello"))
    tampered = message.raw.replace(b"hello", b"jello")
    with pytest.raises(InvalidMessage, match="bad signature"):
        validate_next(None, tampered)


def test_oversize_message_is_rejected() -> None:
    with pytest.raises(InvalidMessage, match="too large") as info:
        create_message(ALICE, 1, None, 1, post("x" * MAX_MESSAGE_SIZE))
    assert (info.value.feed, info.value.seq) == (AUTHOR, 1)
    raw = sign_body(ALICE, [1, AUTHOR, 1, None, 1, post("x" * MAX_MESSAGE_SIZE)])
    with pytest.raises(InvalidMessage, match="too large"):
        decode_message(raw)


def test_largest_allowed_message_passes() -> None:
    base = len(create_message(ALICE, 1, None, 1, post("")).raw)
    # str8 header (2 bytes) vs str16 header (3 bytes) once the text reaches 256 bytes.
    text = "x" * (MAX_MESSAGE_SIZE - base - 2)
    message = create_message(ALICE, 1, None, 1, post(text))
    assert len(message.raw) == MAX_MESSAGE_SIZE
    assert validate_next(None, message.raw) == message


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ([1, AUTHOR[:31], 1, None, 1, post()], "author must be 32 bytes"),
        ([1, AUTHOR + b"\x00", 1, None, 1, post()], "author must be 32 bytes"),
        ([1, AUTHOR.hex(), 1, None, 1, post()], "author must be 32 bytes"),
        ([1, AUTHOR, 0, None, 1, post()], "seq must be a positive integer"),
        ([1, AUTHOR, -3, None, 1, post()], "seq must be a positive integer"),
        ([1, AUTHOR, "1", None, 1, post()], "seq must be a positive integer"),
        ([1, AUTHOR, True, None, 1, post()], "seq must be a positive integer"),
        ([1, AUTHOR, 1.0, None, 1, post()], "seq must be a positive integer"),
        ([1, AUTHOR, 2**63, None, 1, post()], "seq must be a positive integer"),
        ([1, AUTHOR, 1, b"\x00" * 32, 1, post()], "first message must have no prev"),
        ([1, AUTHOR, 2, None, 1, post()], "prev must be a 32-byte message id"),
        ([1, AUTHOR, 2, b"\x00" * 31, 1, post()], "prev must be a 32-byte message id"),
        ([1, AUTHOR, 2, "x" * 32, 1, post()], "prev must be a 32-byte message id"),
        ([1, AUTHOR, 1, None, 1.5, post()], "timestamp must be an integer"),
        ([1, AUTHOR, 1, None, "now", post()], "timestamp must be an integer"),
        ([1, AUTHOR, 1, None, None, post()], "timestamp must be an integer"),
        ([1, AUTHOR, 1, None, 1, 42], "content must be a map or bytes"),
        ([1, AUTHOR, 1, None, 1, "text"], "content must be a map or bytes"),
        ([1, AUTHOR, 1, None, 1, [post()]], "content must be a map or bytes"),
        ([1, AUTHOR, 1, None, 1, {"text": "no type"}], "content type must be a string"),
        ([1, AUTHOR, 1, None, 1, {"type": ""}], "content type must be a string"),
        ([1, AUTHOR, 1, None, 1, {"type": "x" * 33}], "content type must be a string"),
        ([1, AUTHOR, 1, None, 1, {"type": 7}], "content type must be a string"),
        ([2, AUTHOR, 1, None, 1, post()], "unknown format version"),
        ([True, AUTHOR, 1, None, 1, post()], "unknown format version"),
        ([1, AUTHOR, 1, None, 1], "expected an array of 6 fields"),
        ([1, AUTHOR, 1, None, 1, post(), 0], "expected an array of 6 fields"),
        ({"seq": 1}, "expected an array of 6 fields"),
    ],
)
def test_bad_field_types_are_rejected(body: list[Any], reason: str) -> None:
    raw = sign_body(ALICE, body)
    with pytest.raises(InvalidMessage, match=reason):
        validate_next(None, raw)


def test_type_of_exactly_32_characters_is_allowed() -> None:
    message = create_message(ALICE, 1, None, 1, {"type": "x" * 32})
    content = validate_next(None, message.raw).content
    assert isinstance(content, dict) and content["type"] == "x" * 32


@pytest.mark.parametrize(
    "content",
    [
        {"type": "post", b"text": "bytes key"},
        {"type": "post", 1: "int key"},
        {"type": "post", "nested": {"deep": [{b"k": 1}]}},
        {"type": "post", "nested": [[[{2: 3}]]]},
    ],
)
def test_non_str_map_keys_are_rejected(content: dict[Any, Any]) -> None:
    raw = sign_body(ALICE, [1, AUTHOR, 1, None, 1, content])
    with pytest.raises(InvalidMessage, match=r"(not a string|not a valid msgpack)"):
        validate_next(None, raw)


def test_ext_types_are_rejected() -> None:
    raw = sign_body(ALICE, [1, AUTHOR, 1, None, 1, {"type": "x", "e": msgpack.ExtType(5, b"z")}])
    with pytest.raises(InvalidMessage, match="extension"):
        validate_next(None, raw)


def test_trailing_bytes_inside_signed_part_are_rejected() -> None:
    signed = msgpack.packb([1, AUTHOR, 1, None, 1, post()], use_bin_type=True) + b"\x00"
    raw = signed + ALICE.sign(MSG_PREFIX + signed).signature
    with pytest.raises(InvalidMessage, match="not a valid msgpack"):
        validate_next(None, raw)


def test_invalid_utf8_string_is_rejected() -> None:
    signed = msgpack.packb([1, AUTHOR, 1, None, 1, {"type": "x"}], use_bin_type=True)
    signed = signed[:-1] + b"\xff"  # the last byte is the type's single character
    raw = signed + ALICE.sign(MSG_PREFIX + signed).signature
    with pytest.raises(InvalidMessage, match="not a valid msgpack"):
        validate_next(None, raw)


def nested_message(depth: int) -> bytes:
    """A first message whose content holds ``depth`` nested one-element arrays."""
    pack = msgpack.packb
    signed: bytes = (
        b"\x96"
        + b"".join(pack(x, use_bin_type=True) for x in (1, AUTHOR, 1, None, 1))
        + b"\x82"
        + pack("type")
        + pack("x")
        + pack("n")
        + b"\x91" * depth
        + pack("leaf")
    )
    return signed + ALICE.sign(MSG_PREFIX + signed).signature


def test_deep_nesting_is_walked_without_recursion() -> None:
    message = validate_next(None, nested_message(900))
    assert isinstance(message.content, dict) and message.content["type"] == "x"


def test_nesting_beyond_the_decoder_limit_is_rejected() -> None:
    with pytest.raises(InvalidMessage, match="not a valid msgpack"):
        validate_next(None, nested_message(5000))


def test_too_short_and_non_bytes_are_rejected() -> None:
    with pytest.raises(InvalidMessage, match="too short"):
        decode_message(b"\x00" * 64)
    with pytest.raises(InvalidMessage, match="must be bytes"):
        decode_message("text")  # type: ignore[arg-type]


def test_create_message_refuses_what_receivers_would_refuse() -> None:
    with pytest.raises(InvalidMessage, match="content type"):
        create_message(ALICE, 1, None, 1, {"text": "no type"})
    with pytest.raises(InvalidMessage, match="prev"):
        create_message(ALICE, 2, None, 1, post())
    with pytest.raises(InvalidMessage, match="cannot be encoded"):
        create_message(ALICE, 1, None, 1, {"type": "x", "bad": object()})


# ---------------------------------------------------------------- batch runs


def test_run_validates_a_whole_chain() -> None:
    messages = chain(ALICE, 20)
    assert validate_run(None, [m.raw for m in messages]) == messages
    assert validate_run(head_of(messages[9]), [m.raw for m in messages[10:]]) == messages[10:]
    assert validate_run(None, []) == []


def test_run_catches_a_broken_link_in_the_middle() -> None:
    messages = chain(ALICE, 10)
    stray = create_message(ALICE, 6, b"\x09" * 32, 1, post("stray"))
    raws = [m.raw for m in messages]
    raws[5] = stray.raw
    with pytest.raises(InvalidMessage) as info:
        validate_run(None, raws)
    assert info.value.seq == 6 and "prev does not match" in info.value.reason


def test_run_catches_a_bad_last_signature() -> None:
    messages = chain(ALICE, 10)
    raws = [m.raw for m in messages]
    raws[-1] = raws[-1][:-1] + bytes([raws[-1][-1] ^ 0x40])
    with pytest.raises(InvalidMessage) as info:
        validate_run(None, raws)
    assert info.value.seq == 10 and info.value.reason == "bad signature"


def test_run_catches_a_gap() -> None:
    messages = chain(ALICE, 5)
    with pytest.raises(InvalidMessage, match="expected seq 3"):
        validate_run(None, [messages[0].raw, messages[1].raw, messages[3].raw])


def test_run_of_two_feeds_is_rejected() -> None:
    alice = chain(ALICE, 2)
    bob = chain(BOB, 2)
    with pytest.raises(InvalidMessage, match="does not belong to the run"):
        validate_run(None, [alice[0].raw, bob[1].raw])


def test_a_later_signature_does_not_vouch_for_an_unsigned_message() -> None:
    # Message 2 is validly signed and links to message 1, whose signature is bad: the
    # run is refused at 1, exactly as message 1 alone is (one verdict per message).
    first = create_message(ALICE, 1, None, 1, post())
    bad_first = first.raw[:-1] + bytes([first.raw[-1] ^ 1])
    bad_id = hashlib.blake2b(bad_first, digest_size=32).digest()
    second = create_message(ALICE, 2, bad_id, 2, post())
    with pytest.raises(InvalidMessage) as info:
        validate_run(None, [bad_first, second.raw])
    assert (info.value.seq, info.value.reason) == (1, "bad signature")
    with pytest.raises(InvalidMessage, match="bad signature"):
        validate_next(None, bad_first)


# ---------------------------------------------------------------- fuzzing

VALID = chain(ALICE, 3)
HEADS = [None, head_of(VALID[0]), head_of(VALID[1])]
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(data=st.binary(max_size=600), which=st.integers(0, 2))
def test_random_bytes_never_validate(data: bytes, which: int) -> None:
    with pytest.raises(InvalidMessage):
        validate_next(HEADS[which], data)


@FUZZ
@given(
    which=st.integers(0, 2),
    edits=st.lists(
        st.tuples(
            st.sampled_from(["flip", "insert", "delete"]), st.integers(0), st.integers(1, 255)
        ),
        min_size=1,
        max_size=4,
    ),
)
def test_mutated_messages_never_validate(which: int, edits: list[tuple[str, int, int]]) -> None:
    original = VALID[which].raw
    data = bytearray(original)
    for op, position, value in edits:
        if op == "flip" and data:
            data[position % len(data)] ^= value
        elif op == "insert":
            data.insert(position % (len(data) + 1), value)
        elif op == "delete" and data:
            del data[position % len(data)]
    mutated = bytes(data)
    if mutated == original:
        return  # two edits cancelled out
    with pytest.raises(InvalidMessage):
        validate_next(HEADS[which], mutated)
    with pytest.raises(InvalidMessage):
        validate_run(HEADS[which], [mutated])


@FUZZ
@given(
    body=st.recursive(
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats()
        | st.text(max_size=8)
        | st.binary(max_size=40),
        lambda inner: (
            st.lists(inner, max_size=6)
            | st.dictionaries(
                st.text(max_size=4) | st.binary(max_size=4) | st.integers(), inner, max_size=4
            )
        ),
        max_leaves=20,
    )
)
def test_signed_random_structures_only_raise_invalid_message(body: Any) -> None:
    try:
        raw = sign_body(ALICE, body)
    except (TypeError, ValueError, OverflowError):
        return  # msgpack cannot encode it (e.g. int out of range): nothing to receive
    try:
        message = validate_next(None, raw)
    except InvalidMessage:
        return
    # Anything accepted must truly be a well-formed first message by Alice.
    assert message.author == AUTHOR and message.seq == 1 and message.prev is None
    assert isinstance(message.content, bytes) or isinstance(message.content.get("type"), str)
