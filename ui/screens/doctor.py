"""The /doctor dialog: the findings of `treechat doctor`, worst first marked, each with its fix."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from chat.doctor import Finding, Level, exit_status, report_lines

STYLE = {Level.OK: "green", Level.WARNING: "yellow", Level.PROBLEM: "bold red"}


def doctor_summary(findings: Sequence[Finding]) -> str:
    """One line for the status bar: how many problems and warnings."""
    problems = sum(1 for f in findings if f.level == Level.PROBLEM)
    warnings = sum(1 for f in findings if f.level == Level.WARNING)
    if exit_status(findings) == 0:
        return f"doctor: all {len(findings)} checks ok"
    return f"doctor: {_count(problems, 'problem')}, {_count(warnings, 'warning')}"


def _count(number: int, word: str) -> str:
    return f"{number} {word}" if number == 1 else f"{number} {word}s"


def doctor_text(findings: Sequence[Finding]) -> Text:
    """The report as in the terminal, each line coloured by its finding's level."""
    text = Text()
    for finding in findings:
        for line in report_lines([finding]):
            text.append(line + "\n", style=STYLE[finding.level])
    return text


class DoctorScreen(ModalScreen[None]):
    """A modal with the doctor's report; Esc or q closes it."""

    BINDINGS = [Binding("escape,q", "dismiss", "Close")]

    def __init__(self, findings: Sequence[Finding]) -> None:
        super().__init__()
        self.findings = list(findings)

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="doctor-box") as box:
            box.border_title = "Doctor"
            box.border_subtitle = "Esc closes"
            yield Static(doctor_text(self.findings), id="doctor-report")
