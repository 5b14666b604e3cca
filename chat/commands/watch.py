"""What a headless node (``serve``, ``pub``) says on stderr about its peers and its sync.

One line when a peer connects, one when it disconnects (with why), one when dialling
it fails (with the reason, once: the next line about that peer comes when the reason
changes or it connects), and while catching up a one-line summary every
`SUMMARY_EVERY` seconds, then one line when it is in sync again. The watcher compares
the node's peer table once a second, so it needs no hook in the node and says what the
table says.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
import time
from dataclasses import dataclass, field

from chat.node import Node
from chat.views import PeerView, SyncProgress

log = logging.getLogger("treechat.peers")

POLL = 1.0
SUMMARY_EVERY = 10.0


def log_to_stderr() -> None:
    """Log lines with time, level and source go to stderr (the node's own lines too)."""
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def stop_on_signals() -> asyncio.Event:
    """An event SIGINT and SIGTERM set (call it inside the running loop)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    return stop


@dataclass
class PeerLog:
    """The last thing said about each peer, so nothing is said twice."""

    connected: set[bytes] = field(default_factory=set)
    failures: dict[bytes, str] = field(default_factory=dict)

    def lines(self, peers: list[PeerView]) -> list[str]:
        """The lines the change from the last table to `peers` calls for."""
        out: list[str] = []
        seen = set()
        for peer in peers:
            seen.add(peer.key)
            who = f"{peer.name or '@' + peer.short_key} ({peer.source})"
            if peer.state == "connected":
                if peer.key not in self.connected:
                    self.connected.add(peer.key)
                    self.failures.pop(peer.key, None)
                    way = {"in": "they dialled", "out": "we dialled"}.get(peer.direction or "")
                    where = f" at {peer.address}" if peer.address else ""
                    out.append(f"connected: {who}{where}" + (f", {way}" if way else ""))
                continue
            if peer.key in self.connected:
                self.connected.discard(peer.key)
                out.append(f"disconnected: {who}: {peer.reason or peer.state}")
                self.failures[peer.key] = cause(peer.reason)
                continue
            if failed(peer) and self.failures.get(peer.key) != cause(peer.reason):
                self.failures[peer.key] = cause(peer.reason)
                out.append(f"could not connect: {who}: {peer.reason or peer.state}")
        for key in self.connected - seen:
            self.connected.discard(key)
            out.append(f"disconnected: @{key.hex()[:8]}: gone from the peer table")
        return out


def failed(peer: PeerView) -> bool:
    """Whether the row says a dial failed (not: resting, ready to dial again, connecting)."""
    if peer.state == "other network":
        return True
    return peer.state == "backoff" and peer.reason.startswith("backing off until")


def cause(reason: str) -> str:
    """What failed, without the retry time and count that change on every attempt:
    "backing off until 12:00:03 after 2 failures: connection refused" -> "connection refused"."""
    if reason.startswith("backing off until"):
        return reason.partition(": ")[2] or "failed"
    return reason


def sync_summary(progress: SyncProgress, links: int, rate: float) -> str | None:
    """`catching up: have/known messages of N feeds, X msg/s over K links`, or None
    when nothing is missing."""
    if progress.known <= progress.have:
        return None
    return (
        f"catching up: {progress.have}/{progress.known} messages of {progress.feeds} feeds,"
        f" {rate:.0f} msg/s over {links} link{'s' if links != 1 else ''}"
    )


async def async_watch(
    node: Node, stop: asyncio.Event, *, poll: float = POLL, summary_every: float = SUMMARY_EVERY
) -> None:
    """Log peer changes and, while catching up, a summary every `summary_every` seconds
    (and one line when caught up); until `stop` is set."""
    peers = PeerLog()
    last_summary = time.monotonic()
    last_have = node.sync_progress().have
    catching_up = False
    while not stop.is_set():
        for line in peers.lines(node.peers()):
            log.info("%s", line)
        now = time.monotonic()
        progress = node.sync_progress()
        if catching_up and progress.known <= progress.have:
            catching_up = False
            log.info("in sync: %d messages of %d feeds", progress.have, progress.feeds)
        elif now - last_summary >= summary_every:
            rate = (progress.have - last_have) / (now - last_summary)
            summary = sync_summary(progress, len(node.links()), rate)
            if summary is not None:
                catching_up = True
                log.info("%s", summary)
            last_summary, last_have = now, progress.have
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), poll)
