"""Regenerate the README screenshots: the demo network, headless, saved as SVG with Pilot.

`make screenshots` runs this. Everything happens on 127.0.0.1 in a temporary directory;
the bot keys are fixed, so only the clock differs between runs.

Writes into this folder: main.svg (120x36, every pane), provenance.svg (a message's
delivery path and a feed's tree), narrow.svg (80x24), help.svg.
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


async def export() -> list[Path]:
    written: list[Path] = []
    with tempfile.TemporaryDirectory(prefix="treechat-shots-") as root:
        network = await DemoNetwork.start(Path(root))
        try:
            await network.async_run_script(speed=SCRIPT_SPEED)

            app = build_app(network.you, screenshot_dir=HERE)
            async with app.run_test(size=(120, 36)) as pilot:
                await _settle(app, pilot, network)
                written.append(Path(app.save_screenshot("main.svg", str(HERE))))
                await pilot.press("escape", "up", "up", "enter")
                await pilot.pause(0.3)
                written.append(Path(app.save_screenshot("provenance.svg", str(HERE))))
                await pilot.press("f1")
                await pilot.pause(0.3)
                written.append(Path(app.save_screenshot("help.svg", str(HERE))))

            app = build_app(network.you, screenshot_dir=HERE)
            async with app.run_test(size=(80, 24)) as pilot:
                await _settle(app, pilot, network)
                written.append(Path(app.save_screenshot("narrow.svg", str(HERE))))
        finally:
            await network.stop()
    return written


def main() -> None:
    for path in asyncio.run(export()):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
