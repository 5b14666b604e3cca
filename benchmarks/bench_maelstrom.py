"""Prints Maelstrom broadcast figures for the EBT node: the latency/messages curve and the goals.

Run: .venv/bin/python -m benchmarks.bench_maelstrom            (curve + goal rows)
     .venv/bin/python -m benchmarks.bench_maelstrom --preset frugal --nodes 25 [--partitions]
     .venv/bin/python -m benchmarks.bench_maelstrom --overlay star --batch-window 200

No Maelstrom runs here (there is a JVM but no Maelstrom jar, and no network to fetch
one): the workload is tests/maelstrom_harness.py, an in-process stand-in with virtual
time that computes Maelstrom's own figures. Default workload: 25 nodes, 100 ms
server-to-server latency, 100 operations/s (half broadcasts, half reads) for 20 s,
heal, 10 s of recovery, one final read per node. Latency and msgs-per-op are taken
without the nemesis; "lost" is from a second run with the partition nemesis (a
random partition every 10 s), where latency means little (values are cut off).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, replace

from net.maelstrom import PRESETS, NodeSettings, Overlay
from tests.maelstrom_harness import WorkloadConfig, WorkloadResult, run_workload

BASE = WorkloadConfig(nodes=25, latency=0.1, rate=100, duration=20, recovery=10, seed=1)


@dataclass(frozen=True, slots=True)
class Goal:
    """A target row: the preset, the cluster size and the bounds (<=)."""

    label: str
    preset: str
    nodes: int
    msgs_per_op: float
    median_ms: float
    max_ms: float


GOALS = [
    Goal("challenge bounds (3d/3e)", "default", 25, 20, 400, 600),
    Goal("low-latency: beyond 23.38 @ 181/207", "low-latency", 25, 20, 181, 207),
    Goal("frugal: beyond 1.92 @ 764/1087", "frugal", 25, 1.9, 764, 1087),
    Goal("100 nodes, no single hub", "large", 100, 20, 500, 1000),
]

HEADER = (
    f"{'run':<38} {'msg/op':>7} {'lost':>5} {'p50':>6} {'p95':>6} {'max':>6}"
    f" {'vis50':>6} {'vismax':>6} {'send max/mean':>13} {'wall':>6}"
)


def row(label: str, r: WorkloadResult, lost: int | None, wall: float) -> str:
    s, v = r.stable_latency, r.visibility_latency
    shown = "-" if lost is None else str(lost)
    return (
        f"{label:<38} {r.msgs_per_op:7.2f} {shown:>5} {s['0.5']:6.0f} {s['0.95']:6.0f}"
        f" {s['1']:6.0f} {v['0.5']:6.0f} {v['1']:6.0f} {r.send_ratio:13.2f} {wall:6.1f}"
    )


def measure(cfg: WorkloadConfig, partitions: bool) -> tuple[WorkloadResult, int | None, float]:
    """One run for the figures, and (if asked) one with the nemesis for lost values."""
    started = time.perf_counter()
    result = run_workload(cfg)
    lost = len(run_workload(replace(cfg, partitions=True)).lost) if partitions else None
    return result, lost, time.perf_counter() - started


def curve() -> None:
    print("The curve: star overlay, batching window swept (no nemesis), then other overlays")
    print(HEADER)
    runs: list[tuple[str, NodeSettings]] = [
        (f"star, window {ms} ms", NodeSettings(overlay=Overlay.STAR, batch_window=ms / 1000))
        for ms in (0, 10, 30, 100, 200, 300, 400, 500, 700)
    ]
    runs += [
        ("full mesh, no batching (low-latency)", PRESETS["low-latency"]),
        ("default (star-ring, 30 ms)", PRESETS["default"]),
        ("given (Maelstrom's grid), 30 ms", NodeSettings(overlay=Overlay.GIVEN)),
        ("tree4, 30 ms", NodeSettings(overlay=Overlay.TREE4)),
        ("flooding core (prune=False)", NodeSettings(prune=False)),
    ]
    for label, settings in runs:
        print(row(label, *measure(replace(BASE, settings=settings), partitions=False)))


def goals() -> None:
    print()
    print("Goal rows (figures without nemesis; lost with the partition nemesis)")
    print(HEADER + "  goal (<=)               verdict")
    for g in GOALS:
        cfg = replace(BASE, nodes=g.nodes, settings=PRESETS[g.preset])
        result, lost, wall = measure(cfg, partitions=True)
        s = result.stable_latency
        ok = (
            result.msgs_per_op <= g.msgs_per_op
            and s["0.5"] <= g.median_ms
            and s["1"] <= g.max_ms
            and lost == 0
        )
        bounds = f"{g.msgs_per_op:g} @ {g.median_ms:g}/{g.max_ms:g} ms"
        label = f"{g.preset} x{g.nodes}"
        verdict = "PASS" if ok else "FAIL"
        print(f"{row(label, result, lost, wall)}  {bounds:<23} {verdict}  {g.label}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default=None)
    parser.add_argument("--overlay", choices=[o.value for o in Overlay], default=None)
    parser.add_argument("--batch-window", type=float, default=None, metavar="MS")
    parser.add_argument("--hubs", type=int, default=None)
    parser.add_argument("--nodes", type=int, default=BASE.nodes)
    parser.add_argument("--seed", type=int, default=BASE.seed)
    parser.add_argument("--partitions", action="store_true", help="also count lost values")
    args = parser.parse_args(argv)
    print(__doc__.splitlines()[0])
    if args.preset is None and args.overlay is None and args.batch_window is None:
        curve()
        goals()
        return
    settings = PRESETS[args.preset or "default"]
    if args.overlay is not None:
        settings = replace(settings, overlay=Overlay(args.overlay))
    if args.batch_window is not None:
        settings = replace(settings, batch_window=args.batch_window / 1000)
    if args.hubs is not None:
        settings = replace(settings, hubs=args.hubs)
    cfg = replace(BASE, nodes=args.nodes, seed=args.seed, settings=settings)
    print(HEADER)
    print(row("as given", *measure(cfg, partitions=args.partitions)))


if __name__ == "__main__":
    main()
