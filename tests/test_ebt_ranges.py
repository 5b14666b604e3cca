"""Newest first in the EBT core (pure): window before backfill, fairness across feeds,
live messages never waiting behind backfill, peers that lack history, scrolling back."""

from __future__ import annotations

from typing import Any

from net.ebt import (
    EbtConfig,
    Replicator,
    RequestRange,
    SendNotes,
    StoreMessages,
)
from net.ranges import RangeConfig
from tests.test_ebt import eager, lazy, notes, of, opened

F, G, H = b"feed-f", b"feed-g", b"feed-h"
# head = window: each newest window in one request (the head step has its own test)
RANGES = RangeConfig(window=100, head=100, chunk=1000, open_per_peer=2, timeout=20.0)
ONE = RangeConfig(window=100, head=100, chunk=1000, open_per_peer=1, timeout=20.0)


def replicator(history: int | None = None, clock: dict[bytes, int] | None = None) -> Replicator:
    clock = clock or {}
    return Replicator(
        clock, [F, G, H], EbtConfig(stall_timeout=3.0, ranges=RANGES, history=history)
    )


def requests(actions: list[Any]) -> list[tuple[Any, bytes, int, int]]:
    return [(a.peer, a.feed, a.first, a.last) for a in of(actions, RequestRange)]


def store_window(rep: Replicator, feed: bytes, first: int, last: int, now: float) -> list[Any]:
    """What the shell does once a range reply is stored: new latest, held range, done."""
    out = rep.stored(feed, last, b"raw", now, source="pub")
    out += rep.range_stored(feed, first, now)
    out += rep.range_done("pub", feed, first, last, last - first + 1, now)
    return out


def test_far_behind_feeds_get_their_newest_window_first_not_an_eager_push() -> None:
    rep = replicator()
    out = opened(rep, "pub", 0.0, {F: lazy(10_000), G: lazy(10_000), H: lazy(50)})
    # H is near: pushed from seq 1 as always; F and G: newest windows, no graft.
    assert requests(out) == [("pub", F, 9901, 10_000), ("pub", G, 9901, 10_000)]
    told: dict[bytes, int] = {}
    for frame in notes(out, "pub"):
        told.update(frame)
    assert told == {F: lazy(0), G: lazy(0), H: eager(0)}
    assert rep.eager_source(F) is None and rep.eager_source(H) == "pub"


def test_the_newest_messages_of_every_feed_come_before_any_rest_of_a_window() -> None:
    heads = RangeConfig(window=100, head=10, chunk=1000, open_per_peer=1)
    rep = Replicator({}, [F, G, H], EbtConfig(ranges=heads, history=None))
    out = opened(rep, "pub", 0.0, {F: lazy(10_000), G: lazy(5000), H: lazy(800)})
    asked = new = requests(out)
    now = 1.0
    while len(new) == 1 and now < 20:  # one request open at a time: the order shows
        _, feed, first, last = new[0]
        new = requests(store_window(rep, feed, first, last, now))
        asked = asked + new
        now += 1
    # The newest 10 of every feed first (the top of every conversation is cheap to check
    # and store), then the rest of every newest window, then older history.
    assert asked[:6] == [
        ("pub", F, 9991, 10_000),
        ("pub", G, 4991, 5000),
        ("pub", H, 791, 800),
        ("pub", F, 9901, 9990),
        ("pub", G, 4901, 4990),
        ("pub", H, 701, 790),
    ]
    assert asked[6] in [("pub", F, 8901, 9900), ("pub", G, 3901, 4900), ("pub", H, 1, 700)]


def test_backfill_waits_for_every_newest_window_then_goes_newest_first() -> None:
    rep = replicator()
    opened(rep, "pub", 0.0, {F: lazy(10_000), G: lazy(10_000)})
    out = store_window(rep, F, 9901, 10_000, 1.0)
    # G's window is still open: F's backfill starts anyway (F has its window), G's not.
    assert requests(out) == [("pub", F, 8901, 9900)]
    out = store_window(rep, G, 9901, 10_000, 1.1)
    assert requests(out) == [("pub", G, 8901, 9900)]
    assert rep.local_clock[F] == rep.local_clock[G] == 10_000
    # Each answered chunk brings the next older one, down to seq 1.
    out = rep.range_stored(F, 8901, 2.0) + rep.range_done("pub", F, 8901, 9900, 1000, 2.0)
    assert requests(out) == [("pub", F, 7901, 8900)]


def test_backfill_is_fair_across_feeds() -> None:
    rep2 = Replicator(
        {F: 5000, G: 5000, H: 5000},
        [F, G, H],
        EbtConfig(ranges=RangeConfig(chunk=1000, open_per_peer=2)),
        held_from={F: 4001, G: 4001, H: 4001},
    )
    out = opened(rep2, "pub", 0.0, {F: lazy(5000), G: lazy(5000), H: lazy(5000)})
    asked = [r[1] for r in requests(out)]
    assert len(asked) == 2 and len(set(asked)) == 2  # two different feeds, one each
    order: list[bytes] = list(asked)
    held = {F: 4001, G: 4001, H: 4001}
    pending = {r[1]: r for r in requests(out)}
    for step in range(9):
        feed = order[step]
        _, _, first, last = pending.pop(feed)
        held[feed] = first
        out = rep2.range_stored(feed, first, 1.0 + step)
        out += rep2.range_done("pub", feed, first, last, last - first + 1, 1.0 + step)
        for request in requests(out):
            pending[request[1]] = request
            order.append(request[1])
    # Over any three consecutive requests, every feed is asked once: no feed waits
    # behind another one's whole history.
    for start in range(0, 9, 3):
        assert sorted(order[start : start + 3]) == sorted([F, G, H])


def test_live_messages_never_wait_behind_backfill() -> None:
    rep = replicator()
    opened(rep, "pub", 0.0, {F: lazy(10_000)})
    store_window(rep, F, 9901, 10_000, 1.0)
    assert rep.open_ranges == 2  # backfill of F is under way, two chunks at once
    # A new message is announced: near now, so the feed is grafted at once ...
    out = rep.receive_notes("pub", {F: lazy(10_001)}, 1.5)
    assert {F: eager(10_000)} in notes(out, "pub")
    # ... and it is handed to the store as soon as it comes, backfill or not.
    out = rep.receive_messages("pub", [(F, 10_001, b"live")], 1.6)
    assert of(out, StoreMessages) == [StoreMessages("pub", F, (b"live",))]


def test_history_limits_how_far_back_and_scrolling_back_asks_for_more() -> None:
    rep = replicator(history=150)
    out = opened(rep, "pub", 0.0, {F: lazy(2000)})
    assert requests(out) == [("pub", F, 1901, 2000)]
    out = store_window(rep, F, 1901, 2000, 1.0)
    assert requests(out) == [("pub", F, 1851, 1900)]  # the rest of the 150
    out = rep.range_stored(F, 1851, 2.0) + rep.range_done("pub", F, 1851, 1900, 50, 2.0)
    assert requests(out) == []
    view = rep.history_view(F)
    assert view is not None and (view.held_from, view.wanted_from) == (1851, 1851)
    out = rep.fetch_older(F, 100, 3.0)
    assert requests(out) == [("pub", F, 1751, 1850)]
    assert rep.history_view(F).asking == 1  # type: ignore[union-attr]


def test_a_peer_that_lacks_a_range_is_not_asked_again_and_others_are() -> None:
    rep = Replicator({F: 2000}, [F], EbtConfig(ranges=ONE, history=None), held_from={F: 1901})
    out = opened(rep, "thin", 0.0, {F: lazy(2000)})
    assert requests(out) == [("thin", F, 901, 1900)]
    out = rep.range_done("thin", F, 901, 1900, 0, 1.0)  # it has none of them
    assert requests(out) == []
    view = rep.history_view(F)
    assert view is not None and view.unavailable  # nobody connected has it
    out = opened(rep, "archive", 2.0, {F: lazy(2000)})
    assert requests(out) == [("archive", F, 901, 1900)]
    assert not rep.history_view(F).unavailable  # type: ignore[union-attr]


def test_an_unanswered_request_times_out_and_goes_elsewhere() -> None:
    rep = Replicator({F: 2000}, [F], EbtConfig(ranges=ONE, history=None), held_from={F: 1001})
    opened(rep, "slow", 0.0, {F: lazy(2000)})
    opened(rep, "other", 0.1, {F: lazy(2000)})
    assert rep.open_ranges == 1  # one chunk is all that is missing: asked of "slow"
    assert requests(rep.tick(10.0)) == []
    assert requests(rep.tick(21.0)) == [("other", F, 1, 1000)]


def test_a_busy_peer_that_keeps_answering_is_not_timed_out() -> None:
    rep = Replicator({F: 2000}, [F], EbtConfig(ranges=ONE, history=None), held_from={F: 1001})
    opened(rep, "busy", 0.0, {F: lazy(2000)})
    opened(rep, "other", 0.1, {F: lazy(2000)})
    for second in range(5, 60, 5):  # answers to earlier requests keep coming
        rep.range_answering("busy", float(second))
        assert requests(rep.tick(float(second) + 0.5)) == []
    assert requests(rep.tick(81.0)) == [("other", F, 1, 1000)]  # then silence: elsewhere


def test_a_lost_peer_s_requests_are_asked_again_elsewhere() -> None:
    rep = replicator()
    opened(rep, "a", 0.0, {F: lazy(10_000)})
    opened(rep, "b", 0.1, {F: lazy(10_000)})
    assert rep.open_ranges == 1
    out = rep.disconnect("a", 1.0)
    assert requests(out) == [] or requests(out) == [("b", F, 9901, 10_000)]
    out += rep.tick(1.1)
    assert ("b", F, 9901, 10_000) in requests(out)
    assert not [a for a in out if isinstance(a, SendNotes) and a.notes.get(F) == eager(0)]


def test_a_peer_that_does_not_send_its_claimed_newest_window_is_doubted_at_once() -> None:
    rep = replicator()
    out = opened(rep, "liar", 0.0, {F: lazy(10_000)})
    assert requests(out) == [("liar", F, 9901, 10_000)]
    out = rep.range_done("liar", F, 9901, 10_000, 0, 1.0)  # "I have none of them"
    state = rep.link("liar")[F]
    assert state.doubted and state.remote_seq == 0 and state.claimed_seq == 10_000
    assert requests(out) == [] and requests(rep.tick(100.0)) == []
