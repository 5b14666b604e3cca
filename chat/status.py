"""The status snapshot: a JSON file a running node rewrites every second, and its reader.

`treechat status` reads ``<data_dir>/status.json``; the file is replaced atomically
(written beside it, then renamed) so a reader never sees half of it. A snapshot older
than `STALE_AFTER` seconds means the node is not running any more.

Shape (version 1)::

    {"version": 1, "pid": 123, "updated_at": 1700000000.0, "started_at": ...,
     "feed_id": "@...ed25519", "address": "net:192.168.1.20:7708~shs:...",
     "addresses": ["net:192.168.1.20:7708~shs:...", ...],  # one per interface
     "listen_notice": null,  # or "port 7708 is taken ...; listening on 7709 instead"
     "feeds": 12, "messages": 3400,
     "peers": [{"key": "@...", "name": "...", "address": "...", "direction": "in",
                "state": "connected", "source": "lan",
                "reason": "connected (incoming)", "rtt_ms": 0.4, "eager_in": 3, "eager_out": 2,
                "lazy": 7, "we_are_behind": 0, "they_are_behind": 15,
                "msgs_in": 100, "msgs_out": 80, "msgs_per_s_in": 0.0,
                "msgs_per_s_out": 0.0, "bytes_per_s_in": 0, "bytes_per_s_out": 0,
                "last_error": null}],
     "counters": {"notes_entries_sent": ..., "msgs_sent": ..., ...},
     "rates": {"msgs_per_s_in": 0.0, "msgs_per_s_out": 0.0}}
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path
from typing import Any

from store.errors import UserError

STATUS_FILE = "status.json"
STATUS_VERSION = 1
STALE_AFTER = 5.0


class StatusError(UserError):
    """No usable status snapshot (no node running, or an unreadable file)."""


def status_path(data_dir: Path) -> Path:
    return data_dir / STATUS_FILE


def write_status(data_dir: Path, snapshot: dict[str, Any]) -> None:
    """Atomically replace the snapshot file."""
    path = status_path(data_dir)
    temp = path.with_name(f".{STATUS_FILE}.{os.getpid()}.tmp")
    temp.write_text(json.dumps(snapshot, indent=1, sort_keys=True), encoding="utf-8")
    os.replace(temp, path)


def remove_status(data_dir: Path) -> None:
    with contextlib.suppress(OSError):
        status_path(data_dir).unlink()


def read_status(data_dir: Path, *, now: float | None = None) -> dict[str, Any]:
    """The snapshot of the node running on `data_dir`; raises `StatusError` in user words."""
    path = status_path(data_dir)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise StatusError(
            f"no running node found for {data_dir} (no {STATUS_FILE}); start one with "
            "`treechat serve`"
        ) from None
    except OSError as exc:
        raise StatusError(f"cannot read {path}: {exc.strerror}") from None
    try:
        snapshot = json.loads(text)
    except json.JSONDecodeError as exc:
        raise StatusError(f"{path} is damaged ({exc.msg})") from None
    if not isinstance(snapshot, dict) or snapshot.get("version") != STATUS_VERSION:
        raise StatusError(f"{path} is not a status snapshot this version understands")
    age = (time.time() if now is None else now) - float(snapshot.get("updated_at", 0))
    snapshot["age_s"] = round(age, 1)
    snapshot["alive"] = _pid_alive(snapshot.get("pid"))  # its process, updating or not
    snapshot["running"] = age <= STALE_AFTER and snapshot["alive"]
    return snapshot


def _pid_alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _cell(value: Any, digits: int = 0) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _why(peer: dict[str, Any]) -> str:
    """The schedule's reason for the peer's state, or its last error; then what it
    claimed and never sent (its claims are not believed)."""
    why = _reason(peer)
    doubts = "; ".join(str(d) for d in peer.get("doubts") or [])
    return f"{why}; {doubts}" if why and doubts else why or doubts


def _reason(peer: dict[str, Any]) -> str:
    reason = str(peer.get("reason") or "")
    error = str(peer.get("last_error") or "")
    if reason and reason != peer.get("state"):
        if error and error not in reason and not reason.startswith("connected"):
            return f"{reason} (last error: {error})"
        return reason
    return error


def format_status(snapshot: dict[str, Any]) -> str:
    """A human summary: the node, then one row per peer with its links."""
    lines = []
    age = snapshot.get("age_s", "?")
    if snapshot.get("running", True):
        state = "running"
    elif snapshot.get("alive"):  # it runs but cannot rewrite this file
        state = f"NOT UPDATING (last update {age} s ago, its process runs: is the disk full?)"
    else:
        state = f"NOT RUNNING (last update {age} s ago)"
    lines.append(f"node      {snapshot.get('feed_id', '?')}  ({state})")
    addresses = snapshot.get("addresses") or [snapshot.get("address") or "-"]
    for index, address in enumerate(addresses):
        lines.append(f"{'address' if index == 0 else '':10}{address}")
    if snapshot.get("store_error"):
        lines.append(f"ERROR     the database refuses new messages: {snapshot['store_error']}")
    if snapshot.get("listen_notice"):
        lines.append(f"note      {snapshot['listen_notice']}")
    lines.append(f"feeds     {snapshot.get('feeds', 0)}   messages {snapshot.get('messages', 0)}")
    rates = snapshot.get("rates", {})
    lines.append(
        f"rates     in {_cell(rates.get('msgs_per_s_in', 0.0), 1)} msg/s   "
        f"out {_cell(rates.get('msgs_per_s_out', 0.0), 1)} msg/s"
    )
    peers = snapshot.get("peers", [])
    if not peers:
        lines.append("peers     none")
        return "\n".join(lines)
    header = (
        "peer",
        "state",
        "via",
        "dir",
        "rtt ms",
        "eager in",
        "eager out",
        "lazy",
        "we lack",
        "they lack",
        "why",
    )
    rows = [header]
    for peer in peers:
        label = peer.get("name") or ""
        short = str(peer.get("key", ""))[1:9]
        rows.append(
            (
                f"{label} {short}".strip(),
                str(peer.get("state", "")),
                _cell(peer.get("source")),
                _cell(peer.get("direction")),
                _cell(peer.get("rtt_ms"), 1),
                _cell(peer.get("eager_in")),
                _cell(peer.get("eager_out")),
                _cell(peer.get("lazy")),
                _cell(peer.get("we_are_behind")),
                _cell(peer.get("they_are_behind")),
                _why(peer),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header) - 1)]
    lines.append("")
    for row in rows:
        cells = [row[i].ljust(widths[i]) for i in range(len(widths))]
        lines.append("  ".join(cells) + "  " + row[-1])
    return "\n".join(line.rstrip() for line in lines)
