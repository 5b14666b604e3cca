"""Shell completion: scripts made from the CLI's parser, asked for candidates by the shells."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from chat.cli import build_parser, main
from chat.completion import command_shapes, completion_script

COMMANDS = [shape.name for shape in command_shapes(build_parser())[1:]]


def script(shell: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    assert main(["--data-dir", str(tmp_path / "data"), "completion", shell]) == 0
    path = tmp_path / f"treechat.{shell}"
    path.write_text(capsys.readouterr().out)
    return path


def test_the_table_is_the_parsers() -> None:
    assert {"id", "post", "log", "serve", "doctor", "completion", "status"} <= set(COMMANDS)
    text = completion_script("bash", build_parser())
    for name in COMMANDS:
        assert f"        {name})" in text
    with pytest.raises(ValueError, match="choose one of bash, zsh, fish"):
        completion_script("tcsh", build_parser())


def bash_candidates(path: Path, *words: str) -> list[str]:
    """What the completion function offers for the last of ``words``."""
    quoted = " ".join(f"'{w}'" for w in words)
    program = (
        f"source '{path}'; COMP_WORDS=(treechat {quoted}); COMP_CWORD={len(words)};"
        ' _treechat; printf "%s\\n" "${COMPREPLY[@]}"'
    )
    result = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", program],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=path.parent,
    )
    assert result.returncode == 0 and result.stderr == "", result.stderr
    return [line for line in result.stdout.splitlines() if line]


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
def test_bash_completes_commands_options_choices_and_paths(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = script("bash", tmp_path, capsys)
    assert bash_candidates(path, "") == [
        *[flag for o in command_shapes(build_parser())[0].options for flag in o.flags],
        *COMMANDS,
    ]
    assert bash_candidates(path, "doc") == ["doctor"]
    assert bash_candidates(path, "d") == ["doctor", "demo"]
    assert "--json" in bash_candidates(path, "doctor", "--")
    assert bash_candidates(path, "completion", "") == [
        "-h", "--help", "--data-dir", "--config", "bash", "zsh", "fish",
    ]  # fmt: skip
    # A global option's value is skipped when finding the command.
    assert bash_candidates(path, "--data-dir", "somewhere", "st") == ["status"]
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profile.toml").touch()
    assert bash_candidates(path, "--data-dir", "prof") == ["profiles"]
    assert sorted(bash_candidates(path, "log", "--config", "prof")) == [
        "profile.toml",
        "profiles",
    ]
    assert bash_candidates(path, "post", "--channel", "") == []


@pytest.mark.skipif(shutil.which("fish") is None, reason="fish is not installed")
def test_fish_completes_commands_options_and_choices(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = script("fish", tmp_path, capsys)

    def candidates(line: str) -> list[str]:
        result = subprocess.run(
            ["fish", "--no-config", "-c", f"source '{path}'; complete -C '{line}'"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert result.returncode == 0 and result.stderr == "", result.stderr
        return [row.split("\t")[0] for row in result.stdout.splitlines()]

    assert candidates("treechat doc") == ["doctor"]
    assert set(COMMANDS) <= set(candidates("treechat "))
    assert candidates("treechat completion ") == ["bash", "fish", "zsh"]
    assert "--json" in candidates("treechat doctor --")
    assert "--json" not in candidates("treechat id --")


@pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh is not installed")
def test_zsh_script_loads_and_registers(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = script("zsh", tmp_path, capsys)
    program = (
        f"autoload -U compinit; compinit -u -D; source '{path}';"
        " print -r -- $_comps[treechat]; whence -w _treechat"
    )
    result = subprocess.run(
        ["zsh", "-f", "-c", program], capture_output=True, text=True, timeout=30
    )
    assert result.stderr == ""
    assert result.stdout.splitlines() == ["_treechat", "_treechat: function"]
    text = path.read_text()
    for name in COMMANDS:
        assert f"'{name}:" in text and f"                {name}) _arguments" in text
    assert "'1: :(bash zsh fish)'" in text
