"""Tests of the replication scope and the hear/tell access rules (net/policy.py)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from net.policy import (
    Audience,
    follows_of,
    link_access,
    may_share,
    may_tell,
    mutuals_of,
    replicated_feeds,
)


def k(name: str) -> bytes:
    return name.encode().ljust(32, b".")


ME, ALICE, BOB, CAROL, DAVE, EVE, MALLORY = (
    k(n) for n in ("me", "alice", "bob", "carol", "dave", "eve", "mallory")
)

# me -> alice -> bob -> carol -> dave ; alice -> me (mutual) ; me -> eve
GRAPH: dict[bytes, list[bytes]] = {
    ME: [ALICE, EVE],
    ALICE: [BOB, ME],
    BOB: [CAROL],
    CAROL: [DAVE],
    EVE: [MALLORY],
}


@pytest.mark.parametrize(
    ("hops", "expected"),
    [
        (0, {ME}),
        (1, {ME, ALICE, EVE}),
        (2, {ME, ALICE, EVE, BOB, MALLORY}),
        (3, {ME, ALICE, EVE, BOB, MALLORY, CAROL}),
        (10, {ME, ALICE, EVE, BOB, MALLORY, CAROL, DAVE}),
    ],
)
def test_scope_grows_by_one_follow_step_per_hop(hops: int, expected: set[bytes]) -> None:
    assert replicated_feeds(ME, GRAPH, set(), hops) == expected


def test_blocked_feeds_are_left_out_and_not_walked_through() -> None:
    scope = replicated_feeds(ME, GRAPH, {ALICE}, hops=3)
    assert ALICE not in scope
    assert BOB not in scope  # only reachable through alice
    assert MALLORY in scope


def test_lan_auto_follow_adds_the_peers_but_not_their_follows() -> None:
    lan = k("lan peer")
    graph = {**GRAPH, lan: [k("stranger")]}
    scope = replicated_feeds(ME, graph, {MALLORY}, hops=2, lan_auto_follow_keys=[lan, MALLORY])
    assert lan in scope
    assert k("stranger") not in scope
    assert MALLORY not in scope  # blocked wins over auto-follow


def test_own_feed_is_always_in_scope_and_hops_cannot_be_negative() -> None:
    assert replicated_feeds(ME, GRAPH, {ME}, hops=0) == {ME}  # own is kept regardless
    assert replicated_feeds(ME, {}, set(), hops=2) == {ME}
    with pytest.raises(ValueError, match="hops"):
        replicated_feeds(ME, GRAPH, set(), hops=-1)


def test_follows_and_mutuals() -> None:
    assert follows_of(ME, GRAPH) == {ALICE, EVE}
    assert mutuals_of(ME, GRAPH) == {ALICE}


@pytest.mark.parametrize(
    ("audience", "admitted"),
    [
        (Audience.ANYBODY, {ALICE, EVE, BOB}),
        (Audience.FOLLOWING, {ALICE, EVE}),
        (Audience.MUTUALS, {ALICE}),
    ],
)
def test_hear_and_tell_admit_their_audience(audience: Audience, admitted: set[bytes]) -> None:
    follows, mutuals = follows_of(ME, GRAPH), mutuals_of(ME, GRAPH)
    for peer in (ALICE, EVE, BOB):
        access = link_access(peer, hear=audience, tell=audience, follows=follows, mutuals=mutuals)
        assert access.hear == (peer in admitted) == access.tell
        assert may_tell(peer, audience, follows, mutuals) == (peer in admitted)


@pytest.mark.parametrize("audience", list(Audience))
def test_blocked_peers_are_refused_whatever_the_setting(audience: Audience) -> None:
    follows, mutuals = {ALICE}, {ALICE}
    access = link_access(
        ALICE, hear=audience, tell=audience, follows=follows, mutuals=mutuals, blocks={ALICE}
    )
    assert not access.hear and not access.tell
    assert not may_tell(ALICE, audience, follows, mutuals, blocks={ALICE})


def test_a_tell_mutuals_node_does_not_serve_its_feed_to_a_non_mutual() -> None:
    follows, mutuals = follows_of(ME, GRAPH), mutuals_of(ME, GRAPH)

    def share(peer: bytes, feed: bytes) -> bool:
        return may_share(
            peer, feed, own=ME, tell=Audience.MUTUALS, follows=follows, mutuals=mutuals
        )

    assert share(ALICE, ME)  # alice follows me back
    assert not share(EVE, ME)  # I follow eve, eve does not follow me
    assert not share(BOB, ME)  # a stranger
    assert share(EVE, ALICE)  # other feeds are relayed; tell guards our own feed
    assert not may_share(
        ALICE, ME, own=ME, tell=Audience.ANYBODY, follows=follows, mutuals=mutuals, blocks={ALICE}
    )
    assert not may_share(
        EVE, BOB, own=ME, tell=Audience.ANYBODY, follows=follows, mutuals=mutuals, blocks={BOB}
    )


def test_audience_parses_config_words() -> None:
    assert Audience.parse(" Mutuals ") is Audience.MUTUALS
    with pytest.raises(ValueError, match="anybody, following, mutuals"):
        Audience.parse("friends")


@given(
    st.dictionaries(st.integers(0, 12), st.lists(st.integers(0, 12), max_size=5), max_size=12),
    st.sets(st.integers(1, 12), max_size=4),
    st.integers(0, 5),
)
def test_scope_is_monotone_in_hops_and_never_holds_a_block(
    raw: dict[int, list[int]], blocks: set[int], hops: int
) -> None:
    def b(n: int) -> bytes:
        return bytes([n]) * 32

    graph = {b(a): [b(x) for x in xs] for a, xs in raw.items()}
    blocked = {b(n) for n in blocks}
    smaller = replicated_feeds(b(0), graph, blocked, hops)
    larger = replicated_feeds(b(0), graph, blocked, hops + 1)
    assert b(0) in smaller
    assert smaller <= larger
    assert not (larger - {b(0)}) & blocked
