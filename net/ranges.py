"""Newest first: which ranges of which feeds to ask which peer for (sans-IO, no clock).

The EBT core (net/ebt.py) replicates a feed contiguously from our latest seq. A feed far
behind (more than one window) is not grafted; the core hands it to this planner, which
asks a peer that claims it for its *newest messages* (``RangeRequest``): first the
newest `head` of every such feed (the top of each conversation, cheap to verify), then
the rest of its newest window, and once that is stored, fills in older history,
newest first, as far as the feed's history policy wants (``history`` messages,
None = all), plus whatever the user scrolled back for.

Order and fairness: every pending head goes out before any rest of a window, and every
window before any backfill; backfill
takes the feeds in turns, one new range per feed per turn (the next older chunk may
be asked before the last one is answered), so one long feed never holds the others
back. At most `open_per_peer` requests are open per peer. A peer
that answers a request with less than it spans (or not within `timeout`) is not asked
again for that feed below the range's end in this session; when no connected peer is
left to ask, the feed's older history is *unavailable* (the UI says so).

Live messages never wait for any of this: they keep flowing through the EBT core, and
the shells store range replies behind live batches.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass, field

from net.frames import MAX_RANGE

FeedId = bytes
PeerId = Hashable

__all__ = ["HistoryView", "RangeConfig", "RangePlanner", "RequestRange"]


@dataclass(frozen=True, slots=True)
class RangeConfig:
    """Tunables of newest-first replication."""

    window: int = 100
    """A feed more than this far behind is fetched newest window first, not pushed."""
    head: int = 10
    """The first request of such a feed asks only its newest this many (at most
    `window`): every conversation shows its newest message before any feed's whole
    window is checked and stored."""
    chunk: int = 2000
    """Older history is asked this many messages at a time (at most MAX_RANGE)."""
    open_per_peer: int = 16
    """Range requests open at once per peer (the answers stream with back-pressure)."""
    timeout: float = 20.0
    """A request not answered while the peer sends no answers at all for this long counts
    as "the peer lacks it"."""


@dataclass(frozen=True, slots=True)
class RequestRange:
    """Ask `peer` for the messages of `feed` from `first` to `last` it holds."""

    peer: PeerId
    feed: FeedId
    first: int
    last: int


@dataclass(frozen=True, slots=True)
class HistoryView:
    """How much of one feed's history we hold and what is being done about the rest."""

    held_from: int
    """The first seq of our newest held range (0: we hold nothing of it)."""
    wanted_from: int
    """The oldest seq the history policy (and scrolling back) wants."""
    asking: int
    """Peers asked for an older range right now."""
    unavailable: bool
    """Older history is wanted but no connected peer has it."""


@dataclass(slots=True)
class _Request:
    peer: PeerId
    feed: FeedId
    first: int
    last: int
    sent_at: float
    newest: bool  # the head: up to the seq the peer claimed (a short answer is a lie)
    window: bool = False  # the rest of the newest window (before any backfill)


@dataclass(slots=True)
class _FeedHistory:
    held_from: int  # first seq of the newest held range; 0 = nothing held
    extra: int = 0  # messages older than the policy that the user scrolled back for
    newest: int = 0  # a newest window up to this seq is wanted (0: none)
    lacking: dict[PeerId, int] = field(default_factory=dict)  # peer lacks seqs <= this
    unavailable: bool = False


class RangePlanner:
    """Pending windows, backfill and open requests of one node."""

    def __init__(
        self,
        config: RangeConfig,
        history: int | None,
        latest: Callable[[FeedId], int],
        held_from: Mapping[FeedId, int] | None = None,
    ) -> None:
        if not 1 <= config.chunk <= MAX_RANGE or not 1 <= config.window <= MAX_RANGE:
            raise ValueError(f"range window and chunk must be 1..{MAX_RANGE}")
        if config.head < 1:
            raise ValueError("the range head must be at least 1")
        self.config = config
        self.default_history = history
        self._latest = latest
        self._held_from = dict(held_from or {})
        self._history: dict[FeedId, int | None] = {}
        self._feeds: dict[FeedId, _FeedHistory] = {}
        self._open: list[_Request] = []
        self._heard: dict[PeerId, float] = {}  # when a peer last sent range answers
        self._turn = 0  # rotates the backfill start: fair across feeds

    # -- policy --------------------------------------------------------------------

    def history(self, feed: FeedId) -> int | None:
        """How many of the newest messages of `feed` to keep fetching (None = all)."""
        return self._history.get(feed, self.default_history)

    def set_history(self, feed: FeedId, value: int | None) -> None:
        """`feed` keeps the newest `value` messages (None = all), whatever the default."""
        self._history[feed] = value
        self._feed(feed).unavailable = False

    def reset_history(self, feed: FeedId) -> None:
        """`feed` follows the default history setting again."""
        self._history.pop(feed, None)
        self._feed(feed).unavailable = False

    def far(self, feed: FeedId, local: int, claim: int) -> bool:
        """Whether a claim of `claim` is far enough ahead of `local` for a window fetch."""
        history = self.history(feed)
        window = self.config.window if history is None else min(self.config.window, history)
        return claim - local > window

    def older(self, feed: FeedId, count: int) -> None:
        """The user scrolled back: want `count` more messages below what we hold."""
        state = self._feed(feed)
        low = self._wanted_from(feed, state)
        if state.held_from > 0:
            state.extra += max(0, count - max(0, state.held_from - low))
        state.unavailable = False

    # -- events --------------------------------------------------------------------

    def ahead(self, feed: FeedId, seq: int) -> None:
        """A believed peer claims `seq`, far ahead of us: its newest window is wanted."""
        state = self._feed(feed)
        if seq > state.newest:
            state.newest = seq

    def held(self, feed: FeedId, held_from: int) -> None:
        """The store now holds `feed` from `held_from` up to our latest, contiguously."""
        state = self._feed(feed)
        state.held_from = held_from
        if state.newest and state.newest <= self._latest(feed):
            state.newest = 0

    def done(self, peer: PeerId, feed: FeedId, first: int, last: int, count: int) -> bool:
        """`peer` answered the request `first..last` of `feed` with `count` messages.
        True if it was a newest window (asked because the peer claimed `last`)."""
        for index, request in enumerate(self._open):
            if (request.peer, request.feed, request.first, request.last) == (
                peer,
                feed,
                first,
                last,
            ):
                del self._open[index]
                if count < last - first + 1:
                    self._lacks(request)
                return request.newest
        return False

    def answering(self, peer: PeerId, now: float) -> None:
        """Answers from `peer` are arriving: its open requests are not timed out while
        it works through them (a busy peer answers in order, not at once)."""
        self._heard[peer] = now

    def disconnect(self, peer: PeerId) -> None:
        """Its open requests are lost (asked again elsewhere); a new session starts clean."""
        self._open = [r for r in self._open if r.peer != peer]
        self._heard.pop(peer, None)
        for state in self._feeds.values():
            state.lacking.pop(peer, None)

    def forget(self, feed: FeedId) -> None:
        """We stopped replicating `feed`."""
        self._feeds.pop(feed, None)
        self._open = [r for r in self._open if r.feed != feed]

    # -- planning ------------------------------------------------------------------

    def plan(
        self,
        now: float,
        feeds: Iterable[FeedId],
        claims: Callable[[FeedId], Mapping[PeerId, int]],
    ) -> list[RequestRange]:
        """The requests to send now for `feeds` (those we replicate): newest windows
        first, then backfill in turns."""
        out: list[RequestRange] = []
        heard = self._heard
        for request in [
            r
            for r in self._open
            if now - max(r.sent_at, heard.get(r.peer, 0.0)) > self.config.timeout
        ]:
            self._open.remove(request)
            self._lacks(request)
        windows: set[FeedId] = set()  # feeds with a head or the rest of a window open
        asked_from: dict[FeedId, int] = {}  # lowest seq asked (open backfill), per feed
        load: dict[PeerId, int] = {}
        for request in self._open:
            load[request.peer] = load.get(request.peer, 0) + 1
            if request.newest or request.window:
                windows.add(request.feed)
            else:
                low = asked_from.get(request.feed, request.first)
                asked_from[request.feed] = min(low, request.first)
        feeds = list(feeds)
        for feed in feeds:  # the newest messages of every feed first
            state = self._feed(feed)
            if not state.newest or feed in windows:
                continue
            latest = self._latest(feed)
            if state.newest <= latest:
                state.newest = 0
                continue
            last = state.newest
            size = min(self.config.head, self._window(feed))
            first = max(latest + 1, last - size + 1)
            if self._ask(feed, state, first, last, True, now, claims, load, out) > 0:
                windows.add(feed)
        for feed in feeds:  # then the rest of every newest window
            state = self._feeds[feed]
            if feed in windows or state.newest:
                continue
            low = self._window_from(feed, state)
            if state.held_from <= low:
                continue
            result = self._ask(
                feed, state, low, state.held_from - 1, False, now, claims, load, out, window=True
            )
            if result > 0:
                windows.add(feed)
            elif result < 0:
                state.unavailable = True
        if not feeds:
            return out
        self._turn = (self._turn + 1) % len(feeds)
        turn = feeds[self._turn :] + feeds[: self._turn]
        asked = True
        while asked:  # then backfill: one range per feed per turn, while peers have room
            asked = False
            for feed in turn:
                state = self._feeds[feed]
                if feed in windows or state.newest or state.held_from <= 1:
                    continue
                if state.held_from > self._window_from(feed, state):
                    continue  # its window is not complete yet
                low = self._wanted_from(feed, state)
                top = min(state.held_from, asked_from.get(feed, state.held_from))
                if top <= low:
                    continue
                last = top - 1
                first = max(low, last - self.config.chunk + 1)
                result = self._ask(feed, state, first, last, False, now, claims, load, out)
                if result > 0:
                    asked = True
                    asked_from[feed] = first
                if feed not in asked_from or result > 0:
                    state.unavailable = result < 0
        return out

    # -- introspection ---------------------------------------------------------------

    def view(self, feed: FeedId) -> HistoryView:
        state = self._feed(feed)
        asking = len({r.peer for r in self._open if r.feed == feed and not r.newest})
        return HistoryView(
            state.held_from, self._wanted_from(feed, state), asking, state.unavailable
        )

    @property
    def open_requests(self) -> int:
        return len(self._open)

    def asking_older(self) -> int:
        """Peers asked for older history (not newest windows) right now."""
        return len({r.peer for r in self._open if not r.newest})

    # -- internals -----------------------------------------------------------------

    def _feed(self, feed: FeedId) -> _FeedHistory:
        state = self._feeds.get(feed)
        if state is None:
            latest = self._latest(feed)
            held = self._held_from.pop(feed, 1 if latest > 0 else 0)
            state = self._feeds[feed] = _FeedHistory(held)
        return state

    def _window(self, feed: FeedId) -> int:
        history = self.history(feed)
        return self.config.window if history is None else min(self.config.window, history)

    def _window_from(self, feed: FeedId, state: _FeedHistory) -> int:
        """The first seq of the feed's newest window (the rest comes as backfill);
        1 for a feed we hold nothing of (its head is asked first)."""
        if state.held_from == 0:
            return 1
        return max(1, self._latest(feed) - self._window(feed) + 1)

    def _wanted_from(self, feed: FeedId, state: _FeedHistory) -> int:
        history = self.history(feed)
        base = 1 if history is None else max(1, self._latest(feed) - history + 1)
        return max(1, base - state.extra)

    def _lacks(self, request: _Request) -> None:
        state = self._feeds.get(request.feed)
        if state is not None:
            state.lacking[request.peer] = max(state.lacking.get(request.peer, 0), request.last)

    def _ask(
        self,
        feed: FeedId,
        state: _FeedHistory,
        first: int,
        last: int,
        newest: bool,
        now: float,
        claims: Callable[[FeedId], Mapping[PeerId, int]],
        load: dict[PeerId, int],
        out: list[RequestRange],
        *,
        window: bool = False,
    ) -> int:
        """Ask the least loaded peer that claims `last` and may hold it: 1 asked,
        0 every such peer is busy, -1 no connected peer has it."""
        best: PeerId | None = None
        candidates = False
        for peer, claim in claims(feed).items():
            if claim < last or state.lacking.get(peer, 0) >= last:
                continue
            candidates = True
            if load.get(peer, 0) >= self.config.open_per_peer:
                continue
            if best is None or load.get(peer, 0) < load.get(best, 0):
                best = peer
        if best is None:
            return 0 if candidates else -1
        load[best] = load.get(best, 0) + 1
        self._open.append(_Request(best, feed, first, last, now, newest, window))
        out.append(RequestRange(best, feed, first, last))
        return 1
