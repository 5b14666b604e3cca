"""Indexes of posts (full-text search, mentions), filed as posts are stored, and safe
search queries.

The index ``search_text`` (schema.py) is a contentless FTS5 table keyed by the messages
rowid. The store files the public posts of every batch it inserts with one statement
(``INDEX_NEW_POSTS``, calling ``post_text``, a Python function each connection
registers), inside the insert's transaction, so the index stays in step with the store
whichever process writes. One statement per batch, not a trigger per row: FTS5 writes
its pending terms out at every statement boundary inside a trigger, so per-row indexing
cost about ten times the row's own insert. Private messages enter the index only when
the node has opened them (``Store.index_private``): the store cannot read them.

The table ``mentions`` lists which feeds each post mentions (``post_mentions``, filed
the same way by ``INDEX_NEW_MENTIONS``), so counting a channel's unread mentions of us
reads an index instead of the bytes of every unread post.
"""

from __future__ import annotations

import json

import msgpack

from store.message import SIGNATURE_SIZE

POST_TEXT_FUNCTION = "post_text"
POST_MENTIONS_FUNCTION = "post_mentions"
_CONTENT_FIELD = 5  # [version, author, seq, prev, timestamp, content]

INDEX_NEW_POSTS = (
    "INSERT INTO search_text (rowid, text)"
    " SELECT rowid, post_text(raw) FROM messages WHERE rowid > ? AND channel IS NOT NULL"
)
"""File the posts stored after rowid ``?`` in the full-text index."""

INDEX_NEW_MENTIONS = (
    "INSERT OR IGNORE INTO mentions (feed, msg_rowid)"
    " SELECT j.value, m.rowid FROM messages m, json_each(post_mentions(m.raw)) j"
    " WHERE m.rowid > ? AND m.channel IS NOT NULL AND instr(m.raw, X'6d656e74696f6e73') > 0"
)
"""File whom the posts stored after rowid ``?`` mention (only posts whose bytes hold the
key "mentions" reach Python)."""


def _post_field(raw: bytes, field: str) -> object:
    """One field of a stored post's content (None when it has none or is not a post)."""
    try:
        body = msgpack.unpackb(raw[:-SIGNATURE_SIZE], raw=False, strict_map_key=False)
        return body[_CONTENT_FIELD].get(field)
    except Exception:
        return None


def post_text(raw: bytes) -> str:
    """The text of a stored post's signed bytes ('' for anything else)."""
    text = _post_field(raw, "text")
    return text if isinstance(text, str) else ""


def post_mentions(raw: bytes) -> str:
    """The feeds a stored post mentions, as a JSON list of hex keys (for ``json_each``)."""
    mentions = _post_field(raw, "mentions")
    if not isinstance(mentions, list):
        return "[]"
    return json.dumps([m.hex() for m in mentions if isinstance(m, bytes)])


def fts_query(text: str) -> str:
    """A user's words as an FTS5 query: every word must occur, the last one as a prefix.

    Each word is quoted, so FTS5 operators (AND, NEAR, *, ^, column filters) typed by the
    user are searched for as words rather than parsed. '' when there is nothing to find.
    """
    words = [w for w in (part.strip() for part in text.split()) if w]
    quoted = ['"' + w.replace('"', '""') + '"' for w in words]
    if quoted:
        quoted[-1] += "*"
    return " ".join(quoted)
