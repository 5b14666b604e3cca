"""Sync benchmark: a fresh member joins a pub process holding many feeds; prints when
the newest message of every feed, the newest window of every feed and the full history
are stored, with msgs/s, peak RSS and bytes sent. Loopback only; prints figures only.

    .venv/bin/python benchmarks/bench_sync.py                 # 100 feeds x 10,000
    .venv/bin/python benchmarks/bench_sync.py --feeds 20 --per-feed 1000   # a smoke run
    .venv/bin/python benchmarks/bench_sync.py --history 1000  # a partial member
    .venv/bin/python benchmarks/bench_sync.py --push          # every feed pushed oldest first

Both nodes are ``serve`` processes; the member follows every feed and dials the pub.
Times are measured from the member's first connection (its status.json) by reading the
member's database read-only every 50 ms. The pub's database is generated once per size
and cached under the system temp directory (signing a million messages takes a while).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.bench_replication import (  # noqa: E402
    author_of,
    fill_store,
    follow_all,
    make_feed,
    proc_stats,
    read_snapshot,
    start_serve,
    stop,
)
from chat.config import DEFAULT_HISTORY  # noqa: E402
from chat.identity import load_or_create_identity  # noqa: E402
from store.db import Store  # noqa: E402

# A member replicating the way it did before newest first: every feed pushed to it
# oldest first by the EBT core (no range requests). The same serve, other options.
PUSH_MEMBER = (
    "import sys, chat.node, chat.options\n"
    "opened = chat.node.Node.open.__func__\n"
    "async def open_push(cls, config, options=None):\n"
    "    return await opened(cls, config, chat.options.NodeOptions(newest_first=False))\n"
    "chat.node.Node.open = classmethod(open_push)\n"
    "from chat.cli import main\n"
    "sys.exit(main())\n"
)
WINDOW = 100  # the "newest window" measured, in messages per feed
POLL = 0.05
LIMIT_S = 900.0


def _pub_cache(feeds: int, per_feed: int) -> tuple[Path, list[bytes]]:
    """A pub data directory holding `feeds` x `per_feed` messages (built once, cached)."""
    cache = Path(tempfile.gettempdir()) / f"treechat-bench-sync-{feeds}x{per_feed}"
    authors_file = cache / "authors"
    if authors_file.exists():
        # Bring a cache made by older code to today's schema once, not in every run's
        # pub (a new index over a million messages is built at its first open).
        asyncio.run(_migrate(cache / "treechat.db"))
        raw = authors_file.read_bytes()
        return cache, [raw[i : i + 32] for i in range(0, len(raw), 32)]
    shutil.rmtree(cache, ignore_errors=True)
    building = cache.with_suffix(".building")
    shutil.rmtree(building, ignore_errors=True)
    building.mkdir(parents=True)
    started = time.perf_counter()
    authors: list[bytes] = []
    load_or_create_identity(building)
    for start in range(0, feeds, 10):
        data = [make_feed(20_000 + i, per_feed) for i in range(start, min(feeds, start + 10))]
        authors.extend(author_of(raws) for raws in data)
        asyncio.run(fill_store(building / "treechat.db", data))
    asyncio.run(follow_all(building, authors))
    (building / "authors").write_bytes(b"".join(authors))
    building.rename(cache)
    spent = time.perf_counter() - started
    print(f"  prepared the pub: {feeds * per_feed} messages in {spent:.0f} s")
    return cache, authors


async def _migrate(db: Path) -> None:
    async with await Store.open(db):
        pass


def _progress(db: Path, authors: list[bytes], per_feed: int, window: int) -> tuple[int, int, int]:
    """(feeds holding their newest message, feeds holding the newest window, messages held),
    from the member's held ranges: a read of one row per range, so polling every 50 ms
    does not take a core from the two processes measured (counting the messages did)."""
    uri = f"file:{db}?mode=ro"
    wanted = set(authors)
    low = max(1, per_feed - window + 1)
    newest = windows = held = 0
    try:
        with sqlite3.connect(uri, uri=True, timeout=1.0) as conn:
            rows = conn.execute("SELECT author, first, last FROM feed_ranges").fetchall()
    except sqlite3.Error:
        return 0, 0, 0
    conn.close()
    for author, first, last in rows:
        if author not in wanted:
            continue
        held += last - first + 1
        if last >= per_feed:
            newest += 1
            windows += first <= low
    return newest, windows, held


def _write_history(member: Path, history: str) -> None:
    if history:
        (member / "config.toml").write_text(f'history = "{history}"\n')


def run(feeds: int, per_feed: int, history: str, window: int, limit: float, push: bool) -> None:
    pub_cache, authors = _pub_cache(feeds, per_feed)
    work = Path(tempfile.mkdtemp(prefix="treechat-bench-sync-"))
    try:
        pub_dir, member_dir = work / "pub", work / "member"
        shutil.copytree(pub_cache, pub_dir)
        asyncio.run(follow_all(member_dir, authors))
        _write_history(member_dir, history)
        total = feeds * per_feed
        if push:
            history = "all"  # the push path fetches everything
        keep = DEFAULT_HISTORY if history == "" else None if history == "all" else int(history)
        expect = total if keep is None else feeds * min(per_feed, keep)
        pub, address = start_serve(pub_dir, [])
        member, _ = start_serve(
            member_dir, [address], ("-c", PUSH_MEMBER) if push else ("-m", "chat")
        )
        t_newest = t_window = t_full = None
        spent, held_at_end = 0.0, 0
        try:
            deadline = time.monotonic() + limit
            started: float | None = None
            last_print = time.time()
            db = member_dir / "treechat.db"
            while time.monotonic() < deadline:
                if started is None:
                    snapshot = read_snapshot(member_dir)
                    if snapshot and snapshot.get("timing", {}).get("first_connected_at"):
                        started = snapshot["timing"]["first_connected_at"]
                newest, windows, held = _progress(db, authors, per_feed, window)
                now = time.time()
                if started is not None and now - last_print >= 10:
                    last_print = now
                    print(
                        f"    {now - started:5.0f} s: newest of {newest} feeds,"
                        f" windows of {windows}, {held} msgs",
                        flush=True,
                    )
                if started is not None:
                    if t_newest is None and newest >= feeds:
                        t_newest = now - started
                    if t_window is None and windows >= feeds:
                        t_window = now - started
                    if t_full is None and held >= expect:
                        t_full = now - started
                        break
                if member.poll() is not None or pub.poll() is not None:
                    raise RuntimeError(f"a serve process died; see serve.log in {work}")
                time.sleep(POLL)
            else:
                print(f"    not finished within {limit:.0f} s", flush=True)
            if started is not None:
                spent = time.time() - started
                held_at_end = _progress(db, authors, per_feed, window)[2]
            time.sleep(1.2)  # let both status writers catch the final counters
            member_stats, pub_stats = proc_stats(member.pid), proc_stats(pub.pid)
            pub_snapshot = read_snapshot(pub_dir) or {}
            member_snapshot = read_snapshot(member_dir) or {}
        finally:
            stop(member)
            stop(pub)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    sent = pub_snapshot.get("counters", {}).get("bytes_sent", -1)
    stored = member_snapshot.get("counters", {}).get("msgs_stored", -1)
    label = history or f"{DEFAULT_HISTORY} (the default)"
    if push:
        label += ", pushed oldest first (no range requests: the path before newest first)"
    rate = expect / t_full if t_full else held_at_end / spent if spent else 0.0

    def fmt(value: float | None) -> str:
        return "   n/a" if value is None else f"{value:6.2f} s"

    print(
        f"  {feeds} feeds x {per_feed} msgs, member history = {label}:\n"
        f"    newest message of every feed stored after {fmt(t_newest)}"
        f" [{'ok' if t_newest is not None and t_newest < 2 else 'above 2 s target'}]\n"
        f"    newest {window} of every feed stored after     {fmt(t_window)}\n"
        f"    everything wanted ({expect} msgs) stored after {fmt(t_full)}"
        f" ({held_at_end} held after {spent:.0f} s) = {rate:,.0f} msgs/s\n"
        f"    pub sent {sent / 1e6:.1f} MB (all frame bytes); member stored {stored} msgs\n"
        f"    peak RSS pub {pub_stats.peak_rss_mb:.0f} MB,"
        f" member {member_stats.peak_rss_mb:.0f} MB;"
        f" cpu pub {pub_stats.cpu_s:.1f} s, member {member_stats.cpu_s:.1f} s",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--feeds", type=int, default=100)
    parser.add_argument("--per-feed", type=int, default=10_000)
    parser.add_argument("--history", default="", help="the member's history setting")
    parser.add_argument("--window", type=int, default=WINDOW)
    parser.add_argument("--limit", type=float, default=LIMIT_S, help="give up after (s)")
    parser.add_argument(
        "--push", action="store_true", help="the member takes every feed by push, oldest first"
    )
    args = parser.parse_args()
    print("sync, a fresh member joins a pub (two serve processes on loopback):", flush=True)
    run(args.feeds, args.per_feed, args.history, args.window, args.limit, args.push)


if __name__ == "__main__":
    main()
