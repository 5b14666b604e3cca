"""The replication manager: the node's one EBT `Replicator`, driven by sessions and the Store.

The `Replicator` (net/ebt.py) decides everything about replication (docs/ebt.md) and hands out
actions; this module only *executes* them against the network and the database:

- ``SendNotes`` / ``SendMessages`` are encoded at once into the peer's box-stream
  (synchronous writes keep the order the core chose); the transport buffers them.
- ``Push`` adds the feed to that peer's push set; one pusher task per peer reads
  the Store in batches (several feeds per ``msgs`` frame), reports ``pushed()`` and
  awaits ``drain()`` so a slow peer slows only its own pusher (back-pressure).
- ``StoreMessages`` go to one store task that validates and writes everything queued
  so far in a single ``Store.add_received`` call (runs are batch-validated there),
  then reports ``stored()`` / ``rejected()``. The reading side waits when too many
  messages are queued, so a fast sender cannot fill our memory.
- ``PersistRecord`` saves the per-peer clock record (request skipping).

There is one session per remote key: a second connection from the same key replaces
the first, which is closed with ``bye "replaced"``. Errors of one peer (bad frame,
forged or forked message) are recorded for that peer and never stop the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from net.budget import TokenBucket
from net.ebt import (
    Action,
    EbtConfig,
    FeedId,
    LinkState,
    PeerId,
    PeerRecord,
    PersistRecord,
    Push,
    Replicator,
    RequestRange,
    SendMessages,
    SendNotes,
    StoreMessages,
)
from net.errors import RemoteProtocolError
from net.frames import Clock, Msgs, RangeDone, RangeMsgs, RangeRequest
from store.db import AddResult, Store
from store.faults import Fault
from store.limits import (
    DUPLICATE_RATIO,
    DUPLICATES_BEFORE_CUTOFF,
    MAX_DUPLICATE_CHECKS,
    MAX_QUEUED_PER_PEER,
    MAX_REMEMBERED_PEERS,
    NOTES_BURST,
    NOTES_PER_SECOND,
)
from store.message import ForkDetected, InvalidMessage, Message, feed_ref, message_id, peek_feed_seq
from store.verify import Ahead

log = logging.getLogger(__name__)


# A msgs frame must stay under the 1 MiB frame limit; messages are at most 8 KiB.
MAX_MSGS_FRAME_BYTES = 512 * 1024
PUSH_BATCH = 2000  # most messages read from the Store per feed per round
ROUND_MESSAGES = 10_000  # a round over all pushed feeds aims at this many messages
MIN_PUSH_CHUNK = 20
MAX_PENDING_STORE = 20_000  # queued received messages before readers wait
TICK_INTERVAL = 0.25
MAX_OPEN_RANGES = 32  # range requests a peer may have waiting for answers from us
RANGE_STORE_BATCH = 10_000  # range answers stored in one write, at most (messages)


class Session(Protocol):
    """What the manager needs from one live, authenticated connection (net/peer.py)."""

    @property
    def remote(self) -> bytes: ...

    @property
    def initiator(self) -> bool: ...

    @property
    def direction(self) -> str:
        """ "out" when we dialled, "in" when the peer did."""
        ...

    address: str | None
    """Where the peer was reached (host:port), if known."""
    rtt_ms: float | None
    """The last ping's round trip, None before the first pong."""
    bytes_in: int
    bytes_out: int
    """Bytes received and sent on the socket (box-stream framing included)."""

    def send_frame(self, frame: Any) -> int:
        """Encode and queue one frame; returns the encoded size in bytes."""
        ...

    async def async_drain(self) -> None: ...

    def close(self, reason: str) -> None: ...


@dataclass(slots=True)
class Counters:
    """Running totals of what crossed the wire, for status.json and the benchmarks."""

    notes_frames_sent: int = 0
    notes_entries_sent: int = 0
    notes_frames_received: int = 0
    notes_entries_received: int = 0
    msgs_frames_sent: int = 0
    msgs_sent: int = 0  # payload transmissions
    msgs_received: int = 0
    msgs_stored: int = 0
    msgs_rejected: int = 0
    duplicates_received: int = 0
    duplicates_unchecked: int = 0  # copies not fork-checked (over its bound, or the store failed)
    peers_cut_off: int = 0  # sessions closed for sending mostly copies
    bytes_sent: int = 0

    def as_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


@dataclass(slots=True)
class PeerStats:
    """What we keep about one remote key across its sessions."""

    msgs_in: int = 0
    msgs_out: int = 0
    bytes_out: int = 0
    last_error: str | None = None
    last_error_at: float | None = None
    connected_since: float | None = None
    last_seen: float = 0.0  # wall clock of its last attach or detach
    cut_off: str | None = None  # why we cut its last session off (shown in the peers view)


@dataclass(slots=True)
class _PeerState:
    session: Session
    notes: TokenBucket  # notes it may still send
    new: int = 0  # messages of this session we did not hold
    copies: int = 0  # ... and copies of messages we hold
    push_feeds: deque[FeedId] = field(default_factory=deque)
    push_set: set[FeedId] = field(default_factory=set)
    push_wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    pusher: asyncio.Task[None] | None = None
    ranges: deque[RangeRequest] = field(default_factory=deque)  # their requests to answer
    ranges_wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    server: asyncio.Task[None] | None = None


class ReplicationManager:
    """Runs the node's one `Replicator` against live sessions and the Store."""

    def __init__(
        self,
        store: Store,
        local_clock: dict[FeedId, int],
        wanted: Iterable[FeedId],
        *,
        config: EbtConfig | None = None,
        shareable: Callable[[Any, FeedId], bool] | None = None,
        now: Callable[[], float] = time.monotonic,
        on_stored: Callable[[list[Message]], None] | None = None,
        on_error: Callable[[bytes, str], None] | None = None,
        on_store_error: Callable[[str | None], None] | None = None,
        own: FeedId | None = None,
        held_from: dict[FeedId, int] | None = None,
    ) -> None:
        self.store = store
        wanted = set(wanted)
        self.replicator = Replicator(
            local_clock,
            wanted,
            config if config is not None else EbtConfig(),
            shareable,
            own,
            held_from,
        )
        self.counters = Counters()
        self.wanted: set[FeedId] = set(wanted)
        self.peer_stats: dict[bytes, PeerStats] = {}
        self._peers: dict[bytes, _PeerState] = {}
        self._now = now
        self._on_stored = on_stored
        self._on_error = on_error
        self._on_store_error = on_store_error
        # Whether storing received messages fails now (a full disk), and the back-off.
        self.store_fault = Fault(log, "storing received messages")
        # received runs waiting for the store, each with its signatures being checked
        # on the verify pool meanwhile (store.verify.Ahead)
        self._store_queue: deque[tuple[bytes | None, FeedId, tuple[bytes, ...], Ahead]] = deque()
        self._store_pending = 0
        self.queued: dict[Any, int] = {}  # received messages queued for the store, per peer
        self._store_wakeup = asyncio.Event()
        self._store_room = asyncio.Event()
        self._store_room.set()
        self._store_task: asyncio.Task[None] | None = None
        # Range replies (and their ends, in order): stored behind live batches.
        # (their signatures checked on the verify pool meanwhile, as live runs are)
        self._range_queue: deque[tuple[bytes, RangeMsgs | RangeDone, Ahead | None]] = deque()
        # Messages at seqs we already hold (the core drops them): checked for forks.
        self._duplicates: deque[tuple[bytes, list[bytes]]] = deque()
        self.duplicates_queued = 0  # messages in _duplicates (at most MAX_DUPLICATE_CHECKS)
        self.forked: set[FeedId] = set()  # feeds found forked while running
        self._forget: set[bytes] = set()  # keys to forget when their session ends
        self._tick_task: asyncio.Task[None] | None = None
        self._closed = False
        self._persisting: set[asyncio.Task[None]] = set()
        self._records: dict[Any, PeerRecord] = {}
        self.first_connected_at: float | None = None  # wall clock, for the benchmarks
        self.last_stored_at: float | None = None

    # -- lifecycle -------------------------------------------------------------

    def start(self) -> None:
        """Start the store writer and the 250 ms tick (call inside the event loop)."""
        if self._store_task is None:
            self._store_task = asyncio.create_task(self._async_store_loop(), name="store-writer")
        if self._tick_task is None:
            self._tick_task = asyncio.create_task(self._async_tick_loop(), name="ebt-tick")

    async def async_stop(self) -> None:
        """Detach every session (persisting its record) and stop the tasks."""
        self._closed = True
        for key in list(self._peers):
            state = self._peers[key]
            self.close_session(state.session, "shutting down")
            await self.async_detach(state.session)
        await self._async_flush_store()
        await self.async_persisted()
        for task in (self._tick_task, self._store_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        self._tick_task = self._store_task = None

    # -- sessions --------------------------------------------------------------

    def link(self, key: bytes) -> dict[FeedId, LinkState]:
        """Per feed state of the link to `key` (empty when not linked): the typed view."""
        return self.replicator.link(key)

    def local_seq(self, feed: FeedId) -> int:
        """How many messages of `feed` we hold."""
        return self.replicator.local_clock.get(feed, 0)

    @property
    def local_clock(self) -> Mapping[FeedId, int]:
        """Feed -> the seq we hold, for every feed we hold (read-only)."""
        return self.replicator.local_clock

    def eager_source(self, feed: FeedId) -> bytes | None:
        """The linked peer we take `feed` from eagerly, if any."""
        source = self.replicator.eager_source(feed)
        return source if isinstance(source, bytes) else None

    def sessions(self) -> dict[bytes, Session]:
        return {key: state.session for key, state in self._peers.items()}

    def session(self, key: bytes) -> Session | None:
        state = self._peers.get(key)
        return state.session if state is not None else None

    async def async_attach(self, session: Session) -> None:
        """A new authenticated session: replace any older one, then open EBT on it."""
        key = session.remote
        if self._closed:
            session.close("shutting down")
            return
        old = self._peers.get(key)
        if old is not None:
            log.info("%s connected again: the new connection replaces the old", feed_ref(key))
            self.close_session(old.session, "replaced")
            await self.async_detach(old.session)
        # A record handed out in this process is newer than what may still be on its
        # way to the database.
        record = self._records.get(key)
        if record is None:
            record = await self._async_load_record(key)
        if key in self._peers or self._closed:  # replaced again (or stopped) while loading
            session.close("shutting down" if self._closed else "replaced")
            return
        state = _PeerState(session, TokenBucket(NOTES_PER_SECOND, NOTES_BURST, self._now()))
        self._peers[key] = state
        stats = self.peer_stats.setdefault(key, PeerStats())
        stats.connected_since = stats.last_seen = time.time()
        stats.cut_off = None
        if self.first_connected_at is None:
            self.first_connected_at = stats.connected_since
        state.pusher = asyncio.create_task(self._async_push_loop(key, state), name="pusher")
        state.server = asyncio.create_task(self._async_range_server(key, state), name="ranges")
        self._run(
            self.replicator.connect(key, self._now(), initiator=session.initiator, record=record)
        )

    def close_session(self, session: Session, reason: str) -> None:
        """Close `session` cleanly: notes and acks the core holds back go out before the bye.

        Without this, acks waiting for `ack_delay` are lost and a reconnect within that
        time re-sends the feeds they were about.
        """
        key = session.remote
        if self._current(key) is session:
            self._run(self.replicator.flush(key, self._now()))
        session.close(reason)

    def hangup(self, key: bytes, reason: str) -> None:
        """Close the current session of `key` cleanly (the gossip schedule's hang-up)."""
        session = self._current(key)
        if session is not None:
            self.close_session(session, reason)

    async def async_detach(self, session: Session, error: str | None = None) -> None:
        """The session ended (cleanly or not); only the current session of a key counts."""
        key = session.remote
        if error is not None:
            self.record_error(key, error)
        state = self._peers.get(key)
        if state is None or state.session is not session:
            return
        del self._peers[key]
        stats = self.peer_stats.get(key)
        if stats is not None:
            stats.connected_since = None
            stats.last_seen = time.time()
        for task in (state.pusher, state.server):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        self._run(self.replicator.disconnect(key, self._now()))
        if key in self._forget:
            self._forget.discard(key)
            self.peer_stats.pop(key, None)
            self._records.pop(key, None)
            self.replicator.forget(key)
        self._forget_old_peers()

    def forget_on_detach(self, key: bytes) -> None:
        """Keep nothing of `key` once its session ends (a failed invite guess)."""
        self._forget.add(key)

    def _forget_old_peers(self) -> None:
        """Keep what we know of at most MAX_REMEMBERED_PEERS disconnected peers (the
        most recently seen): one stranger after another must not grow memory."""
        gone = [key for key in self.peer_stats if key not in self._peers]
        if len(gone) <= MAX_REMEMBERED_PEERS:
            return
        gone.sort(key=lambda key: self.peer_stats[key].last_seen)
        for key in gone[: len(gone) - MAX_REMEMBERED_PEERS]:
            del self.peer_stats[key]
            self._records.pop(key, None)
            self.replicator.forget(key)

    def record_error(self, key: bytes, error: str) -> None:
        """Remember the last error of a peer (shown in status) and log it."""
        stats = self.peer_stats.setdefault(key, PeerStats())
        stats.last_error = error
        stats.last_error_at = time.time()
        if error.startswith("cut off:"):
            stats.cut_off = error
        log.warning("peer %s: %s", feed_ref(key), error)
        if self._on_error is not None:
            self._on_error(key, error)

    def forget(self, key: bytes) -> None:
        """Drop what we keep about a peer without a link (`treechat forget`)."""
        if self.session(key) is None:
            self.peer_stats.pop(key, None)

    # -- frames from a session -------------------------------------------------

    def receive_notes(self, session: Session, notes: dict[FeedId, int]) -> None:
        """A clock frame; a peer that sends notes faster than NOTES_PER_SECOND after a
        burst of NOTES_BURST is cut off (each note costs us work on the event loop)."""
        key = session.remote
        state = self._peers.get(key)
        if state is None or state.session is not session:
            return
        self.counters.notes_frames_received += 1
        self.counters.notes_entries_received += len(notes)
        now = self._now()
        if not state.notes.take(now, len(notes)):
            self.counters.peers_cut_off += 1
            why = f"too many notes (more than {NOTES_PER_SECOND} a second)"
            self.record_error(key, f"cut off: it sent {why}")
            self.close_session(session, f"you send {why}")
            return
        self._run(self.replicator.receive_notes(key, notes, now))

    async def async_receive_messages(self, session: Session, raws: Sequence[bytes]) -> None:
        """A ``msgs`` frame: hand (feed, seq, raw) to the core; wait if the store lags.

        Copies of messages we hold cost no write; a peer whose traffic is mostly copies
        is cut off (store/limits.py), and one peer's queue waits on its own bound.
        """
        key = session.remote
        state = self._peers.get(key)
        if state is None or state.session is not session:
            return
        batch: list[tuple[FeedId, int, bytes]] = []
        append = batch.append
        local = self.replicator.local_clock
        held: list[bytes] = []
        for raw in raws:
            peeked = peek_feed_seq(raw)
            if peeked is None:
                self.counters.msgs_rejected += 1
                self.record_error(key, "sent something that is not a message")
                continue
            append((peeked[0], peeked[1], raw))
            if peeked[1] <= local.get(peeked[0], 0):
                held.append(raw)  # a duplicate for the core; the same message, or a fork?
        state.copies += len(held)
        state.new += len(batch) - len(held)
        if state.copies >= DUPLICATES_BEFORE_CUTOFF and state.copies > DUPLICATE_RATIO * state.new:
            self.counters.peers_cut_off += 1
            why = f"mostly copies of messages we hold ({state.copies} copies, {state.new} new)"
            self.record_error(key, f"cut off: it sent {why}")
            self.close_session(session, f"you send {why}")
            return
        if held:
            self._check_duplicates(key, held)
        self.counters.msgs_received += len(batch)
        stats = self.peer_stats.get(key)
        if stats is not None:
            stats.msgs_in += len(batch)
        if batch:
            self._run(self.replicator.receive_messages(key, batch, self._now()))
        await self._async_wait_for_room(key)

    async def _async_wait_for_room(self, key: bytes) -> None:
        """Wait while the store queue is over its bound, node-wide or for this peer."""
        while not self._closed and (
            self._store_pending > MAX_PENDING_STORE or self.queued.get(key, 0) > MAX_QUEUED_PER_PEER
        ):
            self._store_room.clear()
            await self._store_room.wait()

    async def async_receive_range(
        self, session: Session, frame: RangeRequest | RangeMsgs | RangeDone
    ) -> None:
        """A range request (answered by the range server) or a part of an answer to ours
        (stored behind live batches, the end kept in order with the messages)."""
        key = session.remote
        state = self._peers.get(key)
        if state is None or state.session is not session:
            return
        if isinstance(frame, RangeRequest):
            if len(state.ranges) >= MAX_OPEN_RANGES:
                raise RemoteProtocolError(
                    f"the peer asked for more than {MAX_OPEN_RANGES} ranges at once"
                )
            state.ranges.append(frame)
            state.ranges_wakeup.set()
            return
        if isinstance(frame, RangeMsgs):
            self.counters.msgs_received += len(frame.messages)
            self._store_pending += len(frame.messages)
            self.queued[key] = self.queued.get(key, 0) + len(frame.messages)
        self.replicator.range_answering(key, self._now())
        ahead = Ahead(frame.messages) if isinstance(frame, RangeMsgs) else None
        self._range_queue.append((key, frame, ahead))
        self._store_wakeup.set()
        await self._async_wait_for_room(key)

    def now(self) -> float:
        """The time on the manager's clock (the one the core's times are on)."""
        return self._now()

    def fetch_older(self, feed: FeedId, count: int) -> None:
        """Scrolling back: ask connected peers for `count` older messages of `feed`."""
        self._run(self.replicator.fetch_older(feed, count, self._now()))

    def set_history(self, feed: FeedId, history: int | None) -> None:
        """Keep fetching the newest `history` messages of `feed` (None = all)."""
        self._run(self.replicator.set_history(feed, history, self._now()))

    def reset_history(self, feed: FeedId) -> None:
        """`feed` follows the configured history setting again."""
        self._run(self.replicator.reset_history(feed, self._now()))

    # -- local appends ---------------------------------------------------------

    def local_messages(self, messages: Sequence[Message]) -> None:
        """Messages that reached our Store by another way (own posts, another process)."""
        now = self._now()
        local = self.replicator.local_clock
        for message in messages:
            if message.seq != local.get(message.author, 0) + 1:
                continue  # already known to the core (or a gap: the poller will read it)
            self._run(
                self.replicator.stored(message.author, message.seq, message.raw, now, source=None)
            )

    async def async_catch_up_store(self) -> int:
        """Feed the core every message the Store holds beyond what it knows (external appends)."""
        heads = await self.store.clock()
        added = 0
        for feed, seq in heads.items():
            known = self.replicator.local_clock.get(feed, 0)
            if seq <= known or not self._is_tracked(feed):
                continue
            while True:
                known = self.replicator.local_clock.get(feed, 0)
                if known >= seq:
                    break
                raws = await self.store.get_range(feed, known + 1, PUSH_BATCH)
                if not raws:
                    break
                now = self._now()
                for offset, raw in enumerate(raws):
                    msg_seq = known + 1 + offset
                    if msg_seq != self.replicator.local_clock.get(feed, 0) + 1:
                        continue
                    self._run(self.replicator.stored(feed, msg_seq, raw, now, source=None))
                    added += 1
        return added

    def _is_tracked(self, feed: FeedId) -> bool:
        return feed in self.wanted or feed in self.replicator.local_clock

    # -- scope -----------------------------------------------------------------

    def want(self, feed: FeedId) -> None:
        self.wanted.add(feed)
        self._run(self.replicator.want(feed, self._now()))

    def unwant(self, feed: FeedId) -> None:
        self.wanted.discard(feed)
        self._run(self.replicator.unwant(feed, self._now()))

    def block(self, feed: FeedId) -> None:
        self.wanted.discard(feed)
        self._run(self.replicator.block(feed, self._now()))
        state = self._peers.get(feed)
        if state is not None:
            state.session.close("blocked")

    # -- actions ---------------------------------------------------------------

    def _current(self, key: bytes) -> Session | None:
        state = self._peers.get(key)
        return state.session if state is not None else None

    def _run(self, actions: Iterable[Action]) -> None:
        for action in actions:
            if isinstance(action, RequestRange):
                self._send_range_request(action)
                continue
            key = _session_key(action.peer)
            if isinstance(action, StoreMessages):
                self._queue_store(key, action.feed, tuple(action.payloads))
            elif key is None:
                continue  # nobody to send to
            elif isinstance(action, SendNotes):
                self._send_notes(key, action.notes)
            elif isinstance(action, SendMessages):
                self._send_messages(key, list(action.payloads))
            elif isinstance(action, Push):
                self._schedule_push(key, action.feed)
            elif isinstance(action, PersistRecord):
                self._records[action.peer] = action.record
                task = asyncio.get_running_loop().create_task(
                    self._async_save_record(action.peer, action.record)
                )
                self._persisting.add(task)
                task.add_done_callback(self._persisting.discard)

    def _send_notes(self, peer: bytes, notes: dict[FeedId, int]) -> None:
        state = self._peers.get(peer)
        if state is None:
            return  # an empty clock is still sent: it is the acceptor's opening
        size = state.session.send_frame(Clock(dict(notes)))
        self.counters.notes_frames_sent += 1
        self.counters.notes_entries_sent += len(notes)
        self.counters.bytes_sent += size

    def _send_messages(self, peer: bytes, payloads: list[bytes]) -> None:
        state = self._peers.get(peer)
        if state is None or not payloads:
            return
        size = state.session.send_frame(Msgs(tuple(payloads)))
        self.counters.msgs_frames_sent += 1
        self.counters.msgs_sent += len(payloads)
        self.counters.bytes_sent += size
        stats = self.peer_stats.get(peer)
        if stats is not None:
            stats.msgs_out += len(payloads)
            stats.bytes_out += size

    def _send_range_request(self, action: RequestRange) -> None:
        state = self._peers.get(action.peer)  # type: ignore[call-overload]
        if state is None:
            return
        size = state.session.send_frame(RangeRequest(action.feed, action.first, action.last))
        self.counters.bytes_sent += size

    async def _async_range_server(self, key: bytes, state: _PeerState) -> None:
        """Answer one peer's range requests in order, from the store, with back-pressure."""
        try:
            while True:
                await state.ranges_wakeup.wait()
                state.ranges_wakeup.clear()
                while state.ranges:
                    request = state.ranges.popleft()
                    count = 0
                    if self.replicator.shares(key, request.feed):
                        count = await self._async_answer_range(key, state, request)
                    if self._peers.get(key) is not state:
                        return
                    size = state.session.send_frame(
                        RangeDone(request.feed, request.first, request.last, count)
                    )
                    self.counters.bytes_sent += size
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("answering range requests of %s failed", feed_ref(key))
            self.record_error(key, f"could not answer its range requests: {exc}")
            state.session.close("internal error")

    async def _async_answer_range(
        self, key: bytes, state: _PeerState, request: RangeRequest
    ) -> int:
        raws = await self.store.get_held(request.feed, request.first, request.last)
        frames: list[list[bytes]] = [[]]
        frame_bytes = 0
        for raw in raws:
            if frames[-1] and frame_bytes + len(raw) > MAX_MSGS_FRAME_BYTES:
                frames.append([])
                frame_bytes = 0
            frames[-1].append(raw)
            frame_bytes += len(raw)
        sent = 0
        for frame in frames:
            if not frame:
                continue
            size = state.session.send_frame(RangeMsgs(tuple(frame)))
            self.counters.msgs_frames_sent += 1
            self.counters.msgs_sent += len(frame)
            self.counters.bytes_sent += size
            stats = self.peer_stats.get(key)
            if stats is not None:
                stats.msgs_out += len(frame)
                stats.bytes_out += size
            sent += len(frame)
            await state.session.async_drain()
            if self._peers.get(key) is not state:
                break
        return sent

    def _schedule_push(self, peer: bytes, feed: FeedId) -> None:
        state = self._peers.get(peer)
        if state is None:
            return
        if feed not in state.push_set:
            state.push_set.add(feed)
            state.push_feeds.append(feed)
        state.push_wakeup.set()

    async def _async_push_loop(self, key: bytes, state: _PeerState) -> None:
        """Send stored messages to one peer for every feed it wants pushed, in rounds.

        If reading our store fails, the link is closed (and recorded): a pusher that
        died silently would leave every feed it pushes stalled for the whole session.
        """
        try:
            await self._async_push_rounds(key, state)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("pushing to %s failed", feed_ref(key))
            self.record_error(key, f"could not send it our messages: {exc}")
            state.session.close("internal error")

    async def _async_push_rounds(self, key: bytes, state: _PeerState) -> None:
        while True:
            await state.push_wakeup.wait()
            state.push_wakeup.clear()
            while state.push_feeds:
                frame: list[bytes] = []
                frame_bytes = 0
                sent: list[tuple[FeedId, int]] = []
                rounds = len(state.push_feeds)
                # Every feed gets a slice each round, so none waits so long behind the
                # others that the receiver's stall timer gives up on it and asks again.
                chunk = max(MIN_PUSH_CHUNK, min(PUSH_BATCH, ROUND_MESSAGES // rounds))
                while rounds and state.push_feeds and frame_bytes < MAX_MSGS_FRAME_BYTES:
                    rounds -= 1
                    feed = state.push_feeds.popleft()
                    cursor = self.replicator.push_cursor(key, feed)
                    if cursor is None:
                        state.push_set.discard(feed)
                        continue
                    raws = await self.store.get_range(feed, cursor, chunk)
                    if self._peers.get(key) is not state:
                        return
                    # The core may have moved on while we read (a live push, a prune).
                    if self.replicator.push_cursor(key, feed) != cursor or not raws:
                        if raws or self.replicator.push_cursor(key, feed) != cursor:
                            state.push_feeds.append(feed)
                        else:
                            state.push_set.discard(feed)
                        continue
                    room = MAX_MSGS_FRAME_BYTES - frame_bytes
                    taken = 0
                    for raw in raws:
                        if taken and len(raw) > room:
                            break
                        room -= len(raw)
                        frame_bytes += len(raw)
                        frame.append(raw)
                        taken += 1
                    sent.append((feed, cursor + taken - 1))
                    state.push_feeds.append(feed)
                if frame:
                    self._send_messages(key, frame)
                    now = self._now()
                    for feed, last in sent:
                        self._run(self.replicator.pushed(key, feed, last, now))
                    await state.session.async_drain()
                    if self._peers.get(key) is not state:
                        return

    # -- storing received messages ---------------------------------------------

    def _queue_store(self, peer: bytes | None, feed: FeedId, payloads: tuple[bytes, ...]) -> None:
        if not payloads:
            return
        self._store_queue.append((peer, feed, payloads, Ahead(payloads)))
        self._store_pending += len(payloads)
        self.queued[peer] = self.queued.get(peer, 0) + len(payloads)
        self._store_wakeup.set()

    async def _async_store_loop(self) -> None:
        while True:
            await self._store_wakeup.wait()
            self._store_wakeup.clear()
            while self._store_queue or self._duplicates or self._range_queue:
                if self._store_queue:
                    await self._async_store_batch()
                # Against a failing store, one write a pass: the live batch while it is
                # queued (it goes back to the front), else the fork check or the ranges.
                if self.store_error is None or not self._store_queue:
                    if self._duplicates:
                        await self._async_check_duplicates()
                    if self._range_queue and not self._store_queue:  # live goes first
                        await self._async_store_ranges()
                if self.store_error is not None:  # no busy loop against a failing disk
                    await asyncio.sleep(self.store_fault.delay)

    async def _async_flush_store(self) -> None:
        while self._store_queue:
            await self._async_store_batch()
            if self.store_error is not None:  # peers send them again next time
                log.warning("stopping with %d received messages not stored", self._store_pending)
                return

    def _check_duplicates(self, peer: bytes, raws: list[bytes]) -> None:
        """Queue messages at seqs we hold for the fork check (rare after a sync); over
        MAX_DUPLICATE_CHECKS they are dropped unchecked."""
        wanted, forked = self.wanted, self.forked
        raws = [raw for raw in raws if (raw[4:36] in wanted and raw[4:36] not in forked)]
        if not raws:
            return
        if self.duplicates_queued + len(raws) > MAX_DUPLICATE_CHECKS:
            self.counters.duplicates_unchecked += len(raws)
            return
        self.duplicates_queued += len(raws)
        self._duplicates.append((peer, raws))
        self._store_wakeup.set()

    async def _async_check_duplicates(self) -> None:
        """A different, validly signed message at a held seq is a fork: the store keeps
        the proof and marks the feed, and the core stops replicating it. Exact copies
        are found by one read of the ids we hold and cost no write."""
        checks = list(self._duplicates)
        self._duplicates.clear()
        self.duplicates_queued = 0
        for peer, raws in checks:
            try:
                raws = await self._async_not_held(raws)
                if not raws:
                    continue
                result = await self.store.add_received(raws, source=peer)
            except Exception as exc:  # the database failed: these copies go unchecked (a
                # fork still shows when the next new message fails to link)
                self.counters.duplicates_unchecked += len(raws)
                self._store_failed(exc)
                continue
            self._store_recovered()
            for error in result.errors:
                if isinstance(error, ForkDetected) and error.feed not in self.forked:
                    self._report_invalid(error, peer)

    async def _async_not_held(self, raws: list[bytes]) -> list[bytes]:
        """Those of `raws` that differ from the message we hold at their seq."""
        by_feed: dict[FeedId, dict[int, bytes]] = {}
        for raw in raws:
            peeked = peek_feed_seq(raw)
            if peeked is not None:
                by_feed.setdefault(peeked[0], {})[peeked[1]] = raw
        different: list[bytes] = []
        for feed, at in by_feed.items():
            held = await self.store.message_ids(feed, list(at))
            different.extend(raw for seq, raw in at.items() if held.get(seq) != message_id(raw))
        return different

    async def _async_store_batch(self) -> None:
        items = list(self._store_queue)
        self._store_queue.clear()
        count = sum(len(payloads) for _, _, payloads, _ in items)
        # Consecutive items of one peer form one add_received call (its provenance);
        # the queue order keeps every feed in order across calls. The core hands out
        # contiguous runs, so one peek at the first message gives every seq.
        runs: list[tuple[Any, list[bytes], dict[FeedId, int], list[Ahead]]] = []
        local = self.replicator.local_clock
        for peer, feed, payloads, ahead in items:
            peeked = peek_feed_seq(payloads[0])
            if peeked is None:
                continue
            first = peeked[1]
            skip = max(0, local.get(feed, 0) + 1 - first)
            if skip >= len(payloads):
                continue
            if not runs or runs[-1][0] != peer:
                runs.append((peer, [], {}, []))
            _, raws, expected, checks = runs[-1]
            checks.append(ahead)
            raws.extend(payloads[skip:] if skip else payloads)
            last = first + len(payloads) - 1
            if last > expected.get(feed, 0):
                expected[feed] = last
        try:
            for peer, raws, expected, checks in runs:
                verdicts: dict[bytes, bool] = {}
                for check in checks:
                    await check.verdicts(verdicts)
                result = await self.store.add_received(
                    raws, source=peer if isinstance(peer, bytes) else None, verdicts=verdicts
                )
                self._apply_result(result, peer, expected)
        except Exception as exc:  # the database failed (disk full, read-only): not the
            # senders' fault. Everything goes back to the front of the queue, in order, and
            # is retried after a back-off (what was stored is skipped then); nobody is
            # distrusted, and the batches behind it are not judged against a head that
            # never moved.
            self._store_queue.extendleft(reversed(items))
            self._store_failed(exc)
            return
        self._store_recovered()
        self._store_pending -= count
        for peer, _, payloads, _ in items:
            self._release(peer, len(payloads))

    @property
    def store_error(self) -> str | None:
        """Why storing received messages fails now (None: it works)."""
        return self.store_fault.error

    def _store_failed(self, exc: Exception) -> None:
        """The store refused a write (of a batch, a range reply or a fork check): back
        off; one log line when it starts failing, none per attempt."""
        if self.store_fault.failed(exc) and self._on_store_error is not None:
            self._on_store_error(self.store_fault.error)

    def _store_recovered(self) -> None:
        if self.store_fault.worked() and self._on_store_error is not None:
            self._on_store_error(None)

    def _release(self, peer: bytes | None, count: int) -> None:
        """`count` queued messages of `peer` are done with; readers recheck their bounds."""
        left = self.queued.get(peer, 0) - count
        if left > 0:
            self.queued[peer] = left
        else:
            self.queued.pop(peer, None)
        self._store_room.set()

    async def _async_store_ranges(self) -> None:
        """Store queued range replies (one peer's run at a time), then hand the core the
        new latest seqs, the held ranges and the ends of the answered requests."""
        items: list[tuple[bytes, RangeMsgs | RangeDone, Ahead | None]] = []
        count = 0
        # One peer's queued answers at a time, many per write (a write costs about the
        # same for 100 messages as for 1,000); ends are acted on once all is stored.
        while self._range_queue and (not items or items[-1][0] == self._range_queue[0][0]):
            if count >= RANGE_STORE_BATCH and isinstance(self._range_queue[0][1], RangeMsgs):
                break
            items.append(self._range_queue.popleft())
            frame = items[-1][1]
            if isinstance(frame, RangeMsgs):
                count += len(frame.messages)
        peer = items[0][0]
        raws = [raw for _, f, _ in items if isinstance(f, RangeMsgs) for raw in f.messages]
        try:
            if raws:
                verdicts: dict[bytes, bool] = {}
                for _, _, ahead in items:
                    if ahead is not None:
                        await ahead.verdicts(verdicts)
                result = await self.store.add_received(
                    raws, source=peer, sparse=True, verdicts=verdicts
                )
                self._store_recovered()
                await self._async_apply_ranges(result, peer)
        except Exception as exc:  # the database failed: the requests are asked again
            self._store_failed(exc)
        finally:
            self._store_pending -= len(raws)
            self._release(peer, len(raws))
        now = self._now()
        for _, frame, _ in items:
            if isinstance(frame, RangeDone):
                self._run(
                    self.replicator.range_done(
                        peer, frame.feed, frame.first, frame.last, frame.count, now
                    )
                )

    async def _async_apply_ranges(self, result: AddResult, peer: bytes) -> None:
        now = self._now()
        local = self.replicator.local_clock
        newest: dict[FeedId, Message] = {}
        for message in result.stored:
            top = newest.get(message.author)
            if top is None or message.seq > top.seq:
                newest[message.author] = message
        self.counters.msgs_stored += len(result.stored)
        if result.stored:
            self.last_stored_at = time.time()
            if self._on_stored is not None:
                self._on_stored(result.stored)
        for feed, message in newest.items():
            if message.seq > local.get(feed, 0):
                self._run(self.replicator.stored(feed, message.seq, message.raw, now, source=peer))
            ranges = await self.store.ranges(feed)
            if ranges:
                self._run(self.replicator.range_stored(feed, ranges[-1][0], self._now()))
        for error in result.errors:
            self._report_invalid(error, peer)

    def _apply_result(
        self, result: AddResult, peer: bytes | None, expected: dict[FeedId, int]
    ) -> None:
        now = self._now()
        local = self.replicator.local_clock
        stored_fn = self.replicator.stored
        run = self._run
        stored = result.stored
        for message in stored:
            author, seq = message.author, message.seq
            if seq == local.get(author, 0) + 1:
                run(stored_fn(author, seq, message.raw, now, source=peer))
        self.counters.msgs_stored += len(stored)
        if stored:
            self.last_stored_at = time.time()
            if self._on_stored is not None:
                self._on_stored(stored)
        reported: set[FeedId] = set()
        for error in result.errors:
            feed = self._report_invalid(error, peer)
            if feed is not None:
                reported.add(feed)
        # Whatever was handed to the store and is still missing (an error without a
        # readable feed, a message the store skipped) must be refused to the core too,
        # or it would wait for it forever.
        for feed, last in expected.items():
            if feed not in reported and last > local.get(feed, 0):
                self.counters.msgs_rejected += 1
                run(self.replicator.rejected(feed, peer, now, fork=False))
                if peer is not None:
                    self.record_error(peer, f"sent messages of {feed_ref(feed)} that do not fit")

    def _report_invalid(self, error: InvalidMessage, peer: bytes | None) -> FeedId | None:
        self.counters.msgs_rejected += 1
        feed = error.feed
        fork = isinstance(error, ForkDetected)
        if fork and feed is not None:
            self.forked.add(feed)
        if feed is not None:
            self._run(self.replicator.rejected(feed, peer, self._now(), fork=fork))
        if peer is not None:
            what = "a forked feed" if fork else "an invalid message"
            self.record_error(peer, f"sent {what}: {error}")
        else:
            log.warning("rejected a message: %s", error)
        return feed

    # -- request-skipping records ----------------------------------------------

    async def _async_load_record(self, key: bytes) -> PeerRecord | None:
        try:
            saved = await self.store.load_peer_clock(key)
        except Exception:
            log.exception("could not read the remembered clock of %s", feed_ref(key))
            return None
        if saved is None:
            return None
        return PeerRecord(theirs=dict(saved.theirs), ours=dict(saved.ours))

    async def _async_save_record(self, key: Any, record: PeerRecord) -> None:
        stats = self.peer_stats.get(key)
        if not record.theirs or stats is None or stats.cut_off:
            return  # a stranger passing (told us nothing of our feeds) or one we cut off
        try:
            await self.store.save_peer_clock(key, record.theirs, record.ours)
        except Exception:
            log.exception("could not save the remembered clock of %s", feed_ref(key))

    async def async_persisted(self) -> None:
        """Wait until every record handed out so far is saved."""
        while self._persisting:
            await asyncio.gather(*self._persisting, return_exceptions=True)

    # -- tick ------------------------------------------------------------------

    async def _async_tick_loop(self) -> None:
        while True:
            await asyncio.sleep(TICK_INTERVAL)
            try:
                self._run(self.replicator.tick(self._now()))
            except Exception:
                log.exception("replication tick failed")


def _session_key(peer: PeerId) -> bytes | None:
    """The core holds peers as opaque ids; the manager's are its sessions' keys (None:
    messages no peer delivered, e.g. ours or another process's)."""
    if peer is None or isinstance(peer, bytes):
        return peer
    raise TypeError(f"not a session key: {peer!r}")
