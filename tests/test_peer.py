"""The connection shell on real loopback sockets: handshake, frames, ping, refusals, bad frames."""

from __future__ import annotations

import asyncio
import hashlib

import pytest
from nacl.signing import SigningKey

from chat.joining import NoReplication
from net.errors import HandshakeFailure
from net.frames import Clock, Msgs
from net.peer import PeerConnection
from net.server import DialError, async_dial, async_listen, server_port
from net.shs import NETWORK_KEY_DEFAULT


class Recorder(NoReplication):
    """A frame handler that records the notes and messages that reach it."""

    def __init__(self) -> None:
        self.notes: list[dict[bytes, int]] = []
        self.msgs: list[tuple[bytes, ...]] = []
        self.got = asyncio.Event()

    def receive_notes(self, session: PeerConnection, notes: dict[bytes, int]) -> None:
        self.notes.append(notes)
        self.got.set()

    async def async_receive_messages(
        self, session: PeerConnection, raws: tuple[bytes, ...]
    ) -> None:
        self.msgs.append(raws)
        self.got.set()


async def _serve(
    server_key: SigningKey, handler: Recorder, **kwargs: object
) -> tuple[asyncio.Server, asyncio.Queue[PeerConnection], asyncio.Queue[str | None]]:
    accepted: asyncio.Queue[PeerConnection] = asyncio.Queue()
    ended: asyncio.Queue[str | None] = asyncio.Queue()

    async def on_connection(conn: PeerConnection) -> None:
        await accepted.put(conn)
        await ended.put(await conn.async_run(handler))

    server = await async_listen(
        "127.0.0.1",
        0,
        server_key,
        on_connection,
        **kwargs,  # type: ignore[arg-type]
    )
    return server, accepted, ended


async def test_frames_flow_both_ways_and_ping_measures_rtt() -> None:
    server_key, client_key = SigningKey.generate(), SigningKey.generate()
    server_side = Recorder()
    server, accepted, ended = await _serve(server_key, server_side)
    try:
        conn = await async_dial(
            "127.0.0.1", server_port(server), bytes(server_key.verify_key), client_key
        )
        client_side = Recorder()
        run = asyncio.create_task(conn.async_run(client_side))
        remote = await asyncio.wait_for(accepted.get(), 5)
        assert remote.remote == bytes(client_key.verify_key)
        assert conn.remote == bytes(server_key.verify_key)
        assert conn.initiator and not remote.initiator
        feed = bytes(range(32))
        conn.send_frame(Clock({feed: 7}))
        remote.send_frame(Msgs((b"x" * 5000, b"y")))  # spans two box-stream chunks
        await asyncio.wait_for(server_side.got.wait(), 5)
        await asyncio.wait_for(client_side.got.wait(), 5)
        assert server_side.notes == [{feed: 7}]
        assert client_side.msgs == [(b"x" * 5000, b"y")]
        for _ in range(100):
            if conn.rtt_ms is not None:
                break
            await asyncio.sleep(0.02)
        assert conn.rtt_ms is not None and conn.rtt_ms >= 0
        conn.close("goodbye")
        assert await asyncio.wait_for(run, 5) is None
        assert await asyncio.wait_for(ended.get(), 5) is None
        assert remote.bye_reason == "goodbye"
    finally:
        server.close()


async def test_wrong_network_key_is_refused_with_a_clear_reason_in_time() -> None:
    server_key, client_key = SigningKey.generate(), SigningKey.generate()
    server, _, _ = await _serve(server_key, Recorder())
    other_network = hashlib.sha256(b"another group").digest()
    try:
        with pytest.raises(DialError) as caught:
            await asyncio.wait_for(
                async_dial(
                    "127.0.0.1",
                    server_port(server),
                    bytes(server_key.verify_key),
                    client_key,
                    other_network,
                    handshake_timeout=3,
                ),
                5,
            )
        assert caught.value.step == "handshake"
        assert HandshakeFailure.WRONG_NETWORK.value in str(caught.value)
    finally:
        server.close()


async def test_blocked_key_is_refused_at_the_handshake() -> None:
    server_key, client_key = SigningKey.generate(), SigningKey.generate()
    blocked = bytes(client_key.verify_key)
    refusals: list[str] = []
    server, accepted, _ = await _serve(
        server_key,
        Recorder(),
        authorize=lambda key: key != blocked,
        on_refused=lambda where, error: refusals.append(str(error)),
    )
    try:
        with pytest.raises(DialError) as caught:
            await async_dial(
                "127.0.0.1", server_port(server), bytes(server_key.verify_key), client_key
            )
        assert caught.value.step == "handshake"
        assert accepted.empty()
        assert refusals and "refused" in refusals[0]
        # Someone else still gets in.
        conn = await async_dial(
            "127.0.0.1", server_port(server), bytes(server_key.verify_key), SigningKey.generate()
        )
        conn.close("goodbye")
    finally:
        server.close()


async def test_a_malformed_frame_closes_only_that_connection() -> None:
    server_key = SigningKey.generate()
    server_side = Recorder()
    server, accepted, ended = await _serve(server_key, server_side)
    try:
        port, key = server_port(server), bytes(server_key.verify_key)
        bad = await async_dial("127.0.0.1", port, key, SigningKey.generate())
        good = await async_dial("127.0.0.1", port, key, SigningKey.generate())
        await accepted.get()
        await accepted.get()
        # A length-prefixed frame whose body is not a msgpack [kind, body] array.
        bad._writer.write(bad._encoder.encrypt(b"\x00\x00\x00\x03abc"))
        error = await asyncio.wait_for(ended.get(), 5)
        assert error is not None and "protocol error" in error
        feed = bytes(32)
        good.send_frame(Clock({feed: 1}))
        await asyncio.wait_for(server_side.got.wait(), 5)
        assert server_side.notes == [{feed: 1}]
        good.close("goodbye")
        bad.close("goodbye")
    finally:
        server.close()


async def test_handshake_times_out_against_a_silent_server() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(5)
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    try:
        with pytest.raises(DialError) as caught:
            await async_dial(
                "127.0.0.1",
                server_port(server),
                bytes(32 * [1]),
                SigningKey.generate(),
                NETWORK_KEY_DEFAULT,
                handshake_timeout=0.3,
            )
        assert HandshakeFailure.TIMED_OUT.value in str(caught.value)
    finally:
        server.close()
