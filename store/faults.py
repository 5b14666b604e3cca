"""A fault that repeats (a full disk): one log line per state change, a back-off between tries."""

from __future__ import annotations

import logging

RETRY_FIRST = 0.5  # a failed write is tried again after this, doubling ...
RETRY_MAX = 30.0  # ... up to this (a full disk must not become a busy loop)


class Fault:
    """Whether `what` fails now and why; says so once when it starts and once when it
    ends (never once per attempt, never with a traceback), and how long to wait before
    the next try."""

    def __init__(
        self,
        log: logging.Logger,
        what: str,
        *,
        retry_first: float = RETRY_FIRST,
        retry_max: float = RETRY_MAX,
    ) -> None:
        self.log = log
        self.what = what
        self.error: str | None = None  # why it fails now (None: it works)
        self.delay = 0.0  # wait this long before trying again
        self.retry_first = retry_first
        self.retry_max = retry_max

    def failed(self, exc: BaseException) -> bool:
        """It failed again: back off. True when this is the change from working."""
        started = self.error is None
        self.error = str(exc) or type(exc).__name__
        if started:
            self.log.error("%s failed: %s (will try again)", self.what, self.error)
        self.delay = min(self.retry_max, max(self.retry_first, 2 * self.delay))
        return started

    def worked(self) -> bool:
        """It worked. True when this is the change from failing."""
        ended = self.error is not None
        if ended:
            self.log.warning("%s works again", self.what)
        self.error = None
        self.delay = 0.0
        return ended
