"""Installs the sealed-network guard in Python subprocesses of the test suite (sealed.py)."""

import sealed  # type: ignore[import-not-found]  # on sys.path only in the subprocesses

sealed.install_from_environment()
