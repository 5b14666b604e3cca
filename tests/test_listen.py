"""Where a node listens: the next free port when 7708 is taken, and it says so."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from chat.config import HostPort
from tests.nodes import open_node


async def test_a_second_profile_takes_the_next_free_port_and_says_so(tmp_path: Path) -> None:
    with socket.socket() as taken:
        try:
            taken.bind(("127.0.0.1", 7708))
        except OSError:
            pytest.skip("127.0.0.1:7708 is in use on this machine; run in a namespace (inns)")
        taken.listen()
        node = await open_node(tmp_path / "second", listen=HostPort("127.0.0.1", 7708))
        try:
            assert node.address is not None and node.address.startswith("net:127.0.0.1:7709~")
            assert node.addresses == [node.address]
            assert node.listen_notice == (
                "port 7708 is taken (another treechat on this machine?); listening on 7709 instead"
            )
            assert node.status_snapshot()["listen_notice"] == node.listen_notice
        finally:
            await node.stop()
