"""serve-echo's engine against hand-built frames on a raw socket (issue 4, RFC 6455).

Each test opens a real TCP connection to the echo server on 127.0.0.1 port 0,
does the opening handshake by hand, writes frames built here (masked, as a
client must), some split across several writes, and reads what the server sends
until it closes the TCP connection.
"""

from __future__ import annotations

import base64
import os
import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.conftest import ServerThread, scaled
from wstool.config import EchoConfig, ServerConfig
from wstool.server.core import WebSocketServer, run_echo_server

TEXT, BINARY, CONT, CLOSE, PING, PONG = 0x1, 0x2, 0x0, 0x8, 0x9, 0xA


def frame(
    opcode: int,
    payload: bytes = b"",
    *,
    fin: bool = True,
    rsv: int = 0,
    masked: bool = True,
    length: int | None = None,
) -> bytes:
    """A client frame (RFC 6455 §5.2); ``length`` overrides the declared length."""
    n = len(payload) if length is None else length
    head = bytes([(0x80 if fin else 0) | (rsv << 4) | opcode])
    mask_bit = 0x80 if masked else 0
    if n < 126:
        head += bytes([mask_bit | n])
    elif n < 65536:
        head += bytes([mask_bit | 126]) + struct.pack("!H", n)
    else:
        head += bytes([mask_bit | 127]) + struct.pack("!Q", n)
    if not masked:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def close_payload(code: int, reason: bytes = b"") -> bytes:
    return struct.pack("!H", code) + reason


@dataclass
class ServerFrame:
    opcode: int
    payload: bytes
    fin: bool

    @property
    def close_code(self) -> int | None:
        assert self.opcode == CLOSE
        return struct.unpack("!H", self.payload[:2])[0] if len(self.payload) >= 2 else None


def parse_server_frames(data: bytes) -> list[ServerFrame]:
    frames = []
    pos = 0
    while pos < len(data):
        b0, b1 = data[pos], data[pos + 1]
        assert not b1 & 0x80, "server frames are never masked"
        n = b1 & 0x7F
        pos += 2
        if n == 126:
            (n,) = struct.unpack("!H", data[pos : pos + 2])
            pos += 2
        elif n == 127:
            (n,) = struct.unpack("!Q", data[pos : pos + 8])
            pos += 8
        assert pos + n <= len(data), "truncated frame from the server"
        frames.append(ServerFrame(b0 & 0x0F, data[pos : pos + n], bool(b0 & 0x80)))
        pos += n
    return frames


class RawClient:
    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=scaled(5))
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            (
                "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                f"Sec-WebSocket-Key: {key}\r\n\r\n"
            ).encode()
        )
        response = b""
        while b"\r\n\r\n" not in response:
            chunk = self.sock.recv(4096)
            assert chunk, "server closed during the handshake"
            response += chunk
        head, _, self.extra = response.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101 "), head

    def send(self, *chunks: bytes) -> None:
        """Each chunk is a separate write (TCP_NODELAY: separate segments, usually)."""
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for chunk in chunks:
            self.sock.sendall(chunk)

    def read_until_closed(self) -> list[ServerFrame]:
        data = self.extra
        while True:
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            data += chunk
        return parse_server_frames(data)

    def read_frames(self, count: int) -> list[ServerFrame]:
        """Read until ``count`` complete frames arrived (without waiting for EOF)."""
        data = self.extra
        while True:
            try:
                frames = parse_server_frames(data)
            except (AssertionError, IndexError, struct.error):
                frames = []
            if len(frames) >= count:
                return frames
            chunk = self.sock.recv(65536)
            assert chunk, f"server closed after {frames}"
            data += chunk

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def echo_server(server_thread: ServerThread) -> Iterator[WebSocketServer]:
    yield from _start(server_thread, ServerConfig(port=0, compress=False, ping_interval_s=None))


def _start(st: ServerThread, config: ServerConfig) -> Iterator[WebSocketServer]:
    async def start() -> WebSocketServer:
        return await run_echo_server(config, EchoConfig(), lambda _e: None)

    server = st.run(start())
    yield server
    st.run(server.shutdown())


@pytest.fixture
def client(echo_server: WebSocketServer) -> Iterator[RawClient]:
    port = int(echo_server.urls[0].rsplit(":", 1)[1].strip("/"))
    c = RawClient(port)
    yield c
    c.close()


def test_plain_echo_keeps_types_and_order(client: RawClient) -> None:
    client.send(frame(TEXT, b"one"), frame(BINARY, b"\x00\xff"), frame(TEXT, "ü".encode()),
                frame(CLOSE, close_payload(1000)))
    frames = client.read_until_closed()
    assert [(f.opcode, f.payload) for f in frames[:3]] == [
        (TEXT, b"one"), (BINARY, b"\x00\xff"), (TEXT, "ü".encode())]
    assert frames[3].opcode == CLOSE and frames[3].close_code == 1000
    assert len(frames) == 4


def test_echo_before_a_later_protocol_error(client: RawClient) -> None:
    # One write: a good message, then a frame with RSV1 set and no extension.
    client.send(frame(TEXT, b"first") + frame(BINARY, b"x", rsv=4) + frame(TEXT, b"never"))
    frames = client.read_until_closed()
    assert [(f.opcode, f.payload) for f in frames[:1]] == [(TEXT, b"first")]
    assert frames[1].opcode == CLOSE and frames[1].close_code == 1002
    assert len(frames) == 2


def test_500_messages_with_the_close_are_all_echoed_first(client: RawClient) -> None:
    messages = [f"message {i}".encode() for i in range(500)]
    client.send(b"".join(frame(TEXT, m) for m in messages) + frame(CLOSE, close_payload(1000)))
    frames = client.read_until_closed()
    assert [f.payload for f in frames[:500]] == messages
    assert all(f.opcode == TEXT for f in frames[:500])
    assert frames[500].opcode == CLOSE and frames[500].close_code == 1000
    assert len(frames) == 501


def test_invalid_utf8_fails_mid_frame_before_the_frame_completes(client: RawClient) -> None:
    # A 40-byte text frame; only its first 12 bytes are sent, with an invalid
    # sequence (F4 90 is above U+10FFFF) in them. The rest never comes.
    payload = "κόσμε".encode() + b"\xf4\x90\x80\x80" + b"a" * 26
    data = frame(TEXT, payload)
    header_len = 6
    client.send(data[: header_len + 12])
    frames = client.read_frames(1)
    assert frames[0].opcode == CLOSE and frames[0].close_code == 1007


def test_surrogate_fails_at_its_second_byte(client: RawClient) -> None:
    # ED A0 starts a UTF-16 surrogate: invalid at the A0, without a third byte.
    payload = b"ab\xed\xa0\x80cd"
    data = frame(TEXT, payload)
    client.send(data[: 6 + 4])
    frames = client.read_frames(1)
    assert frames[0].opcode == CLOSE and frames[0].close_code == 1007


def test_invalid_utf8_in_a_later_fragment_fails_before_the_message_ends(
    client: RawClient,
) -> None:
    # Valid first fragment; the second (non-final) fragment has an invalid
    # byte; no final fragment is ever sent.
    client.send(frame(TEXT, "héllo".encode(), fin=False), frame(CONT, b"ok\xc0\xaf", fin=False))
    frames = client.read_frames(1)
    assert frames[0].opcode == CLOSE and frames[0].close_code == 1007


def test_utf8_sequence_split_across_fragments_and_writes_is_fine(client: RawClient) -> None:
    text = "€ and 𝄞".encode()
    euro_cut, clef_cut = 2, len(text) - 2
    f1 = frame(TEXT, text[:euro_cut], fin=False)
    f2 = frame(CONT, text[euro_cut:clef_cut], fin=False)
    f3 = frame(CONT, text[clef_cut:], fin=True)
    wire = f1 + f2 + f3 + frame(CLOSE, close_payload(1000))
    # Byte by byte: every frame is split across many TCP writes.
    client.send(*[wire[i : i + 1] for i in range(len(wire))])
    frames = client.read_until_closed()
    assert [(f.opcode, f.payload) for f in frames] == [
        (TEXT, text), (CLOSE, close_payload(1000))]


def test_truncated_utf8_at_message_end_is_1007(client: RawClient) -> None:
    client.send(frame(TEXT, "ab€".encode()[:-1]))
    frames = client.read_until_closed()
    assert frames[-1].opcode == CLOSE and frames[-1].close_code == 1007


def test_close_between_fragments_is_answered_cleanly(client: RawClient) -> None:
    client.send(frame(TEXT, b"part", fin=False), frame(CLOSE, close_payload(1000, b"bye")))
    frames = client.read_until_closed()
    assert [(f.opcode, f.close_code) for f in frames] == [(CLOSE, 1000)]
    assert frames[0].payload == close_payload(1000, b"bye")


def test_ping_between_fragments_gets_a_pong_and_the_message_is_echoed_whole(
    client: RawClient,
) -> None:
    client.send(frame(BINARY, b"ab", fin=False), frame(PING, b"p1"), frame(CONT, b"cd"),
                frame(CLOSE, close_payload(1000)))
    frames = client.read_until_closed()
    assert [(f.opcode, f.payload) for f in frames] == [
        (PONG, b"p1"), (BINARY, b"abcd"), (CLOSE, close_payload(1000))]


def test_empty_close_is_echoed_empty(client: RawClient) -> None:
    client.send(frame(CLOSE))
    frames = client.read_until_closed()
    assert [(f.opcode, f.payload) for f in frames] == [(CLOSE, b"")]


def test_empty_messages_are_echoed(client: RawClient) -> None:
    client.send(frame(TEXT), frame(BINARY), frame(CLOSE, close_payload(1000)))
    frames = client.read_until_closed()
    assert [(f.opcode, f.payload) for f in frames[:2]] == [(TEXT, b""), (BINARY, b"")]


BAD_FRAMES = {
    "rsv2 without extension": (frame(TEXT, b"x", rsv=2), 1002),
    "rsv1 without extension": (frame(TEXT, b"x", rsv=4), 1002),
    "reserved opcode 3": (frame(0x3, b"x"), 1002),
    "reserved control opcode 0xB": (frame(0xB, b""), 1002),
    "unmasked client frame": (frame(TEXT, b"x", masked=False), 1002),
    "fragmented ping": (frame(PING, b"x", fin=False), 1002),
    "ping of 126 bytes": (frame(PING, b"x" * 126), 1002),
    "close of 126 bytes": (frame(CLOSE, close_payload(1000, b"x" * 124)), 1002),
    "continuation without a message": (frame(CONT, b"x"), 1002),
    "new message inside a fragmented one": (
        frame(TEXT, b"a", fin=False) + frame(TEXT, b"b"), 1002),
    "close code 999": (frame(CLOSE, close_payload(999)), 1002),
    "close code 1005": (frame(CLOSE, close_payload(1005)), 1002),
    "close code 1006": (frame(CLOSE, close_payload(1006)), 1002),
    "close code 1015": (frame(CLOSE, close_payload(1015)), 1002),
    "close code 5000": (frame(CLOSE, close_payload(5000)), 1002),
    "close payload of 1 byte": (frame(CLOSE, b"\x03"), 1002),
    "close reason not UTF-8": (frame(CLOSE, close_payload(1000, b"\xff")), 1007),
    "invalid UTF-8 text": (frame(TEXT, b"\xc3\x28"), 1007),
    "64-bit length with the top bit set": (
        frame(BINARY, b"", length=2**63), 1002),
}


@pytest.mark.parametrize("case", sorted(BAD_FRAMES))
def test_bad_frames_fail_with_the_right_close_code(client: RawClient, case: str) -> None:
    data, code = BAD_FRAMES[case]
    client.send(frame(TEXT, b"before") + data)
    frames = client.read_until_closed()
    assert (frames[0].opcode, frames[0].payload) == (TEXT, b"before")
    assert frames[-1].opcode == CLOSE and frames[-1].close_code == code, frames
    assert len(frames) == 2


@pytest.mark.parametrize("code", [1000, 1001, 1003, 1011, 1014, 3000, 4999])
def test_valid_close_codes_are_echoed(client: RawClient, code: int) -> None:
    client.send(frame(CLOSE, close_payload(code, b"r")))
    frames = client.read_until_closed()
    assert [(f.opcode, f.payload) for f in frames] == [(CLOSE, close_payload(code, b"r"))]


def test_message_over_max_size_is_1009_without_reading_it(server_thread: ServerThread) -> None:
    config = ServerConfig(port=0, compress=False, ping_interval_s=None, max_size_bytes=1000)
    for server in _start(server_thread, config):
        c = RawClient(int(server.urls[0].rsplit(":", 1)[1].strip("/")))
        try:
            # Only the header of a 2000-byte frame: refused at the header.
            c.send(frame(TEXT, b"ok") + frame(BINARY, b"x" * 2000)[:8])
            frames = c.read_frames(2)
            assert (frames[0].opcode, frames[0].payload) == (TEXT, b"ok")
            assert frames[1].opcode == CLOSE and frames[1].close_code == 1009
            # Fragments add up: 600 + 600 > 1000.
            c2 = RawClient(int(server.urls[0].rsplit(":", 1)[1].strip("/")))
            c2.send(frame(BINARY, b"y" * 600, fin=False) + frame(CONT, b"y" * 600))
            frames = c2.read_until_closed()
            assert frames[-1].opcode == CLOSE and frames[-1].close_code == 1009
            c2.close()
        finally:
            c.close()


def test_large_frame_split_across_writes_is_echoed(client: RawClient) -> None:
    payload = os.urandom(200_000)
    wire = frame(BINARY, payload) + frame(CLOSE, close_payload(1000))
    client.send(*[wire[i : i + 7000] for i in range(0, len(wire), 7000)])
    frames = client.read_until_closed()
    assert frames[0].opcode == BINARY and frames[0].payload == payload
    assert frames[1].close_code == 1000
