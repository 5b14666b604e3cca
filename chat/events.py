"""The node's event bus: the UI subscribes, the rooms emit `NodeEvent`s."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable

from chat.views import NodeEvent

log = logging.getLogger(__name__)


class EventBus:
    """Calls every subscriber with each event; a failing subscriber is logged, not fatal."""

    def __init__(self) -> None:
        self._callbacks: list[Callable[[NodeEvent], None]] = []

    def subscribe(self, callback: Callable[[NodeEvent], None]) -> Callable[[], None]:
        self._callbacks.append(callback)

        def unsubscribe() -> None:
            with contextlib.suppress(ValueError):
                self._callbacks.remove(callback)

        return unsubscribe

    def emit(self, event: NodeEvent) -> None:
        for callback in list(self._callbacks):
            try:
                callback(event)
            except Exception:
                log.exception("a subscriber failed on %s", event.kind)
