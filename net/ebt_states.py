"""The two states of one EBT link (what we ask of the peer, what it asks of us) and their moves.

One link is one (peer, feed) pair while the peer is connected. Its eager flags used to be
four booleans (`rx`, `was_rx`, `tx`, `pushing`) whose legal combinations lived only in
the code that set them; here they are two small enums and one table each, in the style
of h11's `_state.py`: `net/ebt.py` changes a link's state only through `ask_after` and
`serve_after`, and a move the table lacks is a bug in the core (`IllegalMove`), never
something a peer can cause. `docs/ebt.md` shows these tables as `link_state_tables()`
prints them (`tests/test_ebt_states.py` checks the two agree):
`.venv/bin/python -m net.ebt_states`.

The verdicts on a peer's word (`trusted`: it never forged a message of the feed,
`doubted`: its claim is not believed) stay two flags: they are independent of each
other and of the eager state, and a link can carry both.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from typing import TypeVar

__all__ = [
    "Ask",
    "AskEvent",
    "IllegalMove",
    "Serve",
    "ServeEvent",
    "ask_after",
    "link_state_tables",
    "serve_after",
]


_S = TypeVar("_S", bound=Enum)
_E = TypeVar("_E", bound=Enum)


class IllegalMove(AssertionError):
    """A link state change the tables do not allow: a bug in the replication core."""


class Ask(Enum):
    """What we ask of this peer for this feed."""

    LAZY = "lazy"
    """Notes only, and it has not been our eager source in this session."""
    EAGER = "eager"
    """It is our eager source (`rx`): it pushes the feed to us."""
    DEMOTED = "demoted"
    """Notes only again; pushes it sent while it was eager may still be in flight."""


class AskEvent(Enum):
    """What changes what we ask of a peer."""

    GRAFT = "graft"
    """We make it our eager source (an eager note goes out)."""
    HAND_OVER = "hand-over"
    """Another peer was grafted for the feed."""
    PRUNE = "prune"
    """It pushed a duplicate beyond the hand-over overlap."""
    DOUBT = "doubt"
    """Its claim is no longer believed (the liar rule)."""
    DISTRUST = "distrust"
    """It sent a forged message of the feed."""
    STOPPED = "stopped"
    """It said -1: it does not replicate the feed (any more)."""


class Serve(Enum):
    """What this peer asked of us for this feed, and whether a push loop runs for it."""

    LAZY = "lazy"
    """It wants notes only (`tx` off) and no push loop runs."""
    EAGER = "eager"
    """It asked us to push (`tx`): each message we store goes to it at once."""
    PUSHING = "pushing"
    """Eager, and a `Push` loop is catching it up from its cursor."""
    STOPPING = "stopping"
    """Lazy again while a loop still runs: the loop stops at its next `push_cursor`."""


class ServeEvent(Enum):
    """What changes what we serve a peer."""

    EAGER_NOTE = "eager note"
    """Its note asks us to push the feed to it."""
    LAZY_NOTE = "lazy note"
    """Its note (or a -1) asks for notes only."""
    PUSH = "push"
    """It is behind and eager: a `Push` action goes out."""
    CURSOR_END = "cursor end"
    """`push_cursor` answered None: the loop for this link ends."""


_DEMOTIONS = (AskEvent.HAND_OVER, AskEvent.PRUNE, AskEvent.DOUBT, AskEvent.DISTRUST)

ASK_MOVES: dict[Ask, dict[AskEvent, Ask]] = {
    Ask.LAZY: {AskEvent.GRAFT: Ask.EAGER},
    Ask.EAGER: {
        AskEvent.GRAFT: Ask.EAGER,
        **{event: Ask.DEMOTED for event in _DEMOTIONS},
        AskEvent.STOPPED: Ask.DEMOTED,
    },
    Ask.DEMOTED: {AskEvent.GRAFT: Ask.EAGER},
}
"""What we ask after an event; an event a state lacks here never happens in it."""

SERVE_MOVES: dict[Serve, dict[ServeEvent, Serve]] = {
    Serve.LAZY: {
        ServeEvent.EAGER_NOTE: Serve.EAGER,
        ServeEvent.LAZY_NOTE: Serve.LAZY,
        ServeEvent.CURSOR_END: Serve.LAZY,
    },
    Serve.EAGER: {
        ServeEvent.EAGER_NOTE: Serve.EAGER,
        ServeEvent.LAZY_NOTE: Serve.LAZY,
        ServeEvent.PUSH: Serve.PUSHING,
        ServeEvent.CURSOR_END: Serve.EAGER,
    },
    Serve.PUSHING: {
        ServeEvent.EAGER_NOTE: Serve.PUSHING,
        ServeEvent.LAZY_NOTE: Serve.STOPPING,
        ServeEvent.CURSOR_END: Serve.EAGER,
    },
    Serve.STOPPING: {
        ServeEvent.EAGER_NOTE: Serve.PUSHING,
        ServeEvent.LAZY_NOTE: Serve.STOPPING,
        ServeEvent.CURSOR_END: Serve.LAZY,
    },
}
"""What we serve after an event. A loop of an earlier session may still end on a link
of the next one, so `CURSOR_END` is allowed in every state."""


def ask_after(state: Ask, event: AskEvent) -> Ask:
    """The state `event` moves a link's ask from `state` to."""
    try:
        return ASK_MOVES[state][event]
    except KeyError:
        raise IllegalMove(f"ask: {event.value} in state {state.value}") from None


def serve_after(state: Serve, event: ServeEvent) -> Serve:
    """The state `event` moves a link's serving from `state` to."""
    try:
        return SERVE_MOVES[state][event]
    except KeyError:
        raise IllegalMove(f"serve: {event.value} in state {state.value}") from None


def _table(title: str, moves: Mapping[_S, Mapping[_E, _S]]) -> list[str]:
    lines = [f"| {title} | event | next |", "|---|---|---|"]
    for state, events in moves.items():
        first = True
        for event, after in events.items():
            shown = f"`{state.value}`" if first else ""
            lines.append(f"| {shown} | {event.value} | `{after.value}` |")
            first = False
    return lines


def link_state_tables() -> str:
    """The two move tables as markdown (docs/ebt.md holds this text)."""
    return "\n".join(
        [
            *_table("ask (what we ask of it)", ASK_MOVES),
            "",
            *_table("serve (what it asks of us)", SERVE_MOVES),
        ]
    )


if __name__ == "__main__":
    print(link_state_tables())
