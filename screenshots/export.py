"""Regenerate the README screenshots: the demo network, headless, saved as SVG with Pilot.

`make screenshots` runs this. Everything happens on 127.0.0.1 in a temporary directory;
the bot keys are fixed, so only the clock differs between runs.

Writes into this folder, at 160x45: main.svg (every pane), provenance.svg (a message's
delivery path), dm.svg (a private conversation), search.svg (search results), help.svg;
at 80x24: narrow.svg, narrow-dm.svg, narrow-search.svg and narrow-replication.svg (F3
and ?: the replication pane with its legend in the sidebar's place).
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from chat.demo import SCRIPT, DemoNetwork  # noqa: E402
from ui.app import TreechatApp, build_app  # noqa: E402
from ui.commands import Query  # noqa: E402
from ui.screens.search import SearchScreen  # noqa: E402

SCRIPT_SPEED = 25.0  # the demo script, 25 times faster


async def _settle(app: TreechatApp, pilot: object, network: DemoNetwork) -> None:
    from textual.pilot import Pilot

    assert isinstance(pilot, Pilot)
    app.main.input.cursor_blink = False
    wanted = {
        msg_id
        for msg_id, line in zip(network.posted, SCRIPT, strict=False)
        if line.channel == "general" and not line.private
    }
    for _ in range(200):
        if wanted <= {e.msg_id for e in app.main.conversation.entries}:
            break
        await pilot.pause(0.05)
    await pilot.pause(1.2)  # let the network figures refresh once


async def _dm(app: TreechatApp, pilot: object, name: str) -> Path:
    """The private conversation with carol (the demo's DM)."""
    from textual.pilot import Pilot

    assert isinstance(pilot, Pilot)
    await app.main.run_command(Query(("carol",)))
    await pilot.pause(0.5)
    return Path(app.save_screenshot(name, str(HERE)))


async def _search(app: TreechatApp, pilot: object, name: str) -> Path:
    """Ctrl+F with a word from the demo script; then Esc and back to #general."""
    from textual.pilot import Pilot

    assert isinstance(pilot, Pilot)
    await pilot.press("ctrl+f", *"replication")
    screen = app.screen
    for _ in range(100):
        if isinstance(screen, SearchScreen) and screen.searched == "replication":
            break
        await pilot.pause(0.05)
    await pilot.pause(0.3)
    path = Path(app.save_screenshot(name, str(HERE)))
    await pilot.press("escape")
    await app.main.switch_channel("general")
    await pilot.pause(0.3)
    return path


async def export() -> list[Path]:
    written: list[Path] = []
    with tempfile.TemporaryDirectory(prefix="treechat-shots-") as root:
        network = await DemoNetwork.start(Path(root))
        try:
            await network.async_run_script(speed=SCRIPT_SPEED)

            for size, prefix in (((160, 45), ""), ((80, 24), "narrow-")):
                app = build_app(network.you, screenshot_dir=HERE)
                async with app.run_test(size=size) as pilot:
                    await _settle(app, pilot, network)
                    main = "main.svg" if size == (160, 45) else "narrow.svg"
                    written.append(Path(app.save_screenshot(main, str(HERE))))
                    if size == (160, 45):
                        await pilot.press("escape", "up", "up", "enter")
                        await pilot.pause(0.3)
                        written.append(Path(app.save_screenshot("provenance.svg", str(HERE))))
                        await pilot.press("escape")
                    written.append(await _dm(app, pilot, f"{prefix}dm.svg"))
                    written.append(await _search(app, pilot, f"{prefix}search.svg"))
                    if size == (80, 24):
                        await pilot.press("f3", "question_mark")
                        await pilot.pause(1.2)  # the network figures, drawn once
                        written.append(
                            Path(app.save_screenshot("narrow-replication.svg", str(HERE)))
                        )
                    if size == (160, 45):
                        await pilot.press("f1")
                        await pilot.pause(0.3)
                        written.append(Path(app.save_screenshot("help.svg", str(HERE))))
        finally:
            await network.stop()
    return written


def main() -> None:
    for path in asyncio.run(export()):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
