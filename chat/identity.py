"""The local identity: an ed25519 keypair kept in the data dir file ``secret`` (mode 0600).

The file is a small JSON object (SSB keeps its ``~/.ssb/secret`` as JSON too, so people
can read what it holds)::

    {"curve": "ed25519", "seed": "<base64 of the 32-byte seed>", "id": "@<base64>.ed25519"}

Only the seed is needed to rebuild the keypair; ``id`` is written so a human can see
which feed a file belongs to, and it is checked on load so a hand-edited or mixed-up
file is reported instead of silently becoming somebody else.

The file is created once, with ``O_CREAT | O_EXCL`` and mode 0600, under a temporary
name and then hard-linked into place, so a second process starting at the same moment
either sees no file or a complete one, never half of it. A ``secret`` that others could
read is refused (the key is the person: whoever copies it can write their feed).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import logging
import os
import secrets
import stat
from dataclasses import dataclass, field
from pathlib import Path

from nacl.exceptions import CryptoError
from nacl.public import PrivateKey, PublicKey
from nacl.signing import SigningKey, VerifyKey

from store.errors import UserError
from store.message import feed_ref

log = logging.getLogger(__name__)

SECRET_FILE = "secret"
SEED_SIZE = 32
SHORT_KEY_LENGTH = 6
_CURVE = "ed25519"


class IdentityError(UserError):
    """The identity file is missing, unreadable, damaged or too widely readable."""


@dataclass(frozen=True, slots=True)
class Identity:
    """Our own keypair: the feed we write and the keys our private boxes are opened with."""

    signing_key: SigningKey = field(repr=False)

    @classmethod
    def generate(cls) -> Identity:
        """A brand-new random identity (not saved anywhere)."""
        return cls(SigningKey.generate())

    @classmethod
    def from_seed(cls, seed: bytes) -> Identity:
        """The identity derived from a 32-byte seed (tests use fixed seeds)."""
        if len(seed) != SEED_SIZE:
            raise IdentityError(f"an identity seed must be {SEED_SIZE} bytes, not {len(seed)}")
        return cls(SigningKey(seed))

    @property
    def seed(self) -> bytes:
        """The 32-byte secret seed, the only thing that is saved."""
        return bytes(self.signing_key)

    @property
    def verify_key(self) -> VerifyKey:
        return self.signing_key.verify_key

    @property
    def feed_id(self) -> bytes:
        """Our feed id: the 32-byte ed25519 public key."""
        return bytes(self.signing_key.verify_key)

    @property
    def ref(self) -> str:
        """Text form ``@<standard base64>.ed25519``."""
        return feed_ref(self.feed_id)

    @property
    def short(self) -> str:
        """The first characters of the key, shown after a name to tell people apart."""
        return short_key(self.feed_id)

    @property
    def curve_private_key(self) -> PrivateKey:
        """Our curve25519 private key (for opening private boxes)."""
        return self.signing_key.to_curve25519_private_key()

    @property
    def curve_public_key(self) -> PublicKey:
        """Our curve25519 public key (what senders seal private boxes to)."""
        return self.signing_key.verify_key.to_curve25519_public_key()

    def __repr__(self) -> str:
        return f"Identity({self.ref})"


def short_key(feed: bytes) -> str:
    """First ``SHORT_KEY_LENGTH`` characters of the base64 key, as shown beside names."""
    return base64.b64encode(feed).decode("ascii")[:SHORT_KEY_LENGTH]


def curve_public_key(feed: bytes) -> PublicKey:
    """The curve25519 public key of a feed id; raises ``ValueError`` if it is not a key."""
    if len(feed) != SEED_SIZE:
        raise ValueError(f"a feed id is {SEED_SIZE} bytes, not {len(feed)}")
    try:
        return VerifyKey(feed).to_curve25519_public_key()
    except (CryptoError, ValueError, TypeError) as exc:
        raise ValueError(f"{feed_ref(feed)} is not a valid ed25519 key") from exc


def secret_path(data_dir: Path) -> Path:
    return data_dir / SECRET_FILE


def load_or_create_identity(data_dir: Path) -> Identity:
    """Our identity from ``<data_dir>/secret``, creating the dir and the file on first run."""
    path = secret_path(data_dir)
    if path.exists():
        tighten_data_dir(data_dir)
        return load_identity(path)
    ensure_data_dir(data_dir)
    identity = Identity.generate()
    if not _create_secret_file(path, _encode(identity)):
        # Another process created it between our check and our write: use theirs.
        return load_identity(path)
    return identity


def ensure_data_dir(data_dir: Path) -> None:
    """Create the data dir (mode 0700) if missing; raises ``IdentityError`` if impossible."""
    try:
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise IdentityError(
            f"cannot create the data directory {data_dir}: {exc.strerror or exc}"
        ) from exc
    if not data_dir.is_dir():
        raise IdentityError(f"the data directory {data_dir} is not a directory")


def tighten_data_dir(data_dir: Path) -> str | None:
    """An existing data dir others can read or enter is set to 0700, with a notice (it
    holds the secret key, private messages and who we talk to). Returns the notice."""
    if os.name != "posix":
        return None
    try:
        mode = stat.S_IMODE(data_dir.stat().st_mode)
        if not mode & 0o077:
            return None
        data_dir.chmod(mode & 0o700 | 0o700)
    except OSError as exc:
        log.warning("could not tighten the permissions of %s: %s", data_dir, exc.strerror)
        return None
    notice = (
        f"tightened the permissions of the data directory {data_dir} from {mode:04o} to 0700"
        " (it holds your secret key and private messages)"
    )
    log.warning("%s", notice)
    return notice


def load_identity(path: Path) -> Identity:
    """Read and check an identity file; every problem is an ``IdentityError`` in plain words."""
    try:
        info = path.stat()
    except FileNotFoundError as exc:
        raise IdentityError(f"no identity file at {path}") from exc
    except OSError as exc:
        raise IdentityError(f"cannot read the identity file {path}: {exc.strerror}") from exc
    if not stat.S_ISREG(info.st_mode):
        raise IdentityError(f"the identity file {path} is not a regular file")
    if os.name == "posix" and info.st_mode & 0o077:
        mode = stat.S_IMODE(info.st_mode)
        raise IdentityError(
            f"the identity file {path} has permissions {mode:04o}; anyone who can read it "
            f"can write as you. Run: chmod 600 {path}"
        )
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise IdentityError(f"cannot read the identity file {path}: {exc.strerror}") from exc
    return _decode(data, path)


def save_identity(identity: Identity, path: Path) -> None:
    """Write a new identity file (mode 0600); refuses to overwrite an existing one."""
    ensure_data_dir(path.parent)
    if not _create_secret_file(path, _encode(identity)):
        raise IdentityError(f"an identity file already exists at {path}; not overwriting it")


def _encode(identity: Identity) -> bytes:
    body = {
        "curve": _CURVE,
        "seed": base64.b64encode(identity.seed).decode("ascii"),
        "id": identity.ref,
    }
    text = json.dumps(body, indent=2)
    note = "# treechat identity: keep this file secret, anyone holding it can write as you\n"
    return (note + text + "\n").encode("utf-8")


def _decode(data: bytes, path: Path) -> Identity:
    damaged = f"the identity file {path} is damaged"
    # Skip '#' comment lines so the warning we write does not break JSON parsing.
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise IdentityError(f"{damaged} (not text)") from exc
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    try:
        body = json.loads("\n".join(lines))
    except json.JSONDecodeError as exc:
        if not text.strip():
            raise IdentityError(f"{damaged} (it is empty)") from exc
        raise IdentityError(f"{damaged} (not valid JSON: {exc.msg})") from exc
    if not isinstance(body, dict):
        raise IdentityError(f"{damaged} (expected a JSON object)")
    if body.get("curve") != _CURVE:
        raise IdentityError(f"{damaged} (curve must be {_CURVE!r}, found {body.get('curve')!r})")
    seed_text = body.get("seed")
    if not isinstance(seed_text, str):
        raise IdentityError(f"{damaged} (no 'seed')")
    try:
        seed = base64.b64decode(seed_text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise IdentityError(f"{damaged} (the seed is not base64)") from exc
    if len(seed) != SEED_SIZE:
        raise IdentityError(f"{damaged} (the seed is {len(seed)} bytes, expected {SEED_SIZE})")
    identity = Identity.from_seed(seed)
    claimed = body.get("id")
    if claimed is not None and claimed != identity.ref:
        raise IdentityError(
            f"{damaged} (its seed belongs to {identity.ref} but it says it is {claimed})"
        )
    return identity


def _create_secret_file(path: Path, data: bytes) -> bool:
    """Atomically create ``path`` (0600) holding ``data``; False if it already exists."""
    # A random temporary name: other processes and threads never share it.
    temp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(8)}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(temp, flags, 0o600)
    except OSError as exc:
        raise IdentityError(f"cannot create the identity file {path}: {exc.strerror}") from exc
    try:
        _write_all(fd, data, path)
        try:
            os.link(temp, path)
        except FileExistsError:
            return False
        except OSError:
            # No hard links on this file system: fall back to an exclusive create in place.
            return _create_in_place(path, data)
        _fsync_dir(path.parent)
        return True
    finally:
        with contextlib.suppress(OSError):
            temp.unlink()


def _create_in_place(path: Path, data: bytes) -> bool:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags, 0o600)
    except FileExistsError:
        return False
    except OSError as exc:
        raise IdentityError(f"cannot create the identity file {path}: {exc.strerror}") from exc
    _write_all(fd, data, path)
    return True


def _write_all(fd: int, data: bytes, path: Path) -> None:
    """Write `data` to the new file `fd` (of the identity file `path`) and sync it."""
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as exc:
        raise IdentityError(f"cannot write the identity file {path}: {exc.strerror}") from exc


def _fsync_dir(directory: Path) -> None:
    if os.name != "posix":
        return
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
