"""How soon a peer dialled with --connect is redialled after it crashed and came back.

Conditions: node a (this process, default options: the real back-off of the manual
class, 1 s doubling to 10 s) dials peer p, a `treechat serve` process on a fixed
127.0.0.1 port, as `--connect` would. p is SIGKILLed CRASHES times; each time it stays
down for --down seconds (a's dials fail meanwhile), then starts again. Printed per
crash: the time from p listening again to a's link being up, and a's failure count for
p (without the cap the next try would be 2**failures seconds away). Target: every
return within 15 s, however often p crashed before.

Run inside a loopback-only namespace:
  /work/shared/tools/inns .venv/bin/python -m benchmarks.bench_reconnect [--down 2]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from chat.config import Config, HostPort
from chat.node import Node, NodeOptions
from net.address import parse_address
from tests.processes import free_port, serve

CRASHES = 10
TARGET = 15.0
GIVE_UP = 120.0  # a return not redialled within this counts as lost


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--down", type=float, default=2.0, help="seconds p stays down")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        listen = f"127.0.0.1:{free_port()}"
        proc, address = await asyncio.to_thread(serve, root / "p", listen=listen)
        config = Config(data_dir=root / "a", listen=HostPort("127.0.0.1", 0), discovery=False)
        a = await Node.open(config, NodeOptions(write_status=False))
        await a.start()
        waits: list[float] = []
        try:
            assert a.manager is not None
            manager, key = a.manager, parse_address(address).key
            await a.connect(address)
            print(f"{CRASHES} crashes of p, each down {args.down:g} s; a: default options")
            print(f"{'crash':>5} {'redialled after return':>24} {'failures':>9}")
            for crash in range(1, CRASHES + 1):
                proc.kill()
                await asyncio.to_thread(proc.wait, 10)
                for _ in range(2_000):  # until a sees the link gone (10 s at most)
                    if manager.session(key) is None:
                        break
                    await asyncio.sleep(0.005)
                await asyncio.sleep(args.down)
                proc, _ = await asyncio.to_thread(serve, root / "p", listen=listen)
                back = time.monotonic()
                for _ in range(int(GIVE_UP / 0.01)):
                    if manager.session(key) is not None:
                        break
                    await asyncio.sleep(0.01)
                waits.append(time.monotonic() - back)
                row = a.connections.book.get(key)
                failures = row.failures if row is not None else -1
                print(f"{crash:>5} {waits[-1]:>22.1f} s {failures:>9}", flush=True)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
            await a.stop()
    worst = max(waits)
    verdict = "pass" if worst <= TARGET else "FAIL"
    mean = sum(waits) / len(waits)
    print(f"worst {worst:.1f} s, mean {mean:.1f} s (target <= {TARGET:g} s) {verdict}")


if __name__ == "__main__":
    asyncio.run(main())
