"""Settings: defaults, the TOML file, flag overrides and clear errors for bad values."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import pytest

from chat.config import (
    DEFAULT_NETWORK_KEY,
    Config,
    ConfigError,
    HostPort,
    Quotas,
    load_config,
    parse_host_port,
)
from net.policy import Audience


def test_defaults_without_any_file(tmp_path: Path) -> None:
    config = load_config(data_dir=tmp_path)
    assert config.data_dir == tmp_path
    assert config.listen == HostPort("*", 7708)  # every interface: the LAN is the default
    assert config.network_key == hashlib.sha256(b"treechat network v1").digest()
    assert config.network_key == DEFAULT_NETWORK_KEY
    assert config.discovery is True and config.auto_follow_lan is True
    assert config.interfaces == ("all",) and config.all_interfaces
    assert config.hops == 2
    assert config.hear is Audience.ANYBODY and config.tell is Audience.ANYBODY
    assert config.quotas == Quotas()
    assert config.database_path.parent == tmp_path


def test_listen_on_every_interface_is_written_with_a_star(tmp_path: Path) -> None:
    assert parse_host_port("*:7709") == HostPort("*", 7709)
    assert str(parse_host_port("*")) == "*:7708"
    config = load_config(data_dir=tmp_path, overrides={"listen": "127.0.0.1:0"})
    assert config.listen == HostPort("127.0.0.1", 0)


def test_default_data_dir_is_the_platform_user_data_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("chat.config.platformdirs.user_data_dir", lambda app: f"/x/{app}")
    assert load_config().data_dir == Path("/x/treechat")


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


FULL = """
listen = "0.0.0.0:9000"
public_address = "chat.example.org:443"
network_key = "{key}"
discovery = false
interfaces = ["127.0.0.1", "::1"]
auto_follow_lan = false
hops = 3
hear = "following"
tell = "mutuals"

[quotas]
lan = 5
other = 0
"""


def test_data_dir_config_toml_is_read(tmp_path: Path) -> None:
    key = bytes(range(32))
    _write(tmp_path / "config.toml", FULL.format(key=base64.b64encode(key).decode()))
    config = load_config(data_dir=tmp_path)
    assert config.listen == HostPort("0.0.0.0", 9000)
    assert config.public_address == HostPort("chat.example.org", 443)
    assert config.network_key == key
    assert config.discovery is False and config.auto_follow_lan is False
    assert config.interfaces == ("127.0.0.1", "::1")
    assert config.hops == 3
    assert config.hear is Audience.FOLLOWING and config.tell is Audience.MUTUALS
    assert config.quotas == Quotas(lan=5, pub=2, friend=3, other=0)


def test_explicit_config_file_sets_data_dir_and_wins(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    _write(data_dir / "config.toml", "hops = 4\n")
    explicit = _write(tmp_path / "mine.toml", 'data_dir = "data"\nhops = 1\n')
    config = load_config(config_file=explicit)
    assert config.data_dir == data_dir  # relative to the config file
    assert config.hops == 1  # the data dir's own config.toml is not read


def test_flags_override_the_file(tmp_path: Path) -> None:
    _write(tmp_path / "config.toml", 'listen = "0.0.0.0:9000"\ndiscovery = true\nhops = 3\n')
    config = load_config(
        data_dir=tmp_path,
        overrides={"listen": "127.0.0.1:0", "discovery": False, "hops": None},
    )
    assert config.listen == HostPort("127.0.0.1", 0)
    assert config.discovery is False
    assert config.hops == 3  # None means "flag not given"


def test_data_dir_flag_beats_the_config_file(tmp_path: Path) -> None:
    explicit = _write(tmp_path / "c.toml", 'data_dir = "/somewhere/else"\n')
    assert load_config(config_file=explicit, data_dir=tmp_path).data_dir == tmp_path


@pytest.mark.parametrize(
    ("toml", "words"),
    [
        ("colour = 'blue'\n", "unknown setting 'colour'"),
        ("hops = 'two'\n", "hops must be"),
        ("hops = true\n", "hops must be"),
        ("hops = 9\n", "from 0 to 6"),
        ("hear = 'everyone'\n", "anybody, following, mutuals"),
        ("discovery = 'yes'\n", "true or false"),
        ("listen = 'localhost:http'\n", "port must be a number"),
        ("listen = '::1:7708'\n", "brackets"),
        ("network_key = 'c2hvcnQ='\n", "32 bytes"),
        ("network_key = '###'\n", "base64"),
        ("interfaces = ['eth0']\n", "IP address"),
        ("interfaces = ['all', '127.0.0.1']\n", "cannot be mixed"),
        ("[quotas]\nwifi = 3\n", "unknown quota 'wifi'"),
        ("[quotas]\nlan = -1\n", "quotas.lan"),
        ("quotas = 3\n", "must be a table"),
        ("hops = \n", "not valid TOML"),
    ],
)
def test_bad_values_name_file_and_key(tmp_path: Path, toml: str, words: str) -> None:
    path = _write(tmp_path / "config.toml", toml)
    with pytest.raises(ConfigError) as info:
        load_config(data_dir=tmp_path)
    assert words in str(info.value)
    assert str(path) in str(info.value)


def test_bad_flag_is_reported_as_command_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="command line: listen"):
        load_config(data_dir=tmp_path, overrides={"listen": "nowhere:99999"})


def test_missing_explicit_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(config_file=tmp_path / "nope.toml")


def test_data_dir_inside_the_data_dirs_own_file_is_refused(tmp_path: Path) -> None:
    _write(tmp_path / "config.toml", 'data_dir = "/tmp/x"\n')
    with pytest.raises(ConfigError, match="data_dir cannot be set"):
        load_config(data_dir=tmp_path)


def test_interfaces_all_and_single_string(tmp_path: Path) -> None:
    _write(tmp_path / "config.toml", 'interfaces = "all"\n')
    config = load_config(data_dir=tmp_path)
    assert config.all_interfaces and config.interfaces == ("all",)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:7708", HostPort("127.0.0.1", 7708)),
        ("example.org", HostPort("example.org", 7708)),
        ("[::1]:9", HostPort("::1", 9)),
        ("[::1]", HostPort("::1", 7708)),
    ],
)
def test_parse_address(text: str, expected: HostPort) -> None:
    assert parse_host_port(text) == expected
    assert parse_host_port(str(expected)) == expected


def test_config_is_immutable(tmp_path: Path) -> None:
    config = load_config(data_dir=tmp_path)
    with pytest.raises(AttributeError):
        config.hops = 5  # type: ignore[misc]
    assert isinstance(config, Config)


def test_notify_is_a_boolean_setting(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text("notify = false\n")
    assert load_config(data_dir=tmp_path).notify is False
    assert load_config(data_dir=tmp_path / "none").notify is True
    (tmp_path / "config.toml").write_text('notify = "no"\n')
    with pytest.raises(ConfigError, match="notify"):
        load_config(data_dir=tmp_path)
