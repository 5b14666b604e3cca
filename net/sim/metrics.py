"""What the simulator measures per message, and the figures it reports (RMR, LDH, latency)."""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from net.notes import body_bytes


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in [0, 100]) of values; NaN when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


MESSAGE_BYTES = 184
"""Size of one signed message on the wire, as the simulator counts it (a short post)."""
_BOX = 34  # box-stream header per chunk of at most 4096 bytes (net/boxstream.py)
_CHUNK = 4096
_PREFIX = 4  # the frame's length prefix (net/frames.py)


def wire_bytes(packed_body: int, kind: str) -> int:
    """Bytes on the wire for one frame ``[kind, body]`` whose body packs to ``packed_body``."""
    plain = _PREFIX + 1 + 1 + len(kind) + packed_body  # array of 2, fixstr kind, body
    return plain + _BOX * -(-plain // _CHUNK)


def msgs_body_bytes(count: int) -> int:
    """The msgpack size of an array of ``count`` messages of ``MESSAGE_BYTES`` (bin)."""
    header = 1 if count < 16 else 3 if count < 0x10000 else 5
    return header + count * (2 + MESSAGE_BYTES)


@dataclass(slots=True)
class MessageTrace:
    """Everything recorded about one measured message."""

    source: int
    sent_at: float
    optimum_hops: dict[int, int]  # BFS from the source over the links usable at send time
    optimum_latency: dict[int, float]  # Dijkstra over base latencies at send time
    delivered_at: dict[int, float] = field(default_factory=dict)  # node -> first store time
    hops: dict[int, int] = field(default_factory=dict)  # node -> hops of its first copy
    transmissions: int = 0  # payload copies sent over any link


@dataclass(frozen=True, slots=True)
class Quantiles:
    """p50/p95/p99/max of a distribution (ms for latencies)."""

    p50: float
    p95: float
    p99: float
    max: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Quantiles:
        ordered = sorted(values)
        return cls(
            p50=percentile(ordered, 50),
            p95=percentile(ordered, 95),
            p99=percentile(ordered, 99),
            max=ordered[-1] if ordered else math.nan,
        )


@dataclass(frozen=True, slots=True)
class JoinResult:
    """A fresh node joining after the run: when it held what (s of virtual time from its
    first links), and what it asked for."""

    peers: int
    history: int | None  # None = all
    newest_first: bool  # range requests (False: every feed pushed oldest first)
    feeds: int
    wanted: int  # messages it wanted in all
    newest_s: float | None  # the newest message of every feed held
    window_s: float | None  # the newest window (100, or history) of every feed held
    all_s: float | None  # everything it wanted held
    range_requests: int

    def line(self) -> str:
        def t(x: float | None) -> str:
            return "-" if x is None else f"{x:.2f} s"

        how = "newest first" if self.newest_first else "pushed oldest first"
        keep = "all" if self.history is None else str(self.history)
        return (
            f"a fresh node joins ({self.peers} links, history {keep}, {how}): newest of"
            f" every feed {t(self.newest_s)}, newest window {t(self.window_s)},"
            f" all {self.wanted} wanted {t(self.all_s)}; {self.range_requests} range requests"
        )


@dataclass(frozen=True, slots=True)
class SimResult:
    """The figures of one run (latencies in ms, times in s of virtual time)."""

    nodes: int
    strategy: str
    topology: str
    seed: int
    messages: int  # measured messages
    delivery_ratio: float  # delivered / expected (message, node) pairs: nodes alive at the end,
    # messages some live node holds
    missing_pairs: int
    lost_with_holders: int  # messages no live node holds at the end (not in the ratio)
    rmr: float  # sum(transmissions) / sum(reached - 1) - 1 over measured messages
    rmr_max: float  # worst single message
    ldh_mean: float  # last delivery hop, mean over messages
    ldh_max: int
    ldh_optimum_mean: float  # BFS eccentricity of the source, mean over messages
    ldh_excess_max: int  # max over messages of LDH - optimum
    latency: Quantiles  # first-delivery latency over all (message, node) pairs
    latency_optimum: Quantiles  # shortest-path latency over the same pairs
    stretch: Quantiles  # latency / optimum per pair
    note_frames_per_msg: float  # note frames sent during the measured phase / messages
    note_bytes_per_msg: float
    msg_frames_per_msg: float  # frames carrying payloads / messages
    bytes_per_delivery: float  # all wire bytes (payloads, notes, framing) / copies delivered
    note_bytes_per_delivery: float  # the notes' share of it (their frames included)
    recovery_time: float | None  # the worst post-crash message: its sending -> every survivor
    # has it (every survivor has every message sent after the crash within this long)
    reshape_time: float | None  # crash -> the last message it held up (slower than its
    # shortest path by more than before the crash) reached every survivor
    post_crash_complete: float | None  # crash -> every survivor has every post-crash message
    # (runs to the last message sent: a length of the run, not a delay)
    heal_convergence: float | None  # heal -> every node has every pre-heal message
    converged: bool  # at the end every live node holds every message any live node holds
    live_connected: bool  # the overlay among the nodes alive at the end is connected
    virtual_time: float
    events: int
    wall_seconds: float
    join: JoinResult | None = None  # what a fresh node joining after the run saw

    def to_json(self) -> dict[str, Any]:
        """A plain dict for json.dump (NaN becomes None)."""

        def clean(x: Any) -> Any:
            if isinstance(x, float) and math.isnan(x):
                return None
            if isinstance(x, dict):
                return {k: clean(v) for k, v in x.items()}
            return x

        return {k: clean(v) for k, v in asdict(self).items()}

    def table(self) -> str:
        """A short human-readable report."""

        def q(x: Quantiles) -> str:
            return f"{x.p50:8.1f} {x.p95:8.1f} {x.p99:8.1f} {x.max:8.1f}"

        def opt(x: float | None, unit: str = "s") -> str:
            return "-" if x is None else f"{x:.3f} {unit}"

        lines = [
            f"nodes {self.nodes}  topology {self.topology}  strategy {self.strategy}"
            f"  seed {self.seed}  messages {self.messages}",
            f"delivery ratio        {self.delivery_ratio:.4f}"
            f"  (missing pairs {self.missing_pairs},"
            f" messages lost with their crashed holders {self.lost_with_holders})",
            f"RMR                   {self.rmr:.4f}  (worst message {self.rmr_max:.3f})",
            f"LDH mean / max        {self.ldh_mean:.2f} / {self.ldh_max}"
            f"   optimum mean {self.ldh_optimum_mean:.2f}   worst excess +{self.ldh_excess_max}",
            "latency ms            p50      p95      p99      max",
            f"  measured        {q(self.latency)}",
            f"  shortest path   {q(self.latency_optimum)}",
            f"  stretch (x)     {q(self.stretch)}",
            f"note frames / msg     {self.note_frames_per_msg:.2f}"
            f"   note bytes / msg {self.note_bytes_per_msg:.1f}"
            f"   msg frames / msg {self.msg_frames_per_msg:.2f}",
            f"wire bytes / delivery {self.bytes_per_delivery:.1f}"
            f"   of which notes {self.note_bytes_per_delivery:.1f}"
            f"   (message {MESSAGE_BYTES} bytes, framing and box-stream included)",
            f"recovery after crash  {opt(self.recovery_time)}"
            " (every survivor has each post-crash message within this of its sending)",
            f"trees reshaped        {opt(self.reshape_time)}"
            " (crash -> last message slower than its shortest path by more than before)"
            f"   all post-crash messages everywhere {opt(self.post_crash_complete)}",
            f"convergence after heal {opt(self.heal_convergence)}   converged {self.converged}"
            + ("" if self.live_connected else "   (the live nodes' overlay is disconnected)"),
            f"virtual {self.virtual_time:.1f} s   events {self.events}"
            f"   wall {self.wall_seconds:.2f} s",
        ]
        if self.join is not None:
            lines.append(self.join.line())
        return "\n".join(lines)


class Recorder:
    """Collects traces while the simulation runs; `result` turns them into figures."""

    def __init__(self) -> None:
        self.traces: list[MessageTrace] = []
        self.index: dict[Any, int] = {}  # payload -> trace index
        self.measuring = False
        self.note_frames = 0
        self.note_bytes = 0
        self.msg_frames = 0
        self.note_wire = 0  # bytes on the wire of note frames
        self.msg_wire = 0  # bytes on the wire of message frames

    def track(self, payload: Any, trace: MessageTrace) -> None:
        self.index[payload] = len(self.traces)
        self.traces.append(trace)

    def on_notes(self, body: Sequence[bytes | int]) -> None:
        """A clock frame with this wire body (net/notes.py) was sent."""
        if self.measuring:
            self.note_frames += 1
            size = body_bytes(body)
            self.note_bytes += size
            self.note_wire += wire_bytes(size, "clock")

    def on_payloads(self, payloads: Sequence[Any]) -> None:
        if not self.measuring:
            return
        self.msg_frames += 1
        self.msg_wire += wire_bytes(msgs_body_bytes(len(payloads)), "msgs")
        index = self.index
        traces = self.traces
        for p in payloads:
            j = index.get(p)
            if j is not None:
                traces[j].transmissions += 1

    def on_stored(self, node: int, payload: Any, source: int | None, now: float) -> None:
        j = self.index.get(payload)
        if j is None:
            return
        trace = self.traces[j]
        if node in trace.delivered_at:
            return  # a restarted node keeps its store; first delivery counts
        trace.delivered_at[node] = now
        trace.hops[node] = 0 if source is None else trace.hops.get(source, 0) + 1

    def result(
        self,
        *,
        meta: Mapping[str, Any],
        expected: Collection[int],
        survivors: Collection[int] | None,
        crash_at: float | None,
        heal_at: float | None,
        converged: bool,
        live_connected: bool,
        virtual_time: float,
        events: int,
        wall_seconds: float,
    ) -> SimResult:
        """Figures over the measured messages (a store only grows, so traces say who holds what)."""
        expected_set = set(expected)
        delivered = missing = gone = copies = 0
        tx_sum = reach_sum = 0
        rmr_max = 0.0
        ldhs: list[int] = []
        ldh_opts: list[int] = []
        excess: list[int] = []
        lat: list[float] = []
        lat_opt: list[float] = []
        stretch: list[float] = []
        for t in self.traces:
            got = expected_set.intersection(t.delivered_at)
            if got:
                delivered += len(got)
                copies += len(got) - (t.source in got)
                missing += len(expected_set) - len(got)
            else:
                gone += 1  # every holder crashed before passing it on: nobody can deliver it
            reached = len(t.delivered_at)
            if reached > 1:
                tx_sum += t.transmissions
                reach_sum += reached - 1
                rmr_max = max(rmr_max, t.transmissions / (reached - 1) - 1)
            ldh = max(t.hops.values())
            ecc = max(t.optimum_hops.values())
            ldhs.append(ldh)
            ldh_opts.append(ecc)
            excess.append(ldh - ecc)
            for node, at in t.delivered_at.items():
                if node == t.source:
                    continue
                ms = (at - t.sent_at) * 1000
                lat.append(ms)
                best = t.optimum_latency.get(node)
                if best is not None and best > 0:
                    lat_opt.append(best * 1000)
                    stretch.append(ms / (best * 1000))
        n = len(self.traces)
        recovery = reshape = post_complete = None
        if crash_at is not None and survivors is not None:
            recovery, reshape, post_complete = self._recovery(crash_at, set(survivors))
        heal = self._heal(heal_at, expected_set) if heal_at is not None else None
        return SimResult(
            nodes=int(meta["nodes"]),
            strategy=str(meta["strategy"]),
            topology=str(meta["topology"]),
            seed=int(meta["seed"]),
            messages=n,
            delivery_ratio=delivered / (delivered + missing) if delivered + missing else math.nan,
            missing_pairs=missing,
            lost_with_holders=gone,
            rmr=(tx_sum / reach_sum - 1) if reach_sum else math.nan,
            rmr_max=rmr_max,
            ldh_mean=sum(ldhs) / n,
            ldh_max=max(ldhs),
            ldh_optimum_mean=sum(ldh_opts) / n,
            ldh_excess_max=max(excess),
            latency=Quantiles.of(lat),
            latency_optimum=Quantiles.of(lat_opt),
            stretch=Quantiles.of(stretch),
            note_frames_per_msg=self.note_frames / n,
            note_bytes_per_msg=self.note_bytes / n,
            msg_frames_per_msg=self.msg_frames / n,
            bytes_per_delivery=(self.note_wire + self.msg_wire) / copies if copies else math.nan,
            note_bytes_per_delivery=self.note_wire / copies if copies else math.nan,
            recovery_time=recovery,
            reshape_time=reshape,
            post_crash_complete=post_complete,
            heal_convergence=heal,
            converged=converged,
            live_connected=live_connected,
            virtual_time=virtual_time,
            events=events,
            wall_seconds=wall_seconds,
        )

    def _recovery(
        self, crash_at: float, survivors: set[int]
    ) -> tuple[float | None, float | None, float | None]:
        """(recovery, trees reshaped, all post-crash messages everywhere), in seconds.

        Recovery, as issue 14 defines it ("every survivor has every message sent after
        the crash"): the longest any message sent after the crash took from its sending
        until every survivor held it. A message sent just after the crash waits for the
        failure's detection and the repair, so this is the repair's cost to a message.

        Trees reshaped: from the crash until the last message that the failure *held
        up* reached every survivor (0 when none was). A message is held up when its
        completion exceeds its shortest-path completion (over the survivors' links, at
        send time) by more than any message that completed before the crash did; this
        measures how long the repaired trees stay slower than the best survivor paths.

        All post-crash messages everywhere: from the crash until the last message sent
        reached every survivor (it runs to the end of the measured phase).
        """
        normal = 0.0
        for t in self.traces:
            if len(t.delivered_at) > 1 and max(t.delivered_at.values()) < crash_at:
                normal = max(normal, self._excess(t, t.delivered_at.keys()))
        complete = held_up = worst = 0.0
        any_post = False
        for t in self.traces:
            if t.sent_at < crash_at:
                continue
            any_post = True
            if not survivors.issubset(t.delivered_at):
                return None, None, None
            last = max(t.delivered_at[x] for x in survivors)
            complete = max(complete, last)
            worst = max(worst, last - t.sent_at)
            if self._excess(t, survivors) > normal + 1e-9:
                held_up = max(held_up, last)
        if not any_post:
            return None, None, None
        reshape = held_up - crash_at if held_up else 0.0
        return worst, reshape, complete - crash_at

    @staticmethod
    def _excess(t: MessageTrace, nodes: Iterable[int]) -> float:
        """Completion time over `nodes` minus the shortest-path completion time."""
        nodes = list(nodes)
        last = max(t.delivered_at[x] for x in nodes) - t.sent_at
        best = max(t.optimum_latency.get(x, 0.0) for x in nodes)
        return last - best

    def _heal(self, heal_at: float, expected: set[int]) -> float | None:
        done = heal_at
        for t in self.traces:
            if t.sent_at > heal_at:
                continue
            if not expected.issubset(t.delivered_at):
                return None
            done = max(done, max(t.delivered_at[x] for x in expected))
        return done - heal_at
