"""Ed25519 signatures of many messages checked on every core (PyNaCl releases the GIL)."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

from store.message import InvalidMessage, Message, raw_signature_ok, signature_ok

WORKERS = max(1, os.cpu_count() or 1)
"""Threads that verify at once: one per core. PyNaCl's bindings (cffi) release the GIL
for the duration of each libsodium call, so threads verify in parallel."""

PARALLEL_FROM = 64
"""Fewer messages than this are checked in the calling thread (handing work to the
pool costs about as much as a few verifications)."""

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _check_slice(messages: Sequence[Message]) -> list[bool]:
    return [signature_ok(m) for m in messages]


def _executor() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(WORKERS, thread_name_prefix="verify")
        return _pool


AHEAD_CHUNK = 256
"""Raw messages per pool task when verifying ahead (small: the store starts on the
first verdicts while the pool works on the rest)."""


def _check_raws(raws: Sequence[bytes]) -> list[bool | None]:
    return [raw_signature_ok(raw) for raw in raws]


class Ahead:
    """Verdicts on raw messages, computed on the pool while they wait for the store: the
    signatures of one batch are checked while SQLite writes the batch before it."""

    def __init__(self, raws: Sequence[bytes]) -> None:
        pool = _executor()
        self._parts: list[tuple[Sequence[bytes], Future[list[bool | None]]]] = [
            (part, pool.submit(_check_raws, part))
            for part in (raws[i : i + AHEAD_CHUNK] for i in range(0, len(raws), AHEAD_CHUNK))
        ]

    async def verdicts(self, into: dict[bytes, bool]) -> None:
        """Add raw -> verdict to ``into`` (raws without the standard head are left out:
        the store verifies them after decoding)."""
        for part, future in self._parts:
            found: list[bool | None] = await asyncio.wrap_future(future)
            for raw, ok in zip(part, found, strict=True):
                if ok is not None:
                    into[raw] = ok


class Verdicts:
    """The signature verdict of each message of a batch, computed up front."""

    def __init__(
        self,
        messages: Sequence[Message],
        workers: int = WORKERS,
        ahead: Mapping[bytes, bool] | None = None,
    ) -> None:
        self._ok: dict[bytes, bool] = {}
        todo = list(messages)
        if ahead:  # verdicts computed ahead, from the raw bytes (``Ahead``)
            todo = []
            for message in messages:
                ok = ahead.get(message.raw)
                if ok is None:
                    todo.append(message)
                else:
                    self._ok[message.id] = ok
        for message, ok in zip(todo, check_all(todo, workers), strict=True):
            self._ok[message.id] = ok

    def check(self, message: Message) -> None:
        """Raise ``InvalidMessage`` unless the author signed it (verified now if not yet)."""
        ok = self._ok.get(message.id)
        if ok is None:
            ok = self._ok[message.id] = signature_ok(message)
        if not ok:
            raise InvalidMessage(message.author, message.seq, "bad signature")


def check_all(messages: Sequence[Message], workers: int = WORKERS) -> list[bool]:
    """``signature_ok`` of every message, split over ``workers`` threads, in order."""
    if workers <= 1 or len(messages) < PARALLEL_FROM:
        return _check_slice(messages)
    step = -(-len(messages) // workers)
    slices = [messages[i : i + step] for i in range(0, len(messages), step)]
    pool = _executor()
    futures = [pool.submit(_check_slice, part) for part in slices[1:]]
    verdicts = _check_slice(slices[0])  # the caller takes a share too
    for future in futures:
        verdicts += future.result()
    return verdicts
