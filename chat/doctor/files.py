"""Doctor checks of the data directory, the secret key file and the database."""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import stat
from dataclasses import dataclass
from pathlib import Path

from chat.config import Config
from chat.doctor.findings import Finding, Level
from chat.identity import IdentityError, load_identity
from store.schema import SCHEMA_VERSION

LOW_SPACE = 500 * 1024 * 1024  # below this, a warning: a busy pub writes that in days
NO_SPACE = 50 * 1024 * 1024  # below this, a problem: SQLite may fail any write


# ------------------------------------------------------------------ data dir and secret


@dataclass(frozen=True, slots=True)
class FileFacts:
    """What ``stat`` says about a path (None fields: the path does not exist)."""

    path: Path
    exists: bool
    is_dir: bool = False
    mode: int = 0
    uid: int = 0


def gather_file(path: Path) -> FileFacts:
    try:
        info = path.stat()
    except FileNotFoundError:
        return FileFacts(path, exists=False)
    return FileFacts(
        path, True, stat.S_ISDIR(info.st_mode), stat.S_IMODE(info.st_mode), info.st_uid
    )


def judge_data_dir(facts: FileFacts, my_uid: int) -> Finding:
    path = facts.path
    if not facts.exists:
        return Finding("data dir", Level.OK, f"{path} does not exist yet; it is made on first run")
    if not facts.is_dir:
        return Finding(
            "data dir",
            Level.PROBLEM,
            f"{path} is a file, not a directory",
            "move it aside, or use another: treechat --data-dir DIR",
        )
    if facts.uid != my_uid:
        return Finding(
            "data dir",
            Level.WARNING,
            f"{path} belongs to user id {facts.uid}, not to you ({my_uid})",
            f"chown -R {my_uid} {path}",
        )
    if facts.mode & 0o077:
        return Finding(
            "data dir",
            Level.WARNING,
            f"{path} is open to other users (mode {facts.mode:04o}): they can read whom you"
            " talk to and your private messages' metadata",
            f"chmod 700 {path}",
        )
    return Finding("data dir", Level.OK, f"{path} is private (mode {facts.mode:04o})")


def judge_secret(facts: FileFacts, load_error: str | None) -> Finding:
    path = facts.path
    if not facts.exists:
        return Finding(
            "secret", Level.OK, f"no identity yet; {path} is made (mode 0600) on first run"
        )
    if facts.mode & 0o077:
        return Finding(
            "secret",
            Level.PROBLEM,
            f"{path} has mode {facts.mode:04o}: anyone who can read it can write as you,"
            " and treechat refuses to use it",
            f"chmod 600 {path}",
        )
    if load_error is not None:
        return Finding(
            "secret",
            Level.PROBLEM,
            load_error,
            f"restore {path} from your backup, or move it aside to start as a new person",
        )
    return Finding("secret", Level.OK, f"{path} is readable only by you (mode 0600)")


def check_identity(config: Config) -> list[Finding]:
    data_dir = gather_file(config.data_dir)
    secret = gather_file(config.secret_path)
    load_error = None
    if secret.exists and not secret.mode & 0o077:
        try:
            load_identity(config.secret_path)
        except IdentityError as exc:
            load_error = str(exc)
    return [judge_data_dir(data_dir, os.getuid()), judge_secret(secret, load_error)]


# ----------------------------------------------------------------------------- database


@dataclass(frozen=True, slots=True)
class DatabaseFacts:
    """The database as SQLite sees it; None fields were not reached."""

    path: Path
    exists: bool
    open_error: str | None = None
    schema_version: int | None = None
    write_error: str | None = None
    integrity: str | None = None  # "ok" or SQLite's first complaint
    free_bytes: int | None = None


def gather_database(path: Path) -> DatabaseFacts:
    """Open the database without creating or changing it: read the schema version, run
    ``PRAGMA quick_check``, and take (then roll back) the write lock to prove writes work."""
    free = None
    existing = next((p for p in path.parents if p.exists()), Path.cwd())
    with contextlib.suppress(OSError):
        free = shutil.disk_usage(existing).free
    if not path.exists():
        return DatabaseFacts(path, exists=False, free_bytes=free)
    try:
        db = sqlite3.connect(f"file:{path}?mode=rw", uri=True, isolation_level=None, timeout=2)
    except sqlite3.Error as exc:
        return DatabaseFacts(path, True, open_error=str(exc), free_bytes=free)
    try:
        try:
            version = int(db.execute("PRAGMA user_version").fetchone()[0])
        except sqlite3.Error as exc:
            return DatabaseFacts(path, True, open_error=str(exc), free_bytes=free)
        try:
            rows = db.execute("PRAGMA quick_check(3)").fetchall()
        except sqlite3.DatabaseError as exc:  # damaged beyond what the check can walk
            rows = [(str(exc),)]
        lines = [line for row in rows for line in str(row[0]).splitlines()]
        integrity = "; ".join(line for line in lines if not line.startswith("***")) or "ok"
        write_error = None
        try:
            db.execute("BEGIN IMMEDIATE")
            db.execute("CREATE TABLE doctor_write_probe (x)")
        except sqlite3.Error as exc:
            write_error = str(exc)
        finally:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
        return DatabaseFacts(path, True, None, version, write_error, integrity, free)
    finally:
        db.close()


def judge_database(facts: DatabaseFacts) -> list[Finding]:
    path = facts.path
    findings = []
    if not facts.exists:
        findings.append(Finding("database", Level.OK, f"{path} does not exist yet"))
    elif facts.open_error is not None:
        findings.append(
            Finding(
                "database",
                Level.PROBLEM,
                f"{path} cannot be opened: {facts.open_error}",
                f"check the file's owner and mode (ls -l {path}); if it is damaged, move it"
                " aside and your feed comes back from your peers",
            )
        )
    elif facts.schema_version is not None and facts.schema_version > SCHEMA_VERSION:
        findings.append(
            Finding(
                "database",
                Level.PROBLEM,
                f"{path} was written by a newer treechat (schema {facts.schema_version},"
                f" this one knows up to {SCHEMA_VERSION})",
                "upgrade treechat",
            )
        )
    elif facts.write_error is not None:
        findings.append(
            Finding(
                "database",
                Level.PROBLEM,
                f"{path} opens but cannot be written: {facts.write_error}",
                f"make it writable by you (chmod u+w {path}; chattr -i {path}) or move the"
                " data dir to a writable disk",
            )
        )
    else:
        findings.append(Finding("database", Level.OK, f"{path} opens and takes writes"))
    if facts.integrity is not None:
        if facts.integrity == "ok":
            findings.append(Finding("integrity", Level.OK, "quick check passed"))
        else:
            findings.append(
                Finding(
                    "integrity",
                    Level.PROBLEM,
                    f"SQLite's quick check found damage: {facts.integrity}",
                    f"stop treechat, move {path} aside and start again: feeds come back"
                    " from the peers that hold them",
                )
            )
    if facts.free_bytes is not None:
        free_mb = facts.free_bytes // (1024 * 1024)
        if facts.free_bytes < NO_SPACE:
            findings.append(
                Finding(
                    "disk space",
                    Level.PROBLEM,
                    f"only {free_mb} MB free where the database lives: writes will fail",
                    "free some space on that disk, or move the data dir (--data-dir)",
                )
            )
        elif facts.free_bytes < LOW_SPACE:
            findings.append(
                Finding(
                    "disk space",
                    Level.WARNING,
                    f"{free_mb} MB free where the database lives",
                    "free some space on that disk before it fills",
                )
            )
        else:
            findings.append(Finding("disk space", Level.OK, f"{free_mb} MB free"))
    return findings
