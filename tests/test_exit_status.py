"""Every documented exit status of `wstool connect`, each with its one-line message.

Model: httpie's tests/test_exit_status.py. 130 (Ctrl-C) is in test_connect.py.
"""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection

from tests import servers
from tests.conftest import (
    Proc,
    ServerThread,
    closed_port,
    run_wstool_inprocess,
    start_websockets_server,
)
from wstool.client.session import Session
from wstool.config import ConnectConfig, parse_target
from wstool.errors import ExitStatus


def assert_one_line_error(proc: Proc, status: ExitStatus, fragment: str) -> None:
    assert proc.returncode == status, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("wstool: error:")]
    assert len(errors) == 1, proc.stderr
    assert fragment in errors[0], proc.stderr
    assert "Traceback" not in proc.stderr


def test_ok(lib_echo_url: str) -> None:
    assert run_wstool_inprocess("connect", lib_echo_url, input=b"x\n").returncode == ExitStatus.OK


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["ftp://h/"], "scheme must be ws://, wss:// or ws+unix://"),
        (["ws://h:99999/"], "invalid URL"),
        ([], "missing URL"),
        (["--demo", "ws://h/"], "not both"),
        (["-H", "NoColon", "ws://h/"], "invalid header 'NoColon'"),
        (["--auth", "nocolon", "ws://h/"], "--auth"),
        (["--proxy", "ftp://p:1", "ws://h/"], "invalid --proxy"),
        (["--max-size", "-1", "ws://h/"], "--max-size"),
        (["-w", "-5", "ws://h/"], "--wait"),
    ],
)
def test_usage(args: list[str], fragment: str) -> None:
    assert_one_line_error(run_wstool_inprocess("connect", *args), ExitStatus.USAGE, fragment)


def test_click_usage_errors_are_status_2() -> None:
    proc = run_wstool_inprocess("connect", "--no-such-option", "ws://h/")
    assert proc.returncode == ExitStatus.USAGE
    assert "wstool: error: no such option" in proc.stderr


def test_connection_refused() -> None:
    port = closed_port()
    proc = run_wstool_inprocess("connect", f"127.0.0.1:{port}")
    assert_one_line_error(proc, ExitStatus.CONNECT_FAILED, "connection refused")


def test_missing_unix_socket(tmp_path: Any) -> None:
    proc = run_wstool_inprocess("connect", f"ws+unix://{tmp_path}/none.sock")
    assert_one_line_error(proc, ExitStatus.CONNECT_FAILED, "no Unix socket at")


def test_dns_failure_message() -> None:
    # Resolving a name would send a query off this machine, so check the mapping.
    session = Session(ConnectConfig(target=parse_target("ws://no-such-host.test/")), print)
    error = session._open_error(socket.gaierror(socket.EAI_NONAME, "Name or service not known"))
    assert error.exit_status == ExitStatus.CONNECT_FAILED
    assert str(error) == "cannot resolve host no-such-host.test: Name or service not known"


def test_handshake_rejected(server_thread: ServerThread) -> None:
    _s, url = start_websockets_server(server_thread, _never, process_request=servers.reject_403)
    proc = run_wstool_inprocess("connect", url, input=b"x\n")
    assert_one_line_error(proc, ExitStatus.HANDSHAKE_REJECTED,
                          "HTTP 403 Forbidden: Forbidden: bad token")
    assert "second line" not in proc.stderr


async def _never(ws: ServerConnection) -> None:
    raise AssertionError("handshake should have been rejected")


def test_rejected_handshake_is_reported_with_verbose(server_thread: ServerThread) -> None:
    _s, url = start_websockets_server(server_thread, _never, process_request=servers.reject_403)
    proc = run_wstool_inprocess("connect", "-v", url, input=b"x\n")
    assert proc.returncode == ExitStatus.HANDSHAKE_REJECTED
    assert "> GET / HTTP/1.1" in proc.stderr
    assert "< HTTP/1.1 403 Forbidden" in proc.stderr


def test_closed_abnormally_with_code(server_thread: ServerThread) -> None:
    _s, url = start_websockets_server(server_thread, servers.close_4001)
    proc = run_wstool_inprocess("connect", url)
    assert_one_line_error(proc, ExitStatus.CLOSED_ABNORMALLY, "4001 (private use): custom reason")


async def _drop(ws: ServerConnection) -> None:
    await ws.recv()
    ws.transport.abort()


def test_connection_dropped_without_close(server_thread: ServerThread) -> None:
    _s, url = start_websockets_server(server_thread, _drop)
    proc = run_wstool_inprocess("connect", url, input=b"x\n")
    assert_one_line_error(proc, ExitStatus.CLOSED_ABNORMALLY, "without a close frame (1006)")


def test_message_over_max_size(server_thread: ServerThread) -> None:
    _s, url = start_websockets_server(server_thread, servers.send_big)
    proc = run_wstool_inprocess("connect", "--max-size", "1000", "--no-compress", url)
    assert_one_line_error(
        proc, ExitStatus.PROTOCOL_ERROR, "message of 2000 bytes exceeds --max-size 1000"
    )
    assert "closed by us: 1009 (message too big)" in proc.stderr
    proc = run_wstool_inprocess("connect", "--max-size", "1000", url)
    # Compressed, the size is only known to be too big while inflating (issue 10: the
    # message said "compressed message inflating beyond the limit exceeds ...").
    assert_one_line_error(
        proc, ExitStatus.PROTOCOL_ERROR,
        "a compressed message from the server decompresses to more than --max-size 1000 bytes")
    ok = run_wstool_inprocess("connect", "-n", "1", "--max-size", "0", url)
    assert ok.returncode == 0 and len(ok.stdout) == 2001


def _raw_server(st: ServerThread, frames: bytes) -> str:
    """A raw TCP server that completes the handshake, then writes FRAMES."""
    from websockets.server import ServerProtocol

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        protocol = ServerProtocol()
        protocol.receive_data(await reader.readuntil(b"\r\n\r\n"))
        request = protocol.events_received()[0]
        protocol.send_response(protocol.accept(request))  # type: ignore[arg-type]
        writer.write(b"".join(protocol.data_to_send()) + frames)
        await writer.drain()
        await reader.read()
        writer.close()

    async def start() -> Any:
        return await asyncio.start_server(handle, "127.0.0.1", 0)

    server = st.run(start())
    return f"ws://127.0.0.1:{servers.port_of(server)}/"


def test_invalid_utf8_from_server(server_thread: ServerThread) -> None:
    url = _raw_server(server_thread, b"\x81\x02\xc3\x28")  # TEXT "\xc3\x28"
    proc = run_wstool_inprocess("connect", "--no-compress", url)
    assert_one_line_error(proc, ExitStatus.PROTOCOL_ERROR, "invalid UTF-8")


def test_protocol_error_from_server(server_thread: ServerThread) -> None:
    url = _raw_server(server_thread, b"\x83\x00")  # reserved opcode 3
    proc = run_wstool_inprocess("connect", "--no-compress", url)
    assert_one_line_error(proc, ExitStatus.PROTOCOL_ERROR, "protocol error from the server")


def test_open_timeout(server_thread: ServerThread) -> None:
    _server, port = server_thread.run(servers.start_silent_tcp())
    proc = run_wstool_inprocess("connect", "--open-timeout", "0.5", f"ws://127.0.0.1:{port}/")
    assert_one_line_error(proc, ExitStatus.TIMEOUT, "within --open-timeout 0.5s")


@pytest.mark.slow
def test_keepalive_timeout(server_thread: ServerThread) -> None:
    # The raw server never answers pings.
    url = _raw_server(server_thread, b"")
    proc = run_wstool_inprocess("connect", "--no-compress", "--ping-interval", "0.2",
                                "--ping-timeout", "0.3", "-w", "-1", url, input=None)
    assert_one_line_error(proc, ExitStatus.TIMEOUT, "no pong within --ping-timeout 0.3s")


def test_close_timeout(server_thread: ServerThread) -> None:
    # The raw server completes the handshake and never answers our close frame.
    url = _raw_server(server_thread, b"")
    proc = run_wstool_inprocess("connect", "--no-compress", "-w", "0", "--close-timeout", "0.3",
                                url,
                                input=b"hi\n")
    assert proc.returncode == ExitStatus.CLOSED_ABNORMALLY, proc.stderr
    assert proc.stderr.splitlines()[-1] == (
        "wstool: error: the server did not answer our close frame within --close-timeout "
        "0.3s (1006) (raise --close-timeout, or 0 not to wait)")
    # 0: close and do not wait; not waiting was asked for, so it is not an error.
    proc = run_wstool_inprocess("connect", "--no-compress", "-w", "0", "--close-timeout", "0", url,
                                input=b"hi\n")
    assert proc.returncode == 0, proc.stderr
    assert "closed by us: 1000" in proc.stderr and "error" not in proc.stderr
    proc = run_wstool_inprocess("connect", "--close-timeout", "-1", url)
    assert_one_line_error(proc, ExitStatus.USAGE, "invalid --close-timeout")


@pytest.mark.parametrize("value", ["nan", "NaN", "inf", "-inf"])
@pytest.mark.parametrize(
    "args",
    [["connect", "-w"], ["connect", "--open-timeout"], ["connect", "--ping-interval"],
     ["connect", "--close-timeout"], ["serve-echo", "--delay"], ["serve-echo", "--ping-every"],
     ["listen", "--ping-timeout"], ["frame-dump", "--open-timeout"]],
)
def test_time_options_refuse_nan_and_infinity(args: list[str], value: str) -> None:
    """Issue 10: `-w nan` made every comparison false and the run waited forever."""
    proc = run_wstool_inprocess(*args, value, *(["ws://127.0.0.1:1/"] if args[0] == "connect"
                                                  else []))
    assert proc.returncode == ExitStatus.USAGE, proc.stderr
    assert f"{value!r} is not a finite number of seconds" in proc.stderr


@pytest.mark.parametrize("command", [["connect", "ws://127.0.0.1:1/"], ["listen", "-p", "0"]])
def test_binary_with_null_separators_is_a_usage_error(command: list[str]) -> None:
    proc = run_wstool_inprocess(*command, "-b", "-0")
    assert_one_line_error(proc, ExitStatus.USAGE, "-0/--null separates text messages")


async def _silent_after_hello(ws: ServerConnection) -> None:
    await ws.send("hello")
    await ws.wait_closed()


def test_expectation_not_met(server_thread: ServerThread) -> None:
    _s, url = start_websockets_server(server_thread, _silent_after_hello)
    proc = run_wstool_inprocess("connect", "--expect", "never", "--expect-timeout", "0.3", url)
    assert_one_line_error(proc, ExitStatus.EXPECTATION_NOT_MET,
                          "expectation not met: --expect 'never' within --expect-timeout 0.3s "
                          "(1 message received)")


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--expect", "("], "--expect '(': invalid regular expression"),
        (["--expect", "json:.["], "invalid jq expression"),
        (["--capture", "noequals"], "invalid --capture 'noequals'"),
        (["--capture", "1x=a"], "invalid capture name '1x'"),
        (["--template", "-x", "{{nope}}"], "unknown placeholder {{nope}}"),
        (["--expect-timeout", "0", "--expect", "a"], "--expect-timeout"),
    ],
)
def test_expect_usage(args: list[str], fragment: str) -> None:
    # Before connecting: nothing listens on port 1.
    proc = run_wstool_inprocess("connect", *args, "ws://127.0.0.1:1/")
    assert proc.returncode == ExitStatus.USAGE, proc.stderr
    assert fragment in proc.stderr


def test_replay_mismatch_is_8(lib_echo_url: str, tmp_path: Any) -> None:
    # wstool replay (issue 11): the replies differ from the recording.
    log = tmp_path / "r.jsonl"
    events = [
        {"event": "open", "url": lib_echo_url, "subprotocol": None, "mono": 0},
        {"event": "message", "direction": "sent", "type": "text", "text": "a", "mono": 0},
        {"event": "message", "direction": "received", "type": "text", "text": "b", "mono": 0},
    ]
    log.write_text("".join(json.dumps(e) + "\n" for e in events))
    proc = run_wstool_inprocess("replay", str(log))
    assert_one_line_error(proc, ExitStatus.EXPECTATION_NOT_MET,
                          "received messages differ from the recording")
    assert proc.stdout.decode().splitlines()[-2:] == ["- b", "+ a"]
