"""Two machines on a real LAN (namespaces + veth): default settings just work, and a
loopback-configured node stays on loopback whatever the LAN does (tests/netns.py)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from chat.identity import load_or_create_identity
from tests.netns import Lines, Machine, lan_or_skip, two_machines
from tests.processes import eventually, status, treechat
from tests.sealed_site.sealed import Guard

# Generous bounds: under a loaded 2-core machine a `serve` can take many seconds to start.
pytestmark = pytest.mark.timeout(400)
LIMIT = 90.0


def serve(machine: Machine, data_dir: Path, *args: str) -> tuple[Lines, str]:
    """`serve ARGS` in `machine`; its stdout and the first address it printed."""
    lines = Lines(machine.start(data_dir, "serve", *args), data_dir / "serve.log")
    first = lines.next(LIMIT, f"{machine.ns}: serve's address")
    assert first.startswith("net:"), f"{first!r}\n{lines.describe()}"
    return lines, first


def peer_row(data_dir: Path, key: str) -> dict[str, Any] | None:
    """The peer's row once it is connected and known as found on the LAN (a peer that
    dials in before our mDNS has resolved it is `other` for that moment)."""
    snapshot = status(data_dir)
    for peer in (snapshot or {}).get("peers", []):
        if peer["key"] == key and peer["state"] == "connected" and peer["source"] == "lan":
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
        _, a_first = serve(a, a_dir)  # no flags: what a person runs
        _, b_first = serve(b, b_dir)
        # A dialable address on the LAN, first; never the wildcard.
        assert a_first.startswith(f"net:{a.address}:7708~shs:")
        assert b_first.startswith(f"net:{b.address}:7708~shs:")

        # They find each other with mDNS, link, and replicate without anyone following.
        a_sees_b = eventually(lambda: peer_row(a_dir, b_ref), LIMIT, "a links to b over the LAN")
        b_sees_a = eventually(lambda: peer_row(b_dir, a_ref), LIMIT, "b links to a over the LAN")
        assert b.address in a_sees_b["address"] and a.address in b_sees_a["address"]

        assert treechat(a_dir, "post", "hello from a").returncode == 0
        assert treechat(b_dir, "post", "hello from b").returncode == 0
        eventually(lambda: has_post(b_dir, "hello from a"), LIMIT, "a's post on b")
        eventually(lambda: has_post(a_dir, "hello from b"), LIMIT, "b's post on a")

        # Each replicates both feeds over its one link: eager (a tree edge) or lazy, and
        # the posts made at least one of them a tree edge. The status file is written
        # about once a second, so a snapshot from before the grafts (both lazy) may still
        # be there after the posts arrived: wait for one that shows the edge.
        def link_carries_both(data_dir: Path, key: str) -> dict[str, Any] | None:
            row = peer_row(data_dir, key)
            if row is None or row["eager_in"] + row["eager_out"] < 1:
                return None
            return row if row["eager_in"] + row["eager_out"] + row["lazy"] >= 2 else None

        eventually(lambda: link_carries_both(a_dir, b_ref), LIMIT, "both feeds, one eager")
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
        member_log = tmp_path / "member.log"
        member = Lines(
            a.run_python(
                [sys.executable, "-c", FOREIGN_MEMBER, a.address, b.address],
                member_log,
                sealed=False,
            ),
            member_log,
        )
        assert member.next(LIMIT, "the foreign member joins the group") == "joined"
        loopback = ("--listen", "127.0.0.1:7708", "--interface", "127.0.0.1")
        _, a_first = serve(a, a_dir, *loopback)
        assert a_first.startswith("net:127.0.0.1:7708~")
        b_lines, b_first = serve(b, b_dir)
        assert b_first.startswith(f"net:{b.address}:")

        # B's announcements reach A's LAN interface (the member hears them) ...
        for _ in range(2):
            line = member.next(LIMIT, f"the member hears B\n{b_lines.describe()}")
            assert line.startswith(f"heard {b.address}"), line
        heard_at = time.time()
        # ... and A's own table, written after that, shows no peer and no attempt.
        snapshot = eventually(
            lambda: (s := status(a_dir)) is not None and s["updated_at"] > heard_at + 1.0 and s,
            LIMIT,
            "a status snapshot written after B was heard",
        )
        assert snapshot["peers"] == [], snapshot["peers"]
        assert all(address.startswith("net:127.0.0.1:") for address in snapshot["addresses"])
        assert b_ref not in json.dumps(snapshot)
        # Anything A sent, heard, bound or dialled beyond loopback: refused and reported.
        assert sealed_network.take() == []
