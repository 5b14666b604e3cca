"""The treechat database: feeds, messages, chat views, peers and remembered clocks.

One SQLite file opened through aiosqlite, in WAL mode with ``synchronous=NORMAL``; the
schema is versioned by ``PRAGMA user_version`` (see ``store/schema.py``).

Why it is safe to kill the process at any moment: every write is one transaction that
reads the feed heads, validates against them and writes messages, heads and chat-view
rows together. A transaction either commits whole or not at all, so each feed on disk
is always a valid prefix of its chain, and the ``feeds`` table always agrees with the
``messages`` table. ``BEGIN IMMEDIATE`` takes the write lock before the heads are read,
so another process appending to the same database (``treechat post`` while the node
runs) can never interleave between our read and our write.

The chat views (posts timeline, names, contacts, pubs) are indexed on insert from
public content maps only; private (bytes) content is stored and replicated unread.
"""

from __future__ import annotations

import asyncio
import bisect
import sqlite3
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiosqlite
from nacl.signing import SigningKey

from store.content import (
    About,
    Contact,
    ContentError,
    Post,
    PubAnnouncement,
    check_feed,
    parse_content,
)
from store.errors import StoreError, describe_sqlite_error
from store.limits import MAX_RECORD_FEEDS, MAX_SAVED_RECORDS, RECORD_TTL
from store.message import (
    MAX_SEQ,
    Content,
    FeedHead,
    ForkDetected,
    InvalidMessage,
    Message,
    Verify,
    check_next,
    create_message,
    decode_message,
    verify_signature,
)
from store.schema import MIGRATIONS, SCHEMA_VERSION
from store.search import (
    INDEX_NEW_MENTIONS,
    INDEX_NEW_POSTS,
    POST_MENTIONS_FUNCTION,
    POST_TEXT_FUNCTION,
    fts_query,
    post_mentions,
    post_text,
)
from store.verify import Verdicts

__all__ = [
    "AddResult",
    "ChannelStat",
    "ContactEdge",
    "ConversationStat",
    "DeliveryRecord",
    "FeedInfo",
    "ForkProof",
    "PeerClock",
    "PrivateIndexRow",
    "PubRecord",
    "Range",
    "SavedPeer",
    "SearchRow",
    "Store",
    "StoreError",
    "StoredPost",
]

# Batches larger than this are decoded and validated off the event loop.
_THREAD_THRESHOLD = 64
_BUSY_TIMEOUT_MS = 5000
_CACHE_KIB = 16 * 1024
# Batches smaller than this are live traffic: their ids are indexed in the same write.
_LIVE_BATCH = 32
# Bulk replication indexes message ids once this many are waiting.
_ID_INDEX_STEP = 8192


def _now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True, slots=True)
class AddResult:
    """What ``add_received`` did: the messages it stored, the ones it refused and why."""

    stored: list[Message] = field(default_factory=list)
    errors: list[InvalidMessage] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class StoredPost:
    """One post of the timeline view."""

    message: Message
    channel: str
    text: str
    received_at: int  # ms
    arrival: int = 0  # arrival position (messages rowid): read marks compare against it


@dataclass(frozen=True, slots=True)
class PrivateIndexRow:
    """A private message the node could open: its conversation, author and text."""

    msg_rowid: int
    conversation: str
    author: bytes
    text: str


@dataclass(frozen=True, slots=True)
class ConversationStat:
    """A private conversation: messages, newest claimed time, and unread past its mark."""

    conversation: str
    messages: int
    last_timestamp: int
    unread: int


@dataclass(frozen=True, slots=True)
class SearchRow:
    """A message matching a search: its arrival position, signed bytes, and where it is
    (a channel for a post, a conversation for a private message)."""

    arrival: int
    raw: bytes
    channel: str | None
    conversation: str | None


@dataclass(frozen=True, slots=True)
class ChannelStat:
    """A channel, how many posts it holds and when the latest was written."""

    name: str
    posts: int
    last_timestamp: int


@dataclass(frozen=True, slots=True)
class ContactEdge:
    """The latest follow/block state one feed declared about another (None = never said)."""

    author: bytes
    contact: bytes
    following: bool | None
    blocking: bool | None


@dataclass(frozen=True, slots=True)
class PubRecord:
    """An always-on node announced by a ``pub`` message."""

    author: bytes
    key: bytes
    host: str
    port: int
    seq: int


@dataclass(frozen=True, slots=True)
class FeedInfo:
    """A feed we hold: its head and whether it forked."""

    feed: bytes
    seq: int
    id: bytes
    forked: bool


@dataclass(frozen=True, slots=True)
class ForkProof:
    """Two validly signed messages of one feed that cannot both belong to one chain.

    Either both have sequence number ``seq``, or ``msg_a`` is a message ``seq - 1``
    and ``msg_b`` a message ``seq`` whose ``prev`` is not ``msg_a``'s id (usually ours
    is ``msg_a``; when backfill reaches a held range from below, ours is ``msg_b``).
    """

    feed: bytes
    seq: int  # the sequence number of msg_b
    msg_a: bytes  # at seq, or at seq - 1 for a broken link
    msg_b: bytes  # at seq
    detected_at: int  # ms


@dataclass(frozen=True, slots=True)
class DeliveryRecord:
    """How a message got here: the peer that delivered it (None = written here) and when."""

    msg_id: bytes
    author: bytes
    seq: int
    peer: bytes | None
    received_at: int  # ms


@dataclass(frozen=True, slots=True)
class SavedPeer:
    """One row of the peer table, as the gossip schedule keeps it."""

    key: bytes
    address: str | None = None
    source: str = "other"
    failures: int = 0
    next_attempt: float = 0.0
    last_connected: float | None = None
    permanent: bool = False
    state: str = ""


@dataclass(frozen=True, slots=True)
class PeerClock:
    """The note values a peer last told us (``theirs``) and we last told it (``ours``)."""

    theirs: dict[bytes, int]
    ours: dict[bytes, int]


@dataclass(slots=True)
class _IndexRows:
    """Chat-view rows derived from public content (posts live on the messages row)."""

    names: list[tuple[bytes, str, int]] = field(default_factory=list)
    contacts: list[tuple[bytes, bytes, int | None, int | None, int | None, int | None]] = field(
        default_factory=list
    )
    pubs: list[tuple[bytes, bytes, str, int, int]] = field(default_factory=list)

    def add(self, message: Message) -> str | None:
        """Collect the view rows of ``message``; return its channel if it is a post.

        Content that breaks the rules of store/content.py is stored but not indexed.
        """
        content = message.content
        if type(content) is not dict:
            return None
        try:
            parsed = parse_content(content)
        except ContentError:
            return None
        if isinstance(parsed, Post):
            return parsed.channel
        if isinstance(parsed, About):
            target = content.get("about")
            if target is None or _as_feed(target) == message.author:
                self.names.append((message.author, parsed.name, message.seq))
        elif isinstance(parsed, Contact):
            follow_flag = None if parsed.following is None else int(parsed.following)
            block_flag = None if parsed.blocking is None else int(parsed.blocking)
            self.contacts.append(
                (
                    message.author,
                    parsed.contact,
                    follow_flag,
                    None if follow_flag is None else message.seq,
                    block_flag,
                    None if block_flag is None else message.seq,
                )
            )
        elif isinstance(parsed, PubAnnouncement):
            self.pubs.append((message.author, parsed.key, parsed.host, parsed.port, message.seq))
        return None


def _index(raw: bytes) -> tuple[_IndexRows, str | None] | None:
    """What the indexer files for a stored message: its rows and channel (None: the
    row does not decode). Called from SQL, so nothing may raise."""
    rows = _IndexRows()
    try:
        return rows, rows.add(decode_message(raw))
    except Exception:
        return None


def indexed_channel(raw: bytes) -> str | None:
    """The channel the indexer files a stored message under (None: not a valid post)."""
    indexed = _index(raw)
    return indexed[1] if indexed is not None else None


def indexed_name(raw: bytes) -> str | None:
    """The name a stored `about` message gives its author by the rules (None: none)."""
    indexed = _index(raw)
    return indexed[0].names[0][1] if indexed is not None and indexed[0].names else None


def _as_feed(value: Any) -> bytes | None:
    """A feed id given in content as 32 bytes or as ``@...ed25519`` text."""
    try:
        return check_feed(value, "a feed id")
    except ContentError:
        return None


_INSERT_MESSAGE = (
    "INSERT INTO messages"
    " (author, seq, id, raw, claimed_ts, received_ts, ctype, delivered_by, channel)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_UPSERT_HEAD = (
    "INSERT INTO feeds (author, seq, id) VALUES (?, ?, ?)"
    " ON CONFLICT (author) DO UPDATE SET seq = excluded.seq, id = excluded.id"
    " WHERE excluded.seq > feeds.seq"
)
_UPSERT_NAME = (
    "INSERT INTO names (author, name, seq) VALUES (?, ?, ?)"
    " ON CONFLICT (author) DO UPDATE SET name = excluded.name, seq = excluded.seq"
    " WHERE excluded.seq > names.seq"
)
_UPSERT_CONTACT = """
INSERT INTO contacts (author, contact, following, following_seq, blocking, blocking_seq)
VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (author, contact) DO UPDATE SET
    following = CASE WHEN excluded.following_seq > coalesce(contacts.following_seq, 0)
        THEN excluded.following ELSE contacts.following END,
    following_seq = CASE WHEN excluded.following_seq > coalesce(contacts.following_seq, 0)
        THEN excluded.following_seq ELSE contacts.following_seq END,
    blocking = CASE WHEN excluded.blocking_seq > coalesce(contacts.blocking_seq, 0)
        THEN excluded.blocking ELSE contacts.blocking END,
    blocking_seq = CASE WHEN excluded.blocking_seq > coalesce(contacts.blocking_seq, 0)
        THEN excluded.blocking_seq ELSE contacts.blocking_seq END
"""
_UPSERT_PUB = (
    "INSERT INTO pubs (author, key, host, port, seq) VALUES (?, ?, ?, ?, ?)"
    " ON CONFLICT (author, key) DO UPDATE SET host = excluded.host, port = excluded.port,"
    " seq = excluded.seq WHERE excluded.seq > pubs.seq"
)


Range = tuple[int, int]
"""A held range of one feed: ``(first, last)`` seqs, both included."""


@dataclass(slots=True)
class _Known:
    """What validation needs of one feed, read under the write lock."""

    head: FeedHead | None = None
    forked: bool = False
    ranges: list[Range] = field(default_factory=list)
    # Held messages next to the incoming runs: their ids (before a run) and messages
    # (after a run, whose prev must be the run's last id).
    ids: dict[int, bytes] = field(default_factory=dict)
    after: dict[int, Message] = field(default_factory=dict)


@dataclass(slots=True)
class _Plan:
    """The outcome of validating one batch against the held ranges, before writing."""

    valid: list[Message] = field(default_factory=list)
    errors: list[InvalidMessage] = field(default_factory=list)
    # Messages at sequence numbers we already hold (or repeated in the batch): duplicates or forks.
    held: dict[bytes, list[Message]] = field(default_factory=dict)
    # A run that meets a held range from below with a broken link: (theirs N, ours N+1).
    meeting_forks: list[tuple[Message, Message]] = field(default_factory=list)


def _decode_all(raws: Sequence[bytes]) -> tuple[dict[bytes, list[Message]], list[InvalidMessage]]:
    groups: dict[bytes, list[Message]] = {}
    errors: list[InvalidMessage] = []
    for raw in raws:
        try:
            message = decode_message(raw)
        except InvalidMessage as exc:
            errors.append(exc)
            continue
        groups.setdefault(message.author, []).append(message)
    return groups, errors


def _holds(ranges: Sequence[Range], seq: int) -> bool:
    index = bisect.bisect_right(ranges, (seq, MAX_SEQ)) - 1
    return index >= 0 and ranges[index][0] <= seq <= ranges[index][1]


def merge_ranges(ranges: Iterable[Range]) -> list[Range]:
    """Sorted, with overlapping or touching ranges joined."""
    merged: list[Range] = []
    for first, last in sorted(ranges):
        if merged and first <= merged[-1][1] + 1:
            if last > merged[-1][1]:
                merged[-1] = (merged[-1][0], last)
        else:
            merged.append((first, last))
    return merged


def _split_runs(
    messages: list[Message], ranges: Sequence[Range]
) -> tuple[list[Message], list[list[Message]]]:
    """Sorted messages of one feed -> (those at held seqs or repeated, runs of new
    consecutive seqs). A run never crosses a held seq."""
    held: list[Message] = []
    runs: list[list[Message]] = []
    last_seq = 0
    for message in messages:
        seq = message.seq
        if seq == last_seq or _holds(ranges, seq):
            held.append(message)
            continue
        if runs and seq == last_seq + 1 and runs[-1][-1].seq == last_seq:
            runs[-1].append(message)
        else:
            runs.append([message])
        last_seq = seq
    return held, runs


def _validate_run(
    run: list[Message], known: _Known, sparse: bool, plan: _Plan, verify: Verify
) -> None:
    """Validate one run of new consecutive seqs against its held neighbours."""
    first = run[0]
    before_id = known.ids.get(first.seq - 1)
    accepted: list[Message] = []
    if before_id is None and first.seq > 1:
        if not sparse:
            tops = [last for _, last in known.ranges if last < first.seq]
            tops += [m.seq for m in plan.valid if m.author == first.author and m.seq < first.seq]
            expected = max(tops, default=0) + 1
            plan.errors.append(
                InvalidMessage(first.author, first.seq, f"out of order (expected seq {expected})")
            )
            return
        # A range start: nothing held before it, so it stands on its own signature.
        try:
            verify(first)
        except InvalidMessage as exc:
            plan.errors.append(exc)
            return
        accepted.append(first)
        current: FeedHead | None = FeedHead(first.seq, first.id)
        rest = run[1:]
    else:
        current = None if before_id is None else FeedHead(first.seq - 1, before_id)
        rest = run
    # Every message on its own signature: the first bad one ends the run, and the
    # prefix before it is kept (a later message cannot vouch for an unsigned one).
    for message in rest:
        try:
            check_next(current, message, verify)
        except InvalidMessage as exc:
            plan.errors.append(exc)
            break  # nothing after a broken link can be linked
        accepted.append(message)
        current = FeedHead(message.seq, message.id)
    if not accepted:
        return
    top = accepted[-1]
    after = known.after.get(top.seq + 1)
    if after is not None and after.prev != top.id:
        # Both sides are signed by the author (ours was checked when stored, this run
        # just now): two chains. Nothing of the run is kept.
        plan.meeting_forks.append((top, after))
        return
    plan.valid.extend(accepted)


def _validate_groups(
    groups: dict[bytes, list[Message]],
    known: dict[bytes, _Known],
    sparse: bool,
    ahead: Mapping[bytes, bool] | None = None,
) -> _Plan:
    plan = _Plan()
    runs_of: list[tuple[_Known, list[Message]]] = []
    for author, messages in groups.items():
        state = known.get(author) or _Known()
        if state.forked:
            continue  # handled by the caller, which knows the fork proof
        messages.sort(key=lambda m: m.seq)
        held, runs = _split_runs(messages, state.ranges)
        if held:
            plan.held[author] = held
        runs_of += [(state, run) for run in runs]
    # Every new message's signature, on every core at once; the walk below then takes
    # the verdicts in order, so the first bad one still ends its run.
    verdicts = Verdicts([m for _, run in runs_of for m in run], ahead=ahead)
    for state, run in runs_of:
        _validate_run(run, state, sparse, plan, verdicts.check)
    return plan


class Store:
    """The database of one node. Open with ``await Store.open(path)``."""

    def __init__(self, db: aiosqlite.Connection, path: str) -> None:
        self._db = db
        self.path = path
        self._lock = asyncio.Lock()
        self._seen_data_version: int | None = None
        self.writes = 0  # write transactions begun (what a flood must not drive up)

    # ------------------------------------------------------------------ lifecycle

    @classmethod
    async def open(cls, path: str | Path) -> Store:
        """Open (creating if needed) the database at ``path`` and migrate it forward."""
        location = Path(path)
        try:
            location.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(
                f"could not create the data directory {location.parent}: {exc}"
            ) from exc
        text = str(location)
        connection = aiosqlite.connect(text, isolation_level=None)
        try:
            db = await connection
        except sqlite3.Error as exc:
            # aiosqlite stops its worker thread without waiting; let it finish while our
            # loop still runs, or it reports to a closed loop.
            worker = getattr(connection, "_thread", None)
            if isinstance(worker, threading.Thread) and worker.is_alive():
                await asyncio.to_thread(worker.join, 2.0)
            raise describe_sqlite_error(exc, "open the database", text) from exc
        store = cls(db, text)
        try:
            # The search and mention indexes' triggers and migrations call them
            # (store/search.py); the reindex migration asks the indexer (schema.py, 8 -> 9).
            await db.create_function(POST_TEXT_FUNCTION, 1, post_text, deterministic=True)
            await db.create_function(POST_MENTIONS_FUNCTION, 1, post_mentions, deterministic=True)
            await db.create_function("indexed_channel", 1, indexed_channel, deterministic=True)
            await db.create_function("indexed_name", 1, indexed_name, deterministic=True)
            await store._configure()
            await store._migrate()
            store._seen_data_version = await store.data_version()
        except BaseException:
            await db.close()
            raise
        return store

    async def close(self) -> None:
        """Close the database; safe to call twice."""
        async with self._lock:
            await self._db.close()

    async def __aenter__(self) -> Store:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def _configure(self) -> None:
        try:
            await self._db.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
            rows = await self._db.execute_fetchall("PRAGMA journal_mode = WAL")
            mode = next(iter(rows))[0] if rows else ""
            if str(mode).lower() != "wal":
                raise StoreError(f"could not open {self.path}: the database cannot use WAL mode")
            await self._db.execute("PRAGMA synchronous = NORMAL")
            # A larger page cache keeps the growing indexes' hot pages in memory; it
            # lifted bulk receiving by about a fifth at 100,000 messages.
            await self._db.execute(f"PRAGMA cache_size = -{_CACHE_KIB}")
        except sqlite3.Error as exc:
            raise describe_sqlite_error(exc, "open the database", self.path) from exc

    async def _migrate(self) -> None:
        version = await self.schema_version()
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"the database {self.path} was written by a newer treechat (schema version"
                f" {version}, this version knows up to {SCHEMA_VERSION}); upgrade treechat"
            )
        for target in range(version + 1, SCHEMA_VERSION + 1):
            async with self._write(f"upgrade the database to version {target}") as db:
                # Re-read under the write lock: another process may have migrated meanwhile.
                rows = await db.execute_fetchall("PRAGMA user_version")
                if next(iter(rows))[0] >= target:
                    continue
                for statement in MIGRATIONS[target - 1]:
                    await db.execute(statement)
                await db.execute(f"PRAGMA user_version = {target}")

    async def schema_version(self) -> int:
        rows = await self._fetch("PRAGMA user_version", (), "read the schema version")
        return int(rows[0][0])

    # ------------------------------------------------------------------ plumbing

    @asynccontextmanager
    async def _write(self, action: str) -> AsyncIterator[aiosqlite.Connection]:
        """One write transaction under the in-process lock; rolled back on any error."""
        async with self._lock:
            self.writes += 1
            try:
                await self._db.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise describe_sqlite_error(exc, action, self.path) from exc
            except ValueError as exc:  # closed connection
                raise StoreError(f"could not {action} ({self.path}): {exc}") from exc
            try:
                yield self._db
                await self._db.execute("COMMIT")
            except BaseException as exc:
                try:
                    if self._db.in_transaction:
                        await self._db.execute("ROLLBACK")
                except sqlite3.Error:
                    pass  # the transaction is already gone; nothing was committed
                if isinstance(exc, sqlite3.Error):
                    raise describe_sqlite_error(exc, action, self.path) from exc
                raise

    async def _fetch(self, sql: str, params: Sequence[Any], action: str) -> list[sqlite3.Row]:
        async with self._lock:
            try:
                return list(await self._db.execute_fetchall(sql, params))
            except sqlite3.Error as exc:
                raise describe_sqlite_error(exc, action, self.path) from exc
            except ValueError as exc:  # closed connection
                raise StoreError(f"could not {action} ({self.path}): {exc}") from exc

    # ------------------------------------------------------------------ feeds

    async def append_own(
        self, signing_key: SigningKey, content: Content, timestamp_ms: int | None = None
    ) -> Message:
        """Sign ``content`` as the next message of our feed and store it."""
        author = bytes(signing_key.verify_key)
        timestamp = _now_ms() if timestamp_ms is None else timestamp_ms
        async with self._write("save the new message") as db:
            rows = list(
                await db.execute_fetchall("SELECT seq, id FROM feeds WHERE author = ?", (author,))
            )
            head = FeedHead(rows[0][0], rows[0][1]) if rows else None
            message = create_message(
                signing_key,
                1 if head is None else head.seq + 1,
                None if head is None else head.id,
                timestamp,
                content,
            )
            await self._insert(db, [message], None, _now_ms())
        return message

    async def add_received(
        self,
        raws: Sequence[bytes],
        source: bytes | None = None,
        *,
        sparse: bool = False,
        verdicts: Mapping[bytes, bool] | None = None,
    ) -> AddResult:
        """Validate and store messages from a peer (any feeds, in order per feed).

        Every message's signature is verified; the first bad message of a run ends it,
        the valid prefix before it is kept and the culprit is named.
        Identical duplicates are skipped; a different message for a held sequence number
        is a fork: the proof is stored and the feed takes no more messages.

        A run must follow a held message (or start at seq 1) unless ``sparse``: then a
        run with nothing held before it starts a new range, accepted on its first
        message's own signature (a newest window, or older history fetched on demand).
        A run that reaches a held range must link into it; a broken link is a fork.
        ``verdicts``: signature verdicts already computed from the raw bytes
        (``store.verify.Ahead``, while the batch waited); the rest are verified here.
        """
        if not raws:
            return AddResult()
        if len(raws) > _THREAD_THRESHOLD:
            groups, errors = await asyncio.to_thread(_decode_all, raws)
        else:
            groups, errors = _decode_all(raws)
        if not groups:
            return AddResult([], errors)
        received_at = _now_ms()
        async with self._write("save received messages") as db:
            known = await self._known_for(db, groups)
            if len(raws) > _THREAD_THRESHOLD:
                plan = await asyncio.to_thread(_validate_groups, groups, known, sparse, verdicts)
            else:
                plan = _validate_groups(groups, known, sparse, verdicts)
            errors.extend(plan.errors)
            for author, state in known.items():
                if state.forked:
                    errors.append(await self._forked_feed_error(db, groups[author][0]))
            # Insert first: a fork inside this batch is judged against what it stored.
            await self._insert(db, plan.valid, source, received_at, known)
            for error in plan.errors:
                if isinstance(error, ForkDetected):  # a second chain: keep the proof
                    await self._store_link_fork(db, error, plan.valid, received_at)
            for theirs, ours in plan.meeting_forks:
                await self._save_fork_proof(
                    db, ours.author, ours.seq, theirs.raw, ours.raw, received_at
                )
                errors.append(
                    ForkDetected(
                        ours.author,
                        ours.seq,
                        ours.id,
                        theirs,
                        f"fork: the author signed this message {theirs.seq}, and our message"
                        f" {ours.seq} does not follow it (two chains)",
                    )
                )
            for author, held in plan.held.items():
                errors.extend(await self._check_held(db, author, held, plan.valid, received_at))
        return AddResult(plan.valid, errors)

    async def _known_for(
        self, db: aiosqlite.Connection, groups: dict[bytes, list[Message]]
    ) -> dict[bytes, _Known]:
        """Heads, forked flags and held ranges of the batch's feeds, and the held
        messages right next to what arrives (only where a feed has holes)."""
        authors = list(groups)
        known: dict[bytes, _Known] = {}
        for start in range(0, len(authors), 500):
            chunk = authors[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = await db.execute_fetchall(
                f"SELECT author, seq, id, forked FROM feeds WHERE author IN ({marks})", chunk
            )
            for author, seq, msg_id, forked in rows:
                head = FeedHead(seq, msg_id)
                known[author] = _Known(head, bool(forked), ids={seq: msg_id})
            rows = await db.execute_fetchall(
                f"SELECT author, first, last FROM feed_ranges WHERE author IN ({marks})"
                " ORDER BY author, first",
                chunk,
            )
            for author, first, last in rows:
                known.setdefault(author, _Known()).ranges.append((first, last))
        for author, state in known.items():
            ranges = state.ranges
            if len(ranges) == 1 and ranges[0][0] == 1:
                continue  # no holes: everything new continues the head
            before: set[int] = set()
            after: set[int] = set()
            for message in groups[author]:
                if _holds(ranges, message.seq):
                    continue
                if message.seq > 1 and _holds(ranges, message.seq - 1):
                    before.add(message.seq - 1)
                if _holds(ranges, message.seq + 1):
                    after.add(message.seq + 1)
            before -= state.ids.keys()
            wanted = sorted(before | after)
            for start in range(0, len(wanted), 500):
                seqs = wanted[start : start + 500]
                marks = ",".join("?" * len(seqs))
                rows = await db.execute_fetchall(
                    f"SELECT seq, id, raw FROM messages WHERE author = ? AND seq IN ({marks})",
                    (author, *seqs),
                )
                for seq, msg_id, raw in rows:
                    if seq in before:
                        state.ids[seq] = msg_id
                    if seq in after:
                        state.after[seq] = decode_message(raw)
        return known

    async def _forked_feed_error(self, db: aiosqlite.Connection, message: Message) -> ForkDetected:
        rows = list(
            await db.execute_fetchall(
                "SELECT seq, msg_a FROM fork_proofs WHERE feed = ? ORDER BY seq LIMIT 1",
                (message.author,),
            )
        )
        fork_seq, kept = (rows[0][0], decode_message(rows[0][1]).id) if rows else (0, b"")
        return ForkDetected(
            message.author,
            message.seq,
            kept,
            message,
            f"the feed forked at seq {fork_seq}; no more of its messages are accepted",
        )

    async def _check_held(
        self,
        db: aiosqlite.Connection,
        author: bytes,
        held: list[Message],
        batch_valid: list[Message],
        detected_at: int,
    ) -> list[InvalidMessage]:
        """Compare messages at already held sequence numbers: duplicates or forks."""
        known: dict[int, bytes] = {m.seq: m.id for m in batch_valid if m.author == author}
        low, high = held[0].seq, held[-1].seq
        rows = await db.execute_fetchall(
            "SELECT seq, id FROM messages WHERE author = ? AND seq BETWEEN ? AND ?",
            (author, low, high),
        )
        for seq, msg_id in rows:
            known[seq] = msg_id
        errors: list[InvalidMessage] = []
        for message in held:
            existing = known.get(message.seq)
            if existing is None or existing == message.id:
                continue  # a duplicate (or beyond a broken link, already reported)
            try:
                verify_signature(message)
            except InvalidMessage as exc:
                errors.append(exc)
                continue
            kept = next((m.raw for m in batch_valid if m.id == existing), None)
            if kept is None:
                kept_rows = list(
                    await db.execute_fetchall(
                        "SELECT raw FROM messages WHERE author = ? AND seq = ?",
                        (author, message.seq),
                    )
                )
                kept = kept_rows[0][0]
            await self._save_fork_proof(db, author, message.seq, kept, message.raw, detected_at)
            errors.append(ForkDetected(author, message.seq, existing, message))
            break  # the feed is closed now; one proof is enough
        return errors

    async def _store_link_fork(
        self,
        db: aiosqlite.Connection,
        error: ForkDetected,
        batch_valid: list[Message],
        detected_at: int,
    ) -> None:
        """Message N+1 is signed but does not follow our N: the proof is (our N, their N+1)."""
        message = error.message
        kept = next((m.raw for m in batch_valid if m.id == error.existing_id), None)
        if kept is None:
            rows = list(
                await db.execute_fetchall(
                    "SELECT raw FROM messages WHERE author = ? AND seq = ?",
                    (message.author, message.seq - 1),
                )
            )
            if not rows:
                return
            kept = rows[0][0]
        await self._save_fork_proof(db, message.author, message.seq, kept, message.raw, detected_at)

    async def _save_fork_proof(
        self,
        db: aiosqlite.Connection,
        author: bytes,
        seq: int,
        kept: bytes,
        other: bytes,
        detected_at: int,
    ) -> None:
        await db.execute(
            "INSERT OR IGNORE INTO fork_proofs (feed, seq, msg_a, msg_b, detected_ts)"
            " VALUES (?, ?, ?, ?, ?)",
            (author, seq, kept, other, detected_at),
        )
        await db.execute("UPDATE feeds SET forked = 1 WHERE author = ?", (author,))

    async def _insert(
        self,
        db: aiosqlite.Connection,
        messages: list[Message],
        source: bytes | None,
        received_at: int,
        known: dict[bytes, _Known] | None = None,
    ) -> None:
        if not messages:
            return
        index = _IndexRows()
        heads: dict[bytes, tuple[bytes, int, bytes]] = {}
        runs: dict[bytes, list[Range]] = {}
        rows = []
        for message in messages:
            content = message.content
            author, seq = message.author, message.seq
            rows.append(
                (
                    author,
                    seq,
                    message.id,
                    message.raw,
                    message.timestamp,
                    received_at,
                    content["type"] if type(content) is dict else None,
                    source,
                    index.add(message),
                )
            )
            head = heads.get(author)
            if head is None or seq > head[1]:
                heads[author] = (author, seq, message.id)
            feed_runs = runs.get(author)
            if feed_runs is None:
                runs[author] = [(seq, seq)]
            elif feed_runs[-1][1] == seq - 1:
                feed_runs[-1] = (feed_runs[-1][0], seq)
            else:
                feed_runs.append((seq, seq))
        posts = any(row[-1] is not None for row in rows)  # a channel: filed for search
        before = await self._newest_rowid(db) if posts else 0
        await db.executemany(_INSERT_MESSAGE, rows)
        if posts:
            await db.execute(INDEX_NEW_POSTS, (before,))
            await db.execute(INDEX_NEW_MENTIONS, (before,))
        await db.executemany(_UPSERT_HEAD, list(heads.values()))
        await self._merge_ranges(db, runs, known)
        # Live traffic (small batches) is indexed at once; bulk replication in large
        # steps, which costs far less per message (schema.py, message_ids).
        await self._index_ids(db, backlog=1 if len(messages) < _LIVE_BATCH else _ID_INDEX_STEP)
        if index.names:
            await db.executemany(_UPSERT_NAME, index.names)
        if index.contacts:
            await db.executemany(_UPSERT_CONTACT, index.contacts)
        if index.pubs:
            await db.executemany(_UPSERT_PUB, index.pubs)

    async def _newest_rowid(self, db: aiosqlite.Connection) -> int:
        """The largest messages rowid (0: none). Inside a write transaction every row
        inserted next gets a larger one (messages is a plain rowid table)."""
        rows = list(await db.execute_fetchall("SELECT coalesce(max(rowid), 0) FROM messages"))
        return int(rows[0][0])

    async def _merge_ranges(
        self,
        db: aiosqlite.Connection,
        runs: dict[bytes, list[Range]],
        known: dict[bytes, _Known] | None,
    ) -> None:
        """Add the stored runs to ``feed_ranges``, joining ranges that now touch."""
        if known is None:
            known = {}
            authors = list(runs)
            for start in range(0, len(authors), 500):
                chunk = authors[start : start + 500]
                marks = ",".join("?" * len(chunk))
                rows = await db.execute_fetchall(
                    f"SELECT author, first, last FROM feed_ranges WHERE author IN ({marks})",
                    chunk,
                )
                for author, first, last in rows:
                    known.setdefault(author, _Known()).ranges.append((first, last))
        removed: list[tuple[bytes, int]] = []
        written: list[tuple[bytes, int, int]] = []
        for author, added in runs.items():
            state = known.get(author)
            old = sorted(state.ranges) if state is not None else []
            new = merge_ranges([*old, *added])
            old_set = set(old)
            new_set = set(new)
            removed.extend((author, first) for first, _ in old_set - new_set)
            written.extend((author, first, last) for first, last in new_set - old_set)
            if state is not None:
                state.ranges = new
        if removed:
            await db.executemany("DELETE FROM feed_ranges WHERE author = ? AND first = ?", removed)
        if written:
            await db.executemany(
                "INSERT OR REPLACE INTO feed_ranges (author, first, last) VALUES (?, ?, ?)",
                written,
            )

    async def get_range(self, feed: bytes, start_seq: int, limit: int) -> list[bytes]:
        """Up to ``limit`` raw messages of ``feed`` from ``start_seq`` on, in order,
        ending before the first seq we do not hold (empty if we lack ``start_seq``)."""
        rows = await self._fetch(
            "SELECT seq, raw FROM messages WHERE author = ? AND seq >= ? AND seq < ? ORDER BY seq",
            (feed, start_seq, start_seq + limit),
            "read messages",
        )
        raws: list[bytes] = []
        for seq, raw in rows:
            if seq != start_seq + len(raws):
                break
            raws.append(raw)
        return raws

    async def get_held(self, feed: bytes, first: int, last: int) -> list[bytes]:
        """The raw messages of ``feed`` we hold with seqs ``first..last``, in order."""
        rows = await self._fetch(
            "SELECT raw FROM messages WHERE author = ? AND seq BETWEEN ? AND ? ORDER BY seq",
            (feed, first, last),
            "read messages",
        )
        return [row[0] for row in rows]

    async def ranges(self, feed: bytes) -> list[Range]:
        """The seq ranges of ``feed`` we hold, oldest first (empty: none)."""
        rows = await self._fetch(
            "SELECT first, last FROM feed_ranges WHERE author = ? ORDER BY first",
            (feed,),
            "read held ranges",
        )
        return [(first, last) for first, last in rows]

    async def held_ranges(self) -> dict[bytes, list[Range]]:
        """The held ranges of every feed (a feed with one range from 1 has no holes)."""
        rows = await self._fetch(
            "SELECT author, first, last FROM feed_ranges ORDER BY author, first",
            (),
            "read held ranges",
        )
        held: dict[bytes, list[Range]] = {}
        for author, first, last in rows:
            held.setdefault(author, []).append((first, last))
        return held

    async def _by_id(self, columns: str, msg_id: bytes, action: str) -> list[sqlite3.Row]:
        sql = (
            f"SELECT {columns} FROM message_ids i JOIN messages m ON m.rowid = i.msg_rowid"
            " WHERE i.id = ?"
        )
        rows = await self._fetch(sql, (msg_id,), action)
        if rows:
            return rows
        # Not indexed (yet?): catch the id index up and look once more.
        async with self._write("index message ids") as db:
            if not await self._index_ids(db, backlog=1):
                return []
            return list(await db.execute_fetchall(sql, (msg_id,)))

    async def _index_ids(self, db: aiosqlite.Connection, backlog: int) -> bool:
        """Inside a write transaction: add the ids of messages not yet in ``message_ids``
        if at least ``backlog`` wait. Returns whether any were added."""
        rows = list(
            await db.execute_fetchall(
                "SELECT (SELECT coalesce(max(rowid), 0) FROM messages),"
                " (SELECT coalesce(max(value), 0) FROM meta WHERE key = 'ids_indexed_upto')"
            )
        )
        newest, upto = rows[0]
        if newest - upto < backlog:
            return False
        await db.execute(
            "INSERT OR IGNORE INTO message_ids (id, msg_rowid)"
            " SELECT id, rowid FROM messages WHERE rowid > ? AND rowid <= ?",
            (upto, newest),
        )
        await db.execute(
            "INSERT INTO meta (key, value) VALUES ('ids_indexed_upto', ?)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (newest,),
        )
        return True

    async def head(self, feed: bytes) -> FeedHead | None:
        rows = await self._fetch(
            "SELECT seq, id FROM feeds WHERE author = ?", (feed,), "read a feed head"
        )
        return FeedHead(rows[0][0], rows[0][1]) if rows else None

    async def clock(self) -> dict[bytes, int]:
        """The latest sequence number of every feed we hold (forked ones included); a
        sparse feed may lack older ones (see ``ranges``)."""
        rows = await self._fetch("SELECT author, seq FROM feeds", (), "read the clock")
        return {author: seq for author, seq in rows}

    async def feeds(self) -> list[FeedInfo]:
        rows = await self._fetch(
            "SELECT author, seq, id, forked FROM feeds ORDER BY author", (), "read feeds"
        )
        return [FeedInfo(a, s, i, bool(f)) for a, s, i, f in rows]

    async def message_count(self) -> int:
        rows = await self._fetch(
            "SELECT coalesce(sum(last - first + 1), 0) FROM feed_ranges", (), "count messages"
        )
        return int(rows[0][0])

    async def delivery(self, msg_id: bytes) -> DeliveryRecord | None:
        """Which peer delivered a message and when (peer None: written on this node)."""
        rows = await self._by_id(
            "m.author, m.seq, m.delivered_by, m.received_ts", msg_id, "read a message's delivery"
        )
        if not rows:
            return None
        author, seq, peer, received = rows[0]
        return DeliveryRecord(msg_id, author, seq, peer, received)

    async def private_messages(self, after: int = 0, limit: int = 500) -> list[tuple[int, Message]]:
        """Messages with private (bytes) content, as ``(cursor, message)`` after ``after``."""
        rows = await self._fetch(
            "SELECT rowid, raw FROM messages WHERE ctype IS NULL AND rowid > ?"
            " ORDER BY rowid LIMIT ?",
            (after, limit),
            "read private messages",
        )
        return [(rowid, decode_message(raw)) for rowid, raw in rows]

    async def private_messages_before(
        self, before: int | None = None, limit: int = 500
    ) -> list[tuple[int, Message]]:
        """Private messages as ``(cursor, message)``, newest arrival first, before the
        cursor ``before`` (None = from the newest)."""
        rows = await self._fetch(
            "SELECT rowid, raw FROM messages WHERE ctype IS NULL AND rowid < ?"
            " ORDER BY rowid DESC LIMIT ?",
            (before if before is not None else 2**63 - 1, limit),
            "read private messages",
        )
        return [(rowid, decode_message(raw)) for rowid, raw in rows]

    # ------------------------------------------------------------------ forks

    async def forks(self) -> list[ForkProof]:
        rows = await self._fetch(
            "SELECT feed, seq, msg_a, msg_b, detected_ts FROM fork_proofs ORDER BY detected_ts",
            (),
            "read fork proofs",
        )
        return [ForkProof(*row) for row in rows]

    async def forked_feeds(self) -> set[bytes]:
        rows = await self._fetch(
            "SELECT author FROM feeds WHERE forked = 1", (), "read forked feeds"
        )
        return {row[0] for row in rows}

    # ------------------------------------------------------------------ chat views

    async def timeline(
        self,
        channel: str | None,
        before: int | None = None,
        limit: int = 50,
        hide: Iterable[bytes] = (),
    ) -> list[StoredPost]:
        """The latest ``limit`` posts of ``channel`` (all channels if None) written before
        ``before`` (ms, exclusive), oldest first, leaving out the authors in ``hide``."""
        clauses: list[str] = []
        params: list[str | int | bytes] = []
        hidden = list(hide)
        if hidden:
            clauses.append(f"author NOT IN ({', '.join('?' * len(hidden))})")
            params.extend(hidden)
        if channel is not None:
            clauses.append("channel = ?")
            params.append(channel)
        if before is not None:
            clauses.append("claimed_ts < ?")
            params.append(before)
        clauses.append("channel IS NOT NULL")
        # Equal timestamps fall back to arrival order (the index's rowid order).
        rows = await self._fetch(
            "SELECT raw, received_ts, channel, rowid FROM messages"
            f" WHERE {' AND '.join(clauses)} ORDER BY claimed_ts DESC, rowid DESC LIMIT ?",
            (*params, limit),
            "read the timeline",
        )
        posts = []
        for raw, received, chan, arrival in reversed(rows):
            message = decode_message(raw)
            assert isinstance(message.content, dict)
            posts.append(StoredPost(message, chan, message.content["text"], received, arrival))
        return posts

    async def channels(self) -> list[ChannelStat]:
        rows = await self._fetch(
            "SELECT channel, count(*), max(claimed_ts) FROM messages WHERE channel IS NOT NULL"
            " GROUP BY channel ORDER BY channel",
            (),
            "read channels",
        )
        return [ChannelStat(name, count, last) for name, count, last in rows]

    async def post_cursor(self) -> int:
        """Arrival position (rowid) of the newest stored message: unread marks use it."""
        rows = await self._fetch(
            "SELECT coalesce(max(rowid), 0) FROM messages", (), "read the arrival position"
        )
        return int(rows[0][0])

    async def count_posts_since(
        self, channel: str, cursor: int, exclude_author: bytes | None = None
    ) -> int:
        """Posts in ``channel`` that arrived after ``cursor`` (a `post_cursor` value), not
        counting those of ``exclude_author`` (our own posts are never unread).

        Two counts, each on an index: the channel's posts past the cursor (the channel
        index holds the rowid), minus the excluded author's (a range of the primary key),
        instead of reading the author of every row (0.9 s on 100,000 posts)."""
        rows = await self._fetch(
            "SELECT count(*) FROM messages WHERE channel = ? AND rowid > ?",
            (channel, cursor),
            "count unread posts",
        )
        count = int(rows[0][0])
        if exclude_author is not None and count:
            # `+channel`: without it SQLite walks the channel index and reads every row's
            # author (0.2 s on a channel of 100,000 never opened) instead of the key range.
            rows = await self._fetch(
                "SELECT count(*) FROM messages WHERE author = ? AND +channel = ? AND rowid > ?",
                (exclude_author, channel, cursor),
                "count unread posts",
            )
            count -= int(rows[0][0])
        return count

    # ------------------------------------------------------------------ read marks

    async def read_marks(self) -> dict[str, int]:
        """Every view's read mark: the arrival position it was read up to."""
        rows = await self._fetch("SELECT view, cursor FROM read_marks", (), "read the read marks")
        return {view: int(cursor) for view, cursor in rows}

    async def save_read_mark(self, view: str, cursor: int) -> None:
        """Remember that ``view`` (a channel, or a conversation) is read up to ``cursor``."""
        async with self._write("save a read mark") as db:
            await db.execute(
                "INSERT INTO read_marks (view, cursor) VALUES (?, ?)"
                " ON CONFLICT (view) DO UPDATE SET cursor = excluded.cursor",
                (view, cursor),
            )

    # ------------------------------------------------------------------ channel membership

    async def parted_channels(self) -> set[str]:
        """The channels left with /part (and not joined again)."""
        rows = await self._fetch("SELECT channel FROM parted_channels", (), "read parted channels")
        return {channel for (channel,) in rows}

    async def set_parted(self, channel: str, parted: bool) -> None:
        """Remember that ``channel`` was left (or joined again)."""
        async with self._write("save a channel's membership") as db:
            if parted:
                await db.execute(
                    "INSERT OR IGNORE INTO parted_channels (channel) VALUES (?)", (channel,)
                )
            else:
                await db.execute("DELETE FROM parted_channels WHERE channel = ?", (channel,))

    # ------------------------------------------------------------------ history settings

    async def history_overrides(self) -> dict[bytes, int | None]:
        """Feeds whose history setting differs from the config's: how many of their
        newest messages to keep fetching (None = all)."""
        rows = await self._fetch(
            "SELECT author, keep FROM history_overrides", (), "read the history settings"
        )
        return {bytes(author): None if keep is None else int(keep) for author, keep in rows}

    async def save_history_override(self, feed: bytes, keep: int | None) -> None:
        """Keep fetching the newest `keep` messages of `feed` (None = all of it)."""
        async with self._write("save a history setting") as db:
            await db.execute(
                "INSERT INTO history_overrides (author, keep) VALUES (?, ?)"
                " ON CONFLICT (author) DO UPDATE SET keep = excluded.keep",
                (feed, keep),
            )

    async def remove_history_override(self, feed: bytes) -> None:
        """`feed` follows the config's history setting again."""
        async with self._write("remove a history setting") as db:
            await db.execute("DELETE FROM history_overrides WHERE author = ?", (feed,))

    # ------------------------------------------------------------------ private index, search

    async def private_index_cursor(self) -> int:
        """The arrival position up to which private messages were offered to the index."""
        rows = await self._fetch(
            "SELECT value FROM meta WHERE key = 'private_indexed_upto'",
            (),
            "read the private index position",
        )
        return int(rows[0][0]) if rows else 0

    async def index_private(self, rows: Sequence[PrivateIndexRow], upto: int) -> None:
        """Record the private messages the node could open (up to arrival ``upto``): their
        conversation for the conversation views, their text for search."""
        async with self._write("index private messages") as db:
            await db.executemany(
                "INSERT OR IGNORE INTO private_index (msg_rowid, conversation, author)"
                " VALUES (?, ?, ?)",
                [(r.msg_rowid, r.conversation, r.author) for r in rows],
            )
            await db.executemany(
                "INSERT INTO search_text (rowid, text) VALUES (?, ?)",
                [(r.msg_rowid, r.text) for r in rows],
            )
            await db.execute(
                "INSERT INTO meta (key, value) VALUES ('private_indexed_upto', ?)"
                " ON CONFLICT (key) DO UPDATE SET value = max(value, excluded.value)",
                (upto,),
            )

    async def conversations(self, exclude_author: bytes | None = None) -> list[ConversationStat]:
        """Private conversations with their size, newest claimed time and unread count
        (arrived after the conversation's read mark, not written by ``exclude_author``)."""
        rows = await self._fetch(
            "SELECT p.conversation, count(*), max(m.claimed_ts),"
            " sum(p.msg_rowid > coalesce(r.cursor, 0) AND p.author IS NOT ?)"
            " FROM private_index p JOIN messages m ON m.rowid = p.msg_rowid"
            " LEFT JOIN read_marks r ON r.view = p.conversation"
            " GROUP BY p.conversation ORDER BY p.conversation",
            (exclude_author,),
            "read private conversations",
        )
        return [ConversationStat(c, int(n), int(last), int(unread)) for c, n, last, unread in rows]

    async def conversation_messages(
        self, conversation: str, before: int | None = None, limit: int = 100
    ) -> list[tuple[int, Message]]:
        """The latest ``limit`` messages of a private conversation written before
        ``before`` (ms, exclusive), as ``(arrival, message)``, oldest first."""
        rows = await self._fetch(
            "SELECT m.rowid, m.raw FROM private_index p JOIN messages m ON m.rowid = p.msg_rowid"
            " WHERE p.conversation = ? AND m.claimed_ts < ?"
            " ORDER BY m.claimed_ts DESC, m.rowid DESC LIMIT ?",
            (conversation, before if before is not None else 2**63 - 1, limit),
            "read a private conversation",
        )
        return [(rowid, decode_message(raw)) for rowid, raw in reversed(rows)]

    async def search(self, text: str, limit: int = 50) -> list[SearchRow]:
        """Posts and opened private messages containing every word of ``text`` (the last
        word as a prefix), newest arrival first."""
        query = fts_query(text)
        if not query:
            return []
        rows = await self._fetch(
            "SELECT s.rowid, m.raw, m.channel, p.conversation FROM search_text s"
            " JOIN messages m ON m.rowid = s.rowid"
            " LEFT JOIN private_index p ON p.msg_rowid = s.rowid"
            " WHERE search_text MATCH ? ORDER BY s.rowid DESC LIMIT ?",
            (query, limit),
            "search messages",
        )
        return [SearchRow(int(r[0]), r[1], r[2], r[3]) for r in rows]

    async def count_mentions_since(
        self, channel: str, cursor: int, feed: bytes, exclude_author: bytes | None = None
    ) -> int:
        """Posts in ``channel`` arrived after ``cursor`` that mention ``feed`` (in their
        signed ``mentions``), not counting those of ``exclude_author``; read from the
        ``mentions`` index, not from the posts' bytes."""
        rows = await self._fetch(
            "SELECT count(*) FROM mentions x JOIN messages m ON m.rowid = x.msg_rowid"
            " WHERE x.feed = ? AND x.msg_rowid > ? AND m.channel = ? AND m.author IS NOT ?",
            (feed.hex(), cursor, channel, exclude_author),
            "count mentions",
        )
        return int(rows[0][0])

    async def names(self) -> dict[bytes, str]:
        """The latest self-chosen name of every feed that set one."""
        rows = await self._fetch("SELECT author, name FROM names", (), "read names")
        return {author: name for author, name in rows}

    async def contacts(self) -> list[ContactEdge]:
        rows = await self._fetch(
            "SELECT author, contact, following, blocking FROM contacts", (), "read contacts"
        )
        return [
            ContactEdge(a, c, None if f is None else bool(f), None if b is None else bool(b))
            for a, c, f, b in rows
        ]

    async def follows(self, of: bytes) -> set[bytes]:
        rows = await self._fetch(
            "SELECT contact FROM contacts WHERE author = ? AND following = 1",
            (of,),
            "read follows",
        )
        return {row[0] for row in rows}

    async def blocks(self, of: bytes) -> set[bytes]:
        rows = await self._fetch(
            "SELECT contact FROM contacts WHERE author = ? AND blocking = 1",
            (of,),
            "read blocks",
        )
        return {row[0] for row in rows}

    async def hops(self, root: bytes, max_hops: int) -> dict[bytes, int]:
        """Feeds within ``max_hops`` follows of ``root`` and their distance (root is 0).

        Feeds that ``root`` blocks are left out and their follows are not walked.
        """
        edges = await self._fetch(
            "SELECT author, contact FROM contacts WHERE following = 1", (), "read follows"
        )
        blocked = await self.blocks(root)
        graph: dict[bytes, list[bytes]] = {}
        for author, contact in edges:
            graph.setdefault(author, []).append(contact)
        distance = {root: 0}
        queue = deque([root])
        while queue:
            feed = queue.popleft()
            if distance[feed] >= max_hops:
                continue
            for contact in graph.get(feed, ()):
                if contact not in distance and contact not in blocked:
                    distance[contact] = distance[feed] + 1
                    queue.append(contact)
        return distance

    async def pubs(self) -> list[PubRecord]:
        rows = await self._fetch(
            "SELECT author, key, host, port, seq FROM pubs ORDER BY author, key", (), "read pubs"
        )
        return [PubRecord(*row) for row in rows]

    # ------------------------------------------------------------------ peers

    async def save_peer(self, peer: SavedPeer) -> None:
        """Insert or replace one peer row."""
        async with self._write("save a peer") as db:
            await db.execute(
                "INSERT INTO peers (key, address, source, failures, next_attempt,"
                " last_connected, permanent, state) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (key) DO UPDATE SET address = excluded.address,"
                " source = excluded.source, failures = excluded.failures,"
                " next_attempt = excluded.next_attempt, last_connected = excluded.last_connected,"
                " permanent = excluded.permanent, state = excluded.state",
                (
                    peer.key,
                    peer.address,
                    peer.source,
                    peer.failures,
                    peer.next_attempt,
                    peer.last_connected,
                    int(peer.permanent),
                    peer.state,
                ),
            )

    async def peer(self, key: bytes) -> SavedPeer | None:
        rows = await self._fetch(
            "SELECT key, address, source, failures, next_attempt, last_connected, permanent,"
            " state FROM peers WHERE key = ?",
            (key,),
            "read a peer",
        )
        return _peer_row(rows[0]) if rows else None

    async def peers(self) -> list[SavedPeer]:
        rows = await self._fetch(
            "SELECT key, address, source, failures, next_attempt, last_connected, permanent,"
            " state FROM peers ORDER BY key",
            (),
            "read peers",
        )
        return [_peer_row(row) for row in rows]

    async def remove_peer(self, key: bytes) -> None:
        """Forget a peer and its remembered clock."""
        async with self._write("remove a peer") as db:
            await db.execute("DELETE FROM peers WHERE key = ?", (key,))
            await db.execute("DELETE FROM peer_clocks WHERE peer = ?", (key,))

    async def message_ids(self, author: bytes, seqs: Sequence[int]) -> dict[int, bytes]:
        """The ids of the messages we hold of ``author`` at ``seqs`` (a read, no write)."""
        found: dict[int, bytes] = {}
        for start in range(0, len(seqs), 500):
            chunk = list(seqs[start : start + 500])
            marks = ",".join("?" * len(chunk))
            rows = await self._fetch(
                f"SELECT seq, id FROM messages WHERE author = ? AND seq IN ({marks})",
                (author, *chunk),
                "read message ids",
            )
            found.update((seq, msg_id) for seq, msg_id in rows)
        return found

    async def load_peer_clock(self, peer: bytes) -> PeerClock | None:
        """The clocks remembered for ``peer`` (None: never saved, do a full exchange)."""
        rows = await self._fetch(
            "SELECT feed, theirs, ours FROM peer_clocks WHERE peer = ?",
            (peer,),
            "read a peer's clock",
        )
        if not rows:
            return None
        theirs = {feed: t for feed, t, _ in rows if t is not None}
        ours = {feed: o for feed, _, o in rows if o is not None}
        return PeerClock(theirs, ours)

    async def save_peer_clock(
        self, peer: bytes, theirs: dict[bytes, int], ours: dict[bytes, int]
    ) -> None:
        """Replace the clocks remembered for ``peer`` (at most MAX_RECORD_FEEDS feeds).

        Records of at most MAX_SAVED_RECORDS peers are kept: saving one drops those
        not saved for RECORD_TTL and then the least recently saved beyond the bound.
        """
        feeds = list({*theirs, *ours})[:MAX_RECORD_FEEDS]
        now = time.time()
        rows = [(peer, feed, theirs.get(feed), ours.get(feed), now) for feed in feeds]
        async with self._write("save a peer's clock") as db:
            await db.execute("DELETE FROM peer_clocks WHERE peer = ?", (peer,))
            await db.executemany(
                "INSERT INTO peer_clocks (peer, feed, theirs, ours, saved_at)"
                " VALUES (?, ?, ?, ?, ?)",
                rows,
            )
            await db.execute(
                "DELETE FROM peer_clocks WHERE peer IN (SELECT peer FROM peer_clocks"
                " GROUP BY peer HAVING max(saved_at) < ?)",
                (now - RECORD_TTL,),
            )
            await db.execute(
                "DELETE FROM peer_clocks WHERE peer IN (SELECT peer FROM peer_clocks"
                " GROUP BY peer ORDER BY max(saved_at) DESC LIMIT -1 OFFSET ?)",
                (MAX_SAVED_RECORDS,),
            )

    # ------------------------------------------------------------------ other writers

    async def data_version(self) -> int:
        """SQLite's ``data_version``: changes when another connection commits."""
        rows = await self._fetch("PRAGMA data_version", (), "read the data version")
        return int(rows[0][0])

    async def changed_externally(self) -> bool:
        """True if another connection (e.g. ``treechat post``) committed since last asked."""
        version = await self.data_version()
        changed = version != self._seen_data_version
        self._seen_data_version = version
        return changed


def _peer_row(row: Iterable[Any]) -> SavedPeer:
    key, address, source, failures, next_attempt, last_connected, permanent, state = row
    return SavedPeer(
        key, address, source, failures, next_attempt, last_connected, bool(permanent), state
    )
