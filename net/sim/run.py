"""`treechat sim`: the command line of the simulator (argparse lives here, chat only calls it)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from net.sim.config import (
    FeedScope,
    LatencyDist,
    PartitionKind,
    SimConfig,
    SimConfigError,
    Strategy,
)
from net.sim.topology import TopologyError, TopologyKind


def build_parser(prog: str = "treechat sim") -> argparse.ArgumentParser:
    """The argument parser of `treechat sim`."""
    d = SimConfig()
    p = argparse.ArgumentParser(
        prog=prog,
        description="Simulate EBT replication (the real core) over a virtual network and"
        " print delivery, RMR, last delivery hop, latency and recovery figures.",
        epilog="treechat sim --ephemeral -h: the ephemeral gossip simulator (reach, frames"
        " and deniability per hop count; docs/ephemeral.md).",
    )
    p.add_argument("--nodes", type=int, default=d.nodes, help="number of nodes (%(default)s)")
    p.add_argument(
        "--topology",
        choices=[k.value for k in TopologyKind],
        default=d.topology.value,
        help="overlay: random k-regular, line, b-ary tree or full mesh (%(default)s)",
    )
    p.add_argument("--degree", type=int, default=d.degree, help="k of the regular overlay")
    p.add_argument("--branching", type=int, default=d.branching, help="b of the tree overlay")
    p.add_argument("--latency", type=float, default=d.latency_ms, help="mean link latency, ms")
    p.add_argument(
        "--latency-dist",
        choices=[x.value for x in LatencyDist],
        default=d.latency_dist.value,
        help="how each link's base latency is drawn (%(default)s)",
    )
    p.add_argument("--jitter", type=float, default=d.jitter, help="per-frame extra delay, x base")
    p.add_argument(
        "--strategy",
        choices=[s.value for s in Strategy],
        default=d.strategy.value,
        help="ebt, ebt-noswap (no faster-tree swap) or flood (no prune)",
    )
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument(
        "--sources", type=int, default=d.sources, help="nodes that post (%(default)s; 0: all)"
    )
    p.add_argument(
        "--feeds",
        choices=[x.value for x in FeedScope],
        default=d.feeds.value,
        help="replicate only the posting nodes' feeds, or every node's (%(default)s)",
    )
    p.add_argument("--warmup", type=int, default=d.warmup, help="messages per source first")
    p.add_argument("--messages", type=int, default=d.messages, help="measured messages")
    p.add_argument("--interval", type=float, default=d.interval_ms, help="ms between messages")
    p.add_argument("--settle", type=float, default=d.settle, help="s between warm-up and measure")
    p.add_argument("--tick", type=float, default=d.tick_ms, help="core tick period, ms")
    p.add_argument("--stall-timeout", type=float, default=d.stall_timeout, help="seconds")
    p.add_argument("--note-delay", type=float, default=d.note_delay, help="seconds")
    p.add_argument("--swap-after", type=int, default=d.swap_after)
    p.add_argument("--detect", type=float, default=d.detect_ms, help="ms to notice a dead link")
    p.add_argument("--crash", type=float, default=d.crash_fraction, help="fraction to crash")
    p.add_argument("--crash-at", type=float, default=d.crash_at, help="s into the measure phase")
    p.add_argument("--restart-after", type=float, default=None, help="s; default: never")
    p.add_argument("--partition", type=float, default=d.partition_fraction, help="fraction cut")
    p.add_argument(
        "--partition-kind",
        choices=[x.value for x in PartitionKind],
        default=d.partition_kind.value,
        help="cut off a connected region or random nodes (%(default)s)",
    )
    p.add_argument("--partition-at", type=float, default=d.partition_at, help="s into measure")
    p.add_argument("--heal-after", type=float, default=d.heal_after, help="s of partition")
    p.add_argument("--max-time", type=float, default=d.max_time, help="virtual seconds cap")
    p.add_argument(
        "--bandwidth", type=float, default=d.bandwidth_mbps, help="Mbit/s per link (0: unlimited)"
    )
    p.add_argument("--backlog", type=int, default=d.backlog, help="messages per source, held")
    p.add_argument("--join", type=int, default=d.join, help="then a fresh node dials K nodes")
    p.add_argument(
        "--join-history",
        default="all",
        help="how many of the newest messages per feed the joiner fetches (N or all)",
    )
    p.add_argument(
        "--join-push",
        action="store_true",
        help="the joiner takes every feed by push, oldest first (no range requests)",
    )
    p.add_argument("--json", type=Path, default=None, metavar="FILE", help="also write JSON")
    return p


def config_from_args(args: argparse.Namespace) -> SimConfig:
    """The SimConfig the parsed arguments describe (validated)."""
    cfg = SimConfig(
        nodes=args.nodes,
        topology=TopologyKind(args.topology),
        degree=args.degree,
        branching=args.branching,
        latency_ms=args.latency,
        latency_dist=LatencyDist(args.latency_dist),
        jitter=args.jitter,
        strategy=Strategy(args.strategy),
        seed=args.seed,
        warmup=args.warmup,
        messages=args.messages,
        interval_ms=args.interval,
        settle=args.settle,
        tick_ms=args.tick,
        stall_timeout=args.stall_timeout,
        note_delay=args.note_delay,
        swap_after=args.swap_after,
        detect_ms=args.detect,
        crash_fraction=args.crash,
        crash_at=args.crash_at,
        restart_after=args.restart_after,
        partition_fraction=args.partition,
        partition_kind=PartitionKind(args.partition_kind),
        partition_at=args.partition_at,
        heal_after=args.heal_after,
        sources=args.sources or None,
        feeds=FeedScope(args.feeds),
        max_time=args.max_time,
        backlog=args.backlog,
        bandwidth_mbps=args.bandwidth,
        join=args.join,
        join_history=_history(args.join_history),
        join_ranges=not args.join_push,
    )
    cfg.validate()
    return cfg


def _history(value: str) -> int | None:
    if value.strip().lower() == "all":
        return None
    try:
        return int(value)
    except ValueError:
        raise SimConfigError(f"join history must be a number or all, not {value!r}") from None


def sim_main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `treechat sim`; returns the process exit status."""
    from net.sim.engine import run_simulation

    if argv is not None and "--ephemeral" in argv:
        from net.sim.ephemeral import ephemeral_main

        return ephemeral_main(argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        cfg = config_from_args(args)
        result = run_simulation(cfg)
    except (SimConfigError, TopologyError) as exc:
        print(f"treechat sim: {exc}", file=sys.stderr)
        return 2
    print(result.table())
    if args.json is not None:
        try:
            args.json.write_text(json.dumps(result.to_json(), indent=2) + "\n")
        except OSError as exc:
            print(f"treechat sim: cannot write {args.json}: {exc.strerror}", file=sys.stderr)
            return 1
    return 0
