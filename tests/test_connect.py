"""`wstool connect` in a pipe, as a real process, against real servers on loopback."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import threading
import time
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection

from tests import servers
from tests.conftest import (
    ServerThread,
    closed_port,
    run_wstool,
    run_wstool_inprocess,
    scaled,
    start_websockets_server,
)
from wstool.errors import ExitStatus


@pytest.mark.parametrize("compress", ["--compress", "--no-compress"])
def test_lines_round_trip_in_order(lib_echo_url: str, compress: str) -> None:
    # --no-compress takes the batched framing path of Session.send_many; every
    # length encoding (7-bit, 16-bit, 64-bit; RFC 6455 §5.2) is crossed.
    lines = [f"line {i} é ✓" for i in range(500)]
    lines += ["", "a" * 125, "b" * 126, "c" * 65535, "d" * 65536, "e" * 70000]
    proc = run_wstool_inprocess("connect", compress, lib_echo_url,
                                input="\n".join(lines).encode() + b"\n")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.decode().splitlines() == lines
    assert "closed by us: 1000" in proc.stderr


def test_last_line_without_newline_and_empty_lines_are_messages(lib_echo_url: str) -> None:
    proc = run_wstool_inprocess("connect", lib_echo_url, input=b"a\n\nb")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == b"a\n\nb\n"


@pytest.mark.slow
def test_100k_lines_none_lost(lib_echo_url: str) -> None:
    # The websockets library's server answers a close frame before echoing what
    # it has queued; closing at EOF (as websocat does) loses messages there.
    lines = b"".join(b"%08d%s\n" % (i, b"x" * 24) for i in range(100_000))
    proc = run_wstool("connect", lib_echo_url, input=lines, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == lines


def test_request_response_ends_without_waiting_for_idle(lib_echo_url: str) -> None:
    # received >= sent ends the run at once, so a 60 s --wait is never reached.
    proc = run_wstool_inprocess("connect", "-w", "60", lib_echo_url, input=b"ping\n", timeout=20)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == b"ping\n"


def test_wait_keeps_late_replies(server_thread: ServerThread) -> None:
    _s, url = start_websockets_server(server_thread, servers.slow_replies)
    # By default "received >= sent" ends the run after the first reply;
    # --wait -1 waits for the server (or --count) instead.
    proc = run_wstool_inprocess("connect", url, input=b"m\n")
    assert proc.stdout == b"m\n"
    proc = run_wstool_inprocess("connect", "-w", "-1", "-n", "2", url, input=b"m\n")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == b"m\nlate m\n"


def test_count_exits_after_n(lib_echo_url: str) -> None:
    proc = run_wstool_inprocess("connect", "-n", "2", lib_echo_url, input=b"1\n2\n3\n4\n")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == b"1\n2\n"


def test_execute_before_stdin(lib_echo_url: str) -> None:
    proc = run_wstool_inprocess("connect", "-x", "first", "-x", "second", lib_echo_url,
                                input=b"third\n")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == b"first\nsecond\nthird\n"


def test_execute_with_no_stdin(lib_echo_url: str) -> None:
    proc = run_wstool_inprocess("connect", "-x", "only", lib_echo_url, input=None)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == b"only\n"


def test_null_separated(lib_echo_url: str) -> None:
    proc = run_wstool_inprocess("connect", "-0", lib_echo_url, input=b"multi\nline\0second\0")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == b"multi\nline\0second\0"


@pytest.mark.parametrize("compress", ["--compress", "--no-compress"])
def test_binary_round_trip_is_byte_identical(lib_echo_url: str, compress: str) -> None:
    data = os.urandom(3 * 65536 + 123)
    proc = run_wstool_inprocess("connect", "-b", compress, lib_echo_url, input=data)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == data


async def _send_binary(ws: ServerConnection) -> None:
    await ws.send(b"\x00\x01\xfe\xff")
    await ws.send("text too")
    await ws.wait_closed()


@pytest.mark.parametrize(("flag", "shown"), [(None, "0001feff"), ("--base64", "AAH+/w==")])
def test_binary_in_text_mode_is_never_raw(
    server_thread: ServerThread, flag: str | None, shown: str
) -> None:
    _s, url = start_websockets_server(server_thread, _send_binary)
    args = ["connect", "-n", "2", url] + ([flag] if flag else [])
    proc = run_wstool_inprocess(*args, input=None)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"{shown}\ntext too\n".encode()


def test_invalid_utf8_input_line_is_an_error_not_a_loss(lib_echo_url: str) -> None:
    proc = run_wstool_inprocess("connect", lib_echo_url, input=b"ok\n\xff\xfe\nnever\n")
    assert proc.returncode == 1
    assert proc.stdout == b"ok\n"  # the line before the bad one still went
    assert "input line 2 is not valid UTF-8" in proc.stderr
    assert "-b/--binary" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_headers_origin_auth_user_agent_subprotocol(server_thread: ServerThread) -> None:
    _s, url = start_websockets_server(
        server_thread, servers.reflect_headers, subprotocols=["v2", "chat"]
    )
    url = url.replace("ws://", "ws://alice:pw@") + "path?q=1"
    proc = run_wstool_inprocess(
        "connect", "-n", "1", url,
        "-H", "X-One: 1", "-H", "X-Two:two words",
        "-o", "https://origin.test", "--user-agent", "probe/1",
        "-s", "chat", "-s", "v9",
        input=None,
    )
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(proc.stdout)
    headers = seen["headers"]
    assert seen["path"] == "/path?q=1"
    assert headers["x-one"] == "1"
    assert headers["x-two"] == "two words"
    assert headers["origin"] == "https://origin.test"
    assert headers["user-agent"] == "probe/1"
    assert headers["authorization"] == "Basic " + base64.b64encode(b"alice:pw").decode()
    assert headers["sec-websocket-protocol"] == "chat, v9"
    assert seen["subprotocol"] == "chat"


def test_auth_option_wins_over_url(server_thread: ServerThread) -> None:
    _s, url = start_websockets_server(server_thread, servers.reflect_headers)
    url = url.replace("ws://", "ws://alice:pw@")
    proc = run_wstool_inprocess("connect", "-n", "1", "--auth", "bob:s:cret", url, input=None)
    assert proc.returncode == 0, proc.stderr
    auth = json.loads(proc.stdout)["headers"]["authorization"]
    assert auth == "Basic " + base64.b64encode(b"bob:s:cret").decode()


def test_verbose_reports_handshake_and_masks_secrets(server_thread: ServerThread) -> None:
    _s, url = start_websockets_server(server_thread, servers.reflect_headers)
    args = ("connect", "-v", "-n", "1", "--auth", "u:topsecret", "-H", "Cookie: c=1", url)
    proc = run_wstool_inprocess(*args, input=None)
    assert proc.returncode == 0, proc.stderr
    err = proc.stderr
    assert "> GET / HTTP/1.1" in err
    assert "> Authorization: Basic ***" in err
    assert "> Cookie: ***" in err
    assert "< HTTP/1.1 101 Switching Protocols" in err
    assert "< Sec-WebSocket-Extensions: permessage-deflate" in err
    assert "extensions permessage-deflate" in err
    assert "topsecret" not in err and base64.b64encode(b"u:topsecret").decode() not in err
    shown = run_wstool_inprocess(*args, "--show-secrets", input=None)
    assert base64.b64encode(b"u:topsecret").decode() in shown.stderr
    assert "Cookie: c=1" in shown.stderr


def test_no_compress_offers_no_extension(server_thread: ServerThread) -> None:
    _s, url = start_websockets_server(server_thread, servers.reflect_headers)
    proc = run_wstool_inprocess("connect", "-n", "1", "--no-compress", url, input=None)
    assert "sec-websocket-extensions" not in json.loads(proc.stdout)["headers"]
    proc = run_wstool_inprocess("connect", "-n", "1", url, input=None)
    assert "permessage-deflate" in json.loads(proc.stdout)["headers"]["sec-websocket-extensions"]


def test_server_close_code_and_reason_on_stderr(server_thread: ServerThread) -> None:
    _s, url = start_websockets_server(server_thread, servers.close_4001)
    proc = run_wstool_inprocess("connect", url, input=None)
    assert proc.returncode == 5
    # Said once (issue 13): the error line, no "closed by the server: 4001 ..." before it.
    assert proc.stderr == ("wstool: error: server closed the connection with 4001 "
                           "(private use): custom reason\n")


def test_a_server_close_that_is_retried_keeps_its_close_line(
    server_thread: ServerThread,
) -> None:
    """Issue 13: the close line waits only for what comes next: a retried close (1013)
    shows, then the reconnect; the close that ends the run is the error line alone."""
    connections: list[int] = []

    async def later_then_4001(ws: ServerConnection) -> None:
        connections.append(1)
        if len(connections) == 1:
            await ws.close(1013, "later")
        else:
            await ws.close(4001, "custom reason")

    _s, url = start_websockets_server(server_thread, later_then_4001)
    proc = run_wstool_inprocess("connect", "--reconnect", url, input=None)
    assert proc.returncode == 5
    lines = proc.stderr.splitlines()
    assert lines[0] == "wstool: closed by the server: 1013 (try again later) 'later'"
    assert lines[1].startswith("wstool: reconnecting in ")
    assert lines[2:] == ["wstool: error: server closed the connection with 4001 "
                         "(private use): custom reason"]


def test_the_error_line_escapes_the_servers_close_reason(server_thread: ServerThread) -> None:
    """Issue 13: a close that ends the run is said by the error line alone, so the
    server's reason is escaped there as the close line escapes it."""

    async def close_with_escapes(ws: ServerConnection) -> None:
        await ws.close(4001, "\x1b]0;pwned\x07 \u202egnp")

    _s, url = start_websockets_server(server_thread, close_with_escapes)
    proc = run_wstool_inprocess("connect", url, input=None)
    assert proc.returncode == 5
    assert proc.stderr == ("wstool: error: server closed the connection with 4001 "
                           "(private use): \\e]0;pwned\\x07 \\u202egnp\n")


def test_echo_mode_mirrors_pushed_messages(server_thread: ServerThread) -> None:
    received: list[Any] = []
    handler_done = threading.Event()

    async def handler(ws: ServerConnection) -> None:
        ws.received = received  # type: ignore[attr-defined]
        try:
            await servers.push_then_idle(ws)
        finally:
            handler_done.set()

    _s, url = start_websockets_server(server_thread, handler)
    proc = run_wstool_inprocess("connect", "--echo", "-n", "3", url, input=None)
    # The server answers our close before its handler has read what came first.
    assert handler_done.wait(scaled(10))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == b"push 0\npush 1\npush 2\n"
    assert received == ["push 0", "push 1", "push 2"]


def test_json_events(lib_echo_url: str) -> None:
    proc = run_wstool_inprocess("connect", "--json", lib_echo_url, input=b"hi\n")
    assert proc.returncode == 0, proc.stderr
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    kinds = [e["event"] for e in events]
    assert kinds == ["open", "message", "message", "close"]
    opened, sent, received, closed = events
    assert opened["extensions"] == ["permessage-deflate"] and opened["subprotocol"] is None
    assert sent == {**sent, "direction": "sent", "type": "text", "size": 2, "text": "hi"}
    assert received["direction"] == "received" and received["text"] == "hi"
    assert received["ts"] >= sent["ts"]
    assert closed["code"] == 1000 and closed["initiated_by"] == "client"


def test_json_times_are_wall_clock_with_the_monotonic_clock_beside(lib_echo_url: str) -> None:
    """Issue 10: `ts` was monotonic seconds, which match no other log."""
    import time

    before = time.time()
    proc = run_wstool("connect", "--json", lib_echo_url, input=b"hi\n")
    after = time.time()
    assert proc.returncode == 0, proc.stderr
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    for event in events:
        assert before - 0.01 <= event["ts"] <= after + 0.01, event
        assert isinstance(event["mono"], float)
    # The two clocks tell the same intervals.
    first, last = events[0], events[-1]
    assert abs((last["ts"] - first["ts"]) - (last["mono"] - first["mono"])) < 0.005


def test_json_binary_payload_is_base64(lib_echo_url: str) -> None:
    proc = run_wstool_inprocess("connect", "--json", "-b", lib_echo_url, input=b"\x00\xff")
    msgs = [json.loads(x) for x in proc.stdout.splitlines() if b'"message"' in x]
    assert [m["base64"] for m in msgs] == ["AP8=", "AP8="]
    assert all(m["type"] == "binary" and m["size"] == 2 for m in msgs)


def test_unix_socket(server_thread: ServerThread, tmp_path: Any) -> None:
    from websockets.asyncio.server import unix_serve

    path = str(tmp_path / "ws.sock")

    async def start() -> Any:
        from tests.conftest import lib_echo

        return await unix_serve(lib_echo, path)

    server_thread.run(start())
    proc = run_wstool_inprocess("connect", f"ws+unix://{path}", input=b"over unix\n")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == b"over unix\n"


def test_closed_stdout_exits_quietly(lib_echo_url: str) -> None:
    # `wstool connect URL | head -1`
    proc = subprocess.Popen(
        [sys.executable, "-m", "wstool", "connect", lib_echo_url],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(b"one\n")
    proc.stdin.flush()
    assert proc.stdout.readline() == b"one\n"
    proc.stdout.close()
    proc.stdin.write(b"two\nthree\n" * 1000)
    proc.stdin.close()
    assert proc.wait(scaled(20)) == 0
    assert proc.stderr is not None
    assert b"Traceback" not in proc.stderr.read()


def test_ctrl_c_closes_with_1000_and_exits_130(server_thread: ServerThread) -> None:
    closes: list[int | None] = []

    async def handler(ws: ServerConnection) -> None:
        await ws.send("ready")
        await ws.wait_closed()
        closes.append(ws.close_code)

    _s, url = start_websockets_server(server_thread, handler)
    proc = subprocess.Popen(
        [sys.executable, "-m", "wstool", "connect", url],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline() == b"ready\n"
    proc.send_signal(signal.SIGINT)
    assert proc.wait(scaled(20)) == 130
    # The client may exit before the server's handler has seen the close: wait for it.
    deadline = time.monotonic() + scaled(10)
    while not closes and time.monotonic() < deadline:
        time.sleep(0.01)
    assert closes == [1000]


def test_reconnect_after_abnormal_close_resends_execute(server_thread: ServerThread) -> None:
    connections: list[int] = []

    async def flaky(ws: ServerConnection) -> None:
        connections.append(1)
        message = await ws.recv()
        if len(connections) == 1:
            ws.transport.abort()  # no close frame: an abnormal close
            return
        await ws.send(message)
        await ws.wait_closed()

    _s, url = start_websockets_server(server_thread, flaky)
    proc = run_wstool_inprocess("connect", "--reconnect", "-x", "hello", url, input=None)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == b"hello\n"
    assert len(connections) == 2
    assert "reconnecting in" in proc.stderr and "(attempt 1)" in proc.stderr
    assert "without a close frame (1006)" in proc.stderr


def test_reconnect_limit_gives_up_on_a_server_that_stays_down() -> None:
    port = closed_port()
    # --reconnect-limit implies --reconnect.
    proc = run_wstool_inprocess("connect", "--reconnect-limit", "2", f"127.0.0.1:{port}", input=b"")
    assert proc.returncode == ExitStatus.CONNECT_FAILED, proc.stderr
    lines = proc.stderr.splitlines()
    assert [line for line in lines if "reconnecting in" in line][1].endswith(
        f"(attempt 2): connection refused by ws://127.0.0.1:{port}/")
    assert "(attempt 3)" not in proc.stderr
    assert lines[-2:] == [
        "wstool: giving up after 2 reconnect attempts in a row (--reconnect-limit)",
        f"wstool: error: connection refused by ws://127.0.0.1:{port}/",
    ]


def test_reconnect_limit_counts_failures_in_a_row(server_thread: ServerThread) -> None:
    # Every connection opens before it drops, so each drop starts the count over:
    # a limit of 1 still rides out three drops in a row.
    connections: list[int] = []

    async def drops_three_times(ws: ServerConnection) -> None:
        connections.append(1)
        message = await ws.recv()
        if len(connections) <= 3:
            ws.transport.abort()
            return
        await ws.send(message)
        await ws.wait_closed()

    _s, url = start_websockets_server(server_thread, drops_three_times)
    proc = run_wstool_inprocess("connect", "--reconnect-limit", "1", "-x", "hello", url, input=None)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == b"hello\n"
    assert len(connections) == 4
    assert "giving up" not in proc.stderr


def test_no_reconnect_after_an_application_close(server_thread: ServerThread) -> None:
    # 4001 is the server's deliberate answer (e.g. bad credentials): retrying
    # would loop forever. Only drops and "come back later" codes are retried.
    _s, url = start_websockets_server(server_thread, servers.close_4001)
    proc = run_wstool_inprocess("connect", "--reconnect", url, input=None, timeout=20)
    assert proc.returncode == 5, proc.stderr
    assert "reconnecting" not in proc.stderr


def _first_frame_header(st: ServerThread, payload: bytes, *args: str) -> int:
    """Send PAYLOAD (with -b unless ARGS say otherwise) to a raw server that
    negotiates permessage-deflate; return the first byte of the first frame it
    receives (FIN, RSV1-3, opcode)."""
    import asyncio

    from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory
    from websockets.server import ServerProtocol

    first: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        protocol = ServerProtocol(extensions=[ServerPerMessageDeflateFactory()])
        protocol.receive_data(await reader.readuntil(b"\r\n\r\n"))
        request = protocol.events_received()[0]
        protocol.send_response(protocol.accept(request))  # type: ignore[arg-type]
        writer.write(b"".join(protocol.data_to_send()))
        first.append((await reader.readexactly(1))[0])
        writer.close()

    async def start() -> Any:
        return await asyncio.start_server(handle, "127.0.0.1", 0)

    server = st.run(start())
    run_wstool_inprocess("connect", *(args or ("-b",)), f"ws://127.0.0.1:{servers.port_of(server)}/",
                         input=payload)
    return first[0]


def test_incompressible_binary_is_sent_uncompressed(server_thread: ServerThread) -> None:
    # RFC 7692 §6.1: RSV1 marks a compressed message; random bytes are not worth it.
    assert _first_frame_header(server_thread, os.urandom(4096)) == 0x82  # FIN, BINARY
    assert _first_frame_header(server_thread, bytes(4096)) == 0xC2  # FIN, RSV1, BINARY


@pytest.mark.slow
def test_large_binary_stream_has_bounded_memory(lib_echo_url: str, tmp_path: Any) -> None:
    # Backpressure, not buffering: 128 MiB through an echo server comes back
    # byte-identical while wstool stays far below the data size. (The 1 GiB
    # run is in bench/bench_binary_memory.py.)
    import contextlib
    import hashlib
    import time
    from pathlib import Path

    source, sink = tmp_path / "in.bin", tmp_path / "out.bin"
    digest = hashlib.sha256()
    with source.open("wb") as f:
        for _ in range(128):
            block = os.urandom(1 << 20)
            digest.update(block)
            f.write(block)
    with source.open("rb") as stdin, sink.open("wb") as stdout:
        proc = subprocess.Popen(
            [sys.executable, "-m", "wstool", "connect", "-b", "--no-compress", lib_echo_url],
            stdin=stdin, stdout=stdout, stderr=subprocess.DEVNULL,
        )
        # The child's own high-water mark, from /proc while it runs: getrusage
        # and wait4 report at least the RSS pytest had when it forked.
        peak_kib = 0
        while proc.poll() is None:
            # (IndexError: an exiting process's status has no VmHWM line.)
            with contextlib.suppress(OSError, ValueError, IndexError):
                status = Path(f"/proc/{proc.pid}/status").read_text()
                peak_kib = max(peak_kib, int(status.split("VmHWM:")[1].split()[0]))
            time.sleep(0.01)
    assert proc.returncode == 0
    assert sink.stat().st_size == 128 << 20
    with sink.open("rb") as f:
        assert hashlib.file_digest(f, "sha256").digest() == digest.digest()
    assert 0 < peak_kib < 100 * 1024, f"wstool peaked at {peak_kib} KiB"


def test_small_messages_are_not_compressed(server_thread: ServerThread) -> None:
    # Like Node's ws (threshold 1024): deflating a short message costs more
    # than it saves; RFC 7692 §6.1 lets the sender decide per message.
    assert _first_frame_header(server_thread, b"x" * 1023 + b"\n", "-w", "0") == 0x81
    assert _first_frame_header(server_thread, b"x" * 1024 + b"\n", "-w", "0") == 0xC1


def test_quiet_prints_nothing_on_success_but_still_the_errors(
    lib_echo_url: str, server_thread: ServerThread
) -> None:
    """Issue 10: -q/--quiet, nothing on stderr on success (the close line included)."""
    ok = run_wstool_inprocess("connect", "-q", lib_echo_url, input=b"hi\n")
    assert (ok.returncode, ok.stdout, ok.stderr) == (0, b"hi\n", "")
    _s, url = start_websockets_server(server_thread, servers.close_4001)
    failed = run_wstool_inprocess("connect", "--quiet", url, input=b"x\n")
    assert failed.returncode == ExitStatus.CLOSED_ABNORMALLY
    assert failed.stderr.startswith("wstool: error: server closed the connection with 4001")
    assert len(failed.stderr.splitlines()) == 1
    both = run_wstool_inprocess("connect", "-q", "-v", lib_echo_url)
    assert both.returncode == ExitStatus.USAGE
    assert "give -q/--quiet or -v/--verbose, not both" in both.stderr
