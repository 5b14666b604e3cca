"""A private two-machine LAN for tests: two network namespaces joined by a veth pair.

Needs root and ``ip netns`` (CI here has both); `lan_or_skip` says why not otherwise.
The subnet is private and exists only inside the two namespaces; both are removed,
and every process started in them killed by pid, when the test ends.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.sealed_site.sealed import child_env

ROOT = Path(__file__).resolve().parent.parent


def lan_or_skip() -> None:
    """Skip the test (with the reason) where namespaces cannot be made."""
    if os.geteuid() != 0:
        pytest.skip("a LAN of network namespaces needs root")
    if shutil.which("ip") is None:
        pytest.skip("a LAN of network namespaces needs the `ip` command (iproute2)")


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=20)


@dataclass
class Machine:
    """One namespace: its name, its LAN address, the processes started in it."""

    ns: str
    address: str
    processes: list[subprocess.Popen[str]] = field(default_factory=list)

    def start(
        self, data_dir: Path, *args: str, sealed: bool = True, log: str = "serve.log"
    ) -> subprocess.Popen[str]:
        """`python -m chat --data-dir DATA_DIR ARGS` inside this namespace."""
        data_dir.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "chat", "--data-dir", str(data_dir), *args]
        return self.run_python(command, data_dir / log, sealed=sealed)

    def run_python(
        self, command: list[str], log: Path, *, sealed: bool = True
    ) -> subprocess.Popen[str]:
        env = child_env(ROOT) if sealed else {**os.environ, "PYTHONPATH": str(ROOT)}
        proc = subprocess.Popen(
            ["ip", "netns", "exec", self.ns, *command],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=open(log, "w"),  # noqa: SIM115 - lives as long as the process
            text=True,
            env=env,
        )
        self.processes.append(proc)
        return proc


@contextmanager
def two_machines(prefix: int = 231) -> Iterator[tuple[Machine, Machine]]:
    """Namespaces A and B, veth A<->B on 10.PREFIX.N.0/24 (N from our pid), loopback up."""
    tag = f"{os.getpid() % 10000}"
    subnet = f"10.{prefix}.{os.getpid() % 250}"
    a = Machine(f"tc{tag}a", f"{subnet}.1")
    b = Machine(f"tc{tag}b", f"{subnet}.2")
    made: list[str] = []
    try:
        for machine in (a, b):
            ip("netns", "add", machine.ns)
            made.append(machine.ns)
            ip("-n", machine.ns, "link", "set", "lo", "up")
        ip("link", "add", "veth0", "netns", a.ns, "type", "veth", "peer", "veth0", "netns", b.ns)
        for machine in (a, b):
            ip("-n", machine.ns, "addr", "add", f"{machine.address}/24", "dev", "veth0")
            ip("-n", machine.ns, "link", "set", "veth0", "up")
        yield a, b
    finally:
        for machine in (a, b):
            for proc in machine.processes:
                stop(proc)
        for ns in made:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=20)


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
