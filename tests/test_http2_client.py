"""connect --http2 (issue 12): WebSockets over HTTP/2 (RFC 8441) against real peers.

Hypercorn (an independent server: ASGI echo over h2 extended CONNECT, TLS from
trustme and h2c), raw h2 servers that refuse or misbehave (tests/h2_peers.py), and
the websockets library's HTTP/1.1 server for the fallback. Loopback only.
"""

from __future__ import annotations

import hashlib
import json
import os
import ssl
from pathlib import Path

import pytest
import trustme

from tests.conftest import (
    ServerThread,
    lib_echo,
    run_wstool,
    run_wstool_inprocess,
    start_websockets_server,
)
from tests.h2_peers import RawH2Server, start_hypercorn


@pytest.fixture
def h2c_port(server_thread: ServerThread) -> int:
    return start_hypercorn(server_thread)


@pytest.fixture
def h2_tls_port(server_thread: ServerThread, ca: trustme.CA, tmp_path: Path) -> int:
    cert = ca.issue_cert("127.0.0.1", "localhost")
    certfile, keyfile = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.cert_chain_pems[0].write_to_path(str(certfile))
    for pem in cert.cert_chain_pems[1:]:
        pem.write_to_path(str(certfile), append=True)
    cert.private_key_pem.write_to_path(str(keyfile))
    return start_hypercorn(server_thread, certfile=str(certfile), keyfile=str(keyfile))


def _tls_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    return context


def test_h2c_prior_knowledge_round_trip_with_hypercorn(h2c_port: int) -> None:
    proc = run_wstool_inprocess("connect", "--http2", "-v", f"ws://127.0.0.1:{h2c_port}/",
                                input=b"hello\nworld\n")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == b"hello\nworld\n"
    # -v: the server's SETTINGS, the request and response header blocks.
    assert "ENABLE_CONNECT_PROTOCOL=1" in proc.stderr
    assert "> :method: CONNECT" in proc.stderr and "> :protocol: websocket" in proc.stderr
    assert "> sec-websocket-version: 13" in proc.stderr
    assert "sec-websocket-key" not in proc.stderr.lower()  # RFC 8441 §5
    assert "< HTTP/2 200" in proc.stderr
    assert "falling back" not in proc.stderr
    assert f"connected to ws://127.0.0.1:{h2c_port}/ over HTTP/2 (RFC 8441)" in proc.stderr


def test_tls_alpn_h2_with_hypercorn_subprotocol_headers_and_compression(
    h2_tls_port: int, ca_file: str
) -> None:
    proc = run_wstool_inprocess(
        "connect", "--http2=only", "-v", "--cacert", ca_file, "-s", "chat",
        "-H", "X-Trace-Id: 42", "-o", "https://example.test",
        f"wss://127.0.0.1:{h2_tls_port}/", input=b"x" * 5000 + b"\nsmall\n")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == b"x" * 5000 + b"\nsmall\n"
    assert "ALPN: server chose h2" in proc.stderr
    assert "> :scheme: https" in proc.stderr
    assert "> sec-websocket-protocol: chat" in proc.stderr
    assert "> x-trace-id: 42" in proc.stderr  # -H lower-cased (RFC 9113 §8.2)
    assert "> origin: https://example.test" in proc.stderr
    assert "subprotocol chat" in proc.stderr
    assert "permessage-deflate" in proc.stderr.split("connected to", 1)[1]


def test_json_and_trace_over_h2(h2c_port: int) -> None:
    proc = run_wstool_inprocess("connect", "--http2", "--json", "--trace", "--trace-h2",
                                f"ws://127.0.0.1:{h2c_port}/", input=b"one\n")
    assert proc.returncode == 0, proc.stderr
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    received = [e for e in events if e.get("event") == "message"
                and e.get("direction") == "received"]
    assert [e.get("data", e.get("text")) for e in received] == ["one"], events
    opened = next(e for e in events if e.get("event") == "open")
    assert opened["status"] == 200 and opened["http_version"] == "HTTP/2", opened
    # --trace: WebSocket frames; --trace-h2: HTTP/2 frames, both directions.
    assert "h2 > HEADERS stream 1" in proc.stderr or any(
        "h2 > HEADERS stream 1" in json.dumps(e) for e in events)
    text = proc.stderr + proc.stdout.decode()
    assert "h2 < SETTINGS stream 0" in text and "h2 > DATA stream 1" in text


def test_trace_h2_needs_http2() -> None:
    proc = run_wstool_inprocess("connect", "--trace-h2", "ws://127.0.0.1:1/")
    assert proc.returncode == 2 and "--trace-h2" in proc.stderr and "--http2" in proc.stderr


def test_http2_value_other_than_only_is_a_usage_error() -> None:
    proc = run_wstool_inprocess("connect", "--http2=yes", "ws://127.0.0.1:1/")
    assert proc.returncode == 2
    assert proc.stderr.startswith("wstool: error: invalid --http2=yes")


def test_fallback_over_tls_when_alpn_chooses_http11(
    server_thread: ServerThread, ca: trustme.CA, ca_file: str
) -> None:
    _s, url = start_websockets_server(server_thread, lib_echo, ssl=_tls_context(ca))
    url = url.replace("ws://", "wss://")
    proc = run_wstool_inprocess("connect", "--http2", "--cacert", ca_file, url, input=b"hi\n")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == b"hi\n"
    assert "did not choose h2" in proc.stderr and "falling back" in proc.stderr
    strict = run_wstool_inprocess("connect", "--http2=only", "--cacert", ca_file, url,
                                  input=b"hi\n")
    assert strict.returncode == 4, strict.stderr
    assert "did not choose h2" in strict.stderr and "Traceback" not in strict.stderr


def test_fallback_on_cleartext_when_the_server_is_http11_only(lib_echo_url: str) -> None:
    proc = run_wstool_inprocess("connect", "--http2", lib_echo_url, input=b"hi\n")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == b"hi\n"
    assert "does not speak HTTP/2" in proc.stderr and "falling back" in proc.stderr


def test_h2c_to_an_http11_server_says_what_it_answered(server_thread: ServerThread) -> None:
    import asyncio

    async def answer_400(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(100)
        writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    async def start() -> asyncio.Server:
        return await asyncio.start_server(answer_400, "127.0.0.1", 0)

    server = server_thread.run(start())
    port = server.sockets[0].getsockname()[1]
    proc = run_wstool_inprocess("connect", "--http2=only", f"ws://127.0.0.1:{port}/",
                                input=b"hi\n")
    assert proc.returncode == 4, proc.stderr
    assert "does not speak HTTP/2 (h2c with prior knowledge on ws://): it answered " \
        "'HTTP/1.1 400 Bad Request'" in proc.stderr


def test_no_enable_connect_protocol_falls_back_or_fails(server_thread: ServerThread) -> None:
    raw = RawH2Server(server_thread, "no-setting")
    url = f"ws://127.0.0.1:{raw.port}/"
    strict = run_wstool_inprocess("connect", "--http2=only", url, input=b"hi\n")
    assert strict.returncode == 4, strict.stderr
    assert "does not advertise SETTINGS_ENABLE_CONNECT_PROTOCOL" in strict.stderr
    assert raw.requests == []  # no CONNECT was sent


@pytest.mark.parametrize(("mode", "reason"), [("404", "no WebSocket here"),
                                              ("400", "bad request")])
def test_non_200_is_exit_4_with_status_and_body(
    server_thread: ServerThread, mode: str, reason: str
) -> None:
    raw = RawH2Server(server_thread, mode)
    proc = run_wstool_inprocess("connect", "--http2", "-v", f"ws://127.0.0.1:{raw.port}/x",
                                input=b"hi\n")
    assert proc.returncode == 4, proc.stderr
    assert f"HTTP {mode}" in proc.stderr and reason in proc.stderr
    assert f"< HTTP/2 {mode}" in proc.stderr
    assert (":path", "/x") in raw.requests[0] and (":protocol", "websocket") in raw.requests[0]


def test_rst_stream_mid_message_is_1006(server_thread: ServerThread) -> None:
    raw = RawH2Server(server_thread, "rst-mid")
    proc = run_wstool_inprocess("connect", "--http2", "-w", "-1",
                                f"ws://127.0.0.1:{raw.port}/", input=b"hi\n")
    assert proc.returncode == 5, proc.stderr
    assert "1006" in proc.stderr and "reset the HTTP/2 stream (CANCEL)" in proc.stderr


def test_connect_stream_reset_before_an_answer_is_exit_4(server_thread: ServerThread) -> None:
    raw = RawH2Server(server_thread, "rst-connect")
    proc = run_wstool_inprocess("connect", "--http2", f"ws://127.0.0.1:{raw.port}/",
                                input=b"hi\n")
    assert proc.returncode == 4, proc.stderr
    assert proc.stderr == ("wstool: error: no answer to the extended CONNECT: the server "
                           "reset the HTTP/2 stream (REFUSED_STREAM)\n")


def test_end_stream_without_a_close_frame_is_1006(server_thread: ServerThread) -> None:
    raw = RawH2Server(server_thread, "end-mid")
    proc = run_wstool_inprocess("connect", "--http2", "-w", "-1",
                                f"ws://127.0.0.1:{raw.port}/", input=b"hi\n")
    assert proc.returncode == 5, proc.stderr
    assert "connection lost without a close frame (1006): the server ended the HTTP/2 " \
        "stream (END_STREAM)" in proc.stderr


def test_goaway_is_a_clean_error(server_thread: ServerThread) -> None:
    raw = RawH2Server(server_thread, "goaway")
    proc = run_wstool_inprocess("connect", "--http2", "-w", "-1",
                                f"ws://127.0.0.1:{raw.port}/", input=b"hi\n")
    assert proc.returncode == 5, proc.stderr
    assert "GOAWAY (PROTOCOL_ERROR" in proc.stderr and "going away for tests" in proc.stderr
    assert proc.stderr.count("wstool: error:") == 1 and "Traceback" not in proc.stderr


def test_without_h2_installed_says_how_to_install(h2c_port: int, tmp_path: Path) -> None:
    # A directory early on sys.path whose h2 package fails to import, as a missing one.
    (tmp_path / "h2").mkdir()
    (tmp_path / "h2" / "__init__.py").write_text("raise ImportError('no h2 here')\n")
    proc = run_wstool("connect", "--http2", f"ws://127.0.0.1:{h2c_port}/", input=b"hi\n",
                      env={"PYTHONPATH": str(tmp_path)})
    assert proc.returncode == 2, proc.stderr
    assert "pip install 'wstool[http2]'" in proc.stderr


# Pipe mode over HTTP/2: nothing lost, byte-exact, flow control.


@pytest.mark.slow
def test_100000_lines_round_trip_over_h2(h2c_port: int) -> None:
    lines = b"".join(b"line %d\n" % i for i in range(100_000))
    proc = run_wstool("connect", "--http2=only", f"ws://127.0.0.1:{h2c_port}/",
                      input=lines, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == lines


@pytest.mark.slow
def test_100_mb_binary_byte_exact_over_h2(h2c_port: int) -> None:
    data = os.urandom(1 << 20) * 100  # 100 MiB in 64 KiB messages (-b's chunks)
    proc = run_wstool("connect", "--http2=only", "-b", "--max-size", "0",
                      f"ws://127.0.0.1:{h2c_port}/", input=data, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stdout) == len(data)
    assert hashlib.sha256(proc.stdout).digest() == hashlib.sha256(data).digest()


@pytest.mark.slow
def test_16_mib_single_message_through_the_flow_control_windows(
    h2_tls_port: int, ca_file: str
) -> None:
    # One line of 16 MiB: a single message far beyond every initial window (64 KiB).
    line = b"y" * (16 << 20) + b"\n"
    proc = run_wstool("connect", "--http2=only", "--cacert", ca_file, "--max-size", "0",
                      f"wss://127.0.0.1:{h2_tls_port}/", input=line, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == line


def test_max_size_over_h2(h2c_port: int) -> None:
    proc = run_wstool_inprocess("connect", "--http2", "--max-size", "100",
                                f"ws://127.0.0.1:{h2c_port}/", input=b"z" * 200 + b"\n")
    assert proc.returncode == 6, proc.stderr
    assert "--max-size 100" in proc.stderr and "1009" in proc.stderr


def test_redirect_over_h2_reported_and_followed_with_L(server_thread: ServerThread) -> None:
    raw = RawH2Server(server_thread, "redirect")
    url = f"ws://127.0.0.1:{raw.port}/start"
    proc = run_wstool_inprocess("connect", "--http2=only", url, input=b"x\n")
    assert proc.returncode == 4, proc.stderr
    assert "HTTP 302 Found -> ws://127.0.0.1:" in proc.stderr and "use -L" in proc.stderr
    proc = run_wstool_inprocess("connect", "--http2=only", "-L", "-n", "1", "-x", "go", url,
                                input=None)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == b"hi\n"
    assert [dict(r)[":path"] for r in raw.requests] == ["/start", "/start", "/final"]


def test_echo_mode_over_h2(server_thread: ServerThread) -> None:
    raw = RawH2Server(server_thread, "accept")
    # The raw server sends one "hi" per DATA frame it gets; --echo -n 2 mirrors it.
    proc = run_wstool_inprocess("connect", "--http2", "--echo", "-n", "2", "-x", "start",
                                f"ws://127.0.0.1:{raw.port}/", input=None)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == b"hi\nhi\n"


def test_one_shot_execute_and_count_over_h2(h2c_port: int) -> None:
    proc = run_wstool_inprocess("connect", "--http2=only", "-v", "-n", "1", "-x", "ping",
                                f"ws://127.0.0.1:{h2c_port}/", input=None)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == b"ping\n" and "HTTP/2 stream 1:" in proc.stderr


@pytest.mark.slow
def test_repl_over_h2_in_a_terminal(h2c_port: int, tmp_path: Path) -> None:
    from tests.test_repl_pty import spawn_repl, wait_exit

    child = spawn_repl(f"ws://127.0.0.1:{h2c_port}/", tmp_path, "--http2=only")
    child.send("hello\r")
    child.expect("< hello")
    child.send("/ping\r")
    child.expect(r"< pong in [0-9.]+ ms")  # a ping and its pong over the stream
    child.send("/close\r")
    child.expect("closed by us: 1000")
    assert wait_exit(child) == 0


@pytest.mark.slow
def test_keepalive_pings_over_h2_while_stdin_is_open(h2c_port: int) -> None:
    # A pipe whose writer stays: the library's keepalive pings go out on the stream.
    import subprocess
    import sys
    import time

    from tests.conftest import scaled

    proc = subprocess.Popen(
        [sys.executable, "-m", "wstool", "connect", "--http2=only", "--trace",
         "--ping-interval", "0.2", f"ws://127.0.0.1:{h2c_port}/"],
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        env={**os.environ, "NO_COLOR": "1"})
    assert proc.stdin is not None and proc.stderr is not None
    seen = []
    deadline = time.monotonic() + scaled(10)
    while time.monotonic() < deadline:
        line = proc.stderr.readline().decode()
        seen.append(line)
        if line.startswith("< PONG") or not line:
            break
    proc.stdin.close()
    proc.stderr.read()
    assert proc.wait(scaled(10)) == 0
    assert any(line.startswith("> PING") for line in seen), seen
    assert seen[-1].startswith("< PONG"), seen


def test_expect_over_h2(h2c_port: int) -> None:
    url = f"ws://127.0.0.1:{h2c_port}/"
    ok = run_wstool_inprocess("connect", "--http2=only", "-x", '{"op":"hi"}',
                              "--expect", "json:.op == \"hi\"", url, input=None)
    assert ok.returncode == 0, ok.stderr
    missed = run_wstool_inprocess("connect", "--http2=only", "-x", "hello", "--expect", "bye",
                                  "--expect-timeout", "0.3", url, input=None)
    assert missed.returncode == 8, missed.stderr
