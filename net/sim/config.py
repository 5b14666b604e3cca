"""The simulator's settings: strategy, overlay, link latencies, workload and failures."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from net.sim.topology import TopologyKind


class Strategy(enum.Enum):
    """Which configuration of the one EBT core the nodes run."""

    EBT = "ebt"  # prune + faster-tree swap
    EBT_NOSWAP = "ebt-noswap"  # prune, no swap
    FLOOD = "flood"  # every link stays eager (prune off)


class LatencyDist(enum.Enum):
    """How each link's base latency is drawn (once per link) around the mean."""

    CONSTANT = "constant"  # every link has the mean
    UNIFORM = "uniform"  # uniform in [0, 2*mean] (Maelstrom's uniform)
    EXPONENTIAL = "exponential"  # exponential with that mean


class FeedScope(enum.Enum):
    """Which feeds every node replicates."""

    SOURCES = "sources"  # the feeds of the nodes that post (the others stay empty)
    ALL = "all"  # every node's feed, empty or not (costs nodes x degree x nodes link states)


class PartitionKind(enum.Enum):
    """Which nodes a partition cuts off."""

    REGION = "region"  # a connected piece: the nodes nearest a random node
    RANDOM = "random"  # nodes drawn at random (the cut-off side is itself fragmented)


class SimConfigError(ValueError):
    """A simulation setting is out of range; the message names the setting."""


@dataclass(frozen=True, slots=True)
class SimConfig:
    """One simulation run. Times are seconds of virtual time unless the name says ms."""

    nodes: int = 100
    topology: TopologyKind = TopologyKind.REGULAR
    degree: int = 6  # for the random regular overlay
    branching: int = 3  # for the tree overlay
    latency_ms: float = 50.0  # mean base latency of a link
    latency_dist: LatencyDist = LatencyDist.CONSTANT
    jitter: float = 0.0  # each frame takes base * (1 + jitter * U[0,1)), FIFO kept per direction
    strategy: Strategy = Strategy.EBT
    seed: int = 1
    sources: int | None = 20  # nodes that post (random; capped at nodes); None: every node
    feeds: FeedScope = FeedScope.SOURCES
    warmup: int = 10  # messages per source before measuring (each feed's tree forms)
    messages: int = 200  # measured messages, each from a random live source
    interval_ms: float = 50.0  # gap between two messages
    settle: float = 3.0  # quiet time between warm-up and the measured messages
    tick_ms: float = 200.0  # each node's Replicator.tick period
    stall_timeout: float = 3.0  # EbtConfig.stall_timeout (the core's default)
    note_delay: float = 0.2  # EbtConfig.note_delay (the core's default)
    numbered_notes: bool = True  # False: every clock frame names its feeds in full, as
    # before net/notes.py numbered them (for before/after figures)
    swap_after: int = 3  # EbtConfig.swap_after (the core's default)
    push_batch: int = 64  # messages per frame when the driver pushes from its store
    detect_ms: float = 500.0  # how long before a peer notices a broken link
    crash_fraction: float = 0.0  # fraction of nodes crashed at once
    crash_at: float = 2.0  # seconds after the first measured message
    restart_after: float | None = None  # crashed nodes come back after this long (None: never)
    partition_fraction: float = 0.0  # fraction of nodes cut off from the rest
    partition_kind: PartitionKind = PartitionKind.REGION
    partition_at: float = 2.0  # seconds after the first measured message
    heal_after: float = 5.0  # the partition heals after this long
    max_time: float = 600.0  # hard stop of virtual time
    bandwidth_mbps: float = 0.0  # per link direction: a frame waits its bytes' time (0: none)
    backlog: int = 0  # messages every source's feed holds at every node before the run
    join: int = 0  # then a fresh node joins, linked to this many live nodes (0: none)
    join_history: int | None = None  # the joiner's `history` (None = all)
    join_ranges: bool = True  # it fetches far feeds newest first (False: pushed oldest first)

    def validate(self) -> None:
        """Raise SimConfigError naming the first setting that is out of range."""
        checks: list[tuple[bool, str]] = [
            (self.nodes >= 2, "nodes must be at least 2"),
            (self.latency_ms > 0, "latency must be positive"),
            (self.jitter >= 0, "jitter must not be negative"),
            (self.warmup >= 0, "warm-up messages must not be negative"),
            (self.messages >= 1, "at least one measured message is needed"),
            (self.interval_ms >= 0, "the message interval must not be negative"),
            (self.tick_ms > 0, "the tick period must be positive"),
            (self.push_batch >= 1, "the push batch must hold at least one message"),
            (0 <= self.crash_fraction < 1, "crash fraction must be in [0, 1)"),
            (0 <= self.partition_fraction < 1, "partition fraction must be in [0, 1)"),
            (self.detect_ms >= 0, "failure detection delay must not be negative"),
            (self.heal_after > 0, "heal-after must be positive"),
            (self.restart_after is None or self.restart_after > 0, "restart-after must be > 0"),
            (self.sources is None or self.sources >= 1, "sources must be at least 1"),
            (self.backlog >= 0, "the backlog must not be negative"),
            (self.bandwidth_mbps >= 0, "bandwidth must not be negative"),
            (self.join >= 0, "join must not be negative"),
            (self.join_history is None or self.join_history >= 1, "join history must be >= 1"),
        ]
        for ok, why in checks:
            if not ok:
                raise SimConfigError(why)
