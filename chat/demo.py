"""`treechat demo` without the screen: a node for you plus three bot nodes on 127.0.0.1.

The bots are ordinary Nodes in throwaway data dirs. They dial each other and your node
directly (no zeroconf, nothing leaves loopback), so every bot feed reaches you over
several links: one becomes the eager tree edge, the others stay lazy, which is what the
replication pane is there to show. Then they post a short scripted conversation, one
pass, bounded in lines and time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from pathlib import Path

from chat.config import Config, HostPort
from chat.content import DEFAULT_CHANNEL
from chat.identity import Identity, ensure_data_dir, save_identity, secret_path
from chat.node import Node, NodeOptions

log = logging.getLogger(__name__)

BOT_NAMES = ("alice", "bob", "carol")
YOU = "you"
MAX_SCRIPT_SECONDS = 300.0
"""The script stops after this long whatever its delays say."""


@dataclass(frozen=True, slots=True)
class Line:
    """One scripted post: who says what where, after how many seconds, replying to which line."""

    who: str
    text: str
    delay: float = 2.0
    channel: str = DEFAULT_CHANNEL
    reply_to: int | None = None  # index of an earlier line in the script
    private: bool = False  # a private message to you instead of a post


SCRIPT: tuple[Line, ...] = (
    Line("alice", "morning! the pub was down overnight, anyone missing messages?", 0.5),
    Line("bob", "I was offline too. catching up now, the replication pane says 3 feeds", 2.0),
    Line(
        "carol",
        "I see alice eagerly and bob lazily; the tree picked the faster link",
        2.5,
        reply_to=1,
    ),
    Line(
        "alice", "that's EBT: one eager source per feed, notes from everyone else", 2.0, reply_to=2
    ),
    Line("bob", "press Esc, pick a message and Enter: it tells you who delivered it", 3.0),
    Line("carol", "posting a few links in #random so they don't drown the chat", 2.0),
    Line(
        "carol",
        "https://www.scuttlebutt.nz/ - the protocol this borrows from",
        1.0,
        channel="random",
    ),
    Line(
        "carol",
        "Plumtree paper: 'Epidemic Broadcast Trees' (Leitão, Pereira, Rodrigues)",
        1.0,
        channel="random",
    ),
    Line("alice", "Ctrl+N jumps to the next channel with unread messages, btw", 2.5),
    Line("bob", "and F3 hides the replication pane if the terminal is narrow", 2.0, reply_to=8),
    Line("alice", "welcome, you! try /nick to tell us your name", 2.5),
    Line(
        "carol", "or /help for every command; Tab completes names and #channels", 2.0, reply_to=10
    ),
    Line("bob", "I'll stay connected; the pane shows msgs/s and how far behind each link is", 3.0),
    Line(
        "carol", "psst: this one is private, sealed to you alone (see ✉ carol)", 2.0, private=True
    ),
    Line("alice", "brb, making tea", 4.0),
)


def _config(path: Path) -> Config:
    return Config(
        data_dir=path, listen=HostPort("127.0.0.1", 0), discovery=False, interfaces=("127.0.0.1",)
    )


def _identity(path: Path, seed: bytes | None) -> None:
    """Give a data dir a fixed identity (seeded demo keys look the same in every run)."""
    ensure_data_dir(path)
    if seed is not None and not secret_path(path).exists():
        save_identity(Identity.from_seed(seed.ljust(32, b"-")[:32]), secret_path(path))


@dataclass
class DemoNetwork:
    """Your node and the bots, all listening on 127.0.0.1 and linked in a full mesh."""

    you: Node
    bots: dict[str, Node]
    posted: list[bytes] = field(default_factory=list)

    @classmethod
    async def start(
        cls, root: Path, *, fixed_keys: bool = True, options: NodeOptions | None = None
    ) -> DemoNetwork:
        """Open and start every node under `root`, name the bots and link everybody."""
        bot_options = options or NodeOptions(replicate_all=True, write_status=False)
        nodes: list[Node] = []
        try:
            _identity(root / YOU, b"treechat demo you" if fixed_keys else None)
            you = await Node.open(_config(root / YOU), options or NodeOptions(replicate_all=True))
            nodes.append(you)
            bots: dict[str, Node] = {}
            for name in BOT_NAMES:
                _identity(root / name, f"treechat demo {name}".encode() if fixed_keys else None)
                bots[name] = await Node.open(_config(root / name), bot_options)
                nodes.append(bots[name])
            for node in nodes:
                await node.start()
            await you.set_name(YOU)
            for name, bot in bots.items():
                await bot.set_name(name)
                await you.follow(bot.feed_id)
            network = cls(you, bots)
            await network._async_link()
            return network
        except BaseException:
            for node in nodes:
                with contextlib.suppress(Exception):
                    await node.stop()
            raise

    async def _async_link(self) -> None:
        bots = list(self.bots.values())
        for index, bot in enumerate(bots):
            for other in [self.you, *bots[:index]]:
                assert other.address is not None
                await bot.connect(other.address)

    async def async_run_script(self, script: tuple[Line, ...] = SCRIPT, speed: float = 1.0) -> int:
        """Post the script once (delays divided by `speed`); returns the lines posted."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + MAX_SCRIPT_SECONDS
        for line in script:
            delay = line.delay / max(speed, 0.001)
            if loop.time() + delay > deadline:
                break
            await asyncio.sleep(delay)
            reply = (
                self.posted[line.reply_to]
                if line.reply_to is not None and line.reply_to < len(self.posted)
                else None
            )
            bot = self.bots[line.who]
            if line.private:
                await bot.send_private([self.you.feed_id], line.text)
                self.posted.append(b"")  # keeps reply_to indexes aligned
                continue
            entry = await bot.post(line.text, line.channel, reply_to=reply)
            self.posted.append(entry.msg_id)
        return len(self.posted)

    async def stop(self) -> None:
        for node in [*self.bots.values(), self.you]:
            try:
                await node.stop()
            except Exception:
                log.exception("stopping a demo node failed")
