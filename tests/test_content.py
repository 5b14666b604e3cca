"""Content types: builders validate, parsers accept what builders make, private boxes."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chat.content import (
    MAX_RECIPIENTS,
    MAX_TEXT_BYTES,
    About,
    Contact,
    ContentError,
    Post,
    PrivateBoxError,
    PubAnnouncement,
    TooManyRecipients,
    about,
    contact,
    normalize_channel,
    open_private,
    parse_content,
    post,
    pub_announcement,
    seal_private,
)
from chat.identity import Identity
from store.message import create_message, decode_message

FEED = b"\x11" * 32
MSG_ID = b"\x22" * 32


def people(n: int) -> list[Identity]:
    return [Identity.from_seed(bytes([i + 1]) * 32) for i in range(n)]


# ----------------------------------------------------------------------------- post


def test_post_round_trips_through_a_signed_message() -> None:
    author = people(1)[0]
    content = post("hello", "#Random", reply_to=MSG_ID, mentions=[FEED, FEED])
    message = decode_message(create_message(author.signing_key, 1, None, 1000, content).raw)
    assert isinstance(message.content, dict)
    parsed = parse_content(message.content)
    assert parsed == Post(text="hello", channel="random", reply_to=MSG_ID, mentions=(FEED,))


def test_post_defaults_to_general_and_omits_empty_fields() -> None:
    assert post("hi") == {"type": "post", "text": "hi", "channel": "general"}


@pytest.mark.parametrize("text", ["", "   \n", "x" * (MAX_TEXT_BYTES + 1), "é" * 3001])
def test_post_text_limits(text: str) -> None:
    with pytest.raises(ContentError):
        post(text)


def test_post_text_at_the_limit_is_accepted() -> None:
    assert post("x" * MAX_TEXT_BYTES)["text"] == "x" * MAX_TEXT_BYTES


@pytest.mark.parametrize("channel", ["", "#", "two words", "a" * 33, "-dash", "ta\tb", "über"])
def test_bad_channel_names(channel: str) -> None:
    with pytest.raises(ContentError, match="channel"):
        post("hi", channel)


def test_channel_normalisation() -> None:
    assert normalize_channel(" #Dev-Ops ") == "dev-ops"
    assert normalize_channel("release_1.2") == "release_1.2"


def test_post_rejects_bad_reply_and_mentions() -> None:
    with pytest.raises(ContentError, match="reply_to"):
        post("hi", reply_to=b"short")
    with pytest.raises(ContentError, match="mentioned"):
        post("hi", mentions=[b"short"])
    with pytest.raises(ContentError, match="at most 16"):
        post("hi", mentions=[bytes([i]) * 32 for i in range(17)])


@pytest.mark.parametrize(
    "content",
    [
        {"type": "post", "channel": "general"},
        {"type": "post", "text": 5, "channel": "general"},
        {"type": "post", "text": "hi", "channel": "Not Valid"},
        {"type": "post", "text": "hi", "channel": "general", "reply_to": "abc"},
        {"type": "post", "text": "hi", "channel": "general", "mentions": "x"},
    ],
)
def test_received_bad_posts_are_content_errors(content: dict[str, Any]) -> None:
    with pytest.raises(ContentError):
        parse_content(content)


# -------------------------------------------------------------------- about, contact, pub


def test_about() -> None:
    assert about("  Ada ") == {"type": "about", "name": "Ada"}
    assert parse_content(about("Ada")) == About("Ada")
    for bad in ["", "   ", "x" * 33, "line\nbreak", "bell\x07"]:
        with pytest.raises(ContentError):
            about(bad)
    with pytest.raises(ContentError):
        parse_content({"type": "about", "name": " padded"})


def test_contact() -> None:
    content = contact(FEED, following=True)
    assert content == {"type": "contact", "contact": FEED, "following": True}
    assert parse_content(content) == Contact(FEED, following=True)
    assert parse_content(contact(FEED, blocking=True, following=False)) == Contact(
        FEED, following=False, blocking=True
    )
    with pytest.raises(ContentError, match="following or blocking"):
        contact(FEED)
    with pytest.raises(ContentError, match="32 bytes"):
        contact(b"x", following=True)
    with pytest.raises(ContentError, match="following"):
        parse_content({"type": "contact", "contact": FEED, "following": "yes"})


def test_pub() -> None:
    content = pub_announcement("pub.example.org", 7708, FEED)
    assert parse_content(content) == PubAnnouncement("pub.example.org", 7708, FEED)
    with pytest.raises(ContentError, match="port"):
        pub_announcement("h", 0, FEED)
    with pytest.raises(ContentError, match="port"):
        parse_content({"type": "pub", "host": "h", "port": True, "key": FEED})
    with pytest.raises(ContentError, match="host"):
        pub_announcement("bad host", 1, FEED)
    with pytest.raises(ContentError, match="key"):
        pub_announcement("h", 1, b"k")


def test_unknown_types_and_private_bytes_are_not_shown() -> None:
    assert parse_content({"type": "vote", "value": 1}) is None
    assert parse_content(b"\x01boxed") is None


# ----------------------------------------------------------------------- private boxes


@pytest.mark.parametrize("count", range(1, MAX_RECIPIENTS + 1))
def test_every_recipient_can_read_and_outsiders_cannot(count: int) -> None:
    group = people(count + 1)
    author, others, outsider = group[0], group[1:count], group[count]
    box = seal_private(post("secret"), [o.feed_id for o in others], author.feed_id)
    expected = {author.feed_id, *(o.feed_id for o in others)}
    for reader in [author, *others]:
        opened = open_private(box, reader, author.feed_id)
        assert opened is not None
        assert opened.content == post("secret")
        assert set(opened.recipients) == expected
    assert open_private(box, outsider, author.feed_id) is None


def test_the_ninth_recipient_is_refused() -> None:
    group = people(MAX_RECIPIENTS + 1)
    author = group[0]
    eight_others = [p.feed_id for p in group[1:]]
    with pytest.raises(TooManyRecipients, match="at most 8 people including you"):
        seal_private(post("x"), eight_others, author.feed_id)
    # seven others plus the author is exactly the limit; naming the author again is free
    seal_private(post("x"), [*eight_others[:7], author.feed_id], author.feed_id)


def test_box_fits_in_a_signed_message() -> None:
    group = people(MAX_RECIPIENTS)
    author = group[0]
    box = seal_private(post("y" * MAX_TEXT_BYTES), [p.feed_id for p in group[1:]], author.feed_id)
    message = create_message(author.signing_key, 1, None, 0, box)
    assert isinstance(message.content, bytes)


def test_each_box_is_different() -> None:
    alice, bob = people(2)
    one = seal_private(post("same"), [bob.feed_id], alice.feed_id)
    two = seal_private(post("same"), [bob.feed_id], alice.feed_id)
    assert one != two


def test_tampered_body_is_a_clear_error() -> None:
    alice, bob = people(2)
    box = bytearray(seal_private(post("hi"), [bob.feed_id], alice.feed_id))
    box[-1] ^= 0x01
    with pytest.raises(PrivateBoxError, match="damaged"):
        open_private(bytes(box), bob, alice.feed_id)


def test_tampered_slot_makes_it_unreadable() -> None:
    alice, bob = people(2)
    box = bytearray(seal_private(post("hi"), [bob.feed_id], alice.feed_id))
    box[30] ^= 0xFF  # inside the first (the author's) slot
    assert open_private(bytes(box), alice, alice.feed_id) is None
    # bob's slot is untouched: he still reads it
    assert open_private(bytes(box), bob, alice.feed_id) is not None


def test_truncated_or_foreign_bytes_are_unreadable() -> None:
    alice, bob = people(2)
    box = seal_private(post("hi"), [bob.feed_id], alice.feed_id)
    assert open_private(box[:40], bob, alice.feed_id) is None
    assert open_private(b"", bob, alice.feed_id) is None
    assert open_private(b"\x02" + box[1:], bob, alice.feed_id) is None


def test_box_copied_into_another_feed_is_refused() -> None:
    alice, bob, mallory = people(3)
    box = seal_private(post("hi"), [bob.feed_id], alice.feed_id)
    with pytest.raises(PrivateBoxError, match="not written by it"):
        open_private(box, bob, mallory.feed_id)


def test_private_content_rules() -> None:
    alice, bob = people(2)
    with pytest.raises(ContentError, match="type"):
        seal_private({"text": "no type"}, [bob.feed_id], alice.feed_id)
    with pytest.raises(ContentError, match="recps"):
        seal_private({"type": "post", "recps": []}, [bob.feed_id], alice.feed_id)
    with pytest.raises(ContentError, match="recipient"):
        seal_private(post("x"), [b"short"], alice.feed_id)


def test_inner_content_is_msgpack_with_recps() -> None:
    # Decrypting by hand shows the documented layout: version, nonce, slots, body.
    from nacl.public import SealedBox
    from nacl.secret import SecretBox

    alice, bob = people(2)
    box = seal_private(post("layout"), [bob.feed_id], alice.feed_id)
    assert box[0] == 1
    nonce, slots = box[1:25], box[25 : 25 + 2 * 81]
    header = SealedBox(bob.curve_private_key).decrypt(slots[81:])
    key, count = header[:32], header[32]
    assert count == 2
    inner = msgpack.unpackb(SecretBox(key).decrypt(box[25 + 2 * 81 :], nonce), raw=False)
    assert inner["recps"] == [alice.feed_id, bob.feed_id]
    assert inner["text"] == "layout"


# ------------------------------------------------------------------ hostile input


_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**64),
    st.text(max_size=40),
    st.binary(max_size=40),
    st.lists(st.binary(min_size=31, max_size=33), max_size=3),
    st.lists(st.text(max_size=3), max_size=3),
)
_FIELDS = [
    "text",
    "channel",
    "reply_to",
    "mentions",
    "name",
    "contact",
    "following",
    "blocking",
    "host",
    "port",
    "key",
]


@given(
    st.fixed_dictionaries(
        {"type": st.sampled_from(["post", "about", "contact", "pub", "other"])},
        optional={key: _values for key in _FIELDS},
    )
)
@settings(max_examples=200, deadline=None)
def test_parse_content_only_ever_raises_content_error(content: dict[str, Any]) -> None:
    try:
        parse_content(content)
    except ContentError:
        pass


_READER = Identity.from_seed(b"r" * 32)


@given(st.binary(max_size=900))
@settings(max_examples=200, deadline=None)
def test_open_private_on_random_bytes_is_none(box: bytes) -> None:
    assert open_private(box, _READER, FEED) is None


@given(st.data())
@settings(max_examples=100, deadline=None)
def test_any_single_byte_flip_never_crashes(data: st.DataObject) -> None:
    alice, bob = people(2)
    box = bytearray(seal_private(post("flip me"), [bob.feed_id], alice.feed_id))
    index = data.draw(st.integers(0, len(box) - 1))
    box[index] ^= data.draw(st.integers(1, 255))
    try:
        opened = open_private(bytes(box), bob, alice.feed_id)
    except PrivateBoxError:
        return
    # only a flip outside bob's slot and the body (e.g. in alice's slot) may still open
    assert opened is None or opened.content == post("flip me")
