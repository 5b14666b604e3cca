"""Secret handshake: reference vectors, an in-memory pair, every failure reason, loopback."""

from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nacl.public import PrivateKey
from nacl.signing import SigningKey

from net.errors import HandshakeError, HandshakeFailure, LocalProtocolError
from net.shs import (
    NETWORK_KEY_DEFAULT,
    ClientHandshake,
    HandshakeState,
    ServerHandshake,
    auth_tag,
)

VECTORS = json.loads((Path(__file__).parent / "data" / "shs_vectors.json").read_text())


def key(label: str) -> SigningKey:
    return SigningKey(hashlib.sha256(label.encode()).digest())


def ephemeral_from_seed(seed: bytes) -> PrivateKey:
    """The ephemeral key the reference derives from 32 seed bytes (to replay its vectors)."""
    return SigningKey(seed).to_curve25519_private_key()


ALICE = key("alice")
BOB = key("bob")
BOB_PUB = bytes(BOB.verify_key)
OTHER_NET = hashlib.sha256(b"some private group").digest()


@dataclass
class HandshakePair:
    """Client and server joined in memory; bytes move in chunks of `chunk` bytes.

    `run()` pumps until both are done or one fails; a failed side "closes the socket",
    which the other side sees as end of file. Errors are collected, not raised.
    """

    client: ClientHandshake
    server: ServerHandshake
    chunk: int = 1 << 16
    errors: dict[str, HandshakeError] = field(default_factory=dict)
    to_server: bytes = b""
    to_client: bytes = b""
    tamper: Any = None  # optional (direction, data) -> data hook

    def _deliver(self, side: str, data: bytes) -> bytes:
        machine = self.client if side == "client" else self.server
        out = b""
        for start in range(0, len(data), self.chunk):
            if side in self.errors:
                break
            try:
                out += machine.receive_data(data[start : start + self.chunk])
            except HandshakeError as error:
                self.errors[side] = error
        return out

    def _eof(self, side: str) -> None:
        machine = self.client if side == "client" else self.server
        try:
            machine.receive_eof()
        except HandshakeError as error:
            self.errors[side] = error

    def run(self) -> None:
        self.to_server = self.client.start()
        for _ in range(10):
            if self.tamper is not None and self.to_server:
                self.to_server = self.tamper("c2s", self.to_server)
            data, self.to_server = self.to_server, b""
            if data:
                self.to_client += self._deliver("server", data)
            if self.tamper is not None and self.to_client:
                self.to_client = self.tamper("s2c", self.to_client)
            data, self.to_client = self.to_client, b""
            if data:
                self.to_server += self._deliver("client", data)
            if "server" in self.errors and "client" not in self.errors:
                self._eof("client")
            if "client" in self.errors and "server" not in self.errors:
                self._eof("server")
            if self.errors or (self.client.done and self.server.done):
                return
            if not self.to_server and not self.to_client:
                return


def make_pair(
    *,
    client_net: bytes = NETWORK_KEY_DEFAULT,
    server_net: bytes = NETWORK_KEY_DEFAULT,
    dial: bytes = BOB_PUB,
    authorize: Any = lambda _key: True,
    chunk: int = 1 << 16,
) -> HandshakePair:
    return HandshakePair(
        ClientHandshake(ALICE, dial, client_net),
        ServerHandshake(BOB, server_net, authorize=authorize),
        chunk=chunk,
    )


# --- reference vectors (npm secret-handshake, recorded by a throwaway script) ---------


@pytest.mark.parametrize("case", VECTORS["handshakes"], ids=lambda c: c["name"])
def test_replays_reference_handshake_byte_for_byte(case: dict[str, Any]) -> None:
    net = bytes.fromhex(case["network_key"])
    client = ClientHandshake(
        SigningKey(bytes.fromhex(case["client"]["seed"])),
        bytes.fromhex(case["server"]["public"]),
        net,
        ephemeral=ephemeral_from_seed(bytes.fromhex(case["client"]["ephemeral_seed"])),
    )
    server = ServerHandshake(
        SigningKey(bytes.fromhex(case["server"]["seed"])),
        net,
        authorize=lambda _k: True,
        ephemeral=ephemeral_from_seed(bytes.fromhex(case["server"]["ephemeral_seed"])),
    )
    wire = [bytes.fromhex(w["hex"]) for w in case["wire"]]
    assert [w["dir"] for w in case["wire"][:4]] == ["c2s", "s2c", "c2s", "s2c"]
    # Each side is fed the reference's bytes, so each output is checked independently.
    assert client.start() == wire[0]
    assert server.receive_data(wire[0]) == wire[1]
    assert client.receive_data(wire[1]) == wire[2]
    assert server.receive_data(wire[2]) == wire[3]
    assert client.receive_data(wire[3]) == b""
    assert client.done and server.done
    for machine, side in ((client, "client"), (server, "server")):
        session = case[side]["session"]
        result = machine.result
        assert result is not None
        assert result.remote_key.hex() == session["remote"]
        assert result.encrypt_key.hex() == session["encrypt_key"]
        assert result.encrypt_nonce.hex() == session["encrypt_nonce"]
        assert result.decrypt_key.hex() == session["decrypt_key"]
        assert result.decrypt_nonce.hex() == session["decrypt_nonce"]


@pytest.mark.parametrize("case", VECTORS["handshakes"], ids=lambda c: c["name"])
def test_session_keys_drive_reference_box_stream(case: dict[str, Any]) -> None:
    """The keys we derive encrypt exactly what the reference sent after its handshake."""
    net = bytes.fromhex(case["network_key"])
    client = ClientHandshake(
        SigningKey(bytes.fromhex(case["client"]["seed"])),
        bytes.fromhex(case["server"]["public"]),
        net,
        ephemeral=ephemeral_from_seed(bytes.fromhex(case["client"]["ephemeral_seed"])),
    )
    server = ServerHandshake(
        SigningKey(bytes.fromhex(case["server"]["seed"])),
        net,
        authorize=lambda _k: True,
        ephemeral=ephemeral_from_seed(bytes.fromhex(case["server"]["ephemeral_seed"])),
    )
    client.receive_data(server.receive_data(client.start()))
    wire = case["wire"]
    c2s = b"".join(bytes.fromhex(w["hex"]) for w in wire[4:] if w["dir"] == "c2s")
    s2c = b"".join(bytes.fromhex(w["hex"]) for w in wire[4:] if w["dir"] == "s2c")
    client.receive_data(server.receive_data(bytes.fromhex(wire[2]["hex"])))
    assert client.result is not None and server.result is not None

    encoder = client.result.encoder()
    sent = b"".join(encoder.encrypt(bytes.fromhex(h)) for h in case["client"]["sent"])
    assert sent + encoder.goodbye() == c2s

    server_in = server.result.decoder()
    assert [c.hex() for c in server_in.feed(c2s)] == case["server"]["received"]
    assert server_in.closed
    client_in = client.result.decoder()
    assert [c.hex() for c in client_in.feed(s2c)] == case["client"]["received"]
    assert client_in.closed


# --- in-memory pair ----------------------------------------------------------------


@pytest.mark.parametrize("chunk", [1, 7, 64, 1 << 16])
def test_pair_completes_and_keys_cross(chunk: int) -> None:
    pair = make_pair(chunk=chunk)
    pair.run()
    assert pair.errors == {}
    client, server = pair.client.result, pair.server.result
    assert client is not None and server is not None
    assert client.remote_key == BOB_PUB
    assert server.remote_key == bytes(ALICE.verify_key)
    assert client.encrypt_key == server.decrypt_key
    assert client.encrypt_nonce == server.decrypt_nonce
    assert server.encrypt_key == client.decrypt_key
    assert server.encrypt_nonce == client.decrypt_nonce
    assert client.encrypt_key != client.decrypt_key
    # And the box-stream works both ways on those keys.
    assert server.decoder().feed(client.encoder().encrypt(b"hi bob")) == [b"hi bob"]
    assert client.decoder().feed(server.encoder().encrypt(b"hi alice")) == [b"hi alice"]


def test_fresh_ephemeral_keys_give_fresh_session_keys() -> None:
    first, second = make_pair(), make_pair()
    first.run()
    second.run()
    assert first.client.result is not None and second.client.result is not None
    assert first.client.result.encrypt_key != second.client.result.encrypt_key


def test_message_sizes_are_64_64_112_80() -> None:
    client = ClientHandshake(ALICE, BOB_PUB)
    server = ServerHandshake(BOB, authorize=lambda _k: True)
    m1 = client.start()
    m2 = server.receive_data(m1)
    m3 = client.receive_data(m2)
    m4 = server.receive_data(m3)
    assert [len(m) for m in (m1, m2, m3, m4)] == [64, 64, 112, 80]


def test_wrong_network_key_fails_both_sides() -> None:
    pair = make_pair(client_net=OTHER_NET)
    pair.run()
    assert pair.errors["server"].reason is HandshakeFailure.WRONG_NETWORK
    assert pair.errors["server"].step == 1
    assert pair.errors["client"].reason is HandshakeFailure.WRONG_NETWORK
    assert pair.errors["client"].step == 2
    assert "network key" in str(pair.errors["client"])


def test_client_notices_wrong_network_in_server_answer() -> None:
    client = ClientHandshake(ALICE, BOB_PUB, OTHER_NET)
    server = ServerHandshake(BOB, OTHER_NET)
    answer = server.receive_data(client.start())
    stranger = ClientHandshake(ALICE, BOB_PUB)  # default network
    stranger.start()
    with pytest.raises(HandshakeError) as caught:
        stranger.receive_data(answer)
    assert caught.value.reason is HandshakeFailure.WRONG_NETWORK
    assert caught.value.step == 2


def test_wrong_server_key_fails_both_sides() -> None:
    pair = make_pair(dial=bytes(key("not bob").verify_key))
    pair.run()
    assert pair.errors["server"].reason is HandshakeFailure.WRONG_SERVER_KEY
    assert pair.errors["server"].step == 3
    assert pair.errors["client"].reason is HandshakeFailure.REJECTED
    assert pair.errors["client"].step == 4
    assert pair.client.result is None and pair.server.result is None


def test_invalid_server_key_is_wrong_server_key() -> None:
    client = ClientHandshake(ALICE, b"\xff" * 32)  # not a point on the curve
    server = ServerHandshake(BOB)
    with pytest.raises(HandshakeError) as caught:
        client.receive_data(server.receive_data(client.start()))
    assert caught.value.reason is HandshakeFailure.WRONG_SERVER_KEY
    assert "not a valid ed25519 public key" in str(caught.value)


def test_forged_server_accept_is_wrong_server_key() -> None:
    def tamper(direction: str, data: bytes) -> bytes:
        if direction == "s2c" and len(data) == 80:
            return data[:-1] + bytes([data[-1] ^ 1])
        return data

    pair = make_pair()
    pair.tamper = tamper
    pair.run()
    assert pair.errors["client"].reason is HandshakeFailure.WRONG_SERVER_KEY
    assert pair.errors["client"].step == 4
    assert pair.client.result is None


def test_refused_client_gets_nothing_and_sees_rejection() -> None:
    seen: list[bytes] = []

    def authorize(remote: bytes) -> bool:
        seen.append(remote)
        return False

    pair = make_pair(authorize=authorize)
    pair.run()
    assert seen == [bytes(ALICE.verify_key)]
    assert pair.errors["server"].reason is HandshakeFailure.REFUSED
    assert pair.server.state is HandshakeState.FAILED
    assert pair.errors["client"].reason is HandshakeFailure.REJECTED
    assert pair.client.result is None


def test_server_can_decide_later() -> None:
    client = ClientHandshake(ALICE, BOB_PUB)
    server = ServerHandshake(BOB)
    m3 = client.receive_data(server.receive_data(client.start()))
    assert server.receive_data(m3) == b""
    assert server.state is HandshakeState.AWAIT_DECISION
    assert server.client_key == bytes(ALICE.verify_key)
    client.receive_data(server.accept())
    assert client.done and server.done


def test_server_refuses_later() -> None:
    client = ClientHandshake(ALICE, BOB_PUB)
    server = ServerHandshake(BOB)
    server.receive_data(client.receive_data(server.receive_data(client.start())))
    error = server.refuse()
    assert error.reason is HandshakeFailure.REFUSED
    with pytest.raises(LocalProtocolError):
        server.accept()


def test_impostor_client_is_not_authentic() -> None:
    """A client that signs with one key but claims another is caught at step 3."""

    class Impostor:
        def __init__(self) -> None:
            self.verify_key = key("victim").verify_key

        def sign(self, message: bytes) -> Any:
            return ALICE.sign(message)

        def to_curve25519_private_key(self) -> Any:
            return ALICE.to_curve25519_private_key()

    client = ClientHandshake(Impostor(), BOB_PUB)  # type: ignore[arg-type]
    server = ServerHandshake(BOB, authorize=lambda _k: True)
    m3 = client.receive_data(server.receive_data(client.start()))
    with pytest.raises(HandshakeError) as caught:
        server.receive_data(m3)
    assert caught.value.reason is HandshakeFailure.CLIENT_NOT_AUTHENTIC
    assert server.client_key is None


@pytest.mark.parametrize("cut", [0, 1, 30, 63])
def test_truncated_hello_on_server(cut: int) -> None:
    client = ClientHandshake(ALICE, BOB_PUB)
    server = ServerHandshake(BOB)
    server.receive_data(client.start()[:cut])
    with pytest.raises(HandshakeError) as caught:
        server.receive_eof()
    assert caught.value.reason is HandshakeFailure.TRUNCATED
    assert caught.value.step == 1


@pytest.mark.parametrize("cut", [1, 40, 111])
def test_truncated_auth_on_server(cut: int) -> None:
    client = ClientHandshake(ALICE, BOB_PUB)
    server = ServerHandshake(BOB)
    m3 = client.receive_data(server.receive_data(client.start()))
    server.receive_data(m3[:cut])
    with pytest.raises(HandshakeError) as caught:
        server.receive_eof()
    assert caught.value.reason is HandshakeFailure.TRUNCATED
    assert caught.value.step == 3


@pytest.mark.parametrize(("message", "cut", "step"), [(2, 10, 2), (4, 79, 4)])
def test_truncated_answers_on_client(message: int, cut: int, step: int) -> None:
    client = ClientHandshake(ALICE, BOB_PUB)
    server = ServerHandshake(BOB, authorize=lambda _k: True)
    m2 = server.receive_data(client.start())
    if message == 2:
        client.receive_data(m2[:cut])
    else:
        m4 = server.receive_data(client.receive_data(m2))
        client.receive_data(m4[:cut])
    with pytest.raises(HandshakeError) as caught:
        client.receive_eof()
    assert caught.value.reason is HandshakeFailure.TRUNCATED
    assert caught.value.step == step


def test_http_request_is_garbage() -> None:
    server = ServerHandshake(BOB)
    with pytest.raises(HandshakeError) as caught:
        server.receive_data(
            b"GET / HTTP/1.1\r\nHost: localhost:7708\r\nUser-Agent: curl/8.0\r\nAccept: */*\r\n\r\n"
        )
    assert caught.value.reason is HandshakeFailure.GARBAGE
    assert "GET" in str(caught.value)


def test_a_short_line_of_text_is_garbage_at_once() -> None:
    # Named as soon as the line ends: such a peer waits for our answer, not a timeout.
    server = ServerHandshake(BOB)
    server.receive_data(b"GET / HT")  # not a whole line yet: it may still be anything
    with pytest.raises(HandshakeError) as caught:
        server.receive_data(b"TP/1.0\r\n")
    assert caught.value.reason is HandshakeFailure.GARBAGE
    assert "GET / HTTP/1.0" in str(caught.value)


def test_short_text_then_close_is_garbage() -> None:
    server = ServerHandshake(BOB)
    server.receive_data(b"hello there?")
    with pytest.raises(HandshakeError) as caught:
        server.receive_eof()
    assert caught.value.reason is HandshakeFailure.GARBAGE


def test_ssh_banner_is_garbage_for_the_client_at_once() -> None:
    client = ClientHandshake(ALICE, BOB_PUB)
    client.start()
    with pytest.raises(HandshakeError) as caught:
        client.receive_data(b"SSH-2.0-OpenSSH_9.6\r\n")
    assert caught.value.reason is HandshakeFailure.GARBAGE
    assert caught.value.step == 2
    assert "SSH-2.0" in str(caught.value)


def test_random_binary_hello_reads_as_other_network() -> None:
    server = ServerHandshake(BOB)
    with pytest.raises(HandshakeError) as caught:
        server.receive_data(bytes(range(128, 192)))
    assert caught.value.reason is HandshakeFailure.WRONG_NETWORK


def test_weak_ephemeral_key_is_garbage() -> None:
    """A peer that knows the network key but sends a low-order point is refused."""
    zero_point = bytes(32)
    server = ServerHandshake(BOB)
    with pytest.raises(HandshakeError) as caught:
        server.receive_data(auth_tag(NETWORK_KEY_DEFAULT, zero_point) + zero_point)
    assert caught.value.reason is HandshakeFailure.GARBAGE


def test_failed_machine_refuses_more_input() -> None:
    server = ServerHandshake(BOB)
    with pytest.raises(HandshakeError):
        server.receive_data(bytes(64))
    with pytest.raises(LocalProtocolError):
        server.receive_data(bytes(64))


def test_timeout_names_the_step() -> None:
    client = ClientHandshake(ALICE, BOB_PUB)
    client.start()
    error = client.timed_out()
    assert error.reason is HandshakeFailure.TIMED_OUT
    assert error.step == 2
    assert client.state is HandshakeState.FAILED


def test_bytes_after_the_handshake_are_kept() -> None:
    client = ClientHandshake(ALICE, BOB_PUB)
    server = ServerHandshake(BOB, authorize=lambda _k: True)
    m4 = server.receive_data(client.receive_data(server.receive_data(client.start())))
    assert server.result is not None
    early = server.result.encoder().encrypt(b"first frame")
    client.receive_data(m4 + early)
    assert client.done
    assert client.unused_data == early
    assert client.result is not None
    assert client.result.decoder().feed(client.unused_data) == [b"first frame"]


def test_bad_keys_are_refused_locally() -> None:
    with pytest.raises(LocalProtocolError):
        ClientHandshake(ALICE, b"short")
    with pytest.raises(LocalProtocolError):
        ServerHandshake(BOB, b"short")
    client = ClientHandshake(ALICE, BOB_PUB)
    with pytest.raises(LocalProtocolError):
        client.receive_data(b"x")  # before start()


@settings(max_examples=60, deadline=None)
@given(hello=st.binary(max_size=200), auth=st.binary(max_size=200), accept=st.binary(max_size=120))
def test_hostile_bytes_only_ever_raise_handshake_errors(
    hello: bytes, auth: bytes, accept: bytes
) -> None:
    """Random bytes at any step: a HandshakeError or waiting for more, never a crash."""
    with pytest.raises(HandshakeError):
        ServerHandshake(BOB).receive_data(hello.ljust(64, b"\x00"))
    # A peer that passes step 1/2 (it knows the network key) and then sends junk.
    client = ClientHandshake(ALICE, BOB_PUB)
    server = ServerHandshake(BOB, authorize=lambda _k: True)
    server.receive_data(client.start())
    try:
        server.receive_data(auth)
        server.receive_eof()
    except HandshakeError:
        pass
    client = ClientHandshake(ALICE, BOB_PUB)
    server = ServerHandshake(BOB, authorize=lambda _k: True)
    client.receive_data(server.receive_data(client.start()))
    try:
        client.receive_data(accept)
        client.receive_eof()
    except HandshakeError:
        pass
    assert not client.done


# --- real sockets on loopback ----------------------------------------------------------


async def _read_until_done(reader: asyncio.StreamReader, machine: Any, writer: Any) -> None:
    while not machine.done:
        data = await reader.read(4096)
        if not data:
            machine.receive_eof()
            return
        out = machine.receive_data(data)
        if out:
            writer.write(out)
            await writer.drain()


async def test_handshake_over_loopback_socket() -> None:
    received: list[bytes] = []
    server_errors: list[Exception] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        machine = ServerHandshake(BOB, authorize=lambda _k: True)
        try:
            await asyncio.wait_for(_read_until_done(reader, machine, writer), 5)
            assert machine.result is not None
            decoder = machine.result.decoder()
            received.extend(decoder.feed(machine.unused_data))
            while not decoder.closed:
                data = await asyncio.wait_for(reader.read(65536), 5)
                if not data:
                    decoder.receive_eof()
                received.extend(decoder.feed(data))
        except Exception as error:  # surfaced through server_errors below
            server_errors.append(error)
        finally:
            writer.close()
            await writer.wait_closed()

    listener = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        client = ClientHandshake(ALICE, BOB_PUB)
        writer.write(client.start())
        await writer.drain()
        await asyncio.wait_for(_read_until_done(reader, client, writer), 5)
        assert client.result is not None
        encoder = client.result.encoder()
        writer.write(encoder.encrypt(b"x" * 10000) + encoder.goodbye())
        await writer.drain()
        await asyncio.wait_for(reader.read(), 5)  # server closes after the goodbye
        writer.close()
        await writer.wait_closed()
    finally:
        listener.close()
        await listener.wait_closed()
    assert server_errors == []
    assert b"".join(received) == b"x" * 10000
