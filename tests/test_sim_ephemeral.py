"""The ephemeral simulator (net/sim/ephemeral.py): small overlays, exact claims."""

from __future__ import annotations

from net.sim import sim_main
from net.sim.ephemeral import EphemeralSimConfig, run_ephemeral

SMALL = EphemeralSimConfig(nodes=30, degree=4, hops=2, runs=30, seed=3)


def test_with_rerelay_every_node_within_the_hop_limit_gets_the_datum() -> None:
    r = run_ephemeral(SMALL)
    assert r.radius == 1.0 and 0 < r.reach < 1.0
    assert r.full_hops_right == 1.0  # without pass a full-count copy is proof


def test_one_hop_costs_exactly_one_frame_per_neighbour() -> None:
    r = run_ephemeral(EphemeralSimConfig(nodes=30, degree=4, hops=1, runs=10))
    assert r.frames == 4.0 and r.radius == 1.0


def test_proxy_pass_makes_a_full_count_copy_no_longer_proof() -> None:
    on = run_ephemeral(EphemeralSimConfig(nodes=30, degree=4, hops=2, runs=60, pass_=True))
    assert on.full_hops_right is not None and on.full_hops_right < 0.9


def test_a_run_is_a_pure_function_of_its_config() -> None:
    assert run_ephemeral(SMALL) == run_ephemeral(SMALL)


def test_the_command_line_prints_a_row_per_hops_and_pass(capsys: object) -> None:
    argv = ["--ephemeral", "--nodes", "20", "--degree", "4", "--runs", "5", "--hops", "1", "2"]
    assert sim_main(argv) == 0
    out = capsys.readouterr().out.splitlines()  # type: ignore[attr-defined]
    assert out[0].split()[:3] == ["nodes", "hops", "pass"] and len(out) == 5
    assert sim_main(["--ephemeral", "--hops", "9"]) == 2
