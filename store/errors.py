"""The user-facing error family (`UserError`) and the storage errors, in user words.

`UserError` sits in the lowest layer so every layer can raise one: the CLI catches this
one family (one line, exit 1), the TUI shows it as words; any other exception is a bug
(the CLI shows the traceback, the TUI says "internal error, see the log" and logs it).
"""

from __future__ import annotations

import enum
import sqlite3


class UserError(Exception):
    """A failure the user can act on; `str()` is the whole message, written for them.

    `step` names where a multi-step action stopped (an enum of the raising module) and
    `reason` says why, when the failure has steps; both are None otherwise.
    """

    step: enum.Enum | None = None
    reason: str | None = None


class StoreError(UserError):
    """The database could not be read or written; the message says why in plain words."""


def describe_sqlite_error(exc: sqlite3.Error, action: str, path: str) -> StoreError:
    """Turn an sqlite3 error into a ``StoreError`` a user can act on."""
    text = str(exc).lower()
    if "disk is full" in text or "disk full" in text:
        why = "the disk is full; free some space and try again"
    elif "locked" in text or "busy" in text:
        why = "the database is busy (another treechat process is writing to it)"
    elif "malformed" in text or "not a database" in text or "corrupt" in text:
        why = "the database file is damaged"
    elif "readonly" in text or "read-only" in text:
        why = "the database file is read-only"
    elif "unable to open" in text:
        why = "the database file cannot be opened (check the data directory exists and is writable)"
    elif "disk i/o" in text:
        why = "the disk reported an I/O error"
    else:
        why = str(exc)
    return StoreError(f"could not {action} ({path}): {why}")
