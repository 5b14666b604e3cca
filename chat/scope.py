"""Scope: which feeds we replicate and who may have what (the share/fetch hooks).

Our own feed, those within `config.hops` follows, and peers met on the LAN when
`auto_follow_lan` is on; never blocked or forked ones. It is recomputed (`async_refresh`)
whenever a contact message arrives, and the replication manager is told the difference.
"""

from __future__ import annotations

from typing import Any

from chat.config import Config
from net.policy import Access, Audience, follows_of, link_access, may_share, mutuals_of
from net.replication import ReplicationManager
from store.db import Store


class Scope:
    """The wanted feeds and the block/follow facts the hooks read. Load, then `bind`."""

    def __init__(self, store: Store, feed_id: bytes, config: Config) -> None:
        self.store = store
        self.feed_id = feed_id
        self.config = config
        self.blocked: set[bytes] = set()
        self.forked: set[bytes] = set()
        self.wanted: set[bytes] = set()
        self.lan_follows: set[bytes] = set()
        self.follows: set[bytes] = set()
        self.mutuals: set[bytes] = set()
        self.dirty = False  # a contact changed: recompute on the next refresh
        self._manager: ReplicationManager | None = None

    async def async_load(self) -> None:
        """Read blocks, forks, follows and the wanted feeds from the store."""
        self.blocked = await self.store.blocks(self.feed_id)
        self.forked = await self.store.forked_feeds()
        self.wanted = await self._async_wanted()
        self.follows, self.mutuals = await self._async_access()

    def bind(self, manager: ReplicationManager) -> None:
        """The manager to tell about changes (it is built from `wanted` and `shareable`)."""
        self._manager = manager
        for feed in self.blocked:
            manager.block(feed)

    def follow_lan(self, key: bytes) -> bool:
        """Replicate a LAN peer's feed; False if it already was."""
        if key in self.lan_follows:
            return False
        self.lan_follows.add(key)
        self.dirty = True
        return True

    def block(self, feed: bytes) -> None:
        self.blocked.add(feed)
        if self._manager is not None:
            self._manager.block(feed)

    def unblock(self, feed: bytes) -> None:
        self.blocked.discard(feed)

    async def _async_wanted(self) -> set[bytes]:
        hops = await self.store.hops(self.feed_id, self.config.hops)
        wanted = set(hops) | self.lan_follows | {self.feed_id}
        return wanted - self.blocked - self.forked

    async def async_refresh(self) -> None:
        """If dirty: re-read the facts and tell the manager which feeds came and went."""
        manager = self._manager
        if not self.dirty or manager is None:
            return
        self.dirty = False
        self.blocked = await self.store.blocks(self.feed_id)
        self.forked = await self.store.forked_feeds()
        told_before = self._told_peers()
        self.follows, self.mutuals = await self._async_access()
        if self._told_peers() != told_before and self.feed_id in self.wanted:
            # Who may have our own feed changed (config.tell): offer it again so peers
            # that were answered -1 learn it is theirs now (and the others lose it).
            manager.unwant(self.feed_id)
            manager.want(self.feed_id)
        wanted = await self._async_wanted()
        for feed in wanted - self.wanted:
            manager.want(feed)
        for feed in self.wanted - wanted:
            if feed in self.blocked:
                manager.block(feed)
            else:
                manager.unwant(feed)
        self.wanted = wanted

    async def _async_access(self) -> tuple[set[bytes], set[bytes]]:
        """The keys we follow and our mutual follows (for `config.tell`)."""
        graph: dict[bytes, set[bytes]] = {}
        for edge in await self.store.contacts():
            if edge.following:
                graph.setdefault(edge.author, set()).add(edge.contact)
        return follows_of(self.feed_id, graph), mutuals_of(self.feed_id, graph)

    def _told_peers(self) -> frozenset[bytes]:
        if self.config.tell is Audience.ANYBODY:
            return frozenset()
        return frozenset(self.mutuals if self.config.tell is Audience.MUTUALS else self.follows)

    def may_connect(self, key: bytes) -> bool:
        """Who may complete a handshake with us: never a blocked key (nor ourselves).

        `hear` and `tell` are applied once the link is up (`access`), so that a peer
        they turn away is told why in a bye instead of a silent handshake refusal.
        """
        return key not in self.blocked and key != self.feed_id

    def access(self, key: bytes) -> Access:
        """Our `hear` / `tell` verdict on a peer, the same whichever side dialled."""
        return link_access(
            key,
            hear=self.config.hear,
            tell=self.config.tell,
            follows=self.follows,
            mutuals=self.mutuals,
            blocks=self.blocked,
        )

    def shareable(self, peer: Any, feed: bytes) -> bool:
        """The EBT core's hook: blocked keys get nothing, our own feed follows `tell`,
        other feeds are exchanged only with a peer we `hear` (a feed we answer -1 for
        is neither sent nor fetched on that link)."""
        if not isinstance(peer, bytes):
            return True
        if feed != self.feed_id and not self.access(peer).hear:
            return False
        return may_share(
            peer,
            feed,
            own=self.feed_id,
            tell=self.config.tell,
            follows=self.follows,
            mutuals=self.mutuals,
            blocks=self.blocked,
        )
