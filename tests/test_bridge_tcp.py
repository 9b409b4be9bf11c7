"""WebSocket <-> TCP (issue 16): ``listen --to-tcp`` and ``connect --from-tcp``.

Real sockets on 127.0.0.1 only: TCP services are small threaded servers here; the
WebSocket peers are the websockets library's client and server and Node's ``ws``
client; the chain test runs real wstool processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.conftest import (
    ServerThread,
    closed_port,
    run_wstool_inprocess,
    scaled,
)
from tests.node_peers import NodeWsClient, ensure_node_ws
from tests.servers import ServeEcho
from tests.websockify_peer import ensure_websockify
from wstool.bridge.tcp import MAX_LINE_BYTES, LineSplitter, TcpBridgeApp, close_reason
from wstool.config import ServerConfig, TcpBridgeConfig, parse_tcp_address
from wstool.errors import UsageError
from wstool.protocol.echo import OP_BINARY, OP_TEXT

# TCP services


class TcpService:
    """A threaded TCP server on 127.0.0.1 port 0; HANDLER(sock, service) per connection."""

    def __init__(self, handler: Callable[[socket.socket, TcpService], None]) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = int(self.sock.getsockname()[1])
        self.handler = handler
        self.received: list[bytes] = []  # everything each connection sent, at its EOF
        self.eofs = 0
        self.connections = 0
        self.cond = threading.Condition()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self.cond:
                self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):
            self.handler(conn, self)

    def saw_eof(self, data: bytes) -> None:
        with self.cond:
            self.received.append(data)
            self.eofs += 1
            self.cond.notify_all()

    def wait_eofs(self, n: int) -> None:
        with self.cond:
            assert self.cond.wait_for(lambda: self.eofs >= n, scaled(10)), self.received

    def close(self) -> None:
        self.sock.close()


def echo_handler(conn: socket.socket, service: TcpService) -> None:
    got = []
    while data := conn.recv(65536):
        got.append(data)
        conn.sendall(data)
    service.saw_eof(b"".join(got))
    conn.shutdown(socket.SHUT_WR)


def upper_lines_handler(conn: socket.socket, service: TcpService) -> None:
    """A line service: each line comes back upper-cased (CRLF, like SMTP)."""
    conn.sendall(b"220 ready\r\n")
    buffer = b""
    while data := conn.recv(65536):
        buffer += data
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            conn.sendall(line.upper() + b"\r\n")
    service.saw_eof(buffer)


def greet_and_close_handler(conn: socket.socket, service: TcpService) -> None:
    # The client's first bytes first: had the greeting and the half-close gone before
    # them, the bridge's Close could reach the client before it sent (its send then
    # raises ConnectionClosedOK: seen in CI under load).
    got = conn.recv(65536)
    conn.sendall(b"hello and goodbye")
    conn.shutdown(socket.SHUT_WR)
    while data := conn.recv(65536):
        got += data
    service.saw_eof(got)


@pytest.fixture
def tcp_echo() -> Iterator[TcpService]:
    service = TcpService(echo_handler)
    yield service
    service.close()


# The pure parts


@pytest.mark.parametrize(("text", "expected"), [
    ("127.0.0.1:22", ("127.0.0.1", 22)),
    ("localhost:5900", ("localhost", 5900)),
    ("db-1.internal.example:5432", ("db-1.internal.example", 5432)),
    ("[::1]:8080", ("::1", 8080)),
])
def test_parse_tcp_address(text: str, expected: tuple[str, int]) -> None:
    assert parse_tcp_address(text, "--to-tcp") == expected


@pytest.mark.parametrize(("text", "fragment"), [
    ("22", "expected HOST:PORT"),
    ("127.0.0.1", "expected HOST:PORT"),
    (":22", "HOST is empty"),
    ("127.0.0.1:0", "port 1-65535"),
    ("127.0.0.1:65536", "port 1-65535"),
    ("127.0.0.1:http", "port 1-65535"),
    ("::1:22", "IPv6 HOST goes in brackets"),
    ("[zz]:22", "not an IPv6 address"),
    ("bad host:22", "not a host name"),
    ("a/b:22", "not a host name"),
    ("user@host:22", "not a host name"),
    ("-x.example:22", "not a host name"),
    ("a..b:22", "not a host name"),
    ("h\x00:22", "not a host name"),
    ("héllo:22", "not a host name"),
])
def test_parse_tcp_address_refuses(text: str, fragment: str) -> None:
    with pytest.raises(UsageError, match=re.escape(fragment)):
        parse_tcp_address(text, "--to-tcp")


def test_parse_tcp_address_with_a_default_host() -> None:
    assert parse_tcp_address("9000", "--from-tcp", default_host="127.0.0.1") == (
        "127.0.0.1", 9000)
    assert parse_tcp_address("0", "--from-tcp", default_host="127.0.0.1") == ("127.0.0.1", 0)
    assert parse_tcp_address("[::1]:0", "--from-tcp", default_host="127.0.0.1") == ("::1", 0)


def test_line_splitter() -> None:
    lines = LineSplitter()
    assert lines.feed(b"one\r\ntw") == [(OP_TEXT, b"one")]
    assert lines.feed(b"o\n\nthr\xffee\n") == [(OP_TEXT, b"two"), (OP_TEXT, b""),
                                               (OP_BINARY, b"thr\xffee")]
    assert lines.feed(b"tail") == []
    assert lines.finish() == [(OP_TEXT, b"tail")]
    assert lines.finish() == []
    long = lines.feed(b"x" * (MAX_LINE_BYTES + 10))
    assert long == [(OP_TEXT, b"x" * MAX_LINE_BYTES)]
    assert lines.finish() == [(OP_TEXT, b"x" * 10)]


def test_close_reason_fits_a_close_frame() -> None:
    assert close_reason("short") == "short"
    cut = close_reason("é" * 100)
    assert len(cut.encode()) <= 123 and cut.endswith("...")


# listen --to-tcp: the App over the server core, in a thread


@pytest.fixture
def bridge_server() -> Iterator[Callable[..., str]]:
    from wstool.server.core import WebSocketServer

    st = ServerThread()
    servers: list[Any] = []
    events: list[Any] = []

    def start(port: int, *, text: bool = False, **config: Any) -> str:
        async def go() -> Any:
            server = WebSocketServer(
                ServerConfig(port=0, **config), TcpBridgeApp(TcpBridgeConfig("127.0.0.1", port,
                                                                             text)),
                events.append)
            await server.start()
            return server

        server = st.run(go())
        servers.append(server)
        return str(server.urls[0])

    yield start
    try:
        for server in servers:
            st.run(server.shutdown())
            st.run(server.app.stop())
    finally:
        st.stop()


def test_bytes_both_ways_and_the_client_close_half_closes_tcp(
        bridge_server: Callable[..., str], tcp_echo: TcpService) -> None:
    url = bridge_server(tcp_echo.port)
    blob = os.urandom(300_000)

    async def client() -> bytes:
        async with connect(url, max_size=None) as ws:
            await ws.send(blob)
            await ws.send("text goes as its UTF-8: é")
            got = b""
            while len(got) < len(blob) + len("text goes as its UTF-8: é".encode()):
                message = await asyncio.wait_for(ws.recv(), scaled(5))
                assert isinstance(message, bytes)  # TCP -> client: binary messages
                got += message
            return got

    got = asyncio.run(client())
    assert got == blob + "text goes as its UTF-8: é".encode()
    tcp_echo.wait_eofs(1)  # the client's close reached the service as EOF, all bytes first
    assert tcp_echo.received == [got]


def test_each_client_gets_its_own_tcp_connection(
        bridge_server: Callable[..., str], tcp_echo: TcpService) -> None:
    url = bridge_server(tcp_echo.port)
    blobs = [os.urandom(50_000 + i) for i in range(10)]

    async def one(blob: bytes) -> bytes:
        async with connect(url) as ws:
            await ws.send(blob)
            got = b""
            while len(got) < len(blob):
                message = await asyncio.wait_for(ws.recv(), scaled(5))
                assert isinstance(message, bytes)
                got += message
            return got

    async def all_at_once() -> list[bytes]:
        return list(await asyncio.gather(*(one(blob) for blob in blobs)))

    assert asyncio.run(all_at_once()) == blobs
    tcp_echo.wait_eofs(10)
    assert tcp_echo.connections == 10
    assert sorted(tcp_echo.received) == sorted(blobs)


def test_the_tcp_side_closing_is_close_1000_after_its_last_bytes(
        bridge_server: Callable[..., str]) -> None:
    service = TcpService(greet_and_close_handler)
    url = bridge_server(service.port)

    async def client() -> tuple[list[Any], int | None]:
        messages = []
        async with connect(url) as ws:
            await ws.send(b"late words")
            with pytest.raises(ConnectionClosed):
                while True:
                    messages.append(await asyncio.wait_for(ws.recv(), scaled(5)))
            assert ws.protocol.close_rcvd is not None
            return messages, ws.protocol.close_rcvd.code

    messages, code = asyncio.run(client())
    assert b"".join(messages) == b"hello and goodbye"
    assert code == 1000
    service.wait_eofs(1)
    assert service.received == [b"late words"]  # sent before the client saw the Close
    service.close()


def test_nothing_listening_is_close_1011_and_the_server_carries_on(
        bridge_server: Callable[..., str]) -> None:
    port = closed_port()
    url = bridge_server(port)

    async def client() -> tuple[int, str]:
        async with connect(url) as ws:
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), scaled(5))
            assert ws.protocol.close_rcvd is not None
            return ws.protocol.close_rcvd.code, ws.protocol.close_rcvd.reason

    code, reason = asyncio.run(client())
    assert code == 1011  # a closing handshake, not a dropped connection
    assert reason == f"cannot connect to 127.0.0.1:{port}: Connection refused"
    # The same server, once something listens there: bridged.
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen()

        async def second() -> None:
            async with connect(url) as ws:
                await ws.send(b"ping")
                peer, _ = await asyncio.get_running_loop().run_in_executor(
                    None, listener.accept)
                with peer:
                    assert peer.recv(10) == b"ping"
                    peer.sendall(b"pong")
                    assert await asyncio.wait_for(ws.recv(), scaled(5)) == b"pong"

        asyncio.run(second())


def test_text_mode_lines_are_text_messages(bridge_server: Callable[..., str]) -> None:
    service = TcpService(upper_lines_handler)
    url = bridge_server(service.port, text=True)

    async def client() -> list[Any]:
        async with connect(url) as ws:
            got = [await asyncio.wait_for(ws.recv(), scaled(5))]
            await ws.send("helo localhost")
            await ws.send("quit")
            await ws.send(b"raw\n")  # binary: written as it is
            got += [await asyncio.wait_for(ws.recv(), scaled(5)) for _ in range(3)]
            return got

    assert asyncio.run(client()) == ["220 ready", "HELO LOCALHOST", "QUIT", "RAW"]
    service.close()


@pytest.mark.slow
def test_a_service_that_does_not_read_pauses_its_client(
        bridge_server: Callable[..., str]) -> None:
    """Backpressure: the server's memory does not grow with what the client sends."""
    stalled = threading.Event()

    def never_read(conn: socket.socket, service: TcpService) -> None:
        stalled.wait(scaled(20))

    service = TcpService(never_read)
    url = bridge_server(service.port, compress=False)

    async def client() -> int:
        async with connect(url, compression=None, write_limit=65536) as ws:
            chunk = os.urandom(65536)
            sent = 0
            try:
                for _ in range(4000):  # 256 MB if nothing pushed back
                    await asyncio.wait_for(ws.send(chunk), scaled(1))
                    sent += len(chunk)
            except TimeoutError:
                pass
            stalled.set()
            return sent

    sent = asyncio.run(client())
    assert sent < 64 * 1024 * 1024, sent  # kernel buffers, not a growing queue
    service.close()


# connect --from-tcp, in-process, against the websockets library's echo server


def start_from_tcp(url: str, *args: str) -> tuple[subprocess.Popen[bytes], int, list[str]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "wstool", "connect", "--from-tcp", "0", url, *args],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env={**os.environ, "NO_COLOR": "1"})
    assert proc.stderr is not None
    line = proc.stderr.readline().decode()
    match = re.search(r"listening on tcp://127\.0\.0\.1:(\d+);", line)
    assert match, line
    lines: list[str] = []

    def drain() -> None:
        assert proc.stderr is not None
        for raw in proc.stderr:
            lines.append(raw.decode(errors="replace"))

    threading.Thread(target=drain, daemon=True).start()
    return proc, int(match.group(1)), lines


def stop(proc: subprocess.Popen[bytes]) -> int:
    proc.terminate()
    try:
        return proc.wait(scaled(10))
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise


def tcp_round_trip(port: int, data: bytes, *, half_close: bool = True) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=scaled(20)) as sock:
        def send() -> None:
            sock.sendall(data)
            if half_close:
                sock.shutdown(socket.SHUT_WR)

        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        got = []
        while chunk := sock.recv(1 << 20):
            got.append(chunk)
        sender.join()
        return b"".join(got)


@pytest.mark.slow
def test_from_tcp_to_the_websockets_library_echo(lib_echo_url: str) -> None:
    proc, port, lines = start_from_tcp(lib_echo_url, "-v")
    try:
        blob = os.urandom(2_000_000)
        # Two connections at once, each its own WebSocket.
        results: dict[int, bytes] = {}
        threads = [threading.Thread(target=lambda i=i: results.__setitem__(
            i, tcp_round_trip(port, blob[i:]))) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert results[0] == blob and results[1] == blob[1:]
    finally:
        assert stop(proc) == 0
    assert sum("bridged to ws://127.0.0.1:" in line for line in lines) == 2, lines


@pytest.mark.slow
def test_from_tcp_local_eof_still_delivers_what_comes_later(server_thread: ServerThread) -> None:
    """A byte stream's messages are not requests: after the local EOF, a reply to each
    message does not end the run (pipe mode's rule); -w's idle time does."""
    from tests import servers
    from tests.conftest import start_websockets_server

    _server, url = start_websockets_server(server_thread, servers.slow_replies)
    proc, port, _lines = start_from_tcp(url, "--text")
    try:
        assert tcp_round_trip(port, b"m\n") == b"m\nlate m\n"
    finally:
        assert stop(proc) == 0


@pytest.mark.slow
def test_from_tcp_text_mode_and_x(lib_echo_url: str) -> None:
    proc, port, _lines = start_from_tcp(lib_echo_url, "--text", "-x", "greeting")
    try:
        assert tcp_round_trip(port, b"one\r\ntwo\nthree") == b"greeting\none\ntwo\nthree\n"
    finally:
        assert stop(proc) == 0


@pytest.mark.slow
def test_from_tcp_when_the_server_is_down_closes_the_local_connection() -> None:
    proc, port, lines = start_from_tcp(f"ws://127.0.0.1:{closed_port()}/")
    try:
        assert tcp_round_trip(port, b"anyone?") == b""
        deadline = time.monotonic() + scaled(5)
        while not any("error: " in line for line in lines) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert any(re.search(r"\[1\] error: .*refused", line) for line in lines), lines
        assert proc.poll() is None  # still accepting
    finally:
        assert stop(proc) == 0


# listen --to-tcp as a process, with Node's ws client


@pytest.mark.slow
def test_listen_to_tcp_with_a_node_ws_client(tmp_path: Path) -> None:
    node = NodeWsClient(ensure_node_ws())
    service = TcpService(upper_lines_handler)
    server = ServeEcho("--to-tcp", f"127.0.0.1:{service.port}", "--text", "-v",
                       command="listen")
    try:
        result = node(server.url, ["hello", "world"], expect=3)
        assert result.messages == ["220 ready", "HELLO", "WORLD"], result
        assert result.close_code == 1000
        server.wait_for("each client is bridged to tcp 127.0.0.1:")
    finally:
        server.close()
        service.close()


@pytest.mark.slow
def test_listen_to_tcp_refused_is_one_line_per_client() -> None:
    port = closed_port()
    server = ServeEcho("--to-tcp", f"127.0.0.1:{port}", command="listen")
    try:
        async def client() -> int | None:
            async with connect(server.url) as ws:
                with pytest.raises(ConnectionClosed):
                    await asyncio.wait_for(ws.recv(), scaled(5))
                return ws.protocol.close_rcvd.code if ws.protocol.close_rcvd else None

        assert asyncio.run(client()) == 1011
        server.wait_for(f"[1] cannot connect to 127.0.0.1:{port}: Connection refused")
        assert asyncio.run(client()) == 1011  # the server carries on
    finally:
        server.close()


# The chain: tcp client -> connect --from-tcp -> listen --to-tcp -> tcp echo


def peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


@pytest.mark.slow
def test_chain_is_byte_exact_for_100_mb_each_way_with_bounded_memory(
        tcp_echo: TcpService) -> None:
    size = 100 * 1024 * 1024
    listen = ServeEcho("--to-tcp", f"127.0.0.1:{tcp_echo.port}", command="listen")
    proc = None
    try:
        proc, port, _lines = start_from_tcp(listen.url)
        base = (peak_rss_kib(listen.proc.pid), peak_rss_kib(proc.pid))
        blob = os.urandom(size)
        back = tcp_round_trip(port, blob)
        assert len(back) == size
        assert back == blob
        tcp_echo.wait_eofs(1)
        assert len(tcp_echo.received[0]) == size
        # Peak memory grew by far less than the data (transports' buffers only).
        growth = (peak_rss_kib(listen.proc.pid) - base[0], peak_rss_kib(proc.pid) - base[1])
        assert max(growth) < 48 * 1024, growth
    finally:
        if proc is not None:
            assert stop(proc) == 0
        listen.close()


@pytest.mark.slow
def test_chain_over_wss_with_connect_options(tcp_echo: TcpService) -> None:
    """--from-tcp makes each WebSocket with the connect options: TLS (--cacert), -s."""
    pytest.importorskip("cryptography")
    listen = ServeEcho("--to-tcp", f"127.0.0.1:{tcp_echo.port}", "--self-signed",
                       "-s", "bridge.v1", "-v", command="listen")
    proc = None
    try:
        cert = re.search(r"certificate .* in (\S+\.pem)", "\n".join(listen.lines))
        assert cert, listen.lines
        url = f"wss://localhost:{listen.port}/"
        proc, port, _lines = start_from_tcp(url, "--cacert", cert.group(1), "-s", "bridge.v1")
        blob = os.urandom(1_000_000)
        assert tcp_round_trip(port, blob) == blob
        listen.wait_for("subprotocol bridge.v1")
    finally:
        if proc is not None:
            assert stop(proc) == 0
        listen.close()


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_from_tcp_through_websockify(tcp_echo: TcpService) -> None:
    """websockify as the independent server-side bridge: local TCP -> wstool -> websockify
    -> TCP echo, byte for byte."""
    websockify = ensure_websockify()
    port = closed_port()
    bridge = subprocess.Popen([websockify, f"127.0.0.1:{port}", f"127.0.0.1:{tcp_echo.port}"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    proc = None
    try:
        deadline = time.monotonic() + scaled(15)
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert bridge.poll() is None and time.monotonic() < deadline, "no websockify"
                time.sleep(0.05)
        proc, local, _lines = start_from_tcp(f"ws://127.0.0.1:{port}/", "-s", "binary")
        blob = os.urandom(5_000_000)
        assert tcp_round_trip(local, blob) == blob
    finally:
        if proc is not None:
            assert stop(proc) == 0
        bridge.terminate()
        bridge.wait(scaled(10))


# Usage errors (exit 2, one line)


@pytest.mark.parametrize(("args", "message"), [
    (["listen", "--to-tcp", "nohost"], "invalid --to-tcp 'nohost': expected HOST:PORT"),
    (["listen", "--to-tcp", "bad host:1"],
     "invalid --to-tcp 'bad host:1': 'bad host' is not a host name or address"),
    (["listen", "--text"], "--text applies to --to-tcp only"),
    (["listen", "--once", "--to-tcp", "127.0.0.1:1"], "--once does not apply to --to-tcp"),
    (["connect", "--from-tcp", "x", "ws://127.0.0.1:1/"], "invalid --from-tcp 'x'"),
    (["connect", "--from-tcp", "0", "--echo", "ws://127.0.0.1:1/"],
     "--echo does not apply to --from-tcp"),
    (["connect", "--from-tcp", "0", "--reconnect", "ws://127.0.0.1:1/"],
     "--reconnect does not apply to --from-tcp"),
    (["connect", "--text", "ws://127.0.0.1:1/"], "--text applies to --from-tcp only"),
    # Stream options that would change the bytes are refused, not silently ignored.
    (["listen", "--to-tcp", "127.0.0.1:1", "-0"], "-0/--null does not apply to --to-tcp"),
    (["listen", "--to-tcp", "127.0.0.1:1", "--base64"], "--base64 does not apply to --to-tcp"),
    (["connect", "--from-tcp", "0", "-0", "ws://127.0.0.1:1/"],
     "-0/--null does not apply to --from-tcp"),
    (["connect", "--from-tcp", "0", "--base64", "ws://127.0.0.1:1/"],
     "--base64 does not apply to --from-tcp"),
])
def test_usage_errors(args: list[str], message: str) -> None:
    proc = run_wstool_inprocess(*args)
    assert proc.returncode == 2, proc.stderr
    assert f"wstool: error: {message}" in proc.stderr
    assert "Traceback" not in proc.stderr
