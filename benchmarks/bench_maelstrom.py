"""Prints Maelstrom broadcast figures (Gossip Glomers 3d/3e) for the EBT node, in-process.

Run: .venv/bin/python -m benchmarks.bench_maelstrom

The workload is tests/maelstrom_harness.py: 25 nodes, 100 ms server-to-server latency,
100 operations/s (half broadcasts, half reads) for 20 s of virtual time, heal, 10 s of
recovery, one final read per node; with and without the partition nemesis. Targets
(3d/3e): msgs-per-op < 20, median stable latency < 400 ms, max < 600 ms, no lost value
(with partitions only "no lost value" applies).
"""

from __future__ import annotations

import time
from dataclasses import replace

from net.maelstrom import NodeSettings, Overlay
from tests.maelstrom_harness import WorkloadConfig, WorkloadResult, run_workload

BASE = WorkloadConfig(nodes=25, latency=0.1, rate=100, duration=20, recovery=10, seed=1)
NO_WAIT = replace(BASE, settings=NodeSettings(ready_wait=0))


def row(label: str, r: WorkloadResult, wall: float) -> str:
    s, v = r.stable_latency, r.visibility_latency
    return (
        f"{label:<34} {r.msgs_per_op:7.2f} {len(r.lost):5d} "
        f"{s['0.5']:6.0f} {s['0.95']:6.0f} {s['0.99']:6.0f} {s['1']:6.0f}   "
        f"{v['0.5']:6.0f} {v['1']:6.0f} {r.partitions:5d} {wall:6.1f}"
    )


def main() -> None:
    print(__doc__.splitlines()[0])
    print(
        f"{'run':<34} {'msg/op':>7} {'lost':>5} "
        f"{'p50':>6} {'p95':>6} {'p99':>6} {'max':>6}   {'vis50':>6} {'vismax':>6}"
        f" {'parts':>5} {'wall':>6}"
    )
    print(f"{'':<34} {'':>7} {'':>5} {'stable latency ms':^27}   {'all nodes ms':^13}")
    runs: list[tuple[str, WorkloadConfig]] = [
        ("default (star-ring)", BASE),
        ("default, partition nemesis", replace(BASE, partitions=True)),
        ("default, exponential latency", replace(BASE, latency_dist="exponential")),
        ("star only", replace(BASE, settings=NodeSettings(overlay=Overlay.STAR))),
        ("tree4", replace(BASE, settings=NodeSettings(overlay=Overlay.TREE4))),
        (
            "no init wait (trees form under load)",
            replace(BASE, settings=NodeSettings(ready_wait=0)),
        ),
        ("flooding core (prune=False)", replace(BASE, settings=NodeSettings(prune=False))),
    ]
    for label, cfg in runs:
        started = time.perf_counter()
        result = run_workload(cfg)
        print(row(label, result, time.perf_counter() - started))


if __name__ == "__main__":
    main()
