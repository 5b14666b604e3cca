"""Attacks by strangers, each for a while against a real node while an honest peer posts.

For every attack: the node's RSS growth, CPU, rows added to its database by strangers,
and the latency of an honest peer's posts (p50/p99) during the attack. Targets: RSS
growth under 50 MB, honest p99 under 1 s, 0 rows kept from strangers.

Conditions: node a (the target) and node b (honest, follows a over one live link) run
in this process on 127.0.0.1 with the default options; b's own traffic is a post by a
every 0.2 s, timed until b has stored it. The attacker runs in a child process with
fresh keys, dialling from 127.0.0.2 (its memory and CPU are not counted); RSS and CPU
are this process's, so they include the honest node b. Rows are counted in a's
database (messages not written by a, request-skipping records, remembered peers).

Run inside a loopback-only namespace:
  /work/shared/tools/inns .venv/bin/python -m benchmarks.bench_hostile [--seconds 30]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import sqlite3
import tempfile
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from nacl.signing import SigningKey

from chat.config import Config, HostPort
from chat.node import Node, NodeOptions
from net.frames import Clock, Msgs, Ping
from net.peer import PeerConnection
from net.server import DialError, async_dial

HOST = "127.0.0.1"
ATTACKER_HOST = "127.0.0.2"  # every attacker dials from here: a stranger's one address
MAX_ROUNDS = 1_000_000  # every attacker loop is bounded in count as well as in time


# -- the attacks (run in a child process) ---------------------------------------------


async def _dial(port: int, server: bytes) -> PeerConnection | None:
    try:
        return await async_dial(
            HOST, port, server, SigningKey.generate(), connect_timeout=2.0, local_host=ATTACKER_HOST
        )
    except (DialError, OSError):
        await asyncio.sleep(0.05)
        return None


async def _flood(port: int, server: bytes, until: float, frame: Callable[[], object]) -> None:
    """Dial with a fresh key and send `frame()` without reading; redial when cut off."""
    for _ in range(MAX_ROUNDS):
        if time.monotonic() > until:
            return
        conn = await _dial(port, server)
        if conn is None:
            continue
        for _ in range(MAX_ROUNDS):
            if conn.closed or time.monotonic() > until:
                break
            conn.send_frame(frame())  # type: ignore[arg-type]
            try:
                await asyncio.wait_for(conn.async_drain(), 1.0)
            except TimeoutError:
                await asyncio.sleep(0.01)
            if conn._reader.at_eof():  # the node hung up
                break
        conn._abort()


async def attack_copies(port: int, server: bytes, held: list[bytes], until: float) -> None:
    junk = [raw[:46] + b"\x00" * 80 for raw in held]
    batch = tuple((held + junk) * max(1, 500 // (2 * len(held))))
    await _flood(port, server, until, lambda: Msgs(batch))


async def attack_notes(port: int, server: bytes, held: list[bytes], until: float) -> None:
    await _flood(port, server, until, lambda: Clock({os.urandom(32): 15 for _ in range(20_000)}))


async def attack_pings(port: int, server: bytes, held: list[bytes], until: float) -> None:
    counter = iter(range(10**9))
    await asyncio.gather(
        *(_flood(port, server, until, lambda: Ping(next(counter))) for _ in range(5))
    )


async def attack_strangers(port: int, server: bytes, held: list[bytes], until: float) -> None:
    for _ in range(MAX_ROUNDS):  # handshake and leave, one fresh key after another
        if time.monotonic() > until:
            return
        conn = await _dial(port, server)
        if conn is not None:
            conn.close("goodbye")


async def attack_half_open(port: int, server: bytes, held: list[bytes], until: float) -> None:
    sockets: list[asyncio.StreamWriter] = []
    for _ in range(MAX_ROUNDS):  # keep 2,000 sockets open that never say a word
        if time.monotonic() > until:
            break
        sockets = [w for w in sockets if not w.is_closing()]
        if len(sockets) >= 2_000:
            await asyncio.sleep(0.05)
            continue
        try:
            _, writer = await asyncio.open_connection(HOST, port, local_addr=(ATTACKER_HOST, 0))
        except OSError:
            await asyncio.sleep(0.05)
            continue
        sockets.append(writer)
    for writer in sockets:
        writer.close()


ATTACKS: dict[str, Callable[[int, bytes, list[bytes], float], Coroutine[Any, Any, None]]] = {
    "copies": attack_copies,
    "notes": attack_notes,
    "strangers": attack_strangers,
    "pings": attack_pings,
    "half-open": attack_half_open,
}


def run_attack(name: str, port: int, server: bytes, held: list[bytes], seconds: float) -> None:
    """The child process: one attack until `seconds` have passed."""
    asyncio.run(ATTACKS[name](port, server, held, time.monotonic() + seconds))


# -- measuring (this process) -----------------------------------------------------------


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def stranger_rows(path: Path, own: bytes) -> int:
    """Rows in a's database that strangers could have caused."""
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        messages = db.execute("SELECT count(*) FROM messages WHERE author != ?", (own,))
        clocks = db.execute("SELECT count(*) FROM peer_clocks")
        peers = db.execute("SELECT count(*) FROM peers")
        return int(messages.fetchone()[0] + clocks.fetchone()[0] + peers.fetchone()[0])


async def honest_probe(a: Node, b: Node, until: float, latencies: list[float]) -> None:
    """a posts every 0.2 s; the time until b has it (10 s counts as lost)."""
    assert b.manager is not None
    clock = b.manager.replicator.local_clock
    for n in range(MAX_ROUNDS):
        if time.monotonic() > until:
            return
        started = time.monotonic()
        entry = await a.post(f"probe {n}", "general")
        for _ in range(2_000):  # polled every 5 ms, up to 10 s
            if clock.get(a.feed_id, 0) >= entry.seq:
                break
            await asyncio.sleep(0.005)
        latencies.append(time.monotonic() - started)
        await asyncio.sleep(0.2)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else float("nan")


async def one_attack(name: str, seconds: float, root: Path) -> None:
    def config(name: str) -> Config:
        return Config(data_dir=root / name, listen=HostPort(HOST, 0), discovery=False)

    a = await Node.open(config("a"), NodeOptions())
    await a.start()
    b = await Node.open(config("b"), NodeOptions())
    await b.start()
    try:
        assert a.address is not None and a.manager is not None
        await b.follow(a.feed_id)
        await b.connect(a.address)
        for i in range(5):
            await a.post(f"held {i}", "general")
        held = await a.store.get_range(a.feed_id, 1, 5)
        warm: list[float] = []
        await honest_probe(a, b, time.monotonic() + 2, warm)  # settle before measuring
        port = int(a.address.split(":")[2].split("~")[0])
        rows_before = stranger_rows(a.config.database_path, a.feed_id)
        rss_before, peak = rss_mb(), rss_mb()
        cpu_before, wall_before = time.process_time(), time.monotonic()
        child = multiprocessing.get_context("spawn").Process(
            target=run_attack, args=(name, port, a.feed_id, held, seconds), daemon=True
        )
        child.start()
        latencies: list[float] = []
        probe = asyncio.create_task(honest_probe(a, b, time.monotonic() + seconds, latencies))
        while not probe.done():
            peak = max(peak, rss_mb())
            await asyncio.sleep(0.5)
        await probe
        cpu = (time.process_time() - cpu_before) / (time.monotonic() - wall_before)
        child.join(10)
        if child.is_alive():
            child.kill()
        await asyncio.sleep(1.0)  # the node notices the attacker left
        rows = stranger_rows(a.config.database_path, a.feed_id) - rows_before
        counters = a.manager.counters
        growth = peak - rss_before
        p50, p99 = percentile(latencies, 0.5), percentile(latencies, 0.99)
        ok = growth < 50 and p99 < 1.0 and rows <= 0
        print(
            f"{name:<10} {growth:>7.1f} {cpu * 100:>5.0f}% {rows:>6} {p50 * 1000:>7.0f}"
            f" {p99 * 1000:>7.0f} {len(latencies):>5}  {'pass' if ok else 'FAIL'}   "
            f"cut off {counters.peers_cut_off}, unchecked copies"
            f" {counters.duplicates_unchecked}, turned away {a.connections.gate.turned_away},"
            f" remembered {len(a.manager.peer_stats)}, book {len(a.connections.book)},"
            f" refusals {len(a.connections.refusals)}/{a.connections.refused_total}",
            flush=True,
        )
    finally:
        await b.stop()
        await a.stop()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="length of each attack")
    parser.add_argument("--only", choices=sorted(ATTACKS), action="append")
    args = parser.parse_args()
    print(f"each attack {args.seconds:g} s; pair a (target) + b (honest) in this process")
    columns = ("RSS+MB", "CPU", "rows", "p50 ms", "p99 ms", "posts")
    print(f"{'attack':<10} " + " ".join(f"{c:>7}" for c in columns))
    for name in args.only or list(ATTACKS):
        with tempfile.TemporaryDirectory() as tmp:
            await one_attack(name, args.seconds, Path(tmp))
    print("(CPU: this process, nodes a and b, as a share of one core; targets: RSS+ < 50 MB,")
    print(" p99 < 1 s, 0 rows from strangers)")


if __name__ == "__main__":
    asyncio.run(main())
