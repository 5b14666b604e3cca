"""Scope and access as pure functions: which feeds we replicate, whom we hear and tell.

* Scope (`replicated_feeds`): our own feed; every feed within `hops` follow-steps of
  us (hops 1 = those we follow, hops 2 = also those they follow); LAN peers when
  auto-follow is on (themselves only, their follows are not expanded); never a feed we
  block, and the walk does not pass through a blocked feed. Only *our* blocks count:
  a friend's block does not hide a feed from us.
* Access (the Urbit gossip idea of `hear` / `tell`): `hear` says whose links we fetch
  from, `tell` whom we serve our own feed to. Each is one of `anybody`, `following`
  (keys we follow) or `mutuals` (keys we follow that follow us back). A blocked key
  is refused whatever the setting. Feeds of others that we replicate are relayed to
  any peer we talk to (they are public once written); `tell` guards our own feed and
  every ephemeral datum (presence, typing, whispers) we send. `link_access` applies
  both to a link, whichever side dialled: a link we neither hear nor tell is refused
  with `refusal` as its reason, and the dialling side waits `REFUSED_RETRY` before
  trying again. Keep `hear` at least as wide as the peers' `tell`, or links are
  opened in vain.
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass

FeedId = bytes
FollowGraph = Mapping[FeedId, Iterable[FeedId]]  # author -> feeds that author follows
REFUSED_RETRY = 30 * 60.0  # seconds before redialling a peer whose hear/tell refused us
REFUSAL_PREFIX = "not heard or told"


class Audience(enum.StrEnum):
    """Who a `hear` or `tell` setting admits."""

    ANYBODY = "anybody"
    FOLLOWING = "following"
    MUTUALS = "mutuals"

    @classmethod
    def parse(cls, text: str) -> Audience:
        """The audience named in a config file; ValueError lists the allowed words."""
        try:
            return cls(text.strip().lower())
        except ValueError:
            allowed = ", ".join(a.value for a in cls)
            raise ValueError(f"unknown audience {text!r}: use one of {allowed}") from None


def replicated_feeds(
    own: FeedId,
    follow_graph: FollowGraph,
    blocks: Collection[FeedId],
    hops: int,
    lan_auto_follow_keys: Iterable[FeedId] = (),
) -> set[FeedId]:
    """The feeds we replicate: own, follows within `hops`, LAN auto-follows, minus blocks."""
    if hops < 0:
        raise ValueError(f"hops must be 0 or more, got {hops}")
    scope = {own}
    frontier = [own]
    for _ in range(hops):
        nxt: list[FeedId] = []
        for author in frontier:
            for feed in follow_graph.get(author, ()):
                if feed not in scope and feed not in blocks:
                    scope.add(feed)
                    nxt.append(feed)
        if not nxt:
            break
        frontier = nxt
    scope.update(k for k in lan_auto_follow_keys if k not in blocks)
    return scope


def follows_of(own: FeedId, follow_graph: FollowGraph) -> set[FeedId]:
    """The keys we follow."""
    return set(follow_graph.get(own, ()))


def mutuals_of(own: FeedId, follow_graph: FollowGraph) -> set[FeedId]:
    """The keys we follow that follow us back."""
    return {k for k in follow_graph.get(own, ()) if own in set(follow_graph.get(k, ()))}


def _admits(
    audience: Audience,
    peer: FeedId,
    follows: Collection[FeedId],
    mutuals: Collection[FeedId],
    blocks: Collection[FeedId],
) -> bool:
    if peer in blocks:
        return False
    if audience is Audience.ANYBODY:
        return True
    if audience is Audience.FOLLOWING:
        return peer in follows
    return peer in mutuals


def may_tell(
    peer: FeedId,
    tell: Audience,
    follows: Collection[FeedId],
    mutuals: Collection[FeedId],
    blocks: Collection[FeedId] = (),
) -> bool:
    """Whether `peer` may receive our own feed from us (our `tell` setting)."""
    return _admits(tell, peer, follows, mutuals, blocks)


def may_share(
    peer: FeedId,
    feed: FeedId,
    *,
    own: FeedId,
    tell: Audience,
    follows: Collection[FeedId],
    mutuals: Collection[FeedId],
    blocks: Collection[FeedId] = (),
) -> bool:
    """Whether we send `feed` to `peer`: the EBT core's `shareable(peer, feed)` hook.

    Blocked peers get nothing and blocked feeds go to no one; our own feed follows
    `tell`; other feeds are relayed to any peer we talk to.
    """
    if peer in blocks or feed in blocks:
        return False
    if feed == own:
        return may_tell(peer, tell, follows, mutuals, blocks)
    return True


@dataclass(frozen=True, slots=True)
class Access:
    """Our verdict on one linked peer: do we take data from it, do we send ours to it."""

    hear: bool
    tell: bool

    @property
    def refused(self) -> bool:
        """Neither way: the link is of no use and is closed with `refusal`."""
        return not (self.hear or self.tell)


def link_access(
    peer: FeedId,
    *,
    hear: Audience,
    tell: Audience,
    follows: Collection[FeedId],
    mutuals: Collection[FeedId],
    blocks: Collection[FeedId] = (),
) -> Access:
    """Our hear and tell verdicts on `peer`, applied alike when we dial and when we accept."""
    return Access(
        _admits(hear, peer, follows, mutuals, blocks),
        _admits(tell, peer, follows, mutuals, blocks),
    )


def refusal(hear: Audience, tell: Audience) -> str:
    """The bye reason for a link neither our `hear` nor our `tell` admits."""
    return f"{REFUSAL_PREFIX}: this node hears {hear.value} and tells {tell.value}"
