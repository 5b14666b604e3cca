"""Throughput of the EBT core alone: two Replicators syncing in memory (no I/O, no crypto).

Prints messages processed per second for a full initial sync, in the style of the SSB
measurement of its own EBT logic (two in-memory instances, store reads in batches).
Run: .venv/bin/python -m benchmarks.bench_ebt [--feeds N] [--messages M]
"""

from __future__ import annotations

import argparse
import time
from collections import deque
from typing import Any

from net.ebt import (
    Action,
    PersistRecord,
    Push,
    Replicator,
    SendMessages,
    SendNotes,
    StoreMessages,
)

BATCH = 500


class Side:
    """One replicator, its store and its outgoing queue."""

    def __init__(self, name: str, store: dict[bytes, list[Any]], feeds: list[bytes]) -> None:
        self.name = name
        self.store = store
        self.rep = Replicator({f: len(store[f]) for f in feeds}, feeds)
        self.outbox: deque[tuple[str, Any]] = deque()
        self.pushes: deque[tuple[str, bytes]] = deque()


def run(feeds: int, messages: int) -> tuple[float, int]:
    ids = [f"feed{i:06d}".encode() for i in range(feeds)]
    per = messages // feeds
    full = {f: [(f, s + 1, b"x" * 16) for s in range(per)] for f in ids}
    a = Side("a", full, ids)
    b = Side("b", {f: [] for f in ids}, ids)
    sides = {"a": a, "b": b}
    now = 0.0

    def apply(side: Side, actions: list[Action]) -> None:
        todo = deque(actions)
        while todo:
            act = todo.popleft()
            if isinstance(act, SendNotes):
                side.outbox.append(("notes", act.notes))
            elif isinstance(act, SendMessages):
                side.outbox.append(("msgs", list(act.payloads)))
            elif isinstance(act, Push):
                side.pushes.append((str(act.peer), act.feed))
            elif isinstance(act, StoreMessages):
                log = side.store[act.feed]
                for p in act.payloads:
                    log.append(p)
                    todo.extend(side.rep.stored(act.feed, p[1], p, now, source=act.peer))
            elif isinstance(act, PersistRecord):
                pass

    start = time.perf_counter()
    apply(b, b.rep.connect("a", now, initiator=False, record=None))
    apply(a, a.rep.connect("b", now, initiator=True, record=None))
    while True:
        busy = False
        for side in (a, b):
            other = b if side is a else a
            while side.outbox:
                busy = True
                kind, body = side.outbox.popleft()
                if kind == "notes":
                    apply(other, other.rep.receive_notes(side.name, body, now))
                else:
                    msgs = [(p[0], p[1], p) for p in body]
                    apply(other, other.rep.receive_messages(side.name, msgs, now))
            for _ in range(len(side.pushes)):
                busy = True
                peer, feed = side.pushes.popleft()
                cursor = side.rep.push_cursor(peer, feed)
                if cursor is None:
                    continue
                chunk = side.store[feed][cursor - 1 : cursor - 1 + BATCH]
                side.outbox.append(("msgs", chunk))
                apply(side, side.rep.pushed(peer, feed, chunk[-1][1], now))
                side.pushes.append((peer, feed))
        if not busy:
            break
    elapsed = time.perf_counter() - start
    assert all(len(b.store[f]) == per for f in ids), "sync incomplete"
    del sides
    return elapsed, per * feeds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--feeds", type=int, default=1000)
    parser.add_argument("--messages", type=int, default=100_000)
    args = parser.parse_args()
    for feeds in sorted({1, 100, args.feeds}):
        elapsed, count = run(feeds, args.messages)
        print(
            f"ebt core, 2 replicators, {feeds:>5} feeds, {count} messages: "
            f"{elapsed:.3f} s = {count / elapsed:,.0f} msgs/s"
        )


if __name__ == "__main__":
    main()
