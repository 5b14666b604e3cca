"""Shell completion for bash, zsh and fish, generated from the CLI's own argument parser.

`treechat completion SHELL` prints a script; nothing here names a command or an option:
every word comes from `chat.cli.build_parser()`, so a command added there completes at
once. An option whose value is a path completes files (directories for ``--data-dir``);
an option with ``choices`` completes them; other values complete nothing.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

SHELLS = ("bash", "zsh", "fish")


@dataclass(frozen=True, slots=True)
class Option:
    """One option of a command as completion needs it."""

    flags: tuple[str, ...]  # "--listen", "-h", ...
    help: str
    takes_value: bool
    value: str  # "dir", "file", "choice" or "" (free text)
    choices: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class CommandShape:
    """A subcommand (or the program itself, name ""): its options and help line."""

    name: str
    help: str
    options: tuple[Option, ...]
    words: tuple[str, ...] = ()  # the choices of its positional arguments (e.g. shells)


def _options(parser: argparse.ArgumentParser) -> tuple[Option, ...]:
    found = []
    for action in parser._actions:
        if not action.option_strings or action.help == argparse.SUPPRESS:
            continue
        takes_value = action.nargs != 0
        choices = tuple(str(c) for c in action.choices or ())
        if choices:
            value = "choice"
        elif action.type is Path:
            value = "dir" if "dir" in action.dest else "file"
        else:
            value = ""
        found.append(
            Option(tuple(action.option_strings), action.help or "", takes_value, value, choices)
        )
    return tuple(found)


def _positional_choices(parser: argparse.ArgumentParser) -> tuple[str, ...]:
    return tuple(
        str(choice)
        for action in parser._actions
        if not action.option_strings and not isinstance(action, argparse._SubParsersAction)
        for choice in action.choices or ()
    )


def command_shapes(parser: argparse.ArgumentParser) -> list[CommandShape]:
    """The program's own options first (name ""), then every subcommand in table order."""
    shapes = [CommandShape("", parser.description or "", _options(parser))]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help or "" for choice in action._choices_actions}
            for name, subparser in action.choices.items():
                shapes.append(
                    CommandShape(
                        name,
                        helps.get(name, ""),
                        _options(subparser),
                        _positional_choices(subparser),
                    )
                )
    return shapes


def completion_script(shell: str, parser: argparse.ArgumentParser) -> str:
    """The completion script for ``shell`` (one of `SHELLS`)."""
    shapes = command_shapes(parser)
    prog = parser.prog
    if shell == "bash":
        return _bash(prog, shapes)
    if shell == "zsh":
        return _zsh(prog, shapes)
    if shell == "fish":
        return _fish(prog, shapes)
    raise ValueError(f"no completion for {shell!r}; choose one of {', '.join(SHELLS)}")


def _function(prog: str) -> str:
    return "_" + "".join(ch if ch.isalnum() else "_" for ch in prog)


# --------------------------------------------------------------------------------- bash


def _bash_values(options: tuple[Option, ...], indent: str) -> list[str]:
    """``case "$prev"`` arms: what follows an option that takes a value."""
    lines = []
    for option in options:
        if not option.takes_value:
            continue
        pattern = "|".join(option.flags)
        reply = {
            "dir": 'COMPREPLY=($(compgen -d -- "$cur"))',
            "file": 'COMPREPLY=($(compgen -f -- "$cur"))',
            "choice": f'COMPREPLY=($(compgen -W "{" ".join(option.choices)}" -- "$cur"))',
        }.get(option.value, "COMPREPLY=()")
        lines.append(f"{indent}{pattern}) {reply}; return ;;")
    return lines


def _bash(prog: str, shapes: list[CommandShape]) -> str:
    top, commands = shapes[0], shapes[1:]
    top_words = [flag for o in top.options for flag in o.flags] + [c.name for c in commands]
    valued = "|".join(flag for o in top.options if o.takes_value for flag in o.flags)
    function = _function(prog)
    lines = [
        f"# bash completion for {prog}; load with: source <({prog} completion bash)",
        f"{function}() {{",
        '    local cur="${COMP_WORDS[COMP_CWORD]}" prev="${COMP_WORDS[COMP_CWORD-1]}"',
        '    local command="" i',
        "    for ((i = 1; i < COMP_CWORD; i++)); do",
        '        case "${COMP_WORDS[i]}" in',
        f"            {valued}) ((i++)) ;;" if valued else "            --) ;;",
        "            -*) ;;",
        '            *) command="${COMP_WORDS[i]}"; break ;;',
        "        esac",
        "    done",
        '    case "$command" in',
        '        "")',
        '            case "$prev" in',
        *_bash_values(top.options, "                "),
        "            esac",
        f'            COMPREPLY=($(compgen -W "{" ".join(top_words)}" -- "$cur")) ;;',
    ]
    for shape in commands:
        words = " ".join([*(flag for o in shape.options for flag in o.flags), *shape.words])
        lines += [
            f"        {shape.name})",
            '            case "$prev" in',
            *_bash_values(shape.options, "                "),
            "            esac",
            f'            COMPREPLY=($(compgen -W "{words}" -- "$cur")) ;;',
        ]
    lines += [
        "    esac",
        "}",
        f"complete -o default -F {function} {prog}",
        "",
    ]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------- zsh


def _single_quoted(text: str) -> str:
    """Text for inside single quotes in a POSIX-like shell."""
    return text.replace("'", "'\\''")


def _zsh_quote(text: str) -> str:
    """Text for inside a single-quoted _arguments spec: brackets and colons escaped."""
    text = _single_quoted(text)
    for ch in "[]:":
        text = text.replace(ch, "\\" + ch)
    return text


def _zsh_specs(options: tuple[Option, ...]) -> list[str]:
    specs = []
    for option in options:
        help_text = _zsh_quote(option.help.split(";")[0])
        if option.takes_value:
            action = {
                "dir": "_files -/",
                "file": "_files",
                "choice": f"({' '.join(option.choices)})",
            }.get(option.value, " ")
            value = f":{option.flags[-1].lstrip('-')}:{action}"
        else:
            value = ""
        for flag in option.flags:
            specs.append(f"'{flag}[{help_text}]{value}'")
    return specs


def _zsh(prog: str, shapes: list[CommandShape]) -> str:
    top, commands = shapes[0], shapes[1:]
    function = _function(prog)
    described = [f"'{c.name}:{_single_quoted(c.help)}'" for c in commands]
    lines = [
        f"#compdef {prog}",
        f"# zsh completion for {prog}; load with: source <({prog} completion zsh)",
        f"{function}() {{",
        "    local curcontext=$curcontext state line",
        "    local -a commands",
        f"    commands=({' '.join(described)})",
        "    _arguments -C \\",
        *(f"        {spec} \\" for spec in _zsh_specs(top.options)),
        "        '1: :->command' \\",
        "        '*:: :->args'",
        "    case $state in",
        f"        command) _describe -t commands '{prog} command' commands ;;",
        "        args)",
        "            case $words[1] in",
    ]
    for shape in commands:
        specs = _zsh_specs(shape.options)
        specs.append(f"'1: :({' '.join(shape.words)})'" if shape.words else "'*: :'")
        lines.append(f"                {shape.name}) _arguments {' '.join(specs)} ;;")
    lines += [
        "            esac ;;",
        "    esac",
        "}",
        f'if [ "$funcstack[1]" = "{function}" ]; then',
        f'    {function} "$@"',
        "else",
        f"    compdef {function} {prog}",
        "fi",
        "",
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------------- fish


def _fish_quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _fish_options(prog: str, condition: str, options: tuple[Option, ...]) -> list[str]:
    lines = []
    for option in options:
        parts = [f"complete -c {prog} -n {_fish_quote(condition)}"]
        for flag in option.flags:
            parts.append(f"-l {flag[2:]}" if flag.startswith("--") else f"-s {flag[1:]}")
        if option.takes_value:
            parts.append("-r")
            if option.value == "dir":
                parts.append("-a '(__fish_complete_directories)'")
            elif option.value == "file":
                parts.append("-F")
            elif option.value == "choice":
                parts.append(f"-a {_fish_quote(' '.join(option.choices))}")
        parts.append(f"-d {_fish_quote(option.help.split(';')[0])}")
        lines.append(" ".join(parts))
    return lines


def _fish(prog: str, shapes: list[CommandShape]) -> str:
    top, commands = shapes[0], shapes[1:]
    lines = [
        f"# fish completion for {prog}; load with: {prog} completion fish | source",
        f"complete -c {prog} -f",
        *_fish_options(prog, "__fish_use_subcommand", top.options),
    ]
    for shape in commands:
        lines.append(
            f"complete -c {prog} -n __fish_use_subcommand -a {shape.name}"
            f" -d {_fish_quote(shape.help)}"
        )
    for shape in commands:
        condition = f"__fish_seen_subcommand_from {shape.name}"
        lines += _fish_options(prog, condition, shape.options)
        if shape.words:
            lines.append(
                f"complete -c {prog} -n {_fish_quote(condition)}"
                f" -a {_fish_quote(' '.join(shape.words))}"
            )
    lines.append("")
    return "\n".join(lines)
