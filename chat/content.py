"""Content types of feed messages: builders, validating parsers and private boxes.

Public content is a msgpack map with a ``type``. The types treechat shows:

- ``post {text, channel, reply_to?, mentions?}``: a chat line in a channel;
- ``about {name}``: the author names themself;
- ``contact {contact, following?, blocking?}``: follow / unfollow / block a feed;
- ``pub {host, port, key}``: announces an always-on node.

Every other ``type`` is stored and replicated but not shown (``parse_content`` returns
None). A known type with bad fields raises ``ContentError``: for our own input that is a
user error to report, for a received message it means "do not show it".

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

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import msgpack
from nacl.exceptions import CryptoError
from nacl.public import SealedBox
from nacl.secret import SecretBox
from nacl.utils import random as random_bytes

from chat.identity import Identity, curve_public_key
from store.message import feed_ref

KEY_SIZE = 32
ID_SIZE = 32
MAX_RECIPIENTS = 8
MAX_TEXT_BYTES = 6000
MAX_NAME_LENGTH = 32
MAX_CHANNEL_LENGTH = 32
MAX_MENTIONS = 16
MAX_HOST_LENGTH = 253
DEFAULT_CHANNEL = "general"

BOX_VERSION = 1
_NONCE_SIZE = SecretBox.NONCE_SIZE  # 24
_SLOT_PLAIN = KEY_SIZE + 1
_SLOT_SIZE = _SLOT_PLAIN + 48  # SealedBox adds an ephemeral public key (32) and a MAC (16)
_HEADER_SIZE = 1 + _NONCE_SIZE
_CHANNEL_RE = re.compile(r"[a-z0-9][a-z0-9_.\-]*")


class ContentError(ValueError):
    """Content that does not fit its type (our input, or a received message not shown)."""


class TooManyRecipients(ContentError):
    """A private box can be sealed to at most ``MAX_RECIPIENTS`` feeds, the author included."""


class PrivateBoxError(ContentError):
    """A private box addressed to us that cannot be opened (damaged or not a box)."""


# ---------------------------------------------------------------------- typed content


@dataclass(frozen=True, slots=True)
class Post:
    """A chat line in a channel, optionally replying to a message and mentioning feeds."""

    text: str
    channel: str = DEFAULT_CHANNEL
    reply_to: bytes | None = None
    mentions: tuple[bytes, ...] = ()

    def to_content(self) -> dict[str, Any]:
        content: dict[str, Any] = {"type": "post", "text": self.text, "channel": self.channel}
        if self.reply_to is not None:
            content["reply_to"] = self.reply_to
        if self.mentions:
            content["mentions"] = list(self.mentions)
        return content


@dataclass(frozen=True, slots=True)
class About:
    """The author's display name."""

    name: str

    def to_content(self) -> dict[str, Any]:
        return {"type": "about", "name": self.name}


@dataclass(frozen=True, slots=True)
class Contact:
    """A follow, unfollow, block or unblock of ``contact``; None = unchanged."""

    contact: bytes
    following: bool | None = None
    blocking: bool | None = None

    def to_content(self) -> dict[str, Any]:
        content: dict[str, Any] = {"type": "contact", "contact": self.contact}
        if self.following is not None:
            content["following"] = self.following
        if self.blocking is not None:
            content["blocking"] = self.blocking
        return content


@dataclass(frozen=True, slots=True)
class Pub:
    """An always-on node that can be dialled at ``host:port`` with key ``key``."""

    host: str
    port: int
    key: bytes

    def to_content(self) -> dict[str, Any]:
        return {"type": "pub", "host": self.host, "port": self.port, "key": self.key}


ChatContent = Post | About | Contact | Pub


# ------------------------------------------------------------------------ validation


def normalize_channel(channel: str) -> str:
    """User spelling to channel name: drop a leading ``#``, lowercase; then validate."""
    if not isinstance(channel, str):
        raise ContentError("a channel name must be text")
    name = channel.strip()
    name = name.removeprefix("#")
    return _check_channel(name.lower())


def _check_channel(channel: Any) -> str:
    if not isinstance(channel, str):
        raise ContentError("a channel name must be text")
    if not 1 <= len(channel) <= MAX_CHANNEL_LENGTH or not _CHANNEL_RE.fullmatch(channel):
        raise ContentError(
            f"channel {channel!r} is not a channel name: use 1 to {MAX_CHANNEL_LENGTH} "
            "lowercase letters, digits, '-', '_' or '.', starting with a letter or digit"
        )
    return channel


def _check_text(text: Any) -> str:
    if not isinstance(text, str):
        raise ContentError("a post's text must be text")
    if not text.strip():
        raise ContentError("a post cannot be empty")
    size = len(text.encode("utf-8"))
    if size > MAX_TEXT_BYTES:
        raise ContentError(f"a post is at most {MAX_TEXT_BYTES} bytes of text, this is {size}")
    return text


def _check_name(name: Any) -> str:
    if not isinstance(name, str):
        raise ContentError("a name must be text")
    if name != name.strip() or not name:
        raise ContentError("a name cannot be empty or start or end with spaces")
    if len(name) > MAX_NAME_LENGTH:
        raise ContentError(f"a name is at most {MAX_NAME_LENGTH} characters, this is {len(name)}")
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") for ch in name):
        raise ContentError("a name cannot contain control characters or line breaks")
    return name


def _check_key(value: Any, what: str, size: int = KEY_SIZE) -> bytes:
    if not isinstance(value, bytes) or len(value) != size:
        raise ContentError(f"{what} must be {size} bytes")
    return value


def _check_flag(value: Any, what: str) -> bool | None:
    if value is not None and not isinstance(value, bool):
        raise ContentError(f"{what} must be true, false or absent")
    return value


def _check_host(host: Any) -> str:
    if not isinstance(host, str) or not 1 <= len(host) <= MAX_HOST_LENGTH:
        raise ContentError(f"a pub host must be 1 to {MAX_HOST_LENGTH} characters")
    if any(ch.isspace() or ch in "~/@" for ch in host) or not host.isprintable():
        raise ContentError(f"pub host {host!r} is not a host name or IP address")
    return host


def _check_port(port: Any) -> int:
    if type(port) is not int or not 1 <= port <= 65535:
        raise ContentError("a pub port must be a whole number from 1 to 65535")
    return port


def _check_mentions(mentions: Any) -> tuple[bytes, ...]:
    if not isinstance(mentions, list | tuple):
        raise ContentError("mentions must be a list of feed ids")
    if len(mentions) > MAX_MENTIONS:
        raise ContentError(f"a post can mention at most {MAX_MENTIONS} feeds")
    return tuple(_check_key(m, "a mentioned feed id") for m in mentions)


# -------------------------------------------------------------------------- builders


def post(
    text: str,
    channel: str = DEFAULT_CHANNEL,
    reply_to: bytes | None = None,
    mentions: Iterable[bytes] = (),
) -> dict[str, Any]:
    """Content of a new post; the channel is normalised (``#General`` -> ``general``)."""
    return make_post(text, channel, reply_to, mentions).to_content()


def make_post(
    text: str,
    channel: str = DEFAULT_CHANNEL,
    reply_to: bytes | None = None,
    mentions: Iterable[bytes] = (),
) -> Post:
    unique = tuple(dict.fromkeys(mentions))
    return Post(
        text=_check_text(text),
        channel=normalize_channel(channel),
        reply_to=None if reply_to is None else _check_key(reply_to, "reply_to", ID_SIZE),
        mentions=_check_mentions(unique),
    )


def about(name: str) -> dict[str, Any]:
    """Content naming ourselves; surrounding spaces are trimmed."""
    return About(_check_name(name.strip() if isinstance(name, str) else name)).to_content()


def contact(
    feed: bytes, *, following: bool | None = None, blocking: bool | None = None
) -> dict[str, Any]:
    """Content of a follow/unfollow/block/unblock; at least one flag must be given."""
    if following is None and blocking is None:
        raise ContentError("a contact message must say following or blocking")
    return Contact(
        _check_key(feed, "the contact's feed id"),
        _check_flag(following, "following"),
        _check_flag(blocking, "blocking"),
    ).to_content()


def pub(host: str, port: int, key: bytes) -> dict[str, Any]:
    """Content announcing an always-on node."""
    return Pub(_check_host(host), _check_port(port), _check_key(key, "a pub key")).to_content()


# --------------------------------------------------------------------------- parsing


def parse_content(content: Mapping[str, Any] | bytes) -> ChatContent | None:
    """The typed form of a public content map; None for types we do not show.

    Private (bytes) content is not parsed here: open it with ``open_private`` first.
    Raises ``ContentError`` when a known type has missing or wrong fields.
    """
    if isinstance(content, bytes):
        return None
    kind = content.get("type")
    if kind == "post":
        channel = content.get("channel", DEFAULT_CHANNEL)
        reply_to = content.get("reply_to")
        return Post(
            text=_check_text(content.get("text")),
            channel=_check_channel(channel),
            reply_to=None if reply_to is None else _check_key(reply_to, "reply_to", ID_SIZE),
            mentions=_check_mentions(content.get("mentions", [])),
        )
    if kind == "about":
        return About(_check_name(content.get("name")))
    if kind == "contact":
        following = _check_flag(content.get("following"), "following")
        blocking = _check_flag(content.get("blocking"), "blocking")
        if following is None and blocking is None:
            raise ContentError("a contact message must say following or blocking")
        return Contact(_check_key(content.get("contact"), "contact"), following, blocking)
    if kind == "pub":
        return Pub(
            _check_host(content.get("host")),
            _check_port(content.get("port")),
            _check_key(content.get("key"), "a pub key"),
        )
    return None


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
    _check_key(author, "the author's feed id")
    feeds = list(dict.fromkeys([author, *(_check_key(r, "a recipient") for r in recipients)]))
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
    opener = SealedBox(identity.curve_private_key)
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
