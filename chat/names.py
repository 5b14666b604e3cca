"""Names and mentions (pure): who calls themselves what, display names, `@name` lookups."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Mapping

from chat.errors import NodeError
from chat.identity import short_key
from store.content import MAX_MENTIONS, is_name
from store.message import parse_feed_ref

MENTION = re.compile(r"(?<![\w@])@(?:(?P<ref>[A-Za-z0-9+/]{43}=\.ed25519)|(?P<name>\w[\w.-]*))")
"""`@<base64 key>.ed25519` or `@name` in a post's text."""


class Names:
    """The latest `about` name of each feed, and what follows from it."""

    def __init__(self, names: Mapping[bytes, str] | None = None) -> None:
        self._names: dict[bytes, str] = {}
        self.replace(names or {})

    def replace(self, names: Mapping[bytes, str]) -> None:
        """Take the store's names wholesale (after another process wrote to it)."""
        self._names = {feed: name for feed, name in names.items() if is_name(name)}

    def set(self, feed: bytes, name: str) -> None:
        """A new `about` name; one that breaks the name rules is not shown."""
        if is_name(name):
            self._names[feed] = name

    def get(self, feed: bytes) -> str | None:
        return self._names.get(feed)

    def display_name(self, feed: bytes) -> str:
        """The feed's chosen name; with its key suffix only while another feed uses the
        same name (or just the short key if it has none)."""
        name = self._names.get(feed)
        if not name:
            return short_key(feed)
        if self.clash(feed, name):
            return f"{name} ({short_key(feed)})"
        return name

    def clash(self, feed: bytes, name: str) -> bool:
        """Whether another feed than `feed` uses `name`."""
        return any(n == name and f != feed for f, n in self._names.items())

    def known_names(self) -> list[str]:
        return sorted(set(self._names.values()))

    def resolve_name(self, name_or_ref: str) -> bytes:
        """The one feed `name_or_ref` means (a ref, a name or a short key); ValueError else."""
        text = (
            name_or_ref.strip().lstrip("@")
            if not name_or_ref.strip().endswith(".ed25519")
            else name_or_ref.strip()
        )
        if text.endswith(".ed25519") or len(text) == 44:
            with contextlib.suppress(ValueError):
                return parse_feed_ref(text)
        matches = [feed for feed, name in self._names.items() if name == text]
        if not matches:
            matches = [feed for feed in self._names if short_key(feed) == text]
        if len(matches) == 1:
            return matches[0]
        if not matches:
            raise NodeError(f"nobody called {text!r} is known")
        raise NodeError(f"{len(matches)} people are called {text!r}; use their key")

    def find_mentions(self, text: str) -> list[bytes]:
        """The feeds a text names: `@<base64>.ed25519` refs, and `@name` where exactly one
        feed uses that name (an exact match first, then ignoring case)."""
        found: list[bytes] = []
        for match in MENTION.finditer(text):
            ref, word = match.group("ref"), match.group("name")
            if ref is not None:
                with contextlib.suppress(ValueError):
                    found.append(parse_feed_ref("@" + ref))
                continue
            word = word.rstrip(".-")
            exact = [feed for feed, name in self._names.items() if name == word]
            folded = [feed for feed, name in self._names.items() if name.lower() == word.lower()]
            matches = exact or folded
            if len(matches) == 1:
                found.append(matches[0])
        return list(dict.fromkeys(found))[:MAX_MENTIONS]
