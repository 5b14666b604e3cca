"""The replication simulator: the one EBT core on a virtual network, with its metrics."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from net.sim.config import (
    FeedScope,
    LatencyDist,
    PartitionKind,
    SimConfig,
    SimConfigError,
    Strategy,
)
from net.sim.metrics import Quantiles, SimResult
from net.sim.run import sim_main
from net.sim.topology import TopologyError, TopologyKind

if TYPE_CHECKING:
    from net.sim.engine import run_simulation

__all__ = [
    "FeedScope",
    "LatencyDist",
    "PartitionKind",
    "Quantiles",
    "SimConfig",
    "SimConfigError",
    "SimResult",
    "Strategy",
    "TopologyError",
    "TopologyKind",
    "run_simulation",
    "sim_main",
]


def __getattr__(name: str) -> Any:
    # The engine imports the EBT core; load it only when a run is asked for.
    if name == "run_simulation":
        from net.sim.engine import run_simulation

        return run_simulation
    raise AttributeError(name)
