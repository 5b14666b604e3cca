"""The pub's invite book: invites by the public key their secret derives, uses left, redemptions.

It lives in the node's database file (``treechat.db``) but in tables of its own, created
with ``CREATE TABLE IF NOT EXISTS`` on open, so it needs no step in the main schema's
migrations and an ordinary node's database never grows them. ``treechat invite`` adds
an invite from another process while the pub runs: each call here is one short
transaction on its own connection (WAL and a busy timeout let both processes write).

**The secret is never stored.** An invite row holds the ed25519 *public* key that the
invite secret derives (net/invite.py ``invite_signing_key``): that is all the pub needs to
recognise the invite at the handshake, and someone who reads the database cannot redeem
an invite with it (deriving the secret back is breaking ed25519).

One connection serves every caller in this process, so each use of it holds one lock:
twenty members redeeming at once each get "accepted" or "used up", never "cannot start a
transaction within a transaction".
"""

from __future__ import annotations

import asyncio
import enum
import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiosqlite

from store.errors import StoreError

_BUSY_TIMEOUT_MS = 10_000

_TABLES = (
    """
    CREATE TABLE IF NOT EXISTS invites (
        key BLOB PRIMARY KEY,
        uses INTEGER NOT NULL,
        uses_left INTEGER NOT NULL,
        created REAL NOT NULL
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS invite_redemptions (
        key BLOB NOT NULL,
        member BLOB NOT NULL,
        redeemed REAL NOT NULL,
        PRIMARY KEY (key, member)
    )
    """,
)


class Redeemed(enum.Enum):
    """What redeeming an invite for a member did."""

    ACCEPTED = "accepted"  # a use was taken
    AGAIN = "again"  # this member had already redeemed this invite; no use taken
    USED_UP = "used up"
    UNKNOWN = "unknown invite"


@dataclass(frozen=True, slots=True)
class InviteRecord:
    """One invite as stored (``key`` = the public key its secret derives)."""

    key: bytes
    uses: int
    uses_left: int
    created: float


class InviteBook:
    """The invite tables of one database. Open with ``await InviteBook.open(path)``."""

    def __init__(self, db: aiosqlite.Connection, path: str) -> None:
        self._db = db
        self.path = path
        self._lock = asyncio.Lock()  # one statement or transaction at a time

    @classmethod
    async def open(cls, path: str | Path) -> InviteBook:
        """Open the database at ``path`` (creating it and the invite tables if needed)."""
        text = str(path)
        try:
            Path(text).parent.mkdir(parents=True, exist_ok=True)
            db = await aiosqlite.connect(text, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"could not open the invite book in {text}: {exc}") from exc
        book = cls(db, text)
        try:
            await db.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
            await db.execute("PRAGMA journal_mode = WAL")
            for statement in _TABLES:
                await db.execute(statement)
        except sqlite3.Error as exc:
            await db.close()
            raise StoreError(f"could not prepare the invite tables in {text}: {exc}") from exc
        return book

    async def close(self) -> None:
        async with self._lock:
            await self._db.close()

    async def __aenter__(self) -> InviteBook:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @asynccontextmanager
    async def _transaction(self, action: str) -> AsyncIterator[aiosqlite.Connection]:
        """One write transaction under the lock, rolled back on any error."""
        async with self._lock:
            try:
                await self._db.execute("BEGIN IMMEDIATE")
                try:
                    yield self._db
                    await self._db.execute("COMMIT")
                except BaseException:
                    if self._db.in_transaction:
                        await self._db.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                raise StoreError(f"could not {action} ({self.path}): {exc}") from exc

    async def _run(self, action: str, statements: list[tuple[str, tuple[Any, ...]]]) -> list[int]:
        """Run statements in one write transaction; returns each one's rowcount."""
        async with self._transaction(action) as db:
            return [(await db.execute(sql, params)).rowcount for sql, params in statements]

    async def add(self, key: bytes, uses: int, now: float | None = None) -> InviteRecord:
        """Store a new invite that may be redeemed ``uses`` times."""
        if len(key) != 32:
            raise ValueError("an invite key is 32 bytes")
        if uses < 1:
            raise ValueError("an invite needs at least 1 use")
        created = time.time() if now is None else now
        await self._run(
            "save the invite",
            [
                (
                    "INSERT INTO invites (key, uses, uses_left, created) VALUES (?, ?, ?, ?)",
                    (key, uses, uses, created),
                )
            ],
        )
        return InviteRecord(key, uses, uses, created)

    async def get(self, key: bytes) -> InviteRecord | None:
        """The invite whose secret derives ``key`` (used up ones too), or None."""
        try:
            async with self._lock:
                rows = list(
                    await self._db.execute_fetchall(
                        "SELECT key, uses, uses_left, created FROM invites WHERE key = ?", (key,)
                    )
                )
        except sqlite3.Error as exc:
            raise StoreError(f"could not read the invites ({self.path}): {exc}") from exc
        if not rows:
            return None
        key_, uses, uses_left, created = rows[0]
        return InviteRecord(bytes(key_), int(uses), int(uses_left), float(created))

    async def invites(self) -> list[InviteRecord]:
        """Every invite, oldest first."""
        async with self._lock:
            rows = await self._db.execute_fetchall(
                "SELECT key, uses, uses_left, created FROM invites ORDER BY created"
            )
        return [InviteRecord(bytes(k), int(u), int(left), float(c)) for k, u, left, c in rows]

    async def redeem(self, key: bytes, member: bytes, now: float | None = None) -> Redeemed:
        """Take one use of invite ``key`` for ``member``, atomically.

        A member redeeming the same invite again (its first answer was lost) is accepted
        without taking another use, so a retried join cannot use up an invite.
        """
        when = time.time() if now is None else now
        # The conditional UPDATE is the atomic check-and-take: two redemptions racing for
        # the last use cannot both see uses_left > 0. The INSERT is skipped (OR IGNORE)
        # when the member has redeemed before; that is decided first, in the same write.
        again_sql = "SELECT 1 FROM invite_redemptions WHERE key = ? AND member = ?"
        async with self._transaction("redeem the invite") as db:
            if not list(await db.execute_fetchall("SELECT 1 FROM invites WHERE key = ?", (key,))):
                return Redeemed.UNKNOWN
            if list(await db.execute_fetchall(again_sql, (key, member))):
                return Redeemed.AGAIN
            cursor = await db.execute(
                "UPDATE invites SET uses_left = uses_left - 1 WHERE key = ? AND uses_left > 0",
                (key,),
            )
            if cursor.rowcount != 1:
                return Redeemed.USED_UP
            await db.execute(
                "INSERT INTO invite_redemptions (key, member, redeemed) VALUES (?, ?, ?)",
                (key, member, when),
            )
            return Redeemed.ACCEPTED

    async def members(self) -> list[bytes]:
        """Every feed that redeemed an invite, first redemption first."""
        async with self._lock:
            rows = await self._db.execute_fetchall(
                "SELECT member, MIN(redeemed) AS first FROM invite_redemptions"
                " GROUP BY member ORDER BY first"
            )
        return [bytes(row[0]) for row in rows]
