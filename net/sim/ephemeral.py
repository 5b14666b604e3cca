"""`treechat sim --ephemeral`: the one ephemeral gossip core on a virtual overlay.

Every node is one `net.ephemeral.Gossip`; the engine only carries frames (a heap of
events in virtual time, one latency per link drawn uniformly in 0..2x the mean) and
counts. Each run: a random origin emits one datum with `hops`; the run ends when no
frame is in flight. Figures (docs/ephemeral.md):

* reach: fraction of the other nodes that received the datum; `radius` = fraction of
  the nodes within `hops` (BFS from the origin) that did;
* frames per datum: datum frames (and proxy acks) sent, all nodes together;
* deniability: every node is an observer of the links it has; it guesses that the
  neighbour its first copy came from is the origin. `right` = how often that guess is
  right for the origin's neighbours; `full-hops right` = how often it is right, over
  every observer whose first copy still carried the full hop count (without pass such a
  copy is proof: always right).
"""

from __future__ import annotations

import argparse
import heapq
import itertools
import random
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

from net.ephemeral import Action, Datum, Deliver, Gossip, GossipConfig, SendAck, SendDatum
from net.sim.topology import TopologyError, bfs_hops, random_regular

_UNLIMITED = {"peer_rate": 1e9, "peer_burst": 1e9, "relay_rate": 1e9, "relay_burst": 1e9}


@dataclass(frozen=True, slots=True)
class EphemeralSimConfig:
    """One scenario: overlay, hop limit, proxy pass, re-relay, number of runs."""

    nodes: int = 100
    degree: int = 6
    hops: int = 3
    pass_: bool = False
    rerelay: bool = True
    runs: int = 100
    latency_ms: float = 50.0
    seed: int = 1


@dataclass(frozen=True, slots=True)
class EphemeralSimResult:
    """The averages over all runs of one scenario."""

    config: EphemeralSimConfig
    reach: float
    radius: float
    frames: float
    right: float | None  # neighbours of the origin whose first copy came from it
    full_hops_right: float | None  # first copies with the full count that came from the origin


class Ratio:
    """How often a guess was right."""

    def __init__(self) -> None:
        self.right = self.total = 0

    def add(self, right: bool) -> None:
        self.right += right
        self.total += 1

    def value(self) -> float | None:
        return self.right / self.total if self.total else None


class _Flight:
    """Frames in flight: a heap by arrival time, and a count of frames sent."""

    def __init__(self, latency: dict[tuple[int, int], float]) -> None:
        self.latency = latency
        self.heap: list[tuple[float, int, int, int, SendDatum | SendAck]] = []
        self.order = itertools.count()
        self.sent = 0

    def carry(self, node: int, actions: Sequence[Action], at: float) -> None:
        for a in actions:
            if isinstance(a, SendDatum | SendAck):
                self.sent += 1
                peer = cast(int, a.peer)
                when = at + self.latency[(node, peer)]
                heapq.heappush(self.heap, (when, next(self.order), node, peer, a))


def run_ephemeral(cfg: EphemeralSimConfig) -> EphemeralSimResult:
    """Run `cfg.runs` data through the overlay; a pure function of `cfg`."""
    rng = random.Random(cfg.seed)
    graph = random_regular(cfg.nodes, cfg.degree, rng)
    latency = {}
    for u, peers in enumerate(graph):
        for v in peers:
            if u < v:
                latency[(u, v)] = latency[(v, u)] = rng.uniform(0, 2 * cfg.latency_ms) / 1000
    gcfg = GossipConfig(pass_=cfg.pass_, rerelay=cfg.rerelay, **_UNLIMITED)  # type: ignore[arg-type]
    cores = [Gossip(random.Random(rng.random()), gcfg) for _ in graph]
    for u, peers in enumerate(graph):
        for v in peers:
            cores[u].connect(v, 0.0)
    reach = radius = frames = 0.0
    near = Ratio()
    full = Ratio()
    now = 0.0
    for _ in range(cfg.runs):
        now += 1000.0  # earlier data have expired
        origin = rng.randrange(cfg.nodes)
        within = {v for v, d in bfs_hops(graph, origin).items() if 0 < d <= cfg.hops}
        got: set[int] = set()
        first: dict[int, tuple[int, bool]] = {}  # node -> (sender, full count) of its first copy
        flight = _Flight(latency)
        flight.carry(origin, cores[origin].emit("whisper", b"", cfg.hops, 60.0, now), now)
        while flight.heap:
            at, _, src, dst, action = heapq.heappop(flight.heap)
            core = cores[dst]
            if isinstance(action, SendAck):
                flight.carry(dst, core.receive_ack(src, action.id, action.ok, at), at)
                continue
            datum: Datum = action.datum
            first.setdefault(dst, (src, datum.hops_left == cfg.hops - 1))
            out = core.receive(src, datum, at, proxy=action.proxy)
            if dst != origin and any(isinstance(a, Deliver) for a in out):
                got.add(dst)
            flight.carry(dst, out, at)
        reach += len(got) / (cfg.nodes - 1)
        radius += len(got & within) / len(within)
        frames += flight.sent
        for node, (sender, full_count) in first.items():
            if node == origin:
                continue
            if node in graph[origin]:
                near.add(sender == origin)
            if full_count:
                full.add(sender == origin)
    n = cfg.runs
    return EphemeralSimResult(
        cfg,
        reach / n,
        radius / n,
        frames / n,
        near.value(),
        full.value(),
    )


HEADER = (
    f"{'nodes':>6} {'hops':>4} {'pass':>5} {'rerelay':>7} {'reach':>6} {'radius':>6}"
    f" {'frames/datum':>12} {'right':>6} {'full-hops right':>15}"
)


def row(r: EphemeralSimResult) -> str:
    """One line of the table under `HEADER`."""
    c = r.config
    near, full = (("-" if x is None else f"{x:.3f}") for x in (r.right, r.full_hops_right))
    return (
        f"{c.nodes:>6} {c.hops:>4} {'on' if c.pass_ else 'off':>5}"
        f" {'on' if c.rerelay else 'off':>7} {r.reach:6.3f} {r.radius:6.3f}"
        f" {r.frames:12.1f} {near:>6} {full:>15}"
    )


def ephemeral_main(argv: Sequence[str]) -> int:
    """`treechat sim --ephemeral [...]`: print reach, frames and deniability per hop count."""
    d = EphemeralSimConfig()
    p = argparse.ArgumentParser(
        prog="treechat sim --ephemeral",
        description="Simulate hop-limited ephemeral gossip (the real core): reach, frames"
        " per datum and how deniable the origin is, with proxy pass off and on.",
    )
    p.add_argument("--ephemeral", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--nodes", type=int, default=d.nodes)
    p.add_argument("--degree", type=int, default=d.degree, help="k of the random overlay")
    p.add_argument("--hops", type=int, nargs="+", default=[1, 2, 3, 4], help="hop limits")
    p.add_argument("--pass", dest="pass_", choices=["off", "on", "both"], default="both")
    p.add_argument("--no-rerelay", action="store_true", help="the first copy decides")
    p.add_argument("--runs", type=int, default=d.runs, help="data per scenario")
    p.add_argument("--latency", type=float, default=d.latency_ms, help="mean link latency, ms")
    p.add_argument("--seed", type=int, default=d.seed)
    args = p.parse_args(argv)
    passes = {"off": [False], "on": [True], "both": [False, True]}[args.pass_]
    if args.runs < 1 or any(not 1 <= h <= 8 for h in args.hops):
        print("treechat sim: --runs must be 1 or more and --hops 1 to 8", file=sys.stderr)
        return 2
    print(HEADER)
    for hops in args.hops:
        for pass_ in passes:
            cfg = EphemeralSimConfig(
                args.nodes,
                args.degree,
                hops,
                pass_,
                not args.no_rerelay,
                args.runs,
                args.latency,
                args.seed,
            )
            try:
                print(row(run_ephemeral(cfg)), flush=True)
            except TopologyError as exc:
                print(f"treechat sim: {exc}", file=sys.stderr)
                return 2
    return 0
