"""Suite-wide fixtures: every test runs with its network sealed to loopback (sealed.py)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.sealed_site import sealed


@pytest.fixture(autouse=True)
def sealed_network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[sealed.Guard]:
    """Fail the test if it (or a Python subprocess of it) reached beyond loopback."""
    report = tmp_path_factory.mktemp("sealed") / "refused.txt"
    saved = {key: os.environ.get(key) for key in ("PYTHONPATH", sealed.REPORT_ENV)}
    os.environ[sealed.REPORT_ENV] = str(report)
    os.environ["PYTHONPATH"] = sealed.child_env()["PYTHONPATH"]
    with sealed.installed(str(report)) as guard:
        yield guard
        refused = guard.take()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    os.environ.pop(sealed.NAMESPACES_ENV, None)
    if refused:
        pytest.fail("\n".join(dict.fromkeys(refused)), pytrace=False)
