"""Typed node settings, read from a TOML file and overridden by command-line flags.

Where settings come from, lowest priority first:

1. the defaults below (every field has one; a fresh install needs no file at all);
2. the TOML file named by ``--config``, or else ``<data_dir>/config.toml`` if present;
3. command-line flags (``--listen``, ``--interface``, ``--no-discovery``, ...).

The data dir itself is found first: ``--data-dir``, else ``data_dir`` in the file given
by ``--config``, else ``platformdirs.user_data_dir("treechat")``.

Example ``config.toml`` (every key optional)::

    listen = "*:7708"                       # every interface, IPv4 and IPv6; or "127.0.0.1:7708"
    network_key = "<base64 of 32 bytes>"   # a private group; default: the public network
    discovery = true
    interfaces = "all"                      # or a list of IPs, like ["127.0.0.1"]
    auto_follow_lan = true
    hops = 2
    hear = "anybody"                        # anybody | following | mutuals
    tell = "anybody"
    presence = true                         # send presence and typing (false: send none)
    pass = false                            # emit and relay whispers by proxy pass (1/2)
    whisper_hops = 3
    notify = true                           # bell + desktop notification on DMs, mentions

    [quotas]
    lan = 3
    pub = 2
    friend = 3
    other = 2

An unknown key or a value of the wrong kind is a ``ConfigError`` naming the file, the
key and what was expected; nothing is silently ignored.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import ipaddress
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import platformdirs

from net.policy import Audience
from store.errors import UserError

APP_NAME = "treechat"
CONFIG_FILE = "config.toml"
DEFAULT_PORT = 7708
ANY_HOST = "*"
"""Listen on every interface, IPv4 and IPv6 (``0.0.0.0`` is IPv4 only, ``::`` IPv6 only)."""
LOOPBACK_HOST = "127.0.0.1"
PORT_TRIES = 20
"""If the default port is taken (a second profile on one machine), the next free of
``DEFAULT_PORT .. DEFAULT_PORT + PORT_TRIES - 1`` is used."""
DEFAULT_NETWORK_KEY = hashlib.sha256(b"treechat network v1").digest()
ALL_INTERFACES = "all"
MAX_HOPS = 6
DEFAULT_HISTORY = 1000  # newest messages fetched per feed (older ones on demand)
MAX_HISTORY = 2**62


class ConfigError(ValueError, UserError):
    """A setting is unknown or has a value that cannot be used."""


@dataclass(frozen=True, slots=True)
class Quotas:
    """How many connections the gossip schedule keeps per class of peer."""

    lan: int = 3
    """Peers found on the local network by zeroconf."""
    pub: int = 2
    """Always-on pubs we joined or learned from ``pub`` messages."""
    friend: int = 3
    """Peers we follow, reached at remembered addresses."""
    other: int = 2
    """Anyone else we know an address of (explored slowly)."""


@dataclass(frozen=True, slots=True)
class HostPort:
    """A TCP host and port (net.address.Address is the multiserver form with a key)."""

    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


@dataclass(frozen=True, slots=True)
class Config:
    """Everything a node needs to know before it starts. Build it with ``load_config``."""

    data_dir: Path = field(default_factory=lambda: default_data_dir())
    """Where the identity (``secret``), the database and the status snapshot live."""
    listen: HostPort = HostPort(ANY_HOST, DEFAULT_PORT)
    """Where ``serve``/``pub``/the TUI accept connections: every interface by default, so
    people on the LAN can reach you (docs/decisions.md "The LAN by default")."""
    public_address: HostPort | None = None
    """The address others should dial (a pub behind NAT or a port forward); None = listen."""
    network_key: bytes = DEFAULT_NETWORK_KEY
    """32-byte secret-handshake network key; nodes with different keys cannot talk.
    In TOML it is standard base64."""
    discovery: bool = True
    """Announce ourselves and find peers with zeroconf (mDNS) on ``interfaces``."""
    interfaces: tuple[str, ...] = (ALL_INTERFACES,)
    """IP addresses of the interfaces zeroconf uses; ``("all",)`` (the default) means every
    interface that is up, can multicast and is not loopback, plus 127.0.0.1."""
    auto_follow_lan: bool = True
    """Replicate the feeds of peers found on the LAN without following them first."""
    hops: int = 2
    """Replicate feeds up to this many follow hops away (0 = only our own, 1 = follows)."""
    hear: Audience = Audience.ANYBODY
    """Whose links we keep to fetch feeds from (net/policy.py ``link_access``)."""
    tell: Audience = Audience.ANYBODY
    """Whom we serve our own feed to (net/policy.py ``may_share``); blocked keys never."""
    quotas: Quotas = Quotas()
    """Connection quotas per peer class for the gossip schedule."""
    presence: bool = True
    """Send our presence (online / away / offline, the channel we look at) and typing."""
    proxy_pass: bool = False
    """``pass`` in TOML: each emit or relay of ephemeral data takes the proxy path with
    probability 1/2, so a full-hop copy is no proof of authorship (docs/ephemeral.md)."""
    whisper_hops: int = 3
    """How far a whisper travels, in peers (1 = direct peers only)."""
    notify: bool = True
    """The TUI rings the terminal bell (and asks for a desktop notification) when a
    private message or a mention of us arrives; ``notify = false`` keeps it quiet."""
    history: int | None = DEFAULT_HISTORY
    """How many of the newest messages of each feed to fetch (None = all; TOML
    ``history = "all"``). Older ones come on demand, when the conversation scrolls back.
    Pubs fetch everything unless this is configured."""

    @property
    def secret_path(self) -> Path:
        return self.data_dir / "secret"

    @property
    def database_path(self) -> Path:
        return self.data_dir / "treechat.db"

    @property
    def all_interfaces(self) -> bool:
        return self.interfaces == (ALL_INTERFACES,)


def parse_history(value: Any) -> int | None:
    """A history setting: a whole number of messages per feed, or ``all`` (None)."""
    if value is None or (isinstance(value, str) and value.strip().lower() == "all"):
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_HISTORY:
        raise ConfigError(
            f'history must be a number of messages from 1 to {MAX_HISTORY}, or "all"; not {value!r}'
        )
    return value


def default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir(APP_NAME))


# ---------------------------------------------------------------------------- parsing

_FIELDS = {f.name for f in fields(Config)}
_ALIASES = {"pass": "proxy_pass"}  # TOML names that are Python keywords
_QUOTA_FIELDS = {f.name for f in fields(Quotas)}


def parse_host_port(text: str, *, what: str = "address") -> HostPort:
    """``HOST:PORT`` (IPv6 as ``[::1]:7708``); a bare ``HOST`` gets the default port."""
    if not isinstance(text, str) or not text.strip():
        raise ConfigError(f"{what} must be HOST:PORT, for example 127.0.0.1:{DEFAULT_PORT}")
    text = text.strip()
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ConfigError(f"{what} {text!r} is not HOST:PORT (IPv6 as [::1]:{DEFAULT_PORT})")
        port_text = rest[1:] if rest else ""
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    elif ":" in text:
        raise ConfigError(f"{what} {text!r}: write an IPv6 host in brackets, like [::1]:7708")
    else:
        host, port_text = text, ""
    if not host:
        raise ConfigError(f"{what} {text!r} has no host")
    if not port_text:
        return HostPort(host, DEFAULT_PORT)
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ConfigError(f"{what} {text!r}: the port must be a number from 0 to 65535")
    return HostPort(host, int(port_text))


def parse_network_key(text: str) -> bytes:
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError, AttributeError) as exc:
        raise ConfigError("network_key must be standard base64 of 32 bytes") from exc
    if len(key) != 32:
        raise ConfigError(f"network_key must be 32 bytes, it decodes to {len(key)}")
    return key


def parse_interface(text: str) -> str:
    if text == ALL_INTERFACES:
        return text
    try:
        return str(ipaddress.ip_address(text))
    except ValueError as exc:
        raise ConfigError(
            f"interface {text!r} must be an IP address (like 127.0.0.1) or {ALL_INTERFACES!r}"
        ) from exc


def _want(kind: type | tuple[type, ...], key: str, value: Any, words: str) -> Any:
    # bool is an int in Python; a TOML `hops = true` must not pass as 1.
    if isinstance(value, bool) and kind is int:
        raise ConfigError(f"{key} must be {words}, not {value!r}")
    if not isinstance(value, kind):
        raise ConfigError(f"{key} must be {words}, not {value!r}")
    return value


def _convert(key: str, value: Any) -> Any:
    """Turn one TOML/flag value into the typed field value, or raise ``ConfigError``."""
    if key == "data_dir":
        return Path(_want((str, Path), key, value, "a path")).expanduser()
    if key == "listen":
        return value if isinstance(value, HostPort) else parse_host_port(value, what="listen")
    if key == "public_address":
        if value is None or isinstance(value, HostPort):
            return value
        return parse_host_port(value, what="public_address")
    if key == "network_key":
        if isinstance(value, bytes):
            if len(value) != 32:
                raise ConfigError("network_key must be 32 bytes")
            return value
        return parse_network_key(_want(str, key, value, "base64 text"))
    if key in ("discovery", "auto_follow_lan", "presence", "proxy_pass", "notify"):
        return _want(bool, key, value, "true or false")
    if key == "interfaces":
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list | tuple) or not items:
            raise ConfigError(f"interfaces must be a list of IP addresses or {ALL_INTERFACES!r}")
        parsed = tuple(parse_interface(_want(str, key, item, "an IP address")) for item in items)
        if ALL_INTERFACES in parsed and len(parsed) > 1:
            raise ConfigError(f"interfaces: {ALL_INTERFACES!r} cannot be mixed with addresses")
        return parsed
    if key == "whisper_hops":
        hops = _want(int, key, value, "a whole number from 1 to 8")
        if not 1 <= hops <= 8:
            raise ConfigError(f"whisper_hops must be from 1 to 8, not {hops}")
        return hops
    if key == "hops":
        hops = _want(int, key, value, f"a whole number from 0 to {MAX_HOPS}")
        if not 0 <= hops <= MAX_HOPS:
            raise ConfigError(f"hops must be from 0 to {MAX_HOPS}, not {hops}")
        return hops
    if key in ("hear", "tell"):
        if isinstance(value, Audience):
            return value
        try:
            return Audience.parse(_want(str, key, value, "a word"))
        except ValueError as exc:
            choices = ", ".join(a.value for a in Audience)
            raise ConfigError(f"{key} must be one of {choices}; not {value!r}") from exc
    if key == "quotas":
        return _convert_quotas(value)
    if key == "history":
        return parse_history(value)
    raise ConfigError(f"unknown setting {key!r}; known settings: {', '.join(sorted(_FIELDS))}")


def _convert_quotas(value: Any) -> Quotas:
    if isinstance(value, Quotas):
        return value
    if not isinstance(value, Mapping):
        raise ConfigError("quotas must be a table, like [quotas] lan = 3")
    unknown = set(value) - _QUOTA_FIELDS
    if unknown:
        raise ConfigError(
            f"unknown quota {sorted(unknown)[0]!r}; known: {', '.join(sorted(_QUOTA_FIELDS))}"
        )
    counts: dict[str, int] = {}
    for name, count in value.items():
        count = _want(int, f"quotas.{name}", count, "a whole number")
        if not 0 <= count <= 100:
            raise ConfigError(f"quotas.{name} must be from 0 to 100, not {count}")
        counts[name] = count
    return Quotas(**counts)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError as exc:
        raise ConfigError(f"config file {path} does not exist") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc


def _apply(config: Config, values: Mapping[str, Any], source: str) -> Config:
    changes: dict[str, Any] = {}
    for key, value in values.items():
        key = _ALIASES.get(key, key)
        if key not in _FIELDS:
            raise ConfigError(
                f"{source}: unknown setting {key!r}; known settings: {', '.join(sorted(_FIELDS))}"
            )
        try:
            changes[key] = _convert(key, value)
        except ConfigError as exc:
            raise ConfigError(f"{source}: {exc}") from exc
    return replace(config, **changes)


def load_config(
    config_file: Path | None = None,
    data_dir: Path | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Config:
    """Settings from defaults, the TOML file and ``overrides`` (flags; None values skipped).

    ``config_file`` is the ``--config`` path (must exist); without it
    ``<data_dir>/config.toml`` is read if it exists. ``data_dir`` is ``--data-dir``.
    Raises ``ConfigError`` with the file and key named.
    """
    file_values: dict[str, Any] = {}
    source = ""
    if config_file is not None:
        file_values = _read_toml(config_file)
        source = f"config file {config_file}"
    if data_dir is not None:
        resolved_dir = Path(data_dir).expanduser()
    elif "data_dir" in file_values:
        resolved_dir = _convert_in("data_dir", file_values["data_dir"], source)
        if not resolved_dir.is_absolute() and config_file is not None:
            resolved_dir = config_file.parent / resolved_dir
    else:
        resolved_dir = default_data_dir()
    if config_file is None:
        candidate = resolved_dir / CONFIG_FILE
        if candidate.is_file():
            file_values = _read_toml(candidate)
            source = f"config file {candidate}"
            if "data_dir" in file_values:
                raise ConfigError(
                    f"{source}: data_dir cannot be set inside the data dir's own config file"
                )
    file_values.pop("data_dir", None)
    config = Config(data_dir=resolved_dir)
    config = _apply(config, file_values, source)
    flags = {key: value for key, value in (overrides or {}).items() if value is not None}
    return _apply(config, flags, "command line")


def _convert_in(key: str, value: Any, source: str) -> Any:
    try:
        return _convert(key, value)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from exc
