"""`NodeOptions`: the knobs tests and benchmarks turn on a node."""

from __future__ import annotations

from dataclasses import dataclass, field

from chat.ephemeral import EphemeralOptions
from net.ebt import EbtConfig
from net.peer import HANDSHAKE_TIMEOUT, PING_INTERVAL
from net.schedule import ScheduleConfig

STATUS_INTERVAL = 1.0


@dataclass(frozen=True, slots=True)
class NodeOptions:
    """Knobs tests and benchmarks turn; the defaults are what a user runs."""

    ebt: EbtConfig = field(default_factory=EbtConfig)
    ping_interval: float = PING_INTERVAL
    handshake_timeout: float = HANDSHAKE_TIMEOUT
    status_interval: float = STATUS_INTERVAL
    write_status: bool = True
    replicate_all: bool = False  # want the feed of every peer we link with (benchmarks, bots)
    schedule: bool = True  # run the gossip schedule (redial remembered peers, LAN, pubs)
    ephemeral: EphemeralOptions = field(default_factory=EphemeralOptions)  # presence, typing
    newest_first: bool = True  # feeds far behind come newest window first (net/ranges.py)
    schedule_config: ScheduleConfig = field(default_factory=ScheduleConfig)  # back-offs, rounds
