"""The discrete-event simulator: nodes running the one EBT core over simulated links.

Why it is built this way
------------------------
Every simulated node is one `net.ebt.Replicator` plus an in-memory store (feed ->
list of payloads, payload = `(author index, seq)`; a node that joined newest first has
None at the seqs it does not hold yet). The engine holds no replication
logic: it only carries out the core's actions (send a frame, read the store for a
`Push`, store what `StoreMessages` hands over) and feeds the core its inputs
(connect/disconnect, received frames, ticks). Flooding is the same core with
`prune=False`, "ebt-noswap" the same core with `swap=False`.

Time is virtual (a heap of events ordered by time, then by insertion), and all
randomness comes from one `random.Random(seed)`, so a run is a pure function of its
SimConfig. A link is a pair of FIFO directions with a per-link base latency; a
connection on a link has an epoch, and a frame sent in one epoch is dropped if it
arrives after the link broke (crash, partition), like bytes written into a TCP
connection that then reset. A broken link is noticed by each end `detect_ms` later,
which then calls `disconnect`; healing or restarting calls `connect` on both ends.
Per-event work is O(size of the frame): no event scans all nodes or all feeds.

With `join`, a fresh node joins after the run (every feed may hold a `backlog` of old
messages) and the figures say when it held the newest message of every feed, the
newest window and everything it wanted: its core asks by range requests
(`RequestRange`), answered from the peers' stores, unless `join_ranges` is off.
"""

from __future__ import annotations

import dataclasses
import functools
import heapq
import itertools
import random
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any, cast

from net.ebt import (
    Action,
    EbtConfig,
    PeerRecord,
    PersistRecord,
    Push,
    Replicator,
    RequestRange,
    SendMessages,
    SendNotes,
    StoreMessages,
)
from net.notes import NoteBody, NoteReader, NoteWriter, body_bytes
from net.ranges import RangeConfig
from net.sim import topology
from net.sim.config import FeedScope, LatencyDist, PartitionKind, SimConfig, Strategy
from net.sim.metrics import (
    JoinResult,
    MessageTrace,
    Recorder,
    SimResult,
    msgs_body_bytes,
    wire_bytes,
)

Payload = tuple[int, int]  # (author node index, seq)

_DELIVER_NOTES = 0
_DELIVER_MSGS = 1
_TICK = 2
_CALL = 3
_DELIVER_RANGE_REQUEST = 4
_DELIVER_RANGE_ANSWER = 5

# At most this many push batches per Push action in one event; the rest continues
# in a later event, so a node catching up on a long feed cannot stall the clock.
_PUSH_BATCHES_PER_EVENT = 8


def _frame_bytes(kind: int, data: Any) -> int:
    """Bytes on the wire of one frame the engine sends (as the figures count them)."""
    if kind == _DELIVER_MSGS:
        return wire_bytes(msgs_body_bytes(len(data)), "msgs")
    if kind == _DELIVER_RANGE_ANSWER:
        return wire_bytes(msgs_body_bytes(len(data[3])), "rmsgs") + wire_bytes(48, "rdone")
    if kind == _DELIVER_NOTES:
        return wire_bytes(body_bytes(data), "clock")
    return wire_bytes(48, "range")  # a range request: feed id and two seqs


def feed_id(index: int) -> bytes:
    """The 32-byte feed id of node `index` (its big-endian index, like a key's size)."""
    return index.to_bytes(32, "big")


def ebt_config_for(cfg: SimConfig) -> EbtConfig:
    """The core's configuration for the chosen strategy."""
    return EbtConfig(
        stall_timeout=cfg.stall_timeout,
        note_delay=cfg.note_delay,
        prune=cfg.strategy is not Strategy.FLOOD,
        swap=cfg.strategy is Strategy.EBT,
        swap_after=cfg.swap_after,
    )


class Simulation:
    """One run: build the overlay, schedule workload and failures, process events."""

    def __init__(self, cfg: SimConfig) -> None:
        cfg.validate()
        self.cfg = cfg
        self.rng = random.Random(cfg.seed)
        n = cfg.nodes
        self.n = n
        self.graph = topology.build(
            cfg.topology, n, degree=cfg.degree, branching=cfg.branching, rng=self.rng
        )
        self.edges = topology.edges_of(self.graph)
        self.base = {e: self._draw_latency() for e in self.edges}
        if cfg.sources is None or cfg.sources >= n:
            self.sources = list(range(n))
        else:
            self.sources = sorted(self.rng.sample(range(n), cfg.sources))
        replicated = range(n) if cfg.feeds is FeedScope.ALL else self.sources
        self.feed_of = {u: feed_id(u) for u in replicated}
        self.feeds = list(self.feed_of.values())
        self.ebt_config = ebt_config_for(cfg)
        self.now = 0.0
        self.alive = [True] * n
        self.side = [0] * n  # partition side; links between different sides are cut
        # per direction, for O(1) lookups on the hot path: link epoch and base latency
        self.epoch: list[dict[int, int]] = [dict.fromkeys(self.graph[u], 0) for u in range(n)]
        self.delay: list[dict[int, float]] = [{} for _ in range(n)]
        for (a, b), lat in self.base.items():
            self.delay[a][b] = self.delay[b][a] = lat
        self.sessions: list[dict[int, int]] = [{} for _ in range(n)]  # peer -> epoch
        self.last_arrival: list[dict[int, float]] = [{} for _ in range(n)]
        self.stores: list[dict[bytes, list[Payload | None]]] = [
            {f: [] for f in self.feeds} for _ in range(n)
        ]
        self.held = [0] * n  # messages held, all feeds together
        self.authored = 0
        if cfg.backlog:  # old history every node holds before the run
            for source in self.sources:
                feed = self.feed_of[source]
                old = [(source, seq) for seq in range(1, cfg.backlog + 1)]
                for u in range(n):
                    self.stores[u][feed] = list(old)
            self.held = [cfg.backlog * len(self.sources)] * n
            self.authored = cfg.backlog * len(self.sources)
        self.range_requests = 0
        self.records: list[dict[int, PeerRecord]] = [{} for _ in range(n)]
        self.reps: list[Replicator | None] = [self._new_replicator(u) for u in range(n)]
        self.recorder = Recorder()
        self._queue: list[tuple[Any, ...]] = []
        self._counter = itertools.count()
        self.events = 0
        self.crashed_ever: set[int] = set()
        self.crash_time: float | None = None
        self.heal_time: float | None = None
        self._pending_scenario = 0  # restarts/heals still to come
        self._jitter = cfg.jitter
        self._bandwidth = cfg.bandwidth_mbps * 1e6  # bits per second; 0: unlimited
        self.link_free: dict[int, dict[int, float]] = defaultdict(dict)  # when the wire is free
        self._topo_version = 0
        self._optimum_cache: dict[tuple[int, int], tuple[dict[int, int], dict[int, float]]] = {}
        # per direction (sender, receiver): the session's note numbering, with its epoch
        self._writers: dict[tuple[int, int], tuple[int, NoteWriter]] = {}
        self._readers: dict[tuple[int, int], tuple[int, NoteReader]] = {}

    # ---------------------------------------------------------------- setup

    def _draw_latency(self) -> float:
        mean = self.cfg.latency_ms / 1000
        dist = self.cfg.latency_dist
        if dist is LatencyDist.CONSTANT:
            return mean
        if dist is LatencyDist.UNIFORM:
            return max(1e-4, self.rng.uniform(0, 2 * mean))
        return max(1e-4, self.rng.expovariate(1 / mean))

    def _new_replicator(self, u: int) -> Replicator:
        clock = {f: len(s) for f, s in self.stores[u].items()}
        return Replicator(clock, list(self.feeds), self.ebt_config)

    def _schedule(self, at: float, kind: int, *args: Any) -> None:
        heapq.heappush(self._queue, (at, next(self._counter), kind, *args))

    def _call_at(self, at: float, fn: Callable[[], None]) -> None:
        self._schedule(at, _CALL, fn)

    # ---------------------------------------------------------------- run

    def run(self) -> SimResult:
        cfg = self.cfg
        started = time.perf_counter()
        tick = cfg.tick_ms / 1000
        for u in range(self.n):
            self._schedule(self.rng.uniform(0, tick), _TICK, u)
        for u, v in self.edges:
            self._connect(u, v)
        gap = cfg.interval_ms / 1000
        t = 0.5
        for _ in range(cfg.warmup):  # every source posts in turn, so every tree forms
            for u in self.sources:
                self._call_at(t, functools.partial(self._author, tracked=False, source=u))
                t += gap
        t += cfg.settle
        measure_start = t
        self._call_at(measure_start, self._start_measuring)
        for _ in range(cfg.messages):
            self._call_at(t, lambda: self._author(tracked=True))
            t += gap
        last_message = t
        if cfg.crash_fraction > 0:
            self._call_at(measure_start + cfg.crash_at, self._crash)
        if cfg.partition_fraction > 0:
            self._pending_scenario += 1
            at = measure_start + cfg.partition_at
            self._call_at(at, self._partition)
            self._call_at(at + cfg.heal_after, self._heal)
        self._call_at(last_message, self._check_done)
        self._loop(cfg.max_time)
        wall = time.perf_counter() - started
        expected = [u for u in range(self.n) if self.alive[u]]
        survivors = [u for u in expected if u not in self.crashed_ever]
        result = self.recorder.result(
            meta={
                "nodes": self.n,
                "strategy": cfg.strategy.value,
                "topology": cfg.topology.value,
                "seed": cfg.seed,
            },
            expected=expected,
            survivors=survivors if self.crash_time is not None else None,
            crash_at=self.crash_time,
            heal_at=self.heal_time,
            converged=self._converged(),
            live_connected=topology.induced_connected(self.graph, expected),
            virtual_time=self.now,
            events=self.events,
            wall_seconds=wall,
        )
        if cfg.join:  # after the figures: the joiner is not one of the measured nodes
            result = dataclasses.replace(result, join=self._join())
        return result

    def _loop(self, until: float) -> None:
        queue = self._queue
        pop = heapq.heappop
        tick = self.cfg.tick_ms / 1000
        self._stop = False
        while queue and not self._stop:
            item = pop(queue)
            at = item[0]
            if at > until:
                break
            self.now = at
            self.events += 1
            kind = item[2]
            if kind == _DELIVER_NOTES:
                v, u = item[3], item[4]
                rep = self._receiver(v, u, item[5])
                if rep is not None:
                    notes = self._read_notes(v, u, item[5], item[6])
                    self._apply(v, rep.receive_notes(u, notes, at))
            elif kind == _DELIVER_MSGS:
                v, u = item[3], item[4]
                rep = self._receiver(v, u, item[5])
                if rep is not None:
                    feed = item[7]
                    msgs = [(feed, p[1], p) for p in item[6]]
                    self._apply(v, rep.receive_messages(u, msgs, at))
            elif kind == _DELIVER_RANGE_REQUEST:
                v, u = item[3], item[4]
                if self._receiver(v, u, item[5]) is not None:
                    self._answer_range(v, u, *item[6])
            elif kind == _DELIVER_RANGE_ANSWER:
                v, u = item[3], item[4]
                rep = self._receiver(v, u, item[5])
                if rep is not None:
                    self._store_range(v, rep, u, *item[6])
            elif kind == _TICK:
                u = item[3]
                rep = self.reps[u]
                if rep is not None:
                    self._apply(u, rep.tick(at))
                self._schedule(at + tick, _TICK, u)
            else:
                item[3]()

    def _check_done(self) -> None:
        if self._pending_scenario == 0 and self._converged():
            self._stop = True
            return
        self._call_at(self.now + 0.5, self._check_done)

    def _converged(self) -> bool:
        """Every live node holds every message that some live node holds."""
        live = [u for u in range(self.n) if self.alive[u]]
        if not live or all(self.held[u] == self.authored for u in live):
            return True  # the fast path: nothing was lost with crashed nodes
        for feed in self.feeds:
            longest = max(len(self.stores[u][feed]) for u in live)
            if any(len(self.stores[u][feed]) < longest for u in live):
                return False
        return True

    def _start_measuring(self) -> None:
        self.recorder.measuring = True

    # ---------------------------------------------------------------- links

    def _connected(self, u: int, v: int) -> bool:
        ep = self.epoch[u][v]
        return self.sessions[u].get(v) == ep and self.sessions[v].get(u) == ep

    def _usable(self, u: int, v: int) -> bool:
        return self.alive[u] and self.alive[v] and self.side[u] == self.side[v]

    def _connect(self, u: int, v: int) -> None:
        """Open a connection u -> v (u dials): a fresh epoch, then both cores connect."""
        ep = self.epoch[u][v] + 1
        self.epoch[u][v] = self.epoch[v][u] = ep
        for x, y in ((u, v), (v, u)):
            if y in self.sessions[x]:  # a stale session the end has not noticed yet
                self._end_session(x, y)
        self.sessions[u][v] = ep
        self.sessions[v][u] = ep
        rv, ru = self.reps[v], self.reps[u]
        assert rv is not None and ru is not None
        self._apply(v, rv.connect(u, self.now, initiator=False, record=self.records[v].get(u)))
        self._apply(u, ru.connect(v, self.now, initiator=True, record=self.records[u].get(v)))

    def _break(self, u: int, v: int) -> None:
        """The link stops carrying frames now; each live end notices after detect_ms."""
        old = self.epoch[u][v]
        self.epoch[u][v] = self.epoch[v][u] = old + 1
        at = self.now + self.cfg.detect_ms / 1000
        for x, y in ((u, v), (v, u)):
            if self.alive[x] and self.sessions[x].get(y) == old:
                self._call_at(at, functools.partial(self._notice, x, y, old))

    def _notice(self, x: int, y: int, old: int) -> None:
        if self.alive[x] and self.sessions[x].get(y) == old:
            self._end_session(x, y)

    def _end_session(self, x: int, y: int) -> None:
        del self.sessions[x][y]
        rep = self.reps[x]
        if rep is not None:
            self._apply(x, rep.disconnect(y, self.now))

    def _send(self, u: int, v: Any, kind: int, data: Any, feed: bytes | None) -> None:
        """Put a frame on the u -> v direction (dropped if u has no session to v)."""
        ep = self.sessions[u].get(v)
        if ep is None:
            return
        at = self.now + self.delay[u][v]
        if self._bandwidth:  # the frame leaves once the ones before it are on the wire
            leaves = max(self.now, self.link_free[u].get(v, 0.0)) + _frame_bytes(kind, data) * 8 / (
                self._bandwidth
            )
            self.link_free[u][v] = leaves
            at = leaves + self.delay[u][v]
        if self._jitter:
            at += self.delay[u][v] * self._jitter * self.rng.random()
            last = self.last_arrival[u].get(v, 0.0)
            if at < last:
                at = last  # FIFO per direction
            self.last_arrival[u][v] = at
        heapq.heappush(self._queue, (at, next(self._counter), kind, v, u, ep, data, feed))

    def _send_notes(self, u: int, v: Any, notes: dict[bytes, int]) -> None:
        """Encode with u's numbering for this session (net/notes.py), as a socket would."""
        ep = self.sessions[u].get(v)
        if ep is None:
            return
        held = self._writers.get((u, v))
        if held is None or held[0] != ep or not self.cfg.numbered_notes:
            held = self._writers[(u, v)] = (ep, NoteWriter())
        body = held[1].encode(notes)
        if self.recorder.measuring:
            self.recorder.on_notes(body)
        self._send(u, v, _DELIVER_NOTES, body, None)

    def _read_notes(self, v: int, u: int, ep: int, body: NoteBody) -> dict[bytes, int]:
        """Decode what u sent v in session ep with u's numbering, as v's socket would."""
        held = self._readers.get((v, u))
        if held is None or held[0] != ep:
            held = self._readers[(v, u)] = (ep, NoteReader())
        return held[1].decode(body)

    def _send_msgs(self, u: int, v: Any, feed: bytes, payloads: Sequence[Payload]) -> None:
        if not payloads:
            return
        if self.recorder.measuring:
            self.recorder.on_payloads(payloads)
        self._send(u, v, _DELIVER_MSGS, tuple(payloads), feed)

    def _receiver(self, v: int, u: int, ep: int) -> Replicator | None:
        """v's core if the frame u sent in epoch ep still lands on the same connection."""
        if self.sessions[v].get(u) != ep or self.epoch[v][u] != ep:
            return None
        return self.reps[v]

    # ---------------------------------------------------------------- actions

    def _apply(self, u: int, actions: list[Action]) -> None:
        """Carry out a core's actions (and the ones their results produce), in order."""
        if not actions:
            return
        pending = actions
        i = 0
        while i < len(pending):
            a = pending[i]
            i += 1
            if type(a) is SendNotes:
                self._send_notes(u, a.peer, a.notes)  # a fresh dict per action
            elif type(a) is SendMessages:
                self._send_msgs(u, a.peer, a.feed, a.payloads)
            elif type(a) is StoreMessages:
                pending.extend(self._store(u, a.peer, a.feed, a.payloads))
            elif type(a) is Push:
                pending.extend(self._push(u, a.peer, a.feed, a.from_seq))
            elif type(a) is PersistRecord:
                self.records[u][cast(int, a.peer)] = a.record
            elif type(a) is RequestRange:
                self.range_requests += 1
                self._send(u, a.peer, _DELIVER_RANGE_REQUEST, (a.feed, a.first, a.last), a.feed)

    def _store(self, u: int, peer: Any, feed: bytes, payloads: Sequence[Payload]) -> list[Action]:
        rep = self.reps[u]
        assert rep is not None
        log = self.stores[u][feed]
        out: list[Action] = []
        for p in payloads:
            seq = p[1]
            if seq <= len(log):
                continue  # already held (validation would call it a duplicate)
            if seq != len(log) + 1:
                out.extend(rep.rejected(feed, peer, self.now, fork=False))
                break
            log.append(p)
            self.held[u] += 1
            self.recorder.on_stored(u, p, peer, self.now)
            out.extend(rep.stored(feed, seq, p, self.now, source=peer))
        return out

    def _push(self, u: int, peer: Any, feed: bytes, from_seq: int) -> list[Action]:
        """Send stored messages from from_seq on in bounded batches, reporting each batch."""
        rep = self.reps[u]
        assert rep is not None
        log = self.stores[u][feed]
        out: list[Action] = []
        seq: int | None = from_seq
        batch = self.cfg.push_batch
        for _ in range(_PUSH_BATCHES_PER_EVENT):
            if seq is None or seq > len(log) or peer not in self.sessions[u]:
                return out
            held = log[seq - 1 : seq - 1 + batch]
            if None in held:  # a hole (a node that joined newest first): stop before it
                held = held[: held.index(None)]
                if not held:
                    return out
            chunk = cast(list[Payload], held)
            self._send_msgs(u, peer, feed, chunk)
            out.extend(rep.pushed(peer, feed, chunk[-1][1], self.now))
            seq = rep.push_cursor(peer, feed)
        if seq is not None and seq <= len(log):
            # more to send: continue in a later event (the core still holds the cursor)
            self._call_at(self.now, lambda: self._continue_push(u, rep, peer, feed))
        return out

    # ---------------------------------------------------------------- ranges

    def _answer_range(self, u: int, peer: int, feed: bytes, first: int, last: int) -> None:
        """`peer` asked `u` for `first..last` of `feed`: what `u` holds of it, in one answer."""
        rep = self.reps[u]
        if rep is None or not rep.shares(peer, feed):
            payloads: list[Payload] = []
        else:
            payloads = [p for p in self.stores[u][feed][first - 1 : last] if p is not None]
        if self.recorder.measuring:
            self.recorder.on_payloads(payloads)
        self._send(u, peer, _DELIVER_RANGE_ANSWER, (feed, first, last, payloads), feed)

    def _store_range(
        self,
        u: int,
        rep: Replicator,
        peer: int,
        feed: bytes,
        first: int,
        last: int,
        payloads: list[Payload],
    ) -> None:
        """A range answer reached `u`: store it (holes stay None), then tell the core."""
        log = self.stores[u][feed]
        rep.range_answering(peer, self.now)
        out: list[Action] = []
        for p in payloads:
            seq = p[1]
            if seq > len(log):
                log.extend([None] * (seq - len(log)))
            if log[seq - 1] is None:
                log[seq - 1] = p
                self.held[u] += 1
                self.recorder.on_stored(u, p, peer, self.now)
        if payloads and payloads[-1][1] > rep.local_clock.get(feed, 0):
            out += rep.stored(feed, payloads[-1][1], payloads[-1], self.now, source=peer)
        if payloads:
            held_from = len(log)
            while held_from > 1 and log[held_from - 2] is not None:
                held_from -= 1
            out += rep.range_stored(feed, held_from, self.now)
        out += rep.range_done(peer, feed, first, last, len(payloads), self.now)
        self._apply(u, out)

    # ---------------------------------------------------------------- a fresh node joins

    def _join(self) -> JoinResult:
        """After the run: a fresh node links with `join` random live nodes; when does it
        hold the newest message of every feed, the newest window, everything wanted?"""
        cfg = self.cfg
        self.recorder.measuring = False
        live = [u for u in range(self.n) if self.alive[u]]
        peers = sorted(self.rng.sample(live, min(cfg.join, len(live))))
        j = len(self.reps)
        self.alive.append(True)
        self.side.append(0)
        self.sessions.append({})
        self.last_arrival.append({})
        self.stores.append({f: [] for f in self.feeds})
        self.held.append(0)
        self.records.append({})
        self.epoch.append(dict.fromkeys(peers, 0))
        self.delay.append({})
        for p in peers:
            self.epoch[p][j] = 0
            self.delay[j][p] = self.delay[p][j] = self._draw_latency()
        ranges = RangeConfig() if cfg.join_ranges else None
        config = dataclasses.replace(self.ebt_config, ranges=ranges, history=cfg.join_history)
        self.reps.append(Replicator({}, list(self.feeds), config))
        self.range_requests = 0
        newest = {f: max(len(self.stores[u][f]) for u in live) for f in self.feeds}
        keep = cfg.join_history
        wanted = {f: top if keep is None else min(top, keep) for f, top in newest.items()}
        window = {f: min(RangeConfig().window, w) for f, w in wanted.items()}
        start = self.now
        times: dict[str, float] = {}
        logs = self.stores[j]

        def tail(f: bytes) -> int:  # how many of the newest messages of f it holds in a row
            log, held = logs[f], 0
            while held < len(log) and log[len(log) - 1 - held] is not None:
                held += 1
            return held if len(log) == newest[f] else 0

        def check() -> None:
            for name, need in (("newest", None), ("window", window), ("all", wanted)):
                if name in times:
                    continue
                if all(
                    (len(logs[f]) == newest[f]) if need is None else tail(f) >= need[f]
                    for f in self.feeds
                ):
                    times[name] = self.now - start
            if "all" in times:
                self._stop = True
            else:
                self._call_at(self.now + 0.01, check)

        self._schedule(self.now + self.rng.uniform(0, cfg.tick_ms / 1000), _TICK, j)
        for p in peers:
            self._connect(j, p)
        check()
        self._loop(start + cfg.max_time)
        return JoinResult(
            peers=len(peers),
            history=keep,
            newest_first=cfg.join_ranges,
            feeds=len(self.feeds),
            wanted=sum(wanted.values()),
            newest_s=times.get("newest"),
            window_s=times.get("window"),
            all_s=times.get("all"),
            range_requests=self.range_requests,
        )

    def _continue_push(self, u: int, rep: Replicator, peer: Any, feed: bytes) -> None:
        if self.reps[u] is not rep or peer not in self.sessions[u]:
            return
        seq = rep.push_cursor(peer, feed)
        if seq is not None:
            self._apply(u, self._push(u, peer, feed, seq))

    # ---------------------------------------------------------------- workload

    def _author(self, *, tracked: bool, source: int | None = None) -> None:
        if source is None or not self.alive[source]:
            live = [a for a in self.sources if self.alive[a]]
            if not live:
                return
            source = self.rng.choice(live)
        u = source
        rep = self.reps[u]
        assert rep is not None
        feed = self.feed_of[u]
        log = self.stores[u][feed]
        seq = len(log) + 1
        payload = (u, seq)
        if tracked:
            hops, lat = self._optimum(u)
            self.recorder.track(payload, MessageTrace(u, self.now, hops, lat))
        log.append(payload)
        self.held[u] += 1
        self.authored += 1
        self.recorder.on_stored(u, payload, None, self.now)
        self._apply(u, rep.stored(feed, seq, payload, self.now, source=None))

    def _optimum(self, source: int) -> tuple[dict[int, int], dict[int, float]]:
        key = (source, self._topo_version)
        cached = self._optimum_cache.get(key)
        if cached is None:
            base = self.base

            def weight(a: int, b: int) -> float:
                return base[(a, b) if a < b else (b, a)]

            hops = topology.bfs_hops(self.graph, source, self._usable)
            lat = topology.dijkstra(self.graph, source, weight, self._usable)
            cached = (hops, lat)
            self._optimum_cache[key] = cached
        return cached

    # ---------------------------------------------------------------- failures

    def _crash(self) -> None:
        k = round(self.cfg.crash_fraction * self.n)
        victims = self.rng.sample([u for u in range(self.n) if self.alive[u]], k)
        self.crash_time = self.now
        self._topo_version += 1
        for u in victims:
            self.alive[u] = False
            self.crashed_ever.add(u)
            for v in list(self.sessions[u]):
                self._break(u, v)
            self.sessions[u].clear()
            self.reps[u] = None
        if self.cfg.restart_after is not None:
            self._pending_scenario += 1
            self._call_at(self.now + self.cfg.restart_after, lambda: self._restart(victims))

    def _restart(self, nodes: list[int]) -> None:
        self._pending_scenario -= 1
        self._topo_version += 1
        for u in nodes:
            self.alive[u] = True
            self.reps[u] = self._new_replicator(u)
        for u in nodes:
            for v in self.graph[u]:
                if self._usable(u, v) and not self._connected(u, v):
                    self._connect(u, v)

    def _partition(self) -> None:
        k = round(self.cfg.partition_fraction * self.n)
        if self.cfg.partition_kind is PartitionKind.RANDOM:
            cut = self.rng.sample(range(self.n), k)
        else:  # a region: breadth-first from a random node, like a site going dark
            start = self.rng.randrange(self.n)
            order = sorted(topology.bfs_hops(self.graph, start).items(), key=lambda x: x[1])
            cut = [u for u, _ in order[:k]]
        self._topo_version += 1
        for u in cut:
            self.side[u] = 1
        for u, v in self.edges:
            if self.side[u] != self.side[v] and self._connected(u, v):
                self._break(u, v)

    def _heal(self) -> None:
        self._pending_scenario -= 1
        self.heal_time = self.now
        self._topo_version += 1
        self.side = [0] * self.n
        for u, v in self.edges:
            if self._usable(u, v) and not self._connected(u, v):
                self._connect(u, v)


def run_simulation(cfg: SimConfig) -> SimResult:
    """Run one simulation to the end and return its figures."""
    return Simulation(cfg).run()
