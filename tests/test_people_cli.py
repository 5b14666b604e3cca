"""treechat follow/unfollow/block/unblock/name/history/peers/forget on a data dir (no node)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from chat.cli import main
from chat.config import load_config
from chat.content import about
from chat.identity import Identity, load_or_create_identity, short_key
from net.address import Address
from store.db import SavedPeer, Store


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


async def _store_do(data_dir: Path, work: object) -> object:
    async with await Store.open(load_config(data_dir=data_dir).database_path) as store:
        return await work(store)  # type: ignore[operator]


def in_store(data_dir: Path, work: object) -> object:
    return asyncio.run(_store_do(data_dir, work))


@pytest.fixture
def me(tmp_path: Path) -> tuple[Path, Identity]:
    data_dir = tmp_path / "me"
    return data_dir, load_or_create_identity(data_dir)


@pytest.fixture
def ada(tmp_path: Path, me: tuple[Path, Identity]) -> Identity:
    """Someone whose feed (naming her "ada") we hold."""
    ada = load_or_create_identity(tmp_path / "ada")

    async def named(store: Store) -> None:
        await store.append_own(ada.signing_key, about("ada"))

    in_store(me[0], named)
    return ada


def test_follow_unfollow_block_unblock_by_name_and_key(
    capsys: pytest.CaptureFixture[str], me: tuple[Path, Identity], ada: Identity
) -> None:
    data_dir, identity = me
    d = ("--data-dir", str(data_dir))
    assert run(capsys, *d, "follow", "ada") == (0, f"following ada ({ada.ref})\n", "")
    assert run(capsys, *d, "follow", ada.ref)[1] == f"already following ada ({ada.ref})\n"

    async def follows(store: Store) -> set[bytes]:
        return await store.follows(identity.feed_id)

    assert in_store(data_dir, follows) == {ada.feed_id}
    assert run(capsys, *d, "unfollow", "ada")[1] == f"no longer following ada ({ada.ref})\n"
    assert in_store(data_dir, follows) == set()
    assert run(capsys, *d, "block", short_key(ada.feed_id))[1] == f"blocked ada ({ada.ref})\n"
    assert run(capsys, *d, "block", "ada")[1] == f"already blocking ada ({ada.ref})\n"
    assert run(capsys, *d, "unblock", "ada")[1] == f"unblocked ada ({ada.ref})\n"


def test_unknown_names_and_our_own_key_are_refused_with_exit_2(
    capsys: pytest.CaptureFixture[str], me: tuple[Path, Identity], ada: Identity
) -> None:
    data_dir, identity = me
    d = ("--data-dir", str(data_dir))
    code, out, err = run(capsys, *d, "follow", "zed")
    assert (code, out) == (2, "")
    assert err == "treechat: cannot follow 'zed': nobody called 'zed' is known\n"
    code, _, err = run(capsys, *d, "block", identity.ref)
    assert code == 2 and "that is your own key" in err
    code, _, err = run(capsys, *d, "unfollow", "@nobody")
    assert code == 2 and "nobody called 'nobody' is known" in err


def test_name_sets_what_others_see(
    capsys: pytest.CaptureFixture[str], me: tuple[Path, Identity]
) -> None:
    data_dir, identity = me
    code, out, _ = run(capsys, "--data-dir", str(data_dir), "name", "  grace ")
    assert (code, out) == (0, f"you are now grace ({identity.ref})\n")

    async def names(store: Store) -> dict[bytes, str]:
        return await store.names()

    assert in_store(data_dir, names) == {identity.feed_id: "grace"}
    code, _, err = run(capsys, "--data-dir", str(data_dir), "name", "x" * 40)
    assert code == 1 and err.startswith("treechat: error:")


def test_history_sets_shows_and_resets_one_person_s_setting(
    capsys: pytest.CaptureFixture[str], me: tuple[Path, Identity], ada: Identity
) -> None:
    d = ("--data-dir", str(me[0]))
    line = f"history of ada ({ada.ref}): "
    assert run(capsys, *d, "history", "ada") == (
        0,
        line + "the newest 1,000 (the default); holding all 1\n",
        "",
    )
    assert (
        run(capsys, *d, "history", "ada", "all")[1]
        == line + "all of it (set for them); holding all 1\n"
    )
    assert run(capsys, *d, "history", "ada", "500")[1].startswith(line + "the newest 500 (set")
    assert run(capsys, *d, "history") == (
        0,
        f"history: the newest 1,000 of each feed (config)\nada ({ada.ref}): the newest 500\n",
        "",
    )
    assert run(capsys, *d, "history", "ada", "default")[1].startswith(
        line + "the newest 1,000 (the"
    )
    assert in_store(me[0], lambda store: store.history_overrides()) == {}
    code, out, err = run(capsys, *d, "history", "ada", "lots")
    assert (code, out) == (1, "") and "history must be a number of messages" in err
    assert run(capsys, *d, "history", "nobody", "all")[0] == 2


def test_peers_lists_remembered_peers_and_forget_drops_one(
    capsys: pytest.CaptureFixture[str], me: tuple[Path, Identity], ada: Identity
) -> None:
    data_dir, _ = me
    d = ("--data-dir", str(data_dir))
    assert run(capsys, *d, "peers")[1].startswith("no peers yet")
    typo = str(Address("127.0.0.1", 7999, ada.feed_id))

    async def remember(store: Store) -> None:
        await store.save_peer(SavedPeer(ada.feed_id, address=typo, source="manual"))

    in_store(data_dir, remember)
    code, out, _ = run(capsys, *d, "peers", "--json")
    rows = json.loads(out)
    assert code == 0 and len(rows) == 1
    assert rows[0] | {"reason": ""} == {
        "key": ada.ref,
        "name": "ada",
        "source": "manual",
        "state": "remembered",
        "reason": "",
        "address": typo,
    }
    human = run(capsys, *d, "peers")[1]
    assert "ada" in human and "manual" in human and typo in human

    other_port = str(Address("127.0.0.1", 7000, ada.feed_id))
    code, _, err = run(capsys, *d, "forget", other_port)
    assert code == 2 and err.startswith(f"treechat: no remembered peer at {other_port}")
    assert run(capsys, *d, "forget", "net:nonsense")[0] == 2
    code, out, _ = run(capsys, *d, "forget", typo)
    assert code == 0 and out.startswith(f"forgot {typo}")
    assert json.loads(run(capsys, *d, "peers", "--json")[1]) == []
    code, _, err = run(capsys, *d, "forget", "ada")
    assert code == 2 and "no remembered peer 'ada'" in err
