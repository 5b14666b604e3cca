"""A Maelstrom broadcast node: the one EBT core behind Maelstrom's JSON-lines protocol.

Why it is built this way
------------------------
Maelstrom (jepsen-io/maelstrom, workload `broadcast`) speaks one JSON object per line
on stdin/stdout: `init`, `topology`, `broadcast {message}` and `read`, each answered
with `*_ok` carrying `in_reply_to`. Every node's *feed* is the list of values that
clients broadcast to it (seq 1, 2, ...); all nodes want all feeds, and the values a
`read` returns are the union of every feed held. Replication between servers is the
EBT core (`net.ebt.Replicator`), unchanged: its notes and messages travel as
`{"type": "ebt", ...}` bodies. This module holds no replication logic.

The core assumes what TCP gives the real node: per-peer FIFO delivery without loss
for as long as a connection lasts. Maelstrom's network drops every message across a
partition, so a small *link layer* stands in for TCP: the frames to a peer are
numbered, the receiver hands them to the core strictly in order (buffering early
ones), acknowledges cumulatively (piggybacked on its own bodies, or alone after
`ack_delay`), and the sender re-sends everything unacknowledged, as one body, when
no acknowledgement came for `resend_after`. A partition thus looks to the core like
a peer that went silent; its stall timeout grafts another eager source, exactly as
over TCP. The link layer also batches: what the core emits for one peer within
`batch_window` leaves as a single body (adjacent notes merged, messages appended in
order), which is what keeps messages-per-operation low. A body leaves at once when
the link sent none for a window, else when the window since the last one ends: at most
one body per window, and a lone value does not wait.

The overlay is ours to choose (Maelstrom allows ignoring the suggested topology):
by default a star around the first node plus a ring among the others, so the eager
tree has two hops and the ring links stay lazy backups that announce only notes.
`--overlay given` uses Maelstrom's `topology` message instead. The batching window
and the overlay are the knob between latency and messages; `PRESETS` names the
points the benchmark reports (docs/simulation.md).

`MaelstromNode` is sans-IO: `handle(now, message)` and `tick(now)` return the
messages to write. `maelstrom_main()` is the thin stdin/stdout shell around it.
"""

from __future__ import annotations

import enum
import json
import math
import queue
import sys
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from net.ebt import (
    Action,
    EbtConfig,
    Push,
    Replicator,
    SendMessages,
    SendNotes,
    StoreMessages,
)
from net.errors import RemoteProtocolError
from net.notes import NoteBody, NoteReader, NoteWriter

Envelope = dict[str, Any]  # {"src", "dest", "body"}
Payload = tuple[int, Any]  # (seq, value)

# Maelstrom error codes (doc/protocol.md)
ERR_NOT_SUPPORTED = 10
ERR_MALFORMED = 12


class Overlay(enum.Enum):
    """Which server-to-server links the node opens."""

    STAR_RING = "star-ring"  # hub = first node; the others also form a ring (backups)
    STAR = "star"
    TREE4 = "tree4"  # 4-ary tree in node order
    GIVEN = "given"  # Maelstrom's `topology` message
    FULL = "full"
    HUBS = "hubs"  # a few hubs in a full mesh, every other node on one hub (large clusters)


class MaelstromInputError(ValueError):
    """A message from Maelstrom or a peer that we cannot understand; it is skipped."""


@dataclass(frozen=True, slots=True)
class NodeSettings:
    """Tuning of a node; the defaults are the ones the benchmark reports."""

    overlay: Overlay = Overlay.STAR_RING
    batch_window: float = 0.03  # at most one body per peer per window (see _Link.add_part)
    hubs: int = 0  # Overlay.HUBS: how many hubs (0: a fifth of the nodes, at least 2)
    note_delay: float = 0.25  # EbtConfig.note_delay: coalesce notes this long
    stall_timeout: float = 1.0  # EbtConfig.stall_timeout
    note_ack_delay: float = 1.0  # EbtConfig.ack_delay: acks of received messages wait this long
    core_tick: float = 0.05  # call Replicator.tick this often
    ack_delay: float = 1.0  # acknowledge alone if nothing else left for the peer this long
    resend_after: float = 2.0  # re-send unacknowledged frames after this long without an ack
    push_batch: int = 200  # messages read from our store per pushed batch
    opening_entry: bool = True  # write entry 1 of our feed at init (forms the trees early)
    ready_wait: float = 3.0  # hold init_ok until every feed's entry 1 is here, at most this long
    prune: bool = True
    swap: bool = True


PRESETS: dict[str, NodeSettings] = {
    "default": NodeSettings(),
    # Every value straight from its author to every node (one hop, no batching); notes,
    # the only other traffic, are coalesced for 2 s.
    "low-latency": NodeSettings(overlay=Overlay.FULL, batch_window=0.0, note_delay=2.0),
    # Two hops through the hub, at most one body per link per 0.4 s.
    "frugal": NodeSettings(overlay=Overlay.STAR, batch_window=0.4),
    # 100 nodes and more: 20 % of the nodes are hubs in a full mesh, each with ~4
    # leaves (three hops, no node the hub of everything), 150 ms bodies, acks every 2 s.
    "large": NodeSettings(
        overlay=Overlay.HUBS,
        batch_window=0.15,
        note_delay=1.0,
        note_ack_delay=2.0,
        ack_delay=2.0,
        resend_after=3.0,
    ),
}
"""Named settings for `treechat maelstrom --preset` (benchmarks/bench_maelstrom.py)."""


def overlay_links(
    kind: Overlay,
    me: str,
    node_ids: Sequence[str],
    given: Mapping[str, Sequence[str]],
    hubs: int = 0,
) -> list[str]:
    """The peers `me` links to (links are symmetric: both ends compute the same set)."""
    ids = list(node_ids)
    if me not in ids:
        return []
    i = ids.index(me)
    n = len(ids)
    if kind is Overlay.GIVEN:
        links = set(given.get(me, ()))
        links.update(x for x, ns in given.items() if me in ns)
        return sorted(x for x in links if x != me and x in ids)
    if kind is Overlay.FULL:
        return [x for x in ids if x != me]
    if kind is Overlay.HUBS:
        return _hub_links(i, n, ids, hubs)
    if kind is Overlay.TREE4:
        out = [ids[(i - 1) // 4]] if i else []
        out += [ids[c] for c in range(4 * i + 1, min(n, 4 * i + 5))]
        return out
    hub = ids[0]
    if i == 0:
        return ids[1:]
    out = [hub]
    if kind is Overlay.STAR_RING and n > 3:
        leaves = ids[1:]
        j = i - 1
        for x in (leaves[(j - 1) % len(leaves)], leaves[(j + 1) % len(leaves)]):
            if x != me and x not in out:
                out.append(x)
    return out


def _hub_links(i: int, n: int, ids: Sequence[str], hubs: int) -> list[str]:
    # Nodes 0..k-1 are hubs, linked to each other; node j >= k hangs on hub j mod k.
    k = max(1, min(n, hubs or max(2, n // 5)))
    if i < k:
        return [ids[h] for h in range(k) if h != i] + [ids[j] for j in range(k + i, n, k)]
    return [ids[i % k]]


@dataclass(slots=True)
class _Link:
    """The TCP stand-in towards one peer: numbered frames, in-order receive, acks, resend."""

    sent_upto: int = 0  # number of the last frame handed out
    acked: int = 0  # the peer has every frame up to this one
    unacked: dict[int, list[Any]] = field(default_factory=dict)  # number -> frame
    resend_at: float | None = None
    received_upto: int = 0  # we handed frames up to this one to the core
    early: dict[int, list[Any]] = field(default_factory=dict)  # out-of-order frames
    ack_owed_since: float | None = None
    outbox: list[list[Any]] = field(default_factory=list)  # parts of the next frame
    flush_at: float | None = None
    last_body: float = -math.inf  # when the last body with frames left for this peer
    notes_out: NoteWriter = field(default_factory=NoteWriter)  # our feed numbering
    notes_in: NoteReader = field(default_factory=lambda: NoteReader(id_size=None))  # the peer's

    def add_part(self, kind: str, data: Any, now: float, window: float) -> None:
        """Queue a part; the body leaves at once if the link sent none for `window`, else
        when `window` has passed since the last one (at most one body per window)."""
        # A frame is a list of parts ["n", {feed: note}] / ["m", [[feed, seq, value]...]],
        # kept in the order the core emitted them; adjacent parts of a kind merge.
        if self.outbox and self.outbox[-1][0] == kind:
            last = self.outbox[-1][1]
            if kind == "n":
                last.update(data)
            else:
                last.extend(data)
        else:
            self.outbox.append([kind, data])
        if self.flush_at is None:
            self.flush_at = max(now, self.last_body + window)


def _json_notes(body: NoteBody) -> list[str | int]:
    """A clock body in JSON: feed ids (our node names) as strings."""
    return [x.decode() if isinstance(x, bytes) else x for x in body]


class MaelstromNode:
    """One Maelstrom server around a Replicator: feed it messages and ticks, write its output."""

    def __init__(self, settings: NodeSettings | None = None) -> None:
        self.settings = settings or NodeSettings()
        self.node_id: str | None = None
        self.node_ids: list[str] = []
        self.rep: Replicator | None = None
        self.logs: dict[bytes, list[Payload]] = {}
        self.links: dict[str, _Link] = {}
        self.values: list[Any] = []  # every value we hold, in the order we learned them
        self._known: set[Any] = set()
        self._next_msg_id = 0
        self._next_core_tick = 0.0
        self._pending_before_init: list[Envelope] = []
        self._init_ok: Envelope | None = None  # held until the initial sync is done
        self._ready_by = 0.0
        self._given: dict[str, list[str]] = {}
        self.log_lines: list[str] = []  # the shell writes these to stderr

    # ------------------------------------------------------------- inputs

    def handle(self, now: float, message: Envelope) -> list[Envelope]:
        """React to one message from Maelstrom (a client or a peer)."""
        out: list[Envelope] = []
        try:
            src, body = _parse_envelope(message)
            kind = body.get("type")
            if kind == "init":
                out += self._init(now, src, body)
            elif self.node_id is None:
                if kind == "ebt":  # a peer that started before our init: keep it
                    self._pending_before_init.append(message)
                else:
                    out.append(self._error(src, body, ERR_NOT_SUPPORTED, "not initialised yet"))
            elif kind == "ebt":
                self._receive_ebt(now, src, body)
            elif kind == "broadcast":
                out.append(self._broadcast(now, src, body))
            elif kind == "read":
                out.append(self._reply(src, body, {"type": "read_ok", "messages": self.values}))
            elif kind == "topology":
                out.append(self._topology(now, src, body))
            else:
                out.append(self._error(src, body, ERR_NOT_SUPPORTED, f"unknown type {kind!r}"))
        except MaelstromInputError as exc:
            self.log_lines.append(f"skipped a bad message: {exc}")
        out += self._flush(now)
        return out

    def tick(self, now: float) -> list[Envelope]:
        """Timers: the core's tick, batch windows, acks and re-sends. Call often (~10 ms)."""
        if self.rep is None:
            return []
        if now >= self._next_core_tick:
            self._next_core_tick = now + self.settings.core_tick
            self._run(now, self.rep.tick(now))
        return self._flush(now)

    def next_deadline(self) -> float | None:
        """The earliest time `tick` has something to do (None before init)."""
        if self.rep is None:
            return None
        times = [self._next_core_tick]
        if self._init_ok is not None:
            times.append(self._ready_by)
        s = self.settings
        for link in self.links.values():
            if link.flush_at is not None:
                times.append(link.flush_at)
            if link.ack_owed_since is not None:
                times.append(link.ack_owed_since + s.ack_delay)
            if link.resend_at is not None:
                times.append(link.resend_at)
        return min(times)

    # ------------------------------------------------------------- client side

    def _init(self, now: float, src: str, body: Mapping[str, Any]) -> list[Envelope]:
        node_id = body.get("node_id")
        node_ids = body.get("node_ids")
        if not isinstance(node_id, str) or not isinstance(node_ids, list):
            raise MaelstromInputError("init needs node_id (string) and node_ids (list)")
        if not all(isinstance(x, str) for x in node_ids) or node_id not in node_ids:
            raise MaelstromInputError("init node_ids must be strings including node_id")
        if self.node_id is not None:
            return [self._reply(src, body, {"type": "init_ok"})]
        self.node_id = node_id
        self.node_ids = list(node_ids)
        feeds = [x.encode() for x in self.node_ids]
        self.logs = {f: [] for f in feeds}
        s = self.settings
        config = EbtConfig(
            stall_timeout=s.stall_timeout,
            note_delay=s.note_delay,
            ack_delay=s.note_ack_delay,
            prune=s.prune,
            swap=s.swap,
        )
        self.rep = Replicator(dict.fromkeys(feeds, 0), feeds, config)
        out: list[Envelope] = []
        init_ok = self._reply(src, body, {"type": "init_ok"})
        if s.opening_entry and s.ready_wait > 0:
            # Ready once the opening entry of every feed has arrived (initial sync done,
            # trees formed), or after ready_wait at the latest: Maelstrom starts the
            # clients when every node has answered init.
            self._init_ok = init_ok
            self._ready_by = now + s.ready_wait
        else:
            out.append(init_ok)
        if s.opening_entry:
            # Entry 1 of every feed opens it (no client value). Stored before the links
            # open, it is in our opening clocks, so each feed's eager tree starts to
            # form at once instead of on the first client broadcast.
            own = node_id.encode()
            self.logs[own].append((1, None))
            self._run(now, self.rep.stored(own, 1, (1, None), now, source=None))
        if s.overlay is not Overlay.GIVEN:
            self._open_links(now, overlay_links(s.overlay, node_id, self.node_ids, {}, s.hubs))
        for early in self._pending_before_init:
            out += self.handle(now, early)
        self._pending_before_init.clear()
        return out

    def _topology(self, now: float, src: str, body: Mapping[str, Any]) -> Envelope:
        topo = body.get("topology")
        if not isinstance(topo, dict):
            raise MaelstromInputError("topology needs a topology map")
        self._given = {str(k): [str(x) for x in v] for k, v in topo.items() if isinstance(v, list)}
        if self.settings.overlay is Overlay.GIVEN and self.node_id is not None:
            peers = overlay_links(Overlay.GIVEN, self.node_id, self.node_ids, self._given)
            self._open_links(now, [p for p in peers if p not in self.links])
        return self._reply(src, body, {"type": "topology_ok"})

    def _broadcast(self, now: float, src: str, body: Mapping[str, Any]) -> Envelope:
        if "message" not in body:
            raise MaelstromInputError("broadcast needs a message")
        value = body["message"]
        assert self.rep is not None and self.node_id is not None
        feed = self.node_id.encode()
        log = self.logs[feed]
        seq = len(log) + 1
        log.append((seq, value))
        self._learn(value)
        self._run(now, self.rep.stored(feed, seq, (seq, value), now, source=None))
        return self._reply(src, body, {"type": "broadcast_ok"})

    def _learn(self, value: Any) -> None:
        key = json.dumps(value, sort_keys=True) if isinstance(value, dict | list) else value
        if key not in self._known:
            self._known.add(key)
            self.values.append(value)

    def _reply(self, dest: str, request: Mapping[str, Any], body: dict[str, Any]) -> Envelope:
        self._next_msg_id += 1
        body["msg_id"] = self._next_msg_id
        if "msg_id" in request:
            body["in_reply_to"] = request["msg_id"]
        return {"src": self.node_id or "", "dest": dest, "body": body}

    def _error(self, dest: str, request: Mapping[str, Any], code: int, text: str) -> Envelope:
        return self._reply(dest, request, {"type": "error", "code": code, "text": text})

    # ------------------------------------------------------------- the core

    def _open_links(self, now: float, peers: Iterable[str]) -> None:
        assert self.rep is not None and self.node_id is not None
        me = self.node_ids.index(self.node_id)
        for peer in peers:
            if peer in self.links:
                continue
            self.links[peer] = _Link()
            # The later node dials: the hub (first node) accepts, so it opens at once.
            initiator = me > self.node_ids.index(peer)
            self._run(now, self.rep.connect(peer, now, initiator=initiator, record=None))

    def _run(self, now: float, actions: Iterable[Action]) -> None:
        """Carry out the core's actions, and those their results produce, in order."""
        window = self.settings.batch_window
        pending = list(actions)
        i = 0
        while i < len(pending):
            a = pending[i]
            i += 1
            peer = str(a.peer)  # our peers are node ids
            if isinstance(a, SendMessages):
                link = self.links.get(peer)
                if link is not None:
                    name = a.feed.decode()
                    link.add_part("m", [[name, p[0], p[1]] for p in a.payloads], now, window)
            elif isinstance(a, SendNotes):
                link = self.links.get(peer)
                if link is not None:
                    link.add_part("n", dict(a.notes), now, window)
            elif isinstance(a, StoreMessages):
                pending += self._store(now, peer, a.feed, a.payloads)
            elif isinstance(a, Push):
                pending += self._push(now, peer, a.feed, a.from_seq)
            # PersistRecord: a Maelstrom node has no disk, and its links never close

    def _store(
        self, now: float, peer: str, feed: bytes, payloads: Sequence[Payload]
    ) -> list[Action]:
        assert self.rep is not None
        log = self.logs[feed]
        out: list[Action] = []
        for payload in payloads:
            seq = payload[0]
            if seq <= len(log):
                continue
            if seq != len(log) + 1:
                out += self.rep.rejected(feed, peer, now, fork=False)
                break
            log.append(payload)
            if seq > 1 or not self.settings.opening_entry:  # else: the opening entry
                self._learn(payload[1])
            out += self.rep.stored(feed, seq, payload, now, source=peer)
        return out

    def _push(self, now: float, peer: str, feed: bytes, from_seq: int) -> list[Action]:
        assert self.rep is not None
        log = self.logs[feed]
        link = self.links.get(peer)
        out: list[Action] = []
        seq: int | None = from_seq
        batch = self.settings.push_batch
        # Bounded per call: a long catch-up continues on the next Push/tick the core emits.
        for _ in range(16):
            if link is None or seq is None or seq > len(log):
                break
            chunk = log[seq - 1 : seq - 1 + batch]
            part = [[feed.decode(), p[0], p[1]] for p in chunk]
            link.add_part("m", part, now, self.settings.batch_window)
            out += self.rep.pushed(peer, feed, chunk[-1][0], now)
            seq = self.rep.push_cursor(peer, feed)
        return out

    # ------------------------------------------------------------- the link layer

    def _receive_ebt(self, now: float, src: str, body: Mapping[str, Any]) -> None:
        link = self.links.get(src)
        if link is None:
            if src not in self.node_ids or src == self.node_id:
                raise MaelstromInputError(f"ebt body from unknown node {src!r}")
            self._open_links(now, [src])  # the peer chose a link we did not: accept it
            link = self.links[src]
        ack = body.get("ack", 0)
        first = body.get("first")
        frames = body.get("frames", [])
        if not isinstance(ack, int) or not isinstance(frames, list):
            raise MaelstromInputError(f"bad ebt body from {src}")
        if ack > link.acked:
            for k in range(link.acked + 1, min(ack, link.sent_upto) + 1):
                link.unacked.pop(k, None)
            link.acked = min(ack, link.sent_upto)
            link.resend_at = now + self.settings.resend_after if link.unacked else None
        if not frames:
            return
        if not isinstance(first, int):
            raise MaelstromInputError(f"ebt frames from {src} without a first number")
        for k, frame in enumerate(frames, start=first):
            if k > link.received_upto:
                link.early[k] = frame if isinstance(frame, list) else []
        if link.ack_owed_since is None:
            link.ack_owed_since = now
        while link.received_upto + 1 in link.early:
            link.received_upto += 1
            self._deliver_frame(now, src, link.early.pop(link.received_upto))

    def _deliver_frame(self, now: float, src: str, frame: list[Any]) -> None:
        assert self.rep is not None
        for part in frame:
            try:
                kind, data = part
                if kind == "n":
                    link = self.links.get(src)
                    if link is None:
                        raise MaelstromInputError(f"{src} is not a peer")
                    body = [str(x).encode() if isinstance(x, str) else x for x in data]
                    notes = link.notes_in.decode(body)
                    self._run(now, self.rep.receive_notes(src, notes, now))
                elif kind == "m":
                    msgs = [(str(f).encode(), int(s), (int(s), v)) for f, s, v in data]
                    if any(f not in self.logs for f, _s, _p in msgs):
                        raise MaelstromInputError(f"{src} sent a feed we do not know")
                    self._run(now, self.rep.receive_messages(src, msgs, now))
            except (TypeError, ValueError, AttributeError, RemoteProtocolError) as exc:
                self.log_lines.append(f"skipped a bad frame part from {src}: {exc}")

    def _flush(self, now: float) -> list[Envelope]:
        out: list[Envelope] = []
        if self._init_ok is not None and (now >= self._ready_by or all(self.logs.values())):
            out.append(self._init_ok)
            self._init_ok = None
        s = self.settings
        for peer, link in self.links.items():
            frames: list[list[Any]] = []
            first = None
            if link.flush_at is not None and now >= link.flush_at:
                link.sent_upto += 1
                for part in link.outbox:  # notes go as on a socket (net/notes.py)
                    if part[0] == "n":
                        part[1] = _json_notes(link.notes_out.encode(part[1]))
                link.unacked[link.sent_upto] = link.outbox
                frames = [link.outbox]
                first = link.sent_upto
                link.outbox = []
                link.flush_at = None
                link.last_body = now
                if link.resend_at is None:
                    link.resend_at = now + s.resend_after
            elif link.resend_at is not None and now >= link.resend_at and link.unacked:
                first = min(link.unacked)
                frames = [link.unacked[k] for k in range(first, link.sent_upto + 1)]
                link.resend_at = now + s.resend_after
            owed = link.ack_owed_since is not None and now >= link.ack_owed_since + s.ack_delay
            if not frames and not owed:
                continue
            body: dict[str, Any] = {"type": "ebt", "ack": link.received_upto}
            if frames:
                body["first"] = first
                body["frames"] = frames
            link.ack_owed_since = None
            out.append({"src": self.node_id, "dest": peer, "body": body})
        return out


def _parse_envelope(message: Any) -> tuple[str, dict[str, Any]]:
    if not isinstance(message, dict):
        raise MaelstromInputError("a message must be a JSON object")
    src = message.get("src")
    body = message.get("body")
    if not isinstance(src, str) or not isinstance(body, dict):
        raise MaelstromInputError("a message needs src (string) and body (object)")
    return src, body


def maelstrom_main(settings: NodeSettings | None = None) -> int:
    """`treechat maelstrom`: run one node on stdin/stdout until stdin closes."""
    node = MaelstromNode(settings)
    lines: queue.Queue[str | None] = queue.Queue()

    def read_stdin() -> None:
        for line in sys.stdin:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=read_stdin, name="maelstrom-stdin", daemon=True).start()
    out = sys.stdout
    while True:
        deadline = node.next_deadline()
        wait = 0.01 if deadline is None else max(0.0, min(0.01, deadline - time.monotonic()))
        try:
            line = lines.get(timeout=wait)
        except queue.Empty:
            line = ""
        if line is None:
            return 0
        now = time.monotonic()
        replies: list[Envelope] = []
        if line.strip():
            try:
                replies = node.handle(now, json.loads(line))
            except json.JSONDecodeError as exc:
                print(f"maelstrom: skipped a line that is not JSON: {exc}", file=sys.stderr)
        replies += node.tick(now)
        for text in node.log_lines:
            print(f"maelstrom: {text}", file=sys.stderr)
        node.log_lines.clear()
        for reply in replies:
            out.write(json.dumps(reply, separators=(",", ":")) + "\n")
        if replies:
            out.flush()


if __name__ == "__main__":
    sys.exit(maelstrom_main())
