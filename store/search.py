"""Full-text search helpers: the SQL function that feeds the FTS5 index, and safe queries.

The index ``search_text`` (schema.py) is a contentless FTS5 table keyed by the messages
rowid. Public posts enter it through a trigger on ``messages`` that calls ``post_text``,
a Python function each connection registers, so the index stays in step with the store
inside the same transaction, whichever process writes. Private messages enter it only
when the node has opened them (``Store.index_private``): the store cannot read them.
"""

from __future__ import annotations

import msgpack

from store.message import SIGNATURE_SIZE

POST_TEXT_FUNCTION = "post_text"
_CONTENT_FIELD = 5  # [version, author, seq, prev, timestamp, content]


def post_text(raw: bytes) -> str:
    """The text of a stored post's signed bytes ('' for anything else)."""
    try:
        body = msgpack.unpackb(raw[:-SIGNATURE_SIZE], raw=False, strict_map_key=False)
        text = body[_CONTENT_FIELD].get("text")
    except Exception:
        return ""
    return text if isinstance(text, str) else ""


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
