"""Helpers for tests that run `python -m chat ...` as real processes (sealed, see conftest)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.sealed_site.sealed import child_env

ROOT = Path(__file__).resolve().parent.parent


def stop(proc: subprocess.Popen[str]) -> None:
    """SIGTERM (a clean stop), SIGKILL after 10 s."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (for a peer that must come back
    on the same port)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve(
    data_dir: Path, *connect: str, listen: str = "127.0.0.1:0"
) -> tuple[subprocess.Popen[str], str]:
    """`treechat serve` on loopback (no discovery), dialling `connect`; returns the process
    once it listens, and its address. Its log goes to DATA_DIR/serve.log."""
    args = [sys.executable, "-m", "chat", "--data-dir", str(data_dir), "serve"]
    args += ["--listen", listen, "--no-discovery", "--interface", "127.0.0.1"]
    for address in connect:
        args += ["--connect", address]
    data_dir.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        args,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=open(data_dir / "serve.log", "a"),  # noqa: SIM115 - lives as long as the process
        text=True,
        env=child_env(ROOT),
    )
    assert proc.stdout is not None
    address = proc.stdout.readline().strip()
    assert address.startswith("net:127.0.0.1:"), (data_dir / "serve.log").read_text()
    return proc, address


def treechat(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """A short command (post, log, status, peers...) on `data_dir`; no network needed."""
    return subprocess.run(
        [sys.executable, "-m", "chat", "--data-dir", str(data_dir), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        env=child_env(ROOT),
    )


def status(data_dir: Path) -> dict[str, Any] | None:
    result = treechat(data_dir, "status", "--json")
    if result.returncode != 0:
        return None
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def eventually(check: Callable[[], Any], limit: float = 60.0, what: str = "") -> Any:
    """Poll `check` every 0.2 s until it returns something true; fail after `limit` s."""
    deadline = time.monotonic() + limit
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {limit} s waiting for {what or check}")
        time.sleep(0.2)
