"""Note suppression in the EBT core, one rule of docs/ebt.md ("Cheaper notes") per test."""

from __future__ import annotations

from typing import Any

from net.ebt import Action, EbtConfig, Push, Replicator, SendNotes, encode_note

F = b"feed-f"
G = b"feed-g"
HELD = EbtConfig(note_delay=0.2, record_delay=5.0)


def notes(actions: list[Action], peer: Any = None) -> list[dict[bytes, int]]:
    return [a.notes for a in actions if isinstance(a, SendNotes) and peer in (None, a.peer)]


def lazy(seq: int) -> int:
    return encode_note(seq, False)


def eager(seq: int) -> int:
    return encode_note(seq, True)


def opened(rep: Replicator, peer: str, their: dict[bytes, int], now: float = 0.0) -> None:
    rep.connect(peer, now, initiator=False, record=None)
    rep.receive_notes(peer, their, now)


def test_news_waits_note_delay_and_one_frame_carries_every_feed_and_message() -> None:
    """Rule: an announcement waits up to note_delay; what is due then goes in one frame
    (coalesced across messages and feeds), with only the latest seq per feed."""
    rep = Replicator({F: 0, G: 0}, [F, G], HELD)
    opened(rep, "p", {F: lazy(0), G: lazy(0)})
    out: list[Action] = []
    for i, (feed, seq) in enumerate([(F, 1), (G, 1), (F, 2), (F, 3)]):
        out += rep.stored(feed, seq, None, 1.0 + 0.01 * i, source=None)
    assert notes(out, "p") == []  # held: nothing in the first 0.2 s
    assert notes(rep.tick(1.1), "p") == []
    assert notes(rep.tick(1.25), "p") == [{F: lazy(3), G: lazy(1)}]


def test_urgent_notes_carry_the_held_news_along() -> None:
    """Rule: held news rides with the next frame that goes to that peer anyway."""
    rep = Replicator({F: 0, G: 5}, [F, G], HELD)
    opened(rep, "p", {F: lazy(0), G: lazy(5)})
    assert notes(rep.stored(F, 1, None, 1.0, source=None), "p") == []
    out = rep.receive_notes("p", {G: lazy(7)}, 1.05)  # ahead on G: we ask it at once
    assert notes(out, "p") == [{F: lazy(1), G: eager(5)}]  # ... and F's news goes along
    assert notes(rep.tick(1.5), "p") == []


def test_news_the_peer_no_longer_needs_is_dropped() -> None:
    """Rule: at the end of the wait, news of a seq the peer has since told us it holds is
    left out (crossing announcements on a lazy link cost one note, not two)."""
    rep = Replicator({F: 0, G: 0}, [F, G], HELD)
    opened(rep, "p", {F: lazy(0), G: lazy(0)})
    rep.stored(F, 1, None, 1.0, source=None)
    rep.stored(G, 1, None, 1.0, source=None)
    rep.receive_notes("p", {F: lazy(1)}, 1.05)  # its own announcement crossed ours
    assert notes(rep.tick(1.25), "p") == [{G: lazy(1)}]


def test_a_dropped_announcement_still_keeps_the_peers_record_true() -> None:
    """Rule (with the one above): the peer's record of us is updated by a record note
    (record_delay), so the next session still skips the feed."""
    rep = Replicator({F: 0}, [F], HELD)
    opened(rep, "p", {F: lazy(0)})
    rep.stored(F, 1, None, 1.0, source=None)
    rep.receive_notes("p", {F: lazy(1)}, 1.05)
    assert notes(rep.tick(1.25), "p") == []
    assert notes(rep.tick(6.3), "p") == [{F: lazy(1)}]  # 5 s after the drop
    assert rep.record("p").ours[F] == 1


def test_news_to_a_peer_that_asked_for_the_feed_is_dropped() -> None:
    """Rule: a peer that asked us eagerly meanwhile gets the messages, not the news."""
    rep = Replicator({F: 0}, [F], HELD)
    opened(rep, "p", {F: lazy(0)})
    rep.stored(F, 1, None, 1.0, source=None)
    out = rep.receive_notes("p", {F: eager(0)}, 1.05)  # it lacks seq 1 and asks for F
    assert [(a.peer, a.from_seq) for a in out if isinstance(a, Push)] == [("p", 1)]
    assert notes(rep.tick(1.25), "p") == []


def test_a_source_with_nothing_more_hands_the_feed_to_a_peer_ahead() -> None:
    """Rule: when our eager source says it has nothing beyond us, a peer that announced
    more meanwhile (taken for a race while the source was delivering) is grafted at once
    instead of after stall_timeout (a tree broken above our source heals in one round)."""
    rep = Replicator({F: 0}, [F], HELD)
    opened(rep, "src", {F: lazy(5)})
    opened(rep, "other", {F: lazy(0)})
    assert rep.eager_source(F) == "src"
    got = rep.receive_messages("src", [(F, s, None) for s in range(1, 6)], 1.0)
    assert got
    for seq in range(1, 6):
        rep.stored(F, seq, None, 1.0, source="src")
    rep.receive_notes("other", {F: lazy(6)}, 1.1)  # a race: src has been delivering
    assert rep.eager_source(F) == "src"
    out = rep.receive_notes("src", {F: lazy(5)}, 1.2)  # src: "I have 5, nothing more"
    assert rep.eager_source(F) == "other"
    assert notes(out, "other") == [{F: eager(5)}]
