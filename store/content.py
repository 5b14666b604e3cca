"""The content rules: public content types, their builders, one validating parser, and
how text from other people is made safe to show.

These are the only rules: the builders (our own input), the store's indexer (names,
channels, contacts, pubs of every stored message), the node's views and the CLI all use
them, so what one of them accepts the others accept too.

Public content is a msgpack map with a ``type``. The types treechat shows:

- ``post {text, channel, reply_to?, mentions?}``: a chat line in a channel;
- ``about {name}``: the author names themself;
- ``contact {contact, following?, blocking?}``: follow / unfollow / block a feed;
- ``pub {host, port, key}``: announces an always-on node.

A feed id in content is 32 bytes, or its ``@<base64>.ed25519`` text. Every other ``type``
is stored and replicated but not shown (``parse_content`` returns None). A known type
with bad fields raises ``ContentError``: for our own input that is a user error to report,
for a received message it means "do not index it, do not show it".

Text that a stranger's feed supplies (post texts, names) goes through ``visible`` once,
where a view is made of it (chat/reading.py, chat/names.py): control characters
(ESC and the rest of C0/C1), format characters (bidi overrides, zero-width) and line or
paragraph separators become U+FFFD; newlines and tabs stay; its length is capped.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from store.errors import UserError
from store.message import parse_feed_ref

KEY_SIZE = 32
ID_SIZE = 32
MAX_TEXT_BYTES = 6000
MAX_NAME_LENGTH = 32
MAX_CHANNEL_LENGTH = 32
MAX_MENTIONS = 16
MAX_HOST_LENGTH = 253
DEFAULT_CHANNEL = "general"
_CHANNEL_RE = re.compile(r"[a-z0-9][a-z0-9_.\-]*")
_HIDDEN = frozenset({"Cc", "Cf", "Zl", "Zp"})
"""Unicode categories a terminal may act on instead of showing (ESC, bidi overrides)."""


class ContentError(ValueError, UserError):
    """Content that does not fit its type (our input, or a received message not shown)."""


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
class PubAnnouncement:
    """An always-on node that can be dialled at ``host:port`` with key ``key``."""

    host: str
    port: int
    key: bytes

    def to_content(self) -> dict[str, Any]:
        return {"type": "pub", "host": self.host, "port": self.port, "key": self.key}


ChatContent = Post | About | Contact | PubAnnouncement


# ------------------------------------------------------------------------ validation


def normalize_channel(channel: str) -> str:
    """User spelling to channel name: drop a leading ``#``, lowercase; then validate."""
    if not isinstance(channel, str):
        raise ContentError("a channel name must be text")
    name = channel.strip()
    name = name.removeprefix("#")
    return check_channel(name.lower())


def check_channel(channel: Any) -> str:
    if not isinstance(channel, str):
        raise ContentError("a channel name must be text")
    if not 1 <= len(channel) <= MAX_CHANNEL_LENGTH or not _CHANNEL_RE.fullmatch(channel):
        raise ContentError(
            f"channel {channel!r} is not a channel name: use 1 to {MAX_CHANNEL_LENGTH} "
            "lowercase letters, digits, '-', '_' or '.', starting with a letter or digit"
        )
    return channel


def check_text(text: Any) -> str:
    if not isinstance(text, str):
        raise ContentError("a post's text must be text")
    if not text.strip():
        raise ContentError("a post cannot be empty")
    size = len(text.encode("utf-8"))
    if size > MAX_TEXT_BYTES:
        raise ContentError(f"a post is at most {MAX_TEXT_BYTES} bytes of text, this is {size}")
    return text


def check_name(name: Any) -> str:
    if not isinstance(name, str):
        raise ContentError("a name must be text")
    if name != name.strip() or not name:
        raise ContentError("a name cannot be empty or start or end with spaces")
    if len(name) > MAX_NAME_LENGTH:
        raise ContentError(f"a name is at most {MAX_NAME_LENGTH} characters, this is {len(name)}")
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") for ch in name):
        raise ContentError("a name cannot contain control characters or line breaks")
    return name


def is_channel(value: object) -> bool:
    """Whether `value` is a channel name by the rules (views drop any other)."""
    return _keeps(check_channel, value)


def is_name(value: object) -> bool:
    """Whether `value` is a display name by the rules (views drop any other)."""
    return _keeps(check_name, value)


def _keeps(check: Callable[[Any], object], value: object) -> bool:
    try:
        check(value)
    except ContentError:
        return False
    return True


def check_key(value: Any, what: str, size: int = KEY_SIZE) -> bytes:
    if not isinstance(value, bytes) or len(value) != size:
        raise ContentError(f"{what} must be {size} bytes")
    return value


def check_feed(value: Any, what: str) -> bytes:
    """A feed id given as 32 bytes or as its ``@<base64>.ed25519`` text."""
    if isinstance(value, str):
        try:
            return parse_feed_ref(value)
        except ValueError:
            raise ContentError(f"{what} must be a feed id") from None
    return check_key(value, what)


def check_flag(value: Any, what: str) -> bool | None:
    if value is not None and not isinstance(value, bool):
        raise ContentError(f"{what} must be true, false or absent")
    return value


def check_host(host: Any) -> str:
    if not isinstance(host, str) or not 1 <= len(host) <= MAX_HOST_LENGTH:
        raise ContentError(f"a pub host must be 1 to {MAX_HOST_LENGTH} characters")
    if any(ch.isspace() or ch in "~/@" for ch in host) or not host.isprintable():
        raise ContentError(f"pub host {host!r} is not a host name or IP address")
    return host


def check_port(port: Any) -> int:
    if type(port) is not int or not 1 <= port <= 65535:
        raise ContentError("a pub port must be a whole number from 1 to 65535")
    return port


def check_mentions(mentions: Any) -> tuple[bytes, ...]:
    if not isinstance(mentions, list | tuple):
        raise ContentError("mentions must be a list of feed ids")
    if len(mentions) > MAX_MENTIONS:
        raise ContentError(f"a post can mention at most {MAX_MENTIONS} feeds")
    return tuple(check_key(m, "a mentioned feed id") for m in mentions)


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
        text=check_text(text),
        channel=normalize_channel(channel),
        reply_to=None if reply_to is None else check_key(reply_to, "reply_to", ID_SIZE),
        mentions=check_mentions(unique),
    )


def about(name: str) -> dict[str, Any]:
    """Content naming ourselves; surrounding spaces are trimmed."""
    return About(check_name(name.strip() if isinstance(name, str) else name)).to_content()


def contact(
    feed: bytes, *, following: bool | None = None, blocking: bool | None = None
) -> dict[str, Any]:
    """Content of a follow/unfollow/block/unblock; at least one flag must be given."""
    if following is None and blocking is None:
        raise ContentError("a contact message must say following or blocking")
    return Contact(
        check_key(feed, "the contact's feed id"),
        check_flag(following, "following"),
        check_flag(blocking, "blocking"),
    ).to_content()


def pub_announcement(host: str, port: int, key: bytes) -> dict[str, Any]:
    """Content announcing an always-on node."""
    return PubAnnouncement(
        check_host(host), check_port(port), check_feed(key, "a pub key")
    ).to_content()


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
            text=check_text(content.get("text")),
            channel=check_channel(channel),
            reply_to=None if reply_to is None else check_key(reply_to, "reply_to", ID_SIZE),
            mentions=check_mentions(content.get("mentions", [])),
        )
    if kind == "about":
        return About(check_name(content.get("name")))
    if kind == "contact":
        following = check_flag(content.get("following"), "following")
        blocking = check_flag(content.get("blocking"), "blocking")
        if following is None and blocking is None:
            raise ContentError("a contact message must say following or blocking")
        return Contact(check_feed(content.get("contact"), "contact"), following, blocking)
    if kind == "pub":
        return PubAnnouncement(
            check_host(content.get("host")),
            check_port(content.get("port")),
            check_feed(content.get("key"), "a pub key"),
        )
    return None


# ---------------------------------------------------------------------------- showing


def visible(text: str, limit: int = MAX_TEXT_BYTES) -> str:
    """`text` safe to print: hidden characters become U+FFFD (newlines and tabs stay),
    at most `limit` characters."""
    if len(text) > limit:
        text = text[: limit - 1] + "\u2026"
    if text.isprintable():
        return text
    return "".join(
        ch if ch in "\n\t" or unicodedata.category(ch) not in _HIDDEN else "\ufffd" for ch in text
    )
