"""The treechat command line: id, post, log end to end; dispatch and one-line errors."""

from __future__ import annotations

import asyncio
import calendar
import json
import os
import subprocess
import sys
import time
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chat import cli
from chat.cli import COMMANDS, main
from chat.commands.maelstrom import settings
from chat.config import load_config
from chat.content import about, post
from chat.errors import ListenError
from chat.identity import Identity, load_or_create_identity, secret_path
from net.address import AddressError
from net.maelstrom import PRESETS, Overlay
from store.db import Store
from store.message import create_message, parse_feed_ref

REPO = Path(__file__).resolve().parent.parent
# 2026-11-21 18:30:00 UTC
NOON_ISH = calendar.timegm((2026, 11, 21, 18, 30, 0)) * 1000


@pytest.fixture(autouse=True)
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "node"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def write(data_dir: Path, author: Identity, *contents: Any, start_ms: int = NOON_ISH) -> None:
    """Append messages to ``author``'s feed in the node's database, one minute apart."""

    async def go() -> None:
        path = load_config(data_dir=data_dir).database_path
        async with await Store.open(path) as store:
            for i, content in enumerate(contents):
                await store.append_own(author.signing_key, content, start_ms + i * 60_000)

    asyncio.run(go())


def receive(data_dir: Path, raws: list[bytes]) -> None:
    async def go() -> None:
        async with await Store.open(load_config(data_dir=data_dir).database_path) as store:
            result = await store.add_received(raws)
            assert not result.errors

    asyncio.run(go())


# --------------------------------------------------------------------------------- id


def test_id_creates_then_repeats_the_identity(
    capsys: pytest.CaptureFixture[str], data_dir: Path
) -> None:
    code, out, err = run(capsys, "--data-dir", str(data_dir), "id")
    assert code == 0 and err == ""
    ref = out.strip()
    assert parse_feed_ref(ref) == load_or_create_identity(data_dir).feed_id
    assert run(capsys, "--data-dir", str(data_dir), "id")[1].strip() == ref


def test_global_options_work_after_the_subcommand(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    ref_one = run(capsys, "--data-dir", str(one), "id")[1]
    assert run(capsys, "id", "--data-dir", str(one))[1] == ref_one
    assert run(capsys, "id", "--data-dir", str(two))[1] != ref_one


def test_id_subprocess_matches_the_secret_file(data_dir: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "chat", "--data-dir", str(data_dir), "id"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == load_or_create_identity(data_dir).ref
    assert secret_path(data_dir).is_file()


# --------------------------------------------------------------------------- post, log


def test_post_and_log_as_subprocesses(data_dir: Path) -> None:
    def treechat(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "chat", "--data-dir", str(data_dir), *argv],
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=60,
            check=False,
        )

    assert treechat("post", "first").returncode == 0
    assert treechat("post", "second", "--channel", "#Dev").returncode == 0
    result = treechat("log", "--json")
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(r["channel"], r["text"], r["seq"]) for r in rows] == [
        ("general", "first", 1),
        ("dev", "second", 2),
    ]
    assert {r["author"] for r in rows} == {load_or_create_identity(data_dir).ref}


def test_post_defaults_to_general(capsys: pytest.CaptureFixture[str], data_dir: Path) -> None:
    code, out, _ = run(capsys, "--data-dir", str(data_dir), "post", "hi")
    assert code == 0 and "#general" in out
    code, out, _ = run(capsys, "--data-dir", str(data_dir), "log", "--channel", "general")
    assert out.endswith(": hi\n")


def test_log_human_format_with_names(capsys: pytest.CaptureFixture[str], data_dir: Path) -> None:
    me = load_or_create_identity(data_dir)
    friend = Identity.from_seed(b"f" * 32)
    write(data_dir, me, about("ada"), post("hello all"), post("in dev", "dev"))
    write(data_dir, friend, post("hi ada"), start_ms=NOON_ISH + 600_000)
    code, out, err = run(capsys, "--data-dir", str(data_dir), "log")
    assert code == 0 and err == ""
    assert out.splitlines() == [
        "2026-11-21 18:31  #general  ada: hello all",
        "2026-11-21 18:32  #dev  ada: in dev",
        f"2026-11-21 18:40  #general  @{friend.short}: hi ada",
    ]
    code, out, _ = run(capsys, "--data-dir", str(data_dir), "log", "--channel", "#General")
    assert out.splitlines() == [
        "2026-11-21 18:31  ada: hello all",
        f"2026-11-21 18:40  @{friend.short}: hi ada",
    ]


def test_log_shows_who_is_who_when_names_collide(
    capsys: pytest.CaptureFixture[str], data_dir: Path
) -> None:
    a, b = Identity.from_seed(b"a" * 32), Identity.from_seed(b"b" * 32)
    write(data_dir, a, about("sam"), post("from a"))
    write(data_dir, b, about("sam"), post("from b"), start_ms=NOON_ISH + 600_000)
    out = run(capsys, "--data-dir", str(data_dir), "log", "--channel", "general")[1]
    assert f"sam ({a.short}): from a" in out and f"sam ({b.short}): from b" in out


def test_log_multiline_and_control_characters(
    capsys: pytest.CaptureFixture[str], data_dir: Path
) -> None:
    me = load_or_create_identity(data_dir)
    write(data_dir, me, post("one\ntwo \x1b[31mred"))
    out = run(capsys, "--data-dir", str(data_dir), "log", "--channel", "general")[1]
    first, second = out.splitlines()
    assert first.endswith(": one")
    assert second.strip() == "two \ufffd[31mred"
    assert second.index("two") == first.index("one")
    assert "\x1b" not in out


def test_log_json_lines(capsys: pytest.CaptureFixture[str], data_dir: Path) -> None:
    me = load_or_create_identity(data_dir)
    other = Identity.from_seed(b"o" * 32)
    write(data_dir, me, about("ada"), post("hey", mentions=[other.feed_id]))
    code, out, _ = run(capsys, "--data-dir", str(data_dir), "log", "--json")
    assert code == 0
    (row,) = [json.loads(line) for line in out.splitlines()]
    assert row["author"] == me.ref and row["name"] == "ada"
    assert row["seq"] == 2 and row["timestamp"] == NOON_ISH + 60_000
    assert row["time"] == "2026-11-21T18:31:00.000Z"
    assert row["channel"] == "general" and row["text"] == "hey"
    assert row["mentions"] == [other.ref] and row["reply_to"] is None
    assert len(row["id"]) == 44


def test_log_limit_keeps_the_latest(capsys: pytest.CaptureFixture[str], data_dir: Path) -> None:
    me = load_or_create_identity(data_dir)
    write(data_dir, me, *(post(f"n{i}") for i in range(5)))
    out = run(capsys, "--data-dir", str(data_dir), "log", "--limit", "2")[1]
    assert [line.rsplit(": ", 1)[1] for line in out.splitlines()] == ["n3", "n4"]


def test_log_hides_received_posts_that_break_the_rules(
    capsys: pytest.CaptureFixture[str], data_dir: Path
) -> None:
    stranger = Identity.from_seed(b"s" * 32)
    bad = {"type": "post", "text": "shouty", "channel": "NOT VALID"}
    good = post("fine")
    first = create_message(stranger.signing_key, 1, None, NOON_ISH, bad)
    second = create_message(stranger.signing_key, 2, first.id, NOON_ISH + 1, good)
    receive(data_dir, [first.raw, second.raw])
    out = run(capsys, "--data-dir", str(data_dir), "log")[1]
    assert "fine" in out and "shouty" not in out


def test_log_on_an_empty_node(capsys: pytest.CaptureFixture[str], data_dir: Path) -> None:
    assert run(capsys, "--data-dir", str(data_dir), "log") == (0, "", "")


# ---------------------------------------------------------------------- dispatch, errors


def test_every_command_has_its_handler() -> None:
    # No placeholders: each command of docs/cli.md resolves to a real handler.
    for command in COMMANDS:
        assert callable(cli.resolve_handler(command)), command


def test_a_plugged_in_handler_gets_args_and_config(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, data_dir: Path
) -> None:
    seen: dict[str, Any] = {}

    def handler(args: Any, config: Any) -> int:
        seen.update(args=args, config=config)
        return 7

    module = types.ModuleType("chat_test_plugin")
    module.run = handler  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "chat_test_plugin", module)
    monkeypatch.setitem(COMMANDS, "serve", "chat_test_plugin:run")
    argv = ["serve", "--listen", "127.0.0.1:0", "--no-discovery", "--connect", "net:a:1~shs:k"]
    code = main(["--data-dir", str(data_dir), *argv, "--interface", "::1"])
    assert code == 7
    config = seen["config"]
    assert config.data_dir == data_dir
    assert str(config.listen) == "127.0.0.1:0"
    assert config.discovery is False and config.interfaces == ("::1",)
    assert seen["args"].connect == ["net:a:1~shs:k"]


def test_sim_passes_its_arguments_through(monkeypatch: pytest.MonkeyPatch, data_dir: Path) -> None:
    got: list[list[str]] = []

    def handler(args: Any, config: Any) -> int:
        got.append(args.sim_args)
        return 0

    module = types.ModuleType("chat_test_sim")
    module.run = handler  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "chat_test_sim", module)
    monkeypatch.setitem(COMMANDS, "sim", "chat_test_sim:run")
    assert main(["--data-dir", str(data_dir), "sim", "--nodes", "50", "--loss", "0.1"]) == 0
    assert got == [["--nodes", "50", "--loss", "0.1"]]


def test_missing_dependency_inside_a_handler_is_not_hidden(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    package = tmp_path / "plug"
    package.mkdir()
    (package / "broken_cmd.py").write_text("import no_such_dependency_xyz\n")
    monkeypatch.syspath_prepend(str(package))
    monkeypatch.setitem(COMMANDS, "serve", "broken_cmd:run")
    with pytest.raises(ModuleNotFoundError):
        main(["--data-dir", str(tmp_path / "d"), "serve"])


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
def test_loose_secret_is_one_line_and_exit_1(data_dir: Path) -> None:
    load_or_create_identity(data_dir)
    secret_path(data_dir).chmod(0o644)
    result = subprocess.run(
        [sys.executable, "-m", "chat", "--data-dir", str(data_dir), "post", "hi"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "permissions 0644" in result.stderr and "chmod 600" in result.stderr


@pytest.mark.parametrize(
    ("setup", "argv", "words"),
    [
        ("config", ["id"], "not valid TOML"),
        ("none", ["post", "  "], "cannot be empty"),
        ("none", ["post", "x", "--channel", "a b"], "not a channel name"),
        ("none", ["log", "--channel", "#"], "not a channel name"),
        ("database", ["log"], "could not"),
        ("none", ["serve", "--listen", "nowhere:99999"], "listen"),
    ],
)
def test_user_errors_are_one_line(
    capsys: pytest.CaptureFixture[str], data_dir: Path, setup: str, argv: list[str], words: str
) -> None:
    data_dir.mkdir()
    if setup == "config":
        (data_dir / "config.toml").write_text("hops = = 2\n")
    elif setup == "database":
        load_config(data_dir=data_dir).database_path.write_bytes(b"this is not sqlite" * 100)
    code, out, err = run(capsys, "--data-dir", str(data_dir), *argv)
    assert code == 1 and out == ""
    assert err.startswith("treechat: error: ") and err.count("\n") == 1
    assert words in err


def test_explicit_config_file_is_used(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    data_dir = tmp_path / "elsewhere"
    config = tmp_path / "treechat.toml"
    config.write_text(f'data_dir = "{data_dir}"\n')
    ref = run(capsys, "--config", str(config), "id")[1].strip()
    assert ref == load_or_create_identity(data_dir).ref


@pytest.mark.parametrize(
    "error",
    [
        ListenError("cannot listen on 127.0.0.1:9: Address already in use"),
        AddressError("net:x", "the port 'y' is not a number"),
    ],
)
def test_handler_errors_in_user_words_are_one_line(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    data_dir: Path,
    error: Exception,
) -> None:
    def handler(args: Any, config: Any) -> int:
        raise error

    module = types.ModuleType("chat_test_failing")
    module.run = handler  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "chat_test_failing", module)
    monkeypatch.setitem(COMMANDS, "serve", "chat_test_failing:run")
    code, out, err = run(capsys, "--data-dir", str(data_dir), "serve")
    assert (code, out) == (1, "")
    assert err == f"treechat: error: {error}\n"


def test_an_error_outside_the_user_family_is_a_bug_with_its_traceback(
    monkeypatch: pytest.MonkeyPatch, data_dir: Path
) -> None:
    # The node's edge turns what the system refuses into user errors (with its words, as
    # test_serve's port in use shows); a raw OSError getting this far is a bug.
    def handler(args: Any, config: Any) -> int:
        raise OSError(5, "Input/output error")

    module = types.ModuleType("chat_test_raw_os_error")
    module.run = handler  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "chat_test_raw_os_error", module)
    monkeypatch.setitem(COMMANDS, "serve", "chat_test_raw_os_error:run")
    with pytest.raises(OSError, match="Input/output error"):
        main(["--data-dir", str(data_dir), "serve"])


def test_log_into_a_reader_that_stops_early_ends_quietly(data_dir: Path) -> None:
    author = load_or_create_identity(data_dir)
    write(data_dir, author, *[post(f"{n} " + "x" * 4000) for n in range(40)])  # > a pipe buffer
    proc = subprocess.Popen(
        [sys.executable, "-m", "chat", "--data-dir", str(data_dir), "log"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=REPO,
    )
    assert proc.stdout is not None and proc.stderr is not None
    assert "0 x" in proc.stdout.readline().decode()  # like `treechat log | head -1`
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 1
    assert err == ""


def test_sim_command_runs_the_simulator(tmp_path: Path) -> None:
    out_json = tmp_path / "sim.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "chat",
            "--data-dir",
            str(tmp_path / "d"),
            "sim",
            "--nodes",
            "12",
            "--messages",
            "5",
            "--json",
            str(out_json),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "delivery ratio" in proc.stdout
    result = json.loads(out_json.read_text())
    assert result["delivery_ratio"] == 1.0


def test_sim_help_is_the_simulators_own() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "chat", "sim", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0
    assert "--topology" in proc.stdout


def test_maelstrom_command_answers_init(tmp_path: Path) -> None:
    init = {
        "src": "c1",
        "dest": "n1",
        "body": {"type": "init", "msg_id": 1, "node_id": "n1", "node_ids": ["n1"]},
    }
    proc = subprocess.run(
        [sys.executable, "-m", "chat", "--data-dir", str(tmp_path), "maelstrom"],
        input=json.dumps(init) + "\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    reply = json.loads(proc.stdout.splitlines()[0])
    assert reply["body"]["type"] == "init_ok" and reply["body"]["in_reply_to"] == 1


def test_maelstrom_options_pick_a_preset_and_override_it() -> None:
    args = cli.build_parser().parse_args(["maelstrom", "--preset", "frugal"])
    assert settings(args) == PRESETS["frugal"]
    args = cli.build_parser().parse_args(
        ["maelstrom", "--preset", "large", "--overlay", "given", "--batch-window", "20"]
    )
    chosen = settings(args)
    assert chosen.overlay is Overlay.GIVEN and chosen.batch_window == pytest.approx(0.02)
    assert chosen.note_ack_delay == PRESETS["large"].note_ack_delay
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["maelstrom", "--batch-window", "-5"])
