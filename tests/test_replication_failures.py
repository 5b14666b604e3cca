"""Our own database failing never stalls a feed: no peer is blamed, the pusher does not die."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from chat.identity import load_or_create_identity
from store.db import AddResult, Store
from store.errors import StoreError
from tests.nodes import open_node, wait_until
from tests.test_node import prefill, seq_of


async def test_a_failed_write_does_not_distrust_the_sender(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a_id = load_or_create_identity(tmp_path / "a").feed_id
    await prefill(tmp_path / "b", 0, [a_id])
    a = await open_node(tmp_path / "a")
    b = await open_node(tmp_path / "b")
    failures = 0
    real = Store.add_received

    async def flaky(
        self: Store,
        raws: Sequence[bytes],
        source: bytes | None = None,
        *,
        verdicts: Mapping[bytes, bool] | None = None,
    ) -> AddResult:
        nonlocal failures
        if self is b.store and failures == 0:
            failures += 1
            raise StoreError("could not save received messages: the disk is full")
        return await real(self, raws, source, verdicts=verdicts)

    monkeypatch.setattr(Store, "add_received", flaky)
    try:
        assert a.address is not None and b.manager is not None
        await b.connect(a.address)
        for i in range(5):
            await a.post(f"p{i}", "general")
        # The one sender is asked again, not distrusted: everything arrives.
        await wait_until(lambda: seq_of(b, a_id) == 5, what="a's posts at b after the failure")
        assert failures == 1
        assert b.manager.replicator.link(a_id)[a_id].trusted
        await a.post("live", "general")
        await wait_until(lambda: seq_of(b, a_id) == 6, what="live after the failure")
    finally:
        await a.stop()
        await b.stop()


async def test_a_failed_read_while_pushing_closes_the_link_instead_of_stalling(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a_id = await prefill(tmp_path / "a", 30)
    await prefill(tmp_path / "b", 0, [a_id])
    a = await open_node(tmp_path / "a")
    b = await open_node(tmp_path / "b")
    failures = 0
    real = Store.get_range

    async def flaky(self: Store, feed: bytes, start: int, limit: int) -> Any:
        nonlocal failures
        if self is a.store and failures == 0:
            failures += 1
            raise StoreError("could not read messages: disk I/O error")
        return await real(self, feed, start, limit)

    monkeypatch.setattr(Store, "get_range", flaky)
    try:
        assert a.address is not None and a.manager is not None and b.manager is not None
        await b.connect(a.address)
        manager = a.manager
        b_id = b.feed_id
        await wait_until(lambda: failures == 1, what="the failed read")
        await wait_until(lambda: manager.session(b_id) is None, what="the link closed")
        assert "could not send it our messages" in (manager.peer_stats[b_id].last_error or "")
        await wait_until(lambda: b.manager is not None and not b.manager.sessions(), what="b too")
        await b.connect(a.address)  # what the schedule does after its backoff
        await wait_until(lambda: seq_of(b, a_id) == 30, what="the sync after the redial")
    finally:
        await a.stop()
        await b.stop()
