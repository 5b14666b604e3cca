"""Installs the sealed-network guard in Python subprocesses of the test suite (sealed.py)."""

import sealed

sealed.install_from_environment()
