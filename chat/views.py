"""Plain view records that chat.Node hands to the UI and to `treechat status`."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum


class Health(Enum):
    """How a link or feed looks by threshold (dolphie style): green, yellow, red."""

    IN_SYNC = "in sync"
    CATCHING_UP = "catching up"
    STALLED = "stalled"


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    """One post as the conversation pane shows it."""

    msg_id: bytes
    author: bytes
    seq: int
    timestamp: int  # ms since epoch, as claimed by the author
    channel: str
    text: str
    author_name: str  # display name; a key suffix only when two people share the name
    name_collision: bool = False  # another feed uses the same name
    reply_to: bytes | None = None
    mentions: tuple[bytes, ...] = ()
    private: bool = False
    recipients: tuple[bytes, ...] = ()
    arrival: int = 0  # arrival position in the store: read marks compare against it


@dataclass(frozen=True, slots=True)
class ChannelInfo:
    """A channel with its unread count for us."""

    name: str
    unread: int = 0  # posts that arrived since we last read the channel
    last_timestamp: int = 0
    mentions: int = 0  # of those, posts by others that mention us
    read_upto: int = 0  # arrival position read up to (0: never opened)


CONVERSATION_PREFIX = "@"
"""Private conversations are views named '@' + the other people's keys (hex, sorted,
comma separated); a channel name cannot start with '@'."""


def conversation_view(people: Iterable[bytes]) -> str:
    """The view name of the private conversation with `people` (everyone except us)."""
    return CONVERSATION_PREFIX + ",".join(sorted(key.hex() for key in set(people)))


def conversation_people(view: str) -> tuple[bytes, ...]:
    """The keys a conversation view name stands for (ValueError if it is not one)."""
    if not view.startswith(CONVERSATION_PREFIX) or len(view) < 2:
        raise ValueError(f"{view!r} is not a private conversation")
    return tuple(bytes.fromhex(part) for part in view[1:].split(","))


@dataclass(frozen=True, slots=True)
class ConversationInfo:
    """A private conversation (one person or a group): who, its title, unread."""

    view: str  # CONVERSATION_PREFIX + keys, the name the UI and read marks use
    people: tuple[bytes, ...]  # everyone in it except us
    title: str  # their display names, comma separated
    unread: int = 0  # messages from others that arrived since we last read it
    last_timestamp: int = 0
    read_upto: int = 0


@dataclass(frozen=True, slots=True)
class Relation:
    """Follow and block facts between us and one person, for /whois."""

    we_follow: bool
    we_block: bool
    they_follow_us: bool


@dataclass(frozen=True, slots=True)
class SearchHit:
    """A message found by search, and the view (channel or conversation) it lives in."""

    entry: TimelineEntry
    view: str


@dataclass(frozen=True, slots=True)
class PeerView:
    """One row of the peers pane: who, where from, state and why."""

    key: bytes
    name: str
    short_key: str
    source: str  # "lan", "pub", "manual", "friend", "other"
    state: str  # "connected", "connecting", "backoff", "idle", ...
    reason: str  # human words from the schedule
    address: str | None = None
    rtt_ms: float | None = None
    direction: str | None = None  # "in" (they dialled) / "out" (we dialled)
    presence: str = ""  # "online", "away", "offline"; "" = never heard (chat/ephemeral.py)
    last_seen: float | None = None  # when their last presence arrived (Unix seconds)
    doubts: tuple[str, ...] = ()
    """Claims it never made good, not believed: "claims alice #1000, sent nothing for 30 s"."""


@dataclass(frozen=True, slots=True)
class LinkView:
    """One connected peer as the replication pane shows it."""

    peer: bytes
    name: str
    eager_in: int  # feeds this peer pushes to us eagerly (our rx)
    eager_out: int  # feeds we push to this peer eagerly (their rx, our tx)
    lazy: int  # feeds replicated lazily on this link (notes only)
    we_are_behind: int  # messages this peer has that we lack, over all feeds
    they_are_behind: int  # messages we have that this peer lacks
    msgs_per_s_in: float = 0.0
    msgs_per_s_out: float = 0.0
    bytes_per_s_in: float = 0.0
    bytes_per_s_out: float = 0.0
    rtt_ms: float | None = None
    health: Health = Health.IN_SYNC


@dataclass(frozen=True, slots=True)
class FeedTree:
    """For one feed: which peer is our eager source and which peers we feed."""

    feed: bytes
    name: str
    local_seq: int
    eager_source: bytes | None
    eager_targets: tuple[bytes, ...] = ()
    lazy_peers: tuple[bytes, ...] = ()
    forked: bool = False


@dataclass(frozen=True, slots=True)
class Delivery:
    """How a message got here: the peer that delivered it and when (None = we wrote it)."""

    msg_id: bytes
    peer: bytes | None
    peer_name: str | None
    received_at: int  # ms


@dataclass(frozen=True, slots=True)
class SyncProgress:
    """Overall replication progress: messages we hold against messages known to exist."""

    have: int
    known: int
    feeds: int
    health: Health = Health.IN_SYNC
    held: int = 0  # every message stored, of all feeds: the figure `treechat status` shows


@dataclass(frozen=True, slots=True)
class OlderHistory:
    """Messages older than what we hold: do they exist, and who is asked for them."""

    missing: bool
    """Some replicated feed is held only from a seq above 1."""
    asking: int
    """Peers asked for older messages right now."""
    unavailable: bool
    """Older messages are wanted, and no connected peer has them."""


@dataclass(frozen=True, slots=True)
class HistorySetting:
    """How much of one feed's history we keep fetching, and how much we hold."""

    feed: bytes
    keep: int | None
    """The newest this many messages (None = all of it)."""
    own: bool
    """Set for this feed (/history NAME N); False: it follows the config's `history`."""
    held_from: int
    """The first seq of the newest range we hold (0: none of it; 1: from the start)."""
    latest: int
    """The newest seq we hold."""


@dataclass(frozen=True, slots=True)
class NodeEvent:
    """Something changed in the node; the UI refreshes the named parts."""

    kind: str  # what the node emits: "messages", "peers", "error", "typing", "whisper"
    text: str = ""
    channels: tuple[str, ...] = field(default=())
