"""Child process for tests/test_full_disk.py: a real node on a small tmpfs that really fills up.

Usage, as root inside a private mount namespace (so the mount ends with this process,
whatever happens): ``unshare --mount --propagation private python -m tests.full_disk
MOUNT WORK``. Mounts a small tmpfs at MOUNT and runs node t with its data dir there;
node a (in WORK) posts, t stores, node c (in WORK) replicates from t. The tmpfs is then
filled until SQLite says "database or disk is full", a posts on, c dials t, the space is
freed, and everything a test needs to judge is printed as one JSON line on stdout.
"""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import json
import logging
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from chat.identity import load_or_create_identity
from chat.status import STALE_AFTER, format_status, read_status
from tests.nodes import FAST, open_node, wait_until
from tests.test_crash import check_database
from tests.test_node import prefill, seq_of

TMPFS_SIZE = "16m"  # room for the database and its WAL before the filler takes the rest
HELD = 3  # posts t stores before the disk fills
WHILE_FULL = 8  # posts of a that t must store after the space is freed
CHUNK = 64 * 1024


class Lines(logging.Handler):
    """Every log record of level WARNING and above: its text and whether it had a traceback."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.seen: list[tuple[str, str, bool]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.seen.append((record.name, record.getMessage(), record.exc_info is not None))


def fill(mount: Path) -> int:
    """Write a filler file until the tmpfs has no room left, to the last byte; its size."""
    size = 0
    with (mount / "filler").open("wb", buffering=0) as filler:
        for chunk in (CHUNK, 1):
            for _ in range(20_000):  # 1.3 GB at most; a 16 MiB tmpfs is full long before
                try:
                    size += filler.write(b"\0" * chunk) or 0
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC, exc
                    break
            else:
                raise AssertionError("the tmpfs never filled up")
    return size


async def run(mount: Path, work: Path) -> dict[str, Any]:
    lines = Lines()
    logging.getLogger().addHandler(lines)
    logging.getLogger().setLevel(logging.INFO)
    report: dict[str, Any] = {}
    a_id = load_or_create_identity(work / "a").feed_id
    for path in (mount / "t", work / "c"):
        await prefill(path, 0, [a_id])
    a = await open_node(work / "a")
    options = dataclasses.replace(FAST, write_status=True, status_interval=0.1)
    t = await open_node(mount / "t", options)
    c = None
    try:
        manager = t.manager
        assert manager is not None and a.address is not None and t.address is not None
        manager.store_fault.retry_max = 0.2  # quick retries; the real back-off is tested apart
        attempts = 0
        add_received = t.store.add_received

        async def counted(*args: Any, **kwargs: Any) -> Any:
            nonlocal attempts
            attempts += 1
            try:
                return await add_received(*args, **kwargs)
            except Exception as exc:  # what SQLite itself said, under the store's words
                report.setdefault("sqlite_said", str(exc.__cause__ or exc.__context__))
                raise

        t.store.add_received = counted  # type: ignore[method-assign]
        await t.connect(a.address)
        for i in range(HELD):
            await a.post(f"held {i}", "general")
        await wait_until(lambda: seq_of(t, a_id) == HELD, what="t holds a's first posts")
        report["filler"] = fill(mount)
        for i in range(WHILE_FULL):
            await a.post(f"while full {i} " + "x" * 3_000, "general")
        await wait_until(lambda: manager.store_error is not None, 30, "the disk full")
        tried = attempts
        await wait_until(lambda: attempts >= tried + 4, 30, "four more tries")
        report["store_error"] = manager.store_error
        report["status_error"] = t.status_snapshot()["store_error"]
        # `treechat status` reads a file t can no longer rewrite: it must not say "running".
        later = time.time() + STALE_AFTER + 1
        report["status_words"] = format_status(read_status(mount / "t", now=later))
        report["held_while_full"] = seq_of(t, a_id)
        # Another peer is still served what t holds.
        c = await open_node(work / "c")
        await c.connect(t.address)
        await wait_until(lambda: seq_of(c, a_id) == HELD, 30, "c served while t is full")
        report["c_while_full"] = seq_of(c, a_id)
        stats = manager.peer_stats.get(a.feed_id)
        report["a_blamed"] = stats.last_error if stats is not None else None
        report["a_distrusted"] = a.feed_id in manager.forked
        (mount / "filler").unlink()
        everything = HELD + WHILE_FULL
        await wait_until(lambda: seq_of(t, a_id) == everything, 30, "t stores the rest")
        await wait_until(lambda: seq_of(c, a_id) == everything, 30, "c gets the rest from t")
        report["held_after"] = seq_of(t, a_id)
        report["c_after"] = seq_of(c, a_id)
        report["store_error_after"] = manager.store_error
        report["attempts"] = attempts
    finally:
        for node in (c, t, a):
            if node is not None:
                await node.stop()
    report["t_heads"] = {k.hex(): v for k, v in check_database(mount / "t" / "treechat.db").items()}
    report["lines"] = [[name, text, tb] for name, text, tb in lines.seen]
    return report


def main() -> None:
    mount, work = Path(sys.argv[1]), Path(sys.argv[2])
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE},mode=0700", "tmpfs", str(mount)],
        check=True,
    )
    print(json.dumps(asyncio.run(run(mount, work))), flush=True)


if __name__ == "__main__":
    main()
