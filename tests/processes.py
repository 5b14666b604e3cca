"""Helpers for tests that run `python -m chat ...` as real processes (sealed, see conftest)."""

from __future__ import annotations

import json
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
