"""The README's first screen, run as written: every `$ ` line of its shell blocks, in a
network namespace of its own with only loopback (tests/netns.py), from the repository's
root with a fresh HOME. A node, a second profile on one machine, a pub, its invite and
the join; each command's output has the shape the README shows."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest

from tests.netns import Lines, lan_or_skip, loopback_machine
from tests.processes import ROOT, eventually
from tests.sealed_site.sealed import Guard, child_env

pytestmark = pytest.mark.timeout(300)
LIMIT = 90.0
TREECHAT = ROOT / ".venv" / "bin" / "treechat"


def readme_commands() -> list[str]:
    """The `$ ` lines of the README's shell blocks, in order (comments are bash's to skip)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"^```\n(.*?)^```", text, flags=re.M | re.S)
    return [line[2:] for block in blocks for line in block.splitlines() if line.startswith("$ ")]


def test_the_readme_steps_work_as_written(tmp_path: Path, sealed_network: Guard) -> None:
    lan_or_skip()
    if not TREECHAT.exists():
        pytest.skip(f"the README's steps run {TREECHAT.relative_to(ROOT)}, made by `make run`")
    steps = readme_commands()
    assert len(steps) == 6, f"the README's steps changed; teach this test the new ones: {steps}"
    first, peers, join, pub, invite, second = steps
    home = tmp_path / "home"
    home.mkdir()

    with loopback_machine() as machine:
        sealed_network.allow_namespace(f"/run/netns/{machine.ns}")  # it has only loopback
        env = {**child_env(ROOT), "HOME": str(home)}
        env.pop("XDG_DATA_HOME", None)  # the default data dir, under the fresh HOME

        def start(line: str, name: str) -> tuple[Lines, str]:
            log = tmp_path / f"{name}.log"
            lines = Lines(machine.run(["bash", "-c", line], log, env), log)
            return lines, lines.next(LIMIT, f"the first line of `{line}`")

        def run(line: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                ["ip", "netns", "exec", machine.ns, "bash", "-c", line],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                timeout=LIMIT,
            )

        # Chat on your LAN: the node prints its address, on the default port.
        _, address = start(first, "first")
        assert re.fullmatch(r"net:127\.0\.0\.1:7708~shs:\S+=", address), address
        # A second profile on one machine: the next port, said so; found by mDNS.
        second_lines, second_address = start(second, "second")
        assert re.fullmatch(r"net:127\.0\.0\.1:7709~shs:\S+=", second_address), second_address
        said = second_lines.log.read_text()
        assert "WARNING chat.connections: port 7708 is taken (another treechat on this" in said
        second_key = second_address.split("~shs:")[1]

        def peers_show_second() -> str | None:
            out = run(peers).stdout
            row = next((line for line in out.splitlines() if second_key[:8] in line), "")
            return out if " lan " in row and " connected " in row else None

        eventually(peers_show_second, LIMIT, "`treechat peers` showing the second profile")
        # The line the README shows (`other` if it dialled in before our mDNS found it).
        connected = re.compile(
            rf"INFO treechat\.peers: connected: @{re.escape(second_key[:6])} \((lan|other)\) at"
        )
        first_log = tmp_path / "first.log"
        eventually(lambda: connected.search(first_log.read_text()), LIMIT, "the connected line")

        # Join a pub: run one, make an invite on its data dir, paste it into `join`.
        _, pub_address = start(pub, "pub")
        assert re.fullmatch(r"net:127\.0\.0\.1:7710~shs:\S+=", pub_address), pub_address
        made = run(invite)
        assert made.returncode == 0, made.stderr
        code = made.stdout.strip()
        assert code.startswith(f"{pub_address}:"), code
        pasted = re.sub(r"'net:[^']*'", lambda _: shlex.quote(code), join)
        assert pasted != join, f"no invite to replace in {join!r}"
        joined = run(pasted)
        assert joined.returncode == 0, joined.stderr
        assert (joined.stdout + joined.stderr).splitlines() == [  # what the terminal shows
            f"joined the pub @{pub_address.split('~shs:')[1]}.ed25519 at {pub_address}",
            "it is followed and remembered; your running node connects to it now",
        ]
        pub_key = pub_address.split("~shs:")[1]

        def peers_show_the_pub() -> bool:  # via `lan` if mDNS found it first, else `pub`
            out = run(peers).stdout
            row = next((line for line in out.splitlines() if pub_key[:8] in line), "")
            return " connected " in row

        eventually(peers_show_the_pub, LIMIT, "the running node linked to the pub it joined")
    assert os.listdir(home / ".local" / "share" / "treechat")  # the default data dir was used
