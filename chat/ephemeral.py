"""Presence, typing and whispers: the node's room for ephemeral gossip (docs/ephemeral.md).

It drives one `net.ephemeral.Gossip` core over the node's links (the `eph` frames) and
turns what arrives into what the UI shows: who is online / away / last seen, who is
typing in a channel, who is here now, and whispers from "someone nearby". Nothing of it
is written to a feed or to the database; whispers are forgotten when they expire.

* Presence and typing are signed by the sender's key (so they can be shown under a
  name) and go 1 hop by default. Presence is sent when a link comes up, every
  `presence_interval` seconds, on a change (away, another channel) and, best effort,
  as "offline" on stop; it is believed until it expires (2.5 intervals).
* A whisper is unsigned (deniable), goes `whisper_hops` (3) and, with `pass = true`,
  by proxy pass. Anyone may whisper at most once a second (enforced when sending).
* Config `presence = false` sends no presence or typing (we still show others').
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

import msgpack
from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

from chat.config import Config
from chat.events import EventBus
from chat.identity import Identity
from chat.names import Names
from chat.scope import Scope
from chat.views import NodeEvent, PeerView
from net.ephemeral import (
    Action,
    CutOff,
    Datum,
    DatumError,
    Deliver,
    Gossip,
    GossipConfig,
    SendAck,
    SendDatum,
)
from net.frames import Ephemeral, EphemeralAck
from net.peer import PeerConnection

log = logging.getLogger(__name__)

PRESENCE = "presence"
TYPING = "typing"
WHISPER = "whisper"
SIGNED_DOMAIN = b"treechat/ephemeral/v1"
PRESENCE_INTERVAL = 60.0
TYPING_EVERY = 3.0  # at most one typing datum per channel this often
TYPING_SHOWN = 5.0  # seconds "typing" is shown after the last one arrived
WHISPER_TTL = 300.0
WHISPER_TEXT_LIMIT = 500  # characters
WHISPER_EVERY = 1.0
TICK = 1.0
STATES = ("online", "away", "offline")


class EphemeralError(ValueError):
    """A whisper or presence change we cannot send; the words say why."""


@dataclass(frozen=True, slots=True)
class Presence:
    """What we last heard from one person: state, channel, when (our clock) and until."""

    state: str
    channel: str
    heard_at: float
    expires: float


@dataclass(frozen=True, slots=True)
class Whisper:
    """A whisper as the conversation shows it: never with an author."""

    channel: str
    text: str
    received_at: float
    expires: float
    own: bool = False


@dataclass(frozen=True, slots=True)
class EphemeralOptions:
    """Knobs tests turn (short intervals); the defaults are what a user runs."""

    presence_interval: float = PRESENCE_INTERVAL
    presence_ttl: float | None = None  # None: 2.5 intervals (at most 600 s)
    presence_hops: int = 1
    typing_hops: int = 1
    tick: float = TICK
    gossip: GossipConfig | None = None  # None: from the config (`pass`)


class EphemeralRoom:
    """One node's ephemeral gossip: links, the core, and what arrived."""

    def __init__(
        self,
        config: Config,
        identity: Identity,
        scope: Scope,
        names: Names,
        events: EventBus,
        options: EphemeralOptions | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self.identity = identity
        self.scope = scope
        self.names = names
        self.events = events
        self.options = options or EphemeralOptions()
        gossip = self.options.gossip or GossipConfig(pass_=config.proxy_pass)
        self.core = Gossip(rng or random.SystemRandom(), gossip)
        self.links: dict[bytes, PeerConnection] = {}
        self.presence: dict[bytes, Presence] = {}
        self.typing: dict[tuple[str, bytes], float] = {}  # (channel, author) -> shown until
        self.whispers: list[Whisper] = []
        self.cut_off: dict[bytes, str] = {}  # peer -> why, while cut off
        self.here = ""  # the channel our user looks at
        self.away = False
        self._last_typing: dict[str, float] = {}
        self._last_whisper = 0.0
        self._stopped = False

    # -- links -----------------------------------------------------------------

    def attach(self, conn: PeerConnection) -> None:
        """A link is up: carry `eph` frames on it and tell it we are here."""
        key = conn.remote
        self.links[key] = conn
        conn.on_ephemeral = self._on_frame
        access = self.scope.access(key)
        self.core.connect(key, time.time(), hear=access.hear, tell=access.tell)
        self._send_presence()

    def detach(self, conn: PeerConnection) -> None:
        """A link is gone (only the link we hold counts: a replaced one is stale)."""
        if self.links.get(conn.remote) is not conn:
            return
        del self.links[conn.remote]
        self._run(self.core.disconnect(conn.remote, time.time()))

    def _on_frame(self, conn: PeerConnection, frame: Ephemeral | EphemeralAck) -> None:
        if self.links.get(conn.remote) is not conn:
            return
        now = time.time()
        if isinstance(frame, Ephemeral):
            self._run(self.core.receive(conn.remote, frame.datum, now, proxy=frame.proxy))
        else:
            self._run(self.core.receive_ack(conn.remote, frame.id, frame.ok, now))

    def _run(self, actions: Sequence[Action]) -> None:
        for action in actions:
            if isinstance(action, SendDatum):
                conn = self.links.get(action.peer)  # type: ignore[call-overload]
                if conn is not None:
                    conn.send_frame(Ephemeral(action.datum, action.proxy))
            elif isinstance(action, SendAck):
                conn = self.links.get(action.peer)  # type: ignore[call-overload]
                if conn is not None:
                    conn.send_frame(EphemeralAck(action.id, action.ok))
            elif isinstance(action, Deliver):
                self._deliver(action.datum)
            elif isinstance(action, CutOff):
                self._cut(action)

    def _cut(self, action: CutOff) -> None:
        key: bytes = action.peer  # type: ignore[assignment]
        minutes = max(1, round((action.until - time.time()) / 60))
        words = f"{self.names.display_name(key)} {action.reason}; ignoring its ephemeral data"
        self.cut_off[key] = f"{words} for {minutes} minutes"
        log.warning("%s", self.cut_off[key])
        self.events.emit(NodeEvent("error", self.cut_off[key]))

    # -- the loop --------------------------------------------------------------

    async def async_run(self) -> None:
        """Tick the core, refresh hear/tell, resend presence, forget what expired."""
        last_presence = time.time()
        while True:
            await asyncio.sleep(self.options.tick)
            now = time.time()
            for key in self.links:
                access = self.scope.access(key)
                self.core.set_access(key, hear=access.hear, tell=access.tell)
                until = self.core.cut_off(key)
                if until is None or until <= now:
                    self.cut_off.pop(key, None)
            self._run(self.core.tick(now))
            if now - last_presence >= self.options.presence_interval:
                last_presence = now
                self._send_presence()
            self._expire(now)

    def _expire(self, now: float) -> None:
        typing = {k: t for k, t in self.typing.items() if t > now}
        gone = {channel for channel, _ in set(self.typing) - set(typing)}
        self.typing = typing
        whispers = [w for w in self.whispers if w.expires > now]
        gone |= {w.channel for w in self.whispers if w.expires <= now}
        self.whispers = whispers
        if gone:
            self.events.emit(NodeEvent("typing", "", tuple(sorted(gone))))
        stale = [k for k, p in self.presence.items() if p.expires <= now and p.state != "offline"]
        for key in stale:
            self.presence[key] = replace(self.presence[key], state="offline")
        if stale:
            self.events.emit(NodeEvent("peers", "presence expired"))

    def goodbye(self) -> None:
        """Say "offline" to the peers we tell, best effort, before the links close."""
        if not self._stopped and self.config.presence and self.links:
            self._emit_signed(PRESENCE, {"s": "offline", "c": ""}, self.options.presence_hops, 30.0)
        self._stopped = True

    # -- sending ---------------------------------------------------------------

    def set_here(self, channel: str) -> None:
        """Our user looks at `channel` now (per-channel "here now")."""
        if channel != self.here:
            self.here = channel
            self._send_presence()

    def set_away(self, away: bool) -> None:
        """Our user went away (idle) or came back."""
        if away != self.away:
            self.away = away
            self._send_presence()

    def _send_presence(self) -> None:
        if not self.config.presence or self._stopped:
            return
        ttl = self.options.presence_ttl or min(2.5 * self.options.presence_interval, 600.0)
        state = "away" if self.away else "online"
        self._emit_signed(PRESENCE, {"s": state, "c": self.here}, self.options.presence_hops, ttl)

    def typing_in(self, channel: str) -> None:
        """Our user is typing in `channel` (sent at most every 3 s per channel)."""
        now = time.time()
        if not self.config.presence or now - self._last_typing.get(channel, 0.0) < TYPING_EVERY:
            return
        self._last_typing[channel] = now
        self._emit_signed(TYPING, {"c": channel}, self.options.typing_hops, TYPING_SHOWN + 1)

    def whisper(self, channel: str, text: str, hops: int | None = None) -> Whisper:
        """Send an unsigned whisper to `channel`; raises `EphemeralError` saying why not."""
        text = text.strip()
        if not text:
            raise EphemeralError("a whisper needs some text: /whisper TEXT")
        if len(text) > WHISPER_TEXT_LIMIT:
            raise EphemeralError(
                f"a whisper is at most {WHISPER_TEXT_LIMIT} characters; this one is {len(text)}"
            )
        now = time.time()
        if now - self._last_whisper < WHISPER_EVERY:
            raise EphemeralError("one whisper a second at most: wait a moment")
        self._last_whisper = now
        body = msgpack.packb({"c": channel, "x": text}, use_bin_type=True)
        hops = self.config.whisper_hops if hops is None else hops
        try:
            actions = self.core.emit(WHISPER, body, hops, WHISPER_TTL, now)
        except DatumError as exc:
            raise EphemeralError(str(exc)) from None
        self._run(actions)
        mine = Whisper(channel, text, now, now + WHISPER_TTL, own=True)
        self.whispers.append(mine)
        self.events.emit(NodeEvent("whisper", "", (channel,)))
        return mine

    def _emit_signed(self, kind: str, fields: dict[str, object], hops: int, ttl: float) -> None:
        payload = msgpack.packb(
            {**fields, "a": self.identity.feed_id, "k": kind, "t": time.time()}, use_bin_type=True
        )
        signature = self.identity.signing_key.sign(SIGNED_DOMAIN + payload).signature
        body = msgpack.packb([payload, signature], use_bin_type=True)
        self._run(self.core.emit(kind, body, hops, ttl, time.time()))

    # -- receiving -------------------------------------------------------------

    def _deliver(self, datum: Datum) -> None:
        now = time.time()
        try:
            if datum.kind == WHISPER:
                self._on_whisper(datum, now)
            elif datum.kind in (PRESENCE, TYPING):
                self._on_signed(datum, now)
        except (ValueError, TypeError, msgpack.UnpackException, BadSignatureError) as exc:
            log.info("ignoring a %s datum: %s", datum.kind, exc)

    def _on_whisper(self, datum: Datum, now: float) -> None:
        body = msgpack.unpackb(datum.body, raw=False)
        channel, text = body.get("c"), body.get("x")
        if not isinstance(channel, str) or not isinstance(text, str) or not text:
            raise ValueError("not a whisper")
        expires = min(datum.expires, now + WHISPER_TTL)
        self.whispers.append(Whisper(channel, text[:WHISPER_TEXT_LIMIT], now, expires))
        self.events.emit(NodeEvent("whisper", "", (channel,)))

    def _on_signed(self, datum: Datum, now: float) -> None:
        payload, signature = msgpack.unpackb(datum.body, raw=False)
        fields = msgpack.unpackb(payload, raw=False)
        author = fields.get("a")
        if not isinstance(author, bytes) or len(author) != 32 or fields.get("k") != datum.kind:
            raise ValueError("not a signed presence or typing datum")
        VerifyKey(author).verify(SIGNED_DOMAIN + payload, signature)
        if author == self.identity.feed_id or author in self.scope.blocked:
            return
        channel = fields.get("c", "")
        if not isinstance(channel, str):
            raise ValueError("channel is not text")
        if datum.kind == TYPING:
            self.typing[(channel, author)] = now + TYPING_SHOWN
            self.events.emit(NodeEvent("typing", "", (channel,)))
            return
        state = fields.get("s")
        if state not in STATES:
            raise ValueError(f"unknown presence state {state!r}")
        before = self.presence.get(author)
        self.presence[author] = Presence(state, channel, now, min(datum.expires, now + 600.0))
        if state == "offline":
            for key in [k for k in self.typing if k[1] == author]:
                del self.typing[key]
        if before is None or (before.state, before.channel) != (state, channel):
            self.events.emit(NodeEvent("peers", "presence"))

    # -- views -----------------------------------------------------------------

    def state_of(self, key: bytes) -> tuple[str, float | None]:
        """("online" | "away" | "offline" | "", last seen): "" = never heard of."""
        seen = self.presence.get(key)
        if seen is None:
            return "", None
        state = seen.state if seen.expires > time.time() else "offline"
        return state, seen.heard_at

    def typing_names(self, channel: str) -> list[str]:
        """Who is typing in `channel` now, by display name."""
        now = time.time()
        keys = sorted({a for (c, a), until in self.typing.items() if c == channel and until > now})
        return [self.names.display_name(k) for k in keys]

    def here_now(self, channel: str) -> list[str]:
        """Who (online or away) is looking at `channel`, by display name, ourselves first."""
        now = time.time()
        keys = [
            k
            for k, p in self.presence.items()
            if p.channel == channel and p.state != "offline" and p.expires > now
        ]
        names = sorted(self.names.display_name(k) for k in keys)
        return (["you"] if self.here == channel else []) + names

    def whispers_in(self, channel: str) -> list[Whisper]:
        now = time.time()
        return [w for w in self.whispers if w.channel == channel and w.expires > now]

    def annotate(self, views: Iterable[PeerView]) -> list[PeerView]:
        """The peers view with presence, last seen and any cut-off as its reason."""
        out = []
        for view in views:
            state, seen = self.state_of(view.key)
            reason = self.cut_off.get(view.key, view.reason)
            out.append(replace(view, presence=state, last_seen=seen, reason=reason))
        return out
