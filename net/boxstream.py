"""Box-stream (SSB's encrypted framing after the handshake), sans-IO encoder and decoder.

Each chunk of at most 4096 plaintext bytes goes on the wire as

    header  34 B  secretbox[key, nonce n](body length: 2 B big-endian || body MAC: 16 B)
    body     N B  secretbox[key, nonce n+1](chunk) without its MAC (the MAC is in the header)

and the nonce (24 bytes, a big-endian counter starting at the handshake's nonce) moves
on by 2 per chunk. The goodbye is a header whose plaintext is 18 zero bytes: it tells a
clean end from a cut connection. Byte-compatible with the npm `pull-box-stream` package.

The decoder is strict: a header or body that fails its MAC, a length of 0 (other than
the goodbye) or above 4096, or bytes after the goodbye raise `RemoteProtocolError`.
"""

from __future__ import annotations

import nacl.bindings as sodium
import nacl.exceptions

from net.errors import LocalProtocolError, RemoteProtocolError

MAX_CHUNK = 4096
HEADER_SIZE = 34
MAC_SIZE = 16
_NONCE_SPACE = 1 << 192
_GOODBYE = bytes(18)


def _nonce_bytes(counter: int) -> bytes:
    return (counter % _NONCE_SPACE).to_bytes(24, "big")


def _check(key: bytes, nonce: bytes) -> int:
    if len(key) != 32:
        raise LocalProtocolError("box-stream key must be 32 bytes")
    if len(nonce) != 24:
        raise LocalProtocolError("box-stream nonce must be 24 bytes")
    return int.from_bytes(nonce, "big")


class BoxStreamEncoder:
    """Turns plaintext into box-stream bytes; `goodbye()` ends the stream."""

    def __init__(self, key: bytes, nonce: bytes) -> None:
        self._nonce = _check(key, nonce)
        self._key = key
        self.closed = False

    def encrypt(self, data: bytes) -> bytes:
        """Box `data` as chunks of at most 4096 bytes; empty data gives no bytes."""
        if self.closed:
            raise LocalProtocolError("cannot send after the box-stream goodbye")
        view = memoryview(data)
        parts: list[bytes] = []
        for start in range(0, len(view), MAX_CHUNK):
            chunk = bytes(view[start : start + MAX_CHUNK])
            body = sodium.crypto_secretbox_easy(chunk, _nonce_bytes(self._nonce + 1), self._key)
            header = len(chunk).to_bytes(2, "big") + body[:MAC_SIZE]
            parts.append(sodium.crypto_secretbox_easy(header, _nonce_bytes(self._nonce), self._key))
            parts.append(body[MAC_SIZE:])
            self._nonce += 2
        return b"".join(parts)

    def goodbye(self) -> bytes:
        """The authenticated end of the stream."""
        if self.closed:
            raise LocalProtocolError("the box-stream goodbye was already sent")
        self.closed = True
        return sodium.crypto_secretbox_easy(_GOODBYE, _nonce_bytes(self._nonce), self._key)


class BoxStreamDecoder:
    """Turns box-stream bytes back into plaintext chunks; `closed` after the goodbye."""

    def __init__(self, key: bytes, nonce: bytes) -> None:
        self._nonce = _check(key, nonce)
        self._key = key
        self._buffer = bytearray()
        self._body_length: int | None = None  # set while waiting for a body
        self._body_mac = b""
        self._error: RemoteProtocolError | None = None
        self.closed = False

    def feed(self, data: bytes) -> list[bytes]:
        """Add received bytes; return the plaintext chunks that are now complete."""
        if self._error is not None:
            raise self._error
        try:
            return self._feed(data)
        except RemoteProtocolError as error:
            self._error = error
            self._buffer.clear()
            raise

    def _feed(self, data: bytes) -> list[bytes]:
        if self.closed:
            if data:
                raise RemoteProtocolError("the peer sent data after its box-stream goodbye")
            return []
        self._buffer += data
        buffer = self._buffer
        chunks: list[bytes] = []
        pos = 0  # consumed bytes; the buffer is trimmed once at the end (no quadratic copying)
        try:
            while True:
                if self._body_length is None:
                    if len(buffer) - pos < HEADER_SIZE:
                        break
                    header = self._open(
                        bytes(buffer[pos : pos + HEADER_SIZE]), self._nonce, "header"
                    )
                    pos += HEADER_SIZE
                    if header == _GOODBYE:
                        self.closed = True
                        if len(buffer) > pos:
                            raise RemoteProtocolError(
                                "the peer sent data after its box-stream goodbye"
                            )
                        break
                    length = int.from_bytes(header[:2], "big")
                    if not 0 < length <= MAX_CHUNK:
                        raise RemoteProtocolError(
                            f"box-stream chunk length {length} is outside 1..{MAX_CHUNK}"
                        )
                    self._body_length = length
                    self._body_mac = header[2:]
                end = pos + self._body_length
                if len(buffer) < end:
                    break
                boxed = self._body_mac + buffer[pos:end]
                chunks.append(self._open(bytes(boxed), self._nonce + 1, "body"))
                pos = end
                self._body_length = None
                self._nonce += 2
        finally:
            del buffer[:pos]
        return chunks

    def receive_eof(self) -> None:
        """The transport ended: fine after a goodbye, otherwise the peer cut us off."""
        if not self.closed:
            raise RemoteProtocolError("the connection ended without a box-stream goodbye")

    def _open(self, boxed: bytes, counter: int, what: str) -> bytes:
        try:
            return sodium.crypto_secretbox_open_easy(boxed, _nonce_bytes(counter), self._key)
        except nacl.exceptions.CryptoError:
            raise RemoteProtocolError(
                f"box-stream {what} failed authentication (corrupted or forged data)"
            ) from None
