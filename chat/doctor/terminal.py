"""Doctor checks of the terminal: size, colours, notifications and the clipboard."""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from dataclasses import dataclass

from chat.doctor.findings import Finding, Level

MIN_COLUMNS, MIN_LINES = 80, 24


# ----------------------------------------------------------------------------- terminal


@dataclass(frozen=True, slots=True)
class TerminalFacts:
    is_tty: bool
    term: str
    colorterm: str
    no_color: bool
    columns: int
    lines: int
    in_tmux: bool
    in_screen: bool


def gather_terminal(env: Mapping[str, str], is_tty: bool) -> TerminalFacts:
    size = shutil.get_terminal_size((0, 0))
    return TerminalFacts(
        is_tty=is_tty,
        term=env.get("TERM", ""),
        colorterm=env.get("COLORTERM", ""),
        no_color="NO_COLOR" in env,
        columns=size.columns,
        lines=size.lines,
        in_tmux="TMUX" in env,
        in_screen="STY" in env,
    )


def judge_terminal(facts: TerminalFacts) -> list[Finding]:
    if not facts.is_tty:
        return [
            Finding(
                "terminal",
                Level.OK,
                "output is not a terminal, so it was not checked; run doctor where you chat",
            )
        ]
    findings = []
    if facts.term in ("", "dumb"):
        findings.append(
            Finding(
                "colours",
                Level.PROBLEM,
                f"TERM is {facts.term or 'not set'}: the TUI cannot draw",
                "run treechat in a terminal emulator, or export TERM=xterm-256color",
            )
        )
    elif facts.no_color:
        findings.append(Finding("colours", Level.OK, "NO_COLOR is set: the TUI draws in mono"))
    elif facts.colorterm.lower() in ("truecolor", "24bit"):
        findings.append(Finding("colours", Level.OK, "true colour"))
    elif "256" in facts.term:
        findings.append(Finding("colours", Level.OK, f"256 colours ({facts.term})"))
    else:
        findings.append(
            Finding(
                "colours",
                Level.WARNING,
                f"TERM={facts.term} promises 16 colours: the TUI looks flat",
                "if your terminal does more: export TERM=xterm-256color (or COLORTERM=truecolor)",
            )
        )
    size = f"{facts.columns}x{facts.lines}"
    if not facts.columns or not facts.lines:
        findings.append(Finding("size", Level.OK, "not reported by the terminal"))
    elif facts.columns < MIN_COLUMNS or facts.lines < MIN_LINES:
        findings.append(
            Finding(
                "size",
                Level.WARNING,
                f"{size}: smaller than {MIN_COLUMNS}x{MIN_LINES}, panes will be cut",
                "make the window bigger (or the font smaller)",
            )
        )
    else:
        findings.append(Finding("size", Level.OK, size))
    if facts.in_tmux:
        findings.append(
            Finding(
                "clipboard",
                Level.WARNING,
                "inside tmux, copying (OSC 52) reaches your clipboard only if tmux passes it on",
                "add to ~/.tmux.conf: set -g set-clipboard on",
            )
        )
    elif facts.in_screen:
        findings.append(
            Finding(
                "clipboard",
                Level.WARNING,
                "GNU screen does not pass OSC 52 on: copying stays inside screen",
                "run treechat outside screen (or in tmux with set-clipboard on) to copy",
            )
        )
    else:
        findings.append(
            Finding("clipboard", Level.OK, "copying uses OSC 52, which most terminals accept")
        )
    return findings
