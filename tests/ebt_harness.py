"""A deterministic in-memory network of EBT Replicators for the tests (no sockets).

Each node is a `Replicator` plus a store (feed -> list of payloads). Links are
per-direction FIFO queues with a fixed latency on a virtual clock; `Push` actions
run as a loop of small batches interleaved with the other events, as a real push
loop would. Payloads are `(feed, seq, tag)`: tag "ok" is valid, "forged" is refused
as an invalid message, "fork" as a fork.

The store asserts that it is never asked to store a duplicate or a gap, so every
test run through the harness checks that rule too.
"""

from __future__ import annotations

import heapq
import itertools
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from net.ebt import (
    Action,
    EbtConfig,
    PeerRecord,
    PersistRecord,
    Push,
    Replicator,
    SendMessages,
    SendNotes,
    StoreMessages,
)

Payload = tuple[bytes, int, str]


def feed_id(name: str) -> bytes:
    """A readable feed id for tests."""
    return name.encode()


@dataclass
class Node:
    """One replicator and its store."""

    name: str
    rep: Replicator
    store: dict[bytes, list[Payload]]
    records: dict[str, PeerRecord] = field(default_factory=dict)
    store_free_at: float = 0.0  # with a store delay: when the store queue is done

    def head(self, feed: bytes) -> int:
        return len(self.store.get(feed, ()))


@dataclass
class Stats:
    """What crossed the links."""

    note_frames: int = 0
    note_entries: int = 0
    payloads: int = 0  # message payloads sent, all links
    link_payloads: Counter[tuple[str, str]] = field(default_factory=Counter)
    crossings: Counter[tuple[str, str, bytes, int]] = field(default_factory=Counter)
    stores: int = 0

    def reset(self) -> None:
        self.note_frames = self.note_entries = self.payloads = self.stores = 0
        self.link_payloads.clear()
        self.crossings.clear()


class Network:
    """Replicators joined by in-memory FIFO links on a virtual clock."""

    def __init__(
        self,
        config: EbtConfig | None = None,
        *,
        latency: float = 0.01,
        push_batch: int = 20,
        batch_time: float = 0.001,
        store_delay: float = 0.0,
    ) -> None:
        self.config = config if config is not None else EbtConfig()
        self.latency = latency
        self.push_batch = push_batch
        self.batch_time = batch_time  # a push loop sends one batch per batch_time
        self.store_delay = store_delay  # > 0: StoreMessages wait in a FIFO, as in the node
        self.now = 0.0
        self.nodes: dict[str, Node] = {}
        self.stats = Stats()
        self._events: list[tuple[float, int, Callable[[], None]]] = []
        self._counter = itertools.count()
        self._links: dict[frozenset[str], tuple[int, float]] = {}  # -> (epoch, latency)
        self._epoch = itertools.count(1)

    # -- building ------------------------------------------------------------------

    def add(
        self,
        name: str,
        wanted: Iterable[bytes] | None = None,
        *,
        config: EbtConfig | None = None,
        shareable: Callable[[Any, bytes], bool] | None = None,
        store: dict[bytes, list[Payload]] | None = None,
    ) -> Node:
        """A node that replicates `wanted` (default: its own feed named after it)."""
        feeds = list(wanted) if wanted is not None else [feed_id(name)]
        own = store if store is not None else {}
        for feed in feeds:
            own.setdefault(feed, [])
        clock = {feed: len(msgs) for feed, msgs in own.items()}
        rep = Replicator(clock, feeds, config or self.config, shareable)
        node = self.nodes[name] = Node(name, rep, own)
        return node

    def connected(self, a: str, b: str) -> bool:
        return frozenset((a, b)) in self._links

    @property
    def links(self) -> list[tuple[str, str]]:
        return [tuple(sorted(k)) for k in self._links]  # type: ignore[misc]

    def connect(
        self, a: str, b: str, *, latency: float | None = None, remember: bool = True
    ) -> None:
        """`a` dials `b` (b accepts and speaks first)."""
        key = frozenset((a, b))
        assert key not in self._links and a != b
        self._links[key] = (next(self._epoch), self.latency if latency is None else latency)
        na, nb = self.nodes[a], self.nodes[b]
        rb = nb.records.get(a) if remember else None
        ra = na.records.get(b) if remember else None
        self._apply(nb, nb.rep.connect(a, self.now, initiator=False, record=rb))
        self._apply(na, na.rep.connect(b, self.now, initiator=True, record=ra))

    def disconnect(self, a: str, b: str) -> None:
        """Both ends see the link go; frames in flight are lost."""
        del self._links[frozenset((a, b))]
        for x, y in ((a, b), (b, a)):
            node = self.nodes[x]
            self._apply(node, node.rep.disconnect(y, self.now))

    # -- workload ------------------------------------------------------------------

    def append(self, name: str, feed: bytes | None = None, count: int = 1, tag: str = "ok") -> None:
        """`name` authors `count` messages in `feed` (default its own feed)."""
        node = self.nodes[name]
        feed = feed if feed is not None else feed_id(name)
        log = node.store.setdefault(feed, [])
        for _ in range(count):
            payload: Payload = (feed, len(log) + 1, tag)
            log.append(payload)
            self._apply(node, node.rep.stored(feed, payload[1], payload, self.now, source=None))

    def send_raw(self, src: str, dst: str, msgs: list[Payload]) -> None:
        """Deliver a msgs frame from src to dst now, bypassing src's replicator."""
        node = self.nodes[dst]
        self._count_msgs(src, dst, msgs)
        self._apply(node, node.rep.receive_messages(src, [(p[0], p[1], p) for p in msgs], self.now))

    # -- running -------------------------------------------------------------------

    def step(self) -> bool:
        """Run the next event; False when there is none."""
        if not self._events:
            return False
        when, _, action = heapq.heappop(self._events)
        if when > self.now:
            self.now = when
        action()
        return True

    def run(self, max_events: int = 1_000_000) -> int:
        """Run until nothing is in flight (no ticks)."""
        done = 0
        while done < max_events and self.step():
            done += 1
        assert not self._events, "the network did not go quiet"
        return done

    def deliver_some(self, count: int) -> int:
        done = 0
        while done < count and self.step():
            done += 1
        return done

    def run_until(self, condition: Callable[[], bool], max_events: int = 1_000_000) -> None:
        for _ in range(max_events):
            if condition() or not self.step():
                return

    def tick(self, dt: float) -> None:
        """Advance the clock by dt (events on the way are run) and tick every node."""
        end = self.now + dt
        while self._events and self._events[0][0] <= end:
            self.step()
        self.now = end
        for node in list(self.nodes.values()):
            self._apply(node, node.rep.tick(self.now))

    def settle(self, rounds: int = 4) -> None:
        """Run to quiescence, then let stall timeouts fire a few times."""
        self.run()
        delay = self.config.note_delay
        for _ in range(rounds):
            if delay > 0:  # let held-back notes out, and what they cause
                for _ in range(10):
                    self.tick(delay + 0.001)
                    self.run()
            self.tick(self.config.stall_timeout + 0.01)
            self.run()

    # -- checks --------------------------------------------------------------------

    def in_sync(self, a: str, b: str) -> bool:
        na, nb = self.nodes[a], self.nodes[b]
        common = na.rep.replicating & nb.rep.replicating
        return all(na.head(f) == nb.head(f) for f in common)

    # -- actions -------------------------------------------------------------------

    def _at(self, when: float, action: Callable[[], None]) -> None:
        heapq.heappush(self._events, (when, next(self._counter), action))

    def _send(self, src: Node, dst: str, deliver: Callable[[Node], list[Action]]) -> None:
        key = frozenset((src.name, dst))
        link = self._links.get(key)
        if link is None:
            return
        epoch, latency = link

        def arrive() -> None:
            if self._links.get(key, (0, 0.0))[0] != epoch:
                return  # the link went down while this was in flight
            node = self.nodes[dst]
            self._apply(node, deliver(node))

        self._at(self.now + latency, arrive)

    def _count_msgs(self, src: str, dst: str, msgs: Iterable[Payload]) -> None:
        for feed, seq, _ in msgs:
            self.stats.payloads += 1
            self.stats.link_payloads[(src, dst)] += 1
            self.stats.crossings[(src, dst, feed, seq)] += 1

    def _send_msgs(self, node: Node, peer: str, msgs: list[Payload]) -> None:
        if not self.connected(node.name, peer):
            return
        self._count_msgs(node.name, peer, msgs)
        triples = [(p[0], p[1], p) for p in msgs]
        name = node.name
        self._send(node, peer, lambda n: n.rep.receive_messages(name, triples, self.now))

    def apply(self, node: Node, actions: list[Action]) -> None:
        """Carry out actions a test got from calling `node.rep` directly."""
        self._apply(node, actions)

    def _apply(self, node: Node, actions: list[Action]) -> None:
        pending = list(actions)
        i = 0
        while i < len(pending):
            action = pending[i]
            i += 1
            peer = str(action.peer)
            if isinstance(action, SendNotes):
                if self.connected(node.name, peer):
                    self.stats.note_frames += 1
                    self.stats.note_entries += len(action.notes)
                    self._send_notes(node, peer, dict(action.notes))
            elif isinstance(action, SendMessages):
                self._send_msgs(node, peer, list(action.payloads))
            elif isinstance(action, Push):
                self._schedule_push(node, peer, action.feed)
            elif isinstance(action, StoreMessages):
                if self.store_delay > 0:
                    self._store_later(node, peer, action.feed, action.payloads)
                else:
                    pending.extend(self._store(node, peer, action.feed, action.payloads))
            elif isinstance(action, PersistRecord):
                node.records[peer] = action.record

    def _send_notes(self, node: Node, peer: str, notes: dict[bytes, int]) -> None:
        name = node.name
        self._send(node, peer, lambda n: n.rep.receive_notes(name, notes, self.now))

    def _schedule_push(self, node: Node, peer: str, feed: bytes) -> None:
        key = frozenset((node.name, peer))
        link = self._links.get(key)
        if link is None:
            return
        epoch = link[0]

        def push_batch() -> None:
            if self._links.get(key, (0, 0.0))[0] != epoch:
                return
            cursor = node.rep.push_cursor(peer, feed)
            if cursor is None:
                return
            log = node.store[feed]
            chunk = log[cursor - 1 : cursor - 1 + self.push_batch]
            assert chunk, "push_cursor pointed past the store"
            self._send_msgs(node, peer, chunk)
            self._apply(node, node.rep.pushed(peer, feed, chunk[-1][1], self.now))
            self._at(self.now + self.batch_time, push_batch)

        self._at(self.now, push_batch)

    def _store_later(self, node: Node, peer: str, feed: bytes, payloads: tuple[Any, ...]) -> None:
        when = max(self.now + self.store_delay, node.store_free_at)
        node.store_free_at = when
        name = node.name

        def write() -> None:
            current = self.nodes[name]
            if current is node:  # not wiped meanwhile
                self._apply(node, self._store(node, peer, feed, payloads))

        self._at(when, write)

    def _store(self, node: Node, peer: Any, feed: bytes, payloads: tuple[Any, ...]) -> list[Action]:
        out: list[Action] = []
        log = node.store.setdefault(feed, [])
        for payload in payloads:
            _, seq, tag = payload
            assert seq > len(log), f"{node.name} was asked to store a duplicate {payload}"
            assert seq == len(log) + 1, f"{node.name} was asked to store a gap {payload}"
            if tag != "ok":
                out.extend(node.rep.rejected(feed, peer, self.now, fork=tag == "fork"))
                break
            log.append(payload)
            self.stats.stores += 1
            out.extend(node.rep.stored(feed, seq, payload, self.now, source=peer))
        return out
