"""A private two-machine LAN for tests: two network namespaces joined by a veth pair.

Needs root and ``ip netns`` (CI here has both); `lan_or_skip` says why not otherwise.
The subnet is private and exists only inside the two namespaces. The names carry this
process's pid and a random tag, so two runs at once (or a stale name left by a killed
run) never meet. Both namespaces are removed, and every process in them killed, when
the test ends, however it ends. Reading a child's output never blocks without a bound
(`Lines`).
"""

from __future__ import annotations

import os
import queue
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.processes import ROOT, stop
from tests.sealed_site.sealed import child_env


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
        return self.run(command, log, env)

    def run(self, command: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen[str]:
        """`command` inside this namespace, from the repository's root; stderr to `log`."""
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


class Lines:
    """A child's stdout, line by line, read by a thread: `next` waits at most `limit`."""

    def __init__(self, proc: subprocess.Popen[str], log: Path) -> None:
        assert proc.stdout is not None
        self.proc, self.log = proc, log
        self._lines: queue.Queue[str | None] = queue.Queue()
        stdout = proc.stdout

        def pump() -> None:
            for line in stdout:
                self._lines.put(line.rstrip("\n"))
            self._lines.put(None)  # end of output

        threading.Thread(target=pump, daemon=True).start()

    def next(self, limit: float, what: str) -> str:
        """The next line; fails (with the child's log) after `limit` s or at its end."""
        try:
            line = self._lines.get(timeout=limit)
        except queue.Empty:
            raise AssertionError(f"{what}: no line after {limit} s\n{self.describe()}") from None
        if line is None:
            self._lines.put(None)  # still the end, for the next caller
            raise AssertionError(f"{what}: its output ended\n{self.describe()}")
        return line

    def describe(self) -> str:
        code = self.proc.poll()
        state = "running" if code is None else f"exited {code}"
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return f"{self.log} ({state}):\n{text[-4000:]}"


def unique_tag() -> str:
    """Our pid and a random part: namespace names no other run (or stale name) has."""
    return f"{os.getpid()}{secrets.token_hex(3)}"


@contextmanager
def loopback_machine() -> Iterator[Machine]:
    """One namespace with only loopback up: a machine with no network at all."""
    machine = Machine(f"tc{unique_tag()}l", "127.0.0.1")
    made = False
    try:
        ip("netns", "add", machine.ns)
        made = True
        ip("-n", machine.ns, "link", "set", "lo", "up")
        yield machine
    finally:
        for proc in machine.processes:
            stop(proc)
        if made:
            remove_namespace(machine.ns)


@contextmanager
def two_machines(prefix: int = 231) -> Iterator[tuple[Machine, Machine]]:
    """Namespaces A and B, veth A<->B on 10.PREFIX.N.0/24 (N from our pid), loopback up."""
    tag = unique_tag()
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
            remove_namespace(ns)


def remove_namespace(ns: str) -> None:
    """Kill whatever still runs in `ns` (by pid), then delete it."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        pids = subprocess.run(
            ["ip", "netns", "pids", ns], capture_output=True, text=True, timeout=20
        ).stdout.split()
        for pid in pids:
            try:
                os.kill(int(pid), sig)
            except (ProcessLookupError, ValueError):
                pass
        if pids and sig == signal.SIGTERM:
            time.sleep(0.5)  # a moment to stop cleanly before SIGKILL
    subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=20)
