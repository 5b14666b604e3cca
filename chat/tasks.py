"""The node's bounded task group: every task it starts is ended (and awaited) on stop."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Coroutine
from typing import Any

log = logging.getLogger(__name__)

STOP_STEP_TIMEOUT = 5.0  # seconds each step of `Node.stop()` may take before it is cut short
CLOSE_WAIT = 1.0  # seconds a cancelled step (or a closed link's socket) may take to finish


class TaskGroup:
    """A live set of tasks: `spawn` adds one, a finished task leaves, `async_end` ends all."""

    def __init__(self, owner: str) -> None:
        self.owner = owner
        self.tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self.adopt(task)
        return task

    def adopt(self, task: asyncio.Task[Any]) -> None:
        """Count a task started elsewhere (a link that dialled us) as one of ours."""
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def async_end(self, limit: float = STOP_STEP_TIMEOUT) -> None:
        """Cancel every task (those started meanwhile too) and await them, within `limit`."""
        deadline = time.monotonic() + limit
        while True:
            pending = {task for task in self.tasks if not task.done()}
            if not pending:
                return
            left = deadline - time.monotonic()
            if left <= 0:
                names = ", ".join(sorted(task.get_name() for task in pending))
                log.warning(
                    "stopping: %s tasks still running after %.0f s: %s", self.owner, limit, names
                )
                return
            for task in pending:
                task.cancel()
            await asyncio.wait(pending, timeout=min(left, CLOSE_WAIT))


async def async_bounded(step: Awaitable[Any], what: str, limit: float = STOP_STEP_TIMEOUT) -> None:
    """Run one step of stopping for at most `limit` seconds; log and go on if it fails.

    Not `asyncio.wait_for`: that waits for the cancelled step to finish, and a step
    that swallows its cancellation would hang us after all.
    """
    task = asyncio.ensure_future(step)
    try:
        done, _ = await asyncio.wait({task}, timeout=limit)
    except BaseException:
        task.cancel()
        raise
    if not done:
        log.warning("stopping: %s did not finish within %.0f s; going on", what, limit)
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=CLOSE_WAIT)
        if not done:
            log.warning("stopping: %s ignores cancellation; left behind", what)
        return
    if not task.cancelled() and task.exception() is not None:
        log.warning("stopping: %s failed", what, exc_info=task.exception())
