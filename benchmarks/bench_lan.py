"""LAN benchmark: two nodes with default settings on a veth link between two network
namespaces (root and ``ip netns`` needed); prints discovery time and post latency.

    .venv/bin/python benchmarks/bench_lan.py              # 50 posts, 0.1 s apart
    .venv/bin/python benchmarks/bench_lan.py --posts 200

Each node runs in-process inside its namespace (this file with ``--node``), so times
are read from one clock with no subprocess in between: discovery time is from
``start()`` to the first connected ``lan`` link; post latency is from the sender's
``post()`` returning to the receiver storing that message (settled link, live posts,
one author, payload of a few bytes). The link is a veth pair: no real wire, so this is
treechat's own cost (mDNS timing, handshake, EBT, SQLite), not the network's.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from chat.config import load_config  # noqa: E402
from chat.identity import load_or_create_identity  # noqa: E402
from chat.node import Node, NodeOptions  # noqa: E402
from store.message import parse_feed_ref  # noqa: E402

LINK_LIMIT_S = 60.0


async def _async_node(data_dir: Path, peer_ref: str, role: str, posts: int, gap: float) -> None:
    """One side, inside its namespace: default config; prints `linked S`, then
    `sent SEQ T` (sender) or `got SEQ T` (receiver) lines."""
    peer = parse_feed_ref(peer_ref)
    node = await Node.open(load_config(data_dir=data_dir), NodeOptions(write_status=False))
    started = time.monotonic()
    got: dict[int, float] = {}
    all_got = asyncio.Event()

    def on_event(_: object) -> None:
        seq = node.local_seq(peer)
        now = time.time()
        for missing in range(len(got) + 1, seq + 1):
            got[missing] = now
        if len(got) >= posts:
            all_got.set()

    node.subscribe(on_event)
    await node.start()
    try:
        deadline = started + LINK_LIMIT_S
        while not any(p.key == peer and p.state == "connected" for p in node.peers()):
            if time.monotonic() > deadline:
                print("no link", flush=True)
                return
            await asyncio.sleep(0.005)
        print(f"linked {time.monotonic() - started:.3f}", flush=True)
        await asyncio.sleep(1.0)  # let the other side see the link too, and settle
        if role == "send":
            for _ in range(posts):
                entry = await node.post("ping", "general")
                print(f"sent {entry.seq} {time.time():.6f}", flush=True)
                await asyncio.sleep(gap)
            await asyncio.sleep(2.0)
        else:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(all_got.wait(), posts * gap + 20.0)
            for seq, at in sorted(got.items()):
                print(f"got {seq} {at:.6f}", flush=True)
    finally:
        await node.stop()


def _main_bench(posts: int, gap: float) -> int:
    from tests.netns import lan_or_skip, two_machines
    from tests.processes import stop

    try:
        lan_or_skip()
    except BaseException as exc:  # pytest's Skipped carries the reason
        print(f"bench_lan: cannot run here: {exc}")
        return 0
    import tempfile

    with tempfile.TemporaryDirectory() as tmp, two_machines(prefix=233) as (a, b):
        a_dir, b_dir = Path(tmp) / "a", Path(tmp) / "b"
        a_ref = load_or_create_identity(a_dir).ref
        b_ref = load_or_create_identity(b_dir).ref
        me = [sys.executable, str(Path(__file__).resolve()), "--node"]
        common = ["--posts", str(posts), "--gap", str(gap)]
        receiver = b.run_python([*me, str(b_dir), a_ref, "recv", *common], Path(tmp) / "b.log")
        sender = a.run_python([*me, str(a_dir), b_ref, "send", *common], Path(tmp) / "a.log")
        out_a, _ = sender.communicate(timeout=LINK_LIMIT_S + posts * gap + 60)
        out_b, _ = receiver.communicate(timeout=60)
        for proc in (sender, receiver):
            stop(proc)
    lines = out_a.splitlines() + out_b.splitlines()
    linked = [float(line.split()[1]) for line in lines if line.startswith("linked")]
    sent = {
        int(p[1]): float(p[2])
        for p in (line.split() for line in out_a.splitlines())
        if p[0] == "sent"
    }
    got = {
        int(p[1]): float(p[2])
        for p in (line.split() for line in out_b.splitlines())
        if p[0] == "got"
    }
    print("LAN: two default nodes in two namespaces joined by a veth pair (no real wire)")
    if len(linked) < 2:
        print("  no link within", LINK_LIMIT_S, "s:", lines)
        return 1
    print(f"  discovery to first lan link: {min(linked):.2f} s and {max(linked):.2f} s (a, b)")
    latency = sorted(1000 * (got[s] - sent[s]) for s in sent if s in got)
    if not latency:
        print("  no post arrived")
        return 1
    print(
        f"  post latency over {len(latency)} live posts ({gap * 1000:.0f} ms apart, settled link):"
        f" median {statistics.median(latency):.1f} ms, best {latency[0]:.1f} ms,"
        f" worst {latency[-1]:.1f} ms; {len(sent) - len(latency)} missing"
    )
    return 0


def _times(output: str, word: str) -> dict[int, float]:
    """`WORD SEQ T` lines -> {seq: t}."""
    parts = (line.split() for line in output.splitlines())
    return {int(p[1]): float(p[2]) for p in parts if len(p) == 3 and p[0] == word}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=50)
    parser.add_argument("--gap", type=float, default=0.1)
    parser.add_argument("--node", nargs=3, metavar=("DATA_DIR", "PEER", "ROLE"))
    args = parser.parse_args()
    if args.node:
        data_dir, peer, role = args.node
        asyncio.run(_async_node(Path(data_dir), peer, role, args.posts, args.gap))
        return 0
    return _main_bench(args.posts, args.gap)


if __name__ == "__main__":
    sys.exit(main())
