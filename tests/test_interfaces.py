"""Which interfaces run mDNS, which addresses people can dial, which peers discovery uses."""

from __future__ import annotations

import ipaddress

from net.interfaces import (
    Interface,
    dialable_hosts,
    discovery_addresses,
    local_interfaces,
    networks_of,
    on_networks,
)


def iface(name: str, *addresses: str, up: bool = True, multicast: bool = True) -> Interface:
    parsed = tuple(ipaddress.ip_interface(a) for a in addresses)
    loopback = any(a.ip.is_loopback for a in parsed)
    return Interface(name, up, loopback, multicast and not loopback, parsed)


MACHINE = [
    iface("lo", "127.0.0.1/8", "::1/128"),
    iface("eth0", "fe80::1/64", "192.168.1.20/24", "2001:db8::20/64"),
    iface("wlan0", "10.0.0.5/24", up=False),
    iface("tun0", "10.8.0.2/24", multicast=False),
    iface("v6only", "fe80::2/64", "2001:db8:1::9/64"),
]


def test_mdns_runs_on_up_multicast_lan_interfaces_plus_loopback() -> None:
    assert discovery_addresses(MACHINE) == ["192.168.1.20", "127.0.0.1"]
    assert discovery_addresses([MACHINE[0]]) == ["127.0.0.1"]


def test_a_wildcard_gives_one_dialable_address_per_up_interface_never_the_wildcard() -> None:
    assert dialable_hosts("*", MACHINE) == ["192.168.1.20", "10.8.0.2", "2001:db8:1::9"]
    assert dialable_hosts("0.0.0.0", MACHINE) == ["192.168.1.20", "10.8.0.2"]
    assert dialable_hosts("::", MACHINE) == ["2001:db8::20", "2001:db8:1::9"]
    assert dialable_hosts("0.0.0.0", [MACHINE[0]]) == ["127.0.0.1"]
    assert dialable_hosts("192.168.1.20", MACHINE) == ["192.168.1.20"]


def test_discovery_uses_addresses_on_the_configured_interfaces_subnets_only() -> None:
    lan = networks_of(["192.168.1.20"], MACHINE)
    assert lan == [ipaddress.ip_network("192.168.1.0/24")]
    assert on_networks("192.168.1.77", lan)
    assert not on_networks("127.0.0.1", lan)
    assert not on_networks("10.0.0.9", lan)
    loop = networks_of(["127.0.0.1"], MACHINE)
    assert on_networks("127.0.0.5", loop) and not on_networks("192.168.1.77", loop)
    assert not on_networks("not an ip", loop)


def test_this_machine_is_listed_with_loopback() -> None:
    found = local_interfaces()  # reads the interface list only, sends nothing
    assert any(i.loopback for i in found)
