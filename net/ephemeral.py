"""Ephemeral gossip beside the feeds: short-lived data relayed a few hops, sans-IO.

One `Gossip` core per node; the TCP shell (chat/ephemeral.py) and the simulator
(net/sim/ephemeral.py) drive the same core. It never touches a socket or a clock: every
call takes `now` (seconds, wall clock) and randomness comes from an injected
`random.Random`. It returns actions for the driver to carry out.

The rules (docs/ephemeral.md has the reasons and the figures):

* A datum is `(id, kind, hops_left, expires, body)`. `hops_left` is how many more
  relays it may take: a datum emitted with `hops = h` goes out with `hops_left = h - 1`,
  so `h = 1` reaches direct peers only. The core never reads `kind` or `body`.
* A datum not seen before, not expired and from a peer we hear is delivered once and
  relayed to every peer we tell (except the one it came from) with `hops_left - 1`,
  if `hops_left > 0`. The id stays in a bounded seen-cache until it expires.
* A later copy with *more* hops left than any copy before is relayed again with its
  larger count (not delivered again): the first copy may have come the long way round,
  and without this a peer within reach would be missed (`rerelay = True`, measured in
  docs/ephemeral.md).
* Proxy pass (`pass_ = True`): each emit or relay takes, with probability 1/2, the
  proxy path: the datum is handed to one peer we tell, which acknowledges it and emits
  it as if it were its own (the same rules, the same coin). A proxy that refuses, or
  does not confirm within `proxy_timeout`, is replaced by retrying from the coin.
* Limits: a datum's body is at most `BODY_LIMIT` bytes and it may live at most
  `MAX_TTL` seconds (plus `CLOCK_SKEW`); each peer may send `peer_rate` data per
  second (burst `peer_burst`); a peer over it is cut off for `cutoff_time` and named
  once (`CutOff`); we relay at most `relay_rate` data per second overall (global
  budget), data over it are delivered but not relayed.
"""

from __future__ import annotations

import random
from collections import OrderedDict
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from typing import TypeAlias

from net.budget import TokenBucket

PeerId: TypeAlias = Hashable

ID_SIZE = 16
BODY_LIMIT = 1024  # bytes of one datum's body
KIND_LIMIT = 16  # characters of a kind
MAX_HOPS = 8
MAX_TTL = 600.0  # seconds a datum may live
CLOCK_SKEW = 60.0  # how far in the future an expiry may lie beyond MAX_TTL
PROXY_TIMEOUT = 30.0


class DatumError(ValueError):
    """A datum breaks the limits (size, hops, kind, id); the words say which."""


@dataclass(frozen=True, slots=True)
class Datum:
    """One piece of ephemeral data as it travels: never stored in a feed."""

    id: bytes
    kind: str
    hops_left: int
    expires: float
    body: bytes

    def check(self) -> None:
        """Raise `DatumError` if the datum breaks a limit."""
        if not isinstance(self.id, bytes) or len(self.id) != ID_SIZE:
            raise DatumError(f"an ephemeral datum's id must be {ID_SIZE} bytes")
        if not isinstance(self.kind, str) or not 0 < len(self.kind) <= KIND_LIMIT:
            raise DatumError(f"an ephemeral datum's kind must be 1 to {KIND_LIMIT} characters")
        hops = self.hops_left
        if not isinstance(hops, int) or isinstance(hops, bool) or not 0 <= hops < MAX_HOPS:
            raise DatumError(f"hops left must be 0 to {MAX_HOPS - 1}, not {hops!r}")
        if not isinstance(self.expires, float | int) or isinstance(self.expires, bool):
            raise DatumError("an ephemeral datum's expiry must be a number")
        if not isinstance(self.body, bytes) or len(self.body) > BODY_LIMIT:
            raise DatumError(f"an ephemeral datum's body must be at most {BODY_LIMIT} bytes")

    def relayed(self, hops_left: int) -> Datum:
        return Datum(self.id, self.kind, hops_left, self.expires, self.body)


@dataclass(frozen=True, slots=True)
class GossipConfig:
    """The knobs of one node's ephemeral gossip; the defaults are what a user runs."""

    pass_: bool = False
    rerelay: bool = True
    seen_limit: int = 20_000
    peer_rate: float = 20.0  # data per second one peer may send us
    peer_burst: float = 100.0
    cutoff_time: float = 300.0
    relay_rate: float = 50.0  # data per second we relay for others, all peers together
    relay_burst: float = 200.0
    proxy_timeout: float = PROXY_TIMEOUT
    proxy_attempts: int = 4  # then the datum takes the ordinary path


# -- actions -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SendDatum:
    """Send `datum` to `peer`; `proxy` asks the peer to emit it as its own."""

    peer: PeerId
    datum: Datum
    proxy: bool = False


@dataclass(frozen=True, slots=True)
class SendAck:
    """Tell `peer` whether we took the datum it asked us to proxy."""

    peer: PeerId
    id: bytes
    ok: bool


@dataclass(frozen=True, slots=True)
class Deliver:
    """A datum new to us, for the application (`via` = the peer that sent it)."""

    datum: Datum
    via: PeerId


@dataclass(frozen=True, slots=True)
class CutOff:
    """`peer` sent more than its rate: its data are ignored until `until`."""

    peer: PeerId
    until: float
    reason: str


Action = SendDatum | SendAck | Deliver | CutOff


# -- the core ----------------------------------------------------------------


@dataclass(slots=True)
class _Link:
    hear: bool
    tell: bool
    bucket: TokenBucket
    cut_until: float = 0.0


@dataclass(slots=True)
class _Seen:
    expires: float
    best_hops: int  # the most hops left of any copy we relayed (or -1: not relayed)


@dataclass(slots=True)
class _Proxying:
    datum: Datum  # with the hops_left its copies should carry
    peer: PeerId
    deadline: float
    attempts: int = 1


@dataclass(slots=True)
class Gossip:
    """One node's ephemeral gossip core (see the module docstring for the rules)."""

    rng: random.Random
    config: GossipConfig = field(default_factory=GossipConfig)
    links: dict[PeerId, _Link] = field(default_factory=dict)
    seen: OrderedDict[bytes, _Seen] = field(default_factory=OrderedDict)
    proxying: dict[bytes, _Proxying] = field(default_factory=dict)
    banned: dict[PeerId, float] = field(default_factory=dict)  # cut-offs outlive a link
    relay_budget: TokenBucket | None = None
    dropped: dict[str, int] = field(default_factory=dict)  # reason -> count (status, tests)

    # -- links ---------------------------------------------------------------

    def connect(self, peer: PeerId, now: float, *, hear: bool = True, tell: bool = True) -> None:
        """A link to `peer` is up; `hear`/`tell` say whether we take from / send to it."""
        c = self.config
        link = _Link(hear, tell, TokenBucket(c.peer_rate, c.peer_burst, now))
        link.cut_until = self.banned.get(peer, 0.0)  # reconnecting does not lift a cut-off
        self.links[peer] = link

    def set_access(self, peer: PeerId, *, hear: bool, tell: bool) -> None:
        """Our hear/tell verdict on `peer` changed (a follow, a block, a config change)."""
        link = self.links.get(peer)
        if link is not None:
            link.hear, link.tell = hear, tell

    def disconnect(self, peer: PeerId, now: float) -> list[Action]:
        """The link to `peer` is gone; data it was proxying are retried elsewhere."""
        self.links.pop(peer, None)
        actions: list[Action] = []
        for key, job in list(self.proxying.items()):
            if job.peer == peer:
                del self.proxying[key]
                self._spread(job.datum, None, now, actions, attempts=job.attempts)
        return actions

    def cut_off(self, peer: PeerId) -> float | None:
        """Until when `peer` is cut off, if it is."""
        link = self.links.get(peer)
        return link.cut_until if link is not None and link.cut_until else None

    # -- data ----------------------------------------------------------------

    def emit(self, kind: str, body: bytes, hops: int, ttl: float, now: float) -> list[Action]:
        """Send a new datum of our own to peers within `hops` (1 = direct peers)."""
        if not 1 <= hops <= MAX_HOPS:
            raise DatumError(f"hops must be 1 to {MAX_HOPS}, not {hops}")
        if not 0 < ttl <= MAX_TTL:
            raise DatumError(f"an ephemeral datum lives 0 to {MAX_TTL:g} s, not {ttl:g}")
        datum = Datum(self.rng.randbytes(ID_SIZE), kind, hops - 1, now + ttl, body)
        datum.check()
        self._remember(datum.id, datum.expires, hops)
        actions: list[Action] = []
        self._spread(datum, None, now, actions)
        return actions

    def receive(
        self, peer: PeerId, datum: Datum, now: float, *, proxy: bool = False
    ) -> list[Action]:
        """A datum arrived from `peer` (`proxy`: it asks us to emit it as our own)."""
        actions: list[Action] = []
        link = self.links.get(peer)
        if link is None:
            return actions
        if not link.hear:
            self._drop("not heard")
            if proxy:
                actions.append(SendAck(peer, datum.id, False))
            return actions
        if link.cut_until > now:
            self._drop("cut off")
            return actions
        if not link.bucket.take(now):
            link.cut_until = self.banned[peer] = now + self.config.cutoff_time
            self._drop("cut off")
            reason = f"sent more than {self.config.peer_rate:g} ephemeral data per second"
            actions.append(CutOff(peer, link.cut_until, reason))
            return actions
        if datum.expires <= now or datum.expires > now + MAX_TTL + CLOCK_SKEW:
            self._drop("expired")
            if proxy:
                actions.append(SendAck(peer, datum.id, False))
            return actions
        seen = self.seen.get(datum.id)
        # As a proxy we emit the copy as our own: it keeps its hops_left.
        offered = datum.hops_left + 1 if proxy else datum.hops_left
        stale = seen is not None and (offered <= seen.best_hops or not self.config.rerelay)
        if proxy:  # a proxy that has passed the datum on already says no: try another
            actions.append(SendAck(peer, datum.id, not stale))
        if stale:
            self._drop("seen")
            return actions
        if seen is None:
            self._remember(datum.id, datum.expires, -1)
            actions.append(Deliver(datum, peer))
        self._relay(datum, offered, peer, now, actions)
        return actions

    def receive_ack(self, peer: PeerId, datum_id: bytes, ok: bool, now: float) -> list[Action]:
        """A proxy confirmed (or refused) a datum we handed it."""
        actions: list[Action] = []
        job = self.proxying.get(datum_id)
        if job is None or job.peer != peer:
            return actions
        del self.proxying[datum_id]
        if not ok:
            self._spread(job.datum, None, now, actions, attempts=job.attempts)
        return actions

    def tick(self, now: float) -> list[Action]:
        """Drop expired entries; retry proxies that did not confirm in time."""
        for key in [k for k, entry in self.seen.items() if entry.expires <= now]:
            del self.seen[key]
        for peer in [p for p, until in self.banned.items() if until <= now]:
            del self.banned[peer]
        actions: list[Action] = []
        for key, job in list(self.proxying.items()):
            if job.deadline <= now:
                del self.proxying[key]
                self._drop("proxy silent")
                self._spread(job.datum, None, now, actions, attempts=job.attempts)
        return actions

    # -- internals -----------------------------------------------------------

    def _relay(
        self, datum: Datum, hops: int, sender: PeerId, now: float, actions: list[Action]
    ) -> None:
        """Pass on a datum we received whose copies may travel `hops` more steps."""
        if hops <= 0:
            return
        seen = self.seen[datum.id]
        seen.best_hops = max(seen.best_hops, hops)
        if self.relay_budget is None:
            c = self.config
            self.relay_budget = TokenBucket(c.relay_rate, c.relay_burst, now)
        if not self.relay_budget.take(now):
            self._drop("over budget")
            return
        self._spread(datum.relayed(hops - 1), sender, now, actions)

    def _spread(
        self,
        datum: Datum,
        sender: PeerId | None,
        now: float,
        actions: list[Action],
        attempts: int = 0,
    ) -> None:
        """Send `datum` (hops_left as its copies carry it) by the coin: proxy or all peers."""
        if datum.expires <= now:
            return
        told = [p for p, link in self.links.items() if link.tell and link.cut_until <= now]
        proxies = [p for p in told if p != sender]
        if (
            self.config.pass_
            and attempts < self.config.proxy_attempts
            and proxies
            and self.rng.random() < 0.5
        ):
            peer = self.rng.choice(proxies)
            deadline = now + self.config.proxy_timeout
            self.proxying[datum.id] = _Proxying(datum, peer, deadline, attempts + 1)
            actions.append(SendDatum(peer, datum, proxy=True))
            return
        actions.extend(SendDatum(p, datum) for p in told if p != sender)

    def _remember(self, datum_id: bytes, expires: float, hops: int) -> None:
        self.seen[datum_id] = _Seen(expires, hops)
        while len(self.seen) > self.config.seen_limit:
            self.seen.popitem(last=False)  # the oldest first: its copies are the least likely
            self._drop("seen-cache full")

    def _drop(self, reason: str) -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + 1


def sends(actions: Iterable[Action]) -> list[SendDatum]:
    """The `SendDatum` actions among `actions` (tests and the simulator)."""
    return [a for a in actions if isinstance(a, SendDatum)]
