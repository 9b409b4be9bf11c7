"""`listen --http2 --exec CMD` and `listen --http2 --to-tcp HOST:PORT`: the bridges
with clients that come over HTTP/2 (RFC 8441), each WebSocket one stream.

Real processes on 127.0.0.1 port 0. The clients are tests/h2_client.py (python-hyper's
h2 and websockets' frames, nothing of wstool: several streams on one connection) and
`wstool connect --http2=only`. The TCP service is tests/test_bridge_tcp.py's echo.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import pid_gone, run_wstool, scaled
from tests.h2_client import H2Client
from tests.servers import ServeEcho
from tests.test_bridge_tcp import TcpService, echo_handler

pytest.importorskip("h2", reason="h2 (pip install 'wstool[http2]') is not installed")


@pytest.fixture
def listen() -> Iterator[Any]:
    started: list[ServeEcho] = []

    def start(*args: str) -> ServeEcho:
        s = ServeEcho("--http2", *args, command="listen")
        started.append(s)
        return s

    yield start
    for s in started:
        s.close()


@pytest.fixture
def tcp_echo() -> Iterator[TcpService]:
    service = TcpService(echo_handler)
    yield service
    service.close()


def wait_gone(pid: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + scaled(timeout)
    while not pid_gone(pid):
        assert time.monotonic() < deadline, f"process {pid} still running"
        time.sleep(0.02)


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


# --exec


def test_exec_cat_lines_and_a_process_per_stream(listen: Any) -> None:
    s = listen("-v", "--sh", "--exec", "echo $$; exec cat")
    client = H2Client(s.port)
    try:
        first = client.open_websocket("/one")
        second = client.open_websocket("/two")
        assert (first.status, second.status) == (200, 200)
        pids = {int(first.recv_message().data), int(second.recv_message().data)}
        assert len(pids) == 2  # one process each, on one HTTP/2 connection
        first.send_text("hello")
        second.send_text("wörld")
        first.send_text("again")
        assert first.recv_message().data == b"hello"
        assert second.recv_message().data == "wörld".encode()
        assert first.recv_message().data == b"again"
        first.close()
        assert first.recv_close().code == 1000  # cat ended at its stdin's EOF
        second.send_text("still here")
        assert second.recv_message().data == b"still here"
    finally:
        client.close()
    s.wait_for("h2 stream 3 opened: CONNECT /two")
    s.wait_for("exited with status 0")


def test_connect_http2_through_exec_cat(listen: Any) -> None:
    s = listen("-v", "--exec", "cat")
    result = run_wstool("connect", "--http2=only", s.url, input=b"one\ntwo\nthree\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"one\ntwo\nthree\n"
    s.wait_for("h2 stream 1 opened: CONNECT /")
    s.wait_for("exited with status 0")


def test_a_process_that_does_not_read_holds_back_only_its_stream(listen: Any) -> None:
    """Bounded memory: the process's stdin fills, the stream stops being read and
    its DATA is no longer acknowledged, so the client's window for it closes; the
    other streams of the connection are served, and a reset of the held stream
    stops its process only."""
    s = listen("-v", "-b", "--no-compress", "--kill-after", "0.2", "--sh", "--exec",
               'echo $$; if [ "$QUERY_STRING" = stuck ]; then exec sleep 600; fi; exec cat')
    client = H2Client(s.port)
    try:
        stuck = client.open_websocket("/?stuck")
        stuck_pid = int(stuck.recv_message().data)
        chunk = b"z" * 65536
        sent = 0
        client.default_wait_s = 2
        with pytest.raises(TimeoutError):
            while sent < (64 << 20):
                stuck.send_binary(chunk)  # waits for window; times out when held
                sent += len(chunk)
        print(f"held after {sent} bytes")
        assert sent < (8 << 20), sent  # a pipe, a window and buffers: not all of it
        client.default_wait_s = 10
        other = client.open_websocket("/")
        other_pid = int(other.recv_message().data)
        other.send_binary(b"served beside it")
        assert other.recv_message().data == b"served beside it"
        assert rss_kb(s.proc.pid) < 100 * 1024
        stuck.reset()  # RST_STREAM: that process goes, the other stays
        wait_gone(stuck_pid)
        other.send_binary(b"and after")
        assert other.recv_message().data == b"and after"
        assert not pid_gone(other_pid)
    finally:
        client.close()
    s.wait_for("stream reset by the client (RST_STREAM CANCEL)")


def test_end_stream_behind_unread_data_stops_the_process(listen: Any) -> None:
    """The client ends its side while its process reads nothing: END_STREAM waits
    behind the DATA not read (as a FIN behind unread bytes), and the hang-up watch
    sees it, as it sees a TCP client's FIN."""
    s = listen("-b", "--no-compress", "--kill-after", "0.2", "--sh", "--exec",
               "echo $$; exec sleep 600")
    client = H2Client(s.port)
    try:
        ws = client.open_websocket("/")
        pid = int(ws.recv_message().data)
        client.default_wait_s = 2
        with pytest.raises(TimeoutError):
            for _ in range(1024):
                ws.send_binary(b"z" * 65536)  # until the window is held
        ws.end_stream()  # an empty DATA frame: needs no window
        wait_gone(pid)
    finally:
        client.close()


def test_a_client_reset_mid_output_stops_its_process_only(listen: Any) -> None:
    s = listen("--kill-after", "0.2", "--sh", "--exec", "echo $$; exec yes")
    client = H2Client(s.port)
    try:
        first = client.open_websocket("/")
        second = client.open_websocket("/")
        first_pid = int(first.recv_message().data)
        second_pid = int(second.recv_message().data)
        for _ in range(100):
            assert first.recv_message().data == b"y"
            assert second.recv_message().data == b"y"
        first.reset()
        wait_gone(first_pid)
        for _ in range(100):
            assert second.recv_message().data == b"y"
        assert not pid_gone(second_pid)
    finally:
        client.close()


def test_connect_http2_killed_stops_its_process(listen: Any) -> None:
    s = listen("-v", "--kill-after", "0.2", "--sh", "--exec", "echo $$; exec sleep 600")
    proc = subprocess.Popen(
        [sys.executable, "-m", "wstool", "connect", "--http2=only", s.url],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env={**os.environ, "NO_COLOR": "1"})
    try:
        assert proc.stdout is not None
        pid = int(proc.stdout.readline())
        os.kill(proc.pid, signal.SIGKILL)  # its TCP connection goes without a close
        proc.wait(scaled(10))
        wait_gone(pid)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    s.wait_for("h2 stream 1 closed")


# --to-tcp


def test_to_tcp_echo_over_h2(listen: Any, tcp_echo: TcpService) -> None:
    s = listen("-v", "--to-tcp", f"127.0.0.1:{tcp_echo.port}")
    client = H2Client(s.port)
    blob = os.urandom(3 << 20)  # beyond the stream windows both ways
    try:
        ws = client.open_websocket("/")
        beside = client.open_websocket("/")
        ws.send_binary(blob)
        beside.send_binary(b"beside it")
        assert beside.recv_message().data == b"beside it"
        got = b""
        while len(got) < len(blob):
            got += ws.recv_message(timeout=30).data
        assert got == blob
        ws.close()
        assert ws.recv_close().code == 1000
        tcp_echo.wait_eofs(1)  # the client's close reached the service as EOF
        assert tcp_echo.received == [blob]
    finally:
        client.close()


def test_connect_http2_through_to_tcp_text_lines(listen: Any, tcp_echo: TcpService) -> None:
    s = listen("-v", "--text", "--to-tcp", f"127.0.0.1:{tcp_echo.port}")
    result = run_wstool("connect", "--http2=only", s.url, input=b"one\ntwo\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"one\ntwo\n"
    tcp_echo.wait_eofs(1)
    assert tcp_echo.received == [b"one\ntwo\n"]
    s.wait_for("h2 stream 1 opened: CONNECT /")
