"""What the doctor reports: a `Finding` per check, its `Level`, the report as lines or JSON."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any


class Level(IntEnum):
    """How bad a finding is; the worst one is the exit status."""

    OK = 0
    WARNING = 1
    PROBLEM = 2

    @property
    def word(self) -> str:
        return self.name.lower()


@dataclass(frozen=True, slots=True)
class Finding:
    """One line of the report: which check, how bad, what we saw, and the fix."""

    check: str
    level: Level
    summary: str
    fix: str = ""

    def as_json(self) -> dict[str, str]:
        return {
            "check": self.check,
            "level": self.level.word,
            "summary": self.summary,
            "fix": self.fix,
        }


def exit_status(findings: Sequence[Finding]) -> int:
    """0 when all is well, 1 with warnings, 2 with problems."""
    return int(max((f.level for f in findings), default=Level.OK))


def report_json(findings: Sequence[Finding]) -> dict[str, Any]:
    """The ``--json`` document (docs/doctor.md)."""
    worst = Level(exit_status(findings))
    return {
        "version": 1,
        "status": worst.word,
        "exit_status": int(worst),
        "checks": [f.as_json() for f in findings],
    }


def report_lines(findings: Sequence[Finding]) -> list[str]:
    """``problem  secret  /x/secret has mode 0644 ...`` and, under it, ``fix: ...``."""
    width = max((len(f.check) for f in findings), default=0)
    lines = []
    for finding in findings:
        lines.append(f"{finding.level.word:<8} {finding.check:<{width}}  {finding.summary}")
        if finding.fix:
            lines.append(f"{'':<8} {'':<{width}}  fix: {finding.fix}")
    return lines


def ago(seconds: float) -> str:
    if seconds < 90:
        return f"{max(0, round(seconds))} s ago"
    if seconds < 90 * 60:
        return f"{round(seconds / 60)} min ago"
    if seconds < 36 * 3600:
        return f"{round(seconds / 3600)} h ago"
    return f"{round(seconds / 86400)} days ago"


def span(ms: float) -> str:
    minutes = abs(ms) / 60000
    return f"{minutes:.0f} min" if minutes < 120 else f"{minutes / 60:.1f} h"
