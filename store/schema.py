"""The database schema as a list of forward migrations (``PRAGMA user_version``).

``MIGRATIONS[i]`` takes a database from version ``i`` to ``i + 1``. A database newer than
this code is refused rather than guessed at. Never edit a released step: append a new one.
"""

from __future__ import annotations

MIGRATIONS: list[tuple[str, ...]] = [
    # 0 -> 1: feeds, messages (with the posts timeline), chat views, peers,
    # remembered clocks, fork proofs.
    (
        # Every stored message, exactly as signed. ``claimed_ts`` is the author's
        # timestamp, ``received_ts`` when it reached us, ``delivered_by`` the peer that
        # sent it (NULL when written locally). ``ctype`` is the content type, NULL for
        # private (bytes) content. ``channel`` is set for posts only: the posts timeline
        # is the partial index ``messages_by_channel``, so indexing a post costs one
        # b-tree insert instead of a table of its own (see benchmarks/bench_store.py).
        """
        CREATE TABLE messages (
            author BLOB NOT NULL,
            seq INTEGER NOT NULL,
            id BLOB NOT NULL,
            raw BLOB NOT NULL,
            claimed_ts INTEGER NOT NULL,
            received_ts INTEGER NOT NULL,
            ctype TEXT,
            delivered_by BLOB,
            channel TEXT,
            PRIMARY KEY (author, seq)
        )
        """,
        "CREATE INDEX messages_private ON messages (ctype) WHERE ctype IS NULL",
        """
        CREATE INDEX messages_by_channel ON messages (channel, claimed_ts)
        WHERE channel IS NOT NULL
        """,
        # Message id -> row, filled in bulk behind the inserts (see Store._index_ids):
        # a per-batch random insert into an id index dominated the receive path, while
        # catching up a few thousand ids at once costs a quarter of that.
        """
        CREATE TABLE message_ids (
            id BLOB PRIMARY KEY,
            msg_rowid INTEGER NOT NULL
        ) WITHOUT ROWID
        """,
        # Small named counters; ``ids_indexed_upto`` is the last messages rowid in message_ids.
        """
        CREATE TABLE meta (
            key TEXT PRIMARY KEY,
            value INTEGER NOT NULL
        )
        """,
        # The latest message of every feed we hold; forked feeds take no more messages.
        """
        CREATE TABLE feeds (
            author BLOB PRIMARY KEY,
            seq INTEGER NOT NULL,
            id BLOB NOT NULL,
            forked INTEGER NOT NULL DEFAULT 0
        )
        """,
        """
        CREATE TABLE names (
            author BLOB PRIMARY KEY,
            name TEXT NOT NULL,
            seq INTEGER NOT NULL
        )
        """,
        # Follow and block edges; each flag is decided by the latest message that sets it.
        """
        CREATE TABLE contacts (
            author BLOB NOT NULL,
            contact BLOB NOT NULL,
            following INTEGER,
            following_seq INTEGER,
            blocking INTEGER,
            blocking_seq INTEGER,
            PRIMARY KEY (author, contact)
        )
        """,
        "CREATE INDEX contacts_by_contact ON contacts (contact)",
        """
        CREATE TABLE pubs (
            author BLOB NOT NULL,
            key BLOB NOT NULL,
            host TEXT NOT NULL,
            port INTEGER NOT NULL,
            seq INTEGER NOT NULL,
            PRIMARY KEY (author, key)
        )
        """,
        """
        CREATE TABLE peers (
            key BLOB PRIMARY KEY,
            address TEXT,
            source TEXT NOT NULL,
            failures INTEGER NOT NULL DEFAULT 0,
            next_attempt REAL NOT NULL DEFAULT 0,
            last_connected REAL,
            permanent INTEGER NOT NULL DEFAULT 0,
            state TEXT NOT NULL DEFAULT ''
        )
        """,
        # Per peer and feed: the note value they last told us and the one we told them.
        """
        CREATE TABLE peer_clocks (
            peer BLOB NOT NULL,
            feed BLOB NOT NULL,
            theirs INTEGER,
            ours INTEGER,
            PRIMARY KEY (peer, feed)
        ) WITHOUT ROWID
        """,
        """
        CREATE TABLE fork_proofs (
            feed BLOB NOT NULL,
            seq INTEGER NOT NULL,
            msg_a BLOB NOT NULL,
            msg_b BLOB NOT NULL,
            detected_ts INTEGER NOT NULL,
            PRIMARY KEY (feed, seq)
        )
        """,
    ),
    # 1 -> 2: sparse feeds. The seq ranges held of every feed (a feed may start after
    # seq 1 and have holes while older history is fetched); every feed held so far is
    # one range from seq 1 to its head.
    (
        """
        CREATE TABLE feed_ranges (
            author BLOB NOT NULL,
            first INTEGER NOT NULL,
            last INTEGER NOT NULL,
            PRIMARY KEY (author, first)
        ) WITHOUT ROWID
        """,
        "INSERT INTO feed_ranges (author, first, last) SELECT author, 1, seq FROM feeds",
    ),
    # 2 -> 3: read marks, one row per view (a channel name, or '@' and the keys of a
    # private conversation): the arrival position (messages rowid) read up to. Local
    # state, never a feed message.
    (
        """
        CREATE TABLE read_marks (
            view TEXT PRIMARY KEY,
            cursor INTEGER NOT NULL
        ) WITHOUT ROWID
        """,
    ),
    # 3 -> 4: full-text search (store/search.py). A contentless FTS5 index keyed by the
    # messages rowid; posts are indexed now and by a trigger from here on (the Python
    # function post_text reads a post's text); private messages the node could open are
    # listed in private_index with their conversation and indexed by the node.
    (
        """
        CREATE VIRTUAL TABLE search_text USING fts5(
            text, content='', tokenize='unicode61 remove_diacritics 2'
        )
        """,
        """
        INSERT INTO search_text (rowid, text)
        SELECT rowid, post_text(raw) FROM messages WHERE channel IS NOT NULL
        """,
        """
        CREATE TRIGGER messages_search AFTER INSERT ON messages
        WHEN new.channel IS NOT NULL
        BEGIN
            INSERT INTO search_text (rowid, text) VALUES (new.rowid, post_text(new.raw));
        END
        """,
        """
        CREATE TABLE private_index (
            msg_rowid INTEGER PRIMARY KEY,
            conversation TEXT NOT NULL,
            author BLOB NOT NULL
        )
        """,
        "CREATE INDEX private_by_conversation ON private_index (conversation, msg_rowid)",
    ),
    # 4 -> 5: bounded request-skipping records. Each row says when it was saved, so the
    # oldest records can be dropped (store/limits.py); notes about feeds we hold nothing
    # of were once kept from any peer (a stranger could send a million) and are removed.
    (
        "ALTER TABLE peer_clocks ADD COLUMN saved_at REAL NOT NULL DEFAULT 0",
        "DELETE FROM peer_clocks WHERE feed NOT IN (SELECT author FROM feeds)",
    ),
    # 5 -> 6: which feeds each post mentions (hex keys), so unread mentions of us are
    # counted from an index: a channel never opened once meant reading the bytes of
    # every post in it (0.6 s on 100,000). Filled now and by a trigger from here on (the
    # Python function post_mentions, store/search.py); only posts whose bytes hold the
    # key "mentions" reach Python.
    (
        """
        CREATE TABLE mentions (
            feed TEXT NOT NULL,
            msg_rowid INTEGER NOT NULL,
            PRIMARY KEY (feed, msg_rowid)
        ) WITHOUT ROWID
        """,
        """
        INSERT OR IGNORE INTO mentions (feed, msg_rowid)
        SELECT j.value, m.rowid FROM messages m, json_each(post_mentions(m.raw)) j
        WHERE m.channel IS NOT NULL AND instr(m.raw, X'6d656e74696f6e73') > 0
        """,
        """
        CREATE TRIGGER messages_mentions AFTER INSERT ON messages
        WHEN new.channel IS NOT NULL AND instr(new.raw, X'6d656e74696f6e73') > 0
        BEGIN
            INSERT OR IGNORE INTO mentions (feed, msg_rowid)
            SELECT value, new.rowid FROM json_each(post_mentions(new.raw));
        END
        """,
    ),
    # 6 -> 7: channels left with /part, so they stay left after a restart until /join.
    # Local state like read marks: a feed has no membership to leave.
    (
        """
        CREATE TABLE parted_channels (
            channel TEXT PRIMARY KEY
        ) WITHOUT ROWID
        """,
    ),
    # 7 -> 8: per feed history settings (/history NAME N|all, docs/decisions.md): how
    # many of the newest messages of a feed to keep fetching, NULL = all of it. A feed
    # without a row follows the config's `history`. Local state, never a feed message.
    (
        """
        CREATE TABLE history_overrides (
            author BLOB PRIMARY KEY,
            keep INTEGER
        ) WITHOUT ROWID
        """,
    ),
    # 8 -> 9: reindex what an older, looser indexer let in (a name of any length holding
    # escape sequences, a channel named "NOT a Channel!"). The SQL functions
    # indexed_channel and indexed_name (store/db.py) ask today's indexer, so the one set
    # of content rules (store/content.py) decides: refused posts leave the timeline, the
    # search index and the mentions, and every name is derived again from the latest valid `about`.
    (
        """
        INSERT INTO search_text (search_text, rowid, text)
        SELECT 'delete', rowid, post_text(raw) FROM messages
        WHERE channel IS NOT NULL AND indexed_channel(raw) IS NULL
        """,
        """
        UPDATE messages SET channel = indexed_channel(raw)
        WHERE channel IS NOT NULL AND channel IS NOT indexed_channel(raw)
        """,
        """
        DELETE FROM mentions
        WHERE msg_rowid IN (SELECT rowid FROM messages WHERE channel IS NULL)
        """,
        "DELETE FROM names",
        """
        INSERT INTO names (author, name, seq)
        SELECT author, indexed_name(raw), seq FROM messages
        WHERE ctype = 'about' AND indexed_name(raw) IS NOT NULL
        ON CONFLICT (author) DO UPDATE SET name = excluded.name, seq = excluded.seq
        WHERE excluded.seq > names.seq
        """,
    ),
    # 9 -> 10: posts enter the search index and the mentions table from the store's
    # insert, one statement per batch (store/search.py), not from per-row triggers: an
    # FTS5 insert inside a trigger flushes its pending terms as a new segment for every
    # row, which made indexing a received post cost ten times its plain insert.
    (
        "DROP TRIGGER IF EXISTS messages_search",
        "DROP TRIGGER IF EXISTS messages_mentions",
    ),
]

SCHEMA_VERSION = len(MIGRATIONS)
