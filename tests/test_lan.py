"""Two machines on a real LAN (namespaces + veth): default settings just work, and a
loopback-configured node stays on loopback whatever the LAN does (tests/netns.py)."""

from __future__ import annotations

import json
import select
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from chat.identity import load_or_create_identity
from tests.netns import Machine, lan_or_skip, two_machines
from tests.processes import eventually, status, treechat
from tests.sealed_site.sealed import Guard

pytestmark = pytest.mark.timeout(180)


def first_line(machine: Machine, proc: Any, log: Path) -> str:
    line: str = proc.stdout.readline().strip()
    assert line.startswith("net:"), f"{machine.ns}: {log.read_text()}"
    return line


def read_line(stream: Any, limit: float) -> str:
    """One line from a child's stdout, or "" after `limit` seconds (never hangs)."""
    ready, _, _ = select.select([stream], [], [], limit)
    return str(stream.readline()) if ready else ""


def peer_row(data_dir: Path, key: str) -> dict[str, Any] | None:
    snapshot = status(data_dir)
    for peer in (snapshot or {}).get("peers", []):
        if peer["key"] == key and peer["state"] == "connected":
            return dict(peer)
    return None


def has_post(data_dir: Path, text: str) -> bool:
    result = treechat(data_dir, "log", "--json")
    return any(json.loads(line)["text"] == text for line in result.stdout.splitlines())


def test_two_machines_with_default_settings_chat(tmp_path: Path, sealed_network: Guard) -> None:
    lan_or_skip()
    a_dir, b_dir = tmp_path / "a", tmp_path / "b"
    a_ref = load_or_create_identity(a_dir).ref
    b_ref = load_or_create_identity(b_dir).ref
    with two_machines() as (a, b):
        for machine in (a, b):  # the sealed guard lets the nodes use this private LAN
            sealed_network.allow_namespace(f"/run/netns/{machine.ns}")
        a_proc = a.start(a_dir, "serve")  # no flags: what a person runs
        b_proc = b.start(b_dir, "serve")
        # A dialable address on the LAN, first; never the wildcard.
        assert first_line(a, a_proc, a_dir / "serve.log").startswith(f"net:{a.address}:7708~shs:")
        assert first_line(b, b_proc, b_dir / "serve.log").startswith(f"net:{b.address}:7708~shs:")

        # They find each other with mDNS, link, and replicate without anyone following.
        a_sees_b = eventually(lambda: peer_row(a_dir, b_ref), what="a links to b over the LAN")
        b_sees_a = eventually(lambda: peer_row(b_dir, a_ref), what="b links to a over the LAN")
        assert a_sees_b["source"] == "lan" and b_sees_a["source"] == "lan"
        assert b.address in a_sees_b["address"] and a.address in b_sees_a["address"]

        assert treechat(a_dir, "post", "hello from a").returncode == 0
        assert treechat(b_dir, "post", "hello from b").returncode == 0
        eventually(lambda: has_post(b_dir, "hello from a"), what="a's post on b")
        eventually(lambda: has_post(a_dir, "hello from b"), what="b's post on a")

        # Each replicates both feeds over its one link: eager (a tree edge) or lazy.
        def link_carries_both(data_dir: Path, key: str) -> dict[str, Any] | None:
            row = peer_row(data_dir, key)
            if row is None:
                return None
            return row if row["eager_in"] + row["eager_out"] + row["lazy"] >= 2 else None

        row = eventually(lambda: link_carries_both(a_dir, b_ref), what="both feeds on a's link")
        assert row["eager_in"] + row["eager_out"] >= 1
        human = treechat(a_dir, "status").stdout
        assert "lan" in human and "eager in" in human and "lazy" in human


FOREIGN_MEMBER = """
import socket, struct, sys, time
# Like avahi-daemon: joins the mDNS group on the LAN interface, and listens.
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
s.bind(("", 5353))
s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
             socket.inet_aton("224.0.0.251") + socket.inet_aton(sys.argv[1]))
print("joined", flush=True)
heard = 0
deadline = time.monotonic() + 120
while time.monotonic() < deadline:
    data, source = s.recvfrom(9000)
    if source[0] == sys.argv[2] and b"_treechat" in data:
        heard += 1
        print("heard", source[0], heard, flush=True)
"""


def test_a_loopback_node_never_reaches_the_lan_whatever_the_lan_does(
    tmp_path: Path, sealed_network: Guard
) -> None:
    """A is configured for loopback; beside it a process has joined the mDNS group on the
    LAN interface and B announces itself there. A must not hear, answer or dial B."""
    lan_or_skip()
    a_dir, b_dir = tmp_path / "a", tmp_path / "b"
    b_ref = load_or_create_identity(b_dir).ref
    with two_machines(prefix=232) as (a, b):
        # Only B's namespace is allowed: inside A the guard refuses anything non-loopback
        # (heard, sent, dialled, bound) and reports it, failing this test.
        sealed_network.allow_namespace(f"/run/netns/{b.ns}")
        member = a.run_python(
            [sys.executable, "-c", FOREIGN_MEMBER, a.address, b.address],
            tmp_path / "member.log",
            sealed=False,
        )
        assert member.stdout is not None and member.stdout.readline().strip() == "joined"
        loopback = ("--listen", "127.0.0.1:7708", "--interface", "127.0.0.1")
        a_proc = a.start(a_dir, "serve", *loopback)
        assert first_line(a, a_proc, a_dir / "serve.log").startswith("net:127.0.0.1:7708~")
        b_proc = b.start(b_dir, "serve")
        assert first_line(b, b_proc, b_dir / "serve.log").startswith(f"net:{b.address}:")

        # B's announcements reach A's LAN interface (the member hears them) ...
        for _ in range(2):
            line = read_line(member.stdout, 30.0)
            assert line.startswith(f"heard {b.address}"), f"member said {line!r}\n" + "\n".join(
                f"{name}:\n{(path / 'serve.log').read_text()}"
                for name, path in (("a", a_dir), ("b", b_dir))
            )
        heard_at = time.time()
        # ... and A's own table, written after that, shows no peer and no attempt.
        snapshot = eventually(
            lambda: (s := status(a_dir)) is not None and s["updated_at"] > heard_at + 1.0 and s,
            what="a status snapshot written after B was heard",
        )
        assert snapshot["peers"] == [], snapshot["peers"]
        assert all(address.startswith("net:127.0.0.1:") for address in snapshot["addresses"])
        assert b_ref not in json.dumps(snapshot)
        # Anything A sent, heard, bound or dialled beyond loopback: refused and reported.
        assert sealed_network.take() == []
