"""History: how much of each feed to keep fetching (per feed settings, persisted) and
older messages on demand (scrolling back).

The config's `history` is the default for every feed; `/history NAME N|all|default`
(and `treechat history`) sets one feed apart. Settings live in the database (a local
table, never a feed message), are applied when the node starts, and are read again
when another process changes the database, so the command line works beside a
running node.
"""

from __future__ import annotations

from chat.views import HistorySetting, OlderHistory
from net.ranges import HistoryView
from net.replication import ReplicationManager
from store.db import Store


def history_words(keep: int | None) -> str:
    """A history setting in words: "all of it" or "the newest 1,000"."""
    return "all of it" if keep is None else f"the newest {keep:,}"


def describe_history(name: str, setting: HistorySetting) -> str:
    """One person's history setting and what we hold of their feed, in one line."""
    source = "set for them" if setting.own else "the default"
    if setting.latest == 0:
        held = "nothing held yet"
    elif setting.held_from <= 1:
        held = f"holding all {setting.latest:,}"
    else:
        held = f"holding #{setting.held_from:,} to #{setting.latest:,}"
    return f"history of {name}: {history_words(setting.keep)} ({source}); {held}"


class History:
    """Per feed history settings and older history, for the node facade."""

    def __init__(self, store: Store, manager: ReplicationManager, default: int | None) -> None:
        self._store = store
        self._manager = manager
        self.default = default
        self._overrides: dict[bytes, int | None] = {}

    async def async_load(self) -> None:
        """Apply the saved settings (at start, and after another process changed them)."""
        saved = await self._store.history_overrides()
        for feed in self._overrides.keys() - saved.keys():
            self._manager.reset_history(feed)
        for feed, keep in saved.items():
            if self._overrides.get(feed, -1) != keep:
                self._manager.set_history(feed, keep)
        self._overrides = saved

    async def async_set(self, feed: bytes, keep: int | None) -> None:
        """Keep fetching the newest `keep` messages of `feed` (None = all), from now on
        and after restarts."""
        await self._store.save_history_override(feed, keep)
        self._overrides[feed] = keep
        self._manager.set_history(feed, keep)

    async def async_reset(self, feed: bytes) -> None:
        """`feed` follows the config's `history` again."""
        await self._store.remove_history_override(feed)
        self._overrides.pop(feed, None)
        self._manager.reset_history(feed)

    def setting(self, feed: bytes) -> HistorySetting:
        """What we keep of `feed` and what we hold of it."""
        own = feed in self._overrides
        view = self._manager.replicator.history_view(feed)
        latest = self._manager.local_seq(feed)
        held_from = view.held_from if view is not None else (1 if latest else 0)
        keep = self._overrides[feed] if own else self.default
        return HistorySetting(feed, keep, own, held_from, latest)

    def settings(self) -> list[HistorySetting]:
        """The feeds set apart from the default, in no particular order."""
        return [self.setting(feed) for feed in self._overrides]

    def fetch_older(self, feed: bytes | None = None, count: int = 100) -> None:
        """Scrolling back: ask connected peers for `count` messages of `feed` (None: of
        every feed held from above seq 1) older than what we hold."""
        replicator = self._manager.replicator
        for candidate in [feed] if feed is not None else sorted(replicator.replicating):
            view = replicator.history_view(candidate)
            if view is not None and view.held_from > 1:
                self._manager.fetch_older(candidate, count)

    def older(self) -> OlderHistory:
        """Whether older messages exist than we hold, who is asked, whether anyone has them."""
        replicator = self._manager.replicator
        views = [replicator.history_view(feed) for feed in replicator.replicating]
        lacking = [v for v in views if v is not None and v.held_from > 1]
        wanted = [v for v in lacking if v.held_from > v.wanted_from]
        return OlderHistory(
            missing=bool(lacking),
            asking=replicator.asking_older(),
            unavailable=bool(wanted) and all(v.unavailable for v in wanted),
        )

    def view(self, feed: bytes) -> HistoryView | None:
        """How much of `feed` we hold and what is being fetched (None: fetched whole)."""
        return self._manager.replicator.history_view(feed)
