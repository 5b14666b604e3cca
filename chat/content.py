"""Private boxes: sealing content to a few feeds and opening the boxes sealed to us.

The public content rules (types, builders, the one parser, `visible`) are
store/content.py, shared with the store's indexer; they are re-exported here so the
chat layer has one place to import content from.

Private content is bytes: a box sealed to at most ``MAX_RECIPIENTS`` feeds, the author
included. Layout (docs/protocol.md, "Private messages")::

    version (1 byte, = 1) | nonce (24) | slot * n | secretbox(msgpack(inner), key, nonce)
    slot = SealedBox(recipient curve25519 key).encrypt(key (32) | n (1))   # 81 bytes

A reader tries at most ``MAX_RECIPIENTS`` slots with its own curve25519 key; the one
that opens gives the body key and the slot count, hence where the body starts. The inner
content is an ordinary content map plus ``recps``, the list of recipient feed ids; a
box whose ``recps`` does not name the outer message's author is refused, so a box copied
into another feed is not shown as written by the copier.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import msgpack
from nacl.exceptions import CryptoError
from nacl.public import PrivateKey, SealedBox
from nacl.secret import SecretBox
from nacl.utils import random as random_bytes

from chat.identity import Identity, curve_public_key
from store.content import (
    DEFAULT_CHANNEL,
    KEY_SIZE,
    MAX_CHANNEL_LENGTH,
    MAX_MENTIONS,
    MAX_NAME_LENGTH,
    MAX_TEXT_BYTES,
    About,
    ChatContent,
    Contact,
    ContentError,
    Post,
    PubAnnouncement,
    about,
    check_key,
    contact,
    is_channel,
    is_name,
    make_post,
    normalize_channel,
    parse_content,
    post,
    pub_announcement,
    visible,
)
from store.message import feed_ref

__all__ = [
    "DEFAULT_CHANNEL",
    "MAX_CHANNEL_LENGTH",
    "MAX_MENTIONS",
    "MAX_NAME_LENGTH",
    "MAX_RECIPIENTS",
    "MAX_TEXT_BYTES",
    "About",
    "ChatContent",
    "Contact",
    "ContentError",
    "Post",
    "PrivateBoxError",
    "PrivateContent",
    "PubAnnouncement",
    "TooManyRecipients",
    "about",
    "contact",
    "is_channel",
    "is_name",
    "make_post",
    "normalize_channel",
    "open_private",
    "parse_content",
    "post",
    "pub_announcement",
    "seal_private",
    "visible",
]

MAX_RECIPIENTS = 8
BOX_VERSION = 1
_NONCE_SIZE = SecretBox.NONCE_SIZE  # 24
_SLOT_PLAIN = KEY_SIZE + 1
_SLOT_SIZE = _SLOT_PLAIN + 48  # SealedBox adds an ephemeral public key (32) and a MAC (16)
_HEADER_SIZE = 1 + _NONCE_SIZE


class TooManyRecipients(ContentError):
    """A private box can be sealed to at most ``MAX_RECIPIENTS`` feeds, the author included."""


class PrivateBoxError(ContentError):
    """A private box addressed to us that cannot be opened (damaged or not a box)."""


# --------------------------------------------------------------------- private boxes


@dataclass(frozen=True, slots=True)
class PrivateContent:
    """An opened private box: the inner content and everyone it was sealed to."""

    content: dict[str, Any]
    recipients: tuple[bytes, ...]


def seal_private(content: Mapping[str, Any], recipients: Sequence[bytes], author: bytes) -> bytes:
    """Seal ``content`` so that only ``recipients`` and ``author`` can read it.

    The author is always added (you can read what you wrote); duplicates count once.
    More than ``MAX_RECIPIENTS`` feeds in total raises ``TooManyRecipients``.
    """
    if not isinstance(content.get("type"), str):
        raise ContentError("private content must be a map with a 'type'")
    if "recps" in content:
        raise ContentError("private content must not set 'recps' itself")
    check_key(author, "the author's feed id")
    feeds = list(dict.fromkeys([author, *(check_key(r, "a recipient") for r in recipients)]))
    if len(feeds) > MAX_RECIPIENTS:
        raise TooManyRecipients(
            f"a private message can go to at most {MAX_RECIPIENTS} people including you; "
            f"this one names {len(feeds)}"
        )
    try:
        curve_keys = [curve_public_key(feed) for feed in feeds]
    except ValueError as exc:
        raise ContentError(f"cannot send privately: {exc}") from exc
    inner = dict(content)
    inner["recps"] = feeds
    try:
        plaintext = msgpack.packb(inner, use_bin_type=True)
    except (TypeError, ValueError, OverflowError) as exc:
        raise ContentError(f"private content cannot be encoded: {exc}") from exc
    key = random_bytes(KEY_SIZE)
    nonce = random_bytes(_NONCE_SIZE)
    header = key + bytes([len(feeds)])
    slots = b"".join(SealedBox(pk).encrypt(header) for pk in curve_keys)
    body = SecretBox(key).encrypt(plaintext, nonce).ciphertext
    return bytes([BOX_VERSION]) + nonce + slots + body


def open_private(box: bytes, identity: Identity, author: bytes) -> PrivateContent | None:
    """Open a private box written by ``author``; None if it is not addressed to us.

    Raises ``PrivateBoxError`` if our slot opens but the rest is damaged or inconsistent
    (a tampered box), so a caller can show "unreadable" rather than nothing.
    """
    if len(box) < _HEADER_SIZE + _SLOT_SIZE + SecretBox.MACBYTES or box[0] != BOX_VERSION:
        return None
    nonce = box[1:_HEADER_SIZE]
    opener = _opener(identity)
    for index in range(MAX_RECIPIENTS):
        start = _HEADER_SIZE + index * _SLOT_SIZE
        slot = box[start : start + _SLOT_SIZE]
        if len(slot) < _SLOT_SIZE:
            return None
        try:
            header = opener.decrypt(slot)
        except CryptoError:
            continue
        return _open_body(box, nonce, header, index, identity, author)
    return None


@functools.lru_cache(maxsize=4)
def _opener(identity: Identity) -> SealedBox[PrivateKey]:
    """The sealed-box opener of an identity (its curve25519 key is derived once, not
    once per private message)."""
    return SealedBox(identity.curve_private_key)


def _open_body(
    box: bytes, nonce: bytes, header: bytes, index: int, identity: Identity, author: bytes
) -> PrivateContent:
    if len(header) != _SLOT_PLAIN:
        raise PrivateBoxError("a private message to you has a damaged key slot")
    key, count = header[:KEY_SIZE], header[KEY_SIZE]
    if not index < count <= MAX_RECIPIENTS:
        raise PrivateBoxError("a private message to you names an impossible recipient count")
    body = box[_HEADER_SIZE + count * _SLOT_SIZE :]
    try:
        plaintext = SecretBox(key).decrypt(body, nonce)
    except CryptoError as exc:
        raise PrivateBoxError("a private message to you was damaged (it fails its check)") from exc
    try:
        inner = msgpack.unpackb(plaintext, raw=False, strict_map_key=True)
    except Exception as exc:  # msgpack raises many types for malformed input
        raise PrivateBoxError("a private message to you does not hold valid content") from exc
    if not isinstance(inner, dict) or not isinstance(inner.get("type"), str):
        raise PrivateBoxError("a private message to you does not hold a content map")
    recps = inner.pop("recps", None)
    if not isinstance(recps, list) or not all(
        isinstance(r, bytes) and len(r) == KEY_SIZE for r in recps
    ):
        raise PrivateBoxError("a private message to you has no valid recipient list")
    if author not in recps:
        raise PrivateBoxError(
            f"a private message in the feed of {feed_ref(author)} was not written by it"
        )
    if identity.feed_id not in recps:
        raise PrivateBoxError("a private message to you does not list you as a recipient")
    return PrivateContent(content=inner, recipients=tuple(recps))
