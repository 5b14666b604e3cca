"""The simulator: overlays, metrics, determinism, and the EBT core's behaviour on small networks."""

from __future__ import annotations

import json
import random
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from net.boxstream import BoxStreamEncoder
from net.frames import Clock, Msgs, encode_frame
from net.notes import NoteWriter, body_bytes
from net.sim import (
    LatencyDist,
    PartitionKind,
    SimConfig,
    SimConfigError,
    Strategy,
    TopologyError,
    TopologyKind,
    run_simulation,
    sim_main,
    topology,
)
from net.sim.metrics import (
    MESSAGE_BYTES,
    MessageTrace,
    Recorder,
    msgs_body_bytes,
    percentile,
    wire_bytes,
)

# Small enough to keep the whole file in a few seconds, large enough for real trees.
SMALL = SimConfig(
    nodes=30,
    degree=4,
    sources=4,
    warmup=6,
    messages=30,
    interval_ms=40,
    latency_ms=20,
    settle=1.0,
    stall_timeout=1.0,
    detect_ms=100,
    seed=7,
)


# ------------------------------------------------------------------- overlays


@pytest.mark.parametrize(("n", "k", "seed"), [(10, 3, 1), (50, 6, 2), (101, 4, 3), (8, 7, 4)])
def test_random_regular_is_simple_connected_and_regular(n: int, k: int, seed: int) -> None:
    g = topology.random_regular(n, k, random.Random(seed))
    assert all(len(adj) == k for adj in g)
    assert all(u not in adj and len(set(adj)) == len(adj) for u, adj in enumerate(g))
    assert all(u in g[v] for u, adj in enumerate(g) for v in adj)  # symmetric
    assert topology.is_connected(g)


def test_random_regular_refuses_impossible_degrees() -> None:
    rng = random.Random(1)
    with pytest.raises(TopologyError, match="even"):
        topology.random_regular(5, 3, rng)
    with pytest.raises(TopologyError, match="between"):
        topology.random_regular(4, 4, rng)


def test_line_tree_full_shapes() -> None:
    assert topology.line(4) == [[1], [0, 2], [1, 3], [2]]
    t = topology.tree(7, 2)
    assert t[0] == [1, 2] and t[1] == [0, 3, 4] and t[6] == [2]
    f = topology.full(4)
    assert all(len(adj) == 3 for adj in f)


def test_bfs_and_dijkstra_respect_usable_edges() -> None:
    g = topology.line(5)
    assert topology.bfs_hops(g, 0) == {0: 0, 1: 1, 2: 2, 3: 3, 4: 4}
    cut = topology.bfs_hops(g, 0, lambda u, v: {u, v} != {2, 3})
    assert cut == {0: 0, 1: 1, 2: 2}
    lat = topology.dijkstra(g, 4, lambda u, v: 0.5 if {u, v} == {0, 1} else 0.1)
    assert lat[0] == pytest.approx(0.8)


# ------------------------------------------------------------------- metrics


@pytest.mark.parametrize("count", [1, 15, 16, 40])
def test_wire_bytes_match_real_frames_in_a_box_stream(count: int) -> None:
    raws = tuple(bytes([i]) * MESSAGE_BYTES for i in range(count))
    notes = {bytes([i]) * 32: 2 * i + 1 for i in range(count)}
    box = BoxStreamEncoder(b"k" * 32, b"n" * 24)
    sent = len(box.encrypt(encode_frame(Msgs(raws))))
    assert wire_bytes(msgs_body_bytes(count), "msgs") == sent
    writer, twin = NoteWriter(), NoteWriter()
    for _ in range(2):  # first every feed named in full, then by number
        body = twin.encode(notes)
        sent = len(box.encrypt(encode_frame(Clock(notes), writer)))
        assert wire_bytes(body_bytes(body), "clock") == sent


def test_percentile_nearest_rank() -> None:
    values = [float(x) for x in range(1, 101)]
    assert percentile(values, 50) == 50
    assert percentile(values, 99) == 99
    assert percentile(values, 100) == 100
    assert percentile([3.0], 95) == 3.0


def test_recorder_rmr_and_ldh_from_traces() -> None:
    rec = Recorder()
    rec.measuring = True
    trace = MessageTrace(0, 0.0, {0: 0, 1: 1, 2: 1, 3: 2}, {0: 0.0, 1: 0.1, 2: 0.1, 3: 0.2})
    rec.track((0, 1), trace)
    rec.on_stored(0, (0, 1), None, 0.0)
    for frm, to, at in [(0, 1, 0.1), (0, 2, 0.1), (1, 3, 0.2), (2, 3, 0.25)]:
        rec.on_payloads([(0, 1)])
        rec.on_stored(to, (0, 1), frm, at)
    result = rec.result(
        meta={"nodes": 4, "strategy": "ebt", "topology": "x", "seed": 0},
        expected=[0, 1, 2, 3],
        survivors=None,
        crash_at=None,
        heal_at=None,
        converged=True,
        live_connected=True,
        virtual_time=1.0,
        events=0,
        wall_seconds=0.0,
    )
    assert result.rmr == pytest.approx(4 / 3 - 1)  # one duplicate copy to node 3
    assert result.ldh_max == 2 and result.ldh_excess_max == 0
    assert result.delivery_ratio == 1.0
    assert result.latency.max == pytest.approx(200.0)


# ------------------------------------------------------------------- runs of the core


def test_same_seed_same_result_and_seed_matters() -> None:
    def figures(cfg: SimConfig) -> dict[str, object]:
        data = run_simulation(cfg).to_json()
        del data["wall_seconds"]
        return data

    cfg = replace(SMALL, latency_dist=SMALL.latency_dist.UNIFORM, jitter=0.3)
    assert figures(cfg) == figures(cfg)
    assert figures(cfg) != figures(replace(cfg, seed=cfg.seed + 1))


def test_ebt_delivers_everything_with_few_redundant_copies() -> None:
    result = run_simulation(SMALL)
    assert result.delivery_ratio == 1.0
    assert result.converged
    assert result.rmr < 0.5
    assert result.ldh_excess_max <= 1  # the faster-tree swap keeps paths near the optimum


def test_flood_sends_far_more_copies_than_ebt() -> None:
    ebt = run_simulation(SMALL)
    flood = run_simulation(replace(SMALL, strategy=Strategy.FLOOD))
    assert flood.delivery_ratio == 1.0
    assert flood.rmr > 1.5  # degree 4: about 2 redundant copies per node
    assert flood.rmr > 5 * max(ebt.rmr, 0.05)


def test_survivors_get_every_message_after_a_crash() -> None:
    result = run_simulation(replace(SMALL, crash_fraction=0.3, crash_at=0.3))
    assert result.delivery_ratio == 1.0  # over the nodes still alive at the end
    assert result.recovery_time is not None
    assert result.reshape_time is not None
    assert result.post_crash_complete is not None
    assert result.recovery_time <= result.post_crash_complete


def test_restarted_nodes_catch_up() -> None:
    cfg = replace(SMALL, crash_fraction=0.3, crash_at=0.3, restart_after=0.5)
    result = run_simulation(cfg)
    assert result.converged
    assert result.delivery_ratio == 1.0


def test_partition_heals_to_full_convergence() -> None:
    cfg = replace(SMALL, partition_fraction=0.4, partition_at=0.2, heal_after=0.8)
    result = run_simulation(cfg)
    assert result.converged
    assert result.delivery_ratio == 1.0
    assert result.heal_convergence is not None


def test_every_strategy_and_overlay_delivers() -> None:
    for strategy in Strategy:
        for kind in (TopologyKind.LINE, TopologyKind.TREE, TopologyKind.FULL):
            cfg = replace(SMALL, nodes=12, topology=kind, strategy=strategy, messages=10)
            assert run_simulation(cfg).delivery_ratio == 1.0, (strategy, kind)


@st.composite
def small_runs(draw: st.DrawFn) -> SimConfig:
    """Any small network, strategy, timing and failure mix the simulator supports."""
    nodes = draw(st.sampled_from([8, 12, 16]))
    return SimConfig(
        nodes=nodes,
        degree=draw(st.sampled_from([3, 4])),
        topology=draw(st.sampled_from(list(TopologyKind))),
        strategy=draw(st.sampled_from(list(Strategy))),
        latency_dist=draw(st.sampled_from(list(LatencyDist))),
        jitter=draw(st.sampled_from([0.0, 0.5])),
        latency_ms=20,
        sources=draw(st.sampled_from([1, 3, None])),
        warmup=draw(st.integers(0, 2)),
        messages=draw(st.integers(1, 12)),
        interval_ms=draw(st.sampled_from([0.0, 20.0, 100.0])),
        settle=0.5,
        stall_timeout=draw(st.sampled_from([0.5, 3.0])),
        note_delay=draw(st.sampled_from([0.0, 0.1])),
        detect_ms=draw(st.sampled_from([0.0, 100.0, 1000.0])),
        crash_fraction=draw(st.sampled_from([0.0, 0.25])),
        crash_at=draw(st.floats(0, 1)),
        restart_after=draw(st.sampled_from([None, 0.3, 2.0])),
        partition_fraction=draw(st.sampled_from([0.0, 0.4])),
        partition_kind=draw(st.sampled_from(list(PartitionKind))),
        partition_at=draw(st.floats(0, 1)),
        heal_after=draw(st.sampled_from([0.2, 1.5])),
        seed=draw(st.integers(0, 10_000)),
        max_time=200,
    )


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(small_runs())
def test_every_message_some_live_node_holds_reaches_every_live_node(cfg: SimConfig) -> None:
    # Crashes, restarts, partitions and heals in any order: once the network is whole
    # again, no feed known to be available from a connected peer stays stalled.
    result = run_simulation(cfg)
    if result.live_connected:
        assert result.converged, cfg
        assert result.delivery_ratio == 1.0 or result.missing_pairs == 0, cfg


def test_bad_settings_are_named() -> None:
    with pytest.raises(SimConfigError, match="crash fraction"):
        replace(SMALL, crash_fraction=1.5).validate()


# ------------------------------------------------------------------- command line


def test_cli_prints_table_and_writes_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "r.json"
    argv = ["--nodes", "12", "--degree", "4", "--sources", "3", "--warmup", "3"]
    argv += ["--messages", "8", "--latency", "10", "--json", str(out)]
    assert sim_main(argv) == 0
    assert "RMR" in capsys.readouterr().out
    data = json.loads(out.read_text())
    assert data["nodes"] == 12 and data["delivery_ratio"] == 1.0


def test_cli_rejects_impossible_overlay(capsys: pytest.CaptureFixture[str]) -> None:
    assert sim_main(["--nodes", "5", "--degree", "3"]) == 2
    assert "even" in capsys.readouterr().err


def test_a_fresh_node_joining_gets_the_newest_of_every_feed_first_by_range_requests() -> None:
    joining = replace(SMALL, backlog=400, join=2, bandwidth_mbps=5.0)
    ranged = run_simulation(joining).join
    pushed = run_simulation(replace(joining, join_ranges=False)).join
    partial = run_simulation(replace(joining, join_history=150)).join
    assert ranged is not None and pushed is not None and partial is not None
    # Every one ends holding what it wants: the same pure core, range path or push.
    assert ranged.all_s is not None and pushed.all_s is not None and partial.all_s is not None
    assert ranged.newest_s is not None and pushed.newest_s is not None
    everything = 4 * (400 + SMALL.warmup) + SMALL.messages
    assert ranged.wanted == pushed.wanted == everything and partial.wanted == 4 * 150
    assert ranged.range_requests > 0 and pushed.range_requests == 0
    # The newest message of every feed comes long before a push reaches it (virtual time).
    assert ranged.newest_s * 3 < pushed.newest_s
    assert partial.all_s < ranged.all_s
    assert run_simulation(joining).join == ranged  # deterministic
    argv = ["--nodes", "8", "--sources", "2", "--messages", "5", "--backlog", "300"]
    assert sim_main([*argv, "--join", "2", "--join-history", "100", "--bandwidth", "5"]) == 0
