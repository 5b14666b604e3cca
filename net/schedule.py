"""The gossip schedule: which peers to dial or hang up, as a pure policy, plus its asyncio runner.

Rules (docs/schedule.md says why):

* The peer table (`PeerTable`) holds one row per remote key. Its event methods
  (`on_dial_started`, `on_connected`, `on_failed`, `on_closed`, ...) are the only way
  the state changes; connection counts are always derived from the rows, never kept
  in a separate counter, so a closed or failed link is counted gone at once.
* `decide(table, now, rng, downloading)` is pure: it reads the table and returns
  `Dial`, `Hangup` and `Forget` decisions. It never mutates anything and never reads
  a clock; the runner applies the decisions and reports the outcomes back.
* Each peer belongs to one class (`lan`, `pub`, `friend`, `other`) with a quota and a
  backoff curve. We dial while the class has fewer live links (connecting or
  connected, incoming ones included) than its quota. Permanent peers (joined pubs,
  manual --connect) are dialed regardless of the quota, but count towards it.
* Backoff after a failure: `min(base * 2**failures, max) * uniform(0.8, 1.2)`.
  A link only counts as a success once it stayed up `proven_after` seconds; a link
  that closes earlier is a failure. So a peer that accepts and closes at once, or a
  far side that drops us after 10 s, backs off exponentially instead of being
  redialed every few seconds forever (the SSB reconnect loop).
* Never two links or attempts to one key: a key is dialed only from IDLE/BACKOFF, and
  incoming links go through `admit_incoming`: a second link from a connected key
  replaces the first; a simultaneous-dial race keeps the link dialed by the smaller key.
* Trim: only above `trim_factor * quota` live links in a class (incoming links need
  slack, strict trimming made SSB churn); the newest non-permanent links go first,
  so established links and their spanning-tree edges stay.
* Rotation: when a class is full and a candidate waits, once per `rotation_interval`
  the oldest non-permanent link of that class that is older than the interval is
  hung up so the candidate gets a turn. Hung-up peers rest `rest_after_hangup`.
* No new dials (and no rotation) while a download is in full flow.
* LAN peers that vanished are not dialed and are forgotten after `lan_forget_after`;
  non-permanent peers that failed without a success for `unreachable_after` are forgotten.
* Keys that dialled us with no address to dial back (strangers) are forgotten
  `STRANGER_TTL` after they left, and beyond `MAX_REMEMBERED_PEERS` the oldest at once
  (store/limits.py): one handshake-and-leave after another must not grow the table.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import inspect
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field

from net.errors import HandshakeError, HandshakeFailure
from store.limits import MAX_REMEMBERED_PEERS, STRANGER_TTL

log = logging.getLogger(__name__)

Address = tuple[str, int]


class PeerSource(enum.Enum):
    """Where we know a peer from; each class has its own quota and backoff."""

    LAN = "lan"
    PUB = "pub"
    FRIEND = "friend"
    OTHER = "other"
    MANUAL = "manual"  # the user connected or remembered it; always permanent


class PeerState(enum.Enum):
    """Connection state of one peer row."""

    IDLE = "idle"  # never tried, or ready
    CONNECTING = "connecting"  # a dial is in flight
    CONNECTED = "connected"
    BACKOFF = "backoff"  # waiting until next_attempt (after a failure or a hangup)
    BLOCKED = "blocked"
    OTHER_NETWORK = "other network"  # the handshake showed a different network key


class HangupCause(enum.Enum):
    """Why the schedule hangs up a link."""

    TRIM = "trim"
    ROTATE = "rotate"
    BLOCKED = "blocked"
    DUPLICATE = "duplicate"


REPLACED = "replaced"
"""Hangup reason for a link superseded by a newer link from the same key."""


class Admission(enum.Enum):
    """Verdict on an incoming link (see `admit_incoming`)."""

    ACCEPT = "accept"
    ACCEPT_REPLACING = "accept, replacing ours"  # cancel our dial / hang up our older link
    REFUSE = "refuse"


@dataclass(frozen=True, slots=True)
class ClassPolicy:
    """Quota and backoff curve of one peer class."""

    quota: int
    base: float  # seconds; first retry after base * 2 (failures = 1)
    max: float  # seconds; the backoff ceiling


DEFAULT_CLASSES: Mapping[PeerSource, ClassPolicy] = {
    PeerSource.LAN: ClassPolicy(quota=3, base=2.0, max=600.0),
    PeerSource.PUB: ClassPolicy(quota=2, base=5.0, max=1800.0),
    PeerSource.FRIEND: ClassPolicy(quota=3, base=5.0, max=1800.0),
    PeerSource.OTHER: ClassPolicy(quota=2, base=10.0, max=3600.0),
    # Manual peers are permanent: dialled whatever the quota, never trimmed or rotated;
    # a quota of 0 means they take no place from the other classes. The user named them,
    # so however often one crashed we redial it within 15 s of its return: back-off
    # capped at 10 s (x1.2 jitter, plus one schedule round of up to 3 s).
    PeerSource.MANUAL: ClassPolicy(quota=0, base=1.0, max=10.0),
}


@dataclass(frozen=True, slots=True)
class ScheduleConfig:
    """Tunables of the schedule; the defaults are documented in docs/schedule.md."""

    classes: Mapping[PeerSource, ClassPolicy] = field(default_factory=lambda: dict(DEFAULT_CLASSES))
    jitter: tuple[float, float] = (0.8, 1.2)  # backoff multiplier range
    trim_factor: float = 2.0  # trim only above trim_factor * quota live links
    proven_after: float = 30.0  # a link up this long is a success (resets failures)
    rest_after_hangup: float = 600.0  # a trimmed / rotated peer is not redialed for this long
    rotation_interval: float = 600.0  # at most one rotation per class per interval
    lan_forget_after: float = 600.0  # a vanished LAN peer row is dropped after this
    unreachable_after: float = 24 * 3600.0  # non-permanent peer failing this long is dropped
    download_quiet: float = 0.5  # no dialing if a new message arrived within this
    connect_timeout: float = 10.0  # a dial taking longer fails
    interval: float = 2.0  # the runner decides every interval * uniform(0.5, 1.5)
    after_disconnect: float = 0.2  # and this long after any link closed

    def policy(self, source: PeerSource) -> ClassPolicy:
        """The quota and backoff of one class."""
        return self.classes[source]

    def with_quotas(self, quotas: Mapping[str, int]) -> ScheduleConfig:
        """A copy with the quotas of a config `[quotas]` table, e.g. {"lan": 3, "pub": 2}."""
        classes = dict(self.classes)
        for name, quota in quotas.items():
            try:
                source = PeerSource(name)
            except ValueError:
                allowed = ", ".join(s.value for s in PeerSource)
                raise ValueError(f"unknown peer class {name!r} in quotas: use {allowed}") from None
            if not isinstance(quota, int) or isinstance(quota, bool) or quota < 0:
                raise ValueError(f"quota of {name!r} must be a whole number >= 0, got {quota!r}")
            classes[source] = dataclasses.replace(classes[source], quota=quota)
        return dataclasses.replace(self, classes=classes)

    def hard_cap(self, source: PeerSource) -> int:
        """Live links above this count in a class are trimmed."""
        return int(self.policy(source).quota * self.trim_factor)


@dataclass(slots=True)
class PeerRow:
    """One remote key in the peer table; only `PeerTable` methods change it."""

    key: bytes
    addresses: list[Address]
    source: PeerSource
    permanent: bool = False
    state: PeerState = PeerState.IDLE
    failures: int = 0
    last_failure: float | None = None
    last_success: float | None = None
    failing_since: float | None = None  # first failure since the last success
    next_attempt: float = 0.0
    state_changed: float = 0.0
    connected_at: float | None = None
    incoming: bool = False
    link: int = 0  # number of the current link, for stale close reports
    last_error: str = ""
    rest_reason: str = ""  # set while resting after a trim / rotation
    blocked: bool = False
    vanished_at: float | None = None  # LAN peer no longer advertised
    address_index: int = 0

    @property
    def live(self) -> bool:
        """A link or an attempt exists (counts towards the quota)."""
        return self.state in (PeerState.CONNECTING, PeerState.CONNECTED)

    def address(self) -> Address | None:
        """The address to dial next (rotates through the known ones on failures)."""
        if not self.addresses:
            return None
        return self.addresses[self.address_index % len(self.addresses)]


class PeerTable:
    """The peer table: rows plus the event methods that keep them true."""

    def __init__(
        self, config: ScheduleConfig | None = None, rng: random.Random | None = None
    ) -> None:
        self.config = config or ScheduleConfig()
        self.rng = rng or random.Random()
        self._rows: dict[bytes, PeerRow] = {}
        self._links = 0
        self.last_rotation: dict[PeerSource, float] = {}

    # -- reading

    def __contains__(self, key: object) -> bool:
        return key in self._rows

    def __iter__(self) -> Iterator[PeerRow]:
        return iter(list(self._rows.values()))

    def __len__(self) -> int:
        return len(self._rows)

    def get(self, key: bytes) -> PeerRow | None:
        """The row of a key, or None."""
        return self._rows.get(key)

    def row(self, key: bytes) -> PeerRow:
        """The row of a key; KeyError names the key if unknown."""
        try:
            return self._rows[key]
        except KeyError:
            raise KeyError(f"peer {key.hex()[:12]} is not in the peer table") from None

    def live_count(self, source: PeerSource) -> int:
        """Links and attempts in a class, derived from the rows."""
        return sum(1 for r in self._rows.values() if r.source is source and r.live)

    def connected_count(self, source: PeerSource) -> int:
        """Established links in a class."""
        return sum(
            1 for r in self._rows.values() if r.source is source and r.state is PeerState.CONNECTED
        )

    # -- learning about peers

    def add(
        self,
        key: bytes,
        address: Address | None,
        source: PeerSource,
        now: float,
        *,
        permanent: bool = False,
    ) -> PeerRow:
        """Add a peer or a new address of a known one (the newest address is tried first).

        A known row keeps its class unless it was `other`; `permanent` is sticky.
        """
        if len(key) != 32:
            raise ValueError(f"a peer key is 32 bytes, got {len(key)}")
        row = self._rows.get(key)
        if row is None:
            row = PeerRow(key=key, addresses=[], source=source, state_changed=now)
            self._rows[key] = row
        elif row.source is PeerSource.OTHER:
            row.source = source
        row.permanent = row.permanent or permanent
        if address is not None:
            if address in row.addresses:
                row.addresses.remove(address)
            row.addresses.insert(0, address)
            row.address_index = 0
            if row.state is PeerState.OTHER_NETWORK:  # new address, maybe a new network
                self._set(row, PeerState.IDLE, now)
        return row

    def learn(self, key: bytes, address: Address, source: PeerSource, now: float) -> PeerRow:
        """Note an address we dial (or were told): added if new, the order kept (unlike `add`,
        which puts it first), so rotating through addresses on failures goes on."""
        row = self._rows.get(key)
        if row is not None and address in row.addresses:
            if row.source is PeerSource.OTHER:
                row.source = source
            return row
        return self.add(key, address, source, now)

    def seen_on_lan(self, key: bytes, address: Address, now: float) -> PeerRow:
        """Discovery reported the peer on the LAN."""
        row = self.add(key, address, PeerSource.LAN, now)
        row.vanished_at = None
        return row

    def vanished(self, key: bytes, now: float) -> None:
        """Discovery reported that a LAN peer stopped advertising."""
        row = self._rows.get(key)
        if row is not None and row.source is PeerSource.LAN:
            row.vanished_at = now

    def block(self, key: bytes, now: float) -> None:
        """Never dial or accept this key again; `decide` hangs up a live link."""
        row = self._rows.get(key) or self.add(key, None, PeerSource.OTHER, now)
        row.blocked = True
        if not row.live:
            self._set(row, PeerState.BLOCKED, now)

    def unblock(self, key: bytes, now: float) -> None:
        """Undo `block`."""
        row = self._rows.get(key)
        if row is not None and row.blocked:
            row.blocked = False
            if row.state is PeerState.BLOCKED:
                self._set(row, PeerState.IDLE, now)

    def is_blocked(self, key: bytes) -> bool:
        """Whether a key is blocked."""
        row = self._rows.get(key)
        return row is not None and row.blocked

    def remove(self, key: bytes) -> None:
        """Forget a peer."""
        self._rows.pop(key, None)

    # -- link events

    def on_dial_started(self, key: bytes, now: float) -> None:
        """A dial to this key began."""
        row = self.row(key)
        if row.live:
            raise ValueError(f"peer {key.hex()[:12]} already has a link or an attempt")
        self._set(row, PeerState.CONNECTING, now)

    def on_manual_dial(self, key: bytes, now: float) -> None:
        """The user dials this key now: it replaces a live link; a dial in flight goes on."""
        row = self.row(key)
        if row.state is PeerState.CONNECTING:
            return
        if row.state is PeerState.CONNECTED:
            self._set(row, PeerState.IDLE, now)
        self.on_dial_started(key, now)

    def on_connected(self, key: bytes, now: float, *, incoming: bool = False) -> int:
        """A link is up (handshake done). Returns the link number for `on_closed`."""
        row = self._rows.get(key) or self.add(key, None, PeerSource.OTHER, now)
        self._links += 1
        row.link = self._links
        row.incoming = incoming
        row.connected_at = now
        row.rest_reason = ""
        self._set(row, PeerState.CONNECTED, now)
        return row.link

    def on_dial_cancelled(self, key: bytes, now: float) -> None:
        """Our dial was abandoned (e.g. their link won a race); not a failure."""
        row = self._rows.get(key)
        if row is not None and row.state is PeerState.CONNECTING:
            self._set(row, PeerState.BLOCKED if row.blocked else PeerState.IDLE, now)

    def on_failed(
        self, key: bytes, now: float, reason: str, *, wrong_network: bool = False
    ) -> None:
        """A dial failed (resolve, connect, handshake) or a link died before proving useful."""
        row = self._rows.get(key)
        if row is None:
            return
        row.last_error = reason
        if wrong_network:
            row.connected_at = None
            self._set(row, PeerState.OTHER_NETWORK, now)
            return
        self._fail(row, now)

    def on_closed(
        self, key: bytes, now: float, reason: str = "", *, link: int | None = None
    ) -> None:
        """A link closed (either side). Ignored for a stale link number or a row not connected.

        A link that lasted `proven_after` resets the backoff; a shorter one is a failure.
        """
        row = self._rows.get(key)
        if row is None or row.state is not PeerState.CONNECTED:
            return
        if link is not None and link != row.link:
            return
        started = row.connected_at if row.connected_at is not None else now
        row.connected_at = None
        if reason:
            row.last_error = reason
        if now - started >= self.config.proven_after:
            row.failures = 0
            row.failing_since = None
            row.last_success = now
            base = self.config.policy(row.source).base
            row.next_attempt = now + base * self.rng.uniform(*self.config.jitter)
            self._set(row, PeerState.BACKOFF, now)
        else:
            row.last_error = f"closed after {now - started:.1f} s" + (
                f" ({reason})" if reason else ""
            )
            self._fail(row, now)

    def on_refused(self, key: bytes, now: float, reason: str, retry_after: float) -> None:
        """Their (or our) hear/tell settings turned the link away: no redial for a long
        pause, so mismatched settings cannot poll."""
        row = self._rows.get(key)
        if row is None:
            return
        row.connected_at = None
        row.failures = 0
        row.failing_since = None
        row.last_error = reason
        row.rest_reason = f"refused ({reason})"
        row.next_attempt = now + retry_after
        self._set(row, PeerState.BACKOFF, now)

    def on_hung_up(self, key: bytes, now: float, cause: HangupCause) -> None:
        """We hung up this link by a schedule decision; it counts gone at once."""
        row = self._rows.get(key)
        if row is None:
            return
        row.connected_at = None
        if row.blocked or cause is HangupCause.BLOCKED:
            self._set(row, PeerState.BLOCKED, now)
            return
        if cause is HangupCause.ROTATE:
            self.last_rotation[row.source] = now
        if cause in (HangupCause.TRIM, HangupCause.ROTATE):
            row.rest_reason = "rotated out" if cause is HangupCause.ROTATE else "trimmed"
            row.next_attempt = now + self.config.rest_after_hangup * self.rng.uniform(
                *self.config.jitter
            )
        self._set(row, PeerState.BACKOFF, now)

    # -- internals

    def _fail(self, row: PeerRow, now: float) -> None:
        row.failures += 1
        row.last_failure = now
        if row.failing_since is None:
            row.failing_since = now
        row.address_index += 1
        row.rest_reason = ""
        row.next_attempt = now + backoff_delay(
            self.config.policy(row.source), row.failures, self.rng, self.config.jitter
        )
        self._set(row, PeerState.BACKOFF, now)

    @staticmethod
    def _set(row: PeerRow, state: PeerState, now: float) -> None:
        if row.blocked and state in (PeerState.IDLE, PeerState.BACKOFF):
            state = PeerState.BLOCKED
        row.state = state
        row.state_changed = now


def backoff_delay(
    policy: ClassPolicy, failures: int, rng: random.Random, jitter: tuple[float, float] = (0.8, 1.2)
) -> float:
    """`min(base * 2**failures, max)` times a random factor in the jitter range."""
    exponent = min(failures, 62)  # 2**62 * base is far above any max
    return min(policy.base * 2.0**exponent, policy.max) * rng.uniform(*jitter)


# -- decisions


@dataclass(frozen=True, slots=True)
class Dial:
    """Open a link to `key` at `address`."""

    key: bytes
    address: Address
    source: PeerSource


@dataclass(frozen=True, slots=True)
class Hangup:
    """Close the link to `key`."""

    key: bytes
    reason: str
    cause: HangupCause


@dataclass(frozen=True, slots=True)
class Forget:
    """Drop the row of `key` (a dead address or a vanished LAN peer)."""

    key: bytes
    reason: str


Decision = Dial | Hangup | Forget


def _eligible(row: PeerRow, now: float) -> bool:
    return (
        row.state in (PeerState.IDLE, PeerState.BACKOFF)
        and row.next_attempt <= now
        and row.vanished_at is None
        and not row.blocked
        and row.address() is not None
    )


def _passing_stranger(row: PeerRow) -> bool:
    """A key that dialled us and is gone: no address, not chosen by us, not blocked."""
    return (
        not row.addresses
        and not row.permanent
        and not row.live
        and not row.blocked
        and row.source is PeerSource.OTHER
    )


def decide(
    table: PeerTable, now: float, rng: random.Random, downloading: bool = False
) -> list[Decision]:
    """What to do now: pure, reads `table` and returns decisions in the order to apply them."""
    config = table.config
    out: list[Decision] = []
    gone: set[bytes] = set()
    rows = list(table)

    for row in rows:
        if row.blocked and row.state is PeerState.CONNECTED:
            out.append(Hangup(row.key, "blocked", HangupCause.BLOCKED))
            gone.add(row.key)

    # Keys that dialled us and left, with no address to dial back: forgotten after
    # STRANGER_TTL, and beyond MAX_REMEMBERED_PEERS the oldest at once.
    strangers = sorted(
        (r for r in rows if _passing_stranger(r)), key=lambda r: r.state_changed, reverse=True
    )
    for index, row in enumerate(strangers):
        if index >= MAX_REMEMBERED_PEERS or now - row.state_changed >= STRANGER_TTL:
            out.append(Forget(row.key, "a stranger that left"))
            gone.add(row.key)

    for row in rows:
        if row.live or row.permanent or row.key in gone:
            continue
        if row.vanished_at is not None and now - row.vanished_at >= config.lan_forget_after:
            out.append(Forget(row.key, "vanished from LAN"))
        elif row.failing_since is not None and now - row.failing_since >= config.unreachable_after:
            hours = (now - row.failing_since) / 3600
            out.append(Forget(row.key, f"unreachable for {hours:.0f} h"))

    for source in PeerSource:
        policy = config.policy(source)
        connected = [
            r
            for r in rows
            if r.source is source and r.state is PeerState.CONNECTED and r.key not in gone
        ]
        live = sum(1 for r in rows if r.source is source and r.live and r.key not in gone)

        # trim: newest non-permanent first, down to the hard cap
        excess = live - config.hard_cap(source)
        if excess > 0:
            trimmable = sorted(
                (r for r in connected if not r.permanent),
                key=lambda r: (r.connected_at or 0.0, r.key),
                reverse=True,
            )
            for r in trimmable[:excess]:
                out.append(
                    Hangup(
                        r.key,
                        f"over quota ({source.value} {live}/{config.hard_cap(source)})",
                        HangupCause.TRIM,
                    )
                )
                gone.add(r.key)
                live -= 1

        candidates = [r for r in rows if r.source is source and _eligible(r, now)]
        if downloading or not candidates:
            continue

        # rotation: a full class with someone waiting swaps out its oldest link now and then
        last = table.last_rotation.get(source)
        if (
            live >= policy.quota
            and any(not r.permanent for r in candidates)
            and (last is None or now - last >= config.rotation_interval)
        ):
            old = [
                r
                for r in connected
                if not r.permanent
                and r.key not in gone
                and r.connected_at is not None
                and now - r.connected_at >= config.rotation_interval
            ]
            if old:
                oldest = min(old, key=lambda r: (r.connected_at or 0.0, r.key))
                out.append(Hangup(oldest.key, "rotation: exploring", HangupCause.ROTATE))
                gone.add(oldest.key)
                live -= 1

        # dial: permanent peers always, the others while the class has room
        tiebreak = {r.key: rng.random() for r in candidates}
        candidates.sort(key=lambda r: (not r.permanent, r.failures, tiebreak[r.key]))
        for r in candidates:
            if not r.permanent and live >= policy.quota:
                break
            address = r.address()
            assert address is not None  # _eligible checked it
            out.append(Dial(r.key, address, source))
            live += 1
    return out


def admit_incoming(
    table: PeerTable, key: bytes, own_key: bytes, now: float | None = None
) -> tuple[Admission, str]:
    """Whether to keep an incoming link from `key`, keeping one link per key.

    A second link from a key we are already linked with replaces the first (the peer
    redialled, so its old link is probably dead on its side). Only a simultaneous dial
    (we are dialing them, or hold a link we dialed less than `connect_timeout` ago; any
    link we dialed if `now` is not given) is a race: the link dialed by the smaller key
    survives, so both sides pick the same one.
    """
    row = table.get(key)
    if key == own_key:
        return Admission.REFUSE, "that is our own key"
    if row is None:
        return Admission.ACCEPT, "new peer"
    if table.is_blocked(key):
        return Admission.REFUSE, "blocked"
    racing = row.state is PeerState.CONNECTING or (
        row.state is PeerState.CONNECTED
        and not row.incoming
        and (
            now is None
            or row.connected_at is None
            or now - row.connected_at < table.config.connect_timeout
        )
    )
    if racing:
        if key < own_key:
            return Admission.ACCEPT_REPLACING, "their link wins the simultaneous dial"
        return Admission.REFUSE, "our link wins the simultaneous dial"
    if row.state is PeerState.CONNECTED:
        return Admission.ACCEPT_REPLACING, REPLACED
    return Admission.ACCEPT, "known peer"


def explain(table: PeerTable, now: float, downloading: bool = False) -> dict[bytes, str]:
    """Why each peer is (not) connected, in user words, for the peers pane and status."""
    config = table.config
    reasons: dict[bytes, str] = {}
    for row in table:
        reasons[row.key] = _reason(table, config, row, now, downloading)
    return reasons


def _time_of_day(t: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(t))


def _reason(
    table: PeerTable, config: ScheduleConfig, row: PeerRow, now: float, downloading: bool
) -> str:
    if row.blocked or row.state is PeerState.BLOCKED:
        return "blocked"
    if row.state is PeerState.CONNECTED:
        return "connected (incoming)" if row.incoming else "connected"
    if row.state is PeerState.CONNECTING:
        return "connecting"
    if row.state is PeerState.OTHER_NETWORK:
        return "other network"
    if row.vanished_at is not None:
        return "vanished from LAN"
    if row.address() is None:
        return "no known address"
    if row.next_attempt > now:
        if row.failures:
            plural = "s" if row.failures != 1 else ""
            return (
                f"backing off until {_time_of_day(row.next_attempt)} "
                f"after {row.failures} failure{plural}"
                + (f": {row.last_error}" if row.last_error else "")
            )
        if row.rest_reason:
            return f"{row.rest_reason}, resting until {_time_of_day(row.next_attempt)}"
        return f"reconnecting at {_time_of_day(row.next_attempt)}"
    if downloading:
        return "waiting: download in progress"
    live = table.live_count(row.source)
    quota = config.policy(row.source).quota
    if live >= quota and not row.permanent:
        return f"over quota ({row.source.value} {live}/{quota})"
    return "ready to dial"


# -- the asyncio runner


def is_wrong_network(exc: BaseException) -> bool:
    """Whether a dial failed because the peer uses another network key.

    Looks through the cause chain (net.server.DialError wraps the HandshakeError).
    """
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            return False
        if isinstance(seen, HandshakeError) and seen.reason is HandshakeFailure.WRONG_NETWORK:
            return True
        seen = seen.__cause__
    return False


DialFn = Callable[[Dial], Awaitable[object]]
HangupFn = Callable[[bytes, str], object]


STOP_GRACE = 5.0  # seconds `ScheduleRunner.async_stop` waits for its cancelled tasks


class ScheduleRunner:
    """Calls `decide` every ~2 s (fuzzed) and soon after a disconnect, and executes it.

    `dial(decision)` must return when the link is up (handshake done) and raise on
    failure; it is cancelled on timeout or when the peer's own link wins a race.
    `hangup(key, reason)` closes the link of `key` (may be sync or async). The node
    reports links it accepted with `incoming()` and every close with `closed()`, and
    calls `note_new_message()` when a new message arrives (pauses dialing).
    """

    def __init__(
        self,
        table: PeerTable,
        *,
        own_key: bytes,
        dial: DialFn,
        hangup: HangupFn,
        now: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self.table = table
        self.own_key = own_key
        self._dial = dial
        self._hangup = hangup
        self._now = now
        self._rng = rng or random.Random()
        self._on_change = on_change
        self.last_new_message_at: float = float("-inf")
        self._dials: dict[bytes, asyncio.Task[None]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._stopped = False
        self.rounds = 0

    # -- lifecycle

    async def async_start(self) -> None:
        """Start deciding in the background."""
        self._stopped = False
        if self._loop_task is None:
            self._loop_task = asyncio.create_task(self._async_loop(), name="gossip-schedule")

    async def async_stop(self, grace: float = STOP_GRACE) -> None:
        """Stop deciding and cancel dials and hang-ups in flight (awaited, bounded by `grace`).

        Nothing is started afterwards: pokes and reports of closed links are ignored.
        """
        self._stopped = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        tasks = {t for t in (self._loop_task, *self._dials.values(), *self._tasks) if t}
        self._loop_task = None
        for task in tasks:
            task.cancel()
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=grace)
        if pending:
            names = ", ".join(sorted(task.get_name() for task in pending))
            log.warning("schedule tasks still running %.0f s after stop: %s", grace, names)

    # -- reports from the node

    @property
    def downloading(self) -> bool:
        """A new message arrived within `download_quiet` seconds."""
        return self._now() - self.last_new_message_at < self.table.config.download_quiet

    def note_new_message(self) -> None:
        """A new message was stored: dialing pauses while these keep coming."""
        self.last_new_message_at = self._now()

    def incoming(self, key: bytes, source: PeerSource = PeerSource.OTHER) -> tuple[bool, int]:
        """An incoming link from `key` finished its handshake: keep it? Returns (keep, link).

        `source` classes a key the table does not know yet (e.g. `friend` if we follow
        it). When the link wins a race our dial is cancelled or our older link hung up.
        """
        verdict, why = admit_incoming(self.table, key, self.own_key, self._now())
        if key not in self.table and verdict is not Admission.REFUSE:
            self.table.add(key, None, source, self._now())
        if verdict is Admission.REFUSE:
            log.info("refusing link from %s: %s", key.hex()[:12], why)
            return False, 0
        now = self._now()
        if verdict is Admission.ACCEPT_REPLACING:
            task = self._dials.pop(key, None)
            if task is not None:
                task.cancel()
            row = self.table.row(key)
            if row.state is PeerState.CONNECTED:
                # A race their link won, or a newer link from the same key: either way
                # the old link goes (its close report carries a stale link number).
                self._call_hangup(key, REPLACED if why == REPLACED else "replaced by their link")
                row.connected_at = None
            self.table.on_dial_cancelled(key, now)
        link = self.table.on_connected(key, now, incoming=True)
        self._changed()
        return True, link

    def closed(self, key: bytes, reason: str = "", link: int | None = None) -> None:
        """A link closed; the schedule runs again shortly."""
        self.table.on_closed(key, self._now(), reason, link=link)
        self._changed()
        self.poke(self.table.config.after_disconnect)

    def poke(self, delay: float = 0.0) -> None:
        """Run the schedule after `delay` seconds instead of waiting for the timer."""
        if self._stopped:
            return
        if delay <= 0:
            self._wake.set()
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer = asyncio.get_running_loop().call_later(delay, self._wake.set)

    # -- deciding

    def run_once(self) -> list[Decision]:
        """Decide now and start executing the decisions; returns them."""
        now = self._now()
        decisions = decide(self.table, now, self._rng, self.downloading)
        self.rounds += 1
        for d in decisions:
            if isinstance(d, Dial):
                self.table.on_dial_started(d.key, now)
                task = asyncio.create_task(self._async_dial(d), name=f"dial {d.key.hex()[:12]}")
                self._dials[d.key] = task
            elif isinstance(d, Hangup):
                self._call_hangup(d.key, d.reason)
                self.table.on_hung_up(d.key, now, d.cause)
            else:
                self.table.remove(d.key)
        if decisions:
            self._changed()
        return decisions

    async def _async_loop(self) -> None:
        config = self.table.config
        while True:
            self._wake.clear()
            try:
                self.run_once()
            except Exception:  # a bug in one round must not stop the schedule
                log.exception("gossip schedule round failed")
            timeout = config.interval * self._rng.uniform(0.5, 1.5)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    async def _async_dial(self, d: Dial) -> None:
        try:
            async with asyncio.timeout(self.table.config.connect_timeout):
                await self._dial(d)
        except asyncio.CancelledError:
            self.table.on_dial_cancelled(d.key, self._now())
            raise
        except TimeoutError:
            self.table.on_failed(d.key, self._now(), "connect timed out")
        except Exception as exc:
            self.table.on_failed(
                d.key,
                self._now(),
                str(exc) or type(exc).__name__,
                wrong_network=is_wrong_network(exc),
            )
        else:
            row = self.table.get(d.key)
            if row is not None and row.state is PeerState.CONNECTING:
                self.table.on_connected(d.key, self._now())
            elif row is None or row.blocked:
                self._call_hangup(d.key, "blocked" if row is not None else "forgotten")
        finally:
            if self._dials.get(d.key) is asyncio.current_task():
                del self._dials[d.key]
            self._changed()

    def _call_hangup(self, key: bytes, reason: str) -> None:
        try:
            result = self._hangup(key, reason)
        except Exception:
            log.exception("hangup of %s failed", key.hex()[:12])
            return
        if inspect.isawaitable(result):
            waiter = asyncio.create_task(_async_quietly(result), name=f"hangup {key.hex()[:12]}")
            self._tasks.add(waiter)
            waiter.add_done_callback(self._tasks.discard)

    def _changed(self) -> None:
        if self._on_change is not None:
            try:
                self._on_change()
            except Exception:
                log.exception("schedule change callback failed")


async def _async_quietly(step: Awaitable[object]) -> None:
    """Await a hang-up; its failure is logged, not raised (nobody awaits the task)."""
    try:
        await step
    except Exception:
        log.exception("a hang-up failed")
