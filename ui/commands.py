"""Slash commands typed in the input line: their table, a parser to frozen records, and completion.

Parsing is pure (no node, no Textual), so every command's grammar is tested on its own;
`ui/screens/main.py` turns the records into node calls. A line that does not start with
`/` is a post in the current channel; `//text` posts `/text` literally (IRC habit).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from enum import Enum

from chat.config import parse_history
from chat.errors import UserError

MAX_PRIVATE_RECIPIENTS = 7  # others; with us that is the 8 a private box allows


class CommandError(ValueError, UserError):
    """A command line that cannot be run; the message is shown to the user as is."""


class ContactAction(Enum):
    """What /follow, /unfollow, /block and /unblock do to a contact."""

    FOLLOW = "follow"
    UNFOLLOW = "unfollow"
    BLOCK = "block"
    UNBLOCK = "unblock"


@dataclass(frozen=True, slots=True)
class Say:
    """Post text in the current channel."""

    text: str


@dataclass(frozen=True, slots=True)
class Join:
    """Redeem a pub invite."""

    invite: str


@dataclass(frozen=True, slots=True)
class Me:
    """Post an action in the current view ('/me waves' shows as '* alice waves')."""

    text: str


@dataclass(frozen=True, slots=True)
class Part:
    """Leave a channel: it leaves the list until something new is posted there."""

    channel: str | None = None


@dataclass(frozen=True, slots=True)
class Whois:
    """Show what we know about someone: key, follow state, which links carry their feed."""

    who: str


@dataclass(frozen=True, slots=True)
class Nick:
    """Publish our display name."""

    name: str


@dataclass(frozen=True, slots=True)
class SwitchChannel:
    """Show (and so create, on first post) a channel."""

    name: str


@dataclass(frozen=True, slots=True)
class PrivateMessage:
    """Send a private message to one or more people (comma separated)."""

    recipients: tuple[str, ...]
    text: str


@dataclass(frozen=True, slots=True)
class Query:
    """Open the private conversation with one or more people (and send a first text)."""

    recipients: tuple[str, ...]
    text: str = ""


@dataclass(frozen=True, slots=True)
class Search:
    """Find posts and private messages containing words."""

    text: str = ""


@dataclass(frozen=True, slots=True)
class Contact:
    """Follow, unfollow, block or unblock someone."""

    action: ContactAction
    who: str


@dataclass(frozen=True, slots=True)
class ShowHistory:
    """Show how much history we keep fetching: the default and the feeds set apart,
    or one person's setting and what we hold of their feed."""

    who: str | None = None


@dataclass(frozen=True, slots=True)
class SetHistory:
    """Keep fetching the newest `keep` messages of someone's feed (None = all of it);
    `default` = follow the config's `history` again."""

    who: str
    keep: int | None
    default: bool = False


@dataclass(frozen=True, slots=True)
class ShowPeers:
    """Show the peers pane and a one-line summary."""


@dataclass(frozen=True, slots=True)
class Connect:
    """Dial a peer at a multiserver address (and follow them, unless --no-follow)."""

    address: str
    follow: bool = True


@dataclass(frozen=True, slots=True)
class WhoAmI:
    """Show our own feed id and addresses, and copy the address."""


@dataclass(frozen=True, slots=True)
class Doctor:
    """Check why chat might not work (the checks of ``treechat doctor``)."""


@dataclass(frozen=True, slots=True)
class Help:
    """Show the commands and keys."""

    topic: str | None = None


@dataclass(frozen=True, slots=True)
class Whisper:
    """A deniable whisper to people nearby: unsigned, never stored (docs/ephemeral.md)."""

    text: str


@dataclass(frozen=True, slots=True)
class Quit:
    """Leave the app."""


Command = (
    Say
    | Me
    | Part
    | Whois
    | Join
    | Nick
    | SwitchChannel
    | PrivateMessage
    | Query
    | Search
    | Contact
    | ShowHistory
    | SetHistory
    | ShowPeers
    | Connect
    | WhoAmI
    | Doctor
    | Help
    | Whisper
    | Quit
)


@dataclass(frozen=True, slots=True)
class CommandSpec:
    """One row of the command table: name, argument summary, help text, aliases."""

    name: str
    args: str
    help: str
    aliases: tuple[str, ...] = ()

    @property
    def usage(self) -> str:
        return f"/{self.name} {self.args}".rstrip()

    @property
    def needs_args(self) -> bool:
        return bool(self.args) and not self.args.startswith("[")


COMMANDS: tuple[CommandSpec, ...] = (
    CommandSpec(
        "join",
        "#CHANNEL | INVITE",
        "switch to a channel, or redeem a pub invite (net:HOST:PORT~shs:KEY:SECRET)",
    ),
    CommandSpec("nick", "NAME", "set the name others see for you", ("name",)),
    CommandSpec("channel", "NAME", "switch to a channel (the first post creates it)", ("ch",)),
    CommandSpec(
        "part", "[#CHANNEL]", "leave a channel (it returns when someone posts)", ("leave",)
    ),
    CommandSpec("me", "TEXT", "post an action: /me waves shows as * you waves"),
    CommandSpec("whois", "NAME", "who someone is: key, follow state, links carrying their feed"),
    CommandSpec("msg", "NAME[,NAME...] TEXT", "send a private message", ("pm",)),
    CommandSpec(
        "query", "NAME[,NAME...] [TEXT]", "open the private conversation with them", ("dm",)
    ),
    CommandSpec("search", "[WORDS]", "find posts and private messages (also Ctrl+F)", ("find",)),
    CommandSpec("follow", "NAME", "replicate and show this person's feed"),
    CommandSpec("unfollow", "NAME", "stop following this person"),
    CommandSpec("block", "NAME", "refuse this person's feed and connections"),
    CommandSpec("unblock", "NAME", "lift a block"),
    CommandSpec(
        "history",
        "[NAME [N|all|default]]",
        "how many of the newest messages of someone's feed to keep fetching",
    ),
    CommandSpec("peers", "", "show the peers pane and who is connected"),
    CommandSpec(
        "connect", "ADDRESS [--no-follow]", "dial a peer (net:HOST:PORT~shs:KEY) and follow them"
    ),
    CommandSpec("whoami", "", "your feed id and address (copied, for others to /connect)"),
    CommandSpec("whisper", "TEXT", "whisper to people nearby: no name, never stored", ("w",)),
    CommandSpec("doctor", "", "check why chat might not work, each finding with its fix"),
    CommandSpec("help", "[COMMAND]", "list commands and keys", ("h", "?")),
    CommandSpec("quit", "", "leave treechat", ("exit", "q")),
)

_BY_NAME: dict[str, CommandSpec] = {}
for _spec in COMMANDS:
    _BY_NAME[_spec.name] = _spec
    for _alias in _spec.aliases:
        _BY_NAME[_alias] = _spec


def find_command(name: str) -> CommandSpec | None:
    """The spec for a command name or alias (without the slash), or None."""
    return _BY_NAME.get(name.lower().lstrip("/"))


def normalize_channel(name: str) -> str:
    """A channel name as stored: no leading '#', lower case; raises CommandError if unusable."""
    cleaned = name.strip().lstrip("#").lower()
    if not cleaned:
        raise CommandError("a channel needs a name, for example: /channel general")
    if len(cleaned) > 32:
        raise CommandError(f"channel names are at most 32 characters; '{cleaned}' is longer")
    if any(ch.isspace() for ch in cleaned):
        raise CommandError(f"channel names cannot contain spaces: '{cleaned}'")
    if cleaned.startswith("@") or cleaned in {"private", "msg", "query", "dm"}:
        raise CommandError(
            f"#{cleaned.lstrip('@')} would be a public channel everyone can read; for private"
            " messages use /query NAME (a conversation) or /msg NAME TEXT"
        )
    return cleaned


def is_invite(text: str) -> bool:
    """True when a /join argument has the shape of an invite (net:HOST:PORT~shs:...), not
    of a channel name (IRC habit: /join #dev)."""
    return not text.startswith("#") and (":" in text or "~" in text)


def parse_line(line: str) -> Command:
    """Turn one input line into a command record; raises CommandError with user words."""
    text = line.strip()
    if not text:
        raise CommandError("nothing to send")
    if text.startswith("//"):
        return Say(text[1:])
    if not text.startswith("/"):
        return Say(text)
    word, _, rest = text[1:].partition(" ")
    rest = rest.strip()
    spec = find_command(word)
    if spec is None:
        close = difflib.get_close_matches(word.lower(), list(_BY_NAME), n=1, cutoff=0.6)
        hint = f" — did you mean /{close[0]}?" if close else "; type /help to see the commands"
        raise CommandError(f"unknown command /{word}{hint}")
    if spec.needs_args and not rest:
        raise CommandError(f"/{spec.name} needs more: {spec.usage}")
    return _build(spec, rest)


def _history(spec: CommandSpec, rest: str) -> ShowHistory | SetHistory:
    words = rest.split()
    if len(words) > 2:
        raise CommandError(f"/history takes a name and a setting: {spec.usage}")
    if len(words) < 2:
        return ShowHistory(words[0] if words else None)
    who, value = words
    if value.lower() == "default":
        return SetHistory(who, None, default=True)
    try:
        return SetHistory(who, parse_history(value))
    except UserError:
        raise CommandError(
            f"/history {who} takes a number of messages (1 or more), all or default; not {value!r}"
        ) from None


def _single(spec: CommandSpec, rest: str) -> str:
    if " " in rest:
        raise CommandError(f"/{spec.name} takes one word: {spec.usage}")
    return rest


def _build(spec: CommandSpec, rest: str) -> Command:
    name = spec.name
    if name == "join":
        target = _single(spec, rest)
        if is_invite(target):
            return Join(target)
        return SwitchChannel(normalize_channel(target))
    if name == "part":
        return Part(normalize_channel(_single(spec, rest)) if rest else None)
    if name == "me":
        return Me(rest)
    if name == "whois":
        return Whois(_single(spec, rest))
    if name == "nick":
        if len(rest) > 32:
            raise CommandError("a name is at most 32 characters")
        return Nick(rest)
    if name == "channel":
        return SwitchChannel(normalize_channel(_single(spec, rest)))
    if name in {"msg", "query"}:
        who, _, body = rest.partition(" ")
        body = body.strip()
        if not body and name == "msg":
            raise CommandError(f"/msg needs someone and a text: {spec.usage}")
        recipients = tuple(r for r in (part.strip() for part in who.split(",")) if r)
        if len(recipients) > MAX_PRIVATE_RECIPIENTS:
            raise CommandError(
                f"a private message reaches at most {MAX_PRIVATE_RECIPIENTS} people "
                f"besides you; this one names {len(recipients)}"
            )
        return PrivateMessage(recipients, body) if name == "msg" else Query(recipients, body)
    if name in {"follow", "unfollow", "block", "unblock"}:
        return Contact(ContactAction(name), _single(spec, rest))
    if name == "search":
        return Search(rest)
    if name == "history":
        return _history(spec, rest)
    if name == "peers":
        return ShowPeers()
    if name == "connect":
        words = rest.split()
        follow = "--no-follow" not in words
        return Connect(_single(spec, " ".join(w for w in words if w != "--no-follow")), follow)
    if name == "whoami":
        return WhoAmI()
    if name == "doctor":
        return Doctor()
    if name == "help":
        return Help(rest.lstrip("/") or None)
    if name == "whisper":
        return Whisper(rest)
    return Quit()


def help_text(topic: str | None = None) -> str:
    """The /help text: every command, or one command's usage."""
    if topic:
        spec = find_command(topic)
        if spec is None:
            raise CommandError(f"no command /{topic}; type /help to see the commands")
        aliases = ", ".join(f"/{a}" for a in spec.aliases)
        extra = f" (also {aliases})" if aliases else ""
        return f"{spec.usage}{extra}\n  {spec.help}"
    width = max(len(spec.usage) for spec in COMMANDS)
    return "\n".join(f"{spec.usage:<{width}}  {spec.help}" for spec in COMMANDS)


def completions(
    line: str, cursor: int, *, names: list[str], channels: list[str]
) -> tuple[int, list[str]]:
    """Candidates for the word before `cursor`: (start of that word, sorted candidates).

    The first word of a line that starts with `/` completes command names; a word starting
    with `#` completes channels (as does the argument of /channel); anything else completes
    people's names (an `@` prefix is kept).
    """
    start = line.rfind(" ", 0, cursor) + 1
    word = line[start:cursor]
    if not word:
        return start, []
    lowered = word.lower()
    if start == 0 and word.startswith("/"):
        pool = [f"/{spec.name}" for spec in COMMANDS]
        return start, sorted(c for c in pool if c.startswith(lowered))
    first = line.split(" ", 1)[0].lower()
    if word.startswith("#") or (start > 0 and first in {"/channel", "/ch", "/part"}):
        bare = lowered.lstrip("#")
        prefix = "#" if word.startswith("#") else ""
        return start, sorted(f"{prefix}{c}" for c in channels if c.lower().startswith(bare))
    prefix = "@" if word.startswith("@") else ""
    bare = lowered.lstrip("@")
    return start, sorted(
        {f"{prefix}{n}" for n in names if n.lower().startswith(bare)}, key=str.lower
    )
