"""A deterministic in-memory stand-in for chat.Node, for snapshot tests only.

Snapshots need pixels that never move: fixed keys, fixed timestamps and network figures
(an eager link, a lazy link, a peer backing off) that a live node on loopback cannot
hold still. Functional tests use the real Node; this fake implements the same
`ui.port.ChatNode` protocol and keeps a log of calls.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field

from chat.doctor import Finding
from chat.errors import NodeError
from chat.views import (
    CONVERSATION_PREFIX,
    ChannelInfo,
    ConversationInfo,
    Delivery,
    FeedTree,
    Health,
    HistorySetting,
    LinkView,
    NodeEvent,
    OlderHistory,
    PeerView,
    Relation,
    SearchHit,
    SyncProgress,
    TimelineEntry,
    conversation_people,
    conversation_view,
)

BASE_TIME_MS = 1_795_000_000_000  # a fixed instant (Nov 2026), UTC


def key_from_seed(seed: str) -> bytes:
    """A fixed 32-byte key for a name."""
    return hashlib.sha256(seed.encode()).digest()


@dataclass(frozen=True)
class FakeWhisper:
    channel: str
    text: str
    own: bool = False


@dataclass
class FakeNearby:
    """Presence, typing and whispers held still (the port's `Nearby`)."""

    whispers: list[FakeWhisper] = field(default_factory=list)
    typing: dict[str, list[str]] = field(default_factory=dict)  # channel -> names
    here: dict[str, list[str]] = field(default_factory=dict)  # channel -> names
    looking_at: str = ""
    away: bool = False
    typed: list[str] = field(default_factory=list)

    def whisper(self, channel: str, text: str, hops: int | None = None) -> FakeWhisper:
        mine = FakeWhisper(channel, text, own=True)
        self.whispers.append(mine)
        return mine

    def typing_in(self, channel: str) -> None:
        self.typed.append(channel)

    def set_here(self, channel: str) -> None:
        self.looking_at = channel

    def set_away(self, away: bool) -> None:
        self.away = away

    def typing_names(self, channel: str) -> list[str]:
        return self.typing.get(channel, [])

    def here_now(self, channel: str) -> list[str]:
        you = ["you"] if channel == self.looking_at else []
        return you + self.here.get(channel, [])

    def whispers_in(self, channel: str) -> list[FakeWhisper]:
        return [w for w in self.whispers if w.channel == channel]


class FakeNode:
    """Timeline, channels, names, peers and links held in memory; no I/O, no clock."""

    def __init__(self, me: str = "me") -> None:
        self._feed_id = key_from_seed(me)
        self.names: dict[bytes, str] = {self._feed_id: me}
        self.posts: list[TimelineEntry] = []
        self.read: dict[str, int] = {}
        self.parted: set[str] = set()
        self.calls: list[tuple[str, object]] = []
        self.peer_views: list[PeerView] = []
        self.link_views: list[LinkView] = []
        self.trees: list[FeedTree] = []
        self.progress = SyncProgress(have=0, known=0, feeds=1)
        self.deliveries: dict[bytes, Delivery] = {}
        self.listeners: list[Callable[[NodeEvent], None]] = []
        self.next_time = BASE_TIME_MS
        self.fail_connect: str | None = None
        self.ephemeral = FakeNearby()
        self.older = OlderHistory(missing=False, asking=0, unavailable=False)
        self.history: dict[bytes, int | None] = {}  # per feed settings; default 1000

    @property
    def feed_id(self) -> bytes:
        return self._feed_id

    @property
    def ref(self) -> str:
        return "@" + self._feed_id.hex()[:8] + ".ed25519"

    @property
    def address(self) -> str | None:
        return None

    def add_person(self, name: str) -> bytes:
        key = key_from_seed(name)
        self.names[key] = name
        return key

    def add_post(
        self,
        author: bytes,
        text: str,
        channel: str = "general",
        *,
        minutes: float = 0,
        reply_to: bytes | None = None,
        mentions: tuple[bytes, ...] = (),
    ) -> TimelineEntry:
        seq = 1 + sum(1 for p in self.posts if p.author == author)
        entry = TimelineEntry(
            msg_id=hashlib.sha256(author + seq.to_bytes(4, "big")).digest(),
            author=author,
            seq=seq,
            timestamp=BASE_TIME_MS + int(minutes * 60_000),
            channel=channel,
            text=text,
            author_name=self._display(author),
            name_collision=self._collides(author),
            reply_to=reply_to,
            mentions=mentions,
        )
        self.posts.append(entry)
        return entry

    def _collides(self, author: bytes) -> bool:
        name = self.names.get(author, "")
        return sum(1 for n in self.names.values() if n == name) > 1

    def _display(self, author: bytes) -> str:
        name = self.names.get(author, "anon")
        return f"{name}~{author.hex()[:4]}" if self._collides(author) else name

    def emit(self, event: NodeEvent) -> None:
        for listener in list(self.listeners):
            listener(event)

    # -- chat
    async def post(self, text: str, channel: str, reply_to: bytes | None = None) -> TimelineEntry:
        self.calls.append(("post", (text, channel, reply_to)))
        last = max((p.timestamp for p in self.posts), default=BASE_TIME_MS)
        minutes = (last - BASE_TIME_MS) / 60_000 + 1
        return self.add_post(self._feed_id, text, channel, minutes=minutes, reply_to=reply_to)

    async def set_name(self, name: str) -> None:
        self.calls.append(("set_name", name))
        self.names[self._feed_id] = name

    async def follow(self, feed: bytes) -> None:
        self.calls.append(("follow", feed))

    async def unfollow(self, feed: bytes) -> None:
        self.calls.append(("unfollow", feed))

    async def block(self, feed: bytes) -> None:
        self.calls.append(("block", feed))

    async def unblock(self, feed: bytes) -> None:
        self.calls.append(("unblock", feed))

    async def send_private(self, recipients: list[bytes], text: str) -> None:
        self.calls.append(("send_private", (tuple(recipients), text)))

    async def timeline(
        self, channel: str, before: int | None = None, limit: int = 100
    ) -> list[TimelineEntry]:
        rows = [p for p in self.posts if p.channel == channel]
        rows.sort(key=lambda p: (p.timestamp, p.author, p.seq))
        if before is not None:
            rows = [p for p in rows if p.timestamp < before]
        return rows[-limit:]

    async def private_timeline(self, limit: int = 500) -> list[TimelineEntry]:
        return [p for p in self.posts if p.private][-limit:]

    async def channels(self) -> list[ChannelInfo]:
        names = sorted({p.channel for p in self.posts if not p.private} - self.parted)
        out = []
        for name in names:
            rows = [p for p in self.posts if p.channel == name and not p.private]
            unread = len(rows) - self.read.get(name, 0)
            out.append(ChannelInfo(name, unread, max(p.timestamp for p in rows)))
        return out

    async def mark_read(self, view: str) -> None:
        self.read[view] = len(self._view(view))

    async def part_channel(self, channel: str) -> None:
        self.parted.add(channel)

    async def join_channel(self, channel: str) -> None:
        self.parted.discard(channel)

    def _view(self, view: str) -> list[TimelineEntry]:
        if view.startswith(CONVERSATION_PREFIX):
            rows = [p for p in self.posts if p.private and self._conversation(p) == view]
        else:
            rows = [p for p in self.posts if not p.private and p.channel == view]
        return sorted(rows, key=lambda p: (p.timestamp, p.author, p.seq))

    def _conversation(self, entry: TimelineEntry) -> str:
        return conversation_view({entry.author, *entry.recipients} - {self._feed_id})

    def add_private(
        self, author: bytes, text: str, recipients: tuple[bytes, ...], *, minutes: float = 0
    ) -> TimelineEntry:
        seq = 1 + sum(1 for p in self.posts if p.author == author)
        entry = TimelineEntry(
            msg_id=hashlib.sha256(author + seq.to_bytes(4, "big")).digest(),
            author=author,
            seq=seq,
            timestamp=BASE_TIME_MS + int(minutes * 60_000),
            channel="private",
            text=text,
            author_name=self._display(author),
            private=True,
            recipients=recipients,
        )
        self.posts.append(entry)
        return entry

    async def conversations(self) -> list[ConversationInfo]:
        views = sorted({self._conversation(p) for p in self.posts if p.private})
        out = []
        for view in views:
            rows = self._view(view)
            people = conversation_people(view)
            title = ", ".join(sorted(self._display(k) for k in people))
            unread = sum(1 for p in rows[self.read.get(view, 0) :] if p.author != self._feed_id)
            out.append(ConversationInfo(view, people, title, unread, rows[-1].timestamp))
        return out

    async def conversation(
        self, view: str, before: int | None = None, limit: int = 100
    ) -> list[TimelineEntry]:
        rows = [p for p in self._view(view) if before is None or p.timestamp < before]
        return rows[-limit:]

    async def relation(self, feed: bytes) -> Relation:
        return Relation(we_follow=False, we_block=False, they_follow_us=False)

    async def search(self, text: str, limit: int = 50) -> list[SearchHit]:
        words = text.lower().split()
        found = [p for p in self.posts if words and all(w in p.text.lower() for w in words)]
        found.sort(key=lambda p: p.timestamp, reverse=True)
        return [
            SearchHit(p, self._conversation(p) if p.private else p.channel) for p in found[:limit]
        ]

    def resolve_name(self, name_or_ref: str) -> bytes:
        wanted = name_or_ref.lstrip("@")
        found = [k for k, n in self.names.items() if n == wanted]
        if not found:
            raise NodeError(f"nobody called '{wanted}' is known here")
        if len(found) > 1:
            raise NodeError(f"'{wanted}' is ambiguous: {len(found)} people use that name")
        return found[0]

    def display_name(self, feed: bytes) -> str:
        return self._display(feed)

    def known_names(self) -> list[str]:
        return sorted(set(self.names.values()))

    # -- network
    async def connect(self, address: str, *, follow: bool = False) -> None:
        self.calls.append(("connect", address) if not follow else ("connect+follow", address))
        if self.fail_connect:
            raise NodeError(self.fail_connect)

    async def join(self, invite: str) -> None:
        self.calls.append(("join", invite))
        raise NodeError("invite rejected: this invite is unknown or used up")

    async def doctor(self) -> list[Finding]:
        self.calls.append(("doctor", None))
        return []

    def peers(self) -> list[PeerView]:
        return list(self.peer_views)

    def links(self) -> list[LinkView]:
        return list(self.link_views)

    def feed_tree(self, feed: bytes) -> FeedTree:
        return next(t for t in self.trees if t.feed == feed)

    def feeds(self) -> list[FeedTree]:
        return list(self.trees)

    async def provenance(self, msg_id: bytes) -> Delivery | None:
        return self.deliveries.get(msg_id)

    def sync_progress(self) -> SyncProgress:
        return self.progress

    def subscribe(self, callback: Callable[[NodeEvent], None]) -> Callable[[], None]:
        self.listeners.append(callback)
        return lambda: self.listeners.remove(callback)

    def older_history(self) -> OlderHistory:
        return self.older

    def fetch_older(self, feed: bytes | None = None, count: int = 100) -> None:
        self.calls.append(("fetch_older", feed))

    async def set_history(self, feed: bytes, keep: int | None) -> None:
        self.history[feed] = keep

    async def reset_history(self, feed: bytes) -> None:
        self.history.pop(feed, None)

    def history_setting(self, feed: bytes) -> HistorySetting:
        own = feed in self.history
        return HistorySetting(feed, self.history.get(feed, 1000), own, 0, 0)

    def history_settings(self) -> tuple[int | None, list[HistorySetting]]:
        return 1000, [self.history_setting(feed) for feed in self.history]


def scene() -> FakeNode:
    """The fixed scene every snapshot starts from: a conversation and a small network."""
    node = FakeNode("me")
    me = node.feed_id
    alice = node.add_person("alice")
    bob = node.add_person("bob")
    carol = node.add_person("carol")
    mallory = node.add_person("carol2")
    node.names[mallory] = "carol"  # a second "carol": the UI must flag the collision
    first = node.add_post(alice, "morning all! the pub is back up", minutes=0)
    node.add_post(bob, "nice, replication looks healthy again", minutes=1)
    node.add_post(me, "thanks alice", minutes=2, reply_to=first.msg_id)
    node.add_post(carol, "@me can you check the lazy links?", minutes=3, mentions=(me,))
    node.add_post(mallory, "hi, I am the real carol", minutes=4)
    node.add_private(bob, "are you coming to the meetup tonight?", (me,), minutes=4.5)
    node.add_private(me, "yes, after nine", (bob,), minutes=4.7)
    node.add_private(carol, "can you review my pub invite patch?", (me, alice), minutes=4.8)
    node.add_post(alice, "off-topic link dump", channel="random", minutes=5)
    node.add_post(bob, "more links", channel="random", minutes=6)
    node.read["general"] = len(node._view("general"))
    node.read["random"] = 0
    node.peer_views = [
        PeerView(
            alice,
            "alice",
            alice.hex()[:6],
            "lan",
            "connected",
            "",
            "net:127.0.0.1:7708",
            rtt_ms=1.4,
            direction="out",
        ),
        PeerView(
            bob, "bob", bob.hex()[:6], "pub", "connected", "", None, rtt_ms=23.0, direction="in"
        ),
        PeerView(
            carol,
            "carol",
            carol.hex()[:6],
            "friend",
            "backoff",
            "connection refused; retry in 16s (3 failures)",
            None,
        ),
    ]
    node.link_views = [
        LinkView(
            alice,
            "alice",
            eager_in=3,
            eager_out=1,
            lazy=1,
            we_are_behind=0,
            they_are_behind=0,
            msgs_per_s_in=12.5,
            bytes_per_s_in=4200.0,
            rtt_ms=1.4,
        ),
        LinkView(
            bob,
            "bob",
            eager_in=0,
            eager_out=2,
            lazy=3,
            we_are_behind=1520,
            they_are_behind=4,
            msgs_per_s_out=3.0,
            bytes_per_s_out=900.0,
            rtt_ms=23.0,
            health=Health.CATCHING_UP,
        ),
    ]
    node.trees = [
        FeedTree(alice, "alice", 42, alice, (bob,), ()),
        FeedTree(carol, "carol", 17, alice, (), (bob,)),
        FeedTree(me, "me", 9, None, (alice, bob), ()),
    ]
    node.progress = SyncProgress(
        have=4480, known=6000, feeds=5, health=Health.CATCHING_UP, held=4480
    )
    node.deliveries[first.msg_id] = Delivery(first.msg_id, alice, "alice", BASE_TIME_MS + 2000)
    return node
