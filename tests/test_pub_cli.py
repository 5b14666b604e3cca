"""`treechat pub`, `invite` and `join` as a user runs them: real processes on 127.0.0.1."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from net.address import parse_address, parse_invite
from tests.sealed_site.sealed import child_env

ROOT = Path(__file__).resolve().parent.parent
PUB_ARGS = ("pub", "--listen", "127.0.0.1:0")


def treechat(data_dir: Path, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "chat", "--data-dir", str(data_dir), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env=child_env(ROOT),
    )


def data_dir(path: Path) -> Path:
    path.mkdir(mode=0o700)
    (path / "config.toml").write_text("discovery = false\n")
    return path


@pytest.fixture
def pub_process(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A running `treechat pub` on a free loopback port; yields its data dir and address."""
    pub_dir = data_dir(tmp_path / "pub")
    proc = subprocess.Popen(
        [sys.executable, "-m", "chat", "--data-dir", str(pub_dir), *PUB_ARGS],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=child_env(ROOT),
    )
    try:
        assert proc.stdout is not None
        address = proc.stdout.readline().strip()
        assert address, proc.stderr.read() if proc.stderr else "no address printed"
        yield pub_dir, address
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0


def test_pub_invite_join_from_the_command_line(
    tmp_path: Path, pub_process: tuple[Path, str]
) -> None:
    pub_dir, address = pub_process
    pub = parse_address(address)
    assert pub.host == "127.0.0.1" and pub.port != 0

    made = treechat(pub_dir, "invite", "--uses", "1")  # while the pub runs
    assert made.returncode == 0, made.stderr
    invite = made.stdout.strip()
    assert parse_invite(invite).address == pub
    assert "once" in made.stderr

    joined = treechat(data_dir(tmp_path / "ann"), "join", invite)
    assert joined.returncode == 0, joined.stderr
    assert f"joined the pub @{address.rsplit(':', 1)[1]}.ed25519" in joined.stdout

    again = treechat(data_dir(tmp_path / "bob"), "join", invite)
    assert again.returncode == 1
    assert again.stderr.strip() == (
        "treechat: error: join failed at invite rejected: the invite is used up"
    )


def test_join_reports_bad_input_and_dead_addresses_in_one_line(tmp_path: Path) -> None:
    member = data_dir(tmp_path / "ann")
    bad = treechat(member, "join", "not an invite")
    assert bad.returncode == 1
    assert bad.stderr.startswith("treechat: error: bad address") and "Traceback" not in bad.stderr
    key = "A" * 43 + "="
    dead = treechat(member, "join", f"net:127.0.0.1:1~shs:{key}:{key}")
    assert dead.returncode == 1
    assert dead.stderr.startswith("treechat: error: join failed at connect:")
    assert "Traceback" not in dead.stderr


def test_invite_on_a_data_dir_that_never_ran_a_pub(tmp_path: Path) -> None:
    result = treechat(data_dir(tmp_path / "fresh"), "invite")
    assert result.returncode == 1
    assert "run `treechat pub --public-address HOST:PORT`" in result.stderr
