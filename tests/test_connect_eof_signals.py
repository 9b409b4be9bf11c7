"""Issue 10, "End of input" and "Signals": `wstool connect` as a real process, against
real peers on 127.0.0.1, sent real signals. Waits are on what the peers saw or on
stderr lines, never fixed sleeps."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection

from tests import servers
from tests.conftest import (
    ServerThread,
    run_wstool,
    run_wstool_inprocess,
    scaled,
    start_websockets_server,
)
from wstool.client.run import GRACE_MAX_S, GRACE_MIN_S, replies_took_s, reply_grace_s
from wstool.errors import ExitStatus


class Connect:
    """`python -m wstool connect ARGS` with stdin open; stderr lines collected."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "wstool", "connect", *args],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader.start()

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            self.lines.append(raw.decode(errors="replace").rstrip("\n"))

    def signal_and_wait(self, sig: int, timeout: float) -> tuple[int, float]:
        """Send SIG; the exit status and how long it took to exit."""
        start = time.monotonic()
        self.proc.send_signal(sig)
        status = self.proc.wait(scaled(timeout))
        return status, time.monotonic() - start

    def stderr_lines(self) -> list[str]:
        """Every stderr line, once the process has exited and stderr is read to EOF."""
        self._reader.join(scaled(10))
        return list(self.lines)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def connects() -> Iterator[list[Connect]]:
    started: list[Connect] = []
    yield started
    for c in started:
        c.close()


# --- End of input ---


def test_the_echo_behind_a_greeting_is_not_cut_off(server_thread: ServerThread) -> None:
    # The greeting counts as a reply, so "received >= sent" is reached one echo early;
    # the grace after it keeps the last echo (before the fix: `three` was lost).
    _s, url = start_websockets_server(server_thread, servers.greeting_echo)
    for _ in range(3):
        proc = run_wstool("connect", url, input=b"one\ntwo\nthree\n")
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout == b"welcome\none\ntwo\nthree\n", proc.stderr
        assert "warning" not in proc.stderr


def test_the_grace_is_short_and_bounded() -> None:
    assert reply_grace_s(0.0003, 1.0) == GRACE_MIN_S  # a loopback one-shot: the floor
    assert reply_grace_s(0.004, 1.0) == 0.008  # twice the time the replies took
    assert reply_grace_s(5.0, 10.0) == GRACE_MAX_S
    assert reply_grace_s(5.0, 0.2) == 0.05  # well under -w
    assert reply_grace_s(5.0, 0.0) == 0.0  # -w 0: no wait at all
    # 100 000 lines piped in at once: the last reply comes 2 s after the last send (the
    # server's backlog) but 20 µs after the one before: the grace is the floor, not 250 ms.
    assert reply_grace_s(replies_took_s(12.0, 10.0, 0.00002), 1.0) == GRACE_MIN_S
    assert replies_took_s(10.0004, 10.0, None) == pytest.approx(0.0004)  # a one-shot


def test_closing_on_w_with_replies_missing_says_so(server_thread: ServerThread) -> None:
    _s, url = start_websockets_server(server_thread, servers.slow_echo)
    proc = run_wstool("connect", "-w", "0.2", url, input=b"a\nb\nc\n")
    assert proc.returncode == 0, proc.stderr  # a warning: -w is the rule the user chose
    assert proc.stdout == b""
    warnings = [line for line in proc.stderr.splitlines() if "warning" in line]
    assert warnings == [
        "wstool: warning: 3 messages sent, 0 received: closing after -w 0.2s without a "
        "message (wait longer with -w N, for the server's close with -w -1, or for N "
        "replies with -n N)"], proc.stderr
    # All replies in: no warning.
    proc = run_wstool("connect", "-w", "3", url, input=b"a\n")
    assert proc.stdout == b"a\n" and "warning" not in proc.stderr, proc.stderr


def test_max_time_is_a_total_deadline(server_thread: ServerThread) -> None:
    closes: list[int | None] = []

    async def idle(ws: ServerConnection) -> None:
        await ws.send("ready")
        await ws.wait_closed()
        closes.append(ws.close_code)

    _s, url = start_websockets_server(server_thread, idle)
    # -w -1 would wait for the server forever; --max-time ends it.
    proc = run_wstool("connect", "-w", "-1", "--max-time", "0.5", url, input=None, timeout=20)
    assert proc.returncode == ExitStatus.TIMEOUT, proc.stderr
    assert proc.stdout == b"ready\n"
    assert proc.stderr.splitlines() == [
        "wstool: error: --max-time 0.5s ran out (the deadline of the whole run, connect "
        "included); closed with 1000, not waiting for the answer"]
    deadline = time.monotonic() + scaled(5)
    while not closes and time.monotonic() < deadline:
        time.sleep(0.01)
    assert closes == [1000]


def test_max_time_covers_the_opening_handshake(server_thread: ServerThread) -> None:
    peer = servers.RawPeer()
    _server, port = server_thread.run(servers.start_recording_silent_tcp(peer))
    proc = run_wstool("connect", "--max-time", "0.5", f"ws://127.0.0.1:{port}/", timeout=20)
    assert proc.returncode == ExitStatus.TIMEOUT, proc.stderr
    assert proc.stderr.splitlines() == [
        "wstool: error: --max-time 0.5s ran out (the deadline of the whole run, connect "
        "included)"]
    assert b"GET / HTTP/1.1" in peer.received


@pytest.mark.parametrize(
    ("value", "fragment"),
    [("0", "invalid --max-time"), ("-1", "invalid --max-time"),
     # refused by options.Seconds, as for every time option
     ("nan", "'nan' is not a finite number of seconds"),
     ("inf", "'inf' is not a finite number of seconds")],
)
def test_max_time_must_be_positive_and_finite(value: str, fragment: str) -> None:
    proc = run_wstool_inprocess("connect", "--max-time", value, "ws://127.0.0.1:1/")
    assert proc.returncode == ExitStatus.USAGE
    assert fragment in proc.stderr


# --- Signals ---


def _syn_sent_to(port: int) -> bool:
    """A TCP connection to 127.0.0.1:PORT in state SYN_SENT (/proc/net/tcp)."""
    want = f"0100007F:{port:04X}"
    with open("/proc/net/tcp") as table:
        return any(
            fields[2] == want and fields[3] == "02"
            for fields in (line.split() for line in table.readlines()[1:])
        )


@pytest.mark.parametrize("phase", ["tcp", "tls", "handshake"])
def test_ctrl_c_while_connecting_exits_130_at_once(
    server_thread: ServerThread, connects: list[Connect], phase: str
) -> None:
    peer = servers.RawPeer()
    if phase == "tcp":
        # A listener whose accept queue is full: our SYN goes unanswered.
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        filler = [socket.create_connection(("127.0.0.1", port))]  # the queue holds one
        url = f"ws://127.0.0.1:{port}/"
    else:
        _server, port = server_thread.run(servers.start_recording_silent_tcp(peer))
        url = f"{'wss' if phase == 'tls' else 'ws'}://127.0.0.1:{port}/"
    c = Connect("--open-timeout", "60", url)
    connects.append(c)
    if phase == "tcp":
        deadline = time.monotonic() + scaled(15)
        while not _syn_sent_to(port):
            assert time.monotonic() < deadline and c.proc.poll() is None
            time.sleep(0.01)
    else:  # its ClientHello, or its upgrade request, has arrived
        peer.wait_for(b"\x16\x03" if phase == "tls" else b"\r\n\r\n")
    status, took_s = c.signal_and_wait(signal.SIGINT, timeout=10)
    assert status == ExitStatus.INTERRUPTED
    assert took_s < scaled(2)  # not --open-timeout's 60 s
    assert c.stderr_lines() == ["wstool: interrupted"]
    if phase == "tcp":
        for sock in [*filler, listener]:
            sock.close()


def _connect_to_no_close_answer(
    server_thread: ServerThread, connects: list[Connect], *args: str
) -> tuple[Connect, servers.RawPeer]:
    """`wstool connect ARGS` to a peer that opens, says "ready", and answers nothing."""
    peer = servers.RawPeer()
    _server, port = server_thread.run(servers.start_no_close_answer(peer))
    c = Connect(*args, f"ws://127.0.0.1:{port}/")
    connects.append(c)
    return c, peer


def test_ctrl_c_in_the_close_wait_exits_at_once_and_claims_no_close(
    server_thread: ServerThread, connects: list[Connect]
) -> None:
    c, peer = _connect_to_no_close_answer(server_thread, connects,
                                          "-w", "0", "--close-timeout", "60")
    assert c.proc.stdin is not None
    c.proc.stdin.close()  # end of input: -w 0, so our close frame goes out at once
    peer.wait_for(b"\x88")  # the server has it, and never answers
    status, took_s = c.signal_and_wait(signal.SIGINT, timeout=10)
    assert status == ExitStatus.INTERRUPTED
    assert took_s < scaled(2)  # one Ctrl-C, not --close-timeout's 60 s
    # Not "closed by us: 1000": the server never answered.
    assert c.stderr_lines() == ["wstool: interrupted"]


def test_ctrl_c_while_open_sends_1000_and_exits_130(
    server_thread: ServerThread, connects: list[Connect]
) -> None:
    c, peer = _connect_to_no_close_answer(server_thread, connects, "--close-timeout", "60")
    assert c.proc.stdout is not None
    assert c.proc.stdout.readline() == b"ready\n"
    status, took_s = c.signal_and_wait(signal.SIGINT, timeout=10)
    assert status == ExitStatus.INTERRUPTED
    assert took_s < scaled(2)  # the server never answers: no wait for it
    peer.wait_for(b"\x88")  # but our close frame went out
    assert c.stderr_lines() == ["wstool: interrupted"]


def _recording_idle(closes: list[Any]) -> Any:
    async def handler(ws: ServerConnection) -> None:
        await ws.send("ready")
        await ws.wait_closed()
        closes.append(ws.close_code)

    return handler


def test_sigterm_closes_with_1001_and_exits_143(
    server_thread: ServerThread, connects: list[Connect]
) -> None:
    closes: list[int | None] = []
    _s, url = start_websockets_server(server_thread, _recording_idle(closes))
    c = Connect(url)
    connects.append(c)
    assert c.proc.stdout is not None
    assert c.proc.stdout.readline() == b"ready\n"
    status, _took = c.signal_and_wait(signal.SIGTERM, timeout=10)
    assert status == ExitStatus.TERMINATED
    assert closes == [1001]
    assert c.stderr_lines() == ["wstool: terminated (SIGTERM): closing with 1001",
                                "wstool: closed by us: 1001 (going away)"]


def test_sigterm_waits_at_most_close_timeout(
    server_thread: ServerThread, connects: list[Connect]
) -> None:
    c, _peer = _connect_to_no_close_answer(server_thread, connects, "--close-timeout", "0.3")
    assert c.proc.stdout is not None
    assert c.proc.stdout.readline() == b"ready\n"
    status, took_s = c.signal_and_wait(signal.SIGTERM, timeout=10)
    assert status == ExitStatus.TERMINATED
    assert took_s < scaled(3)
    lines = c.stderr_lines()
    assert lines[0] == "wstool: terminated (SIGTERM): closing with 1001", lines
    assert lines[-1].startswith(
        "wstool: warning: the server did not answer our close frame within --close-timeout"), lines


def test_sigterm_while_connecting_exits_143(
    server_thread: ServerThread, connects: list[Connect]
) -> None:
    peer = servers.RawPeer()
    _server, port = server_thread.run(servers.start_recording_silent_tcp(peer))
    c = Connect(f"ws://127.0.0.1:{port}/")
    connects.append(c)
    peer.wait_for(b"\r\n\r\n")
    status, took_s = c.signal_and_wait(signal.SIGTERM, timeout=10)
    assert status == ExitStatus.TERMINATED
    assert took_s < scaled(2)
    assert c.stderr_lines() == ["wstool: terminated (SIGTERM)"]
