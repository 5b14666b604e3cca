"""Multiserver addresses (`net:HOST:PORT~shs:KEY`) and invites (`...~shs:KEY:SECRET`).

The form is SSB's multiserver address, so users of that ecosystem recognise it:
sections joined by `~`, arguments by `:`, alternatives by `;`. KEY is the standard
base64 of the 32-byte ed25519 public key (no `@`, no `.ed25519`); SECRET is the standard
base64 of a 32-byte invite secret. Parsing takes the first `net`+`shs` alternative.

IPv6: as in SSB's `net` plugin the port is whatever follows the last `:`, so a bare
IPv6 host (`net:::1:7708~shs:...`) parses; `[::1]` in brackets is accepted too. We
always print the bare form, as SSB does, so our addresses stay readable by SSB tools.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
from dataclasses import dataclass

from store.errors import UserError

DEFAULT_PORT = 7708


class AddressError(ValueError, UserError):
    """The string is not a usable address or invite; the message says what is wrong."""

    def __init__(self, text: str, problem: str) -> None:
        self.text = text
        self.problem = problem
        shown = text if len(text) <= 120 else text[:117] + "..."
        super().__init__(f"bad address {shown!r}: {problem}")


def _b64_32(text: str, whole: str, what: str) -> bytes:
    if text.startswith("@") or text.endswith(".ed25519"):
        raise AddressError(whole, f"write the {what} without the @ and the .ed25519")
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise AddressError(whole, f"the {what} is not standard base64") from None
    if len(raw) != 32:
        raise AddressError(whole, f"the {what} is {len(raw)} bytes, not 32")
    return raw


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


@dataclass(frozen=True, slots=True)
class Address:
    """Where a node listens and which long-term key it must prove (its feed id)."""

    host: str
    port: int
    key: bytes

    def __str__(self) -> str:
        return f"net:{self.host}:{self.port}~shs:{_b64(self.key)}"


@dataclass(frozen=True, slots=True)
class Invite:
    """A pub's address plus a secret the pub accepts a limited number of times."""

    address: Address
    secret: bytes

    def __str__(self) -> str:
        return f"{self.address}:{_b64(self.secret)}"


def _parse_net(section: str, whole: str) -> tuple[str, int]:
    # section is "net:HOST:PORT"
    rest = section[len("net:") :]
    host, sep, port_text = rest.rpartition(":")
    if not sep:
        raise AddressError(whole, "the net part needs HOST:PORT")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not host:
        raise AddressError(whole, "the host is empty")
    if any(c.isspace() for c in host) or "/" in host:
        raise AddressError(whole, f"the host {host!r} contains spaces or slashes")
    if ":" in host:
        try:
            ipaddress.IPv6Address(host.split("%", 1)[0])
        except ValueError:
            raise AddressError(whole, f"the host {host!r} is not a valid IPv6 address") from None
    if not port_text.isdigit() or not port_text.isascii():
        raise AddressError(whole, f"the port {port_text!r} is not a number")
    port = int(port_text)
    if not 1 <= port <= 65535:
        raise AddressError(whole, f"the port {port} is outside 1..65535")
    return host, port


def _parse(text: str) -> tuple[Address, list[str]]:
    """The address of the first usable alternative, and its extra shs arguments."""
    whole = text
    text = text.strip()
    if not text:
        raise AddressError(whole, "it is empty")
    problems: list[str] = []
    for alternative in text.split(";"):
        sections = alternative.split("~")
        if len(sections) != 2 or not sections[0].startswith("net:"):
            problems.append("expected the form net:HOST:PORT~shs:KEY")
            continue
        net, shs = sections
        if not shs.startswith("shs:"):
            problems.append("the second part must start with shs:")
            continue
        host, port = _parse_net(net, whole)
        args = shs[len("shs:") :].split(":")
        key = _b64_32(args[0], whole, "key")
        return Address(host, port, key), args[1:]
    raise AddressError(whole, problems[0])


def parse_address(text: str) -> Address:
    """Parse `net:HOST:PORT~shs:KEY`; an invite is refused (use `parse_invite`)."""
    address, extra = _parse(text)
    if extra:
        raise AddressError(text, "this is an invite (it has a secret); use join to redeem it")
    return address


def parse_invite(text: str) -> Invite:
    """Parse `net:HOST:PORT~shs:KEY:SECRET`."""
    address, extra = _parse(text)
    if not extra:
        raise AddressError(text, "this is an address without an invite secret")
    if len(extra) != 1:
        raise AddressError(text, "an invite has exactly one secret after the key")
    return Invite(address, _b64_32(extra[0], text, "invite secret"))
