"""Print the TUI's time to first paint and memory with 100,000 messages, and a 1,000-message burst.

Run: `python benchmarks/bench_ui.py [--messages N] [--burst N]`. The database is filled
by a child process (so its memory does not count), then this process opens a real Node
on it, runs the app headless at 120x40 and measures:

- first paint: from before `Node.open` to the first frame that draws the newest post
  (target: < 1.5 s), with the CPU this process spent meanwhile (the wall time depends on
  what else the machine runs), on the first open of the filled database (its private
  messages not opened yet) and when reopened; then when every pane is drawn;
- RSS after first paint and peak RSS of this process (target: < 250 MB);
- burst: 1,000 posts from a connected peer over loopback, from the first post to the
  last one on screen (end to end), and the UI's own share (fetch, wrap, paint) when the
  same burst is redrawn in one go;
- search (target < 50 ms): `Node.search` over the FTS5 index of all posts plus the
  private messages sealed to the reader (1 in 50 messages is one), for a word in every
  message (the newest 50 of 100,000 matches), a rare word, a two-word prefix query and
  a word that is nowhere; best and worst of 20 runs each, settled (no traffic).
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
IMPORTS_STARTED = time.perf_counter()

from textual.pilot import Pilot  # noqa: E402
from textual.strip import Strip  # noqa: E402

from chat.config import Config, HostPort  # noqa: E402
from chat.content import about, post, seal_private  # noqa: E402
from chat.identity import Identity, ensure_data_dir, save_identity, secret_path  # noqa: E402
from chat.node import Node, NodeOptions  # noqa: E402
from store.db import Store  # noqa: E402
from store.message import create_message  # noqa: E402
from ui.app import TreechatApp, build_app  # noqa: E402
from ui.widgets.conversation import Conversation  # noqa: E402

IMPORT_SECONDS = time.perf_counter() - IMPORTS_STARTED
AUTHORS = 20
BATCH = 2000
PRIVATE_EVERY = 50
"""One message in this many is a private message to the reader (searched too)."""
SEARCH_RUNS = 20
READER_SEED = b"bench ui reader".ljust(32, b".")


def config_for(path: Path) -> Config:
    return Config(
        data_dir=path, listen=HostPort("127.0.0.1", 0), discovery=False, interfaces=("127.0.0.1",)
    )


async def fill(path: Path, messages: int) -> None:
    """Write `messages` posts by AUTHORS feeds into the node database at `path`."""
    ensure_data_dir(path)
    if not secret_path(path).exists():
        save_identity(Identity.from_seed(READER_SEED), secret_path(path))
    reader = Identity.from_seed(READER_SEED).feed_id
    authors = [
        Identity.from_seed(f"bench author {i}".encode().ljust(32, b".")) for i in range(AUTHORS)
    ]
    heads: list[bytes | None] = [None] * AUTHORS
    seqs = [0] * AUTHORS
    start = int(time.time() * 1000) - messages * 1000
    async with await Store.open(path / "treechat.db") as store:
        pending: list[bytes] = []
        for i in range(AUTHORS):
            seqs[i] += 1
            msg = create_message(authors[i].signing_key, 1, None, start, about(f"author{i}"))
            heads[i] = msg.id
            pending.append(msg.raw)
        for n in range(messages):
            i = n % AUTHORS
            seqs[i] += 1
            text = f"message {n} from author{i}: lorem ipsum dolor sit amet"
            content: dict[str, object] | bytes = post(text, "general")
            if n % PRIVATE_EVERY == 0:
                content = seal_private(
                    post(f"private {n}: lorem", "private"), [reader], authors[i].feed_id
                )
            msg = create_message(
                authors[i].signing_key, seqs[i], heads[i], start + n * 1000, content
            )
            heads[i] = msg.id
            pending.append(msg.raw)
            if len(pending) >= BATCH:
                await store.add_received(pending)
                pending = []
        if pending:
            await store.add_received(pending)


def rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * resource.getpagesize() / 2**20


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class PaintWatch:
    """Notes when the conversation first draws a line of its newest post: the frame the
    user sees (the compositor asks a widget for its lines only to paint them)."""

    def __init__(self) -> None:
        self.painted: float | None = None
        self.cpu: float | None = None
        original = Conversation.render_line

        def render_line(widget: Conversation, y: int) -> Strip:
            strip = original(widget, y)
            index = widget.scroll_offset.y + y
            if (
                self.painted is None
                and widget.entries
                and index < len(widget._lines)
                and widget._lines[index].entry == len(widget.entries) - 1
            ):
                self.painted, self.cpu = time.perf_counter(), time.process_time()
            return strip

        Conversation.render_line = render_line  # type: ignore[method-assign, assignment]
        self._original = original

    def close(self) -> None:
        Conversation.render_line = self._original  # type: ignore[method-assign]


@asynccontextmanager
async def painted_app(
    path: Path, label: str
) -> AsyncIterator[tuple[Node, TreechatApp, Pilot[None]]]:
    """Open the node and the app; print the time until the newest posts are painted."""
    watch = PaintWatch()
    started, cpu = time.perf_counter(), time.process_time()
    node = await Node.open(config_for(path), NodeOptions(write_status=False))
    app = build_app(node)
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            while watch.painted is None or watch.cpu is None:
                await pilot.pause(0.01)
            painted, painted_cpu = watch.painted - started, watch.cpu - cpu
            await pilot.pause()  # the channel and conversation lists, drawn after
            idle = time.perf_counter() - started
            print(
                f"first paint ({label}): {painted:.2f} s (target < 1.5 s), {painted_cpu:.2f} s "
                f"of CPU; {painted + IMPORT_SECONDS:.2f} s counting Python imports; every "
                f"pane drawn after {idle:.2f} s"
            )
            watch.close()
            yield node, app, pilot
    finally:
        watch.close()
        await node.stop()


async def measure_first_paint(path: Path, label: str) -> None:
    async with painted_app(path, label):
        pass


async def measure_search(node: Node) -> None:
    """Print best and worst `Node.search` times for a few kinds of query."""
    queries = {
        "a word in every message": "lorem",
        "a rare word": "message 77777",
        "a prefix in private messages": "private 4",
        "a word found nowhere": "zebra",
    }
    for label, words in queries.items():
        times = []
        hits = 0
        for _ in range(SEARCH_RUNS):
            t0 = time.perf_counter()
            hits = len(await node.search(words))
            times.append((time.perf_counter() - t0) * 1000)
        print(
            f"search {label} ({words!r}, {hits} shown): best {min(times):.1f} ms, "
            f"worst {max(times):.1f} ms over {SEARCH_RUNS} runs (target < 50 ms)"
        )


async def measure(path: Path, burst: int) -> None:
    await measure_first_paint(path, "first open of the database after filling it")
    async with painted_app(path, "reopened") as (node, app, pilot):
        print(
            f"RSS after first paint: {rss_mb():.0f} MB; peak RSS: {peak_rss_mb():.0f} MB "
            "(target < 250 MB)"
        )
        print(f"entries loaded in the window: {len(app.main.conversation.entries)}")
        await measure_search(node)

        # End to end: a peer posts `burst` messages; time until the last is on screen.
        await node.start()
        peer_dir = path.parent / "peer"
        ensure_data_dir(peer_dir)
        save_identity(Identity.from_seed(b"bench ui peer".ljust(32, b".")), secret_path(peer_dir))
        peer = await Node.open(config_for(peer_dir), NodeOptions(write_status=False))
        await peer.start()
        try:
            await node.follow(peer.feed_id)
            assert peer.address is not None
            await node.connect(peer.address)
            before_burst = int(time.time() * 1000)
            t0 = time.perf_counter()
            for i in range(burst):
                await peer.post(f"burst {i}", "general")
            posted = time.perf_counter() - t0
            last = f"burst {burst - 1}"
            deadline = time.monotonic() + 60
            while not any(e.text == last for e in app.main.conversation.entries[-5:]):
                if time.monotonic() > deadline:
                    stored = await node.timeline("general", None, 3)
                    print(
                        "timed out; newest stored:",
                        [e.text for e in stored],
                        "shown:",
                        [e.text for e in app.main.conversation.entries[-3:]],
                        "peers:",
                        node.peers(),
                    )
                    raise SystemExit("the burst never reached the screen")
                await pilot.pause(0.02)
            await pilot.pause()
            total = time.perf_counter() - t0
            print(
                f"burst of {burst} from a peer: posted in {posted:.2f} s, all on screen after "
                f"{total:.2f} s (end to end, over loopback)"
            )
        finally:
            await peer.stop()

        # The UI's share: show the window just before the burst, then take it all in.
        conversation = app.main.conversation
        await conversation.show_channel("general", before=before_burst)
        await pilot.pause()
        t1 = time.perf_counter()
        fresh = await conversation.load_new()
        conversation.scroll_end(animate=False, immediate=True)
        await pilot.pause()
        print(
            f"UI redraw of {len(fresh)} new messages at once (fetch, wrap, paint): "
            f"{(time.perf_counter() - t1) * 1000:.0f} ms"
        )
        print(f"RSS at the end: {rss_mb():.0f} MB; peak RSS: {peak_rss_mb():.0f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--burst", type=int, default=1_000)
    parser.add_argument(
        "--db", type=Path, default=None, help="a data dir filled by an earlier --fill-only run"
    )
    parser.add_argument("--fill-only", type=Path, default=None, help="fill this data dir, exit")
    args = parser.parse_args()
    if args.fill_only is not None:
        asyncio.run(fill(args.fill_only, args.messages))
        return
    if args.db is not None:
        with tempfile.TemporaryDirectory(prefix="treechat-bench-ui-") as root:
            work = Path(root) / "reader"
            shutil.copytree(args.db, work)
            asyncio.run(measure(work, args.burst))
        return
    with tempfile.TemporaryDirectory(prefix="treechat-bench-ui-") as root:
        path = Path(root) / "reader"
        t0 = time.perf_counter()
        subprocess.run(
            [sys.executable, __file__, "--fill-only", str(path), "--messages", str(args.messages)],
            check=True,
        )
        print(
            f"filled {args.messages:,} messages by {AUTHORS} authors in "
            f"{time.perf_counter() - t0:.1f} s (child process)"
        )
        asyncio.run(measure(path, args.burst))


if __name__ == "__main__":
    main()
