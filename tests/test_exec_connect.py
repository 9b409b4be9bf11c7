"""`wstool connect --exec CMD URL`: one connection bridged to one process (issue 16),
against wstool serve-echo, the websockets library's server and listen --exec."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import (
    ServerThread,
    pid_gone,
    run_wstool,
    run_wstool_inprocess,
    scaled,
    start_websockets_server,
)
from tests.servers import ServeEcho
from wstool.errors import ExitStatus


@pytest.fixture
def echo_url() -> Iterator[str]:
    s = ServeEcho()
    yield s.url
    s.close()


def test_a_bot_talks_to_an_echo_server(echo_url: str) -> None:
    # The process's stdout lines are messages; the replies are its stdin lines.
    proc = run_wstool_inprocess(
        "connect", "--sh", "--exec",
        'echo one; echo two; read a; read b; echo "got $a $b" >&2', echo_url)
    assert proc.returncode == 0, proc.stderr
    assert "got one two" in proc.stderr.splitlines()
    assert proc.stdout == b""


def test_end_of_input_rules_wait_for_the_replies(server_thread: ServerThread) -> None:
    async def slow_echo(ws: Any) -> None:
        async for message in ws:
            await asyncio.sleep(0.2)
            await ws.send(f"re: {message}")

    _server, url = start_websockets_server(server_thread, slow_echo)
    # The process exits at once (the end of input); the run keeps receiving, as pipe
    # mode does, until every message had its reply, 0.2 s apart each, then closes.
    proc = run_wstool_inprocess("connect", "--json", "--exec", "seq 3", url)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.decode().count('"direction": "received"') == 3, proc.stdout


def test_non_zero_exit_of_the_process_is_exit_1(echo_url: str) -> None:
    proc = run_wstool_inprocess("connect", "--sh", "--exec", "echo hi; exit 4", echo_url)
    assert proc.returncode == ExitStatus.ERROR
    assert proc.stderr.splitlines()[-1].startswith(
        "wstool: error: /bin/sh -c 'echo hi; exit 4' (pid ")
    assert proc.stderr.splitlines()[-1].endswith("exited with status 4")


def test_binary_through_a_process(echo_url: str, tmp_path: Any) -> None:
    data = bytes(range(256)) * 1000
    src, out = tmp_path / "in.bin", tmp_path / "out.bin"
    src.write_bytes(data)
    # The process sends the file while it writes what comes back until it has it all
    # (sending it all first could not work with any bounded buffers: the echoes would
    # fill its stdin while it still writes its stdout).
    proc = run_wstool_inprocess(
        "connect", "-b", "--sh", "--exec",
        f"cat {src} & head -c {len(data)} > {out}; wait", echo_url)
    assert proc.returncode == 0, proc.stderr
    assert out.read_bytes() == data


def test_connect_exec_to_listen_exec() -> None:
    # Two bridges: a counter on one side, a line filter on the other.
    server = ServeEcho("-v", "--sh", "--exec", "sed -u 's/^/seen /'", command="listen")
    try:
        proc = run_wstool(
            "connect", "-n", "3", "--sh", "--exec",
            "seq 3; cat > /dev/null", server.url)
        assert proc.returncode == 0, proc.stderr
        server.wait_for("3 in, 3 out")
    finally:
        server.close()


@pytest.mark.slow
def test_a_process_that_does_not_read_holds_the_socket_back(
        server_thread: ServerThread) -> None:
    # 100 MB pushed to a process that reads nothing for a second: wstool stops
    # reading the socket (the server's sends wait) rather than buffering it all.
    total = 100 * 1024 * 1024

    async def push(ws: Any) -> None:
        chunk = b"\0" * (1024 * 1024)
        for _ in range(total // len(chunk)):
            await ws.send(chunk)
        await ws.close()

    _server, url = start_websockets_server(server_thread, push, compression=None)
    measure = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:]); "
               "print('maxrss', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, "
               "file=sys.stderr)")
    proc = subprocess.run(
        [sys.executable, "-c", measure, sys.executable, "-m", "wstool", "connect", "-b",
         "--max-size", "0", "-w", "-1", "--sh", "--exec", "sleep 1; wc -c >&2", url],
        capture_output=True, timeout=scaled(60), stdin=subprocess.DEVNULL)
    stderr = proc.stderr.decode()
    assert str(total) in stderr.split(), stderr
    maxrss_kb = int(stderr.split("maxrss")[1].split()[0])
    assert maxrss_kb < 80 * 1024, stderr


@pytest.mark.parametrize(("args", "message"), [
    (("--exec", "no-such-command-here"), "--exec: no-such-command-here: command not found"),
    (("--exec", "cat", "--echo"), "--exec and --echo both answer the messages"),
    (("--stderr-to-client",), "--stderr-to-client goes with --exec CMD"),
    (("--kill-after", "3"), "--kill-after goes with --exec CMD"),
    (("--kill-after", "0"), "--kill-after goes with --exec CMD"),
])
def test_bad_exec_input(args: tuple[str, ...], message: str) -> None:
    proc = run_wstool_inprocess("connect", *args, "ws://127.0.0.1:1/")
    assert proc.returncode == ExitStatus.USAGE
    assert proc.stderr.startswith(f"wstool: error: {message}"), proc.stderr


def test_template_and_expect_apply_to_the_process_lines(echo_url: str) -> None:
    # --template expands the process's lines as it does stdin's; --expect sees the replies.
    proc = run_wstool_inprocess(
        "connect", "--template", "--expect", "^n=2$", "--expect-timeout", "0.5", "--exec",
        "echo n={{seq}}", echo_url)
    assert proc.returncode == ExitStatus.EXPECTATION_NOT_MET, proc.stderr
    proc = run_wstool_inprocess(
        "connect", "--template", "--expect", "^n=1$", "--sh", "--exec",
        "echo n={{seq}}; read reply", echo_url)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("argv", [
    ["listen", "--exec", "cat", "--to-tcp", "127.0.0.1:9"],
    ["connect", "--exec", "cat", "--from-tcp", "9000", "ws://127.0.0.1:1/"],
])
def test_two_bridges_at_once_is_a_usage_error(argv: list[str]) -> None:
    proc = run_wstool_inprocess(*argv)
    assert proc.returncode == 2
    assert "are two bridges: give one of them" in proc.stderr


def _exec_with_pid_file(url: str, pid_file: Any, *, ignore_sighup: bool) -> Any:
    """wstool connect --exec as a real process whose program writes its pid to PID_FILE,
    ignores SIGTERM and its stdin's end, and never exits by itself; returns the Popen
    once the program runs."""

    def preexec() -> None:
        if ignore_sighup:  # as nohup does
            signal.signal(signal.SIGHUP, signal.SIG_IGN)

    proc = subprocess.Popen(
        [sys.executable, "-m", "wstool", "connect", "-v", "--kill-after", "0.2", "--sh",
         "--exec", f"trap '' TERM; echo $$ > {pid_file}; while :; do sleep 0.05; done", url],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env={**os.environ, "NO_COLOR": "1"}, preexec_fn=preexec)
    deadline = time.monotonic() + scaled(10)
    while not (pid_file.exists() and pid_file.read_text().strip()):
        assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
        time.sleep(0.02)
    return proc


@pytest.mark.slow
@pytest.mark.parametrize("ignore_sighup", [False, True], ids=["sighup", "nohup"])
def test_sighup_closes_and_stops_the_process(
    echo_url: str, tmp_path: Any, ignore_sighup: bool
) -> None:
    """The terminal closes (SIGHUP): the process, in a session of its own, gets none;
    wstool must close with 1001 and stop it, as for SIGTERM, and exit 129 — not die and
    leave it running. Under nohup (SIGHUP ignored) wstool goes on; SIGTERM ends it."""
    pid_file = tmp_path / "pid"
    proc = _exec_with_pid_file(echo_url, pid_file, ignore_sighup=ignore_sighup)
    pid = int(pid_file.read_text())
    try:
        proc.send_signal(signal.SIGHUP)
        if ignore_sighup:
            proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=scaled(15))
        expected = ExitStatus.TERMINATED if ignore_sighup else ExitStatus.HUNG_UP
        assert proc.returncode == expected, err
        stderr = err.decode()
        assert ("terminated (SIGTERM)" if ignore_sighup else "terminated (SIGHUP)") in stderr
        assert "closed by us: 1001" in stderr, stderr
        deadline = time.monotonic() + scaled(10)
        while not pid_gone(pid):
            assert time.monotonic() < deadline, f"process {pid} left running"
            time.sleep(0.02)
        assert "Traceback" not in stderr
    finally:
        if proc.poll() is None:
            proc.kill()
        if not pid_gone(pid):
            os.killpg(pid, signal.SIGKILL)
