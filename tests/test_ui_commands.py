"""The slash-command grammar and completion, without a screen."""

from __future__ import annotations

import pytest

from ui.commands import (
    COMMANDS,
    CommandError,
    Connect,
    Contact,
    ContactAction,
    Help,
    Join,
    Nick,
    PrivateMessage,
    Quit,
    Say,
    SetHistory,
    ShowHistory,
    ShowPeers,
    SwitchChannel,
    WhoAmI,
    completions,
    help_text,
    parse_line,
)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("hello", Say("hello")),
        ("  padded  ", Say("padded")),
        ("//not a command", Say("/not a command")),
        ("/join net:h:1~shs:K:S", Join("net:h:1~shs:K:S")),
        ("/nick Alice", Nick("Alice")),
        ("/channel #Random", SwitchChannel("random")),
        ("/ch dev", SwitchChannel("dev")),
        ("/msg bob hi there", PrivateMessage(("bob",), "hi there")),
        ("/pm bob,carol  hi", PrivateMessage(("bob", "carol"), "hi")),
        ("/follow bob", Contact(ContactAction.FOLLOW, "bob")),
        ("/unfollow bob", Contact(ContactAction.UNFOLLOW, "bob")),
        ("/block bob", Contact(ContactAction.BLOCK, "bob")),
        ("/unblock bob", Contact(ContactAction.UNBLOCK, "bob")),
        ("/peers", ShowPeers()),
        ("/history", ShowHistory()),
        ("/history alice", ShowHistory("alice")),
        ("/history alice all", SetHistory("alice", None)),
        ("/history alice 500", SetHistory("alice", 500)),
        ("/history alice default", SetHistory("alice", None, default=True)),
        ("/connect net:127.0.0.1:7708~shs:KEY", Connect("net:127.0.0.1:7708~shs:KEY")),
        ("/connect net:h:1~shs:K --no-follow", Connect("net:h:1~shs:K", follow=False)),
        ("/whoami", WhoAmI()),
        ("/help", Help()),
        ("/help /msg", Help("msg")),
        ("/QUIT", Quit()),
        ("/exit", Quit()),
    ],
)
def test_parse(line: str, expected: object) -> None:
    assert parse_line(line) == expected


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ("", "nothing to send"),
        ("/dance", "unknown command /dance"),
        ("/join", r"/join needs more: /join #CHANNEL \| INVITE"),
        ("/msg bob", "/msg needs someone and a text"),
        ("/msg a,b,c,d,e,f,g,h hi", "at most 7 people"),
        ("/channel two words", "takes one word"),
        ("/channel " + "x" * 33, "at most 32 characters"),
        ("/follow", "/follow needs more"),
        ("/nick " + "n" * 33, "at most 32 characters"),
        ("/history alice lots", "a number of messages .1 or more., all or default; not 'lots'"),
        ("/history alice 0", "not '0'"),
        ("/history alice all now", "takes a name and a setting"),
    ],
)
def test_errors_are_in_user_words(line: str, words: str) -> None:
    with pytest.raises(CommandError, match=words):
        parse_line(line)


def test_help_lists_every_command_and_explains_one() -> None:
    text = help_text()
    for spec in COMMANDS:
        assert spec.usage in text
    assert "/pm" in help_text("msg")
    with pytest.raises(CommandError):
        help_text("nope")


def test_completions() -> None:
    names, channels = ["alice", "Albert", "bob"], ["general", "random"]
    assert completions("/fo", 3, names=names, channels=channels) == (0, ["/follow"])
    assert completions("/un", 3, names=names, channels=channels) == (0, ["/unblock", "/unfollow"])
    assert completions("hi al", 5, names=names, channels=channels) == (3, ["Albert", "alice"])
    assert completions("hi @b", 5, names=names, channels=channels) == (3, ["@bob"])
    assert completions("see #r", 6, names=names, channels=channels) == (4, ["#random"])
    assert completions("/channel ge", 11, names=names, channels=channels) == (9, ["general"])
    assert completions("x ", 2, names=names, channels=channels) == (2, [])
