"""`treechat serve` and `treechat status` as real processes on loopback."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from chat.identity import load_or_create_identity
from tests.processes import eventually, serve, status, treechat
from tests.sealed_site.sealed import child_env

ROOT = Path(__file__).resolve().parent.parent


def _env() -> dict[str, str]:
    return child_env(ROOT)


def logged_connected(log: Path) -> bool:
    return "treechat.peers: connected: " in log.read_text()


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_serve_status_post_and_kill(tmp_path: Path, processes: list[subprocess.Popen[str]]) -> None:
    a_dir, b_dir = tmp_path / "a", tmp_path / "b"
    a_ref = load_or_create_identity(a_dir).ref
    b_ref = load_or_create_identity(b_dir).ref
    assert treechat(b_dir, "post", "hello from b").returncode == 0
    a, a_address = serve(a_dir)
    processes.append(a)
    # b follows a by writing a contact through the Store the way `post` does.
    _follow(b_dir, a_ref)
    _follow(a_dir, b_ref)
    b, b_address = serve(b_dir, a_address)
    processes.append(b)
    assert b_address.endswith(b_ref[1:-8])

    def b_linked() -> dict[str, Any] | None:
        snapshot = status(b_dir)
        if snapshot is None or not snapshot["peers"]:
            return None
        peer = snapshot["peers"][0]
        return snapshot if peer["state"] == "connected" and peer["rtt_ms"] is not None else None

    snapshot = eventually(b_linked)
    # Each side logs the peer once: a line a person watching `serve` can read.
    for log in (a_dir / "serve.log", b_dir / "serve.log"):
        eventually(partial(logged_connected, log))
        assert log.read_text().count("treechat.peers: connected: ") == 1
    assert snapshot["address"] == b_address
    assert snapshot["peers"][0]["key"] == a_ref
    # A post written by another process on a's data dir reaches b through a.
    assert treechat(a_dir, "post", "written while serving").returncode == 0

    def b_has_it() -> bool:
        result = treechat(b_dir, "log", "--json")
        return "written while serving" in result.stdout

    eventually(b_has_it)
    human = treechat(b_dir, "status")
    assert human.returncode == 0
    assert "eager in" in human.stdout and a_ref[1:9] in human.stdout
    # Kill a abruptly: b notices, keeps running and says so in its status.
    a.send_signal(signal.SIGKILL)
    a.wait(10)

    def b_lost_a() -> bool:
        snapshot = status(b_dir)
        return snapshot is not None and snapshot["peers"][0]["state"] != "connected"

    eventually(b_lost_a)
    # ... logs it, and the redial that fails, each once (the cause in words).
    b_log = b_dir / "serve.log"
    eventually(lambda: "treechat.peers: disconnected: " in b_log.read_text(), what="disconnected")
    eventually(lambda: "treechat.peers: could not connect: " in b_log.read_text(), what="failed")
    assert b_log.read_text().count("treechat.peers: disconnected: ") == 1
    (failed,) = [line for line in b_log.read_text().splitlines() if "could not connect" in line]
    assert "connection refused" in failed, failed
    assert b.poll() is None
    b.send_signal(signal.SIGTERM)
    assert b.wait(15) == 0
    gone = treechat(b_dir, "status")
    assert gone.returncode == 1 and "no running node" in gone.stderr


def _follow(data_dir: Path, ref: str) -> None:
    code = (
        "import asyncio, sys\n"
        "from pathlib import Path\n"
        "from chat.content import contact\n"
        "from chat.identity import load_or_create_identity\n"
        "from store.db import Store\n"
        "from store.message import parse_feed_ref\n"
        "async def main():\n"
        "    d = Path(sys.argv[1])\n"
        "    me = load_or_create_identity(d)\n"
        "    async with await Store.open(d / 'treechat.db') as s:\n"
        "        await s.append_own(me.signing_key, contact(parse_feed_ref(sys.argv[2]),"
        " following=True))\n"
        "asyncio.run(main())\n"
    )
    subprocess.run(
        [sys.executable, "-c", code, str(data_dir), ref], cwd=ROOT, check=True, env=_env()
    )


def test_serve_on_a_port_in_use_is_one_clear_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "chat",
                "--data-dir",
                str(tmp_path),
                "serve",
                "--listen",
                f"127.0.0.1:{port}",
                "--no-discovery",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == (
        f"treechat: error: cannot listen on 127.0.0.1:{port}: Address already in use"
    )
