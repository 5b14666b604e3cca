"""/doctor in the TUI: the running node's own checks in a dialog, its port seen as ours."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import Static

from chat.config import HostPort
from chat.node import Node
from tests.nodes import FAST, make_config
from tests.processes import free_port
from tests.test_ui import status_text, type_line, wait_for
from ui.app import build_app
from ui.screens.doctor import DoctorScreen


async def test_doctor_shows_the_findings_and_knows_our_own_port(tmp_path: Path) -> None:
    port = free_port()
    node = await Node.open(make_config(tmp_path, listen=HostPort("127.0.0.1", port)), FAST)
    try:
        await node.start()
        (tmp_path / "secret").chmod(0o640)  # loosened after start: a problem to report
        app = build_app(node, screenshot_dir=tmp_path)
        async with app.run_test(size=(120, 40)) as pilot:
            await type_line(pilot, "/doctor")
            await wait_for(lambda: isinstance(app.screen, DoctorScreen), pilot, within=30)
            report = str(app.screen.query_one("#doctor-report", Static).render())
            assert f"127.0.0.1:{port} is held by our own running node" in report
            assert "has mode 0640" in report
            assert f"fix: chmod 600 {tmp_path / 'secret'}" in report
            assert "doctor: 1 problem, " in status_text(app)
            await pilot.press("escape")
            assert not isinstance(app.screen, DoctorScreen)
    finally:
        await node.stop()
