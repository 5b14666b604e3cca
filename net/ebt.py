"""The Epidemic Broadcast Trees replication core: one sans-IO `Replicator` per node.

This module is the only implementation of the replication rules of docs/ebt.md. The TCP shell, the
simulator and the Maelstrom adapter all drive the same `Replicator`: they hand it
events (a peer connected, notes or messages arrived, the store saved a message, time
passed) and carry out the actions it returns. It never touches a socket, a database
or a clock; messages are opaque `(feed, seq, payload)` triples.

The rules, as built (docs/ebt.md has the state table and the reasons):

* Notes. One integer per feed: -1 = "I do not replicate this feed", otherwise
  ``2*seq + (0 if eager else 1)``; eager asks the receiver to push the feed to us.
  Every note we send carries our current `rx` flag for that link, so a note is both
  "I have up to seq" and "push to me / do not".
* Opening. The acceptor sends its clock at once (even an empty one); the initiator
  answers when that clock arrives. A feed is asked eagerly (`rx`) from at most one
  connected peer, its *eager source*, and only from a peer known to be ahead of us
  (it said so in this session or in the remembered record); every other link is lazy.
* Push. A peer that asked eagerly (`tx`) and is behind gets a `Push` (the driver
  streams our store with back-pressure through `push_cursor`/`pushed`). A message
  we store goes at once, as `SendMessages`, to every `tx` peer that is exactly one
  behind; lazy peers behind get a note with our new seq (*news*), held up to
  `note_delay` so one frame carries many feeds and messages, and left out if by then
  the peer told us it has that seq or asked for the feed (stale news; a record note
  keeps its record of us true). On the wire each session numbers its feeds
  (net/notes.py). A `tx` request that follows a lazy period restarts the cursor
  at the seq in that note (a graft means "from here on").
* Acks. When a received batch has been stored we send its senders our new seq, so
  their record of us is what we really hold (SSB's stale record made every
  reconnection after a sync re-request everything). Acks wait up to `ack_delay`
  unless another note to that peer carries them sooner.
* Graft. A lazy peer announcing a seq we lack becomes the eager source at once when
  no one is eager, or when the eager source's last word on the feed was a note no
  further than us (it said it has nothing more); such a note from the eager source
  also hands the feed at once to a peer already ahead. Otherwise it is a race: the feed
  waits `stall_timeout` (per feed, measured from the last delivery) before grafting
  the best peer ahead, and a lazy peer that announces first `swap_after` times in a
  row (judged when the eager copy arrives, beyond `swap_margin`) is swapped in
  (faster trees). Each graft demotes the old source with a lazy
  note, so there is never more than one `rx` per feed. A silent source that alone is
  ahead, or a gap in what it sends, gets its cursor restarted at our seq (a lazy then
  an eager note). No stall verdict while our own store queue is behind.
* Prune. A duplicate from the eager source prunes it (lazy note), unless the
  duplicate is the expected overlap of a hand-over: messages that came from a
  demoted source while the new one was starting, or were already queued for the
  store at the graft. The feed then goes to another peer ahead, or the stall timer
  comes back to the pruned one: a peer ahead is never left lazy (SSB's stall).
* Disconnect. Each feed whose eager source left is given at once to the connected
  peer known furthest ahead (ties: the earliest connected). If nobody is ahead, the
  peers we push that feed to get our note: we are an idle source to them now, so they
  graft the first peer that announces more (a tree broken above them heals at once).
* Request skipping. Per peer we keep the seq it last told us and the seq we last told
  it. On reconnect a feed is left out when both still equal our seq (or they said -1);
  a peer that mentions a skipped feed gets our note. Messages count as notes for the
  record (received: theirs; sent: ours), and a lazy peer that announced a message
  before we had it gets our new seq as a record note (held back `record_delay`), so
  a settled mesh reconnects with almost nothing to say. The first note of a session is
  believed even if lower than remembered (a wiped database). A lost record only means
  a full exchange.
* Liars. A stall with the silent eager source ahead counts a miss against it; it is
  re-asked (a lazy then an eager note) `doubt_after` times, each wait twice the last,
  and after one more silent wait it is *doubted* for that feed: demoted, never grafted
  again, its claim left out of `link()` (so of progress and "we lack") until it
  delivers a new message or a new session starts. A claim above our own seq for our
  own feed (`own`) is doubted at once: nobody can hold more of it than we wrote
  (unless we hold none of it: a wiped database gets its feed back from peers).
* Newest first. With `EbtConfig.ranges`, a feed more than one window behind is not
  grafted: `net/ranges.py` asks its newest window, then older history, by
  `RequestRange`; the shell reports what it stored (`stored`, `range_stored`,
  `range_done`).
* Bounds. Only feeds we replicate outlive a session in the record; a peer gets -1
  answers (and a note kept) for at most `MAX_UNKNOWN_FEED_ANSWERS` feeds we do not
  replicate per session (store/limits.py).
* Blocked and forked feeds are answered -1 and never sent or fetched; a forged
  message (rejected, not a fork) distrusts only that peer for that feed.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, TypeAlias

from net.ebt_states import Ask, AskEvent, Serve, ServeEvent, ask_after, serve_after
from net.errors import RemoteProtocolError
from net.ranges import HistoryView, RangeConfig, RangePlanner, RequestRange
from store.limits import MAX_UNKNOWN_FEED_ANSWERS

FeedId: TypeAlias = bytes
PeerId: TypeAlias = Hashable

__all__ = [
    "Action",
    "EbtConfig",
    "FeedId",
    "LinkState",
    "PeerId",
    "PeerRecord",
    "PersistRecord",
    "Push",
    "Replicator",
    "RequestRange",
    "SendMessages",
    "SendNotes",
    "StoreMessages",
    "decode_note",
    "encode_note",
]


# -- configuration, records, actions -------------------------------------------------


@dataclass(frozen=True, slots=True)
class EbtConfig:
    """Tunables of the replication core."""

    stall_timeout: float = 3.0
    """Eager source silent this long (per feed) while someone is ahead -> graft another."""
    note_delay: float = 0.2
    """News (announcements of our new seqs) and acks wait this long, or ride along with
    any sooner frame to that peer; news the peer no longer needs is then left out
    (0 = flush at the end of each call)."""
    prune: bool = True
    """False = flooding: every link stays eager, nothing is pruned or swapped."""
    swap: bool = True
    """Faster-tree swap (the Plumtree optimisation)."""
    swap_after: int = 3
    """A lazy peer that announces first this many times in a row becomes eager."""
    swap_margin: float = 0.01
    """An announcement counts as first only if the eager copy comes more than this later
    (ties and jitter do not make trees flap)."""
    swap_hold: float = 10.0
    """After a faster-tree swap, the feed does not swap again for this long (hysteresis:
    near-equal paths with jitter would otherwise take turns)."""
    ack_delay: float = 1.0
    """Our new seq goes back to the peer that sent the messages (only to keep its record
    of us current) within this long, or sooner with any other note to that peer."""
    record_delay: float = 5.0
    """A lazy peer that announced a message before we had it is told our new seq within
    this long (coalesced, or sooner with any other note, and at a clean close): its
    record of us stays true, so the next session skips the feed."""
    ranges: RangeConfig | None = None
    """Newest first (net/ranges.py): feeds far behind are fetched by range requests,
    newest window first, then older history. None: everything by eager push."""
    history: int | None = None
    """With `ranges`: how many of the newest messages of a feed to fetch (None = all);
    per feed overrides with `Replicator.set_history`."""
    doubt_after: int = 3
    """An eager source ahead of us that stays silent is asked again this many times
    (each wait twice the last, from `stall_timeout`); silent once more, its claims on
    the feed are not believed for the rest of the session (or until it delivers)."""


@dataclass(frozen=True, slots=True)
class PeerRecord:
    """What we remember of one peer between sessions, for request skipping.

    Both maps hold decoded values: a seq (>= 0) or -1 for "does not replicate".
    """

    theirs: dict[FeedId, int] = field(default_factory=dict)
    """The last value they told us, per feed."""
    ours: dict[FeedId, int] = field(default_factory=dict)
    """The last value we told them, per feed."""


@dataclass(frozen=True, slots=True)
class SendNotes:
    """Send one clock frame with these note values (may be empty: the opening)."""

    peer: PeerId
    notes: dict[FeedId, int]


@dataclass(frozen=True, slots=True)
class SendMessages:
    """Send these payloads of one feed now (a live push, in order)."""

    peer: PeerId
    feed: FeedId
    payloads: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class Push:
    """Stream our stored messages of `feed` from `from_seq` on; see `Replicator.push_cursor`."""

    peer: PeerId
    feed: FeedId
    from_seq: int


@dataclass(frozen=True, slots=True)
class StoreMessages:
    """New contiguous messages of one feed from `peer`: validate, store, report back."""

    peer: PeerId
    feed: FeedId
    payloads: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class PersistRecord:
    """Save this record of `peer` (request skipping); sent on disconnect."""

    peer: PeerId
    record: PeerRecord


Action: TypeAlias = SendNotes | SendMessages | Push | StoreMessages | PersistRecord | RequestRange


@dataclass(frozen=True, slots=True)
class LinkState:
    """One peer's view of one feed, for the status, the UI and the tests."""

    rx: bool
    """We asked this peer to push the feed to us (it is our eager source)."""
    tx: bool
    """This peer asked us to push the feed to it."""
    remote_seq: int | None
    """The peer's seq as far as we know (None = unknown, -1 = does not replicate)."""
    local_seq: int
    sent_seq: int
    """Our push cursor: the peer has, or has been sent, everything up to this seq."""
    pushing: bool
    trusted: bool
    """False once the peer sent a forged message of this feed: never taken from it again."""
    last_received: float | None
    received: int
    """Messages of this feed received from the peer in this session (duplicates included)."""
    sent: int
    """Messages of this feed sent to the peer in this session."""
    duplicates: int
    doubted: bool = False
    """Its claim on this feed is not believed: it announced more than it delivered
    after every re-ask (or claimed more of our own feed than we ever wrote)."""
    claimed_seq: int | None = None
    """What the peer claims to hold (`remote_seq` is capped at ours while doubted)."""
    silent_since: float | None = None
    """When we began waiting in vain for what it claimed (None: it is not silent)."""


# -- notes ---------------------------------------------------------------------------


def encode_note(seq: int, eager: bool) -> int:
    """The note value for "I have up to `seq`", asking to be pushed to when `eager`."""
    return 2 * seq + (0 if eager else 1)


def decode_note(value: object) -> tuple[int, bool]:
    """(seq, eager) of a note value; seq -1 means "does not replicate".

    Raises RemoteProtocolError for anything that is not an integer >= -1.
    """
    if type(value) is not int or value < -1:
        raise RemoteProtocolError(f"the peer sent a bad clock note {value!r}")
    if value == -1:
        return -1, False
    return value >> 1, value & 1 == 0


# -- internal state ------------------------------------------------------------------


class _Link:
    """One (peer, feed) pair while the peer is connected."""

    __slots__ = (
        "ask",
        "doubted",
        "duplicates",
        "heard",
        "idle",
        "last_received",
        "misses",
        "peer",
        "pushed_count",
        "received",
        "remote",
        "replicating",
        "sent",
        "serve",
        "silent_since",
        "told",
        "trusted",
        "unacked",
    )

    def __init__(self, peer: PeerId, remembered: int | None) -> None:
        self.peer = peer
        self.ask = Ask.LAZY  # what we ask of it (net/ebt_states.py has the moves)
        self.serve = Serve.LAZY  # what it asks of us, and whether a push loop runs
        # their seq; -1 while unknown (or when they do not replicate: see replicating)
        self.remote = -1 if remembered is None else remembered
        self.replicating = remembered != -1
        self.heard = False  # a note from them in this session
        self.idle = True  # their last word on the feed was a note, not a message
        self.sent = 0  # push cursor: they have (or were sent) everything up to here
        self.told: int | None = None  # the seq we last told them in this session
        self.trusted = True
        self.unacked = False  # delivered messages we have not acknowledged with a note
        self.last_received: float | None = None
        self.received = 0
        self.pushed_count = 0
        self.duplicates = 0
        self.misses = 0  # stall timeouts in a row while it was our silent source ahead
        self.doubted = False  # its claims on this feed are not believed (liar rule)
        self.silent_since: float | None = None

    @property
    def rx(self) -> bool:
        """We asked it to push the feed to us: it is our eager source."""
        return self.ask is Ask.EAGER

    @property
    def tx(self) -> bool:
        """It asked us to push the feed to it."""
        return self.serve is Serve.EAGER or self.serve is Serve.PUSHING

    @property
    def pushing(self) -> bool:
        """A Push is out and its loop has not yet seen push_cursor None."""
        return self.serve is Serve.PUSHING or self.serve is Serve.STOPPING

    def demote(self, event: AskEvent) -> bool:
        """No longer our eager source, for `event`; False if it was not eager."""
        if self.ask is not Ask.EAGER:
            return False
        self.ask = ask_after(self.ask, event)
        return True


class _Feed:
    """Replication state of one feed we replicate."""

    __slots__ = (
        "announced",
        "eager",
        "excused",
        "handed",
        "last_delivery",
        "leader",
        "links",
        "lost_from",
        "overlap",
        "pending",
        "race_at",
        "race_peer",
        "race_seq",
        "streak",
        "swapped_at",
    )

    def __init__(self, local: int) -> None:
        self.links: dict[PeerId, _Link] = {}
        self.eager: PeerId | None = None
        self.pending = local  # highest seq handed to the store (>= local)
        self.overlap = 0  # duplicates from the eager source up to here are expected
        self.announced = local  # highest seq known to exist (notes or deliveries)
        self.leader: PeerId | None = None  # the lazy peer that announced first lately
        self.streak = 0  # ... this many times in a row
        self.race_peer: PeerId | None = None  # a lazy lead waiting for the eager copy
        self.race_seq = 0
        self.race_at = 0.0
        self.lost_from: set[PeerId] = set()  # peers whose copies we dropped as queued
        self.handed: dict[PeerId, int] = {}  # highest seq handed to the store, per sender
        self.last_delivery: float | None = None  # when a new message last arrived
        self.excused: set[PeerId] = set()  # their queued batch fails because another did
        self.swapped_at: float | None = None  # when the last faster-tree swap happened


class _Peer:
    """One connected peer."""

    __slots__ = (
        "ack_deadline",
        "acks",
        "heard",
        "ident",
        "links",
        "must_send",
        "note_deadline",
        "notes",
        "opened",
        "order",
        "ours",
        "theirs",
        "told_minus",
        "unknown_answers",
        "urgent",
    )

    def __init__(self, ident: PeerId, order: int, record: PeerRecord | None) -> None:
        self.ident = ident
        self.order = order
        self.opened = False
        self.links: dict[FeedId, _Link] = {}
        self.theirs: dict[FeedId, int] = dict(record.theirs) if record else {}
        self.ours: dict[FeedId, int] = dict(record.ours) if record else {}
        self.told_minus: set[FeedId] = set()  # feeds answered -1 in this session
        self.unknown_answers = 0  # -1 answers queued for feeds we do not replicate
        self.notes: dict[FeedId, bool] = {}  # feeds whose note is due (value at flush);
        # True: only news (a lazy announcement), dropped at flush if it became stale
        self.acks: dict[FeedId, None] = {}  # acks: sent with the next frame or when due
        self.ack_deadline = 0.0
        self.urgent = False
        self.must_send = False  # the opening frame goes out even when empty
        self.heard = False  # its first clock frame has come
        self.note_deadline = 0.0


# -- the replicator ------------------------------------------------------------------


class Replicator:
    """All EBT state of one node: every connected peer, every replicated feed."""

    def __init__(
        self,
        local_clock: Mapping[FeedId, int],
        wanted: Iterable[FeedId],
        config: EbtConfig | None = None,
        shareable: Callable[[PeerId, FeedId], bool] | None = None,
        own: FeedId | None = None,
        held_from: Mapping[FeedId, int] | None = None,
    ) -> None:
        self.config = config if config is not None else EbtConfig()
        self._own = own  # our own feed: nobody can hold more of it than we wrote
        self._shareable = shareable
        self._clock: dict[FeedId, int] = dict(local_clock)
        self.local_clock: Mapping[FeedId, int] = MappingProxyType(self._clock)
        self._blocked: set[FeedId] = set()
        self._forked: set[FeedId] = set()
        self._feeds: dict[FeedId, _Feed] = {}
        for feed in wanted:
            if feed not in self._feeds:
                self._feeds[feed] = _Feed(self._clock.get(feed, 0))
        self._peers: dict[PeerId, _Peer] = {}
        self._records: dict[PeerId, PeerRecord] = {}
        self._waiting: dict[FeedId, float] = {}  # stall deadlines
        self._dirty: set[PeerId] = set()  # peers with notes due
        self._acking: set[PeerId] = set()  # peers with acks held back
        self._out: list[Action] = []
        self._order = 0
        self._flood = not self.config.prune
        self._ranges: RangePlanner | None = None
        if self.config.ranges is not None:
            self._ranges = RangePlanner(
                self.config.ranges,
                self.config.history,
                lambda feed: self._clock.get(feed, 0),
                held_from,
            )

    # -- scope ---------------------------------------------------------------------

    def want(self, feed: FeedId, now: float) -> list[Action]:
        """Start replicating `feed` (ignored for blocked or forked feeds)."""
        if feed in self._feeds or feed in self._blocked or feed in self._forked:
            return []
        state = self._feeds[feed] = _Feed(self._clock.get(feed, 0))
        for peer in self._peers.values():
            if not peer.opened or not self._may_share(peer.ident, feed):
                continue
            link = self._link(peer, feed, state)
            peer.told_minus.discard(feed)
            if self._flood:
                self._set_eager(state, link)
            elif (
                state.eager is None
                and link.replicating
                and not link.doubted
                and link.remote > state.pending
            ):
                self._graft(state, feed, link, now)  # it told us it has more
            self._queue(peer, feed, now, urgent=True)
        return self._finish(now)

    def unwant(self, feed: FeedId, now: float) -> list[Action]:
        """Stop replicating `feed`: every peer is told -1."""
        self._stop(feed, now)
        return self._finish(now)

    def block(self, feed: FeedId, now: float) -> list[Action]:
        """Never send `feed` to anyone and never fetch it again."""
        self._blocked.add(feed)
        self._stop(feed, now)
        return self._finish(now)

    # -- peers ---------------------------------------------------------------------

    def connect(
        self, peer: PeerId, now: float, *, initiator: bool, record: PeerRecord | None
    ) -> list[Action]:
        """A session with `peer` is up. The acceptor's clock goes out at once."""
        if peer in self._peers:  # a second session replaces the first
            self._drop_peer(peer, now)
        self._order += 1
        state = self._peers[peer] = _Peer(peer, self._order, record)
        if not initiator:
            self._open(state, now)
        return self._finish(now)

    def disconnect(self, peer: PeerId, now: float) -> list[Action]:
        """The session with `peer` ended; its eager feeds move to peers ahead."""
        self._drop_peer(peer, now)
        return self._finish(now)

    def receive_notes(self, peer: PeerId, notes: Mapping[FeedId, int], now: float) -> list[Action]:
        """A clock frame from `peer`. Raises RemoteProtocolError on a bad value."""
        state = self._peers.get(peer)
        if state is not None and state.unknown_answers >= MAX_UNKNOWN_FEED_ANSWERS:
            # Its answers are used up: a note on a feed we do not replicate costs a lookup.
            feeds, theirs = self._feeds, state.theirs
            notes = {feed: v for feed, v in notes.items() if feed in feeds or feed in theirs}
        decoded = [(feed, decode_note(value)) for feed, value in notes.items()]
        if state is None:
            return []
        opening = not state.opened
        state.opened = True
        for feed, (seq, eager) in decoded:
            self._on_note(state, feed, seq, eager, now)
        if opening:
            self._open(state, now)
        if not state.heard:
            state.heard = True
            self._plan_ranges(now)  # its first claims may hold history we want
        return self._finish(now)

    def receive_messages(
        self, peer: PeerId, msgs: Sequence[tuple[FeedId, int, Any]], now: float
    ) -> list[Action]:
        """Messages from `peer`. New contiguous ones come back as StoreMessages."""
        for _, seq, _ in msgs:
            if type(seq) is not int or seq < 1:
                raise RemoteProtocolError(f"the peer sent a message with a bad seq {seq!r}")
        state = self._peers.get(peer)
        if state is None:
            return []
        batches: dict[FeedId, list[Any]] = {}
        feeds = self._feeds
        for feed, seq, payload in msgs:
            link = state.links.get(feed)
            fstate = feeds.get(feed)
            if link is None or fstate is None:
                continue  # no replication state: the peer is not supposed to send it
            link.received += 1
            link.last_received = now
            link.idle = False
            if seq > link.remote:
                link.remote = seq
            if seq > state.theirs.get(feed, 0):
                state.theirs[feed] = seq  # a message says "I have it" as well as a note
            if seq > link.sent:
                link.sent = seq  # they have it: never push it back
            if not link.trusted:
                continue
            if fstate.race_peer is not None and seq >= fstate.race_seq and fstate.eager == peer:
                self._judge_race(fstate, feed, now)
            head = fstate.pending
            if seq <= head:
                self._duplicate(state, fstate, feed, link, seq, now)
                continue
            if seq != head + 1:
                self._arm_stall(feed, now)  # a gap: never stored out of order; recheck later
                continue
            fstate.pending = seq
            if link.misses or link.doubted:
                link.misses = 0  # it delivers after all: believed again
                link.doubted = False
                link.silent_since = None
            fstate.handed[peer] = seq
            fstate.last_delivery = now
            batch = batches.get(feed)
            if batch is None:
                batch = batches[feed] = []
            batch.append(payload)
            link.unacked = True
            if not link.rx:
                if seq > fstate.overlap:
                    fstate.overlap = seq  # a hand-over: the new source will repeat it
            elif fstate.eager == peer and seq > fstate.announced:
                fstate.leader = None  # the eager source was first: no race won
                fstate.streak = 0
            if seq > fstate.announced:
                fstate.announced = seq
            if feed in self._waiting:
                self._waiting[feed] = now + self.config.stall_timeout
        for feed, payloads in batches.items():
            self._out.append(StoreMessages(peer, feed, tuple(payloads)))
        return self._finish(now)

    # -- results of actions ----------------------------------------------------------

    def stored(
        self, feed: FeedId, seq: int, payload: Any, now: float, *, source: PeerId | None
    ) -> list[Action]:
        """The store holds `seq` of `feed` (ours or received from `source`)."""
        if seq <= self._clock.get(feed, 0):
            return self._finish(now)
        self._clock[feed] = seq
        state = self._feeds.get(feed)
        if state is None:
            return self._finish(now)
        if state.pending < seq:
            state.pending = seq
        if state.announced < seq:
            state.announced = seq
        out = self._out
        for ident, link in state.links.items():
            if link.tx and ident != source:
                if link.sent == seq - 1:
                    out.append(SendMessages(ident, feed, (payload,)))
                    link.sent = seq
                    self._peers[ident].ours[feed] = seq  # the message tells them we have it
                    link.pushed_count += 1
                elif link.sent < seq - 1 and not link.pushing:
                    self._start_push(ident, feed, link)
        if seq >= state.pending:  # the batch is in: announce and acknowledge
            state.lost_from.clear()
            state.handed.clear()
            peers = self._peers
            for ident, link in state.links.items():
                if link.told == seq or not link.replicating:
                    link.unacked = False
                    continue
                if not link.tx and link.remote < seq:
                    link.unacked = False
                    self._queue(peers[ident], feed, now, urgent=False, news=True)
                elif link.unacked:
                    link.unacked = False
                    self._queue_ack(peers[ident], feed, now, self.config.ack_delay)
                elif link.remote >= seq and not link.tx:
                    # a lazy peer that had it first: keep its record of us true, or the
                    # next session re-sends the feed (held back longer, coalesced)
                    self._queue_ack(peers[ident], feed, now, self.config.record_delay)
        return self._finish(now)

    def rejected(
        self, feed: FeedId, peer: PeerId | None, now: float, *, fork: bool
    ) -> list[Action]:
        """The store refused a message of `feed` from `peer` (a fork, or forged/invalid)."""
        if fork:
            self._forked.add(feed)
            self._stop(feed, now)
            return self._finish(now)
        state = self._feeds.get(feed)
        if state is None:
            return self._finish(now)
        if peer in state.excused:
            # its batch was queued behind a refused one: it failed for a gap, not a lie
            state.excused.discard(peer)
            return self._finish(now)
        local = self._clock.get(feed, 0)
        state.pending = local
        behind = {p for p, seq in state.handed.items() if p != peer and seq > local}
        state.excused |= behind
        state.lost_from |= behind
        state.handed.clear()
        peer_state = self._peers.get(peer) if peer is not None else None
        if peer_state is not None:
            link = peer_state.links.get(feed)
            if link is not None:
                link.trusted = False
                if link.demote(AskEvent.DISTRUST):
                    self._queue(peer_state, feed, now, urgent=True)
                if state.eager == peer:
                    state.eager = None
        # Copies we dropped because the refused batch already held those seqs are lost:
        # ask again from our seq (a lazy then an eager note restarts the push cursor).
        for ident in state.lost_from:
            other = self._peers.get(ident)
            link = other.links.get(feed) if other is not None else None
            if other is None or link is None or not link.rx or not link.trusted:
                continue
            self._restart(other, link, feed, state, now)
        state.lost_from.clear()
        if state.eager is None and not self._flood:
            self._reassign(state, feed, now)
        return self._finish(now)

    def pushed(self, peer: PeerId, feed: FeedId, seq: int, now: float) -> list[Action]:
        """The push loop sent `peer` everything of `feed` up to `seq`."""
        state = self._peers.get(peer)
        link = state.links.get(feed) if state is not None else None
        if link is not None and seq > link.sent:
            link.pushed_count += seq - link.sent
            link.sent = seq
            assert state is not None
            if seq > state.ours.get(feed, 0):
                state.ours[feed] = seq  # the messages tell them we have them
        return self._finish(now)

    def push_cursor(self, peer: PeerId, feed: FeedId) -> int | None:
        """The next seq the push loop should send to `peer`, or None: stop."""
        state = self._peers.get(peer)
        link = state.links.get(feed) if state is not None else None
        if link is None:
            return None
        if (
            not link.tx
            or feed not in self._feeds
            or link.sent >= self._clock.get(feed, 0)
            or not self._may_share(peer, feed)
        ):
            link.serve = serve_after(link.serve, ServeEvent.CURSOR_END)
            return None
        return link.sent + 1

    def flush(self, peer: PeerId, now: float) -> list[Action]:
        """Everything held back for `peer` (coalesced notes, delayed acks), now.

        Call it before closing a link cleanly: acks still waiting for `ack_delay`
        would otherwise be lost, and the peer's record of us would be stale.
        """
        state = self._peers.get(peer)
        if state is not None and state.opened and (state.notes or state.acks or state.must_send):
            self._flush_peer(state, now)
        return self._finish(now)

    def tick(self, now: float) -> list[Action]:
        """Time passed: stalled feeds, delayed notes and acks, range requests."""
        self._plan_ranges(now)
        if self._waiting:
            due = [feed for feed, deadline in self._waiting.items() if deadline <= now]
            for feed in due:
                self._check_stall(feed, now)
        if self._acking:
            for ident in list(self._acking):
                peer = self._peers.get(ident)
                if peer is None:
                    self._acking.discard(ident)
                elif peer.ack_deadline <= now:
                    self._flush_peer(peer, now)
        return self._finish(now)

    # -- ranges (newest first) ---------------------------------------------------------

    def range_stored(self, feed: FeedId, held_from: int, now: float) -> list[Action]:
        """The store holds `feed` contiguously from `held_from` to our latest (after
        range replies were stored; report a new latest with `stored` first)."""
        if self._ranges is not None and feed in self._feeds:
            self._ranges.held(feed, held_from)
            self._plan_ranges(now)
        return self._finish(now)

    def range_done(
        self, peer: PeerId, feed: FeedId, first: int, last: int, count: int, now: float
    ) -> list[Action]:
        """`peer` finished answering our request `first..last` with `count` messages."""
        if self._ranges is not None:
            window = self._ranges.done(peer, feed, first, last, count)
            state = self._feeds.get(feed)
            link = state.links.get(peer) if state is not None else None
            if (
                window
                and state is not None
                and link is not None
                and self._clock.get(feed, 0) < last
            ):
                # Asked for the newest window up to what it claimed, it did not send its
                # claimed top: it said itself that the claim is false.
                self._doubt(state, feed, link, now)
            self._plan_ranges(now)
        return self._finish(now)

    def range_answering(self, peer: PeerId, now: float) -> None:
        """Part of an answer to our range requests came from `peer` (it is working)."""
        if self._ranges is not None:
            self._ranges.answering(peer, now)

    def set_history(self, feed: FeedId, history: int | None, now: float) -> list[Action]:
        """Keep fetching the newest `history` messages of `feed` (None = all of it)."""
        if self._ranges is not None:
            self._ranges.set_history(feed, history)
            self._plan_ranges(now)
        return self._finish(now)

    def reset_history(self, feed: FeedId, now: float) -> list[Action]:
        """`feed` follows `EbtConfig.history` again (after `set_history`)."""
        if self._ranges is not None:
            self._ranges.reset_history(feed)
            self._plan_ranges(now)
        return self._finish(now)

    def fetch_older(self, feed: FeedId, count: int, now: float) -> list[Action]:
        """Scrolling back: ask for `count` more messages older than what we hold."""
        if self._ranges is not None and feed in self._feeds:
            self._ranges.older(feed, count)
            self._plan_ranges(now)
        return self._finish(now)

    def history_view(self, feed: FeedId) -> HistoryView | None:
        """How much of `feed` we hold and whether older history is coming (None: no ranges)."""
        if self._ranges is None or feed not in self._feeds:
            return None
        return self._ranges.view(feed)

    def asking_older(self) -> int:
        """Peers we asked for older history right now."""
        return self._ranges.asking_older() if self._ranges is not None else 0

    @property
    def open_ranges(self) -> int:
        """Range requests we sent that are not answered yet."""
        return self._ranges.open_requests if self._ranges is not None else 0

    def shares(self, peer: PeerId, feed: FeedId) -> bool:
        """Whether we answer `peer`'s range requests for `feed` (we replicate it for them)."""
        return feed in self._feeds and self._may_share(peer, feed)

    # -- introspection -----------------------------------------------------------------

    def forget(self, peer: PeerId) -> None:
        """Drop the remembered record of a disconnected peer (memory is bounded)."""
        if peer not in self._peers:
            self._records.pop(peer, None)

    @property
    def peers(self) -> tuple[PeerId, ...]:
        """Connected peers, in connection order."""
        return tuple(self._peers)

    def link(self, peer: PeerId) -> dict[FeedId, LinkState]:
        """Per feed state of the link to `peer` (empty when not connected)."""
        state = self._peers.get(peer)
        if state is None:
            return {}
        result: dict[FeedId, LinkState] = {}
        for feed, link in state.links.items():
            local = self._clock.get(feed, 0)
            if link.replicating:
                remote: int | None = link.remote if link.remote >= 0 else None
                if link.doubted and remote is not None:
                    remote = min(remote, local)  # its claim counts for nothing
            else:
                remote = -1
            result[feed] = LinkState(
                rx=link.rx,
                tx=link.tx,
                remote_seq=remote,
                local_seq=local,
                sent_seq=link.sent,
                pushing=link.pushing,
                trusted=link.trusted,
                last_received=link.last_received,
                received=link.received,
                sent=link.pushed_count,
                duplicates=link.duplicates,
                doubted=link.doubted,
                claimed_seq=link.remote if link.replicating and link.remote >= 0 else None,
                silent_since=link.silent_since,
            )
        return result

    def last_delivery(self, feed: FeedId) -> float | None:
        """When a new message of `feed` last arrived from a peer (None: never, or not ours)."""
        state = self._feeds.get(feed)
        return state.last_delivery if state is not None else None

    def eager_source(self, feed: FeedId) -> PeerId | None:
        """The peer we take `feed` from eagerly (None with flooding or when none)."""
        state = self._feeds.get(feed)
        return state.eager if state is not None else None

    def record(self, peer: PeerId) -> PeerRecord:
        """The request-skipping record of `peer` as it stands (or as it was saved)."""
        state = self._peers.get(peer)
        if state is None:
            return self._records.get(peer, PeerRecord())
        return PeerRecord(dict(state.theirs), dict(state.ours))

    @property
    def replicating(self) -> frozenset[FeedId]:
        """The feeds we replicate now."""
        return frozenset(self._feeds)

    # -- internals: links and notes --------------------------------------------------

    def _may_share(self, peer: PeerId, feed: FeedId) -> bool:
        return self._shareable is None or self._shareable(peer, feed)

    def _link(self, peer: _Peer, feed: FeedId, state: _Feed) -> _Link:
        link = peer.links.get(feed)
        if link is None:
            link = peer.links[feed] = state.links[peer.ident] = _Link(
                peer.ident, peer.theirs.get(feed)
            )
        return link

    def _queue(
        self, peer: _Peer, feed: FeedId, now: float, *, urgent: bool, news: bool = False
    ) -> None:
        """Our note for `feed` is due to `peer`: at once if `urgent`, else within
        `note_delay` or with the next frame; `news`: it only announces our seq."""
        if not peer.notes and not peer.urgent:
            peer.note_deadline = now + self.config.note_delay
        peer.notes[feed] = news and peer.notes.get(feed, True)
        if urgent:
            peer.urgent = True
        self._dirty.add(peer.ident)

    def _queue_ack(self, peer: _Peer, feed: FeedId, now: float, delay: float) -> None:
        if delay <= 0:
            self._queue(peer, feed, now, urgent=False)
            return
        if not peer.acks:
            peer.ack_deadline = now + delay
            self._acking.add(peer.ident)
        elif now + delay < peer.ack_deadline:
            peer.ack_deadline = now + delay
        peer.acks[feed] = None

    def _finish(self, now: float) -> list[Action]:
        if self._dirty:
            delay = self.config.note_delay
            for ident in list(self._dirty):
                peer = self._peers.get(ident)
                if peer is None:
                    self._dirty.discard(ident)
                elif peer.opened and (delay <= 0 or peer.urgent or peer.note_deadline <= now):
                    self._flush_peer(peer, now)
        out = self._out
        self._out = []
        return out

    def _flush_peer(self, peer: _Peer, now: float) -> None:
        self._dirty.discard(peer.ident)
        if peer.acks:  # held-back acks ride along
            self._acking.discard(peer.ident)
            peer.notes.update(dict.fromkeys(peer.acks, False))
            peer.acks = {}
        if not peer.notes and not peer.must_send:
            return
        notes: dict[FeedId, int] = {}
        stale: list[FeedId] = []
        for feed, news in peer.notes.items():
            link = peer.links.get(feed)
            if link is None or feed not in self._feeds:
                notes[feed] = -1
                if feed in self._feeds or feed in peer.ours:  # a feed we never had: no record
                    peer.ours[feed] = -1
                peer.told_minus.add(feed)
                continue
            local = self._clock.get(feed, 0)
            if news and (link.remote >= local or link.tx):
                stale.append(feed)  # no news any more: it said it has it, or we push to it
                continue
            notes[feed] = encode_note(local, link.rx)
            link.told = local
            peer.ours[feed] = local
        opening = peer.must_send
        peer.notes = {}
        peer.urgent = False
        peer.must_send = False
        for feed in stale:  # its record of us: with a later frame, or after record_delay
            link = peer.links[feed]
            if link.told != self._clock.get(feed, 0) and not link.tx:
                self._queue_ack(peer, feed, now, self.config.record_delay)
        if notes or opening or not stale:
            self._out.append(SendNotes(peer.ident, notes))

    def _open(self, peer: _Peer, now: float) -> None:
        """Our opening clock to `peer`: every feed not skipped by the record."""
        peer.opened = True
        peer.must_send = True
        peer.urgent = True
        self._dirty.add(peer.ident)
        clock = self._clock
        for feed, state in self._feeds.items():
            if not self._may_share(peer.ident, feed):
                if peer.ours.get(feed, -1) != -1 and feed not in peer.told_minus:
                    self._queue(peer, feed, now, urgent=True)
                continue
            link = self._link(peer, feed, state)
            if link.told is not None or (link.heard and not link.replicating):
                continue
            local = clock.get(feed, 0)
            if not link.heard and peer.ours.get(feed) == local:
                theirs = peer.theirs.get(feed)
                if theirs == local or theirs == -1:
                    continue  # request skipping: nothing changed on either side
            if not link.rx and link.trusted and not link.doubted:
                if self._flood:
                    self._set_eager(state, link)
                elif state.eager is None and link.remote > state.pending:
                    self._graft(state, feed, link, now)  # ahead when we last spoke
            self._queue(peer, feed, now, urgent=True)
        for feed, value in peer.ours.items():
            if value != -1 and feed not in self._feeds and feed not in peer.notes:
                self._queue(peer, feed, now, urgent=True)

    def _set_eager(self, state: _Feed, link: _Link) -> None:
        link.ask = ask_after(link.ask, AskEvent.GRAFT)
        if not self._flood:
            state.eager = link.peer

    def _start_push(self, ident: PeerId, feed: FeedId, link: _Link) -> None:
        if not self._may_share(ident, feed):
            return
        link.serve = serve_after(link.serve, ServeEvent.PUSH)
        self._out.append(Push(ident, feed, link.sent + 1))

    # -- internals: the rules ----------------------------------------------------------

    def _on_note(self, peer: _Peer, feed: FeedId, seq: int, eager: bool, now: float) -> None:
        state = self._feeds.get(feed)
        if state is None:
            # Not ours: the first MAX_UNKNOWN_FEED_ANSWERS such feeds of a session are
            # noted and answered -1; the rest are ignored (a stranger's million random
            # feed ids must cost no memory), and none is kept past the session.
            if feed in peer.theirs or peer.unknown_answers < MAX_UNKNOWN_FEED_ANSWERS:
                if feed not in peer.theirs:
                    peer.unknown_answers += 1
                peer.theirs[feed] = seq  # for want(): a feed it said it has grafts at once
                if seq != -1 and feed not in peer.told_minus:
                    self._queue(peer, feed, now, urgent=True)
            return
        peer.theirs[feed] = seq
        if not self._may_share(peer.ident, feed):
            if seq != -1 and feed not in peer.told_minus:
                self._queue(peer, feed, now, urgent=True)  # "I do not replicate it" (-1)
            return
        link = self._link(peer, feed, state)
        first = not link.heard
        link.heard = True
        if seq == -1:
            link.replicating = False
            link.remote = -1
            link.serve = serve_after(link.serve, ServeEvent.LAZY_NOTE)
            if link.demote(AskEvent.STOPPED) and state.eager == peer.ident:
                state.eager = None
                self._reassign(state, feed, now)
            return
        if not link.replicating:
            link.replicating = True
            link.told = None  # it did not replicate the feed: what we said may be gone
        if first or seq > link.remote:
            link.remote = seq  # the first note of a session is believed, even if lower
        link.idle = True
        if eager:
            if not link.tx:
                link.sent = seq  # a fresh request: push from its seq on
            elif seq > link.sent:
                link.sent = seq
            link.serve = serve_after(link.serve, ServeEvent.EAGER_NOTE)
        else:
            link.serve = serve_after(link.serve, ServeEvent.LAZY_NOTE)
        local = self._clock.get(feed, 0)
        if link.tx and link.sent < local and not link.pushing:
            self._start_push(peer.ident, feed, link)
        if link.told is None:  # they mentioned a feed we skipped (or they speak first)
            if self._flood and not link.rx and link.trusted:
                self._set_eager(state, link)
            self._queue(peer, feed, now, urgent=True)
        elif not link.tx and link.remote < local and link.told != local:
            self._queue(peer, feed, now, urgent=False, news=True)
        own = self._clock.get(feed, 0)
        if feed == self._own and seq > own > 0:
            # More of our own feed than we wrote: a lie. (With nothing of it, our
            # database was wiped or is new: a peer holding our feed is our backup.)
            if not link.doubted:
                link.doubted = True
                link.silent_since = now
            return
        if seq > state.pending:
            self._on_ahead(state, feed, link, seq, now)
        elif state.eager == peer.ident and not self._flood:
            # our source says it has nothing more: a peer that announced more while we
            # took it for a race (our source was delivering then) is grafted now
            best = self._best_ahead(state, exclude=peer.ident)
            if best is not None:
                self._graft(state, feed, best, now)

    def _on_ahead(self, state: _Feed, feed: FeedId, link: _Link, seq: int, now: float) -> None:
        """`link`'s peer announced `seq`, which we do not have."""
        if not link.trusted or link.doubted:
            return
        if self._flood:
            if not link.rx:
                self._graft(state, feed, link, now)
            return
        eager = state.eager
        if eager == link.peer:
            self._arm_stall(feed, now)
            return
        if eager is None:
            self._graft(state, feed, link, now)
            return
        source = state.links[eager]
        if source.idle and source.remote <= self._clock.get(feed, 0):
            self._graft(state, feed, link, now)  # the eager source said it has nothing more
            return
        if seq > state.announced:  # announced before the eager source delivered it
            state.announced = seq
            if state.race_peer != link.peer:  # judged when the eager copy arrives
                state.race_peer = link.peer
                state.race_seq = seq
                state.race_at = now
        self._arm_stall(feed, now)

    def _judge_race(self, state: _Feed, feed: FeedId, now: float) -> None:
        """The eager copy of a seq a lazy peer announced first has come: count the win."""
        lead = state.race_peer
        state.race_peer = None
        if now - state.race_at <= self.config.swap_margin:
            state.leader = None  # a tie: nobody is faster
            state.streak = 0
            return
        if state.leader == lead:
            state.streak += 1
        else:
            state.leader = lead
            state.streak = 1
        link = state.links.get(lead) if lead is not None else None
        if (
            self.config.swap
            and state.streak >= self.config.swap_after
            and link is not None
            and link.trusted
            and not link.doubted
            and link.replicating
        ):
            swapped = state.swapped_at
            if swapped is not None and now - swapped < self.config.swap_hold:
                return  # swapped lately: near-equal paths must not take turns
            self._graft(state, feed, link, now)  # faster trees: the quicker path wins
            state.swapped_at = now

    def _graft(self, state: _Feed, feed: FeedId, link: _Link, now: float) -> None:
        """Make `link` the eager source of `feed`, demoting the old one."""
        ranges = self._ranges
        if ranges is not None and ranges.far(feed, state.pending, link.remote):
            ranges.ahead(feed, link.remote)  # newest window first, by range requests
            self._plan_ranges(now)
            return
        peers = self._peers
        if not self._flood:
            old = state.eager
            if old is not None and old != link.peer:
                old_link = state.links.get(old)
                if old_link is not None and old_link.demote(AskEvent.HAND_OVER):
                    self._queue(peers[old], feed, now, urgent=True)
            # what the store queue holds will come again: the note says our stored seq
            if state.pending > self._clock.get(feed, 0):
                state.overlap = max(state.overlap, state.pending)
            if (
                link.ask is not Ask.LAZY
            ):  # its pushes from before a lazy note may still be in flight
                state.overlap = max(state.overlap, link.remote)
            state.leader = None
            state.streak = 0
            state.race_peer = None
        self._set_eager(state, link)
        self._queue(peers[link.peer], feed, now, urgent=True)
        if not self._flood and link.remote > state.pending:
            self._waiting[feed] = now + self.config.stall_timeout

    def _plan_ranges(self, now: float) -> None:
        if self._ranges is not None:
            self._out.extend(self._ranges.plan(now, self._feeds, self._claims))

    def _claims(self, feed: FeedId) -> dict[PeerId, int]:
        """What the believed, connected peers say they hold of `feed`."""
        state = self._feeds.get(feed)
        if state is None:
            return {}
        return {
            ident: link.remote
            for ident, link in state.links.items()
            if link.trusted and not link.doubted and link.replicating and link.remote > 0
        }

    def _arm_stall(self, feed: FeedId, now: float) -> None:
        if feed not in self._waiting and not self._flood:
            self._waiting[feed] = now + self.config.stall_timeout

    def _best_ahead(self, state: _Feed, exclude: PeerId | None) -> _Link | None:
        """The trusted connected peer furthest ahead of us (ties: earliest connected)."""
        best: _Link | None = None
        best_order = 0
        head = state.pending
        peers = self._peers
        for ident, link in state.links.items():
            if ident == exclude or not link.trusted or link.doubted or not link.replicating:
                continue
            if link.remote <= head:
                continue
            order = peers[ident].order
            if (
                best is None
                or link.remote > best.remote
                or (link.remote == best.remote and order < best_order)
            ):
                best, best_order = link, order
        return best

    def _reassign(self, state: _Feed, feed: FeedId, now: float) -> None:
        best = self._best_ahead(state, exclude=state.eager)
        if best is not None:
            self._graft(state, feed, best, now)

    def _check_stall(self, feed: FeedId, now: float) -> None:
        state = self._feeds.get(feed)
        if state is None:
            self._waiting.pop(feed, None)
            return
        if state.pending > self._clock.get(feed, 0):
            # our own store is behind (back-pressure): the source is not to blame
            self._waiting[feed] = now + self.config.stall_timeout
            return
        eager = state.eager
        source = state.links.get(eager) if eager is not None else None
        if source is not None and source.remote > state.pending:
            self._missed(state, feed, source, now)  # asked, and it sent nothing in time
        best = self._best_ahead(state, exclude=state.eager)
        if best is not None:
            self._graft(state, feed, best, now)
            self._waiting[feed] = now + self.config.stall_timeout
            return
        eager = state.eager
        source = state.links.get(eager) if eager is not None else None
        if source is not None and source.remote > state.pending:
            # only the silent eager source is ahead: ask it again from our seq, and
            # wait twice as long as last time
            self._restart(self._peers[source.peer], source, feed, state, now)
            backoff = 2 ** min(source.misses, 6)
            self._waiting[feed] = now + self.config.stall_timeout * backoff
            return
        del self._waiting[feed]

    def _missed(self, state: _Feed, feed: FeedId, link: _Link, now: float) -> None:
        """`link`, our eager source and ahead of us, stayed silent for a whole wait."""
        if link.misses == 0:
            link.silent_since = now - self.config.stall_timeout  # when this wait began
        link.misses += 1
        if self._flood or link.misses <= self.config.doubt_after:
            return
        self._doubt(state, feed, link, now)  # re-asked enough: its claim is not believed

    def _doubt(self, state: _Feed, feed: FeedId, link: _Link, now: float) -> None:
        """Stop believing `link`'s claims on `feed` (until it delivers or reconnects)."""
        if link.silent_since is None:
            link.silent_since = now
        link.doubted = True
        if link.demote(AskEvent.DOUBT):
            self._queue(self._peers[link.peer], feed, now, urgent=True)
        if state.eager == link.peer:
            state.eager = None

    def _restart(self, peer: _Peer, link: _Link, feed: FeedId, state: _Feed, now: float) -> None:
        """Restart `peer`'s push cursor at our seq: a lazy note, then an eager one."""
        self._flush_peer(peer, now)
        local = self._clock.get(feed, 0)
        self._out.append(SendNotes(peer.ident, {feed: encode_note(local, False)}))
        self._queue(peer, feed, now, urgent=True)
        state.overlap = max(state.overlap, link.remote)  # what it had in flight repeats

    def _duplicate(
        self, peer: _Peer, state: _Feed, feed: FeedId, link: _Link, seq: int, now: float
    ) -> None:
        link.duplicates += 1
        if seq > self._clock.get(feed, 0):
            state.lost_from.add(peer.ident)  # only queued for the store so far
        if not link.rx or self._flood or seq <= state.overlap:
            return
        # prune: a second path pushes this feed to us
        link.demote(AskEvent.PRUNE)
        self._queue(peer, feed, now, urgent=True)
        if state.eager == peer.ident:
            state.eager = None
            # if someone else is ahead, take it from them; if only the pruned peer is,
            # the stall timer comes back to it (never left lazy while ahead: SSB's stall)
            best = self._best_ahead(state, exclude=peer.ident)
            if best is not None:
                self._graft(state, feed, best, now)
            elif link.remote > state.pending:
                self._arm_stall(feed, now)

    def _stop(self, feed: FeedId, now: float) -> None:
        """Stop replicating `feed` with everyone: -1 to every peer."""
        state = self._feeds.pop(feed, None)
        self._waiting.pop(feed, None)
        if self._ranges is not None:
            self._ranges.forget(feed)
        if state is None:
            return
        for ident in state.links:
            peer = self._peers[ident]
            del peer.links[feed]
            if peer.opened:
                self._queue(peer, feed, now, urgent=True)

    def _orphaned(self, state: _Feed, feed: FeedId, now: float) -> None:
        """Our source of `feed` is gone and nobody is ahead to take over: tell the peers we
        push it to that we have nothing more (a note with our seq). To each of them we are
        now an idle source, so its first announcement from elsewhere grafts at once
        instead of waiting out a race (a broken tree below a crash heals in one round)."""
        for link in state.links.values():
            if link.tx:
                self._queue(self._peers[link.peer], feed, now, urgent=True)

    def _drop_peer(self, ident: PeerId, now: float) -> None:
        peer = self._peers.pop(ident, None)
        if peer is None:
            return
        self._dirty.discard(ident)
        self._acking.discard(ident)
        orphaned: list[tuple[FeedId, _Feed]] = []
        for feed in peer.links:
            state = self._feeds.get(feed)
            if state is None:
                continue
            del state.links[ident]
            state.lost_from.discard(ident)
            if state.leader == ident:
                state.leader = None
                state.streak = 0
            if state.race_peer == ident:
                state.race_peer = None
            if state.eager == ident:
                state.eager = None
                orphaned.append((feed, state))
        if self._ranges is not None:
            self._ranges.disconnect(ident)
        # Only feeds we replicate are remembered past the session (bounded by our scope).
        feeds = self._feeds
        theirs = {feed: seq for feed, seq in peer.theirs.items() if feed in feeds}
        record = PeerRecord(theirs, dict(peer.ours))
        self._records[ident] = record
        self._out.append(PersistRecord(ident, record))
        for feed, state in orphaned:
            self._reassign(state, feed, now)
            if state.eager is None:
                self._orphaned(state, feed, now)
