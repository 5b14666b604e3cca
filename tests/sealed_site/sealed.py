"""The sealed-network guard: a test's sockets reach only loopback and namespaces it made.

Installed by ``tests/conftest.py`` (autouse, every test) and, through
``sitecustomize.py`` in this directory (on ``PYTHONPATH`` for the whole run), in every
Python subprocess a test starts. It wraps the methods of ``socket.socket`` that open a
path to a network and checks the address each call names:

- ``bind``: a TCP socket only on loopback; a UDP socket on loopback or the wildcard
  (an unconnected UDP socket is bound to the wildcard by the kernel anyway; what it
  then sends and hears is checked datagram by datagram below);
- ``connect`` / ``connect_ex``: loopback only;
- ``sendto`` / ``sendmsg``: loopback, or an mDNS multicast group when the socket's
  outgoing multicast interface is loopback (so the packet never leaves ``lo``);
- ``recvfrom`` / ``recvfrom_into`` / ``recvmsg``: a datagram from outside loopback is
  refused (a wildcard mDNS socket hears what other processes joined on real interfaces);
- ``setsockopt`` joining a multicast group: on loopback only.

Anything else is refused with ``SealedNetworkError`` (a ``PermissionError``, so the
code under test takes its ordinary "could not connect" path and sends nothing) and
recorded; the fixture fails the test with every recorded line at teardown, so a
refusal that the code swallowed (a dialler that retries) still fails the test.

A call made while the calling thread is inside a network namespace registered with
``allow_namespace`` is allowed: that network exists only inside the test.

Reach: only sockets created through Python's ``socket`` module in this process or in
a Python subprocess that inherited ``PYTHONPATH``. A subprocess started with a
replaced environment, or a non-Python program, is outside it; such tests pass
loopback flags explicitly (docs/testing.md).
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import os
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

REPORT_ENV = "TREECHAT_SEALED_REPORT"
"""A file a guarded subprocess appends its refusals to (one line each)."""
NAMESPACES_ENV = "TREECHAT_SEALED_NETNS"
"""Comma-separated inode numbers of the network namespaces a test made."""

_INET = (socket.AF_INET, socket.AF_INET6)
_MDNS_GROUPS = {ipaddress.ip_address("224.0.0.251"), ipaddress.ip_address("ff02::fb")}
_THREAD_NETNS = "/proc/thread-self/ns/net"


class SealedNetworkError(PermissionError):
    """A test tried to reach beyond loopback."""


class Guard:
    """Checks socket calls against loopback; records what it refused."""

    def __init__(self, report_file: str | None = None, *, child: bool = False) -> None:
        self.violations: list[str] = []
        self.namespaces: set[int] = set()
        self.report_file = report_file
        """Subprocesses append refusals here; the test's own guard reads them back."""
        self.child = child
        self._lock = threading.Lock()
        self._originals: dict[str, Callable[..., Any]] = {}

    # -- install / remove

    def install(self) -> None:
        """Wrap the network methods of ``socket.socket`` (idempotent)."""
        if self._originals:
            return
        cls = socket.socket
        for name, check in (
            ("bind", self._check_bind),
            ("connect", self._check_connect),
            ("connect_ex", self._check_connect),
            ("sendto", self._check_sendto),
        ):
            self._wrap_address_call(cls, name, check)
        self._wrap_sendmsg(cls)
        for name in ("recvfrom", "recvfrom_into", "recvmsg"):
            self._wrap_receive(cls, name)
        self._wrap_setsockopt(cls)

    def uninstall(self) -> None:
        for name, original in self._originals.items():
            setattr(socket.socket, name, original)
        self._originals.clear()

    def allow_namespace(self, path: str) -> None:
        """Allow calls made from inside the network namespace at `path` (e.g. /run/netns/x)."""
        self.namespaces.add(os.stat(path).st_ino)
        # Subprocesses started from now on (``ip netns exec ... python``) inherit it.
        os.environ[NAMESPACES_ENV] = ",".join(str(n) for n in sorted(self.namespaces))

    def take(self) -> list[str]:
        """The refusals recorded so far (in this process and its subprocesses); clears them."""
        with self._lock:
            found, self.violations = self.violations, []
        if not self.child and self.report_file and os.path.exists(self.report_file):
            with open(self.report_file, "r+", encoding="utf-8") as handle:
                found += [line.rstrip("\n") for line in handle if line.strip()]
                handle.seek(0)
                handle.truncate()
        return found

    # -- the rules

    def _check_bind(self, sock: socket.socket, address: Any) -> str | None:
        host = _host(address)
        if host is None or _is_loopback(host):
            return None
        if _is_wildcard(host) and sock.type == socket.SOCK_DGRAM:
            return None
        return f"bind to {_show(address)}"

    def _check_connect(self, sock: socket.socket, address: Any) -> str | None:
        host = _host(address)
        if host is None or _is_loopback(host):
            return None
        return f"connect to {_show(address)}"

    def _check_sendto(self, sock: socket.socket, address: Any) -> str | None:
        host = _host(address)
        if host is None or _is_loopback(host):
            return None
        if _ip(host) in _MDNS_GROUPS and _multicast_on_loopback(sock):
            return None
        return f"sendto {_show(address)}"

    def _check_join(self, sock: socket.socket, level: int, option: int, value: Any) -> str | None:
        joins_v4 = level == socket.IPPROTO_IP and option == socket.IP_ADD_MEMBERSHIP
        joins_v6 = level == socket.IPPROTO_IPV6 and option == socket.IPV6_JOIN_GROUP
        if not (joins_v4 or joins_v6) or not isinstance(value, bytes):
            return None
        if joins_v4:  # ip_mreq (group, interface address) or ip_mreqn (+ interface index)
            interface = socket.inet_ntoa(value[4:8])
            index = int.from_bytes(value[8:12], sys.byteorder) if len(value) >= 12 else 0
            if _is_loopback(interface) or (index and index == _loopback_index()):
                return None
            return f"joining multicast group {socket.inet_ntoa(value[:4])} on {interface}"
        index = int.from_bytes(value[16:20], sys.byteorder)  # ipv6_mreq (group, index)
        if index == _loopback_index():
            return None
        return f"joining an IPv6 multicast group on interface index {index}"

    # -- wrapping

    def _refuse(self, what: str) -> None:
        if self._in_test_namespace():
            return
        where = f" in subprocess {os.getpid()} ({' '.join(sys.argv[:4])})" if self.child else ""
        line = (
            f"sealed test network: refused {what}{where}"
            " (tests may reach only 127.0.0.0/8, ::1 and namespaces they made)"
        )
        with self._lock:
            self.violations.append(line)
        if self.child and self.report_file:
            with contextlib.suppress(OSError), open(self.report_file, "a", encoding="utf-8") as f:
                f.write(line + "\n")
        raise SealedNetworkError(errno.EACCES, line)  # errno and strerror, like the kernel's

    def _in_test_namespace(self) -> bool:
        if not self.namespaces:
            return False
        try:
            return os.stat(_THREAD_NETNS).st_ino in self.namespaces
        except OSError:
            return False

    def _wrap_address_call(
        self, cls: type[socket.socket], name: str, check: Callable[[socket.socket, Any], str | None]
    ) -> None:
        original = self._originals.setdefault(name, getattr(cls, name))
        guard = self

        def guarded(sock: socket.socket, *args: Any) -> Any:
            if sock.family in _INET and args:
                address = args[-1] if name == "sendto" else args[0]
                refused = check(sock, address)
                if refused is not None:
                    guard._refuse(refused)
            return original(sock, *args)

        setattr(cls, name, guarded)

    def _wrap_sendmsg(self, cls: type[socket.socket]) -> None:
        original = self._originals.setdefault("sendmsg", cls.sendmsg)
        guard = self

        def guarded(sock: socket.socket, *args: Any) -> Any:
            if sock.family in _INET and len(args) >= 4 and args[3] is not None:
                refused = guard._check_sendto(sock, args[3])
                if refused is not None:
                    guard._refuse(refused)
            return original(sock, *args)

        cls.sendmsg = guarded  # type: ignore[method-assign,assignment]

    def _wrap_receive(self, cls: type[socket.socket], name: str) -> None:
        original = self._originals.setdefault(name, getattr(cls, name))
        guard = self

        def guarded(sock: socket.socket, *args: Any, **kwargs: Any) -> Any:
            result = original(sock, *args, **kwargs)
            if sock.family in _INET:
                source = result[-1] if name == "recvmsg" else result[1]
                host = _host(source)
                if host is not None and not _is_loopback(host):
                    guard._refuse(f"a datagram from {_show(source)}")
            return result

        setattr(cls, name, guarded)

    def _wrap_setsockopt(self, cls: type[socket.socket]) -> None:
        original = self._originals.setdefault("setsockopt", cls.setsockopt)
        guard = self

        def guarded(sock: socket.socket, level: int, option: int, *args: Any) -> Any:
            if sock.family in _INET and args:
                refused = guard._check_join(sock, level, option, args[0])
                if refused is not None:
                    guard._refuse(refused)
            return original(sock, level, option, *args)

        cls.setsockopt = guarded  # type: ignore[method-assign,assignment]


# ------------------------------------------------------------------------ addresses


def _host(address: Any) -> str | None:
    if isinstance(address, tuple) and address and isinstance(address[0], str):
        return address[0]
    return None


def _show(address: Any) -> str:
    host, port = address[0], address[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    ip = _ip(host)
    return ip is not None and ip.is_loopback


def _is_wildcard(host: str) -> bool:
    if host == "":
        return True
    ip = _ip(host)
    return ip is not None and ip.is_unspecified


def _loopback_index() -> int:
    try:
        return socket.if_nametoindex("lo")
    except OSError:
        return 1


def _multicast_on_loopback(sock: socket.socket) -> bool:
    """Whether multicast sent on `sock` goes out the loopback interface only."""
    try:
        if sock.family == socket.AF_INET:
            raw = sock.getsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, 4)
            return _is_loopback(socket.inet_ntoa(raw))
        index = sock.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF)
        return bool(index == _loopback_index())
    except OSError:
        return False


# ------------------------------------------------------------------- child processes


def install_from_environment() -> Guard | None:
    """In a subprocess: install a guard reporting to the file the test named, if any."""
    report = os.environ.get(REPORT_ENV)
    if not report:
        return None
    guard = Guard(report_file=report, child=True)
    for inode in filter(None, os.environ.get(NAMESPACES_ENV, "").split(",")):
        guard.namespaces.add(int(inode))
    guard.install()
    return guard


@contextlib.contextmanager
def installed(report_file: str) -> Iterator[Guard]:
    """The guard for one test run in this process; removed afterwards."""
    guard = Guard(report_file=report_file)
    guard.install()
    try:
        yield guard
    finally:
        guard.uninstall()


SITE_DIR = os.path.dirname(os.path.abspath(__file__))


def child_env(*paths: str | os.PathLike[str]) -> dict[str, str]:
    """The environment for a Python subprocess: ours, with `paths` on PYTHONPATH and the
    guard's directory first, so the subprocess is sealed too (its ``sitecustomize``)."""
    env = dict(os.environ)
    inherited = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p != SITE_DIR]
    env["PYTHONPATH"] = os.pathsep.join([SITE_DIR, *(os.fspath(p) for p in paths), *inherited])
    return env
