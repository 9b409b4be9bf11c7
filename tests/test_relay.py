"""`wstool frame-dump --listen`: a byte-exact relay between real peers on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import selectors
import signal
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from websockets.frames import Frame, Opcode
from websockets.sync.client import connect

from tests.conftest import ServerThread, closed_port, lib_echo, scaled, start_websockets_server
from wstool.protocol.frames import FrameRecord, HttpHead, decode_all

# A connection's last line: human ("(client sent N B, server sent M B)") or --json.
CLOSE_LINE = re.compile(rb'\(client sent \d+ B, server sent \d+ B\)$|"event": "close"', re.M)

FRAME_KEYS = {"offset", "fin", "rsv1", "rsv2", "rsv3", "opcode", "masked", "mask_key", "length",
              "payload_hex", "text", "close_code", "close_reason", "problems", "direction",
              "conn"}


class RelayProc:
    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "wstool", "frame-dump", "--listen", "127.0.0.1:0", *args],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env={**os.environ, "NO_COLOR": "1"},
        )
        assert self.proc.stderr is not None
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stderr, selectors.EVENT_READ)
            if not sel.select(scaled(15)):
                self.proc.kill()
                raise AssertionError("relay did not start")
        line = self.proc.stderr.readline().decode()
        match = re.search(r"relaying (ws://127\.0\.0\.1:\d+/) -> ", line)
        if match is None:
            self.proc.kill()
            _out, err = self.proc.communicate()
            raise AssertionError(f"unexpected first line {line!r} {err!r}")
        self.url = match.group(1)
        self.port = int(self.url.rsplit(":", 1)[1].strip("/"))
        self.stdout = b""
        self.stderr = ""
        self.returncode: int | None = None
        # stdout read as it comes (the relay flushes per event), for wait_closed().
        self._out = bytearray()
        self._out_done = False
        self._cond = threading.Condition()
        threading.Thread(target=self._read_stdout, daemon=True).start()

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._cond:
                self._out += line
                self._cond.notify_all()
        with self._cond:
            self._out_done = True
            self._cond.notify_all()

    def _closes(self) -> int:
        return len(CLOSE_LINE.findall(self._out))

    def wait_closed(self, connections: int = 1) -> None:
        """Wait until the relay has reported CONNECTIONS connections closed.

        Frames are printed as they pass, before the peer gets them, so only each
        connection's final "close" line (both EOFs seen) can still be on its way
        when the client returns; stopping the relay before it would lose it.
        """
        with self._cond:
            self._cond.wait_for(lambda: self._closes() >= connections or self._out_done,
                                scaled(15))
            assert self._closes() >= connections, bytes(self._out).decode(errors="replace")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.returncode is not None:
            return
        self.proc.send_signal(sig)
        self.proc.wait(timeout=scaled(15))
        with self._cond:
            self._cond.wait_for(lambda: self._out_done, scaled(15))
            self.stdout = bytes(self._out)
        assert self.proc.stderr is not None
        self.stderr = self.proc.stderr.read().decode(errors="replace")
        self.returncode = self.proc.returncode

    def json_lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.stdout.splitlines()]


@contextlib.contextmanager
def relay(*args: str) -> Iterator[RelayProc]:
    proc = RelayProc(*args)
    try:
        yield proc
    finally:
        if proc.returncode is None:
            with contextlib.suppress(Exception):
                proc.stop()
        if proc.proc.poll() is None:
            proc.proc.kill()
            proc.proc.wait()


@pytest.mark.slow
def test_relay_between_websockets_client_and_server(server_thread: ServerThread) -> None:
    _server, upstream = start_websockets_server(server_thread, lib_echo, max_size=None)
    with relay("--json", upstream) as rp:
        for _ in range(2):
            with connect(rp.url, compression=None) as ws:
                ws.send("Hello")
                assert ws.recv(timeout=scaled(5)) == "Hello"
                ws.send(b"\x00\x01\x02")
                assert ws.recv(timeout=scaled(5)) == b"\x00\x01\x02"
                ws.send(iter(["frag", "ments"]))
                assert ws.recv(timeout=scaled(5)) == "fragments"
                ws.ping(b"p1").wait(scaled(5))
        rp.wait_closed(2)
        rp.stop()
    assert rp.returncode == 0, rp.stderr
    events = rp.json_lines()
    for conn in (1, 2):
        mine = [e for e in events if e.get("conn") == conn]
        kinds = [e.get("event", "frame") for e in mine]
        assert kinds[0] == "open"
        assert kinds[1:3] == ["handshake", "handshake"]  # request first, then response
        assert mine[1]["kind"] == "request" and mine[2]["kind"] == "response"
        assert mine[2]["start_line"].startswith("HTTP/1.1 101")
        assert kinds[-1] == "close"
        frames = [e for e in mine if "event" not in e]
        assert all(set(f) == FRAME_KEYS for f in frames)
        assert all(f["problems"] == [] for f in frames)
        client = [(f["opcode"], f["text"] if f["opcode"] == "TEXT" or f["opcode"] == "CONT"
                   else f["payload_hex"]) for f in frames if f["direction"] == "client"]
        assert client[:5] == [("TEXT", "Hello"), ("BINARY", "000102"), ("TEXT", "frag"),
                              ("CONT", "ments"), ("CONT", "")]
        assert ("PING", "7031") in client
        assert all(f["masked"] for f in frames if f["direction"] == "client")
        assert not any(f["masked"] for f in frames if f["direction"] == "server")
        server_ops = [f["opcode"] for f in frames if f["direction"] == "server"]
        assert server_ops[:3] == ["TEXT", "BINARY", "TEXT"] and "PONG" in server_ops
        assert "CLOSE" in server_ops
        messages = [e for e in mine if e.get("event") == "message"]
        assert [m["text"] for m in messages] == ["fragments"]


@pytest.mark.slow
def test_relay_shows_compressed_frames_with_wire_and_inflated_size(
        server_thread: ServerThread) -> None:
    _server, upstream = start_websockets_server(server_thread, lib_echo)
    with relay(upstream) as rp:
        with connect(rp.url) as ws:  # permessage-deflate on both sides by default
            ws.send("abc " * 100)
            assert ws.recv(timeout=scaled(5)) == "abc " * 100
        rp.wait_closed()
        rp.stop()
    lines = rp.stdout.decode().splitlines()
    compressed = [line for line in lines if "TEXT fin rsv1" in line]
    assert len(compressed) == 2, lines
    for line in compressed:
        assert re.search(r"deflate \d+ B -> 400 B \"abc abc ", line), line
    assert any(line.startswith("#1 < Sec-WebSocket-Extensions: permessage-deflate")
               for line in lines)
    assert not any(" ! " in line for line in lines)


def _scripted_upstream(st: ServerThread, server_bytes: bytes,
                       received: list[bytes]) -> str:
    """A raw TCP peer: answers the upgrade with server_bytes, records what it gets."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        received.append(head)
        writer.write(server_bytes)
        await writer.drain()
        rest = await reader.read()  # until the client's EOF
        received.append(rest)
        writer.close()

    async def start() -> Any:
        return await asyncio.start_server(handle, "127.0.0.1", 0)

    server = st.run(start())
    return f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/"


def _raw_exchange(port: int, request: bytes, client_frames: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=scaled(5)) as sock:
        sock.sendall(request + client_frames)
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while True:
            data = sock.recv(65536)
            if not data:
                break
            chunks.append(data)
    return b"".join(chunks)


REQUEST = (b"GET /chat?x=1 HTTP/1.1\r\nHost: relay.invalid\r\nUpgrade: websocket\r\n"
           b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
           b"Sec-WebSocket-Version: 13\r\n\r\n")
RESPONSE = (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n")


@pytest.mark.slow
def test_relay_forwards_invalid_frames_byte_for_byte(server_thread: ServerThread) -> None:
    # The server breaks the rules: a reserved opcode, a masked frame, bad UTF-8.
    server_frames = (bytes.fromhex("830161") + Frame(Opcode.TEXT, b"hi").serialize(mask=True)
                     + bytes([0x81, 0x02, 0xC3, 0x28]) + bytes([0x88, 0x02, 0x03, 0xE8]))
    # So does the client: an unmasked frame, an invalid close code.
    client_frames = bytes.fromhex("810548656c6c6f") + bytes([0x88, 0x82, 0, 0, 0, 0, 0x03,
                                                             0xED])
    received: list[bytes] = []
    upstream = _scripted_upstream(server_thread, RESPONSE + server_frames, received)
    with relay(upstream) as rp:
        got = _raw_exchange(rp.port, REQUEST, client_frames)
        rp.wait_closed()
        rp.stop()
    assert got == RESPONSE + server_frames
    assert received[1] == client_frames
    # The request went on with Host pointed at the upstream, the rest unchanged.
    forwarded = received[0]
    assert f"Host: {upstream.split('/')[2]}\r\n".encode() in forwarded
    assert forwarded.replace(f"Host: {upstream.split('/')[2]}".encode(),
                             b"Host: relay.invalid") == REQUEST
    out = rp.stdout.decode()
    assert "#1 < 0x3 fin 1 B unmasked" in out
    assert "! reserved opcode 0x3" in out
    assert "! masked server frame" in out
    assert "! invalid UTF-8 in text message" in out
    assert '#1 > TEXT fin 5 B unmasked "Hello"' in out
    assert "! unmasked client frame" in out
    assert "#1 > CLOSE fin 2 B masked 00000000 1005 (no status received)" in out
    assert "! invalid close code 1005" in out
    # What the peers see directly is what they see through the relay: compare.
    received_direct: list[bytes] = []
    direct = _scripted_upstream(server_thread, RESPONSE + server_frames, received_direct)
    got_direct = _raw_exchange(int(direct.rsplit(":", 1)[1].strip("/")), REQUEST, client_frames)
    assert got_direct == got
    assert received_direct[1] == received[1]


def test_relay_answers_502_when_the_upstream_is_unreachable() -> None:
    dead_port = closed_port()
    with relay(f"ws://127.0.0.1:{dead_port}/") as rp:
        got = _raw_exchange(rp.port, REQUEST, b"")
        rp.wait_closed()
        rp.stop(signal.SIGINT)
    assert got.startswith(b"HTTP/1.1 502 Bad Gateway\r\n")
    assert b"connection refused by" in got
    assert rp.returncode == 130
    assert f"#1 ! connection refused by ws://127.0.0.1:{dead_port}/" in rp.stdout.decode()


@pytest.mark.slow
def test_relay_to_wss_upstream_with_cacert(server_thread: ServerThread, tmp_path: Any) -> None:
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1")
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    cert.configure_cert(server_ctx)
    ca_path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_path))
    _server, upstream = start_websockets_server(server_thread, lib_echo, ssl=server_ctx,
                                                compression=None)
    wss = upstream.replace("ws://", "wss://")
    with relay("--cacert", str(ca_path), wss) as rp:
        with connect(rp.url) as ws:
            ws.send("over tls")
            assert ws.recv(timeout=scaled(5)) == "over tls"
        rp.wait_closed()
        rp.stop()
    out = rp.stdout.decode()
    assert '#1 > TEXT fin 8 B masked' in out and '#1 < TEXT fin 8 B unmasked "over tls"' in out
    # Without the CA the relay refuses the upstream and tells the client why.
    with relay(wss) as rp:
        got = _raw_exchange(rp.port, REQUEST, b"")
        rp.wait_closed()
        rp.stop()
    assert got.startswith(b"HTTP/1.1 502")
    assert "not trusted" in rp.stdout.decode()


@pytest.mark.slow
def test_relay_between_node_ws_client_and_wstool_serve_echo() -> None:
    from tests.node_peers import ensure_node_ws, run_node_ws_client

    node_ws = ensure_node_ws()
    echo = subprocess.Popen([sys.executable, "-m", "wstool", "serve-echo", "-p", "0"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        assert echo.stderr is not None
        line = echo.stderr.readline().decode()
        match = re.search(r"(ws://127\.0\.0\.1:\d+/)", line)
        assert match, line
        with relay("--json", match.group(1)) as rp:
            result = run_node_ws_client(node_ws, rp.url, ["héllo", b"\x00\xff"])
            assert result.messages == ["héllo", b"\x00\xff"], result
            assert result.close_code == 1000
            rp.wait_closed()
            rp.stop()
    finally:
        echo.send_signal(signal.SIGTERM)
        echo.communicate(timeout=15)
    frames = [e for e in rp.json_lines() if "event" not in e]
    assert all(set(f) == FRAME_KEYS and f["problems"] == [] for f in frames)
    texts = [(f["direction"], f["text"]) for f in frames if f["opcode"] == "TEXT"]
    assert texts == [("client", "héllo"), ("server", "héllo")]


def test_relay_usage_errors() -> None:
    from tests.conftest import run_wstool_inprocess

    proc = run_wstool_inprocess("frame-dump", "--listen", "127.0.0.1:0")
    assert proc.returncode == 2 and "--listen needs the URL" in proc.stderr
    proc = run_wstool_inprocess("frame-dump", "--listen", "127.0.0.1:0", "ftp://x/")
    assert proc.returncode == 2 and "invalid URL" in proc.stderr
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = run_wstool_inprocess("frame-dump", "--listen", f"127.0.0.1:{port}", "ws://127.0.0.1:1/")
    assert proc.returncode == 1
    assert proc.stderr.startswith(f"wstool: error: cannot listen on 127.0.0.1:{port}: ")
    assert "Traceback" not in proc.stderr


def test_decoder_sees_what_the_relay_forwarded() -> None:
    # The relay's decoders are the offline ones: the same bytes decode the same.
    records = decode_all(RESPONSE + bytes.fromhex("830161"))
    assert isinstance(records[0], HttpHead) and isinstance(records[1], FrameRecord)


@pytest.mark.slow
def test_relay_points_the_request_at_the_upstream(server_thread: ServerThread) -> None:
    received: list[bytes] = []
    upstream = _scripted_upstream(server_thread, RESPONSE, received)
    with relay("-H", "X-Debug: 1", "-H", "User-Agent: probe", upstream + "sock?y=2") as rp:
        got = _raw_exchange(rp.port, REQUEST, b"")
        rp.wait_closed()
        rp.stop()
    assert got == RESPONSE
    host = upstream.split("/")[2]
    assert received[0] == (
        b"GET /sock?y=2 HTTP/1.1\r\n" + f"Host: {host}\r\n".encode()
        + b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        b"X-Debug: 1\r\nUser-Agent: probe\r\n\r\n")
    out = rp.stdout.decode().splitlines()
    assert "#1 > GET /sock?y=2 HTTP/1.1" in out and "#1 > X-Debug: 1" in out
