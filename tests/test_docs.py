"""docs/architecture.md is the module map: every module it names exists, and every module
of the four packages is named in it."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("store", "net", "chat", "ui")
NAMED = re.compile(r"`((?:store|net|chat|ui)/[\w/]+\.py)`")


def map_text() -> str:
    return (REPO / "docs" / "architecture.md").read_text(encoding="utf-8")


def package_modules() -> set[str]:
    found = set()
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            if path.name not in ("__init__.py", "__main__.py"):
                found.add(path.relative_to(REPO).as_posix())
    return found


def test_every_module_named_in_the_map_exists() -> None:
    named = set(NAMED.findall(map_text()))
    assert named, "the map names no module"
    missing = sorted(name for name in named if not (REPO / name).is_file())
    assert not missing, f"docs/architecture.md names modules that do not exist: {missing}"


def test_every_package_module_is_named_in_the_map() -> None:
    named = set(NAMED.findall(map_text()))
    unnamed = sorted(package_modules() - named)
    assert not unnamed, f"modules missing from docs/architecture.md: {unnamed}"


def test_docs_and_code_cite_nothing_outside_the_repository() -> None:
    for folder in ("docs", *PACKAGES):
        for path in (REPO / folder).rglob("*"):
            if path.suffix in (".py", ".md") and path.is_file():
                text = path.read_text(encoding="utf-8")
                assert "design.md" not in text, f"{path.relative_to(REPO)} cites design.md"
