"""The Maelstrom broadcast node: protocol replies, link layer, overlays, and workloads."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from typing import Any

import pytest

from net.maelstrom import PRESETS, MaelstromNode, NodeSettings, Overlay, overlay_links
from tests.maelstrom_harness import Workload, WorkloadConfig, grid_topology, run_workload

IMMEDIATE = NodeSettings(ready_wait=0.0)  # answer init at once (single-node tests)


def _env(src: str, dest: str, body: dict[str, Any]) -> dict[str, Any]:
    return {"src": src, "dest": dest, "body": body}


def _init(node: MaelstromNode, name: str, ids: list[str], now: float = 0.0) -> list[Any]:
    body = {"type": "init", "msg_id": 1, "node_id": name, "node_ids": ids}
    return node.handle(now, _env("c0", name, body))


def _replies(out: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e["body"] for e in out if e["dest"].startswith("c")]


# ------------------------------------------------------------------- one node


def test_init_broadcast_read_replies() -> None:
    node = MaelstromNode(IMMEDIATE)
    [ok] = _replies(_init(node, "n0", ["n0"]))
    assert ok["type"] == "init_ok" and ok["in_reply_to"] == 1
    out = node.handle(0.1, _env("c1", "n0", {"type": "broadcast", "message": 7, "msg_id": 5}))
    [ok] = _replies(out)
    assert ok == {"type": "broadcast_ok", "in_reply_to": 5, "msg_id": ok["msg_id"]}
    out = node.handle(0.2, _env("c1", "n0", {"type": "read", "msg_id": 6}))
    [read] = _replies(out)
    assert read["type"] == "read_ok" and read["messages"] == [7]
    topo = {"type": "topology", "topology": {"n0": []}, "msg_id": 8}
    [ok] = _replies(node.handle(0.3, _env("c1", "n0", topo)))
    assert ok["type"] == "topology_ok" and ok["in_reply_to"] == 8


def test_unknown_and_malformed_input_is_answered_or_skipped() -> None:
    node = MaelstromNode(IMMEDIATE)
    _init(node, "n0", ["n0"])
    [err] = _replies(node.handle(0.1, _env("c1", "n0", {"type": "cas", "msg_id": 2})))
    assert err["type"] == "error" and err["code"] == 10 and err["in_reply_to"] == 2
    assert node.handle(0.1, {"nonsense": True}) == []
    assert node.handle(0.1, _env("c1", "n0", {"type": "broadcast", "msg_id": 3})) == []
    assert node.handle(0.1, _env("n9", "n0", {"type": "ebt", "ack": "x"})) == []
    assert len(node.log_lines) == 3


def test_bad_frames_from_a_peer_are_skipped_and_the_link_goes_on() -> None:
    node = MaelstromNode(IMMEDIATE)
    _init(node, "n1", ["n0", "n1"])
    frames = [
        "garbage",  # not a frame
        [["n", ["n0", "bad"]]],  # a note the core refuses
        [["n", ["n0", 5, "n1", 1]]],  # n0's opening clock: it holds 2 entries of its feed
        [["m", [["n0", 1, None], ["n0", 2, 5]]]],
    ]
    body = {"type": "ebt", "ack": 0, "first": 1, "frames": frames}
    node.handle(0.1, _env("n0", "n1", body))
    assert node.values == [5]
    assert len(node.log_lines) == 1 and "n0" in node.log_lines[0]


def test_init_waits_for_every_feed_until_ready_wait() -> None:
    node = MaelstromNode(NodeSettings(ready_wait=2.0))
    assert _replies(_init(node, "n1", ["n0", "n1"])) == []  # n0's feed not here yet
    assert _replies(node.tick(1.0)) == []
    [ok] = _replies(node.tick(2.0))
    assert ok["type"] == "init_ok"


# ------------------------------------------------------------------- overlays


@pytest.mark.parametrize(
    "kind", [Overlay.STAR, Overlay.STAR_RING, Overlay.TREE4, Overlay.FULL, Overlay.HUBS]
)
@pytest.mark.parametrize("n", [2, 3, 5, 25])
def test_overlays_are_symmetric_and_connected(kind: Overlay, n: int) -> None:
    ids = [f"n{i}" for i in range(n)]
    links = {x: overlay_links(kind, x, ids, {}) for x in ids}
    assert all(x in links[y] for x in ids for y in links[x])
    seen, todo = {"n0"}, ["n0"]
    while todo:
        for y in links[todo.pop()]:
            if y not in seen:
                seen.add(y)
                todo.append(y)
    assert seen == set(ids)


def test_given_overlay_uses_the_topology_message() -> None:
    ids = ["n0", "n1", "n2"]
    given = {"n0": ["n1"], "n1": ["n0", "n2"], "n2": ["n1"]}
    assert overlay_links(Overlay.GIVEN, "n0", ids, given) == ["n1"]
    assert overlay_links(Overlay.GIVEN, "n1", ids, given) == ["n0", "n2"]


def test_hubs_spread_the_leaves_and_no_node_links_to_all() -> None:
    ids = [f"n{i}" for i in range(100)]
    degree = {x: len(overlay_links(Overlay.HUBS, x, ids, {})) for x in ids}
    assert sorted(set(degree.values())) == [1, 23]  # 20 hubs: 19 hubs + 4 leaves each


def test_a_lone_body_leaves_at_once_and_then_one_per_window() -> None:
    settings = NodeSettings(overlay=Overlay.STAR, batch_window=0.3, note_delay=0, ready_wait=0)
    node = MaelstromNode(settings)
    _init(node, "n1", ["n0", "n1"])
    clock = {"type": "ebt", "ack": 0, "first": 1, "frames": [[["n", {}]]]}
    opening = node.handle(0.0, _env("n0", "n1", clock))
    # n0's empty opening clock makes n1 answer with its own: the link was idle, so at once
    assert [e["dest"] for e in opening] == ["n0"]

    def to_peer(out: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [e for e in out if e["dest"] == "n0"]

    value = {"type": "broadcast", "message": 1, "msg_id": 2}
    assert to_peer(node.handle(0.1, _env("c1", "n1", value))) == []  # within the window
    assert to_peer(node.tick(0.29)) == []
    [body] = to_peer(node.tick(0.3))  # one window after the last body
    assert body["body"]["frames"]


def test_given_overlay_follows_maelstroms_grid_and_loses_nothing() -> None:
    cfg = replace(
        QUICK, partitions=True, nemesis_interval=1.0, settings=NodeSettings(overlay=Overlay.GIVEN)
    )
    w = Workload(cfg)
    result = w.run()
    assert result.lost == [] and result.partitions >= 2
    grid = grid_topology(w.ids)
    for name, node in w.nodes.items():
        assert sorted(node.links) == sorted(grid[name])


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_preset_loses_nothing_under_partitions(preset: str) -> None:
    cfg = replace(QUICK, partitions=True, nemesis_interval=1.0, settings=PRESETS[preset])
    assert run_workload(cfg).lost == []


# ------------------------------------------------------------------- two nodes, lossy pipe


def _pair_run(
    drop: set[int], reorder: bool, *, opening_entry: bool = True
) -> tuple[MaelstromNode, MaelstromNode]:
    """Two nodes joined by a pipe that drops the server messages numbered in `drop`."""
    settings = NodeSettings(
        ready_wait=0.0, resend_after=0.5, ack_delay=0.2, opening_entry=opening_entry
    )
    nodes = {"n0": MaelstromNode(settings), "n1": MaelstromNode(settings)}
    in_flight: list[tuple[float, dict[str, Any]]] = []
    count = 0

    def route(now: float, out: list[dict[str, Any]]) -> None:
        nonlocal count
        for env in out:
            if env["dest"] in nodes:
                count += 1
                if count not in drop:
                    delay = 0.05 if not reorder or count % 2 else 0.15
                    in_flight.append((now + delay, json.loads(json.dumps(env))))

    for name in nodes:
        route(0.0, _init(nodes[name], name, list(nodes)))
    for i in range(20):
        body = {"type": "broadcast", "message": i, "msg_id": 100 + i}
        route(0.01 * i, nodes[f"n{i % 2}"].handle(0.01 * i, _env("c1", f"n{i % 2}", body)))
    now = 0.0
    while now < 15.0:
        now = round(now + 0.01, 2)
        for at, env in sorted(in_flight, key=lambda x: x[0]):
            if at <= now:
                in_flight.remove((at, env))
                route(now, nodes[env["dest"]].handle(now, env))
        for node in nodes.values():
            route(now, node.tick(now))
    return nodes["n0"], nodes["n1"]


@pytest.mark.parametrize("opening_entry", [True, False])
def test_two_nodes_exchange_every_value(opening_entry: bool) -> None:
    a, b = _pair_run(drop=set(), reorder=False, opening_entry=opening_entry)
    assert sorted(a.values) == sorted(b.values) == list(range(20))


def test_lost_and_reordered_frames_are_sent_again_in_order() -> None:
    a, b = _pair_run(drop={3, 4, 5, 9, 12}, reorder=True)
    assert sorted(a.values) == sorted(b.values) == list(range(20))


# ------------------------------------------------------------------- the workload


QUICK = WorkloadConfig(nodes=10, rate=60, duration=4.0, recovery=6.0, seed=3)


def test_workload_loses_nothing_and_counts_messages() -> None:
    result = run_workload(QUICK)
    assert result.lost == []
    assert result.broadcasts > 50 and result.reads > 50
    assert result.operations == result.broadcasts + result.reads + QUICK.nodes
    assert result.msgs_per_op == result.server_messages / result.operations
    assert result.stable_latency["1"] < 2000  # no partition: every value spreads in time


@pytest.mark.parametrize("dist", ["constant", "exponential"])
def test_workload_with_partitions_loses_nothing(dist: str) -> None:
    cfg = replace(QUICK, partitions=True, nemesis_interval=1.0, latency_dist=dist)
    result = run_workload(cfg)
    assert result.partitions >= 2
    assert result.lost == []


def test_checker_reports_a_value_missing_from_a_final_read() -> None:
    w = Workload(QUICK)
    w.acked = {1: 0.5, 2: 0.6}
    w.reads = [(0.7, {1}), (0.9, {1, 2})]
    w.final_reads = [{1, 2}, {1}]
    result = w._check()
    assert result.lost == [2]
    assert result.stable_latency["0"] == 0.0  # value 1 was never missed


def test_checker_stable_latency_is_last_missing_read() -> None:
    w = Workload(QUICK)
    w.acked = {1: 1.0}
    w.reads = [(0.5, set()), (1.2, set()), (1.5, {1}), (1.7, set())]  # 0.5: before known
    w.final_reads = [{1}]
    result = w._check()
    assert result.stable_latency["1"] == pytest.approx(700.0, abs=1e-3)


# ------------------------------------------------------------------- the stdin/stdout shell


def test_shell_speaks_json_lines() -> None:
    lines = [
        _env("c0", "n0", {"type": "init", "msg_id": 1, "node_id": "n0", "node_ids": ["n0"]}),
        _env("c1", "n0", {"type": "broadcast", "message": 42, "msg_id": 2}),
        _env("c1", "n0", {"type": "read", "msg_id": 3}),
    ]
    stdin = "".join(json.dumps(x) + "\n" for x in lines) + "not json\n"
    code = "import sys; from net.maelstrom import maelstrom_main; sys.exit(maelstrom_main())"
    proc = subprocess.run(
        [sys.executable, "-c", code],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    replies = [json.loads(x)["body"] for x in proc.stdout.splitlines()]
    assert [r["type"] for r in replies] == ["init_ok", "broadcast_ok", "read_ok"]
    assert replies[2]["messages"] == [42]
    assert "not JSON" in proc.stderr
