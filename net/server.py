"""Listening and dialling: TCP plus the secret handshake, errors named by the step that failed."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import socket
import struct
import time
from collections.abc import Awaitable, Callable

from nacl.signing import SigningKey

from net.budget import AddressBudgets, address_group
from net.errors import HandshakeError
from net.peer import (
    HANDSHAKE_TIMEOUT,
    PeerConnection,
    async_client_handshake,
    async_server_handshake,
)
from net.shs import NETWORK_KEY_DEFAULT
from store.errors import UserError
from store.limits import (
    CUT_OFF_PENALTY,
    MAX_HANDSHAKES_PER_ADDRESS,
    MAX_PENDING_HANDSHAKES,
    MAX_SESSION_ADDRESSES,
    NEW_SESSIONS_BURST,
    NEW_SESSIONS_PER_SECOND,
)

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 10.0


class DialStep(enum.StrEnum):
    """Where a dial stopped, in the order they happen (equal to its name as text)."""

    RESOLVE = "resolve"
    CONNECT = "connect"
    HANDSHAKE = "handshake"


class DialError(UserError):
    """Dialling a peer failed at `step`; `reason` (also `detail`) says why."""

    def __init__(self, step: DialStep, address: str, detail: str) -> None:
        self.step: DialStep = step
        self.address = address
        self.detail = detail
        self.reason = detail
        super().__init__(f"{step.value} failed for {address}: {detail}")


async def async_dial(
    host: str,
    port: int,
    server_key: bytes,
    identity: SigningKey,
    network_key: bytes = NETWORK_KEY_DEFAULT,
    *,
    connect_timeout: float = CONNECT_TIMEOUT,
    handshake_timeout: float = HANDSHAKE_TIMEOUT,
    local_host: str | None = None,
) -> PeerConnection:
    """Connect to host:port (from `local_host`, if given) and prove that the peer holds
    `server_key`."""
    where = f"{host}:{port}"
    local = (local_host, 0) if local_host is not None else None
    try:
        async with asyncio.timeout(connect_timeout):
            reader, writer = await asyncio.open_connection(host, port, local_addr=local)
    except socket.gaierror as exc:
        raise DialError(
            DialStep.RESOLVE, where, f"cannot resolve {host!r} ({exc.strerror})"
        ) from None
    except TimeoutError:
        raise DialError(
            DialStep.CONNECT, where, f"no answer within {connect_timeout:g} s"
        ) from None
    except ConnectionRefusedError:
        raise DialError(
            DialStep.CONNECT, where, "connection refused (nothing listens there)"
        ) from None
    except OSError as exc:
        raise DialError(DialStep.CONNECT, where, exc.strerror or str(exc)) from None
    try:
        return await async_client_handshake(
            reader,
            writer,
            identity,
            server_key,
            network_key,
            handshake_timeout=handshake_timeout,
            address=where,
        )
    except HandshakeError as exc:
        raise DialError(DialStep.HANDSHAKE, where, str(exc)) from exc


class HandshakeGate:
    """Which accepted sockets may start a handshake: each IP address (IPv6: each /64) has
    a budget of new sessions and a cap on handshakes in progress, and all of them
    together a cap; counts the sockets turned away."""

    def __init__(self, now: Callable[[], float] = time.monotonic) -> None:
        self.pending: dict[str, int] = {}
        self.sessions = AddressBudgets(
            NEW_SESSIONS_PER_SECOND, NEW_SESSIONS_BURST, MAX_SESSION_ADDRESSES
        )
        self.turned_away = 0
        self._now = now

    @property
    def in_progress(self) -> int:
        return sum(self.pending.values())

    def enter(self, host: str) -> bool:
        """Admit one more handshake from `host`, or False: over a bound."""
        group = address_group(host)
        if (
            self.in_progress >= MAX_PENDING_HANDSHAKES
            or self.pending.get(group, 0) >= MAX_HANDSHAKES_PER_ADDRESS
            or not self.sessions.take(host, self._now())
        ):
            self.turned_away += 1
            return False
        self.pending[group] = self.pending.get(group, 0) + 1
        return True

    def leave(self, host: str) -> None:
        group = address_group(host)
        self.pending[group] -= 1
        if not self.pending[group]:
            del self.pending[group]

    def known(self, host: str) -> None:
        """The session from `host` turned out to be a key we know: its share back."""
        self.sessions.give_back(host, self._now())

    def cut_off(self, host: str) -> None:
        """We cut a session from `host` off for flooding: its address pays more."""
        self.sessions.give_back(host, self._now(), -CUT_OFF_PENALTY)


def turn_away(writer: asyncio.StreamWriter) -> None:
    """Close a socket unread with a reset: no goodbye (it has not said who it is), and a
    reset, unlike a hang-up after its hello, does not read as another network key (a
    dialler would then stop trying), but as a failure to retry later."""
    sock = writer.get_extra_info("socket")
    with contextlib.suppress(OSError, AttributeError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


OnConnection = Callable[[PeerConnection], Awaitable[None]]
OnRefused = Callable[[str, HandshakeError], None]


async def async_listen(
    host: str | None,
    port: int,
    identity: SigningKey,
    on_connection: OnConnection,
    network_key: bytes = NETWORK_KEY_DEFAULT,
    *,
    authorize: Callable[[bytes], bool] | None = None,
    on_refused: OnRefused | None = None,
    handshake_timeout: float = HANDSHAKE_TIMEOUT,
    gate: HandshakeGate | None = None,
) -> asyncio.Server:
    """Accept connections; each that passes the handshake is given to `on_connection`.

    `host` None listens on every interface, IPv4 and IPv6 (one socket each).
    A failed handshake (wrong network key, blocked key, garbage, timeout) closes only
    that socket; it is logged and reported through `on_refused(peer address, error)`.
    At most MAX_PENDING_HANDSHAKES handshakes run at once, MAX_HANDSHAKES_PER_ADDRESS
    from one IP address; a socket beyond that is closed at once, unread.
    """
    gate = gate if gate is not None else HandshakeGate()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peername = writer.get_extra_info("peername")
        host = str(peername[0]) if isinstance(peername, tuple) else "?"
        where = f"{peername[0]}:{peername[1]}" if isinstance(peername, tuple) else "?"
        if not gate.enter(host):
            turn_away(writer)
            return
        try:
            conn = await _async_handshake(reader, writer, where)
        finally:
            gate.leave(host)
        if conn is None:
            return
        try:
            await on_connection(conn)
        except Exception:
            log.exception("connection from %s failed", where)
            conn.close("internal error")
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.async_wait_closed(), 1.0)

    async def _async_handshake(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, where: str
    ) -> PeerConnection | None:
        try:
            return await async_server_handshake(
                reader,
                writer,
                identity,
                network_key,
                authorize=authorize,
                handshake_timeout=handshake_timeout,
            )
        except HandshakeError as exc:
            log.info("refused a connection from %s: %s", where, exc)
            if on_refused is not None:
                on_refused(where, exc)
            return None
        except Exception:
            log.exception("unexpected failure accepting a connection from %s", where)
            writer.close()
            return None

    return await asyncio.start_server(handle, host, port, limit=256 * 1024)


def server_port(server: asyncio.Server) -> int:
    """The port a server actually listens on (useful with port 0)."""
    for sock in server.sockets:
        return int(sock.getsockname()[1])
    raise RuntimeError("the server has no socket")
