"""`treechat demo`: the TUI on a throwaway node, with three scripted bot peers on 127.0.0.1."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import tempfile
from pathlib import Path

from chat.config import Config
from chat.demo import DemoNetwork
from ui.app import build_app
from ui.notify import Notifier


def run(args: argparse.Namespace, config: Config) -> int:
    """Start the demo network in a temporary directory, run the TUI, clean everything up."""
    return asyncio.run(async_run_demo(screenshot_dir=Path.cwd(), notify=config.notify))


async def async_run_demo(screenshot_dir: Path, notify: bool = True) -> int:
    with tempfile.TemporaryDirectory(prefix="treechat-demo-") as root:
        network = await DemoNetwork.start(Path(root))
        script = asyncio.create_task(network.async_run_script())
        try:
            app = build_app(
                network.you, screenshot_dir=screenshot_dir, notifier=Notifier(enabled=notify)
            )
            await app.run_async()
        finally:
            script.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await script
            await network.stop()
    return 0
