"""Identity file: creation with safe modes, reload, and clear errors for bad files."""

from __future__ import annotations

import base64
import json
import os
import stat
import threading
from pathlib import Path

import pytest
from nacl.public import Box, PrivateKey

from chat.identity import (
    Identity,
    IdentityError,
    curve_public_key,
    load_identity,
    load_or_create_identity,
    save_identity,
    secret_path,
    short_key,
)
from store.message import parse_feed_ref

posix_only = pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@posix_only
def test_first_run_creates_private_dir_and_file(tmp_path: Path) -> None:
    data_dir = tmp_path / "fresh" / "data"
    identity = load_or_create_identity(data_dir)
    assert _mode(data_dir) == 0o700
    assert _mode(secret_path(data_dir)) == 0o600
    assert len(identity.feed_id) == 32
    # no temporary file is left behind
    assert sorted(p.name for p in data_dir.iterdir()) == ["secret"]


def test_reload_gives_the_same_identity(tmp_path: Path) -> None:
    first = load_or_create_identity(tmp_path)
    second = load_or_create_identity(tmp_path)
    assert first.feed_id == second.feed_id
    assert first.seed == second.seed


def test_two_fresh_data_dirs_get_different_identities(tmp_path: Path) -> None:
    assert load_or_create_identity(tmp_path / "a").feed_id != (
        load_or_create_identity(tmp_path / "b").feed_id
    )


def test_ref_is_ssb_style_and_round_trips(tmp_path: Path) -> None:
    identity = Identity.from_seed(bytes(range(32)))
    assert identity.ref.startswith("@") and identity.ref.endswith(".ed25519")
    body = identity.ref[1 : -len(".ed25519")]
    assert base64.b64decode(body, validate=True) == identity.feed_id
    assert parse_feed_ref(identity.ref) == identity.feed_id
    assert identity.short == body[:6] == short_key(identity.feed_id)
    assert "seed" not in repr(identity) and identity.ref in repr(identity)


def test_file_holds_seed_and_id(tmp_path: Path) -> None:
    identity = load_or_create_identity(tmp_path)
    text = secret_path(tmp_path).read_text()
    body = json.loads("\n".join(ln for ln in text.splitlines() if not ln.startswith("#")))
    assert base64.b64decode(body["seed"]) == identity.seed
    assert body["id"] == identity.ref


@posix_only
def test_loose_permissions_are_refused_with_the_fix(tmp_path: Path) -> None:
    load_or_create_identity(tmp_path)
    path = secret_path(tmp_path)
    path.chmod(0o644)
    with pytest.raises(IdentityError) as info:
        load_or_create_identity(tmp_path)
    message = str(info.value)
    assert "0644" in message and f"chmod 600 {path}" in message


@posix_only
def test_group_readable_is_refused_too(tmp_path: Path) -> None:
    load_or_create_identity(tmp_path)
    secret_path(tmp_path).chmod(0o640)
    with pytest.raises(IdentityError, match="0640"):
        load_identity(secret_path(tmp_path))


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"", "empty"),
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "JSON object"),
        (b'{"curve": "rsa", "seed": "AAAA"}', "curve"),
        (b'{"curve": "ed25519"}', "no 'seed'"),
        (b'{"curve": "ed25519", "seed": "!!!"}', "not base64"),
        (b'{"curve": "ed25519", "seed": "AAAA"}', "3 bytes"),
        (b"\xff\xfe\x00", "not text"),
    ],
)
def test_damaged_files_are_reported(tmp_path: Path, content: bytes, words: str) -> None:
    path = secret_path(tmp_path)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, content)
    os.close(fd)
    with pytest.raises(IdentityError) as info:
        load_or_create_identity(tmp_path)
    assert "damaged" in str(info.value) and words in str(info.value)
    assert str(path) in str(info.value)


def test_seed_and_id_that_disagree_are_reported(tmp_path: Path) -> None:
    one, other = Identity.from_seed(b"\x01" * 32), Identity.from_seed(b"\x02" * 32)
    body = {"curve": "ed25519", "seed": base64.b64encode(one.seed).decode(), "id": other.ref}
    path = secret_path(tmp_path)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, json.dumps(body).encode())
    os.close(fd)
    with pytest.raises(IdentityError, match="belongs to"):
        load_identity(path)


def test_secret_that_is_a_directory_is_reported(tmp_path: Path) -> None:
    secret_path(tmp_path).mkdir()
    with pytest.raises(IdentityError, match="not a regular file"):
        load_or_create_identity(tmp_path)


def test_save_never_overwrites(tmp_path: Path) -> None:
    first = load_or_create_identity(tmp_path)
    with pytest.raises(IdentityError, match="already exists"):
        save_identity(Identity.generate(), secret_path(tmp_path))
    assert load_identity(secret_path(tmp_path)).feed_id == first.feed_id


def test_data_dir_that_is_a_file_is_reported(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(IdentityError, match="data directory"):
        load_or_create_identity(blocker / "inner")


def test_concurrent_first_runs_agree_on_one_identity(tmp_path: Path) -> None:
    results: list[bytes] = []
    errors: list[BaseException] = []

    def start() -> None:
        try:
            results.append(load_or_create_identity(tmp_path).feed_id)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert len(set(results)) == 1
    assert load_identity(secret_path(tmp_path)).feed_id == results[0]


def test_curve_keys_agree_with_ed25519_keys() -> None:
    alice, bob = Identity.from_seed(b"a" * 32), Identity.from_seed(b"b" * 32)
    assert bytes(curve_public_key(alice.feed_id)) == bytes(alice.curve_public_key)
    # a Diffie-Hellman box between the converted keys works both ways
    sealed = Box(alice.curve_private_key, curve_public_key(bob.feed_id)).encrypt(b"hi")
    assert Box(bob.curve_private_key, curve_public_key(alice.feed_id)).decrypt(sealed) == b"hi"
    assert isinstance(alice.curve_private_key, PrivateKey)


def test_curve_conversion_rejects_a_non_key() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        curve_public_key(b"short")


def test_from_seed_checks_length() -> None:
    with pytest.raises(IdentityError, match="32 bytes"):
        Identity.from_seed(b"x" * 31)
