"""An in-process Maelstrom broadcast workload with virtual time, driving `MaelstromNode`s.

It plays Maelstrom's part for the `broadcast` workload (jepsen-io/maelstrom): it sends
`init` and `topology`, issues `broadcast`/`read` operations at a rate (50/50 mix,
random gaps, client messages with no latency), carries server-to-server messages with
a latency, drops them across partitions at receive time (the `partition` nemesis
alternates a random partition and a heal every `nemesis_interval`), heals at the end,
waits `recovery` seconds and does one final read per node. Every message crosses a
JSON encode/decode, as on the real pipes.

Figures, computed like Maelstrom's checkers:
- msgs-per-op: server-to-server messages / all client operations (final reads included).
- lost: acknowledged values missing from any final read (any -> the run is invalid).
- stable latency: from a value's acknowledgement to just after the invocation of the
  last read that missed it (0 if none did), as in Jepsen's set-full checker.
- visibility latency (exact, not a Maelstrom figure): until every node holds the value.
"""

from __future__ import annotations

import heapq
import itertools
import json
import math
import random
from dataclasses import dataclass, field
from statistics import mean
from typing import Any

from net.maelstrom import MaelstromNode, NodeSettings


@dataclass(frozen=True, slots=True)
class WorkloadConfig:
    """One run of the workload (seconds of virtual time)."""

    nodes: int = 25
    latency: float = 0.1
    latency_dist: str = "constant"  # constant | uniform (0..2x) | exponential
    rate: float = 100.0  # client operations per second
    duration: float = 20.0
    recovery: float = 10.0  # Maelstrom waits this long after healing before final reads
    partitions: bool = False
    nemesis_interval: float = 10.0
    seed: int = 1
    init_timeout: float = 10.0  # Maelstrom's init RPC timeout
    settings: NodeSettings = field(default_factory=NodeSettings)


def grid_topology(ids: list[str]) -> dict[str, list[str]]:
    """Maelstrom's default suggested topology: nodes in rows of ceil(sqrt(n)), each
    linked to its neighbours left, right, above and below."""
    side = math.ceil(math.sqrt(len(ids)))
    topo: dict[str, list[str]] = {}
    for i, x in enumerate(ids):
        near = [i - side, i + side]
        if i % side:
            near.append(i - 1)
        if (i + 1) % side:
            near.append(i + 1)
        topo[x] = [ids[j] for j in near if 0 <= j < len(ids)]
    return topo


def quantiles(values: list[float]) -> dict[str, float]:
    """Maelstrom's quantiles 0, 0.5, 0.95, 0.99, 1 (index floor(n*p), clamped)."""
    if not values:
        return {k: math.nan for k in ("0", "0.5", "0.95", "0.99", "1")}
    s = sorted(values)
    n = len(s)
    return {str(p): s[min(n - 1, math.floor(n * p))] for p in (0, 0.5, 0.95, 0.99, 1)}


@dataclass(frozen=True, slots=True)
class WorkloadResult:
    """The figures of one run (latencies in ms)."""

    operations: int
    broadcasts: int
    reads: int
    server_messages: int
    msgs_per_op: float
    lost: list[Any]
    stable_latency: dict[str, float]
    visibility_latency: dict[str, float]
    partitions: int
    send_ratio: float  # max / mean server messages sent per node (1.0 = perfectly even)

    def table(self) -> str:
        def q(d: dict[str, float]) -> str:
            return " / ".join(f"{d[k]:.0f}" for k in ("0", "0.5", "0.95", "0.99", "1"))

        return "\n".join(
            [
                f"operations {self.operations} (broadcasts {self.broadcasts}, reads {self.reads})"
                f"   partitions {self.partitions}",
                f"server messages {self.server_messages}   msgs-per-op {self.msgs_per_op:.2f}"
                f"   max/mean sent per node {self.send_ratio:.2f}",
                f"lost values {len(self.lost)}",
                f"stable latency ms  (0/50/95/99/100 %)  {q(self.stable_latency)}",
                f"visible on all ms  (0/50/95/99/100 %)  {q(self.visibility_latency)}",
            ]
        )


_DELIVER = 0
_TICK = 1
_CALL = 2


class Workload:
    """The simulated Maelstrom: network, clients, nemesis and checker."""

    def __init__(self, cfg: WorkloadConfig) -> None:
        self.cfg = cfg
        self.rng = random.Random(cfg.seed)
        self.ids = [f"n{i}" for i in range(cfg.nodes)]
        self.nodes = {x: MaelstromNode(cfg.settings) for x in self.ids}
        self.now = 0.0
        self._queue: list[tuple[Any, ...]] = []
        self._counter = itertools.count()
        self._tick_at: dict[str, float] = {}
        self.component = dict.fromkeys(self.ids, 0)
        self.server_messages = 0
        self.sent_by = dict.fromkeys(self.ids, 0)  # server-to-server messages per sender
        self.partitions = 0
        self.acked: dict[Any, float] = {}  # value -> ack time
        self.reads: list[tuple[float, set[Any]]] = []
        self.final_reads: list[set[Any]] = []
        self.first_seen: dict[Any, dict[str, float]] = {}
        self._seen_count = dict.fromkeys(self.ids, 0)
        self.broadcasts = 0
        self.inbox: dict[Any, dict[str, Any]] = {}  # client replies by in_reply_to
        self.started_at = 0.0  # when the clients started (every node answered init)

    # ------------------------------------------------------------- plumbing

    def _schedule(self, at: float, kind: int, *args: Any) -> None:
        heapq.heappush(self._queue, (at, next(self._counter), kind, *args))

    def _latency(self) -> float:
        mean = self.cfg.latency
        if self.cfg.latency_dist == "uniform":
            return self.rng.uniform(0, 2 * mean)
        if self.cfg.latency_dist == "exponential":
            return self.rng.expovariate(1 / mean)
        return mean

    def _emit(self, envelopes: list[dict[str, Any]]) -> None:
        """Route what a node wrote: server messages go on the network, replies to the inbox."""
        for env in envelopes:
            dest = env["dest"]
            if dest in self.nodes:
                self.server_messages += 1
                self.sent_by[env["src"]] += 1
                text = json.dumps(env)
                at = self.now + self._latency()
                self._schedule(at, _DELIVER, dest, env["src"], text)
            else:
                body = json.loads(json.dumps(env))["body"]
                self.inbox[body.get("in_reply_to")] = body

    def _after(self, name: str) -> None:
        """Record newly visible values and (re)arm the node's timer."""
        node = self.nodes[name]
        values = node.values
        for v in values[self._seen_count[name] :]:
            self.first_seen.setdefault(v, {}).setdefault(name, self.now)
        self._seen_count[name] = len(values)
        deadline = node.next_deadline()
        if deadline is not None:
            at = max(deadline, self.now)
            if at < self._tick_at.get(name, math.inf):
                self._tick_at[name] = at
                self._schedule(at, _TICK, name)

    def _send_client(self, name: str, body: dict[str, Any]) -> None:
        env = {"src": "c1", "dest": name, "body": body}
        self._emit(self.nodes[name].handle(self.now, json.loads(json.dumps(env))))
        self._after(name)

    def _client(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        """A client request answered at once (broadcast, read, topology)."""
        self._send_client(name, body)
        reply = self.inbox.pop(body["msg_id"], None)
        if reply is None:
            raise AssertionError(f"{name} did not answer {body['type']}")
        return reply

    # ------------------------------------------------------------- the run

    def run(self) -> WorkloadResult:
        cfg = self.cfg
        msg_ids = itertools.count(1)
        # init goes to every node at once; the clients start when all have answered
        waiting = {}
        for name in self.ids:
            mid = next(msg_ids)
            waiting[mid] = name
            self._send_client(
                name, {"type": "init", "node_id": name, "node_ids": self.ids, "msg_id": mid}
            )
        while any(m not in self.inbox for m in waiting):
            if not self._queue or self._queue[0][0] > cfg.init_timeout:
                raise AssertionError("init timed out")
            self._step(msg_ids)
        for mid in waiting:
            assert self.inbox.pop(mid)["type"] == "init_ok"
        self.started_at = self.now
        topo = grid_topology(self.ids)
        for name in self.ids:
            self._client(name, {"type": "topology", "topology": topo, "msg_id": next(msg_ids)})
        t = self.now
        value = itertools.count()
        while True:
            t += self.rng.uniform(0, 2 / cfg.rate)
            if t >= self.started_at + cfg.duration:
                break
            if self.rng.random() < 0.5:
                self._schedule(t, _CALL, ("broadcast", next(value)))
            else:
                self._schedule(t, _CALL, ("read", None))
        if cfg.partitions:
            at = self.started_at + cfg.nemesis_interval
            start = True
            while at < self.started_at + cfg.duration:
                self._schedule(at, _CALL, ("partition" if start else "heal", None))
                start = not start
                at += cfg.nemesis_interval
        self._schedule(self.started_at + cfg.duration, _CALL, ("heal", None))
        end = self.started_at + cfg.duration + cfg.recovery
        self._loop(end, msg_ids)
        self.now = end
        for name in self.ids:
            reply = self._client(name, {"type": "read", "msg_id": next(msg_ids)})
            self.final_reads.append(set(reply["messages"]))
        return self._check()

    def _loop(self, until: float, msg_ids: itertools.count[int]) -> None:
        while self._queue and self._queue[0][0] <= until:
            self._step(msg_ids)

    def _step(self, msg_ids: itertools.count[int]) -> None:
        item = heapq.heappop(self._queue)
        self.now = item[0]
        kind = item[2]
        if kind == _DELIVER:
            dest, src, text = item[3], item[4], item[5]
            if self.component[dest] != self.component[src]:
                return  # dropped by the partition
            self._emit(self.nodes[dest].handle(self.now, json.loads(text)))
            self._after(dest)
        elif kind == _TICK:
            name = item[3]
            if self._tick_at.get(name) != item[0]:
                return  # superseded by an earlier timer
            del self._tick_at[name]
            self._emit(self.nodes[name].tick(self.now))
            self._after(name)
        else:
            op, arg = item[3]
            if op == "broadcast":
                name = self.rng.choice(self.ids)
                body = {"type": "broadcast", "message": arg, "msg_id": next(msg_ids)}
                reply = self._client(name, body)
                self.broadcasts += 1
                if reply["type"] == "broadcast_ok":
                    self.acked[arg] = self.now
            elif op == "read":
                name = self.rng.choice(self.ids)
                reply = self._client(name, {"type": "read", "msg_id": next(msg_ids)})
                if reply["type"] == "read_ok":
                    self.reads.append((self.now, set(reply["messages"])))
            elif op == "partition":
                self._partition()
            else:
                self.component = dict.fromkeys(self.ids, 0)

    def _partition(self) -> None:
        self.partitions += 1
        ids = list(self.ids)
        self.rng.shuffle(ids)
        kind = self.rng.choice(["one", "minority-third", "majority"])
        if kind == "one":
            cut = ids[:1]
        elif kind == "minority-third":
            cut = ids[: max(1, len(ids) // 3)]
        else:
            cut = ids[: len(ids) // 2]
        self.component = {x: (1 if x in cut else 0) for x in self.ids}

    def _check(self) -> WorkloadResult:
        lost = sorted(v for v in self.acked if any(v not in r for r in self.final_reads))
        # Jepsen set-full: stable 1 ns after the last read, invoked after the value was
        # known, that missed it.
        order = sorted(self.acked.items(), key=lambda kv: kv[1])
        last_miss: dict[Any, float] = {}
        k = 0
        known: list[Any] = []
        for at, seen in self.reads:
            while k < len(order) and order[k][1] <= at:
                known.append(order[k][0])
                k += 1
            for v in known:
                if v not in seen:
                    last_miss[v] = at
        stable = [
            max(0.0, (last_miss[v] + 1e-9 - t) * 1000) if v in last_miss else 0.0
            for v, t in self.acked.items()
            if v not in lost
        ]
        visible = []
        for v, t in self.acked.items():
            seen_at = self.first_seen.get(v, {})
            if len(seen_at) == len(self.ids):
                visible.append((max(seen_at.values()) - t) * 1000)
        operations = self.broadcasts + len(self.reads) + len(self.final_reads)
        return WorkloadResult(
            operations=operations,
            broadcasts=self.broadcasts,
            reads=len(self.reads),
            server_messages=self.server_messages,
            msgs_per_op=self.server_messages / max(1, operations),
            lost=lost,
            stable_latency=quantiles(stable),
            visibility_latency=quantiles(visible),
            partitions=self.partitions,
            send_ratio=max(self.sent_by.values()) / max(1e-9, mean(self.sent_by.values())),
        )


def run_workload(cfg: WorkloadConfig) -> WorkloadResult:
    """Run the broadcast workload once and check it."""
    return Workload(cfg).run()
