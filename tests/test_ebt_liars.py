"""The EBT core and peers that claim more than they deliver (pure, injected time)."""

from __future__ import annotations

from net.ebt import EbtConfig, Replicator, SendNotes, StoreMessages
from tests.test_ebt import eager, lazy, notes, of, opened

F = b"feed-f"
OWN = b"our-own-feed"
CONFIG = EbtConfig(stall_timeout=3.0, doubt_after=3)


def test_a_silent_source_is_re_asked_with_backoff_then_not_believed() -> None:
    rep = Replicator({F: 31}, [F], CONFIG)
    out = opened(rep, "liar", 0.0, {F: lazy(1000)})
    assert rep.eager_source(F) == "liar"
    assert notes(out, "liar")[-1] == {F: eager(31)}
    asks = []
    now = 0.0
    while now < 100:
        now += 0.25
        frames = notes(rep.tick(now), "liar")
        if frames == [{F: lazy(31)}, {F: eager(31)}]:
            asks.append(now)
    # Re-asked at 3 s, then after 6 s and 12 s; silent for 24 s more: not believed.
    assert asks == [3.0, 9.0, 21.0]
    state = rep.link("liar")[F]
    assert state.doubted and not state.rx
    assert rep.eager_source(F) is None
    assert state.claimed_seq == 1000
    assert state.remote_seq == 31  # the claim no longer counts in "we lack"
    assert state.silent_since == 0.0
    # Nothing more is asked of it for the rest of the session, however long.
    assert all(not notes(rep.tick(t), "liar") for t in range(46, 400, 5))


def test_a_doubted_peer_is_believed_again_when_it_delivers() -> None:
    rep = Replicator({F: 31}, [F], CONFIG)
    opened(rep, "slow", 0.0, {F: lazy(40)})
    for step in range(1, 400):
        rep.tick(step * 0.25)
    assert rep.link("slow")[F].doubted
    out = rep.receive_messages("slow", [(F, 32, b"m32")], 100.0)
    assert of(out, StoreMessages)
    state = rep.link("slow")[F]
    assert not state.doubted and state.remote_seq == 40 and state.silent_since is None


def test_a_new_session_believes_the_peer_again() -> None:
    rep = Replicator({F: 31}, [F], CONFIG)
    opened(rep, "p", 0.0, {F: lazy(1000)})
    for step in range(1, 400):
        rep.tick(step * 0.25)
    assert rep.link("p")[F].doubted
    rep.disconnect("p", 100.0)
    out = opened(rep, "p", 101.0, {F: lazy(1000)})
    assert not rep.link("p")[F].doubted
    assert rep.eager_source(F) == "p"
    assert notes(out, "p")[-1] == {F: eager(31)}


def test_a_liar_does_not_keep_an_honest_peer_from_being_asked() -> None:
    rep = Replicator({F: 31}, [F], CONFIG)
    opened(rep, "liar", 0.0, {F: lazy(1000)})
    for step in range(1, 200):
        rep.tick(step * 0.25)
    assert rep.link("liar")[F].doubted
    # An honest peer announcing 40 is grafted at once (the liar is nobody's source).
    out = opened(rep, "honest", 50.0, {F: lazy(40)})
    assert rep.eager_source(F) == "honest"
    assert notes(out, "honest")[-1] == {F: eager(31)}
    # A doubted peer announcing more is still not believed.
    out = rep.receive_notes("liar", {F: lazy(2000)}, 51.0)
    assert rep.eager_source(F) == "honest"
    assert not [n for n in notes(out, "liar") if n.get(F) == eager(31)]


def test_a_slow_source_that_keeps_delivering_is_never_doubted() -> None:
    rep = Replicator({F: 0}, [F], CONFIG)
    opened(rep, "p", 0.0, {F: lazy(100)})
    for seq in range(1, 101):
        now = seq * 2.5  # one message every 2.5 s: under the 3 s stall timeout
        rep.receive_messages("p", [(F, seq, b"m")], now)
        rep.stored(F, seq, b"m", now, source="p")
        rep.tick(now)
    assert not rep.link("p")[F].doubted


def test_a_claim_above_our_own_feed_is_refused_at_once() -> None:
    rep = Replicator({OWN: 31, F: 5}, [OWN, F], CONFIG, own=OWN)
    out = opened(rep, "p", 0.0, {OWN: lazy(1000), F: lazy(5)})
    state = rep.link("p")[OWN]
    assert state.doubted and not state.rx
    assert state.remote_seq == 31 and state.claimed_seq == 1000
    assert rep.eager_source(OWN) is None
    assert all(n.get(OWN) != eager(31) for n in notes(out, "p"))
    # Never asked, however long we wait.
    assert not [a for t in range(1, 60) for a in rep.tick(float(t)) if isinstance(a, SendNotes)]
    # With none of our own feed (a wiped database), a peer holding it is our backup.
    wiped = Replicator({}, [OWN], CONFIG, own=OWN)
    out = opened(wiped, "backup", 0.0, {OWN: lazy(31)})
    assert not wiped.link("backup")[OWN].doubted
    assert wiped.eager_source(OWN) == "backup"
    # A claim up to our own seq is fine.
    rep2 = Replicator({OWN: 31}, [OWN], CONFIG, own=OWN)
    opened(rep2, "q", 0.0, {OWN: lazy(31)})
    assert not rep2.link("q")[OWN].doubted
