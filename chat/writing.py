"""Writing to our own feed: posts (with their mentions), names, contacts, private boxes.

The node and ``treechat post`` both write through a `Writer`, so a post records its
mentions whichever way it was written.
"""

from __future__ import annotations

from collections.abc import Callable

from chat.content import Post, about, contact, make_post, seal_private
from chat.errors import NodeError
from chat.identity import Identity
from chat.names import Names
from store.db import Store
from store.message import Content, Message


class Writer:
    """Appends signed messages to our feed; `on_appended` hears of each one."""

    def __init__(
        self,
        store: Store,
        identity: Identity,
        names: Names,
        on_appended: Callable[[Message], None] | None = None,
    ) -> None:
        self.store = store
        self.identity = identity
        self.names = names
        self.on_appended = on_appended

    async def append_own(self, content: Content) -> Message:
        """Sign `content` as our next message, store it and tell `on_appended`."""
        message = await self.store.append_own(self.identity.signing_key, content)
        if self.on_appended is not None:
            self.on_appended(message)
        return message

    async def post(
        self, text: str, channel: str, reply_to: bytes | None = None
    ) -> tuple[Message, Post]:
        """Append a post; `@name` and `@<key>.ed25519` in the text become its `mentions`."""
        content = make_post(text, channel, reply_to, self.names.find_mentions(text))
        message = await self.append_own(content.to_content())
        return message, content

    async def set_name(self, name: str) -> None:
        await self.append_own(about(name))

    async def contact(
        self, feed: bytes, *, following: bool | None = None, blocking: bool | None = None
    ) -> None:
        if feed == self.identity.feed_id:
            raise NodeError("you cannot follow or block yourself")
        await self.append_own(contact(feed, following=following, blocking=blocking))

    async def send_private(self, recipients: list[bytes], text: str) -> None:
        inner = make_post(text, "private").to_content()
        await self.append_own(seal_private(inner, recipients, self.identity.feed_id))
