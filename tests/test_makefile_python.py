"""The Makefile's choice of interpreter, with stand-in interpreters on PATH."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
MAKE = shutil.which("make")

pytestmark = pytest.mark.skipif(MAKE is None, reason="make is not installed")

STAND_IN = """#!/bin/sh
# A stand-in for Python {version}: answers the version question, records what it was
# asked to do, and makes a venv whose python only records too.
if [ "$1" = "-c" ]; then echo {version}; exit 0; fi
echo "$0 $*" >> {log}
if [ "$1" = "-m" ] && [ "$2" = "venv" ]; then
  /bin/mkdir -p "$3/bin"
  printf '#!/bin/sh\\necho "venv python $*" >> {log}\\n' > "$3/bin/python"
  /bin/chmod +x "$3/bin/python"
fi
"""

BROKEN = "#!/bin/sh\necho 'pyenv: {name}: command not found' >&2\nexit 127\n"


def make_venv(
    tmp_path: Path, interpreters: dict[str, str | None], *make_args: str
) -> tuple[int, str, str]:
    """Run the Makefile's venv step with only ``interpreters`` on PATH (name -> version,
    None for one that does not run); returns (status, stderr, what was run)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "ran.log"
    log.touch()
    for name, version in interpreters.items():
        text = (
            BROKEN.format(name=name)
            if version is None
            else STAND_IN.format(version=version, log=log)
        )
        script = bin_dir / name
        script.write_text(text)
        script.chmod(0o755)
    venv = tmp_path / "venv"
    assert MAKE is not None
    result = subprocess.run(
        [MAKE, "-s", "-C", str(REPO), f"VENV={venv}", *make_args, f"{venv}/bin/python"],
        env={"PATH": str(bin_dir), "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    return result.returncode, result.stderr, log.read_text()


def test_newest_suitable_python_is_chosen(tmp_path: Path) -> None:
    status, stderr, ran = make_venv(
        tmp_path, {"python3.11": "3.11", "python3.12": "3.12", "python3": "3.11"}
    )
    assert status == 0, stderr
    assert "python3.12 -m venv" in ran
    assert "python3.11 -m venv" not in ran
    assert "venv python -m pip install" in ran


def test_a_shim_that_does_not_run_is_skipped(tmp_path: Path) -> None:
    status, stderr, ran = make_venv(tmp_path, {"python3.13": None, "python3.11": "3.11"})
    assert status == 0, stderr
    assert "python3.11 -m venv" in ran


def test_plain_python3_is_used_when_new_enough(tmp_path: Path) -> None:
    status, stderr, ran = make_venv(tmp_path, {"python3": "3.13"})
    assert status == 0, stderr
    assert "python3 -m venv" in ran


def test_python_3_10_is_refused_in_words(tmp_path: Path) -> None:
    status, stderr, ran = make_venv(tmp_path, {"python3.10": "3.10", "python3": "3.10"})
    assert status != 0
    assert "treechat needs Python 3.11 or newer" in stderr
    assert "python3 is Python 3.10" in stderr
    assert "-m venv" not in ran


def test_no_python_at_all_is_said_in_words(tmp_path: Path) -> None:
    status, stderr, _ = make_venv(tmp_path, {})
    assert status != 0
    assert "none was found on PATH" in stderr
    assert "Looked for: python3.13 python3.12 python3.11 python3." in stderr


def test_a_named_python_is_checked_too(tmp_path: Path) -> None:
    interpreters: dict[str, str | None] = {"python3.10": "3.10", "python3.12": "3.12"}
    status, stderr, ran = make_venv(tmp_path, interpreters, "PYTHON=python3.10")
    assert status != 0
    assert "PYTHON=python3.10 is not one" in stderr
    assert "-m venv" not in ran
