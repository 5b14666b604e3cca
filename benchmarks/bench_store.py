"""Store throughput: own appends, received messages (per-message and batch validation).

Run: ``python benchmarks/bench_store.py [--messages N] [--feeds F] [--batch B]``.
Prints messages per second for each path, next to the pure ed25519 verify rate, which
bounds per-message validation. Target: >= 25,000 msgs/s with batch validation.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from nacl.signing import SigningKey, VerifyKey

from store.db import Store
from store.message import MSG_PREFIX, Message, create_message, decode_message


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


async def bench_own(path: Path, count: int) -> float:
    store = await Store.open(path)
    key = SigningKey(b"own!" * 8)
    started = time.perf_counter()
    for i in range(count):
        await store.append_own(key, {"type": "post", "text": f"own {i}", "channel": "general"})
    elapsed = time.perf_counter() - started
    await store.close()
    return count / elapsed


async def bench_received(path: Path, work: list[list[bytes]], batch_validation: bool) -> float:
    store = await Store.open(path)
    store.batch_validation = batch_validation
    total = sum(len(b) for b in work)
    started = time.perf_counter()
    for batch in work:
        result = await store.add_received(batch, source=b"peer" * 8)
        if result.errors:
            raise SystemExit(f"unexpected rejection: {result.errors[0]}")
    elapsed = time.perf_counter() - started
    assert await store.message_count() == total
    await store.close()
    return total / elapsed


def bench_verify(messages: list[Message]) -> float:
    keys = {m.author: VerifyKey(m.author) for m in messages}
    started = time.perf_counter()
    for m in messages:
        keys[m.author].verify(MSG_PREFIX + m.signed, m.signature)
    return len(messages) / (time.perf_counter() - started)


def bench_decode(messages: list[Message]) -> float:
    started = time.perf_counter()
    for m in messages:
        decode_message(m.raw)
    return len(messages) / (time.perf_counter() - started)


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
        single = await bench_received(Path(tmp) / "single.sqlite", work, batch_validation=False)
        batch = await bench_received(Path(tmp) / "batch.sqlite", work, batch_validation=True)
    verify = bench_verify(sample)
    decode = bench_decode(sample)

    print(f"own appends (one transaction each)      {own:>10,.0f} msgs/s")
    print(f"received, per-message validation        {single:>10,.0f} msgs/s")
    print(f"received, batch validation              {batch:>10,.0f} msgs/s   (target >= 25,000)")
    print(
        f"pure signature verify (VerifyKey)       {verify:>10,.0f} msgs/s   (limit for per-message)"
    )
    print(f"pure decode (decode_message)            {decode:>10,.0f} msgs/s")


if __name__ == "__main__":
    asyncio.run(main())
