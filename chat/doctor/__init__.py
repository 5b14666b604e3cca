"""`treechat doctor`: why chat might not work, checked in order, each with a one-line fix.

Each check is two halves: a thin ``gather_*`` function that looks at the system (files,
SQLite, a socket, the routing table, the terminal) and returns plain facts, and a pure
``judge_*`` function that turns those facts into `Finding`s. The rules are tested on
their own; the gathering is tested once against the real failing conditions.

The overall status is the worst finding: 0 ok, 1 warnings, 2 problems (the exit status).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping
from typing import Any

from chat.config import Config
from chat.doctor.files import check_identity, gather_database, judge_database
from chat.doctor.findings import Finding, Level, exit_status, report_json, report_lines
from chat.doctor.network import (
    gather_discovery,
    gather_port,
    judge_discovery,
    judge_network_key,
    judge_port,
)
from chat.doctor.peers import gather_store, judge_clock, judge_remembered
from chat.doctor.terminal import gather_terminal, judge_terminal
from chat.identity import IdentityError, load_identity
from chat.status import StatusError, read_status

__all__ = ["Finding", "Level", "exit_status", "report_json", "report_lines", "run_checks"]


def run_checks(
    config: Config,
    *,
    env: Mapping[str, str],
    is_tty: bool,
    status: Mapping[str, Any] | None = None,
) -> list[Finding]:
    """Every check, in the order the report shows them. ``status`` is the running node's
    snapshot when the caller is that node; else ``status.json`` is read if present."""
    findings = check_identity(config)
    findings += judge_database(gather_database(config.database_path))
    if status is None:
        with contextlib.suppress(StatusError):
            status = read_status(config.data_dir)
    findings.append(judge_port(gather_port(config, status=status)))
    findings += judge_discovery(gather_discovery(config, status=status))
    findings.append(judge_network_key(config.network_key))
    own_feed = None
    if config.secret_path.exists():
        with contextlib.suppress(IdentityError, OSError):
            own_feed = load_identity(config.secret_path).feed_id
    facts = gather_store(config.database_path, own_feed)
    findings += judge_remembered(facts.remembered, time.time())
    findings.append(judge_clock(facts, int(time.time() * 1000)))
    findings += judge_terminal(gather_terminal(env, is_tty))
    return findings
