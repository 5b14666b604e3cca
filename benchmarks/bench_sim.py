"""Prints the simulator's figures for the EBT core: RMR, LDH, latency, failures, 1,000 nodes.

Run: .venv/bin/python -m benchmarks.bench_sim [--quick]

Scenarios (all on the real net/ebt.py Replicator, deterministic seeds):
1. 100 nodes, random 6-regular overlay, 20 sources, 10 warm-up messages per source,
   then 200 measured messages from random sources: ebt, ebt-noswap, flood; constant
   50 ms links, then links drawn uniformly in 0-100 ms (where the swap matters).
2. The same with 30 % of the nodes crashing at once: survivors must get every later
   message. Recovery (issue 14's definition): every survivor has each message sent
   after the crash within that long of its sending, worst case (goal <= 1 s at a
   steady-state RMR <= 0.05); beside it how long the repaired trees stay slower than
   the shortest survivor paths ("trees reshaped").
3. A partition of 30 % of the nodes for 5 s, then healed: full convergence.
4. 1,000 nodes (same overlay) for the runtime.
5. Wire bytes per delivered copy and the notes' part at 100 and 1,000 nodes: EBT before
   (every note names its 32-byte feed id, news at once), EBT now (feeds numbered per
   session, news held up to note_delay and dropped when stale), flood.
6. A fresh node joins after the run (the 20 feeds hold a backlog of 2,000 old messages
   each; 10 Mbit/s links): when it holds the newest message of every feed, the newest
   window and all it wants, newest first by range requests (history all, and 1,000)
   versus every feed pushed oldest first (the path before range requests).
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import replace

from net.sim import LatencyDist, SimConfig, SimResult, Strategy, run_simulation

BASE = SimConfig(nodes=100, degree=6, sources=20, warmup=10, messages=200, seed=1)


def row(label: str, r: SimResult) -> str:
    return (
        f"{label:<26} {r.delivery_ratio:7.4f} {r.rmr:7.3f} "
        f"{r.ldh_mean:5.2f}/{r.ldh_optimum_mean:<5.2f} {r.ldh_excess_max:+3d} "
        f"{r.latency.p50:6.0f} {r.latency.p95:6.0f} {r.latency.p99:6.0f} {r.latency.max:6.0f}"
        f"  (opt {r.latency_optimum.p50:.0f}/{r.latency_optimum.max:.0f})"
        f" {r.note_frames_per_msg:7.1f} {r.bytes_per_delivery:7.0f}"
        f" {r.note_bytes_per_delivery:7.0f}"
        f" {r.wall_seconds:6.1f}"
    )


BEFORE = {"numbered_notes": False, "note_delay": 0.0}
"""The notes as they were: every entry names its 32-byte feed id, news sent at once."""


def cell(r: SimResult) -> str:
    return f"{r.bytes_per_delivery:>8.0f} ({r.note_bytes_per_delivery:>4.0f})"


HEADER = (
    f"{'scenario':<26} {'deliv':>7} {'RMR':>7} {'LDH/opt':>11} {'exc':>3} "
    f"{'p50':>6} {'p95':>6} {'p99':>6} {'max':>6}  {'(optimum ms)':<14}"
    f" {'notes/m':>7} {'B/deliv':>7} {'notes B':>7} {'wall s':>6}"
)
# B/deliv: every byte on the wire (184-byte messages, notes, frame and box-stream
# overhead) per copy delivered to a node other than the author; notes B: the notes' part.


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller runs (a smoke test)")
    args = parser.parse_args()
    base = replace(BASE, nodes=40, messages=60, warmup=5) if args.quick else BASE

    print(
        f"# 1. steady state: {base.nodes} nodes, random {base.degree}-regular, "
        f"{base.sources} sources x {base.warmup} warm-up, {base.messages} measured"
    )
    print(HEADER)
    steady_rmr = math.nan
    small: dict[str, SimResult] = {}
    for dist in (LatencyDist.CONSTANT, LatencyDist.UNIFORM):
        for strategy in Strategy:
            cfg = replace(base, strategy=strategy, latency_dist=dist)
            r = run_simulation(cfg)
            print(row(f"{strategy.value} {dist.value}", r))
            if dist is LatencyDist.CONSTANT:
                small[strategy.value] = r
                if strategy is Strategy.EBT:
                    steady_rmr = r.rmr
    r = run_simulation(replace(base, **BEFORE))  # type: ignore[arg-type]
    print(row("ebt before constant", r))
    small["before"] = r

    print("\n# 2. 30 % of the nodes crash at once (2 s into the measured phase)")
    print(HEADER)
    for strategy in (Strategy.EBT, Strategy.FLOOD):
        r = run_simulation(replace(base, strategy=strategy, crash_fraction=0.3, crash_at=2.0))
        print(row(f"{strategy.value} crash 30%", r))
        if r.recovery_time is None or r.reshape_time is None or r.post_crash_complete is None:
            print("    survivors did NOT get every later message")
            continue
        verdict = ""
        if strategy is Strategy.EBT:
            ok = r.recovery_time <= 1.0 and steady_rmr <= 0.05
            verdict = f"   goal <= 1 s with steady RMR {steady_rmr:.3f} <= 0.05: " + (
                "PASS" if ok else "FAIL"
            )
        print(
            f"    recovery {r.recovery_time:.2f} s: every survivor had each message sent after"
            f" the crash within {r.recovery_time:.2f} s of its sending{verdict}"
        )
        print(
            f"    trees reshaped {r.reshape_time:.2f} s after the crash (the last message slower"
            " than its shortest path by more than any before the crash)"
        )
        print(
            f"    every post-crash message everywhere {r.post_crash_complete:.2f} s after the"
            " crash (the measured phase's length after the crash, not a delay)"
        )

    print("\n# 3. partition of 30 % for 5 s, then heal")
    print(HEADER)
    r = run_simulation(replace(base, partition_fraction=0.3, partition_at=2.0, heal_after=5.0))
    print(row("ebt partition 30%", r))
    heal = "-" if r.heal_convergence is None else f"{r.heal_convergence:.2f} s"
    print(f"    converged {r.converged}   every pre-heal message everywhere {heal} after heal")

    n = 200 if args.quick else 1000
    print(f"\n# 4. {n} nodes (3 warm-up per source, 100 measured)")
    print(HEADER)
    large_cfg = replace(base, nodes=n, warmup=3, messages=100)
    started, cpu = time.perf_counter(), time.process_time()
    r = run_simulation(large_cfg)
    print(row(f"ebt {n} nodes", r))
    print(
        f"    runtime {time.perf_counter() - started:.1f} s wall"
        f" ({time.process_time() - cpu:.1f} s CPU), {r.events} events,"
        f" {r.virtual_time:.1f} s virtual"
    )
    large = {"ebt": r}
    large["before"] = run_simulation(replace(large_cfg, **BEFORE))  # type: ignore[arg-type]
    print(row(f"ebt before {n} nodes", large["before"]))
    large["flood"] = run_simulation(replace(large_cfg, strategy=Strategy.FLOOD))
    print(row(f"flood {n} nodes", large["flood"]))

    print("\n# 5. wire bytes per delivered copy (notes' part), constant 50 ms links")
    print(f"{'nodes':>6} {'EBT before':>16} {'EBT after':>16} {'notes cut':>10} {'flood':>16}")
    for nodes, runs in ((base.nodes, small), (n, large)):
        before, after, flood = runs["before"], runs["ebt"], runs["flood"]
        cut = before.note_bytes_per_delivery / after.note_bytes_per_delivery
        print(
            f"{nodes:>6} {cell(before)} {cell(after)} {cut:>9.1f}x {cell(flood)}"
            f"   goal >= 4x at RMR {after.rmr:.3f} <= 0.01, delivery {after.delivery_ratio:.2f}: "
            + ("PASS" if cut >= 4 and after.rmr <= 0.01 and after.delivery_ratio == 1 else "FAIL")
        )

    print("\n# 6. a fresh node joins: 3 links, 10 Mbit/s, 20 feeds with 2,000 old messages each")
    joining = replace(base, backlog=2000, join=3, bandwidth_mbps=10.0)
    for label, cfg in (
        ("newest first, history all", joining),
        ("newest first, history 1000", replace(joining, join_history=1000)),
        ("pushed oldest first", replace(joining, join_ranges=False)),
    ):
        joined = run_simulation(cfg).join
        assert joined is not None
        print(f"  {label:<28} {joined.line()}")


if __name__ == "__main__":
    main()
