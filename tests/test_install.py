"""The tool install: sdist and wheel build cleanly, and the wheel alone runs treechat.

The wheel is installed into a fresh virtual environment, not editable, run from a
directory outside the checkout. Its dependencies are not downloaded (tests run in a
network namespace with loopback only): the fresh environment sees exactly the
distributions treechat's metadata requires, taken from the test's own environment, so
a dependency missing from pyproject.toml fails here as it would for a user.
"""

from __future__ import annotations

import email
import json
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from chat import __version__
from chat.cli import main
from net import PROTOCOL_VERSION
from tests.sealed_site import sealed

REPO = Path(__file__).resolve().parent.parent
PACKAGE_FILES = ["pyproject.toml", "README.md", "LICENSE", "chat", "ui", "net", "store"]


def run(
    *command: str | Path, cwd: Path, env: dict[str, str] | None = None, ok: tuple[int, ...] = (0,)
) -> subprocess.CompletedProcess[str]:
    """Run ``command``, failing the test (with its output) on an exit status not in ``ok``."""
    result = subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode in ok, f"{command} failed:\n{result.stdout}{result.stderr}"
    return result


def wheel_requirements(wheel: Path) -> list[str]:
    """The Requires-Dist lines of a wheel's own metadata."""
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        text = archive.read(name).decode("utf-8")
    return email.message_from_string(text).get_all("Requires-Dist") or []


def dependency_closure(requires: list[str]) -> list[metadata.Distribution]:
    """The installed distributions that ``requires`` needs, directly or not (markers and
    extras evaluated)."""
    found: dict[str, metadata.Distribution] = {}
    seen: set[tuple[str, str]] = set()
    todo: list[tuple[str | None, str]] = [(None, "")]
    while todo:
        project, extra = todo.pop()
        lines = requires if project is None else metadata.distribution(project).requires
        for line in lines or []:
            requirement = Requirement(line)
            if requirement.marker is not None and not requirement.marker.evaluate({"extra": extra}):
                continue
            key = requirement.name.lower().replace("_", "-")
            found.setdefault(key, metadata.distribution(requirement.name))
            for wanted in ["", *requirement.extras]:
                if (key, wanted) not in seen:
                    seen.add((key, wanted))
                    todo.append((requirement.name, wanted))
    return list(found.values())


def link_distributions(dists: list[metadata.Distribution], target: Path) -> None:
    """Symlink each distribution's top-level files and its metadata into ``target``."""
    target.mkdir()
    for dist in dists:
        root = Path(str(dist.locate_file("")))
        tops = {Path(str(f)).parts[0] for f in dist.files or [] if not str(f).startswith("..")}
        for top in tops:
            source = root / top
            if source.exists() and not (target / top).exists():
                (target / top).symlink_to(source)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """(dist dir, build output) of ``python -m build`` on a copy of the package files."""
    work = tmp_path_factory.mktemp("build")
    source = work / "src"
    source.mkdir()
    for name in PACKAGE_FILES:
        path = REPO / name
        if path.is_dir():
            shutil.copytree(path, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(path, source / name)
    dist = work / "dist"
    # --no-isolation: the build uses this environment's setuptools (dev extra), no download.
    built = run(sys.executable, "-m", "build", "--no-isolation", "-o", dist, source, cwd=work)
    yield dist, built.stdout + built.stderr


def test_sdist_and_wheel_build_without_warnings(built: tuple[Path, str]) -> None:
    dist, output = built
    names = sorted(p.name for p in dist.iterdir())
    assert names == [f"treechat-{__version__}-py3-none-any.whl", f"treechat-{__version__}.tar.gz"]
    lowered = output.lower()
    assert "deprecat" not in lowered, output
    assert "setuptoolswarning" not in lowered, output


def test_metadata_passes_twine_check(built: tuple[Path, str]) -> None:
    dist, _ = built
    files = sorted(dist.iterdir())
    output = run(sys.executable, "-m", "twine", "check", "--strict", *files, cwd=dist).stdout
    assert output.count("PASSED") == 2, output
    wheel_metadata = run(sys.executable, "-m", "zipfile", "-l", files[0], cwd=dist).stdout
    assert "licenses/LICENSE" in wheel_metadata


def test_the_wheel_alone_runs_treechat(built: tuple[Path, str], tmp_path: Path) -> None:
    dist, _ = built
    (wheel,) = dist.glob("*.whl")
    fresh = tmp_path / "fresh"
    run(sys.executable, "-m", "venv", "--without-pip", fresh, cwd=tmp_path)
    python = fresh / "bin" / "python"
    purelib = "import sysconfig; print(sysconfig.get_path('purelib'))"
    site = run(python, "-c", purelib, cwd=tmp_path).stdout
    deps = tmp_path / "deps"
    link_distributions(dependency_closure(wheel_requirements(wheel)), deps)
    (Path(site.strip()) / "treechat-deps.pth").write_text(f"{deps}\n")
    # No index, no download: pip must find every requirement already satisfied.
    run(
        sys.executable, "-m", "pip", "--python", python, "install", "--no-index", wheel,
        cwd=tmp_path,
    )  # fmt: skip
    home = tmp_path / "home"
    home.mkdir()
    env = sealed.child_env()
    env.update(HOME=str(home), XDG_DATA_HOME=str(home / "data"))
    env.pop("VIRTUAL_ENV", None)
    treechat = fresh / "bin" / "treechat"

    where = run(
        python, "-c", "import chat, ui; print(chat.__file__, ui.__file__)", cwd=home, env=env
    ).stdout
    assert str(REPO) not in where and where.count(str(fresh)) == 2, where

    version = run(treechat, "--version", cwd=home, env=env).stdout
    assert version.startswith(f"treechat {__version__} (protocol {PROTOCOL_VERSION}, Python 3.")

    feed = run(treechat, "id", cwd=home, env=env).stdout.strip()
    assert feed.startswith("@") and feed.endswith(".ed25519")
    data_dir = home / "data" / "treechat"
    assert (data_dir / "secret").is_file()

    (data_dir / "config.toml").write_text('listen = "127.0.0.1:0"\ninterfaces = ["127.0.0.1"]\n')
    report = json.loads(run(treechat, "doctor", "--json", cwd=home, env=env, ok=(0, 1)).stdout)
    checks = {check["check"]: check for check in report["checks"]}
    assert checks["secret"]["level"] == "ok"
    assert checks["database"]["summary"].endswith("does not exist yet")
    assert report["status"] in ("ok", "warning")


def test_version_names_the_release_and_the_protocol(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["--version"])
    assert stopped.value.code == 0
    assert capsys.readouterr().out == (
        f"treechat {__version__} (protocol {PROTOCOL_VERSION}, "
        f"Python {sys.version_info.major}.{sys.version_info.minor}.{sys.version_info.micro})\n"
    )
