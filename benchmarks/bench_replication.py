"""Replication benchmark: initial sync between two `serve` processes, live latency and
redundancy across 10 nodes, and clock entries sent on reconnect. Prints figures only.

    .venv/bin/python benchmarks/bench_replication.py            # full sizes
    .venv/bin/python benchmarks/bench_replication.py --quick    # small sizes, a smoke run

Every received signature is verified (on every core: store/verify.py). Each sync prints
its rate against the single-core verify limit, and the ceiling two cores allow: the CPU
per message of both processes after start-up, so what the rate could be with both
cores busy the whole time. After the syncs it prints the receiver's cost per message,
stage by stage (1 x 50,000 and 100 x 1,000): what the rest of the receive path costs
against the verification it wraps, beside the floor of any store (a bare SQLite insert
of the rows).

Targets (design): initial sync >= 20,000 msgs/s in each shape; live redundancy <= 1.05x
payload transmissions per new message per other node; a no-change reconnect after a
completed sync sends <= 1% of a full clock.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import random
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from nacl.signing import SigningKey  # noqa: E402

from chat.config import Config, HostPort  # noqa: E402
from chat.content import contact, post  # noqa: E402
from chat.identity import load_or_create_identity  # noqa: E402
from chat.node import Node, NodeOptions  # noqa: E402
from net.ebt import EbtConfig  # noqa: E402
from store.db import Store  # noqa: E402
from store.message import (  # noqa: E402
    Message,
    create_message,
    decode_message,
    peek_feed_seq,
    signature_ok,
)

INSERT_BATCH = 5000


# ---------------------------------------------------------------- data preparation


def make_feed(seed: int, count: int) -> list[bytes]:
    """`count` messages of a fresh feed derived from `seed`, as raw bytes."""
    key = SigningKey(seed.to_bytes(32, "big"))
    raws: list[bytes] = []
    prev: bytes | None = None
    base = 1_700_000_000_000
    for seq in range(1, count + 1):
        message = create_message(key, seq, prev, base + seq, post(f"message {seq}", "bench"))
        raws.append(message.raw)
        prev = message.id
    return raws


async def fill_store(path: Path, feeds: Sequence[Sequence[bytes]]) -> None:
    async with await Store.open(path) as store:
        pending: list[bytes] = []
        for raws in feeds:
            pending.extend(raws)
            if len(pending) >= INSERT_BATCH:
                await store.add_received(pending)
                pending = []
        if pending:
            await store.add_received(pending)


async def follow_all(data_dir: Path, feeds: Sequence[bytes]) -> bytes:
    identity = load_or_create_identity(data_dir)
    async with await Store.open(data_dir / "treechat.db") as store:
        for feed in feeds:
            await store.append_own(identity.signing_key, contact(feed, following=True))
    return identity.feed_id


def author_of(raws: Sequence[bytes]) -> bytes:
    return decode_message(raws[0]).author


# ---------------------------------------------------------------- process helpers


@dataclass
class ProcStats:
    cpu_s: float
    peak_rss_mb: float


def proc_stats(pid: int) -> ProcStats:
    ticks = os.sysconf("SC_CLK_TCK")
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    rss_kb = 0
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                rss_kb = int(line.split()[1])
    return ProcStats(cpu, rss_kb / 1024)


def start_serve(
    data_dir: Path, connect: list[str], entry: tuple[str, ...] = ("-m", "chat")
) -> tuple[subprocess.Popen[str], str]:
    """A ``serve`` process on loopback and its address (`entry`: how Python starts it)."""
    args = [
        sys.executable,
        *entry,
        "--data-dir",
        str(data_dir),
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--no-discovery",
        "--interface",
        "127.0.0.1",
    ]
    for address in connect:
        args += ["--connect", address]
    log = open(data_dir / "serve.log", "w")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(
        args, cwd=ROOT, stdout=subprocess.PIPE, stderr=log, text=True, env=_env()
    )
    assert proc.stdout is not None
    address = proc.stdout.readline().strip()
    if not address.startswith("net:"):
        proc.kill()
        raise RuntimeError(f"serve did not print its address (see {data_dir / 'serve.log'})")
    return proc, address


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT)
    return env


def read_snapshot(data_dir: Path) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads((data_dir / "status.json").read_text())
        return data
    except (OSError, ValueError):
        return None


def stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# ---------------------------------------------------------------- 1. initial sync


def bench_initial_sync(label: str, feeds: int, per_feed: int, work: Path) -> float:
    """Print the sync's figures; return the receiver's CPU seconds per message."""
    source_dir, sink_dir = work / f"{label}-a", work / f"{label}-b"
    source_dir.mkdir()
    sink_dir.mkdir()
    started = time.perf_counter()
    data = [make_feed(1000 + i, per_feed) for i in range(feeds)]
    authors = [author_of(raws) for raws in data]
    load_or_create_identity(source_dir)
    asyncio.run(fill_store(source_dir / "treechat.db", data))
    asyncio.run(follow_all(source_dir, authors))
    asyncio.run(follow_all(sink_dir, authors))
    (sink_dir / "config.toml").write_text('history = "all"\n')  # a whole sync, not the newest
    total = feeds * per_feed
    print(f"  prepared {total} messages in {time.perf_counter() - started:.1f} s", flush=True)
    sample = [decode_message(raw) for raws in data for raw in raws[: 3000 // feeds + 1]]
    # The single-core limit, three times before and three after the sync (the clock
    # speed of a shared machine drifts by a tenth between runs): their median.
    limits = [verify_limit(sample) for _ in range(3)]
    source, address = start_serve(source_dir, [])
    time.sleep(1.0)  # its start-up done; what it uses from here on is the sync's
    source_start = proc_stats(source.pid).cpu_s
    sink, _ = start_serve(sink_dir, [address])
    try:
        deadline = time.monotonic() + 600
        snapshot: dict[str, Any] | None = None
        while time.monotonic() < deadline:
            snapshot = read_snapshot(sink_dir)
            if snapshot and snapshot["counters"]["msgs_stored"] >= total:
                break
            if sink.poll() is not None or source.poll() is not None:
                raise RuntimeError("a serve process died; see serve.log in " + str(work))
            time.sleep(0.2)
        else:
            raise RuntimeError("sync did not finish in 10 minutes")
        # Let the status writer catch the final timing fields.
        time.sleep(1.2)
        snapshot = read_snapshot(sink_dir) or snapshot
        assert snapshot is not None
        a_stats, b_stats = proc_stats(source.pid), proc_stats(sink.pid)
        sender = read_snapshot(source_dir)
    finally:
        stop(sink)
        stop(source)
    limits += [verify_limit(sample) for _ in range(3)]
    limit = statistics.median(limits)
    start_up = startup_cpu(work / f"{label}-idle")
    received = snapshot["counters"]["msgs_received"]
    sent = sender["counters"]["msgs_sent"] if sender else -1
    timing = snapshot["timing"]
    span = timing["last_stored_at"] - timing["first_connected_at"]
    rate = total / span if span > 0 else float("inf")
    print(
        f"  {label:>14}: {total:7d} msgs in {span:6.2f} s = {rate:9,.0f} msgs/s"
        f"  | sender cpu {a_stats.cpu_s:5.1f} s rss {a_stats.peak_rss_mb:5.0f} MB"
        f"  | receiver cpu {b_stats.cpu_s:5.1f} s rss {b_stats.peak_rss_mb:5.0f} MB"
        f"  [{'ok' if rate >= 20_000 else 'below 20k target'}]"
        f" (payloads sent {sent}, received {received}; load {os.getloadavg()[0]:.1f})",
        flush=True,
    )
    print(
        f"  {'':>14}  = {rate / limit:.2f}x the single-core verify limit ({limit:,.0f}/s on one"
        " thread, median of 3 runs before and 3 after the sync; target >= 1.6x)",
        flush=True,
    )
    sender_us = (a_stats.cpu_s - source_start) / total * 1e6
    receiver_us = (b_stats.cpu_s - start_up) / total * 1e6
    verify_us = 1e6 / limit
    ceiling = 2e6 / (sender_us + receiver_us)  # two cores, both ends busy all the time
    rest_us = sender_us + receiver_us - verify_us
    print(
        f"  {'':>14}  CPU per message after start-up: sender {sender_us:.0f} us, receiver"
        f" {receiver_us:.0f} us (one verification {verify_us:.0f} us of it); two cores give"
        f" at most {ceiling:,.0f} msgs/s = {ceiling / limit:.2f}x. 1.6x needs sender + the"
        f" receiver's rest <= {0.25 * verify_us:.0f} us (now {rest_us:.0f})",
        flush=True,
    )
    return (b_stats.cpu_s - start_up) / total


def startup_cpu(data_dir: Path) -> float:
    """CPU seconds a ``serve`` process spends starting with no peers (taken off the
    receiver's figure, as the sender's is read once it has started)."""
    data_dir.mkdir()
    proc, _ = start_serve(data_dir, [])
    try:
        time.sleep(1.0)
        return proc_stats(proc.pid).cpu_s
    finally:
        stop(proc)


def verify_limit(messages: Sequence[Message]) -> float:
    """Signatures verified per second, one after another on one thread (wall)."""
    started = time.perf_counter()
    for message in messages:
        signature_ok(message)
    return len(messages) / (time.perf_counter() - started)


# ---------------------------------------------------------------- 2. live latency


def _config(path: Path) -> Config:
    return Config(
        data_dir=path, listen=HostPort("127.0.0.1", 0), discovery=False, interfaces=("127.0.0.1",)
    )


QUIET = NodeOptions(write_status=False)


async def _converge(nodes: list[Node], feeds: list[bytes], seq: int, limit: float) -> None:
    deadline = time.monotonic() + limit
    while True:
        if all(
            n.manager is not None and n.manager.replicator.local_clock.get(f, 0) >= seq
            for n in nodes
            for f in feeds
        ):
            return
        if time.monotonic() > deadline:
            raise RuntimeError("nodes did not converge")
        await asyncio.sleep(0.05)


async def _open_mesh(paths: list[Path], options: NodeOptions) -> tuple[list[bytes], list[Node]]:
    """One node per data dir, each following all the others."""
    ids = [load_or_create_identity(p).feed_id for p in paths]
    for i, path in enumerate(paths):
        await follow_all(path, [f for f in ids if f != ids[i]])
    return ids, [await Node.open(_config(p), options) for p in paths]


async def _link_mesh(nodes: list[Node], ids: list[bytes], edges: list[tuple[int, int]]) -> None:
    """Start every node, dial every edge and wait until all hold each other's seq 1."""
    for node in nodes:
        await node.start()
    for u, v in edges:
        address = nodes[v].address
        assert address is not None
        await nodes[u].connect(address)
    await _converge(nodes, ids, len(nodes) - 1, 60)


async def bench_live(
    label: str,
    edges: list[tuple[int, int]],
    count: int,
    work: Path,
    rounds: int,
    source_fixed: int | None,
    options: NodeOptions = QUIET,
) -> None:
    paths = [work / f"{label.replace(' ', '-')}-{i}" for i in range(count)]
    ids, nodes = await _open_mesh(paths, options)
    try:
        await _link_mesh(nodes, ids, edges)
        await asyncio.sleep(1.5)  # let prunes settle into a tree
        # Warm-up: the first live messages of each feed still prune the links that the
        # initial sync left eager on both sides; they are counted apart.
        warm_before = sum(n.manager.counters.msgs_sent for n in nodes)
        for node in nodes:
            await node.post("warm-up", "general")
        await _converge(nodes, ids, count, 30)
        await asyncio.sleep(1.0)
        warm = sum(n.manager.counters.msgs_sent for n in nodes) - warm_before
        warm_redundancy = warm / (count * (count - 1))
        sent_before = sum(n.manager.counters.msgs_sent for n in nodes)
        rng = random.Random(3)
        latencies: list[float] = []
        window_sent: list[int] = []
        for index in range(rounds):
            if index % max(1, rounds // 3) == 0:
                window_sent.append(sum(n.manager.counters.msgs_sent for n in nodes))
            source = source_fixed if source_fixed is not None else rng.randrange(count)
            origin = nodes[source]
            target = origin.local_seq(origin.feed_id) + 1
            arrival = _Arrival(origin.feed_id, target, count - 1)
            unsubscribe = [
                n.subscribe(arrival.watcher(i, n)) for i, n in enumerate(nodes) if i != source
            ]
            t0 = time.perf_counter()
            await origin.post("live", "general")
            await asyncio.wait_for(arrival.done.wait(), 30)
            latencies.append((max(arrival.arrived.values()) - t0) * 1000)
            for cancel in unsubscribe:
                cancel()
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)
        sent = sum(n.manager.counters.msgs_sent for n in nodes) - sent_before
        redundancy = sent / (rounds * (count - 1))
        window = max(1, rounds // 3)
        window_sent.append(sum(n.manager.counters.msgs_sent for n in nodes))
        thirds = "/".join(
            f"{(b - a) / (window * (count - 1)):.2f}"
            for a, b in itertools.pairwise(window_sent[:4])
        )
        print(
            f"  {label:>14}: latency to the last node median {statistics.median(latencies):6.1f} ms"
            f" max {max(latencies):6.1f} ms | payload transmissions per message per other node"
            f" {redundancy:.3f}x [{'ok' if redundancy <= 1.05 else 'above 1.05 target'}]"
            f" (by thirds {thirds}; first message of each feed after the sync:"
            f" {warm_redundancy:.3f}x)",
            flush=True,
        )
    finally:
        for node in nodes:
            await node.stop()


class _Arrival:
    """Records when each node first holds `target` of `feed`."""

    def __init__(self, feed: bytes, target: int, expected: int) -> None:
        self.feed = feed
        self.target = target
        self.expected = expected
        self.arrived: dict[int, float] = {}
        self.done = asyncio.Event()

    def watcher(self, index: int, node: Node) -> Callable[[object], None]:
        def check(_: object) -> None:
            assert node.manager is not None
            if index in self.arrived:
                return
            if node.manager.replicator.local_clock.get(self.feed, 0) >= self.target:
                self.arrived[index] = time.perf_counter()
                if len(self.arrived) == self.expected:
                    self.done.set()

        return check


def random_graph(count: int, extra: int, seed: int) -> list[tuple[int, int]]:
    rng = random.Random(seed)
    order = list(range(count))
    rng.shuffle(order)
    edges = {(order[k], order[rng.randrange(k)]) for k in range(1, count)}
    while len(edges) < count - 1 + extra:
        u, v = rng.sample(range(count), 2)
        if (v, u) not in edges:
            edges.add((u, v))
    return sorted(edges)


# ---------------------------------------------------------------- 3. reconnect clocks


async def _entries(nodes: Sequence[Node]) -> int:
    return sum(n.manager.counters.notes_entries_sent for n in nodes)


async def _settle(nodes: Sequence[Node], seconds: float = 2.0) -> None:
    await asyncio.sleep(seconds)


async def _disconnect(a: Node, b: Node, *, clean: bool = False) -> None:
    assert a.manager is not None and b.manager is not None
    session = b.manager.session(a.feed_id)
    if session is not None:
        if clean:  # as the node hangs up: held-back notes and acks go out first
            b.manager.close_session(session, "goodbye")
        else:
            session.close("goodbye")
    deadline = time.monotonic() + 10
    while a.manager.session(b.feed_id) is not None or b.manager.session(a.feed_id) is not None:
        if time.monotonic() > deadline:
            raise RuntimeError("disconnect did not complete")
        await asyncio.sleep(0.02)
    await a.manager.async_persisted()
    await b.manager.async_persisted()


async def bench_reconnect(feeds: int, per_feed: int, work: Path) -> None:
    a_dir, b_dir = work / "re-a", work / "re-b"
    keys = [SigningKey((5000 + i).to_bytes(32, "big")) for i in range(feeds)]
    data = [make_feed(5000 + i, per_feed) for i in range(feeds)]
    authors = [bytes(k.verify_key) for k in keys]
    load_or_create_identity(a_dir)
    await fill_store(a_dir / "treechat.db", data)
    await follow_all(a_dir, authors)
    await follow_all(b_dir, authors)
    a = await Node.open(_config(a_dir), QUIET)
    b = await Node.open(_config(b_dir), QUIET)
    try:
        await a.start()
        await b.start()
        assert a.address is not None
        base = await _entries([a, b])
        await b.connect(a.address)
        await _converge([b], authors, per_feed, 60)
        await _settle([a, b])
        full = await _entries([a, b]) - base
        clock_size = len(b.scope.wanted) + len(a.scope.wanted)
        await _disconnect(a, b)

        base = await _entries([a, b])
        await b.connect(a.address)
        await _settle([a, b])
        unchanged = await _entries([a, b]) - base
        await _disconnect(a, b)

        changed = max(1, feeds // 100)
        new: list[Message] = []
        for i in range(changed):
            last = data[i][-1]
            head = decode_message(last)
            message = create_message(
                keys[i], head.seq + 1, head.id, head.timestamp + 1, post("changed", "bench")
            )
            result = await a.store.add_received([message.raw])
            new.extend(result.stored)
        assert a.manager is not None
        a.manager.local_messages(new)
        base = await _entries([a, b])
        await b.connect(a.address)
        await _converge([b], authors[:changed], per_feed + 1, 30)
        await _settle([a, b])
        one_percent = await _entries([a, b]) - base
    finally:
        await a.stop()
        await b.stop()
    share = unchanged / full if full else 0.0
    print(
        f"  clock entries sent (both sides, {feeds} feeds, full clocks hold {clock_size}):"
        f" first sync {full}, reconnect no change {unchanged} ({share:.2%} of the first)"
        f" [{'ok' if share <= 0.01 else 'above 1% target'}],"
        f" reconnect with {changed} feeds changed {one_percent}",
        flush=True,
    )


async def bench_mesh_reconnect(work: Path, rounds: int, count: int = 10) -> None:
    """Clock entries sent when every link of a 10-node mesh reconnects after live
    traffic has settled, against the entries of full opening clocks on every link."""
    edges = random_graph(count, 6, seed=11)
    paths = [work / f"mesh-{i}" for i in range(count)]
    ids, nodes = await _open_mesh(paths, QUIET)
    try:
        await _link_mesh(nodes, ids, edges)
        await _settle(nodes, 2.0)
        live_base = await _entries(nodes)
        rng = random.Random(5)
        for index in range(rounds):
            await nodes[rng.randrange(count)].post(f"live {index}", "general")
            await asyncio.sleep(0.05)
        top = {
            f: max(n.manager.replicator.local_clock.get(f, 0) for n in nodes if n.manager)
            for f in ids
        }
        deadline = time.monotonic() + 60
        while not all(
            n.manager.replicator.local_clock.get(f, 0) >= s for n in nodes for f, s in top.items()
        ):
            if time.monotonic() > deadline:
                raise RuntimeError("the mesh did not converge")
            await asyncio.sleep(0.05)
        await _settle(nodes, 2.0)  # acks and notes settle
        live = await _entries(nodes) - live_base
        clock_size = sum(
            len(nodes[u].manager.replicator.replicating)
            + len(nodes[v].manager.replicator.replicating)
            for u, v in edges
        )
        for u, v in edges:
            await _disconnect(nodes[u], nodes[v], clean=True)
        base = await _entries(nodes)
        for u, v in edges:
            address = nodes[v].address
            assert address is not None
            await nodes[u].connect(address)
        await _settle(nodes, 2.0)
        sent = await _entries(nodes) - base
    finally:
        for node in nodes:
            await node.stop()
    share = sent / clock_size if clock_size else 0.0
    print(
        f"  mesh of {count} nodes, {len(edges)} links, after {rounds} live messages settled:"
        f" reconnecting every link sent {sent} of {clock_size} clock entries ({share:.1%})"
        f" [{'ok' if share <= 0.05 else 'above 5% target'}]; clean closes, held-back notes"
        f" flushed; live traffic sent {live / max(1, rounds):.1f} note entries per message",
        flush=True,
    )


# ---------------------------------------------------------------- 1b. receive path, per message


def _cpu(step: Callable[[], object]) -> float:
    """Thread CPU seconds of one call (the load of other processes does not count)."""
    started = time.thread_time()
    step()
    return time.thread_time() - started


def receive_split(feeds: int, per_feed: int, whole: float | None, batch: int = 2000) -> None:
    """What the receiver spends per message, stage by stage, on one thread: box-stream
    open, frame decode, peek, the EBT core, decode_message (with its BLAKE2b hash),
    SQLite and bookkeeping in add_received, and the ed25519 verify it wraps. ``whole``:
    the receiver process's CPU seconds per message in the real sync, if measured."""
    import hashlib

    from net.boxstream import BoxStreamDecoder, BoxStreamEncoder
    from net.ebt import Replicator, StoreMessages
    from net.frames import FrameDecoder, encode_msgs_batches
    from store import db as db_module
    from store import verify as check
    from store.search import INDEX_NEW_POSTS
    from store.verify import check_all

    data = [make_feed(5000 + i, per_feed) for i in range(feeds)]
    order = [
        raw for start in range(0, per_feed, batch) for f in data for raw in f[start : start + batch]
    ]
    total = len(order)
    key, nonce = b"k" * 32, b"n" * 24
    sealer = BoxStreamEncoder(key, nonce)
    wire = [sealer.encrypt(f) for f in encode_msgs_batches(order)]
    cost: dict[str, float] = {}
    plain: list[bytes] = []
    frames: list[Any] = []
    peeked: list[tuple[bytes, int]] = []
    decoded: list[Message] = []
    opener, framer = BoxStreamDecoder(key, nonce), FrameDecoder()

    def open_all() -> None:
        for chunk in wire:
            plain.extend(opener.feed(chunk))

    def frame_all() -> None:
        for chunk in plain:
            frames.extend(framer.feed(chunk))

    def peek_all() -> None:
        for raw in order:
            peeked.append(peek_feed_seq(raw) or (b"", 0))

    def decode_all() -> None:
        for raw in order:
            decoded.append(decode_message(raw))

    cost["box-stream open"] = _cpu(open_all)
    cost["frame decode (msgpack)"] = _cpu(frame_all)
    cost["peek author/seq"] = _cpu(peek_all)
    authors = sorted({a for a, _ in peeked})
    core = Replicator(dict.fromkeys(authors, 0), authors)
    core.connect("peer", 0.0, initiator=False, record=None)
    core.receive_notes("peer", {a: 2 * per_feed for a in authors}, 0.0)

    seq_of = {raw: seq for (_, seq), raw in zip(peeked, order, strict=True)}

    def run_core() -> None:
        for start in range(0, total, batch):
            chunk = [
                (a, q, r)
                for (a, q), r in zip(
                    peeked[start : start + batch], order[start : start + batch], strict=True
                )
            ]
            for action in core.receive_messages("peer", chunk, 0.0):
                if isinstance(action, StoreMessages):
                    for raw in action.payloads:
                        core.stored(action.feed, seq_of[raw], raw, 0.0, source="peer")

    cost["EBT core (receive, stored)"] = _cpu(run_core)
    cost["decode_message (with hash)"] = _cpu(decode_all)
    cost["  of which BLAKE2b hash"] = _cpu(
        lambda: [hashlib.blake2b(r, digest_size=32).digest() for r in order]
    )

    async def store_all(search: bool) -> float:
        """Process CPU of add_received over the whole sync, verdicts given (verified
        ahead, as the node does), so what remains is decoding, SQLite and bookkeeping."""
        ok = dict.fromkeys(order, True)
        with tempfile.TemporaryDirectory() as tmp:
            async with await Store.open(Path(tmp) / "db.sqlite") as store:
                # measured apart: the full-text index of every post (a no-op in its place)
                setattr(db_module, "INDEX_NEW_POSTS", INDEX_NEW_POSTS if search else "SELECT ?")  # noqa: B010
                started = time.process_time()
                for start in range(0, total, batch):
                    part = order[start : start + batch]
                    await store.add_received(part, source=b"p" * 32, verdicts=ok)
                return time.process_time() - started

    runs: dict[bool, list[float]] = {True: [], False: []}
    for _ in range(3):  # interleaved, median of 3: one run of each drifts by several us
        for search in (True, False):
            runs[search].append(asyncio.run(store_all(search)))
    added, unindexed = statistics.median(runs[True]), statistics.median(runs[False])
    setattr(db_module, "INDEX_NEW_POSTS", INDEX_NEW_POSTS)  # noqa: B010 - put back
    verify_one = _cpu(lambda: [signature_ok(m) for m in decoded])
    cost["SQLite + bookkeeping (add_received)"] = added - cost["decode_message (with hash)"]
    cost["  of which the search index (FTS5)"] = added - unindexed
    walls: dict[int, list[float]] = {1: [], check.WORKERS: []}
    for _ in range(3):  # interleaved, median of 3
        for workers, rates in walls.items():
            started = time.perf_counter()
            for start in range(0, total, batch):
                check_all(decoded[start : start + batch], workers)
            rates.append(time.perf_counter() - started)
    rest = sum(v for k, v in cost.items() if not k.startswith("  "))
    print(
        f"  receive path per message, {feeds} x {per_feed} (CPU us/msg, one thread; load "
        f"{os.getloadavg()[0]:.1f}):",
        flush=True,
    )
    if whole is not None:  # the receiver's CPU in the real sync, minus the stages
        cost["event loop, sockets, node (the rest)"] = whole * total - rest - verify_one
        rest = whole * total - verify_one
    for label, seconds in cost.items():
        print(f"    {label:<38} {seconds / total * 1e6:7.1f}")
    print(f"    {'= everything but verification':<38} {rest / total * 1e6:7.1f}")
    print(f"    {'ed25519 verify, one core':<38} {verify_one / total * 1e6:7.1f}")
    one, every = (statistics.median(walls[w]) / total * 1e6 for w in (1, check.WORKERS))
    print(
        f"    verify wall us/msg, median of 3 interleaved: one core {one:.1f},"
        f" {check.WORKERS} cores {every:.1f} ({one / every:.2f}x)"
    )
    floor = _cpu(lambda: bare_insert(order, batch))
    print(
        f"    floor of any store: a bare SQLite insert of (author, seq, raw) rows, same"
        f" batches, {floor / total * 1e6:.1f} us/msg"
    )
    verdict = "less" if rest < verify_one else "MORE"
    print(f"    the rest costs {rest / verify_one:.2f}x the verification ({verdict})", flush=True)


def bare_insert(raws: Sequence[bytes], batch: int) -> None:
    """Store ``raws`` as plainly as SQLite can: one keyed table, WAL, no indexes."""
    with tempfile.TemporaryDirectory() as tmp:
        db = sqlite3.connect(Path(tmp) / "bare.sqlite", isolation_level=None)
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = NORMAL")
        db.execute("CREATE TABLE m (author BLOB, seq INTEGER, raw BLOB, PRIMARY KEY (author, seq))")
        for start in range(0, len(raws), batch):
            part = raws[start : start + batch]
            rows = [(*(peek_feed_seq(raw) or (b"", 0)), raw) for raw in part]
            db.execute("BEGIN")
            db.executemany("INSERT INTO m VALUES (?, ?, ?)", rows)
            db.execute("COMMIT")
        db.close()


# ---------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    parser.add_argument("--only", choices=["sync", "live", "reconnect"], default=None)
    args = parser.parse_args()
    scale = 20 if args.quick else 1
    work = Path(tempfile.mkdtemp(prefix="treechat-bench-"))
    try:
        if args.only in (None, "sync"):
            whole: dict[tuple[int, int], float] = {}
            print("initial sync, two serve processes on loopback:", flush=True)
            for label, feeds, per_feed in (
                ("1 x 50000", 1, 50_000 // scale),
                ("20 x 1000", 20, 1000 // scale),
                ("100 x 1000", 100, 1000 // scale),
            ):
                whole[(feeds, per_feed)] = bench_initial_sync(
                    label.replace(" ", ""), feeds, per_feed, work
                )
            for shape in ((1, 50_000 // scale), (100, 1000 // scale)):
                receive_split(*shape, whole.get(shape))
        if args.only in (None, "live"):
            print("live messages, 10 nodes in one process:", flush=True)
            rounds = 5 if args.quick else 60
            line = [(i, i + 1) for i in range(9)]
            asyncio.run(bench_live("line", line, 10, work, rounds, source_fixed=0))
            graph = random_graph(10, 6, seed=11)
            asyncio.run(bench_live("random", graph, 10, work, rounds, source_fixed=None))
            no_swap = NodeOptions(write_status=False, ebt=EbtConfig(swap=False))
            asyncio.run(
                bench_live("random no swap", graph, 10, work, rounds, None, options=no_swap)
            )
        if args.only in (None, "reconnect"):
            print("request skipping:", flush=True)
            asyncio.run(bench_reconnect(200 if not args.quick else 100, 3, work))
            print("mesh reconnect after live traffic:", flush=True)
            asyncio.run(bench_mesh_reconnect(work, 20 if args.quick else 60))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
