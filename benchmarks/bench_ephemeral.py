"""Prints the ephemeral gossip figures: reach vs hops, frames per datum, deniability.

Run: .venv/bin/python -m benchmarks.bench_ephemeral [--quick]

All on the real net/ephemeral.py core (net/sim/ephemeral.py), random 6-regular
overlays, link latencies drawn once per link uniformly in 0-100 ms, one datum per run
from a random origin, deterministic seeds:
1. 100 nodes, 400 data per row, hops 1-5, proxy pass off and on (re-relay on).
2. The same with re-relay off: what re-relaying a copy with more hops left costs.
3. 1,000 nodes, 40 data per row, hops 1-5, pass off and on.
"""

from __future__ import annotations

import argparse
import time

from net.sim.ephemeral import HEADER, EphemeralSimConfig, row, run_ephemeral


def table(
    title: str, nodes: int, runs: int, hops: range, passes: list[bool], rerelay: bool
) -> None:
    print(f"# {title}")
    print(HEADER)
    started = time.perf_counter()
    for h in hops:
        for pass_ in passes:
            cfg = EphemeralSimConfig(nodes, 6, h, pass_, rerelay, runs)
            print(row(run_ephemeral(cfg)), flush=True)
    print(f"({time.perf_counter() - started:.1f} s)\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller runs (a smoke test)")
    args = parser.parse_args()
    scale = 10 if args.quick else 1
    hops = range(1, 4) if args.quick else range(1, 6)
    table("1. 100 nodes, re-relay on", 100, 400 // scale, hops, [False, True], True)
    table("2. 100 nodes, re-relay off", 100, 400 // scale, hops, [False], False)
    table("3. 1,000 nodes, re-relay on", 1000, 40 // scale, hops, [False, True], True)


if __name__ == "__main__":
    main()
