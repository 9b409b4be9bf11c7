"""`wstool serve-echo --http2` (and `listen --http2`): WebSockets over HTTP/2, RFC 8441.

The server is a real process on 127.0.0.1 port 0; the client is tests/h2_client.py
(python-hyper's h2 and websockets' frames, nothing of wstool), over h2c with prior
knowledge and over TLS with ALPN h2 (trustme certificates). HTTP/1.1 clients (the
websockets library) share the same port.
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
from websockets.frames import Opcode
from websockets.sync.client import connect as sync_connect

from tests.conftest import scaled, write_leaf_cert
from tests.h2_client import H2Client
from tests.servers import ServeEcho

pytest.importorskip("h2", reason="h2 (pip install 'wstool[http2]') is not installed")


@pytest.fixture(scope="module")
def h2c_server() -> Iterator[ServeEcho]:
    """One h2c serve-echo for the tests that do not look at its whole log."""
    s = ServeEcho("--http2", "-v", "--max-size", "33554432")
    yield s
    s.close()


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    directory = tmp_path_factory.mktemp("h2tls")
    ca = trustme.CA()
    cert, key = write_leaf_cert(ca, "localhost", directory)
    cafile = directory / "ca.pem"
    ca.cert_pem.write_to_path(str(cafile))
    return cert, key, cafile


@pytest.fixture
def serve_echo() -> Iterator[Any]:
    servers: list[ServeEcho] = []

    def start(*args: str, command: str = "serve-echo", **kwargs: Any) -> ServeEcho:
        s = ServeEcho(*args, command=command, **kwargs)
        servers.append(s)
        return s

    yield start
    for s in servers:
        s.close()


def client_context(cafile: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(cafile))


# The handshake


def test_h2c_advertises_extended_connect_and_echoes(h2c_server: ServeEcho) -> None:
    client = H2Client(h2c_server.port)
    try:
        assert client.wait_settings() == 1  # SETTINGS_ENABLE_CONNECT_PROTOCOL
        ws = client.open_websocket("/chat")
        assert ws.status == 200
        # RFC 8441 §5: no Sec-WebSocket-Accept, no connection-specific fields.
        assert "sec-websocket-accept" not in ws.headers
        assert "upgrade" not in ws.headers and "connection" not in ws.headers
        ws.send_text("hello ✓")
        frame = ws.recv_message()
        assert (frame.opcode, frame.data) == (Opcode.TEXT, "hello ✓".encode())
        ws.send_binary(b"\x00\x01\xff")
        frame = ws.recv_message()
        assert (frame.opcode, frame.data) == (Opcode.BINARY, b"\x00\x01\xff")
        ws.close(1000, "bye")
        assert ws.recv_close().code == 1000
        ws.end_stream()
        ws.wait_ended()
    finally:
        client.close()
    h2c_server.wait_for("closed by the client: 1000")


def test_tls_alpn_h2_and_http11_on_the_same_port(
    serve_echo: Any, tls_files: tuple[Path, Path, Path]
) -> None:
    cert, key, cafile = tls_files
    s = serve_echo("--http2", "-v", "--cert", str(cert), "--key", str(key))
    client = H2Client(s.port, ssl_context=client_context(cafile))
    try:
        assert client.alpn == "h2"
        ws = client.open_websocket("/tls")
        assert ws.status == 200
        ws.send_text("over h2")
        assert ws.recv_message().data == b"over h2"
        # A client that offers only HTTP/1.1 gets the upgrade, as without --http2.
        with sync_connect(f"wss://localhost:{s.port}/h1",
                          ssl=client_context(cafile)) as h1:
            h1.send("over h1.1")
            assert h1.recv(timeout=scaled(10)) == "over h1.1"
        ws.send_text("still here")
        assert ws.recv_message().data == b"still here"
    finally:
        client.close()
    s.wait_for("(TLS, ALPN h2)")
    s.wait_for("h2 stream 1 opened: CONNECT /tls (:protocol websocket)")
    s.wait_for("connected from 127.0.0.1")


def test_http11_upgrade_still_served_on_an_h2c_port(h2c_server: ServeEcho) -> None:
    client = H2Client(h2c_server.port)
    try:
        ws = client.open_websocket("/h2")
        with sync_connect(f"ws://127.0.0.1:{h2c_server.port}/h1") as h1:
            h1.send(b"\x01\x02")
            assert h1.recv(timeout=scaled(10)) == b"\x01\x02"
        ws.send_text("x")
        assert ws.recv_message().data == b"x"
    finally:
        client.close()


def test_subprotocol_and_permessage_deflate_negotiated_as_over_http11(
    serve_echo: Any,
) -> None:
    s = serve_echo("--http2", "-s", "chat", "-s", "superchat")
    client = H2Client(s.port)
    try:
        ws = client.open_websocket("/", headers=[
            ("sec-websocket-protocol", "superchat, chat"),
            ("sec-websocket-extensions", "permessage-deflate; client_max_window_bits"),
        ])
        assert ws.status == 200
        assert ws.headers["sec-websocket-protocol"] == "chat"
        assert ws.headers["sec-websocket-extensions"].startswith("permessage-deflate")
        ws.send_text("small")  # below the compression threshold: echoed uncompressed
        frame = ws.recv_message()
        assert (frame.data, frame.rsv1) == (b"small", False)
    finally:
        client.close()


@pytest.mark.parametrize(
    ("options", "kwargs", "status"),
    [
        ((), {"protocol": "chat"}, 501),  # :protocol other than websocket
        ((), {"version": None}, 400),  # no sec-websocket-version
        ((), {"version": "8"}, 400),  # as over HTTP/1.1: only 13
        (("--origin", "https://ok.example"), {"headers": [("origin", "https://evil.example")]},
         403),
        (("--token", "s3cret"), {}, 401),
    ],
)
def test_bad_extended_connect_gets_an_error_status(
    serve_echo: Any, options: tuple[str, ...], kwargs: dict[str, Any], status: int
) -> None:
    s = serve_echo("--http2", "-v", *options)
    client = H2Client(s.port)
    try:
        ws = client.open_websocket("/x", **kwargs)
        assert ws.status == status
        ws.wait_ended()
        # The connection goes on: another stream is served.
        ok = client.request("GET", "/health")
        assert (ok.status, bytes(ok.body)) == (200, b"ok\n")
    finally:
        client.close()
    s.wait_for(f"HTTP {status} for")


def test_a_refusal_is_whole_then_rst_stream_no_error(h2c_server: ServeEcho) -> None:
    """RFC 9113 §8.1: the response is complete before the request (the client has not
    ended its side): its body and END_STREAM, then RST_STREAM NO_ERROR."""
    client = H2Client(h2c_server.port)
    try:
        ws = client.open_websocket("/x", version=None)
        assert ws.status == 400
        client.wait(lambda: ws.reset_code is not None)
        assert (ws.ended, ws.reset_code) == (True, 0)  # NO_ERROR
        assert b"missing sec-websocket-version" in bytes(ws.body)
    finally:
        client.close()


def test_plain_requests_take_the_http11_path(h2c_server: ServeEcho) -> None:
    client = H2Client(h2c_server.port)
    try:
        health = client.request("GET", "/health")
        assert (health.status, bytes(health.body)) == (200, b"ok\n")
        page = client.request("GET", "/room?x=1")
        assert page.status == 426
        assert f"wstool connect ws://localhost:{h2c_server.port}/room?x=1" in bytes(
            page.body).decode()
        head = client.request("HEAD", "/health")
        assert (head.status, head.headers["content-length"], bytes(head.body)) == (
            200, "3", b"")
        post = client.request("POST", "/health")
        assert post.status == 405
    finally:
        client.close()


# Several sockets on one connection


def test_several_streams_at_once(h2c_server: ServeEcho) -> None:
    client = H2Client(h2c_server.port)
    try:
        sockets = [client.open_websocket(f"/s{i}") for i in range(8)]
        for round_ in range(3):
            for i, ws in enumerate(sockets):
                ws.send_text(f"{i}:{round_}")
        for i, ws in enumerate(sockets):
            got = [ws.recv_message().data for _ in range(3)]
            assert got == [f"{i}:{r}".encode() for r in range(3)]
        for ws in sockets:
            ws.close()
        for ws in sockets:
            assert ws.recv_close().code == 1000
    finally:
        client.close()


@pytest.mark.slow
def test_16_mib_message_flow_control(h2c_server: ServeEcho) -> None:
    client = H2Client(h2c_server.port)
    try:
        ws = client.open_websocket("/big")
        other = client.open_websocket("/small")
        big = os.urandom(16 << 20)
        ws.send_binary(big)
        other.send_text("beside it")
        assert other.recv_message().data == b"beside it"
        frame = ws.recv_message(timeout=60)
        assert frame.opcode is Opcode.BINARY and frame.data == big
    finally:
        client.close()


def test_a_client_that_does_not_read_is_held_by_flow_control(h2c_server: ServeEcho) -> None:
    """Bounded memory: echoes pile up only to the high-water mark, then the server
    stops handing back window and the client cannot send more."""
    client = H2Client(h2c_server.port)
    client.auto_ack = False
    try:
        ws = client.open_websocket("/slow")
        chunk = b"z" * 65536
        sent = 0
        client.default_wait_s = 2
        with pytest.raises(TimeoutError):
            while sent < (64 << 20):
                ws.send_binary(chunk)  # waits for window; times out when held
                sent += len(chunk)
        assert sent < (8 << 20), sent
        # Reading again releases everything: every echo arrives, in order.
        client.auto_ack = True
        client.ack_all()
        client.default_wait_s = 10
        # The message cut by the timeout is not whole: finish it with its rest.
        count = sent // len(chunk)
        for _ in range(count):
            assert ws.recv_message(timeout=30).data == chunk
    finally:
        client.close()


# Strictness holds over h2 (the same engine as serve-echo over HTTP/1.1)


def _raw(opcode: int, payload: bytes, *, fin: bool = True, mask: bool = True,
         rsv: int = 0) -> bytes:
    head = bytes([(0x80 if fin else 0) | rsv | opcode])
    length = len(payload)
    if length < 126:
        head += bytes([(0x80 if mask else 0) | length])
    else:
        head += bytes([(0x80 if mask else 0) | 126]) + length.to_bytes(2, "big")
    if not mask:
        return head + payload
    key = b"\x11\x22\x33\x44"
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


@pytest.mark.parametrize(
    ("frames", "code"),
    [
        ([_raw(0x1, b"ok \xed\xa0\x80")], 1007),  # a UTF-16 surrogate: invalid UTF-8
        ([_raw(0x1, b"\xce", fin=False), _raw(0x0, b"\xff")], 1007),  # across fragments
        ([_raw(0x1, b"unmasked", mask=False)], 1002),
        ([_raw(0x9, b"p" * 126)], 1002),  # control frame over 125 bytes
        ([_raw(0x9, b"p", fin=False)], 1002),  # fragmented control frame
        ([_raw(0x8, (999).to_bytes(2, "big"))], 1002),  # invalid close code
        ([_raw(0x0, b"cont")], 1002),  # continuation with nothing to continue
        ([_raw(0x1, b"a", fin=False), _raw(0x1, b"b")], 1002),  # new message mid-message
        ([_raw(0x1, b"x", rsv=0x40)], 1002),  # RSV1 without an extension
        ([_raw(0x3, b"")], 1002),  # reserved opcode
    ],
)
def test_strictness_over_h2(h2c_server: ServeEcho, frames: list[bytes], code: int) -> None:
    client = H2Client(h2c_server.port)
    try:
        ws = client.open_websocket("/strict")
        ws.send_text("before")
        assert ws.recv_message().data == b"before"  # echoed before the bad frame
        ws.send_raw(b"".join(frames))
        assert ws.recv_close().code == code
        # The connection's other streams are not affected.
        other = client.open_websocket("/other")
        other.send_text("fine")
        assert other.recv_message().data == b"fine"
    finally:
        client.close()


def test_fragments_with_a_ping_between_them_over_h2(h2c_server: ServeEcho) -> None:
    client = H2Client(h2c_server.port)
    try:
        ws = client.open_websocket("/frag")
        ws.send_raw(_raw(0x1, "fragmé".encode()[:6], fin=False) + _raw(0x9, b"hb")
                    + _raw(0x0, "fragmé".encode()[6:]))
        pong = ws.recv()
        assert (pong.opcode, pong.data) == (Opcode.PONG, b"hb")
        assert ws.recv_message().data == "fragmé".encode()
    finally:
        client.close()


# Ends


def test_rst_stream_of_one_socket_while_another_goes_on(serve_echo: Any) -> None:
    s = serve_echo("--http2", "-v")
    client = H2Client(s.port)
    try:
        first = client.open_websocket("/first")
        second = client.open_websocket("/second")
        first.send_text("1")
        assert first.recv_message().data == b"1"
        first.reset()
        s.wait_for("closed without a closing handshake: 1006")
        second.send_text("2")
        assert second.recv_message().data == b"2"
    finally:
        client.close()
    line = s.wait_for("1006")
    assert "stream reset by the client (RST_STREAM CANCEL)" in line


def test_shutdown_sends_goaway_and_closes_sockets_with_1001(serve_echo: Any) -> None:
    s = serve_echo("--http2")
    client = H2Client(s.port)
    try:
        ws = client.open_websocket("/")
        ws.send_text("x")
        assert ws.recv_message().data == b"x"
        s.proc.terminate()
        assert ws.recv_close().code == 1001
        ws.close(1001)
        ws.end_stream()
        client.wait(lambda: client.goaway is not None)
        assert client.goaway is not None and client.goaway.error_code == 0
        assert s.proc.wait(scaled(10)) == 0
    finally:
        client.close()


def test_garbage_clients_do_not_stop_others(
    serve_echo: Any, tls_files: tuple[Path, Path, Path]
) -> None:
    cert, key, cafile = tls_files
    s = serve_echo("--http2", "-v", "--cert", str(cert), "--key", str(key))
    good = H2Client(s.port, ssl_context=client_context(cafile))
    try:
        ws = good.open_websocket("/good")
        # The preface, then nonsense (an HTTP/2 protocol error: GOAWAY, closed).
        bad = H2Client(s.port, ssl_context=client_context(cafile))
        bad.sock.sendall(b"\x00\x00\x05\x00\x00\x00\x00\x00\x00junk!")  # DATA on stream 0
        bad.wait(lambda: bad.closed or bad.goaway is not None)
        assert bad.goaway is not None and bad.goaway.error_code == 1  # PROTOCOL_ERROR
        # A TLS client that offers h2 then writes random bytes, no preface.
        raw = H2Client.__new__(H2Client)
        sock = client_context(cafile).wrap_socket(
            socket.create_connection(("127.0.0.1", s.port)), server_hostname="localhost")
        raw.sock = sock
        sock.sendall(os.urandom(300))
        ws.send_text("still served")
        assert ws.recv_message().data == b"still served"
        sock.close()
    finally:
        good.close()
    s.wait_for("HTTP/2 protocol error")


def test_json_log_names_h2_connections_and_streams(serve_echo: Any) -> None:
    s = serve_echo("--http2", "--json")
    client = H2Client(s.port)
    try:
        ws = client.open_websocket("/j")
        ws.close()
        ws.recv_close()
        ws.end_stream()
        ws.wait_ended()
    finally:
        client.close()
    s.stop()
    events = [json.loads(line) for line in s.stdout.splitlines()]
    kinds = [(e["event"], e.get("state")) for e in events]
    assert ("h2_connection", "opened") in kinds and ("h2_connection", "closed") in kinds
    opened = next(e for e in events if e["event"] == "h2_stream" and e["state"] == "opened")
    assert (opened["stream"], opened["method"], opened["protocol"], opened["path"]) == (
        1, "CONNECT", "websocket", "/j")
    connect = next(e for e in events if e["event"] == "connect")
    assert connect["client"] == opened["client"]


def test_without_h2_installed_http2_says_how_to_install(tmp_path: Path) -> None:
    blocker = tmp_path / "h2"
    blocker.mkdir()
    (blocker / "__init__.py").write_text("raise ImportError('blocked by the test')\n")
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.getcwd()}", "NO_COLOR": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "wstool", "serve-echo", "--http2", "--port", "0"],
        capture_output=True, text=True, timeout=scaled(20), env=env,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "wstool: error: --http2 needs the h2 package: pip install 'wstool[http2]'")


# listen --http2: the stdin/stdout bridge with an h2 client


def test_listen_http2_bridges_stdin_and_stdout(serve_echo: Any) -> None:
    s = serve_echo("--http2", "-v", command="listen", stdin=subprocess.PIPE)
    client = H2Client(s.port)
    try:
        ws = client.open_websocket("/l")
        s.wait_for("connected from")
        ws.send_text("to stdout")
        assert s.proc.stdin is not None
        s.proc.stdin.write(b"to the client\n")
        s.proc.stdin.flush()
        assert ws.recv_message().data == b"to the client"
        ws.close()
        ws.recv_close()
        ws.end_stream()
        s.wait_for("closed by the client")
        s.proc.stdin.close()
    finally:
        client.close()
    s.stop()
    assert b"to stdout\n" in s.stdout


def test_static_files_over_h2(serve_echo: Any, tmp_path: Path) -> None:
    (tmp_path / "index.html").write_text("<p>hi over h2</p>\n")
    s = serve_echo("--http2", "-v", "--static", str(tmp_path))
    client = H2Client(s.port)
    try:
        page = client.request("GET", "/")
        assert page.status == 200, bytes(page.body)
        assert bytes(page.body) == b"<p>hi over h2</p>\n"
        assert page.headers["content-type"].startswith("text/html")
        head = client.request("HEAD", "/index.html")
        assert (head.status, head.headers["content-length"], bytes(head.body)) == (
            200, "18", b"")
        missing = client.request("GET", "/nope.html")
        assert missing.status == 404
        # The WebSocket beside it, on the same connection.
        ws = client.open_websocket("/")
        ws.send_text("and a socket")
        assert ws.recv_message().data == b"and a socket"
    finally:
        client.close()
    s.wait_for("GET /: static 18 bytes")


def test_a_header_value_websockets_refuses_is_400_and_escaped(serve_echo: Any) -> None:
    s = serve_echo("--http2", "-vv")
    client = H2Client(s.port)
    try:
        bad = client.open_websocket("/x", headers=[("origin", "http://evil\x1b[31m")])
        assert bad.status == 400
        good = client.open_websocket("/ok", headers=[("sec-websocket-protocol", "chat")])
        good.send_text("fine")
        assert good.recv_message().data == b"fine"
    finally:
        client.close()
    line = s.wait_for("HTTP 400 for")
    assert "\x1b" not in line and "evil\\e[31m" in line
    # -vv: the HTTP/2 request and response header blocks.
    s.wait_for("< CONNECT /ok HTTP/2 (:protocol websocket, stream 3)")
    s.wait_for("< sec-websocket-protocol: chat")
    s.wait_for("> HTTP/2 200 OK")


def test_a_connection_that_opens_no_stream_is_closed_after_open_timeout(
    serve_echo: Any,
) -> None:
    s = serve_echo("--http2", "-v", "--open-timeout", "0.5")
    idle = H2Client(s.port)
    busy = H2Client(s.port)
    try:
        ws = busy.open_websocket("/")
        idle.wait(lambda: idle.goaway is not None)
        assert idle.goaway is not None and idle.goaway.error_code == 0
        ws.send_text("still open")  # a connection with a stream is not timed out
        assert ws.recv_message().data == b"still open"
    finally:
        idle.close()
        busy.close()
    s.wait_for("no stream within --open-timeout 0.5s")


def test_curl_nghttp2_gets_health_over_h2_and_h2c(
    serve_echo: Any, tls_files: tuple[Path, Path, Path]
) -> None:
    """A second independent HTTP/2 implementation (curl's nghttp2), plain requests."""
    import shutil

    curl = shutil.which("curl")
    if curl is None or "HTTP2" not in subprocess.run(
            [curl, "--version"], capture_output=True, text=True).stdout:
        pytest.skip("curl with HTTP/2 (nghttp2) is not installed")
    cert, key, cafile = tls_files
    tls = serve_echo("--http2", "--cert", str(cert), "--key", str(key))
    clear = serve_echo("--http2")
    for args in (["--http2", "--cacert", str(cafile), f"https://localhost:{tls.port}/health"],
                 ["--http2-prior-knowledge", f"http://127.0.0.1:{clear.port}/health"]):
        result = subprocess.run([curl, "-s", "-i", *args], capture_output=True,
                                timeout=scaled(20))
        assert result.stdout.startswith(b"HTTP/2 200"), result
        assert result.stdout.endswith(b"\r\n\r\nok\n"), result


def test_max_connections_counts_the_sockets_of_h2_streams(serve_echo: Any) -> None:
    s = serve_echo("--http2", "--max-connections", "1")
    client = H2Client(s.port)
    try:
        first = client.open_websocket("/one")
        second = client.open_websocket("/two")
        assert (first.status, second.status) == (200, 503)
        assert second.headers["retry-after"] == "1"
        first.send_text("served")
        assert first.recv_message().data == b"served"
    finally:
        client.close()
