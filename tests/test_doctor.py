"""`treechat doctor`: each check against its failing condition made for real, and the
pure verdicts for the conditions a test cannot make (a slow clock, a small terminal)."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chat.cli import main
from chat.config import DEFAULT_PORT
from chat.content import post
from chat.doctor import Finding, Level, exit_status, report_lines
from chat.doctor.files import DatabaseFacts, judge_database
from chat.doctor.network import DiscoveryFacts, InterfaceFacts, judge_discovery, parse_routes
from chat.doctor.peers import Remembered, StoreFacts, judge_clock, judge_remembered
from chat.doctor.terminal import TerminalFacts, judge_terminal
from chat.identity import Identity, load_or_create_identity
from chat.status import write_status
from store.db import Store
from store.message import create_message
from tests.sealed_site import sealed

REPO = Path(__file__).resolve().parent.parent
IS_ROOT = os.geteuid() == 0


def write_config(data_dir: Path, **settings: Any) -> None:
    """A loopback config (every test names its address) plus ``settings``."""
    values: dict[str, Any] = {
        "listen": "127.0.0.1:0",
        "interfaces": ["127.0.0.1"],
        **settings,
    }
    data_dir.mkdir(mode=0o700, exist_ok=True)
    lines = [f"{key} = {json.dumps(value)}" for key, value in values.items()]
    (data_dir / "config.toml").write_text("\n".join(lines) + "\n")


def doctor(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, Any]]:
    """Run ``treechat doctor --json`` in-process; (exit status, the JSON report)."""
    status = main(["--data-dir", str(data_dir), "doctor", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert report["exit_status"] == status
    return status, report


def finding(report: dict[str, Any], check: str) -> dict[str, str]:
    (found,) = [c for c in report["checks"] if c["check"] == check]
    return dict(found)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    path = tmp_path / "data"
    write_config(path)
    load_or_create_identity(path)
    return path


# ------------------------------------------------------------------- data dir and secret


def test_a_secret_others_can_read_is_a_problem(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = data_dir / "secret"
    status, report = doctor(data_dir, capsys)
    assert finding(report, "secret")["level"] == "ok"

    secret.chmod(0o644)
    status, report = doctor(data_dir, capsys)
    assert status == 2
    found = finding(report, "secret")
    assert found["level"] == "problem"
    assert "has mode 0644: anyone who can read it can write as you" in found["summary"]
    assert found["fix"] == f"chmod 600 {secret}"


def test_an_open_data_dir_is_a_warning_and_the_human_report_says_the_fix(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir.chmod(0o755)
    status = main(["--data-dir", str(data_dir), "doctor"])
    out = capsys.readouterr().out
    assert status >= 1
    line = next(line for line in out.splitlines() if line.startswith("warning  data dir"))
    assert "open to other users (mode 0755)" in line
    assert f"fix: chmod 700 {data_dir}" in out


# ----------------------------------------------------------------------------- database


def make_database(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    assert main(["--data-dir", str(data_dir), "post", "hello"]) == 0
    capsys.readouterr()
    return data_dir / "treechat.db"


@pytest.fixture
def read_only(tmp_path: Path) -> Iterator[list[Path]]:
    """Paths made read-only for real: immutable for root (who ignores modes), else 0444."""
    made: list[Path] = []
    yield made
    for path in made:
        if IS_ROOT:
            subprocess.run(["chattr", "-i", str(path)], check=False)
        path.chmod(0o644)


def test_a_read_only_database_is_a_problem(
    data_dir: Path, capsys: pytest.CaptureFixture[str], read_only: list[Path]
) -> None:
    database = make_database(data_dir, capsys)
    status, report = doctor(data_dir, capsys)
    assert finding(report, "database")["level"] == "ok"
    assert finding(report, "integrity")["summary"] == "quick check passed"

    if IS_ROOT:
        if shutil.which("chattr") is None:
            pytest.skip("root ignores file modes and chattr is not installed")
        made = subprocess.run(["chattr", "+i", str(database)], capture_output=True, text=True)
        if made.returncode != 0:
            pytest.skip(f"this file system cannot make a file immutable: {made.stderr}")
    else:
        database.chmod(0o444)
    read_only.append(database)
    status, report = doctor(data_dir, capsys)
    assert status == 2
    found = finding(report, "database")
    assert found["level"] == "problem"
    assert "opens but cannot be written: attempt to write a readonly database" in found["summary"]
    assert "chmod u+w" in found["fix"]


def test_a_damaged_database_fails_the_quick_check(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    database = make_database(data_dir, capsys)
    with sqlite3.connect(database) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        page_size = db.execute("PRAGMA page_size").fetchone()[0]
        pages = db.execute("PRAGMA page_count").fetchone()[0]
    db.close()
    with database.open("r+b") as handle:  # scribble over every b-tree page header but the first
        for page in range(1, pages):
            handle.seek(page * page_size)
            handle.write(b"\xa5" * 12)
    status, report = doctor(data_dir, capsys)
    assert status == 2
    found = finding(report, "integrity")
    assert found["level"] == "problem"
    assert found["summary"].startswith("SQLite's quick check found damage: ")
    assert "\n" not in found["summary"]
    assert found["fix"].startswith(f"stop treechat, move {database} aside")


def test_disk_space_thresholds() -> None:
    path = Path("/d/treechat.db")
    low = judge_database(DatabaseFacts(path, False, free_bytes=200 * 1024 * 1024))
    full = judge_database(DatabaseFacts(path, False, free_bytes=3 * 1024 * 1024))
    roomy = judge_database(DatabaseFacts(path, False, free_bytes=80 * 1024**3))
    assert [f.level for f in low if f.check == "disk space"] == [Level.WARNING]
    assert [f.summary for f in full if f.check == "disk space"] == [
        "only 3 MB free where the database lives: writes will fail"
    ]
    assert exit_status(full) == 2
    assert exit_status(roomy) == 0


# -------------------------------------------------------------------------- listen port


def test_a_port_held_by_another_socket_is_a_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        data_dir = tmp_path / "data"
        write_config(data_dir, listen=f"127.0.0.1:{port}")
        status, report = doctor(data_dir, capsys)
    assert status == 2
    found = finding(report, "listen port")
    assert found["summary"] == f"127.0.0.1:{port} is in use by another program"
    assert f"--listen 127.0.0.1:{port + 1}" in found["fix"]

    status, report = doctor(data_dir, capsys)  # released: free again
    assert finding(report, "listen port") == {
        "check": "listen port",
        "level": "ok",
        "summary": f"127.0.0.1:{port} is free",
        "fix": "",
    }


def test_a_taken_default_port_is_a_warning_naming_the_port_used_instead(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as other:
        try:
            other.bind(("127.0.0.1", DEFAULT_PORT))
        except OSError:
            pytest.skip(f"port {DEFAULT_PORT} is already taken here")
        other.listen()
        data_dir = tmp_path / "data"
        write_config(data_dir, listen=f"127.0.0.1:{DEFAULT_PORT}")
        status, report = doctor(data_dir, capsys)
    found = finding(report, "listen port")
    assert found["level"] == "warning"
    assert re.fullmatch(
        rf"127\.0\.0\.1:{DEFAULT_PORT} is in use \(another program, or another treechat"
        r" profile\); treechat will listen on 77(09|[1-2]\d) instead",
        found["summary"],
    ), found["summary"]
    assert status == 1


def test_a_port_held_by_our_own_running_node_is_fine(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    feed = load_or_create_identity(data_dir).ref[1:].removesuffix(".ed25519")
    with socket.socket() as listening:  # this process plays the node of data_dir
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        port = listening.getsockname()[1]
        write_config(data_dir, listen=f"127.0.0.1:{port}")
        write_status(
            data_dir,
            {
                "version": 1,
                "pid": os.getpid(),
                "updated_at": time.time(),
                "address": f"net:127.0.0.1:{port}~shs:{feed}",
                "peers": [],
            },
        )
        _, report = doctor(data_dir, capsys)
    assert finding(report, "listen port") == {
        "check": "listen port",
        "level": "ok",
        "summary": f"127.0.0.1:{port} is held by our own running node (pid {os.getpid()})",
        "fix": "",
    }


# --------------------------------------------------------------------------- interfaces


def test_routes_are_read_from_the_kernel_format() -> None:
    text = (
        "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\tMTU\tWindow\tIRTT\n"
        "eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"
        "eth1\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n"
        "eth2\t000000E0\t00000000\t0001\t0\t0\t0\t000000F0\t0\t0\t0\n"
    )
    routes = {r.interface: r for r in parse_routes(text)}
    assert routes["eth0"].covers("224.0.0.251")  # the default route
    assert not routes["eth1"].covers("224.0.0.251")  # 192.0.2.0/24 only
    assert routes["eth2"].covers("224.0.0.251")  # 224.0.0.0/4


@pytest.fixture
def namespace(sealed_network: sealed.Guard) -> Iterator[str]:
    """A network namespace with a veth pair ``dr0``/``dr1`` up, ``dr0`` at 10.99.0.1/24,
    and no route beyond the link's own subnet."""
    if not IS_ROOT or shutil.which("ip") is None:
        pytest.skip("making a network namespace needs root and iproute2")
    name = f"doctor{os.getpid()}"
    steps = [
        ["ip", "netns", "add", name],
        ["ip", "-n", name, "link", "set", "lo", "up"],
        ["ip", "-n", name, "link", "add", "dr0", "type", "veth", "peer", "name", "dr1"],
        ["ip", "-n", name, "addr", "add", "10.99.0.1/24", "dev", "dr0"],
        ["ip", "-n", name, "link", "set", "dr0", "up"],
        ["ip", "-n", name, "link", "set", "dr1", "up"],
    ]
    try:
        for step in steps:
            subprocess.run(step, check=True, capture_output=True, text=True)
        sealed_network.allow_namespace(f"/run/netns/{name}")
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False, capture_output=True)


def doctor_in(namespace: str, data_dir: Path) -> tuple[int, dict[str, Any]]:
    env = sealed.child_env(REPO)
    result = subprocess.run(
        ["ip", "netns", "exec", namespace, sys.executable, "-m", "chat",
         "--data-dir", str(data_dir), "doctor", "--json"],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    assert result.stderr == "", result.stderr
    return result.returncode, json.loads(result.stdout)


def test_an_interface_without_a_multicast_route_is_a_warning(
    namespace: str, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    write_config(data_dir, interfaces=["10.99.0.1"])
    status, report = doctor_in(namespace, data_dir)
    found = finding(report, "mdns 10.99.0.1")
    assert found["level"] == "warning"
    assert found["summary"].startswith("10.99.0.1 (dr0) has no multicast route")
    assert found["fix"] == "sudo ip route add 224.0.0.0/4 dev dr0"
    assert status == 1

    subprocess.run(["ip", "-n", namespace, "route", "add", "224.0.0.0/4", "dev", "dr0"], check=True)
    status, report = doctor_in(namespace, data_dir)
    found = finding(report, "mdns 10.99.0.1")
    assert found["level"] == "ok"
    assert "multicast route present; no node running" in found["summary"]


def test_an_address_not_on_this_machine_is_a_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir = tmp_path / "data"
    write_config(data_dir, interfaces=["192.0.2.77"])
    status, report = doctor(data_dir, capsys)
    assert status == 2
    assert finding(report, "mdns 192.0.2.77")["summary"] == (
        "192.0.2.77 is not an address of this machine"
    )


def test_interfaces_that_are_down_or_without_multicast_are_warnings() -> None:
    down = judge_discovery(DiscoveryFacts(True, (InterfaceFacts("10.1.0.2", "eth1", up=False),)))
    assert down[0].summary == "10.1.0.2 (eth1) is down"
    mute = judge_discovery(
        DiscoveryFacts(True, (InterfaceFacts("10.1.0.2", "eth1", multicast=False),))
    )
    assert mute[0].fix == "sudo ip link set eth1 multicast on"
    seen = judge_discovery(
        DiscoveryFacts(
            True,
            (InterfaceFacts("10.1.0.2", "eth1", multicast_route=True, seen_peers=("ada",)),),
            node_running=True,
        )
    )
    assert seen[0].summary.endswith("treechat seen here in the last minute: ada")
    assert exit_status(down + mute) == 1 and exit_status(seen) == 0


def test_discovery_off_is_said(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data_dir = tmp_path / "data"
    write_config(data_dir, discovery=False)
    _, report = doctor(data_dir, capsys)
    assert finding(report, "mdns")["summary"].startswith("LAN discovery is off")


# ----------------------------------------------------------------- key, peers and clock


def test_network_key_default_or_custom(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data_dir = tmp_path / "data"
    write_config(data_dir)
    _, report = doctor(data_dir, capsys)
    assert finding(report, "network key")["summary"] == "the default (public treechat network)"
    write_config(data_dir, network_key="A" * 43 + "=")
    _, report = doctor(data_dir, capsys)
    assert finding(report, "network key")["summary"].startswith("a custom key (tag ")


def test_remembered_peers_say_when_they_last_connected() -> None:
    now = 1_800_000_000.0
    found = judge_remembered(
        [
            Remembered("peer", "ada (@abc)", "net:10.0.0.2:7708~shs:x", now - 3 * 3600),
            Remembered("pub", "@def", "pub.example:8008", None),
        ],
        now,
    )
    assert [(f.check, f.level, f.summary) for f in found] == [
        ("peer", Level.OK, "ada (@abc) at net:10.0.0.2:7708~shs:x: last connected 3 h ago"),
        ("pub", Level.OK, "@def at pub.example:8008: never connected"),
    ]
    never = judge_remembered([Remembered("pub", "@def", "h:1", None)], now)
    assert never[-1].level == Level.WARNING
    assert "has ever connected" in never[-1].summary
    assert judge_remembered([], now)[0].fix.startswith("on a LAN, run treechat on both machines")


def test_clock_verdicts() -> None:
    now = 1_800_000_000_000
    slow = judge_clock(StoreFacts(ahead_by_author={"ada": 3_600_000, "bo": 3_000_000}), now)
    assert slow.level == Level.WARNING
    assert "from 2 people claim times up to 60 min later" in slow.summary
    assert slow.fix == "turn on time sync: timedatectl set-ntp true"
    one = judge_clock(StoreFacts(ahead_by_author={"ada": 600_000}, messages_checked=9), now)
    assert one.level == Level.OK and "only ada's clock runs ahead" in one.summary
    back = judge_clock(StoreFacts(newest_received_ms=now + 7_200_000), now)
    assert back.level == Level.WARNING and "clock went back" in back.summary
    fine = judge_clock(StoreFacts(messages_checked=40), now)
    assert fine.summary == "agrees with peers' messages (40 recent ones checked)"


async def test_peer_messages_from_the_future_are_seen_in_the_real_database(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hour_ahead = int(time.time() * 1000) + 3_600_000
    messages = [
        create_message(Identity.generate().signing_key, 1, None, hour_ahead, post("from ahead"))
        for _ in range(2)
    ]
    async with await Store.open(data_dir / "treechat.db") as store:
        await store.add_received([m.raw for m in messages], source=b"\x03" * 32)
    _, report = doctor(data_dir, capsys)
    clock = finding(report, "clock")
    assert clock["level"] == "warning"
    assert "this machine's clock is probably slow" in clock["summary"]


# ----------------------------------------------------------------------------- terminal


def terminal(**changes: Any) -> TerminalFacts:
    values: dict[str, Any] = {
        "is_tty": True,
        "term": "xterm-256color",
        "colorterm": "",
        "no_color": False,
        "columns": 120,
        "lines": 40,
        "in_tmux": False,
        "in_screen": False,
        **changes,
    }
    return TerminalFacts(**values)


def test_terminal_verdicts() -> None:
    good = judge_terminal(terminal())
    assert exit_status(good) == 0
    assert [f.summary for f in good] == [
        "256 colours (xterm-256color)",
        "120x40",
        "copying uses OSC 52, which most terminals accept",
    ]
    dumb = judge_terminal(terminal(term="dumb"))
    assert dumb[0].level == Level.PROBLEM and "cannot draw" in dumb[0].summary
    assert judge_terminal(terminal(columns=0, lines=0))[1].level == Level.OK  # not told
    small = judge_terminal(terminal(columns=70, lines=20))
    assert small[1].summary == "70x20: smaller than 80x24, panes will be cut"
    tmux = judge_terminal(terminal(in_tmux=True))
    assert tmux[2].fix == "add to ~/.tmux.conf: set -g set-clipboard on"
    flat = judge_terminal(terminal(term="xterm"))
    assert flat[0].level == Level.WARNING


def test_report_lines_put_the_fix_under_the_finding() -> None:
    lines = report_lines(
        [
            Finding("secret", Level.PROBLEM, "/d/secret has mode 0644", "chmod 600 /d/secret"),
            Finding("clock", Level.OK, "fine"),
        ]
    )
    assert lines == [
        "problem  secret  /d/secret has mode 0644",
        "                 fix: chmod 600 /d/secret",
        "ok       clock   fine",
    ]
