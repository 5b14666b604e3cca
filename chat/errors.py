"""The error family the CLI and the TUI catch: `UserError` and the node's own kinds.

Every error a user can act on is a `UserError` (store/errors.py, so each layer can raise
one): the CLI prints it on one line and exits 1, the TUI shows it as words. Anything
else is a bug: the CLI shows its traceback, the TUI says "internal error, see the log".
"""

from __future__ import annotations

from store.errors import UserError

__all__ = ["ListenError", "NodeError", "UserError"]


class NodeError(ValueError, UserError):
    """A request the node refuses: yourself, a blocked key, a name nobody or many use."""


class ListenError(UserError):
    """The node could not listen on its address (in use, not ours, no permission)."""
