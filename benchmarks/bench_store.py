"""Store throughput: own appends and received messages (every signature verified).

Run: ``python benchmarks/bench_store.py [--messages N] [--feeds F] [--batch B]``.
Prints messages per second for each path, and the ed25519 verify rate on one core (the
limit of serial validation) beside the rate of ``store.verify.check_all`` on every core,
measured in the same run (interleaved, median of 3). Target: >= 25,000 msgs/s received.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from nacl.signing import SigningKey

from store import verify as check
from store.db import Store
from store.message import Message, create_message, decode_message, signature_ok
from store.verify import Ahead, check_all


def make_feeds(feeds: int, per_feed: int) -> list[list[Message]]:
    chains: list[list[Message]] = []
    for f in range(feeds):
        key = SigningKey(f.to_bytes(4, "big") * 8)
        prev: bytes | None = None
        chain: list[Message] = []
        for seq in range(1, per_feed + 1):
            text = f"message {seq} of feed {f}: a typical short chat line, nothing more"
            content = {"type": "post", "text": text, "channel": f"c{f % 7}"}
            message = create_message(key, seq, prev, 1_700_000_000_000 + seq, content)
            chain.append(message)
            prev = message.id
        chains.append(chain)
    return chains


def batches(chains: list[list[Message]], size: int) -> list[list[bytes]]:
    """Round-robin over feeds, ``size`` consecutive messages of one feed per batch,
    as the EBT push loop delivers them."""
    out: list[list[bytes]] = []
    longest = max(len(c) for c in chains)
    for start in range(0, longest, size):
        for chain in chains:
            part = chain[start : start + size]
            if part:
                out.append([m.raw for m in part])
    return out


Rates = tuple[float, float]  # (by wall clock, by process CPU time over all threads)


async def bench_own(path: Path, count: int) -> Rates:
    store = await Store.open(path)
    key = SigningKey(b"own!" * 8)
    started, cpu = time.perf_counter(), time.process_time()
    for i in range(count):
        await store.append_own(key, {"type": "post", "text": f"own {i}", "channel": "general"})
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    await store.close()
    return count / elapsed, count / cpu


async def bench_received(path: Path, work: list[list[bytes]], concurrency: int = 1) -> Rates:
    """Store every batch; ``concurrency`` > 1 keeps that many calls in flight, as a node
    does when several peers deliver at once (decoding overlaps the previous write)."""
    store = await Store.open(path)
    total = sum(len(b) for b in work)
    pending = iter(work)

    async def deliver() -> None:
        for batch in pending:
            result = await store.add_received(batch, source=b"peer" * 8)
            if result.errors:
                raise SystemExit(f"unexpected rejection: {result.errors[0]}")

    started, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(deliver() for _ in range(concurrency)))
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    assert await store.message_count() == total
    await store.close()
    return total / elapsed, total / cpu


async def bench_received_ahead(path: Path, work: list[list[bytes]]) -> Rates:
    """As the node stores a sync: each batch's signatures are checked on the verify pool
    (``store.verify.Ahead``) while the batch before it is written."""
    store = await Store.open(path)
    total = sum(len(b) for b in work)
    started, cpu = time.perf_counter(), time.process_time()
    upcoming = Ahead(work[0]) if work else None
    for i, batch in enumerate(work):
        assert upcoming is not None
        current, upcoming = upcoming, Ahead(work[i + 1]) if i + 1 < len(work) else None
        verdicts: dict[bytes, bool] = {}
        await current.verdicts(verdicts)
        result = await store.add_received(batch, source=b"peer" * 8, verdicts=verdicts)
        if result.errors:
            raise SystemExit(f"unexpected rejection: {result.errors[0]}")
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    assert await store.message_count() == total
    await store.close()
    return total / elapsed, total / cpu


def bench_verify(messages: list[Message]) -> Rates:
    """The single-core limit: one thread, one libsodium verify after another."""
    started, cpu = time.perf_counter(), time.process_time()
    for m in messages:
        signature_ok(m)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    return len(messages) / elapsed, len(messages) / cpu


def bench_verify_parallel(messages: list[Message], batch: int) -> Rates:
    """``store.verify.check_all`` on batches of ``batch``, as add_received calls it."""
    started, cpu = time.perf_counter(), time.process_time()
    for start in range(0, len(messages), batch):
        check_all(messages[start : start + batch])
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    return len(messages) / elapsed, len(messages) / cpu


def verify_rates(messages: list[Message], batch: int, rounds: int = 3) -> tuple[float, float]:
    """Serial and parallel verify rates (wall), interleaved, the median of ``rounds`` each."""
    serial: list[float] = []
    parallel: list[float] = []
    for _ in range(rounds):
        serial.append(bench_verify(messages)[0])
        parallel.append(bench_verify_parallel(messages, batch)[0])
    return statistics.median(serial), statistics.median(parallel)


def bench_decode(messages: list[Message]) -> Rates:
    started, cpu = time.perf_counter(), time.process_time()
    for m in messages:
        decode_message(m.raw)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    return len(messages) / elapsed, len(messages) / cpu


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--feeds", type=int, default=100)
    parser.add_argument("--batch", type=int, default=250, help="messages per received batch")
    parser.add_argument("--own", type=int, default=2_000, help="own appends to time")
    args = parser.parse_args()
    per_feed = max(1, args.messages // args.feeds)

    print(f"generating {per_feed * args.feeds:,} signed messages in {args.feeds} feeds ...")
    chains = make_feeds(args.feeds, per_feed)
    work = batches(chains, args.batch)
    sample = [m for chain in chains for m in chain[:50]]
    size = sum(len(m.raw) for m in sample) / len(sample)
    print(f"  average message size {size:.0f} bytes; {len(work):,} batches of <= {args.batch}")

    with tempfile.TemporaryDirectory() as tmp:
        own = await bench_own(Path(tmp) / "own.sqlite", args.own)
        batch = await bench_received(Path(tmp) / "batch.sqlite", work)
        batch2 = await bench_received(Path(tmp) / "batch2.sqlite", work, concurrency=2)
        ahead = await bench_received_ahead(Path(tmp) / "ahead.sqlite", work)
    decode = bench_decode(sample)
    serial, parallel = verify_rates(sample, args.batch)

    def show(label: str, rates: Rates, note: str = "") -> None:
        wall, cpu = rates
        print(f"{label:<38} {wall:>10,.0f} {cpu:>10,.0f}   {note}")

    print(f"{'msgs/s':<38} {'wall':>10} {'cpu':>10}")
    show("own appends (one transaction each)", own)
    show("received (every signature verified)", batch, "target >= 25,000")
    show("  the same, two deliveries in flight", batch2)
    show("  verified ahead while the last batch is written", ahead, "(as the node does)")
    show("pure decode_message", decode)
    print(f"signature verify, interleaved, median of 3 (wall msgs/s; {check.WORKERS} cores):")
    print(f"  {'one core (the single-core limit)':<36} {serial:>10,.0f}")
    print(
        f"  {'store.verify.check_all, all cores':<36} {parallel:>10,.0f}"
        f"   {parallel / serial:.2f}x the single-core limit (target >= 1.6x)"
    )
    print(
        f"  {'received, verified ahead (wall)':<36} {ahead[0]:>10,.0f}"
        f"   {ahead[0] / serial:.2f}x the single-core limit (target >= 1.6x)"
    )
    print(f"  load: {os.getloadavg()[0]:.2f} (1-minute average) on {os.cpu_count()} cores")
    print("(wall: by the clock; cpu: by this process's CPU time, all threads, which is")
    print(" what the machine would give on an idle core)")


if __name__ == "__main__":
    asyncio.run(main())
