"""Faster-tree swaps are stable: after a swap, near-equal paths do not take turns."""

from __future__ import annotations

from net.ebt import EbtConfig, Replicator, encode_note

F = b"F" * 32


def race(rep: Replicator, lazy: str, eager: str, seq: int, lead: float, at: float) -> None:
    """Lazy `lazy` announces `seq` at `at`; eager `eager`'s copy arrives `lead` later."""
    rep.receive_notes(lazy, {F: encode_note(seq, False)}, at)
    rep.receive_messages(eager, [(F, seq, f"m{seq}")], at + lead)
    rep.stored(F, seq, f"m{seq}", at + lead, source=eager)


def swapped_pair(config: EbtConfig) -> Replicator:
    """p eager, q lazy; q wins `swap_after` races at t = 1, 2, 3 and is swapped in."""
    rep = Replicator({F: 2}, [F], config)
    for peer, seq in (("p", 3), ("q", 2)):
        rep.connect(peer, 0.0, initiator=True, record=None)
        rep.receive_notes(peer, {F: encode_note(seq, False)}, 0.0)
    rep.receive_messages("p", [(F, 3, "m3")], 0.1)
    rep.stored(F, 3, "m3", 0.1, source="p")
    assert rep.eager_source(F) == "p"
    for i, seq in enumerate(range(4, 7)):
        race(rep, "q", "p", seq, 0.05, 1.0 + i)
    assert rep.eager_source(F) == "q"
    return rep


def test_no_swap_back_within_the_hold() -> None:
    rep = swapped_pair(EbtConfig(swap_after=3, swap_hold=10.0))
    rep.receive_messages("q", [(F, 7, "m7")], 3.5)  # the new source delivers
    rep.stored(F, 7, "m7", 3.5, source="q")
    # Jitter: now p is ahead by a little, three times in a row, soon after the swap.
    for i, seq in enumerate(range(8, 13)):
        race(rep, "p", "q", seq, 0.05, 4.0 + i)
    assert rep.eager_source(F) == "q"  # held: no flapping between near-equal paths
    # Once the hold is over, a path that keeps winning still takes over.
    for i, seq in enumerate(range(13, 16)):
        race(rep, "p", "q", seq, 0.05, 20.0 + i)
    assert rep.eager_source(F) == "p"


def test_without_a_hold_trees_flap() -> None:
    rep = swapped_pair(EbtConfig(swap_after=3, swap_hold=0.0))
    rep.receive_messages("q", [(F, 7, "m7")], 3.5)
    rep.stored(F, 7, "m7", 3.5, source="q")
    for i, seq in enumerate(range(8, 11)):
        race(rep, "p", "q", seq, 0.05, 4.0 + i)
    assert rep.eager_source(F) == "p"  # what the hold prevents


def test_leads_within_the_default_margin_do_not_count() -> None:
    rep = Replicator({F: 2}, [F])
    assert rep.config.swap_margin > 0  # real sockets have sub-millisecond jitter
    for peer, seq in (("p", 3), ("q", 2)):
        rep.connect(peer, 0.0, initiator=True, record=None)
        rep.receive_notes(peer, {F: encode_note(seq, False)}, 0.0)
    rep.receive_messages("p", [(F, 3, "m3")], 0.1)
    rep.stored(F, 3, "m3", 0.1, source="p")
    for i, seq in enumerate(range(4, 10)):
        race(rep, "q", "p", seq, rep.config.swap_margin / 2, 1.0 + i)
    assert rep.eager_source(F) == "p"
