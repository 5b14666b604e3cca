"""Network views: peers, links, feed trees, sync progress, rates and the status snapshot."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from chat import status as status_file
from chat.config import Config
from chat.connections import Connections, format_address
from chat.identity import short_key
from chat.names import Names
from chat.options import NodeOptions
from chat.scope import Scope
from chat.tasks import STOP_STEP_TIMEOUT
from chat.views import FeedTree, Health, LinkView, PeerView, SyncProgress
from net.ebt import LinkState
from net.replication import ReplicationManager, Session
from net.schedule import PeerState, explain
from store.faults import Fault
from store.limits import STATUS_PEERS
from store.message import feed_ref

log = logging.getLogger(__name__)

STATUS_FEEDS = 1000  # per-feed rows per link in status.json (the totals count every feed)
BEHIND_RED = 1000  # a link this many messages behind shows as stalled-looking red


class NetworkViews:
    """Reads the manager, the schedule's table and the scope into view records."""

    def __init__(
        self,
        config: Config,
        options: NodeOptions,
        ref: str,
        manager: ReplicationManager,
        scope: Scope,
        names: Names,
        connections: Connections,
    ) -> None:
        self.config = config
        self.options = options
        self.ref = ref
        self.feed_id = scope.feed_id
        self.manager = manager
        self.scope = scope
        self.names = names
        self.connections = connections
        self.started_at = time.time()
        self._rate_prev: tuple[float, int, int] | None = None
        self._rates = (0.0, 0.0)
        self._peer_rates: dict[bytes, tuple[float, float]] = {}
        self._peer_prev: dict[bytes, tuple[int, int]] = {}
        self._byte_rates: dict[bytes, tuple[float, float]] = {}
        self._bytes_prev: dict[bytes, tuple[int, int, int]] = {}  # key -> (conn id, in, out)
        self._status_write: asyncio.Future[None] | None = None
        self.status_fault = Fault(log, "writing the status file")  # a full disk, said once

    def peers(self) -> list[PeerView]:
        """One row per peer we know of; state and reason come from the schedule's table."""
        manager = self.manager
        schedule = self.connections.schedule
        book = self.connections.book
        sessions = manager.sessions()
        # The book's link states are kept by the schedule; without it only links count.
        reasons = explain(book, time.time(), schedule.downloading) if schedule is not None else {}
        keys = list(dict.fromkeys([*sessions, *(row.key for row in book), *manager.peer_stats]))
        views = []
        for key in keys:
            if key == self.feed_id:
                continue
            conn = sessions.get(key)
            stats = manager.peer_stats.get(key)
            error = stats.last_error if stats is not None else None
            row = book.get(key)
            if (
                row is not None
                and schedule is not None
                and not (conn is not None and row.state is not PeerState.CONNECTED)
            ):
                state, reason = row.state.value, reasons.get(key, "")
            elif conn is not None:  # linked, the table not told yet (or no schedule)
                state = "connected"
                reason = "connected (incoming)" if not conn.initiator else "connected"
            else:
                state, reason = "idle", error or "not connected"
            if stats is not None and stats.cut_off and conn is None:
                reason = stats.cut_off  # the last thing it did matters more than the schedule
            if state == "connected" and key not in self.scope.wanted:
                reason = f"{reason}; {self.not_replicated(key)}"
            source = row.source.value if row is not None else "other"
            at = row.address() if row is not None else None
            address = format_address(*at, key) if at is not None else None
            if address is None and conn is not None:
                address = conn.address
            views.append(
                PeerView(
                    key=key,
                    name=self.names.get(key) or "",
                    short_key=short_key(key),
                    source=source,
                    state=state,
                    reason=reason,
                    address=address,
                    rtt_ms=conn.rtt_ms if conn is not None else None,
                    direction=conn.direction if conn is not None else None,
                    doubts=tuple(self.doubts(key)) if conn is not None else (),
                )
            )
        return views

    def not_replicated(self, key: bytes) -> str:
        """Why a linked peer's feed is not replicated, and the way to change it."""
        label = self.names.get(key) or short_key(key)
        if key in self.scope.blocked:
            return f"their feed is not replicated: blocked (/unblock {label})"
        return f"their feed is not replicated: not followed (/follow {label})"

    def links(self) -> list[LinkView]:
        manager = self.manager
        views = []
        for key, conn in manager.sessions().items():
            counts = link_counts(manager.link(key))
            rate_in, rate_out = self._peer_rates.get(key, (0.0, 0.0))
            bytes_in, bytes_out = self._byte_rates.get(key, (0.0, 0.0))
            health = Health.IN_SYNC
            if counts.we_are_behind or counts.they_are_behind:
                health = Health.CATCHING_UP
            if counts.we_are_behind >= BEHIND_RED and rate_in == 0.0:
                health = Health.STALLED
            views.append(
                LinkView(
                    peer=key,
                    name=self.names.display_name(key),
                    eager_in=counts.eager_in,
                    eager_out=counts.eager_out,
                    lazy=counts.lazy,
                    we_are_behind=counts.we_are_behind,
                    they_are_behind=counts.they_are_behind,
                    msgs_per_s_in=rate_in,
                    msgs_per_s_out=rate_out,
                    bytes_per_s_in=bytes_in,
                    bytes_per_s_out=bytes_out,
                    rtt_ms=conn.rtt_ms,
                    health=health,
                )
            )
        return views

    def feed_tree(self, feed: bytes) -> FeedTree:
        manager = self.manager
        targets: list[bytes] = []
        lazy: list[bytes] = []
        for key in manager.sessions():
            state = manager.link(key).get(feed)
            if state is None:
                continue
            if state.tx:
                targets.append(key)
            elif not state.rx:
                lazy.append(key)
        return FeedTree(
            feed=feed,
            name=self.names.display_name(feed),
            local_seq=manager.local_seq(feed),
            eager_source=manager.eager_source(feed),
            eager_targets=tuple(targets),
            lazy_peers=tuple(lazy),
            forked=feed in self.scope.forked or feed in manager.forked,
        )

    def feeds(self) -> list[FeedTree]:
        return [self.feed_tree(feed) for feed in sorted(self.scope.wanted)]

    def sync_progress(self) -> SyncProgress:
        manager = self.manager
        wanted = self.scope.wanted
        local = manager.local_clock
        have = sum(local.get(feed, 0) for feed in wanted)
        best = {feed: local.get(feed, 0) for feed in wanted}
        for key in manager.sessions():
            for feed, state in manager.link(key).items():
                if feed in best:
                    best[feed] = max(best[feed], _remote_seq(state))
        known = sum(best.values())
        health = Health.IN_SYNC if known <= have else Health.CATCHING_UP
        return SyncProgress(
            have=have, known=known, feeds=len(wanted), health=health, held=sum(local.values())
        )

    # ------------------------------------------------------------------ status

    def status_snapshot(self) -> dict[str, Any]:
        """What `treechat status` shows; also what the benchmarks read."""
        manager = self.manager
        now = time.time()
        counters = manager.counters.as_dict()
        local = manager.local_clock
        sessions = manager.sessions()
        peers = []
        link_by_key = {view.peer: view for view in self.links()}
        views = self.peers()

        # Bounded: connected peers first, then the most recently seen (store/limits.py).
        def rank(view: PeerView) -> tuple[bool, float]:
            stats = manager.peer_stats.get(view.key)
            return (view.key not in sessions, -(stats.last_seen if stats else 0.0))

        shown = sorted(views, key=rank)[:STATUS_PEERS]
        for view in shown:
            link = link_by_key.get(view.key)
            stats = manager.peer_stats.get(view.key)
            peers.append(
                {
                    "key": feed_ref(view.key),
                    "name": view.name,
                    "address": view.address,
                    "source": view.source,
                    "direction": view.direction,
                    "state": view.state,
                    "reason": view.reason,
                    "rtt_ms": None if view.rtt_ms is None else round(view.rtt_ms, 2),
                    "eager_in": link.eager_in if link else None,
                    "eager_out": link.eager_out if link else None,
                    "lazy": link.lazy if link else None,
                    "we_are_behind": link.we_are_behind if link else None,
                    "they_are_behind": link.they_are_behind if link else None,
                    "msgs_in": stats.msgs_in if stats else 0,
                    "msgs_out": stats.msgs_out if stats else 0,
                    "msgs_per_s_in": round(link.msgs_per_s_in, 1) if link else 0.0,
                    "msgs_per_s_out": round(link.msgs_per_s_out, 1) if link else 0.0,
                    "bytes_per_s_in": round(link.bytes_per_s_in) if link else 0,
                    "bytes_per_s_out": round(link.bytes_per_s_out) if link else 0,
                    "connected": view.key in sessions,
                    "connected_since": stats.connected_since if stats else None,
                    "last_error": stats.last_error if stats else None,
                    "feeds": self._feed_rows(view.key) if view.key in sessions else [],
                    "doubts": list(view.doubts),
                }
            )
        return {
            "version": status_file.STATUS_VERSION,
            "pid": os.getpid(),
            "updated_at": now,
            "started_at": self.started_at,
            "feed_id": self.ref,
            "address": self.connections.address,
            "addresses": list(self.connections.own_addresses),
            "listen_notice": self.connections.notice,
            "feeds": len(local),
            "messages": sum(local.values()),
            "wanted_feeds": len(self.scope.wanted),
            "peers": peers,
            "peers_total": len(views),
            "peers_connected": len(sessions),
            "refused": dict(list(self.connections.refusals.items())[-20:]),
            "refused_total": self.connections.refused_total,
            "store_error": manager.store_error,
            "counters": counters,
            "timing": {
                "first_connected_at": manager.first_connected_at,
                "last_stored_at": manager.last_stored_at,
            },
            "rates": {
                "msgs_per_s_in": round(self._rates[0], 1),
                "msgs_per_s_out": round(self._rates[1], 1),
            },
        }

    def doubts(self, key: bytes) -> list[str]:
        """What a peer claimed and never delivered (its claims are not believed), in words:
        ``claims alice #1000, sent nothing for 30 s``."""
        now = self.manager.now()
        lines = []
        for feed, state in sorted(self.manager.link(key).items()):
            if not state.doubted:
                continue
            name = self.names.get(feed) or feed_ref(feed)[:9]
            since = state.silent_since
            silent = "" if since is None else f", sent nothing for {max(0, now - since):.0f} s"
            lines.append(f"claims {name} #{state.claimed_seq}{silent}")
        return lines

    def _feed_rows(self, key: bytes) -> list[dict[str, Any]]:
        """Per feed of one link: eager or lazy in each direction and who lacks what."""
        rows = []
        for feed, state in sorted(self.manager.link(key).items())[:STATUS_FEEDS]:
            remote, local = _remote_seq(state), state.local_seq
            replicating = state.remote_seq != -1  # unknown yet, or a seq
            rows.append(
                {
                    "feed": feed_ref(feed),
                    "name": self.names.get(feed) or "",
                    "in": "eager" if state.rx else "lazy",
                    "out": ("eager" if state.tx else "lazy") if replicating else "none",
                    "local_seq": local,
                    "remote_seq": remote if remote >= 0 else None,
                    "we_lack": max(0, remote - local),
                    "they_lack": max(0, local - remote) if remote >= 0 else None,
                }
            )
        return rows

    def update_rates(self) -> None:
        manager = self.manager
        now = time.monotonic()
        received = manager.counters.msgs_received
        sent = manager.counters.msgs_sent
        sessions = manager.sessions()
        if self._rate_prev is not None:
            then, was_in, was_out = self._rate_prev
            span = max(now - then, 1e-6)
            self._rates = ((received - was_in) / span, (sent - was_out) / span)
            self._peer_rates = {}  # only peers still remembered (bounded by the manager)
            for key, stats in manager.peer_stats.items():
                prev_in, prev_out = self._peer_prev.get(key, (stats.msgs_in, stats.msgs_out))
                self._peer_rates[key] = (
                    (stats.msgs_in - prev_in) / span,
                    (stats.msgs_out - prev_out) / span,
                )
            self._byte_rates = {key: v for key, v in self._byte_rates.items() if key in sessions}
            for key, conn in sessions.items():
                was = self._bytes_prev.get(key)
                now_in, now_out = _byte_counts(conn)
                if was is not None and was[0] == id(conn):
                    self._byte_rates[key] = (
                        max(0, now_in - was[1]) / span,
                        max(0, now_out - was[2]) / span,
                    )
                else:
                    self._byte_rates.pop(key, None)
        self._bytes_prev = {
            key: (id(conn), *_byte_counts(conn)) for key, conn in manager.sessions().items()
        }
        self._rate_prev = (now, received, sent)
        self._peer_prev = {
            key: (stats.msgs_in, stats.msgs_out) for key, stats in manager.peer_stats.items()
        }

    async def async_status_loop(self) -> None:
        """Every `status_interval`: update the rates and rewrite the status file."""
        while True:
            try:
                self.update_rates()
                if self.options.write_status:
                    snapshot = self.status_snapshot()
                    # Cancelling cannot stop the thread: stop() waits for this write
                    # before it removes the file.
                    self._status_write = asyncio.ensure_future(
                        asyncio.to_thread(status_file.write_status, self.config.data_dir, snapshot)
                    )
                    try:
                        await asyncio.shield(self._status_write)
                    except OSError as exc:  # a full disk: one line when it starts failing
                        self.status_fault.failed(exc)
                    else:
                        self.status_fault.worked()
            except Exception:
                log.exception("writing the status snapshot failed")
            await asyncio.sleep(self.options.status_interval)

    async def async_remove_status(self) -> None:
        """Wait for a status write in flight, then remove the file (on stop)."""
        write = self._status_write
        if write is not None:  # a thread that would rewrite the file after us
            await asyncio.wait({write}, timeout=STOP_STEP_TIMEOUT)
            if write.done() and not write.cancelled() and write.exception() is not None:
                log.warning("the last status write failed: %s", write.exception())
        if self.options.write_status:
            status_file.remove_status(self.config.data_dir)


# ---------------------------------------------------------------------- link helpers


@dataclass(frozen=True, slots=True)
class LinkCounts:
    """Per-link totals over all feeds."""

    eager_in: int
    eager_out: int
    lazy: int
    we_are_behind: int
    they_are_behind: int


def _remote_seq(state: LinkState) -> int:
    """The peer's seq, -1 when unknown or when it does not replicate the feed."""
    return state.remote_seq if state.remote_seq is not None else -1


def link_counts(link: Mapping[bytes, LinkState]) -> LinkCounts:
    """Eager/lazy counts and behind totals of one peer's per-feed link states."""
    eager_in = eager_out = lazy = we_behind = they_behind = 0
    for state in link.values():
        remote, local = _remote_seq(state), state.local_seq
        eager_in += state.rx
        eager_out += state.tx
        if not state.rx and not state.tx and remote >= 0:
            lazy += 1
        if remote >= 0:
            we_behind += max(0, remote - local)
            they_behind += max(0, local - remote)
    return LinkCounts(eager_in, eager_out, lazy, we_behind, they_behind)


def _byte_counts(conn: Session) -> tuple[int, int]:
    """Bytes received and sent on a connection (its own counters, socket level)."""
    return conn.bytes_in, conn.bytes_out
