"""The asyncio shell of one connection: handshake, box-stream, frames, ping, clean close.

The sans-IO cores (net/shs.py, net/boxstream.py, net/frames.py) do all the protocol
work; this module only moves bytes between them and a socket:

- `async_client_handshake` / `async_server_handshake` drive the secret handshake
  under a timeout and return a `PeerConnection` whose box-stream is keyed.
- `PeerConnection.send_frame` encodes and writes synchronously (so frames leave in
  the order the replication core chose); `async_drain` is the back-pressure point.
- `PeerConnection.async_run(handler)` reads frames until the peer leaves, answers
  pings, measures the round trip of ours, and returns why the connection ended
  (None for a clean goodbye). A malformed frame ends only this connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from nacl.signing import SigningKey

from net.boxstream import BoxStreamDecoder, BoxStreamEncoder
from net.budget import TokenBucket
from net.errors import HandshakeError, HandshakeFailure, ProtocolError, RemoteProtocolError
from net.frames import (
    Bye,
    Clock,
    Ephemeral,
    EphemeralAck,
    Frame,
    FrameDecoder,
    InviteClaim,
    InviteOk,
    Msgs,
    Ping,
    Pong,
    RangeDone,
    RangeMsgs,
    RangeRequest,
    Unknown,
    encode_frame,
)
from net.notes import NoteWriter
from net.shs import NETWORK_KEY_DEFAULT, ClientHandshake, HandshakeResult, ServerHandshake
from store.limits import PING_BURST, PINGS_PER_SECOND, PONG_BUFFER_LIMIT, WRITE_HARD_LIMIT
from store.message import feed_ref

log = logging.getLogger(__name__)

HANDSHAKE_TIMEOUT = 10.0
PING_INTERVAL = 5.0
IDLE_TIMEOUT = 30.0  # nothing at all from the peer this long (pings included): it is gone
READ_SIZE = 256 * 1024
WRITE_HIGH_WATER = 1024 * 1024  # drain() waits above this many buffered bytes
_EMPTY = b""


class FrameHandler(Protocol):
    """Where a connection delivers replication frames (net/replication.py)."""

    def receive_notes(self, session: PeerConnection, notes: dict[bytes, int]) -> None: ...

    async def async_receive_messages(
        self, session: PeerConnection, raws: tuple[bytes, ...]
    ) -> None: ...

    async def async_receive_range(
        self, session: PeerConnection, frame: RangeRequest | RangeMsgs | RangeDone
    ) -> None: ...


class PeerConnection:
    """One authenticated, encrypted connection to a remote key."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        result: HandshakeResult,
        *,
        initiator: bool,
        leftover: bytes = _EMPTY,
        address: str | None = None,
        ping_interval: float = PING_INTERVAL,
        idle_timeout: float = IDLE_TIMEOUT,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._remote = result.remote_key
        self._initiator = initiator
        self._encoder: BoxStreamEncoder = result.encoder()
        self._decoder: BoxStreamDecoder = result.decoder()
        self._frames = FrameDecoder()
        self._notes = NoteWriter()  # our feed numbering in this session (net/notes.py)
        self._leftover = leftover
        self.address = address
        self.ping_interval = ping_interval
        self.idle_timeout = idle_timeout
        self.rtt_ms: float | None = None
        self.connected_at = time.time()
        self.bytes_in = 0
        self.bytes_out = 0
        self.closed = False
        self.close_reason: str | None = None  # what we told the peer
        self.bye_reason: str | None = None  # what the peer told us
        self.fault: str | None = None  # why we cut the peer off, if we did
        self.schedule_link: int | None = None  # the gossip schedule's number for this link
        # Invite redemption (chat/pub.py) sets this; without it an `invite` frame is
        # answered with a bye saying this node takes no invites, `invite_ok` is ignored.
        self.on_invite: (
            Callable[[PeerConnection, InviteClaim | InviteOk], Awaitable[None]] | None
        ) = None
        # Ephemeral gossip (chat/ephemeral.py) sets this; without it such frames are skipped.
        self.on_ephemeral: Callable[[PeerConnection, Ephemeral | EphemeralAck], None] | None = None
        self._ping_n = 0
        self._ping_sent: dict[int, float] = {}
        self._last_heard = time.monotonic()
        self._pings = TokenBucket(PINGS_PER_SECOND, PING_BURST, self._last_heard)  # we answer
        with contextlib.suppress(AttributeError, NotImplementedError):
            writer.transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)

    @property
    def remote(self) -> bytes:
        """The peer's long-term key (its feed id), proven by the handshake."""
        return self._remote

    @property
    def initiator(self) -> bool:
        """True when we dialled, False when the peer dialled us."""
        return self._initiator

    @property
    def direction(self) -> str:
        return "out" if self._initiator else "in"

    def __repr__(self) -> str:
        return f"PeerConnection({feed_ref(self._remote)}, {self.direction})"

    # -- writing ---------------------------------------------------------------

    def send_frame(self, frame: Frame) -> int:
        """Encode, box and write one frame now; returns its plaintext size in bytes."""
        if self.closed:
            return 0
        if self._writer.transport.is_closing():  # the peer is gone: writing only logs
            self._abort()
            return 0
        data = encode_frame(frame, self._notes)
        self._writer.write(self._encoder.encrypt(data))
        self.bytes_out += len(data)
        if self._writer.transport.get_write_buffer_size() > WRITE_HARD_LIMIT:
            self._cut_off(
                "you are too slow: our send buffer for you is full",
                "cut off: it does not read what we send (our send buffer for it is full)",
            )
            self._abort()
        return len(data)

    def _cut_off(self, told: str, fault: str) -> None:
        """Close because the peer misbehaved: `told` to it, `fault` returned by async_run."""
        self.fault = fault
        self.close(told)

    async def async_drain(self) -> None:
        """Wait until the transport's buffer is below its high-water mark."""
        if self.closed:
            return
        try:
            await self._writer.drain()
        except (ConnectionError, RuntimeError):
            self._abort()

    def close(self, reason: str) -> None:
        """Say bye with `reason`, end the box-stream and close the socket (no waiting)."""
        if self.closed:
            return
        self.closed = True
        self.close_reason = reason
        if not self._writer.transport.is_closing():
            try:
                self._writer.write(self._encoder.encrypt(encode_frame(Bye(reason))))
                self._writer.write(self._encoder.goodbye())
            except Exception:  # the transport may already be gone; closing is all that matters
                pass
        self._writer.close()

    def _abort(self) -> None:
        self.closed = True
        with contextlib.suppress(Exception):
            self._writer.transport.abort()

    async def async_wait_closed(self) -> None:
        with contextlib.suppress(Exception):
            await self._writer.wait_closed()

    # -- reading ---------------------------------------------------------------

    async def async_run(self, handler: FrameHandler) -> str | None:
        """Read and dispatch frames until the connection ends; returns the error, if any."""
        pinger = asyncio.create_task(self._async_ping_loop(), name="ping")
        try:
            if self._leftover:
                data, self._leftover = self._leftover, _EMPTY
                await self._async_consume(data, handler)
            while not self._decoder.closed:
                try:
                    data = await self._reader.read(READ_SIZE)
                except (ConnectionError, OSError) as exc:
                    if self.closed:
                        return self.fault
                    return f"the connection broke ({exc.__class__.__name__})"
                if not data:
                    if self.closed:
                        return self.fault
                    self._decoder.receive_eof()
                    return None
                await self._async_consume(data, handler)
                if self.fault is not None:
                    return self.fault
            if self._frames.pending:
                # A goodbye in the middle of a frame: the stream was cut, not closed.
                return "the stream was truncated: a box-stream goodbye in the middle of a frame"
            return None
        except ProtocolError as exc:
            self.close(f"protocol error: {exc}")
            return f"protocol error: {exc}"
        finally:
            pinger.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pinger
            if not self.closed:
                self.close("goodbye")

    async def _async_consume(self, data: bytes, handler: FrameHandler) -> None:
        self._last_heard = time.monotonic()
        self.bytes_in += len(data)
        for chunk in self._decoder.feed(data):
            for frame in self._frames.feed(chunk):
                await self._async_dispatch(frame, handler)
                if self.closed:
                    return

    async def _async_dispatch(self, frame: Frame, handler: FrameHandler) -> None:
        if isinstance(frame, Msgs):
            await handler.async_receive_messages(self, frame.messages)
        elif isinstance(frame, Clock):
            handler.receive_notes(self, dict(frame.notes))
        elif isinstance(frame, RangeRequest | RangeMsgs | RangeDone):
            await handler.async_receive_range(self, frame)
        elif isinstance(frame, Ping):
            self._answer_ping(frame.n)
        elif isinstance(frame, Pong):
            sent = self._ping_sent.pop(frame.n, None)
            if sent is not None:
                self.rtt_ms = (time.monotonic() - sent) * 1000.0
        elif isinstance(frame, Bye):
            self.bye_reason = frame.reason
            log.info("%s said bye: %s", feed_ref(self._remote), frame.reason)
        elif isinstance(frame, InviteClaim | InviteOk):
            if self.on_invite is not None:
                await self.on_invite(self, frame)
            elif isinstance(frame, InviteClaim):
                self.close("invite rejected: this node is not a pub and takes no invites")
        elif isinstance(frame, Ephemeral | EphemeralAck):
            if self.on_ephemeral is not None:
                self.on_ephemeral(self, frame)
        elif isinstance(frame, Unknown):
            log.debug("ignoring a frame of unknown kind %r", frame.kind)

    def _answer_ping(self, n: int) -> None:
        """Pong, unless the peer pings faster than any peer needs (closed: a flood) or
        does not read what we send (no pong while our buffer for it is full)."""
        if not self._pings.take(time.monotonic()):
            rate = f"more than {PINGS_PER_SECOND:g} a second"
            self._cut_off(f"too many pings ({rate})", f"cut off: it sent too many pings ({rate})")
            return
        if self._writer.transport.get_write_buffer_size() <= PONG_BUFFER_LIMIT:
            self.send_frame(Pong(n))

    async def _async_ping_loop(self) -> None:
        self.ping()
        while not self.closed:
            await asyncio.sleep(self.ping_interval)
            if time.monotonic() - self._last_heard > self.idle_timeout:
                log.warning("%s stopped answering; closing", feed_ref(self._remote))
                self.close("you stopped answering")
                self._abort()
                return
            self.ping()

    def ping(self) -> None:
        """Send one ping now; the matching pong sets `rtt_ms`."""
        self._ping_n += 1
        now = time.monotonic()
        self._ping_sent[self._ping_n] = now
        # Keep only recent unanswered pings.
        for n in [n for n, t in self._ping_sent.items() if now - t > self.idle_timeout]:
            del self._ping_sent[n]
        self.send_frame(Ping(self._ping_n))


# -- handshakes ----------------------------------------------------------------


async def _async_close_writer(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(writer.wait_closed(), 1.0)


async def async_client_handshake(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    identity: SigningKey,
    server_key: bytes,
    network_key: bytes = NETWORK_KEY_DEFAULT,
    *,
    handshake_timeout: float = HANDSHAKE_TIMEOUT,
    address: str | None = None,
) -> PeerConnection:
    """Run the client side of the secret handshake; raises `HandshakeError` (socket closed)."""
    shake = ClientHandshake(identity, server_key, network_key)
    try:
        async with asyncio.timeout(handshake_timeout):
            writer.write(shake.start())
            while not shake.done:
                data = await _async_read_some(reader)
                if data is None:
                    raise shake.reset()
                if not data:
                    shake.receive_eof()
                    raise shake.timed_out()  # receive_eof always raises before DONE
                out = shake.receive_data(data)
                if out:
                    writer.write(out)
            await writer.drain()
    except TimeoutError:
        await _async_close_writer(writer)
        raise shake.timed_out() from None
    except HandshakeError:
        await _async_close_writer(writer)
        raise
    assert shake.result is not None
    return PeerConnection(
        reader, writer, shake.result, initiator=True, leftover=shake.unused_data, address=address
    )


async def async_server_handshake(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    identity: SigningKey,
    network_key: bytes = NETWORK_KEY_DEFAULT,
    *,
    authorize: Callable[[bytes], bool | Awaitable[bool]] | None = None,
    handshake_timeout: float = HANDSHAKE_TIMEOUT,
) -> PeerConnection:
    """Run the server side; `authorize(client_key)` may refuse (blocked keys)."""
    shake = ServerHandshake(identity, network_key)
    try:
        async with asyncio.timeout(handshake_timeout):
            while not shake.done:
                data = await _async_read_some(reader)
                if data is None:
                    raise shake.reset()
                if not data:
                    shake.receive_eof()
                    raise shake.timed_out()
                out = shake.receive_data(data)
                if out:
                    writer.write(out)
                if shake.client_key is not None and not shake.done:
                    allowed = True
                    if authorize is not None:
                        verdict = authorize(shake.client_key)
                        allowed = bool(await verdict if isinstance(verdict, Awaitable) else verdict)
                    if not allowed:
                        raise shake.refuse()
                    writer.write(shake.accept())
            await writer.drain()
    except TimeoutError:
        await _async_close_writer(writer)
        raise shake.timed_out() from None
    except HandshakeError:
        await _async_close_writer(writer)
        raise
    assert shake.result is not None
    peername = writer.get_extra_info("peername")
    address = f"{peername[0]}:{peername[1]}" if isinstance(peername, tuple) else None
    return PeerConnection(
        reader, writer, shake.result, initiator=False, leftover=shake.unused_data, address=address
    )


async def _async_read_some(reader: asyncio.StreamReader) -> bytes | None:
    """What arrived (b"" at the end of the stream; None: the peer reset the connection)."""
    try:
        return await reader.read(READ_SIZE)
    except ConnectionResetError:
        return None
    except OSError:
        return b""


__all__ = [
    "HandshakeError",
    "HandshakeFailure",
    "PeerConnection",
    "RemoteProtocolError",
    "async_client_handshake",
    "async_server_handshake",
]
