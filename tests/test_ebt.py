"""Focused tests of the EBT core, one rule of docs/ebt.md at a time."""

from __future__ import annotations

from typing import Any

import pytest

from net.ebt import (
    Action,
    EbtConfig,
    PeerRecord,
    PersistRecord,
    Push,
    Replicator,
    SendMessages,
    SendNotes,
    StoreMessages,
    decode_note,
    encode_note,
)
from net.errors import RemoteProtocolError
from tests.ebt_harness import Network, feed_id

F = b"feed-f"
G = b"feed-g"


def notes(actions: list[Action], peer: Any = None) -> list[dict[bytes, int]]:
    return [a.notes for a in actions if isinstance(a, SendNotes) and peer in (None, a.peer)]


def merged_notes(actions: list[Action], peer: Any) -> dict[bytes, int]:
    out: dict[bytes, int] = {}
    for frame in notes(actions, peer):
        out.update(frame)
    return out


def of(actions: list[Action], kind: type) -> list[Any]:
    return [a for a in actions if isinstance(a, kind)]


def eager(seq: int) -> int:
    return encode_note(seq, True)


def lazy(seq: int) -> int:
    return encode_note(seq, False)


def opened(
    rep: Replicator, peer: str, now: float = 0.0, their: dict[bytes, int] | None = None
) -> list[Action]:
    """Connect `peer` as acceptor (we speak first), then take its opening clock."""
    out = rep.connect(peer, now, initiator=False, record=None)
    out += rep.receive_notes(peer, their or {}, now)
    return out


# -- notes ---------------------------------------------------------------------------


def test_note_encoding_matches_the_design() -> None:
    assert [encode_note(0, True), encode_note(0, False), encode_note(1, True)] == [0, 1, 2]
    assert encode_note(6, True) == 12 and encode_note(225, True) == 450
    assert encode_note(1, False) == 3
    assert decode_note(-1) == (-1, False)
    assert decode_note(450) == (225, True)
    assert decode_note(3) == (1, False)


@pytest.mark.parametrize("bad", [-2, "4", 1.5, True, None, [2]])
def test_bad_note_values_are_a_remote_protocol_error(bad: object) -> None:
    rep = Replicator({F: 3}, [F])
    opened(rep, "p")
    before = rep.link("p")[F]
    with pytest.raises(RemoteProtocolError):
        rep.receive_notes("p", {G: 2, F: bad}, 1.0)  # type: ignore[dict-item]
    assert rep.link("p")[F] == before  # nothing of the frame was applied
    assert G not in rep.link("p")


def test_bad_message_seq_is_a_remote_protocol_error() -> None:
    rep = Replicator({F: 0}, [F])
    opened(rep, "p", their={F: lazy(3)})
    with pytest.raises(RemoteProtocolError):
        rep.receive_messages("p", [(F, 0, "x")], 1.0)
    with pytest.raises(RemoteProtocolError):
        rep.receive_messages("p", [(F, "1", "x")], 1.0)  # type: ignore[list-item]


# -- opening -------------------------------------------------------------------------


def test_acceptor_speaks_first_and_initiator_answers() -> None:
    acceptor = Replicator({}, [])
    out = acceptor.connect("i", 0.0, initiator=False, record=None)
    assert notes(out) == [{}]  # even an empty clock goes out

    initiator = Replicator({F: 4, G: 1}, [F, G])
    assert initiator.connect("a", 0.0, initiator=True, record=None) == []
    assert initiator.stored(F, 5, "m5", 0.1, source=None) == []  # still waiting
    out = initiator.receive_notes("a", {G: lazy(3)}, 0.2)
    # one frame: eager where the acceptor is ahead, lazy elsewhere
    assert notes(out, "a") == [{G: eager(1), F: lazy(5)}]


def test_a_feed_is_eager_from_one_connected_peer_only() -> None:
    rep = Replicator({F: 2, G: 0}, [F, G])
    first = rep.connect("p", 0.0, initiator=False, record=None)
    second = rep.connect("q", 0.0, initiator=False, record=None)
    # nobody is known to be ahead yet: lazy everywhere
    assert merged_notes(first, "p") == {F: lazy(2), G: lazy(0)}
    assert merged_notes(second, "q") == {F: lazy(2), G: lazy(0)}
    out = rep.receive_notes("p", {F: lazy(9), G: lazy(4)}, 0.1)
    assert notes(out, "p") == [{F: eager(2), G: eager(0)}]
    out = rep.receive_notes("q", {F: lazy(9), G: lazy(4)}, 0.1)
    assert notes(out, "q") == []  # p is already eager and ahead
    assert rep.eager_source(F) == "p" and rep.eager_source(G) == "p"
    assert not rep.link("q")[F].rx


# -- push ----------------------------------------------------------------------------


def test_a_peer_asking_eagerly_while_behind_gets_a_push_from_its_seq() -> None:
    rep = Replicator({F: 10}, [F])
    out = opened(rep, "p", their={F: eager(3)})
    assert of(out, Push) == [Push("p", F, 4)]
    assert rep.push_cursor("p", F) == 4
    assert rep.pushed("p", F, 7, 1.0) == []
    assert rep.push_cursor("p", F) == 8
    rep.pushed("p", F, 10, 1.0)
    assert rep.push_cursor("p", F) is None
    assert rep.link("p")[F].sent == 7  # seqs 4..10


def test_a_lazy_note_stops_the_push_loop() -> None:
    rep = Replicator({F: 10}, [F])
    opened(rep, "p", their={F: eager(3)})
    rep.receive_notes("p", {F: lazy(5)}, 1.0)
    assert rep.push_cursor("p", F) is None


def test_new_messages_go_at_once_to_tx_peers_exactly_one_behind() -> None:
    rep = Replicator({F: 5}, [F], EbtConfig(note_delay=0.0))
    opened(rep, "src", their={F: eager(4)})  # the sender; asks us too
    rep.pushed("src", F, 5, 0.0)
    opened(rep, "near", their={F: eager(5)})  # eager, exactly at our seq
    opened(rep, "far", their={F: eager(2)})  # eager, far behind: being pushed
    opened(rep, "idle", their={F: lazy(5)})  # lazy, behind after the new message
    assert rep.push_cursor("far", F) == 3  # a push loop is running for far

    out = rep.receive_messages("src", [(F, 6, "m6")], 1.0)
    assert of(out, StoreMessages) == [StoreMessages("src", F, ("m6",))]
    out = rep.stored(F, 6, "m6", 1.0, source="src")
    assert of(out, SendMessages) == [SendMessages("near", F, ("m6",))]  # not to src, far
    assert of(out, Push) == []  # far's loop is already running
    assert notes(out, "idle") == [{F: lazy(6)}]  # lazy peer behind: one note
    assert notes(out, "near") == []
    assert notes(out, "src") == []  # the ack to the sender waits (ack_delay)...
    assert notes(rep.tick(1.5), "src") == []
    assert notes(rep.tick(2.1), "src") == [{F: lazy(6)}]  # ... then goes alone
    assert notes(rep.tick(5.0)) == []


def test_held_back_acks_ride_with_the_next_note_to_that_peer() -> None:
    rep = Replicator({F: 5, G: 0}, [F, G], EbtConfig(note_delay=0.0))
    opened(rep, "src", their={F: lazy(7), G: lazy(0)})
    rep.receive_messages("src", [(F, 6, "m6")], 1.0)
    assert notes(rep.stored(F, 6, "m6", 1.0, source="src")) == []
    out = rep.stored(G, 1, "g1", 1.2, source=None)  # announce G to src (behind)
    assert notes(out, "src") == [{G: lazy(1), F: eager(6)}]
    assert notes(rep.tick(3.0)) == []


def test_a_message_is_never_pushed_back_to_the_peer_it_came_from() -> None:
    rep = Replicator({F: 2}, [F])
    opened(rep, "p", their={F: eager(3)})  # ahead (our source) and asking us eagerly
    assert rep.eager_source(F) == "p" and rep.last_delivery(F) is None
    rep.receive_messages("p", [(F, 3, "m3"), (F, 4, "m4")], 1.0)
    out = rep.stored(F, 3, "m3", 1.0, source="p") + rep.stored(F, 4, "m4", 1.0, source="p")
    assert of(out, Push) == [] and of(out, SendMessages) == []
    assert rep.push_cursor("p", F) is None
    assert rep.last_delivery(F) == 1.0
    out = rep.stored(F, 5, "m5", 2.0, source=None)  # our own next one does go
    assert of(out, SendMessages) == [SendMessages("p", F, ("m5",))]


def test_a_tx_peer_further_behind_gets_a_push_when_no_loop_runs() -> None:
    rep = Replicator({F: 5}, [F])
    opened(rep, "p", their={F: eager(5)})
    rep.push_cursor("p", F)  # nothing to push: loop idle
    rep.receive_notes("p", {F: lazy(5)}, 1.0)
    rep.receive_notes("p", {F: eager(2)}, 1.0)  # a graft restarts from its seq
    out = rep.stored(F, 6, "m6", 1.0, source=None)
    assert of(out, SendMessages) == []
    assert of(out, Push) == [] and rep.push_cursor("p", F) == 3


def test_notes_are_coalesced_per_call_and_per_window() -> None:
    rep = Replicator({F: 0, G: 0}, [F, G], EbtConfig(note_delay=1.0))
    opened(rep, "p", their={F: lazy(0), G: lazy(0)})
    out: list[Action] = []
    for seq in (1, 2, 3):
        out += rep.stored(F, seq, f"f{seq}", 0.1 * seq, source=None)
    out += rep.stored(G, 1, "g1", 0.4, source=None)
    assert notes(out) == []  # still inside the window
    assert notes(rep.tick(0.5)) == []
    assert notes(rep.tick(1.2)) == [{F: lazy(3), G: lazy(1)}]
    assert notes(rep.tick(3.0)) == []

    rep2 = Replicator({F: 0, G: 0}, [F, G], EbtConfig(note_delay=0.0))
    opened(rep2, "p", their={F: lazy(0), G: lazy(0)})
    out = rep2.stored(F, 1, "f1", 0.1, source=None)
    assert notes(out) == [{F: lazy(1)}]  # note_delay 0: one frame at the end of the call


# -- prune ---------------------------------------------------------------------------


def test_a_duplicate_from_the_eager_peer_prunes_it() -> None:
    rep = Replicator({F: 5}, [F])
    opened(rep, "p", their={F: lazy(7)})
    assert rep.link("p")[F].rx
    out = rep.receive_messages("p", [(F, 4, "m4")], 1.0)
    assert of(out, StoreMessages) == []
    assert notes(out, "p") == [{F: lazy(5)}]
    assert not rep.link("p")[F].rx and rep.eager_source(F) is None
    assert rep.link("p")[F].duplicates == 1


def test_flooding_never_prunes() -> None:
    rep = Replicator({F: 5}, [F], EbtConfig(prune=False))
    opened(rep, "p", their={F: lazy(5)})
    opened(rep, "q", their={F: lazy(5)})
    assert rep.link("p")[F].rx and rep.link("q")[F].rx  # every link eager
    out = rep.receive_messages("p", [(F, 4, "m4")], 1.0)
    assert notes(out) == [] and rep.link("p")[F].rx


def test_the_overlap_of_a_hand_over_does_not_prune() -> None:
    rep = Replicator({F: 5}, [F], EbtConfig(stall_timeout=3.0))
    opened(rep, "old", their={F: lazy(6)})  # eager source
    rep.receive_messages("old", [(F, 6, "m6")], 0.1)
    rep.stored(F, 6, "m6", 0.1, source="old")
    opened(rep, "new", their={F: lazy(9)}, now=0.2)  # ahead, but old is delivering
    out = rep.tick(3.5)  # old stalled: hand over to new
    assert notes(out, "new") == [{F: eager(6)}] and notes(out, "old") == [{F: lazy(6)}]
    # old had pushed 7..8 before it saw its lazy note: they are new, we take them
    out = rep.receive_messages("old", [(F, 7, "m7"), (F, 8, "m8")], 3.6)
    assert of(out, StoreMessages) == [StoreMessages("old", F, ("m7", "m8"))]
    rep.stored(F, 7, "m7", 3.6, source="old")
    rep.stored(F, 8, "m8", 3.6, source="old")
    # new pushes from 7 as asked: 7..8 are the expected overlap, 9 is new
    out = rep.receive_messages("new", [(F, 7, "m7"), (F, 8, "m8"), (F, 9, "m9")], 3.7)
    assert of(out, StoreMessages) == [StoreMessages("new", F, ("m9",))]
    assert notes(out) == [] and rep.eager_source(F) == "new"


# -- graft ---------------------------------------------------------------------------


def test_a_lazy_peer_ahead_is_grafted_when_no_one_is_eager() -> None:
    rep = Replicator({F: 2}, [F])
    opened(rep, "p", their={F: lazy(2)})
    opened(rep, "q", their={F: lazy(2)})
    rep.receive_messages("p", [(F, 1, "dup")], 0.5)  # prune p: no eager source left
    assert rep.eager_source(F) is None
    out = rep.receive_notes("q", {F: lazy(4)}, 1.0)
    assert notes(out, "q") == [{F: eager(2)}]
    assert rep.eager_source(F) == "q"


def test_an_idle_eager_source_is_replaced_at_once_by_a_peer_ahead() -> None:
    rep = Replicator({F: 2}, [F])
    opened(rep, "p", their={F: lazy(3)})  # ahead: our eager source
    opened(rep, "q", their={F: lazy(2)})
    rep.receive_messages("p", [(F, 3, "m3")], 0.1)
    rep.stored(F, 3, "m3", 0.1, source="p")
    rep.receive_notes("p", {F: eager(3)}, 0.2)  # p's last word: it has no more than us
    out = rep.receive_notes("q", {F: lazy(9)}, 0.3)  # q is ahead
    assert notes(out, "q") == [{F: eager(3)}] and notes(out, "p") == [{F: lazy(3)}]
    assert rep.eager_source(F) == "q"
    assert rep.link("q")[F].rx and not rep.link("p")[F].rx


def test_a_delivering_eager_source_is_not_replaced_by_one_early_note() -> None:
    rep = Replicator({F: 2}, [F])
    opened(rep, "p", their={F: lazy(3)})
    opened(rep, "q", their={F: lazy(2)})
    rep.receive_messages("p", [(F, 3, "m3")], 0.5)  # p delivers: active
    rep.stored(F, 3, "m3", 0.5, source="p")
    out = rep.receive_notes("q", {F: lazy(4)}, 0.6)  # q announces 4 first (a race)
    assert notes(out, "q") == [] and rep.eager_source(F) == "p"


def test_a_stalled_eager_source_is_replaced_after_the_per_feed_timeout() -> None:
    rep = Replicator({F: 2, G: 0}, [F, G], EbtConfig(stall_timeout=3.0))
    opened(rep, "p", their={F: lazy(3), G: lazy(100)})
    opened(rep, "q", their={F: lazy(2), G: lazy(0)})
    rep.receive_messages("p", [(F, 3, "m3")], 0.5)
    rep.stored(F, 3, "m3", 0.5, source="p")
    rep.receive_notes("q", {F: lazy(9)}, 1.0)  # q is ahead on F; p is eager
    # p keeps delivering G (a busy peer), yet F is stalled: the timeout is per feed
    seq = 0
    for step in range(1, 8):
        now = 1.0 + 0.5 * step
        batch = [(G, seq + i, f"g{seq + i}") for i in (1, 2)]
        rep.receive_messages("p", batch, now)
        for _, s, m in batch:
            rep.stored(G, s, m, now, source="p")
        seq += 2
        out = rep.tick(now)
        if now < 3.5:
            assert notes(out, "q") == [], now
    assert rep.eager_source(F) == "q"
    assert rep.eager_source(G) == "p"
    assert not rep.link("p")[F].rx  # demoted with a lazy note: still one rx


def test_the_stall_timer_resets_on_each_delivery() -> None:
    rep = Replicator({F: 2}, [F], EbtConfig(stall_timeout=3.0))
    opened(rep, "p", their={F: lazy(3)})
    opened(rep, "q", their={F: lazy(2)})
    assert rep.eager_source(F) == "p"
    rep.receive_messages("p", [(F, 3, "m3")], 0.0)
    rep.stored(F, 3, "m3", 0.0, source="p")
    rep.receive_notes("q", {F: lazy(50)}, 0.1)
    for i, now in enumerate((2.0, 4.0, 6.0), start=4):
        rep.receive_messages("p", [(F, i, f"m{i}")], now)
        rep.stored(F, i, f"m{i}", now, source="p")
        assert notes(rep.tick(now + 0.5), "q") == [] and rep.eager_source(F) == "p"
    out = rep.tick(9.5)
    assert merged_notes(out, "q") == {F: eager(6)} and rep.eager_source(F) == "q"


# -- disconnect ----------------------------------------------------------------------


def test_feeds_of_a_leaving_eager_source_go_at_once_to_the_peer_furthest_ahead() -> None:
    rep = Replicator({F: 1, G: 1}, [F, G])
    opened(rep, "src", their={F: lazy(20), G: lazy(20)})
    opened(rep, "b", their={F: lazy(7), G: lazy(9)})
    opened(rep, "c", their={F: lazy(9), G: lazy(9)})
    opened(rep, "d", their={F: lazy(1), G: lazy(1)})
    out = rep.disconnect("src", 2.0)
    assert of(out, PersistRecord)[0].peer == "src"
    assert notes(out, "c") == [{F: eager(1)}]  # F: the highest seq
    assert notes(out, "b") == [{G: eager(1)}]  # G: a tie, b connected first
    assert notes(out, "d") == []
    assert rep.eager_source(F) == "c" and rep.eager_source(G) == "b"


def test_a_tie_goes_to_the_earliest_connected_peer() -> None:
    rep = Replicator({F: 1}, [F])
    opened(rep, "src", their={F: lazy(20)})
    opened(rep, "b", their={F: lazy(9)})
    opened(rep, "c", their={F: lazy(9)})
    out = rep.disconnect("src", 2.0)
    assert notes(out, "b") == [{F: eager(1)}] and notes(out, "c") == []


def test_no_graft_on_disconnect_when_no_one_is_ahead() -> None:
    rep = Replicator({F: 5}, [F])
    opened(rep, "src", their={F: lazy(5)})
    opened(rep, "b", their={F: lazy(5)})
    out = rep.disconnect("src", 2.0)
    assert notes(out) == [] and rep.eager_source(F) is None


def test_an_orphaned_source_tells_the_peers_it_feeds_and_they_graft_at_once() -> None:
    # Middle node: "src" fed it F, it feeds "child". src crashes, nobody else is ahead.
    mid = Replicator({F: 5}, [F])
    opened(mid, "src", their={F: lazy(6)})
    mid.receive_messages("src", [(F, 6, "m6")], 0.1)
    mid.stored(F, 6, "m6", 0.1, source="src")
    opened(mid, "child", their={F: eager(5)})  # the child asks us to push F
    opened(mid, "other", their={F: eager(6)})  # a lazy peer we do not push to
    mid.receive_notes("other", {F: lazy(6)}, 0.2)
    out = mid.disconnect("src", 1.0)
    assert merged_notes(out, "child") == {F: lazy(6)}  # our seq: nothing more from us
    assert notes(out, "other") == []
    # The child, whose source mid was delivering, sees mid idle and grafts the first
    # announcement from elsewhere instead of waiting out a race.
    child = Replicator({F: 5}, [F], EbtConfig(stall_timeout=3.0))
    opened(child, "mid", their={F: lazy(6)})
    child.receive_messages("mid", [(F, 6, "m6")], 0.1)
    child.stored(F, 6, "m6", 0.1, source="mid")
    opened(child, "cousin", their={F: lazy(6)})
    child.receive_notes("mid", merged_notes(out, "child"), 1.1)
    graft = child.receive_notes("cousin", {F: lazy(7)}, 1.2)
    assert notes(graft, "cousin") == [{F: eager(6)}] and child.eager_source(F) == "cousin"


def test_a_sync_survives_its_source_leaving_midway() -> None:
    net = Network(push_batch=5)
    a, b, c = feed_id("a"), feed_id("b"), feed_id("c")
    for name in "abc":
        net.add(name, [a, b, c])
    net.append("a", count=200)
    net.connect("b", "a")
    net.run()
    net.connect("c", "a")  # c takes a's feed from a
    net.connect("c", "b")
    net.run_until(lambda: net.nodes["c"].head(a) >= 50)
    assert 50 <= net.nodes["c"].head(a) < 200
    assert net.nodes["c"].rep.eager_source(a) == "a"
    net.disconnect("c", "a")
    net.run()  # no tick needed: the feed moved to b at once
    assert net.nodes["c"].head(a) == 200


# -- request skipping ----------------------------------------------------------------


def _synced_pair(feeds: int, count: int = 3) -> tuple[Network, list[bytes]]:
    ids = [f"feed{i:04d}".encode() for i in range(feeds)]
    net = Network()
    net.add("a", ids)
    net.add("b", ids)
    for i, feed in enumerate(ids):
        net.append("a" if i % 2 else "b", feed, count=count)
    net.connect("b", "a")
    net.settle(rounds=1)
    assert net.in_sync("a", "b")
    net.disconnect("b", "a")
    return net, ids


def test_a_no_change_reconnect_after_a_sync_sends_no_entries() -> None:
    net, _ = _synced_pair(200)
    net.stats.reset()
    net.connect("b", "a")
    net.settle(rounds=1)
    assert net.stats.note_entries == 0 and net.stats.payloads == 0
    assert net.stats.note_frames == 2  # the two (empty) opening clocks


def test_a_one_percent_change_costs_about_one_percent() -> None:
    net, ids = _synced_pair(1000)
    for feed in ids[:10]:
        net.append("a", feed)
    net.stats.reset()
    net.connect("b", "a")
    net.settle(rounds=1)
    assert net.in_sync("a", "b")
    assert net.stats.payloads == 10
    full = 2 * len(ids)
    assert net.stats.note_entries <= 0.02 * full + 4, net.stats.note_entries


def test_a_lost_record_means_a_full_exchange() -> None:
    net, ids = _synced_pair(50)
    net.stats.reset()
    net.connect("b", "a", remember=False)
    net.settle(rounds=1)
    assert net.stats.note_entries >= 2 * len(ids) and net.stats.payloads == 0


def test_a_peer_that_mentions_a_skipped_feed_gets_our_note() -> None:
    rep = Replicator({F: 5, G: 3}, [F, G])
    record = PeerRecord(theirs={F: 5, G: 3}, ours={F: 5, G: 3})
    out = rep.connect("p", 0.0, initiator=False, record=record)
    assert notes(out, "p") == [{}]  # both feeds skipped
    out = rep.receive_notes("p", {G: lazy(3)}, 0.1)
    assert notes(out, "p") == [{G: lazy(3)}]
    out = rep.receive_notes("p", {F: lazy(8)}, 0.2)  # ahead: our note asks for it
    assert notes(out, "p") == [{F: eager(5)}]


def test_a_peer_ahead_according_to_the_record_is_not_skipped() -> None:
    rep = Replicator({F: 5}, [F])
    out = rep.connect("p", 0.0, initiator=False, record=PeerRecord({F: 9}, {F: 5}))
    assert notes(out, "p") == [{F: eager(5)}]  # it was ahead when we last spoke


def test_a_wiped_peer_reporting_less_than_remembered_is_believed_and_pushed_to() -> None:
    rep = Replicator({F: 10}, [F])
    out = rep.connect("p", 0.0, initiator=False, record=PeerRecord({F: 10}, {F: 10}))
    assert notes(out, "p") == [{}]
    out = rep.receive_notes("p", {F: eager(0)}, 0.1)
    assert of(out, Push) == [Push("p", F, 1)]
    assert notes(out, "p") == [{F: lazy(10)}]
    assert rep.link("p")[F].remote_seq == 0


def test_a_wiped_database_catches_up_in_the_network() -> None:
    net, ids = _synced_pair(30, count=5)
    net.add("b", ids)  # b lost everything: empty store, no records
    net.nodes["a"].records.clear()
    net.connect("b", "a")
    net.settle(rounds=1)
    assert net.in_sync("a", "b") and net.nodes["b"].head(ids[1]) == 5
    # and with a's record of b intact (b still wiped): believed lower seqs
    net.disconnect("b", "a")
    net.add("b", ids)
    net.connect("b", "a")
    net.settle(rounds=1)
    assert net.in_sync("a", "b") and net.nodes["b"].head(ids[1]) == 5


# -- faster trees --------------------------------------------------------------------


def _triangle(swap: bool) -> Network:
    """c takes a's feed through b; the direct a-c link is faster."""
    # the swap needs news on time: a lazy announcement held back note_delay cannot win
    net = Network(EbtConfig(swap=swap, swap_after=3, note_delay=0.0), latency=0.01)
    fa, fb, fc = feed_id("a"), feed_id("b"), feed_id("c")
    for name in "abc":
        net.add(name, [fa, fb, fc])
    net.append("a", count=5)
    net.connect("b", "a")
    net.connect("c", "b")
    net.settle(rounds=1)
    assert net.nodes["c"].rep.eager_source(fa) == "b"
    net.connect("c", "a", latency=0.002)
    net.settle(rounds=1)
    return net


def test_a_lazy_peer_that_announces_first_repeatedly_becomes_eager() -> None:
    net = _triangle(swap=True)
    fa = feed_id("a")
    for i in range(2):
        net.append("a")
        net.settle(rounds=1)
        assert net.nodes["c"].rep.eager_source(fa) == "b", i
    net.append("a")
    net.settle(rounds=1)
    rep = net.nodes["c"].rep
    assert rep.eager_source(fa) == "a"
    assert not rep.link("b")[fa].rx  # the slower one was pruned
    net.stats.reset()
    net.append("a", count=5)
    net.settle(rounds=1)
    assert net.stats.link_payloads[("b", "c")] == 0
    assert net.stats.link_payloads[("a", "c")] == 5


def test_no_swap_when_disabled() -> None:
    net = _triangle(swap=False)
    for _ in range(6):
        net.append("a")
        net.settle(rounds=1)
    assert net.nodes["c"].rep.eager_source(feed_id("a")) == "b"


# -- blocked, forked, forged, shareable ----------------------------------------------


def test_a_blocked_feed_is_never_sent_nor_fetched() -> None:
    rep = Replicator({F: 5, G: 1}, [F, G])
    opened(rep, "p", their={F: eager(2), G: lazy(1)})
    out = rep.block(F, 1.0)
    assert notes(out, "p") == [{F: -1}]
    assert rep.push_cursor("p", F) is None
    assert of(rep.stored(F, 6, "m6", 1.1, source=None), SendMessages) == []
    assert of(rep.receive_messages("p", [(F, 6, "x")], 1.2), StoreMessages) == []
    out = rep.receive_notes("p", {F: eager(9)}, 1.3)
    assert of(out, Push) == [] and notes(out, "p") == []  # already told -1
    assert rep.want(F, 1.4) == []
    out = rep.connect("q", 2.0, initiator=False, record=None)
    assert F not in merged_notes(out, "q")
    out = rep.receive_notes("q", {F: lazy(9)}, 2.1)
    assert notes(out, "q") == [{F: -1}]


def test_a_fork_stops_the_feed_with_everyone() -> None:
    rep = Replicator({F: 3}, [F])
    opened(rep, "p", their={F: lazy(5)})
    opened(rep, "q", their={F: lazy(5)})
    rep.receive_messages("p", [(F, 4, "fork4")], 1.0)
    out = rep.rejected(F, "p", 1.0, fork=True)
    assert notes(out, "p") == [{F: -1}] and notes(out, "q") == [{F: -1}]
    assert F not in rep.replicating and rep.want(F, 2.0) == []


def test_a_forged_message_distrusts_only_that_peer_for_that_feed() -> None:
    net = Network(push_batch=3)
    fa = feed_id("a")
    net.add("liar", [fa], store={fa: [(fa, 1, "ok"), (fa, 2, "ok"), (fa, 3, "forged")]})
    net.add("honest", [fa], store={fa: [(fa, i, "ok") for i in range(1, 8)]})
    net.add("c", [fa])
    net.connect("c", "liar")
    net.run()
    rep = net.nodes["c"].rep
    assert net.nodes["c"].head(fa) == 2
    assert not rep.link("liar")[fa].trusted and rep.eager_source(fa) is None
    net.connect("c", "honest")
    net.settle(rounds=2)
    assert net.nodes["c"].head(fa) == 7 and rep.eager_source(fa) == "honest"
    # the liar announcing more never gets grafted again, even with honest gone
    net.disconnect("c", "honest")
    net.nodes["liar"].store[fa][2] = (fa, 3, "ok")
    for seq in range(4, 12):
        net.nodes["liar"].store[fa].append((fa, seq, "ok"))
    out = rep.receive_notes("liar", {fa: lazy(11)}, net.now)
    assert notes(out, "liar") == [] and rep.eager_source(fa) is None
    assert of(rep.receive_messages("liar", [(fa, 8, (fa, 8, "ok"))], net.now), StoreMessages) == []


def test_unshareable_feeds_are_answered_minus_one_and_never_pushed() -> None:
    def shareable(peer: Any, feed: bytes) -> bool:
        return not (peer == "p" and feed == F)

    rep = Replicator({F: 5, G: 5}, [F, G], shareable=shareable)
    out = opened(rep, "p", their={F: eager(0), G: eager(0)})
    assert merged_notes(out, "p") == {G: lazy(5), F: -1}
    assert of(out, Push) == [Push("p", G, 1)]
    assert rep.push_cursor("p", F) is None
    assert of(rep.stored(F, 6, "m", 1.0, source=None), SendMessages) == []


# -- storing -------------------------------------------------------------------------


def test_only_new_contiguous_messages_with_replication_state_are_stored() -> None:
    rep = Replicator({F: 2}, [F])
    opened(rep, "p", their={F: lazy(9)})
    out = rep.receive_messages("p", [(G, 1, "g1")], 1.0)  # no state for G
    assert of(out, StoreMessages) == []
    out = rep.receive_messages("p", [(F, 5, "m5")], 1.0)  # gap
    assert of(out, StoreMessages) == []
    out = rep.receive_messages("p", [(F, 3, "m3"), (F, 4, "m4"), (F, 6, "m6")], 1.0)
    assert of(out, StoreMessages) == [StoreMessages("p", F, ("m3", "m4"))]


def test_the_store_is_never_asked_twice_for_a_seq_in_flight() -> None:
    rep = Replicator({F: 2}, [F])
    opened(rep, "p", their={F: lazy(9)})
    opened(rep, "q", their={F: lazy(9)})
    first = rep.receive_messages("p", [(F, 3, "m3"), (F, 4, "m4")], 1.0)
    second = rep.receive_messages("q", [(F, 3, "m3"), (F, 4, "m4"), (F, 5, "m5")], 1.0)
    assert of(first, StoreMessages) == [StoreMessages("p", F, ("m3", "m4"))]
    assert of(second, StoreMessages) == [StoreMessages("q", F, ("m5",))]


def test_copies_dropped_for_a_refused_batch_are_asked_again() -> None:
    rep = Replicator({F: 2}, [F])
    opened(rep, "p", their={F: lazy(3)})  # p is the eager source
    opened(rep, "q", their={F: lazy(2)})
    rep.receive_messages("p", [(F, 3, "m3")], 0.5)
    rep.stored(F, 3, "m3", 0.5, source="p")
    rep.receive_messages("q", [(F, 4, "bad4")], 1.0)  # a stray push from q, queued
    out = rep.receive_messages("p", [(F, 4, "m4"), (F, 5, "m5")], 1.0)  # 4 is queued
    assert of(out, StoreMessages) == [StoreMessages("p", F, ("m5",))]
    out = rep.rejected(F, "q", 1.1, fork=False)
    assert notes(out, "p")[-2:] == [{F: lazy(3)}, {F: eager(3)}]  # restart p's cursor at 3
    assert not rep.link("q")[F].trusted
    # p's queued 5 then fails for the gap: not p's fault
    assert rep.rejected(F, "p", 1.15, fork=False) == []
    assert rep.link("p")[F].trusted and rep.eager_source(F) == "p"
    out = rep.receive_messages("p", [(F, 4, "m4"), (F, 5, "m5")], 1.2)
    assert of(out, StoreMessages) == [StoreMessages("p", F, ("m4", "m5"))]


# -- introspection -------------------------------------------------------------------


def test_link_state_eager_source_and_record() -> None:
    net = Network()
    fa = feed_id("a")
    net.add("a", [fa])
    net.add("b", [fa])
    net.append("a", count=12)
    net.connect("b", "a")
    net.settle(rounds=1)
    rb, ra = net.nodes["b"].rep, net.nodes["a"].rep
    state = rb.link("a")[fa]
    assert state.rx and state.remote_seq == 12 and state.local_seq == 12
    assert state.received == 12 and state.last_received is not None
    assert ra.link("b")[fa].tx and ra.link("b")[fa].sent == 12
    assert rb.eager_source(fa) == "a"
    assert rb.record("a") == PeerRecord(theirs={fa: 12}, ours={fa: 12})
    assert ra.record("b") == PeerRecord(theirs={fa: 12}, ours={fa: 12})
    net.disconnect("b", "a")
    assert rb.link("a") == {} and rb.record("a").theirs == {fa: 12}
    assert net.nodes["b"].records["a"] == rb.record("a")


def test_want_and_unwant() -> None:
    rep = Replicator({F: 4}, [])
    opened(rep, "p")
    opened(rep, "q")
    out = rep.want(F, 1.0)
    assert notes(out, "p") == [{F: lazy(4)}] and notes(out, "q") == [{F: lazy(4)}]
    out = rep.receive_notes("q", {F: lazy(6)}, 1.5)
    assert notes(out, "q") == [{F: eager(4)}]
    out = rep.unwant(F, 2.0)
    assert notes(out, "p") == [{F: -1}] and notes(out, "q") == [{F: -1}]
    out = rep.receive_notes("p", {F: lazy(9)}, 3.0)
    assert notes(out) == []  # we already said -1 in this session


def test_wanting_a_feed_a_peer_already_said_it_has_grafts_it_at_once() -> None:
    rep = Replicator({}, [])
    out = rep.connect("p", 0.0, initiator=True, record=None)
    out = rep.receive_notes("p", {F: lazy(41)}, 0.1)
    assert notes(out, "p") == [{F: -1}]  # not replicated yet
    out = rep.want(F, 0.2)
    assert notes(out, "p") == [{F: eager(0)}] and rep.eager_source(F) == "p"


def test_a_peer_that_said_minus_one_and_then_mentions_the_feed_gets_our_note_again() -> None:
    rep = Replicator({F: 41}, [F])
    out = rep.connect("p", 0.0, initiator=False, record=None)
    assert notes(out, "p") == [{F: lazy(41)}]
    assert notes(rep.receive_notes("p", {F: -1}, 0.1)) == []
    out = rep.receive_notes("p", {F: lazy(0)}, 0.2)  # it wants the feed now
    assert notes(out, "p") == [{F: lazy(41)}]


def test_a_pruned_source_that_is_still_ahead_is_not_left_lazy_forever() -> None:
    rep = Replicator({F: 5}, [F], EbtConfig(stall_timeout=3.0))
    opened(rep, "p", their={F: lazy(9)})  # p is ahead: eager
    out = rep.receive_messages("p", [(F, 2, "m2")], 1.0)  # a stray duplicate: prune
    assert notes(out, "p") == [{F: lazy(5)}] and rep.eager_source(F) is None
    out = rep.tick(4.1)  # nobody else is ahead: back to p, its cursor restarted
    assert notes(out, "p") == [{F: eager(5)}] and rep.eager_source(F) == "p"


def test_a_pruned_source_hands_over_to_another_peer_ahead() -> None:
    rep = Replicator({F: 5}, [F])
    opened(rep, "p", their={F: lazy(9)})
    opened(rep, "q", their={F: lazy(9)})
    out = rep.receive_messages("p", [(F, 2, "m2")], 1.0)
    assert notes(out, "p") == [{F: lazy(5)}] and notes(out, "q") == [{F: eager(5)}]
    assert rep.eager_source(F) == "q"


def test_a_silent_eager_source_alone_ahead_is_asked_again_from_our_seq() -> None:
    rep = Replicator({F: 5}, [F], EbtConfig(stall_timeout=3.0))
    opened(rep, "p", their={F: lazy(9)})
    assert notes(rep.tick(2.9)) == []
    assert notes(rep.tick(3.1), "p") == [{F: lazy(5)}, {F: eager(5)}]  # cursor restart


def test_a_gap_from_the_source_ends_in_a_restart_from_our_seq() -> None:
    rep = Replicator({F: 5}, [F], EbtConfig(stall_timeout=3.0))
    opened(rep, "p", their={F: lazy(9)})
    rep.receive_messages("p", [(F, 6, "m6")], 0.5)
    rep.stored(F, 6, "m6", 0.5, source="p")
    out = rep.receive_messages("p", [(F, 8, "m8")], 1.0)  # 7 never came
    assert of(out, StoreMessages) == []
    assert {F: lazy(6)} not in notes(rep.tick(3.4), "p")  # only the held-back ack
    assert notes(rep.tick(3.6), "p")[-2:] == [{F: lazy(6)}, {F: eager(6)}]


def test_no_stall_blame_while_our_own_store_is_behind() -> None:
    rep = Replicator({F: 5}, [F], EbtConfig(stall_timeout=3.0))
    opened(rep, "p", their={F: lazy(90)})
    opened(rep, "q", their={F: lazy(90)})
    rep.receive_messages("p", [(F, s, f"m{s}") for s in range(6, 50)], 0.5)
    out = rep.tick(5.0)  # nothing stored yet: the store is the bottleneck
    assert notes(out, "q") == [] and rep.eager_source(F) == "p"
    for s in range(6, 50):
        rep.stored(F, s, f"m{s}", 5.5, source="p")
    out = rep.tick(8.6)  # now p really is silent
    assert notes(out, "q") == [{F: eager(49)}] and rep.eager_source(F) == "q"


def test_one_notes_frame_per_peer_per_call() -> None:
    rep = Replicator({F: 0, G: 0}, [F, G], EbtConfig(note_delay=0.0))
    opened(rep, "src", their={F: lazy(2), G: lazy(2)})
    opened(rep, "idle", their={F: lazy(0), G: lazy(0)})
    msgs = [(F, 1, "f1"), (F, 2, "f2"), (G, 1, "g1"), (G, 2, "g2")]
    out = rep.receive_messages("src", msgs, 1.0)
    for action in of(out, StoreMessages):
        for seq, payload in enumerate(action.payloads, start=1):
            out += rep.stored(action.feed, seq, payload, 1.0, source="src")
    # stored() is one call per message: the lazy peer hears once per feed, at batch end
    assert notes(out, "idle") == [{F: lazy(2)}, {G: lazy(2)}]
    assert notes(out, "src") == []


def _race(rep: Replicator, seq: int, lead: float, at: float) -> list[Action]:
    """Lazy q announces `seq` at `at`; eager p's copy arrives `lead` later."""
    out = rep.receive_notes("q", {F: lazy(seq)}, at)
    out += rep.receive_messages("p", [(F, seq, f"m{seq}")], at + lead)
    out += rep.stored(F, seq, f"m{seq}", at + lead, source="p")
    return out


def test_ties_and_leads_within_the_margin_never_swap() -> None:
    rep = Replicator({F: 2}, [F], EbtConfig(swap_after=3, swap_margin=0.05))
    opened(rep, "p", their={F: lazy(3)})
    opened(rep, "q", their={F: lazy(2)})
    rep.receive_messages("p", [(F, 3, "m3")], 0.1)
    rep.stored(F, 3, "m3", 0.1, source="p")
    for i, seq in enumerate(range(4, 12)):
        _race(rep, seq, 0.0 if i % 2 else 0.04, 1.0 + i)
    assert rep.eager_source(F) == "p"
    out: list[Action] = []
    for i, seq in enumerate(range(12, 15)):
        out += _race(rep, seq, 0.2, 20.0 + i)
    assert rep.eager_source(F) == "q"
    assert {F: eager(13)} in notes(out, "q")  # grafted when p's 3rd late copy came
    assert not rep.link("p")[F].rx
