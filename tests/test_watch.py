"""What serve and pub say about peers: one line per change, a failure's reason once."""

from __future__ import annotations

from chat.commands.watch import PeerLog
from chat.views import PeerView

KEY = b"k" * 32


def view(state: str, reason: str = "", direction: str | None = None) -> PeerView:
    return PeerView(
        KEY, "ada", "a2sy", "lan", state, reason, "net:10.0.0.2:7708~shs:x", None, direction
    )


def test_connected_disconnected_and_a_failure_said_once() -> None:
    log = PeerLog()
    assert log.lines([view("connecting")]) == []
    assert log.lines([view("connected", "connected", "out")]) == [
        "connected: ada (lan) at net:10.0.0.2:7708~shs:x, we dialled"
    ]
    assert log.lines([view("connected", "connected", "out")]) == []
    refused = "backing off until 12:00:0{} after {} failures: connection refused"
    assert log.lines([view("backoff", refused.format(1, 1))]) == [
        f"disconnected: ada (lan): {refused.format(1, 1)}"
    ]
    assert log.lines([view("backoff", refused.format(4, 2))]) == []  # the same cause: once
    timeout = "backing off until 12:00:09 after 3 failures: timed out"
    assert log.lines([view("backoff", timeout)]) == [f"could not connect: ada (lan): {timeout}"]
    assert log.lines([view("backoff", timeout)]) == []
    assert log.lines([view("connected", "connected (incoming)", "in")])[0].endswith("they dialled")
    assert log.lines([]) == ["disconnected: @6b6b6b6b: gone from the peer table"]
