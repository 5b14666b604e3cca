"""SIGKILL a writing process at random moments: every feed stays a valid prefix."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from nacl.signing import SigningKey

from store.db import Store
from store.message import decode_message, validate_run

ROOT = Path(__file__).resolve().parent.parent
KILLS = 20


def check_database(path: Path) -> dict[bytes, int]:
    """Integrity, valid chains from seq 1, heads matching messages, views matching posts."""
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        heads = {a: (s, i) for a, s, i in db.execute("SELECT author, seq, id FROM feeds")}
        authors = {a for (a,) in db.execute("SELECT DISTINCT author FROM messages")}
        assert authors == set(heads), "feeds table and messages table disagree"
        expected_posts: set[tuple[bytes, int]] = set()
        for author, (head_seq, head_id) in heads.items():
            rows = db.execute(
                "SELECT seq, id, raw FROM messages WHERE author = ? ORDER BY seq", (author,)
            ).fetchall()
            assert [seq for seq, _, _ in rows] == list(range(1, head_seq + 1))
            messages = validate_run(None, [raw for _, _, raw in rows])
            assert [m.id for m in messages] == [msg_id for _, msg_id, _ in rows]
            assert messages[-1].id == head_id
            for message in messages:
                if isinstance(message.content, dict) and message.content["type"] == "post":
                    expected_posts.add((message.author, message.seq))
        indexed = set(db.execute("SELECT author, seq FROM messages WHERE channel IS NOT NULL"))
        assert indexed == expected_posts, "the posts timeline disagrees with the messages"
        (upto,) = db.execute(
            "SELECT coalesce(max(value), 0) FROM meta WHERE key = 'ids_indexed_upto'"
        ).fetchone()
        indexed_ids = set(db.execute("SELECT id, msg_rowid FROM message_ids"))
        expected_ids = set(db.execute("SELECT id, rowid FROM messages WHERE rowid <= ?", (upto,)))
        assert indexed_ids == expected_ids, "the message id index disagrees with the messages"
        names = {a: s for a, s in db.execute("SELECT author, seq FROM names")}
        for author, seq in names.items():
            assert seq <= heads[author][0], "a name view row points past its feed head"
        return {author: seq for author, (seq, _) in heads.items()}


async def append_after_crash(path: Path) -> None:
    store = await Store.open(path)
    try:
        key = SigningKey(b"o" * 32)
        before = await store.head(bytes(key.verify_key))
        message = await store.append_own(key, {"type": "post", "text": "after", "channel": "x"})
        assert before is not None and message.seq == before.seq + 1
        assert decode_message((await store.get_range(message.author, message.seq, 1))[0]) == message
    finally:
        await store.close()


def test_sigkill_at_random_points_leaves_every_feed_valid(tmp_path: Path) -> None:
    path = tmp_path / "crash.sqlite"
    rng = random.Random(20261121)
    # Messages known to be committed: what the last check saw plus the child's first
    # append, which it commits before saying "ready".
    committed = 0
    for round_no in range(KILLS):
        child = subprocess.Popen(
            [sys.executable, "-m", "tests.crash_writer", str(path), str(round_no)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            assert child.stdout is not None
            line = child.stdout.readline()
            assert line == b"ready\n", child.stderr.read() if child.stderr else b""
            time.sleep(rng.uniform(0.0, 0.25))
            os.kill(child.pid, signal.SIGKILL)
            _, err = child.communicate(timeout=10)
            assert child.returncode == -signal.SIGKILL, err.decode(errors="replace")
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
        # The next child's "ready" (after its first append) shows that appending
        # continues after this crash; after the last one we append ourselves.
        clock = check_database(path)
        total = sum(clock.values())
        assert total >= committed + 1, "a committed message was lost"
        committed = total
    asyncio.run(append_after_crash(path))
    check_database(path)
