"""Tests of the pure gossip schedule policy (net/schedule.py) with a fake clock."""

from __future__ import annotations

import random
import re
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from net.schedule import (
    Admission,
    ClassPolicy,
    Decision,
    Dial,
    Forget,
    Hangup,
    HangupCause,
    PeerSource,
    PeerState,
    PeerTable,
    ScheduleConfig,
    admit_incoming,
    backoff_delay,
    decide,
    explain,
)

LAN, PUB, FRIEND, OTHER = PeerSource.LAN, PeerSource.PUB, PeerSource.FRIEND, PeerSource.OTHER
T0 = 1_700_000_000.0


def key(n: int) -> bytes:
    return n.to_bytes(2, "big") * 16


def addr(n: int) -> tuple[str, int]:
    return ("127.0.0.1", 7000 + n)


class Sim:
    """Drives a table with a fake clock, applying decisions like the runner does."""

    def __init__(self, config: ScheduleConfig | None = None, seed: int = 1) -> None:
        self.now = T0
        self.table = PeerTable(config, random.Random(seed))
        self.rng = random.Random(seed + 1000)
        self.dials: list[Dial] = []
        self.hangups: list[Hangup] = []

    def add(self, n: int, source: PeerSource = LAN, permanent: bool = False) -> bytes:
        self.table.add(key(n), addr(n), source, self.now, permanent=permanent)
        return key(n)

    def step(self, downloading: bool = False) -> list[Decision]:
        decisions = decide(self.table, self.now, self.rng, downloading)
        for d in decisions:
            if isinstance(d, Dial):
                self.table.on_dial_started(d.key, self.now)
                self.dials.append(d)
            elif isinstance(d, Hangup):
                self.table.on_hung_up(d.key, self.now, d.cause)
                self.hangups.append(d)
            else:
                self.table.remove(d.key)
        return decisions

    def dialed(self, decisions: list[Decision]) -> list[bytes]:
        return [d.key for d in decisions if isinstance(d, Dial)]

    def connect_all(self, decisions: list[Decision]) -> None:
        for k in self.dialed(decisions):
            self.table.on_connected(k, self.now)

    def live(self, source: PeerSource = LAN) -> int:
        return self.table.live_count(source)


# -- quotas


def test_dials_stop_at_the_class_quota() -> None:
    sim = Sim()
    for n in range(10):
        sim.add(n)
    first = sim.step()
    quota = sim.table.config.policy(LAN).quota
    assert len(sim.dialed(first)) == quota
    assert sim.live() == quota
    sim.connect_all(first)
    sim.now += 5
    assert sim.dialed(sim.step()) == []
    assert sim.live() == quota


def test_each_class_has_its_own_quota() -> None:
    sim = Sim()
    for n in range(5):
        sim.add(n, LAN)
        sim.add(100 + n, PUB)
        sim.add(200 + n, FRIEND)
        sim.add(300 + n, OTHER)
    sim.step()
    config = sim.table.config
    for source in PeerSource:
        assert sim.live(source) == config.policy(source).quota


def test_permanent_peers_are_dialed_beyond_the_quota() -> None:
    sim = Sim()
    quota = sim.table.config.policy(PUB).quota
    for n in range(quota + 2):
        sim.add(n, PUB)
    sim.connect_all(sim.step())
    assert sim.live(PUB) == quota
    sim.add(9, PUB, permanent=True)
    sim.now += 5
    assert sim.dialed(sim.step()) == [key(9)]  # the class is full, yet the joined pub is dialed
    assert sim.live(PUB) == quota + 1


def test_closed_and_failed_links_count_gone_at_once() -> None:
    sim = Sim()
    for n in range(6):
        sim.add(n)
    first = sim.dialed(sim.step())
    a, b, c = first
    sim.table.on_connected(a, sim.now)
    sim.table.on_connected(b, sim.now)
    sim.now += 1
    sim.table.on_failed(c, sim.now, "connection refused")
    assert sim.live() == 2
    sim.now += 40
    sim.table.on_closed(a, sim.now, "bye")
    assert sim.live() == 1
    assert sim.table.connected_count(LAN) == 1
    # the two freed slots are refilled by the peers that were waiting
    again = sim.dialed(sim.step())
    assert len(again) == 2
    assert not set(again) & {a, b, c}
    assert sim.live() == 3


# -- backoff


def test_backoff_grows_with_failures_and_resets_after_a_proven_link() -> None:
    sim = Sim()
    k = sim.add(1)
    policy = sim.table.config.policy(LAN)
    waits = []
    for failures in range(1, 12):
        assert sim.dialed(sim.step()) == [k]
        sim.table.on_failed(k, sim.now, "refused")
        row = sim.table.row(k)
        wait = row.next_attempt - sim.now
        nominal = min(policy.base * 2**failures, policy.max)
        assert 0.8 * nominal <= wait <= 1.2 * nominal
        assert row.failures == failures
        waits.append(wait)
        # not dialed before the backoff ends
        sim.now = row.next_attempt - 0.01
        assert sim.dialed(sim.step()) == []
        sim.now = row.next_attempt
    assert waits[4] > waits[0] * 8  # grows exponentially
    assert max(waits) <= 1.2 * policy.max
    sim.step()
    sim.table.on_connected(k, sim.now)
    sim.now += sim.table.config.proven_after
    sim.table.on_closed(k, sim.now, "peer went away")
    row = sim.table.row(k)
    assert row.failures == 0
    assert row.last_success == sim.now
    assert row.next_attempt - sim.now <= 1.2 * policy.base


@given(
    seed=st.integers(0, 2**32),
    failures=st.integers(0, 200),
    base=st.floats(0.1, 100),
    cap=st.floats(1, 10_000),
)
def test_jitter_stays_within_its_bounds(seed: int, failures: int, base: float, cap: float) -> None:
    policy = ClassPolicy(quota=1, base=base, max=cap)
    delay = backoff_delay(policy, failures, random.Random(seed))
    nominal = min(base * 2**failures, cap)
    assert 0.8 * nominal <= delay <= 1.2 * nominal


def test_jitter_spreads_peers_apart() -> None:
    policy = ClassPolicy(quota=1, base=2.0, max=600.0)
    rng = random.Random(7)
    delays = {round(backoff_delay(policy, 3, rng), 6) for _ in range(50)}
    assert len(delays) > 40


# -- no reconnect storms


def run_hour(
    sim: Sim, k: bytes, on_dial: Callable[[Sim, bytes, list[tuple[float, str]]], None]
) -> int:
    """Run the schedule every 2 s for an hour; `on_dial` plans the peer's behaviour."""
    events: list[tuple[float, str]] = []
    dials = 0
    end = sim.now + 3600
    while sim.now < end:
        for when, what in sorted(events):
            if when > sim.now:
                break
            events.remove((when, what))
            if what == "fail":
                sim.table.on_failed(k, when, "connection refused")
            elif what == "connect":
                sim.table.on_connected(k, when)
            elif what == "close":
                sim.table.on_closed(k, when, "closed by peer")
        for d in sim.step():
            if isinstance(d, Dial):
                dials += 1
                on_dial(sim, k, events)
        sim.now += 2.0
    return dials


def max_dials_in_hour(policy: ClassPolicy, extra_per_try: float = 0.0) -> int:
    """Dials an hour allows if every backoff were at its shortest (jitter 0.8)."""
    t, n, failures = 0.0, 0, 0
    while t < 3600:
        n += 1
        failures += 1
        t += extra_per_try + 0.8 * min(policy.base * 2**failures, policy.max)
    return n


def test_a_peer_that_keeps_failing_is_dialed_a_bounded_number_of_times() -> None:
    sim = Sim()
    k = sim.add(1)

    def refuse(sim: Sim, k: bytes, events: list[tuple[float, str]]) -> None:
        events.append((sim.now + 0.05, "fail"))

    dials = run_hour(sim, k, refuse)
    bound = max_dials_in_hour(sim.table.config.policy(LAN))
    assert 5 <= dials <= bound
    assert bound < 20  # an hour of a dead LAN peer costs a handful of dials, not 1800


@pytest.mark.parametrize("lifetime", [0.1, 10.0])
def test_the_ssb_ten_second_reconnect_loop_cannot_happen(lifetime: float) -> None:
    """A peer that accepts then closes at once, or drops every link at 10 s (SSB #486/#503).

    Such a link never proves useful, so each close counts as a failure and the backoff
    grows; were the backoff reset on connect, this would be ~300 dials an hour.
    """
    sim = Sim()
    k = sim.add(1)

    def accept_then_close(sim: Sim, k: bytes, events: list[tuple[float, str]]) -> None:
        events.append((sim.now + 0.05, "connect"))
        events.append((sim.now + 0.05 + lifetime, "close"))

    dials = run_hour(sim, k, accept_then_close)
    assert dials <= max_dials_in_hour(sim.table.config.policy(LAN), extra_per_try=lifetime)
    assert dials < 20
    assert sim.table.row(k).failures >= dials - 1


def test_a_useful_link_that_drops_is_redialed_promptly() -> None:
    sim = Sim()
    k = sim.add(1)
    sim.step()
    sim.table.on_connected(k, sim.now)
    sim.now += 3600
    sim.table.on_closed(k, sim.now, "network blip")
    sim.now += 1.2 * sim.table.config.policy(LAN).base
    assert sim.dialed(sim.step()) == [k]


# -- one link per key


def test_a_live_key_is_never_dialed_again() -> None:
    sim = Sim()
    k = sim.add(1)
    assert sim.dialed(sim.step()) == [k]
    for _ in range(5):
        sim.now += 10
        assert sim.dialed(sim.step()) == []
    sim.table.on_connected(k, sim.now)
    sim.now += 10
    assert sim.dialed(sim.step()) == []
    with pytest.raises(ValueError, match="already has a link"):
        sim.table.on_dial_started(k, sim.now)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["step", "connect", "fail", "close", "incoming", "wait"]),
            st.integers(0, 7),
        ),
        max_size=60,
    )
)
def test_random_event_orders_never_make_two_links_or_break_quotas(
    ops: list[tuple[str, int]],
) -> None:
    sim = Sim()
    for n in range(8):
        sim.add(n, LAN if n % 2 else FRIEND)
    config = sim.table.config
    for op, n in ops:
        k = key(n)
        row = sim.table.row(k) if k in sim.table else None
        if op == "step":
            decisions = sim.step()
            dialed = sim.dialed(decisions)
            assert len(dialed) == len(set(dialed))
        elif op == "connect" and row is not None and row.state is PeerState.CONNECTING:
            sim.table.on_connected(k, sim.now)
        elif op == "fail" and row is not None and row.state is PeerState.CONNECTING:
            sim.table.on_failed(k, sim.now, "refused")
        elif op == "close" and row is not None:
            sim.table.on_closed(k, sim.now, "closed")
        elif op == "incoming" and row is not None:
            verdict, _ = admit_incoming(sim.table, k, key(99))
            if verdict is Admission.ACCEPT:
                assert not row.live
                sim.table.on_connected(k, sim.now, incoming=True)
        elif op == "wait":
            sim.now += 7.5
        for source in PeerSource:
            rows = [r for r in sim.table if r.source is source]
            assert sim.table.live_count(source) == sum(r.live for r in rows)
            # dialing alone never exceeds the quota; incoming links are capped by trim
            assert sum(r.live and not r.incoming for r in rows) <= config.policy(source).quota


def test_simultaneous_dials_keep_exactly_one_link() -> None:
    a, b = key(1), key(2)  # a < b
    side_a, side_b = PeerTable(), PeerTable()
    side_a.add(b, addr(2), LAN, T0)
    side_b.add(a, addr(1), LAN, T0)
    side_a.on_dial_started(b, T0)
    side_b.on_dial_started(a, T0)
    verdict_at_a, _ = admit_incoming(side_a, b, own_key=a)  # b's link arrives at a
    verdict_at_b, _ = admit_incoming(side_b, a, own_key=b)  # a's link arrives at b
    # the link a dialed survives on both sides
    assert verdict_at_a is Admission.REFUSE
    assert verdict_at_b is Admission.ACCEPT_REPLACING


def test_a_second_incoming_link_replaces_the_first_and_blocked_keys_are_refused() -> None:
    table = PeerTable()
    k = key(5)
    table.add(k, addr(5), LAN, T0)
    table.on_connected(k, T0, incoming=True)
    assert admit_incoming(table, k, key(1), T0 + 60) == (Admission.ACCEPT_REPLACING, "replaced")
    # a link we dialed long ago is replaced too; a fresh one is a simultaneous-dial race
    m = key(8)
    table.add(m, addr(8), LAN, T0)
    table.on_connected(m, T0)
    assert admit_incoming(table, m, key(1), T0 + 60)[0] is Admission.ACCEPT_REPLACING
    assert admit_incoming(table, m, key(1), T0 + 1)[0] is Admission.REFUSE  # key(1) < m wins
    table.block(key(6), T0)
    assert admit_incoming(table, key(6), key(1)) == (Admission.REFUSE, "blocked")
    assert admit_incoming(table, key(7), key(1))[0] is Admission.ACCEPT


def test_a_stale_close_report_does_not_close_the_new_link() -> None:
    table = PeerTable()
    k = key(3)
    table.add(k, addr(3), LAN, T0)
    old = table.on_connected(k, T0)
    new = table.on_connected(k, T0 + 1, incoming=True)
    table.on_closed(k, T0 + 2, "old link closed", link=old)
    assert table.row(k).state is PeerState.CONNECTED
    table.on_closed(k, T0 + 3, "new link closed", link=new)
    assert table.row(k).state is PeerState.BACKOFF


# -- trim and rotation


def test_trim_drops_the_newest_non_permanent_links_above_the_hard_cap() -> None:
    sim = Sim()
    cap = sim.table.config.hard_cap(LAN)
    sim.add(0, permanent=True)
    sim.table.on_connected(key(0), sim.now + 100, incoming=True)  # newest, but permanent
    for n in range(1, cap + 3):
        sim.add(n)
        sim.table.on_connected(key(n), sim.now + n, incoming=True)
    assert sim.live() == cap + 3
    sim.now += 200
    decisions = sim.step()
    trimmed = [d.key for d in decisions if isinstance(d, Hangup)]
    assert all(d.cause is HangupCause.TRIM for d in decisions if isinstance(d, Hangup))
    assert trimmed == [key(cap + 2), key(cap + 1), key(cap)]
    assert sim.live() == cap
    # trimmed peers rest instead of being redialed straight away
    sim.now += 10
    assert not set(sim.dialed(sim.step())) & set(trimmed)


def test_links_between_quota_and_hard_cap_are_kept() -> None:
    sim = Sim()
    quota = sim.table.config.policy(LAN).quota
    for n in range(quota + 1):
        sim.add(n)
        sim.table.on_connected(key(n), sim.now, incoming=True)
    assert [d for d in sim.step() if isinstance(d, Hangup)] == []


def test_rotation_swaps_the_oldest_link_for_a_waiting_peer_now_and_then() -> None:
    sim = Sim()
    config = sim.table.config
    for n in range(3):
        sim.add(n)
    sim.connect_all(sim.step())
    sim.now += 1
    sim.table.on_connected(key(0), sim.now - 10)  # key 0 is the oldest
    sim.add(10)  # a newcomer waits
    sim.now += 60
    assert sim.step() == []  # links are younger than the rotation interval
    sim.now += config.rotation_interval
    decisions = sim.step()
    hangups = [d for d in decisions if isinstance(d, Hangup)]
    assert [(h.key, h.cause) for h in hangups] == [(key(0), HangupCause.ROTATE)]
    assert sim.dialed(decisions) == [key(10)]
    sim.table.on_connected(key(10), sim.now)
    assert "rotated out" in explain(sim.table, sim.now)[key(0)]
    # one rotation per interval, and the rotated peer is not redialed at once
    sim.add(11)
    sim.now += 30
    assert sim.step() == []
    sim.now += config.rotation_interval
    decisions = sim.step()
    assert [d.cause for d in decisions if isinstance(d, Hangup)] == [HangupCause.ROTATE]


def test_permanent_links_are_never_rotated_or_trimmed() -> None:
    sim = Sim()
    for n in range(8):
        sim.add(n, PUB, permanent=True)
        sim.table.on_connected(key(n), sim.now, incoming=n % 2 == 0)
    sim.add(20, PUB)
    sim.now += 10 * sim.table.config.rotation_interval
    assert [d for d in sim.step() if isinstance(d, Hangup)] == []


def test_blocked_peer_is_hung_up_and_never_dialed() -> None:
    sim = Sim()
    k = sim.add(1)
    sim.connect_all(sim.step())
    sim.table.block(k, sim.now)
    decisions = sim.step()
    assert [(d.key, d.cause) for d in decisions if isinstance(d, Hangup)] == [
        (k, HangupCause.BLOCKED)
    ]
    assert sim.table.row(k).state is PeerState.BLOCKED
    sim.now += 100_000
    assert sim.dialed(sim.step()) == []
    assert explain(sim.table, sim.now)[k] == "blocked"
    sim.table.unblock(k, sim.now)
    assert sim.dialed(sim.step()) == [k]


# -- download pause


def test_no_new_dials_while_a_download_is_in_full_flow() -> None:
    sim = Sim()
    for n in range(3):
        sim.add(n)
    assert sim.step(downloading=True) == []
    assert explain(sim.table, sim.now, downloading=True)[key(0)] == "waiting: download in progress"
    assert len(sim.dialed(sim.step(downloading=False))) == 3


# -- expiry


def test_a_vanished_lan_peer_is_not_dialed_and_is_forgotten_later() -> None:
    sim = Sim()
    k = sim.add(1)
    sim.table.vanished(k, sim.now)
    assert sim.step() == []
    assert explain(sim.table, sim.now)[k] == "vanished from LAN"
    sim.now += sim.table.config.lan_forget_after
    assert sim.step() == [Forget(k, "vanished from LAN")]
    assert k not in sim.table


def test_a_lan_peer_seen_again_is_dialed_again() -> None:
    sim = Sim()
    k = sim.add(1)
    sim.table.vanished(k, sim.now)
    sim.now += 5
    sim.table.seen_on_lan(k, addr(1), sim.now)
    assert sim.dialed(sim.step()) == [k]


def test_a_connected_lan_peer_that_vanished_keeps_its_link() -> None:
    sim = Sim()
    k = sim.add(1)
    sim.connect_all(sim.step())
    sim.table.vanished(k, sim.now)
    sim.now += 10 * sim.table.config.lan_forget_after
    assert sim.step() == []
    assert sim.table.row(k).state is PeerState.CONNECTED


def test_unreachable_peers_expire_but_permanent_ones_do_not() -> None:
    config = ScheduleConfig()
    sim = Sim(config)
    dead = sim.add(1, FRIEND)
    pub = sim.add(2, PUB, permanent=True)
    forgotten: list[Decision] = []
    end = sim.now + config.unreachable_after + 3 * config.policy(FRIEND).max
    while sim.now < end and not forgotten:
        for d in sim.step():
            if isinstance(d, Dial):
                sim.table.on_failed(d.key, sim.now, "timed out")
            elif isinstance(d, Forget):
                forgotten.append(d)
        sim.now += 60
    assert [d.key for d in forgotten] == [dead]
    assert isinstance(forgotten[0], Forget) and "unreachable" in forgotten[0].reason
    assert pub in sim.table


def test_wrong_network_stops_dialing_until_a_new_address_comes() -> None:
    sim = Sim()
    k = sim.add(1)
    sim.step()
    sim.table.on_failed(k, sim.now, "handshake: other network", wrong_network=True)
    sim.now += 100_000
    assert sim.step() == []
    assert explain(sim.table, sim.now)[k] == "other network"
    sim.table.add(k, ("127.0.0.1", 9999), LAN, sim.now)
    assert sim.step() == [Dial(k, ("127.0.0.1", 9999), LAN)]


def test_addresses_rotate_on_failure() -> None:
    sim = Sim()
    k = sim.add(1)
    sim.table.add(k, ("127.0.0.1", 1234), LAN, sim.now)
    first = [d for d in sim.step() if isinstance(d, Dial)]
    sim.table.on_failed(k, sim.now, "refused")
    sim.now = sim.table.row(k).next_attempt
    second = [d for d in sim.step() if isinstance(d, Dial)]
    assert {first[0].address, second[0].address} == {("127.0.0.1", 1234), addr(1)}


# -- reasons


def test_every_row_explains_why_it_is_or_is_not_connected() -> None:
    sim = Sim()
    for n in range(5):
        sim.add(n)
    decisions = sim.step()
    a, b, c = sim.dialed(decisions)
    sim.table.on_connected(a, sim.now)
    sim.table.on_failed(b, sim.now, "connection refused")
    for _ in range(2):
        sim.now = sim.table.row(b).next_attempt
        sim.table.on_dial_started(b, sim.now)
        sim.table.on_failed(b, sim.now, "connection refused")
    reasons = explain(sim.table, sim.now)
    assert reasons[a] == "connected"
    assert reasons[c] == "connecting"
    assert re.fullmatch(
        r"backing off until \d\d:\d\d:\d\d after 3 failures: connection refused", reasons[b]
    )
    waiting = [reasons[k] for k in (key(n) for n in range(5)) if k not in (a, b, c)]
    # a and c are live, b is not: 2 of 3 slots, so the others are ready, not over quota
    assert waiting == ["ready to dial", "ready to dial"]
    sim.table.on_connected(c, sim.now)
    sim.add(9)
    sim.table.on_connected(key(9), sim.now, incoming=True)
    reasons = explain(sim.table, sim.now)
    assert reasons[key(9)] == "connected (incoming)"
    assert [reasons[key(n)] for n in range(5) if key(n) not in (a, b, c)] == [
        "over quota (lan 3/3)",
        "over quota (lan 3/3)",
    ]


def test_keys_must_be_32_bytes() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        PeerTable().add(b"short", addr(1), LAN, T0)


def test_quotas_from_a_config_table() -> None:
    config = ScheduleConfig().with_quotas({"lan": 5, "pub": 1})
    assert config.policy(LAN).quota == 5
    assert config.policy(PUB).quota == 1
    assert config.policy(FRIEND) == ScheduleConfig().policy(FRIEND)
    with pytest.raises(ValueError, match="unknown peer class 'friends'"):
        ScheduleConfig().with_quotas({"friends": 3})
    with pytest.raises(ValueError, match="whole number"):
        ScheduleConfig().with_quotas({"lan": -1})


def test_a_manual_peer_that_crashed_often_is_redialled_within_15_s() -> None:
    table = PeerTable(ScheduleConfig(), random.Random(1))
    key = b"m" * 32
    table.add(key, ("127.0.0.1", 7708), PeerSource.MANUAL, 0.0, permanent=True)
    now = 0.0
    for _ in range(30):  # crashed again and again: every dial fails
        table.on_dial_started(key, now)
        table.on_failed(key, now, "connection refused")
        now = table.row(key).next_attempt
    row = table.row(key)
    assert row.failures == 30 and row.next_attempt - now <= 0.0
    table.on_dial_started(key, now)
    table.on_failed(key, now, "connection refused")
    assert row.next_attempt - now <= 12.0  # plus one schedule round: back within 15 s


def test_a_peer_we_back_off_from_is_accepted_at_once_when_it_dials_us() -> None:
    # However often it failed, a returning peer that dials us is not made to wait for
    # our next try (docs/schedule.md: within 15 s of its return, or at once).
    table = PeerTable()
    k = key(6)
    table.add(k, addr(6), LAN, T0)
    for n in range(12):
        table.on_failed(k, T0 + n, "connection refused")
    row = table.row(k)
    assert row.state is PeerState.BACKOFF and row.next_attempt > T0 + 60
    assert admit_incoming(table, k, key(1), T0 + 12) == (Admission.ACCEPT, "known peer")
