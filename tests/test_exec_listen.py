"""`wstool listen --exec CMD`: a process per client (issue 16), as a real server process
on 127.0.0.1 port 0, with real child processes and the websockets library's client
(and Node's `ws`) as peers."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import ssl
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.typing import Origin, Subprotocol

from tests.conftest import pid_gone, run_wstool_inprocess, scaled
from tests.node_peers import NodeWsClient
from tests.servers import ServeEcho
from wstool.errors import ExitStatus


@pytest.fixture
def exec_server() -> Iterator[Any]:
    started: list[ServeEcho] = []

    def start(*args: str) -> ServeEcho:
        s = ServeEcho(*args, command="listen")
        started.append(s)
        return s

    yield start
    for s in started:
        s.close()


def run(coro: Any, timeout: float = 30) -> Any:
    return asyncio.run(asyncio.wait_for(coro, scaled(timeout)))


async def bytes_round_trip(url: str, payload: bytes, chunk: int, **options: Any) -> bytes:
    """PAYLOAD sent as binary messages of CHUNK bytes while the echoes are read back."""
    async with connect(url, max_size=None, **options) as ws:
        async def send() -> None:
            for i in range(0, len(payload), chunk):
                await ws.send(payload[i:i + chunk])

        sender = asyncio.ensure_future(send())
        got = b""
        while len(got) < len(payload):
            message = await ws.recv()
            assert isinstance(message, bytes)
            got += message
        await sender
        return got


async def wait_gone(pid: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + scaled(timeout)
    while not pid_gone(pid):
        assert time.monotonic() < deadline, f"process {pid} still running"
        await asyncio.sleep(0.02)


def test_line_echo_through_cat(exec_server: Any) -> None:
    s = exec_server("-v", "--exec", "cat")

    async def client() -> list[Any]:
        async with connect(s.url) as ws:
            await ws.send("hello")
            await ws.send("wörld")
            return [await ws.recv(), await ws.recv()]

    assert run(client()) == ["hello", "wörld"]
    s.wait_for("[1] process")
    assert s.wait_for("exited with status 0")


def test_counter_program_then_close_1000(exec_server: Any) -> None:
    s = exec_server("--sh", "--exec", "for i in 1 2 3; do echo $i; done")

    async def client() -> tuple[list[Any], int | None]:
        async with connect(s.url) as ws:
            got = [message async for message in ws]
            return got, ws.close_code

    assert run(client()) == (["1", "2", "3"], 1000)


def test_cgi_environment_as_websocketd(exec_server: Any) -> None:
    s = exec_server("--sh", "--exec",
                    'echo "$QUERY_STRING|$PATH_INFO|$REQUEST_URI|$REMOTE_ADDR|$SERVER_NAME|'
                    '$SERVER_PORT|$HTTP_X_TEST|$WSTOOL_CLIENT_ID|$REQUEST_METHOD|'
                    '${HTTP_PROXY-unset}|${HTTPS-unset}|$GATEWAY_INTERFACE"; '
                    'test -n "$REMOTE_PORT" && echo port')

    async def client() -> list[Any]:
        async with connect(s.url + "chat/room%201?name=ann&x=1",
                           additional_headers={"X-Test": "t1", "Proxy": "http://evil/"}) as ws:
            return [message async for message in ws]

    lines = run(client())
    assert lines == [
        f"name=ann&x=1|/chat/room 1|/chat/room%201?name=ann&x=1|127.0.0.1|127.0.0.1|"
        f"{s.port}|t1|1|GET|unset|unset|CGI/1.1",
        "port",
    ]


def test_several_clients_get_separate_processes(exec_server: Any) -> None:
    s = exec_server("--sh", "--exec", "echo $$; cat")

    async def one(i: int) -> tuple[str, str]:
        async with connect(s.url) as ws:
            pid = await ws.recv()
            await ws.send(f"client {i}")
            return str(pid), str(await ws.recv())

    async def clients() -> list[tuple[str, str]]:
        return await asyncio.gather(*(one(i) for i in range(4)))

    results = run(clients())
    assert [echo for _pid, echo in results] == [f"client {i}" for i in range(4)]
    assert len({pid for pid, _echo in results}) == 4


@pytest.mark.parametrize(("script", "reason"), [
    ("echo bye; exit 3", "exited with status 3"),
    ("echo bye; kill -SEGV $$", "killed by SIGSEGV"),
])
def test_crashing_program_closes_1011_with_its_status(
        exec_server: Any, script: str, reason: str) -> None:
    s = exec_server("--sh", "--exec", script)

    async def client() -> tuple[list[Any], int | None, str | None]:
        async with connect(s.url) as ws:
            got = []
            with pytest.raises(ConnectionClosed):
                while True:
                    got.append(await ws.recv())
            return got, ws.close_code, ws.close_reason

    assert run(client()) == (["bye"], 1011, reason)
    # The server keeps serving.
    assert run(client())[1] == 1011


def test_stderr_prefixed_with_the_client_id_or_sent_to_the_client(exec_server: Any) -> None:
    s = exec_server("--sh", "--exec", "echo oops >&2; cat")

    async def client(url: str) -> Any:
        async with connect(url) as ws:
            await ws.send("x")
            return await ws.recv()

    assert run(client(s.url)) == "x"
    assert s.wait_for("oops") == "[1] oops"
    s2 = exec_server("--stderr-to-client", "--sh", "--exec", "echo oops >&2; cat")
    assert run(client(s2.url)) == "oops"


def test_binary_integrity(exec_server: Any) -> None:
    s = exec_server("-b", "--exec", "cat")
    payload = bytes(range(256)) * 512 + os.urandom(300_000)

    assert run(bytes_round_trip(s.url, payload, 50_000)) == payload


def test_deadlock_of_websocketd_100000_messages_before_reading(exec_server: Any) -> None:
    """websocketd 0.4.1 stalls after ~4 000 echoes when a client sends 100 000 messages
    before it reads (issue 16): cat's pipe and the client's socket both fill up."""
    from websockets.client import ClientProtocol
    from websockets.frames import Frame, Opcode
    from websockets.protocol import State
    from websockets.uri import parse_uri

    s = exec_server("--no-compress", "--exec", "cat")
    count = 100_000

    async def client() -> list[bytes]:
        reader, writer = await asyncio.open_connection("127.0.0.1", s.port)
        protocol = ClientProtocol(parse_uri(s.url), max_size=None)
        protocol.send_request(protocol.connect())
        for data in protocol.data_to_send():
            writer.write(data)
        while protocol.state is State.CONNECTING:
            protocol.receive_data(await reader.read(65536))
        assert protocol.state is State.OPEN, protocol.handshake_exc
        protocol.events_received()  # the handshake's response
        for i in range(count):  # all of them, before reading a byte
            protocol.send_text(f"message {i}".encode())
        writer.write(b"".join(protocol.data_to_send()))
        got: list[bytes] = []
        while len(got) < count:
            data = await reader.read(1 << 16)
            assert data, f"closed after {len(got)} echoes"
            protocol.receive_data(data)
            got.extend(bytes(frame.data) for frame in protocol.events_received()
                       if isinstance(frame, Frame) and frame.opcode is Opcode.TEXT)
            # (not the probe pings)
        writer.close()
        return got

    got = run(client(), timeout=60)
    assert len(got) == count
    assert got[0] == b"message 0" and got[-1] == f"message {count - 1}".encode()
    assert got == [f"message {i}".encode() for i in range(count)]


def _rss_kb(pid: int, field: str = "VmHWM") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} for {pid}")


@pytest.mark.slow
def test_100_mb_through_cat_per_client_memory_bounded(exec_server: Any) -> None:
    s = exec_server("-b", "--no-compress", "--exec", "cat")
    total = 100 * 1024 * 1024
    chunk = os.urandom(64 * 1024)

    async def one() -> int:
        async with connect(s.url, max_size=None, compression=None) as ws:
            async def send() -> None:
                for _ in range(total // len(chunk)):
                    await ws.send(chunk)

            sender = asyncio.ensure_future(send())
            received = 0
            while received < total:
                message = await ws.recv()
                assert isinstance(message, bytes)
                received += len(message)
            await sender
            return received

    async def clients() -> list[int]:
        return await asyncio.gather(*(one() for _ in range(3)))

    assert run(clients(), timeout=120) == [total] * 3
    # Peak RSS of the server: far below the 600 MB that went through it.
    peak_kb = _rss_kb(s.proc.pid)
    print(f"listen --exec cat: peak RSS {peak_kb / 1024:.1f} MB for 3 x 100 MB each way")
    assert peak_kb < 120 * 1024


def test_a_program_that_never_reads_pauses_its_client_only(exec_server: Any) -> None:
    s = exec_server("--kill-after", "0.2", "--sh", "--exec",
                    'if [ "$QUERY_STRING" = stuck ]; then echo $$; exec sleep 600; fi; cat')

    async def scenario() -> tuple[int, int]:
        async with connect(s.url + "?stuck", compression=None) as stuck:
            pid = int(await stuck.recv())
            sent = 0

            async def flood() -> None:
                nonlocal sent
                while True:
                    await stuck.send(b"x" * 65536)
                    sent += 65536

            flooding = asyncio.ensure_future(flood())
            await asyncio.sleep(0.5)  # a peer pushing as fast as it can: what it got out
            # Meanwhile another client is served by its own process.
            async with connect(s.url) as other:
                await other.send("still here")
                assert await other.recv() == "still here"
            flooding.cancel()
            stuck.transport.abort()
        await wait_gone(pid)
        return sent, _rss_kb(s.proc.pid, "VmRSS")

    sent, rss_kb = run(scenario())
    # Bounded: the pipe, the transports' buffers and the sockets' (a few MB), not all.
    assert sent < 32 * 1024 * 1024
    assert rss_kb < 100 * 1024


def test_stderr_to_a_client_that_does_not_read_is_held_back(
    exec_server: Any, tmp_path: Path
) -> None:
    """--stderr-to-client: stderr lines are messages, so a process that floods stderr
    at a client that does not read must block as one flooding stdout does, not grow
    wstool's write buffer without bound."""
    import socket

    from websockets.client import ClientProtocol
    from websockets.uri import parse_uri

    counter = tmp_path / "lines"
    program = tmp_path / "flood.py"
    program.write_text(
        "import sys\n"
        "n = 0\n"
        "while True:\n"
        "    sys.stderr.write('x' * 100 + '\\n')\n"
        "    n += 1\n"
        "    if n % 1000 == 0:\n"
        f"        open({str(counter)!r}, 'w').write(str(n))\n")
    s = exec_server("--no-compress", "--kill-after", "0.2", "--stderr-to-client",
                    "--exec", f"{sys.executable} {program}")
    sock = socket.create_connection(("127.0.0.1", s.port))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    protocol = ClientProtocol(parse_uri(s.url))
    protocol.send_request(protocol.connect())
    sock.sendall(b"".join(protocol.data_to_send()))
    response = sock.recv(4096)  # the 101; then nothing more is read
    assert response.startswith(b"HTTP/1.1 101"), response

    def lines_written() -> int:
        try:
            return int(counter.read_text() or 0)
        except (OSError, ValueError):
            return 0

    try:
        # Until the count stops moving for half a second: the process is blocked.
        deadline = time.monotonic() + scaled(15)
        last, still_since = -1, time.monotonic()
        while True:
            now_count = lines_written()
            if now_count != last:
                last, still_since = now_count, time.monotonic()
            elif now_count and time.monotonic() - still_since > 0.5:
                break
            assert time.monotonic() < deadline, (
                f"stderr never held back: {now_count} lines of 101 bytes and counting")
            time.sleep(0.05)
        # The pipe, the transport's buffer and the sockets': megabytes, not more.
        assert last * 101 < 32 * 1024 * 1024, last
        assert _rss_kb(s.proc.pid, "VmRSS") < 100 * 1024
    finally:
        sock.close()


def test_sigterm_ignored_and_forked_child_leave_no_orphan(exec_server: Any) -> None:
    s = exec_server("-v", "--kill-after", "0.2", "--sh", "--exec",
                    'trap "" TERM; sleep 600 & echo $$ $!; cat >/dev/null; sleep 600')

    async def scenario() -> None:
        async with connect(s.url) as ws:
            pids = [int(p) for p in str(await ws.recv()).split()]
        for pid in pids:
            await wait_gone(pid)

    run(scenario())
    assert "killed by SIGKILL" in s.wait_for("killed by")


def test_a_second_signal_at_shutdown_kills_the_processes_now(exec_server: Any) -> None:
    """Ctrl-C with a long --kill-after and a process that ignores SIGTERM and its stdin's
    end: the server says what it waits for, and a second Ctrl-C kills the processes at
    once instead of making the user wait 2 x --kill-after."""
    s = exec_server("--kill-after", "30", "--sh", "--exec",
                    "trap '' TERM; echo $$; while :; do sleep 0.05; done")

    async def client() -> int:
        async with connect(s.url) as ws:
            return int(await ws.recv())

    pid = run(client())  # the client has left; its process lives on (--kill-after 30)
    s.proc.send_signal(signal.SIGINT)
    s.wait_for("waiting for 1 process to end")
    assert not pid_gone(pid)
    started = time.monotonic()
    s.proc.send_signal(signal.SIGINT)
    run(wait_gone(pid, timeout=5))
    assert s.proc.wait(scaled(10)) == 0
    assert time.monotonic() - started < scaled(5)
    s.wait_for_eof()
    assert "killing 1 process" in s.stderr, s.stderr
    assert "Traceback" not in s.stderr


def test_sighup_stops_the_server_and_its_processes(exec_server: Any) -> None:
    """The terminal closes (SIGHUP): the processes, in sessions of their own, get no
    SIGHUP of theirs; the server must end them as it does for SIGTERM, not die and
    leave them running."""
    s = exec_server("--kill-after", "0.2", "--sh", "--exec",
                    "trap '' TERM; echo $$; while :; do sleep 0.05; done")
    pids: list[int] = []

    async def client() -> None:
        async with connect(s.url) as ws:
            pids.append(int(await ws.recv()))
            s.proc.send_signal(signal.SIGHUP)
            await wait_gone(pids[0], timeout=10)

    try:
        run(client())
        assert s.proc.wait(scaled(10)) == 0, s.stderr
    finally:
        for pid in pids:  # what a failure would leave behind (its group: it and sleep)
            if not pid_gone(pid):
                os.killpg(pid, signal.SIGKILL)


def test_process_killed_when_its_client_disconnects_mid_stream(exec_server: Any) -> None:
    s = exec_server("--kill-after", "0.2", "--sh", "--exec", "echo $$; exec yes")

    async def scenario() -> None:
        async with connect(s.url) as ws:
            pid = int(await ws.recv())
            for _ in range(100):
                assert await ws.recv() == "y"
            ws.transport.abort()
        await wait_gone(pid)
        async with connect(s.url) as ws:  # served as before
            await ws.recv()
            assert await ws.recv() == "y"
            ws.transport.abort()  # (a close would wait behind the flood of "y")

    run(scenario())


def test_max_connections_bounds_processes(exec_server: Any) -> None:
    # The first client's process outlives it by up to 2 x --kill-after.
    s = exec_server("--max-connections", "1", "--kill-after", "2", "--sh", "--exec",
                    'trap "" TERM; echo started; cat >/dev/null; sleep 600')

    async def scenario() -> tuple[Any, ...]:
        async with connect(s.url) as first:
            assert await first.recv() == "started"
            with pytest.raises(InvalidStatus) as full:
                async with connect(s.url):
                    pass
        async with connect(s.url) as second:
            with pytest.raises(ConnectionClosed):
                await second.recv()
            return full.value.response.status_code, second.close_code, second.close_reason

    status, code, reason = run(scenario())
    assert status == 503
    assert code == 1013
    assert "1 processes still running (--max-connections 1)" in (reason or "")


def test_tls_auth_and_subprotocol_apply(exec_server: Any) -> None:
    s = exec_server("--self-signed", "--token", "t0k", "-s", "chat", "--sh", "--exec",
                    'echo "$HTTPS $HTTP_SEC_WEBSOCKET_PROTOCOL"')
    match = re.search(r"--cacert (\S+)", s.wait_for("trust it with"))
    assert match
    context = ssl.create_default_context(cafile=match.group(1))
    url = s.url.replace("127.0.0.1", "localhost")

    async def scenario() -> tuple[Any, ...]:
        with pytest.raises(InvalidStatus) as denied:
            async with connect(url, ssl=context):
                pass
        async with connect(url + "?token=t0k", ssl=context,
                           subprotocols=[Subprotocol("chat")]) as ws:
            return denied.value.response.status_code, ws.subprotocol, await ws.recv()

    assert run(scenario()) == (401, "chat", "on chat")


@pytest.mark.slow
def test_node_ws_client_as_peer(exec_server: Any, node_ws_client: NodeWsClient) -> None:
    s = exec_server("--exec", "cat")
    result = node_ws_client(s.url, ["one", "two", "three"])
    assert result.errors == []
    assert result.messages == ["one", "two", "three"]
    assert result.close_code == 1000


def test_json_logs_process_events(exec_server: Any) -> None:
    s = exec_server("--json", "--sh", "--exec", "echo out; echo err >&2")

    async def client() -> list[Any]:
        async with connect(s.url) as ws:
            return [message async for message in ws]

    assert run(client()) == ["out"]
    s.stop()
    events = [line for line in s.stdout.decode().splitlines()]
    kinds = [re.search(r'"event": ?"(\w+)"', line).group(1)  # type: ignore[union-attr]
             for line in events]
    for kind in ("connect", "process", "stderr", "process_exit", "disconnect", "summary"):
        assert kind in kinds, (kind, events)
    by_kind = {kind: json.loads(line) for kind, line in zip(kinds, events, strict=True)}
    started, ended = by_kind["process"], by_kind["process_exit"]
    assert started["client"] == ended["client"] == by_kind["connect"]["client"] == 1
    assert started["pid"] == ended["pid"] > 0
    assert started["command"] == "/bin/sh -c 'echo out; echo err >&2'"
    assert (ended["status"], ended["signal"], ended["sent_signal"]) == (0, None, None)
    # The two times every server event has (README "JSON events").
    for kind in ("process", "stderr", "process_exit"):
        assert isinstance(by_kind[kind]["ts"], float), by_kind[kind]
        assert isinstance(by_kind[kind]["mono"], float), by_kind[kind]
    assert by_kind["process"]["mono"] <= by_kind["process_exit"]["mono"]


def test_json_says_which_signal_wstool_sent(exec_server: Any) -> None:
    # The client leaves; the process ignores its stdin's end and is sent SIGTERM.
    s = exec_server("--json", "--kill-after", "0.1", "--sh", "--exec", "echo up; exec sleep 60")

    async def client() -> Any:
        async with connect(s.url) as ws:
            return await ws.recv()

    assert run(client()) == "up"
    assert s.stop() == 0  # shutdown waits for the process (its events come first)
    exits = [json.loads(line) for line in s.stdout.decode().splitlines()
             if '"process_exit"' in line]
    assert len(exits) == 1, s.stdout
    assert (exits[0]["status"], exits[0]["signal"], exits[0]["sent_signal"]) == (
        None, 15, 15), exits


# Bad input: at start-up, once, exit 2.

@pytest.mark.parametrize(("args", "message"), [
    (("--exec", "no-such-command-here"), "--exec: no-such-command-here: command not found"),
    (("--exec", "/no/such/file"), "--exec: /no/such/file: no such file"),
    (("--exec", "/"), "--exec: /: a directory, not a program"),
    (("--exec", ""), "--exec: empty command"),
    (("--exec", "cat 'unbalanced"), "--exec: cannot split"),
    (("--sh",), "--sh goes with --exec CMD"),
    (("--kill-after", "3"), "--kill-after goes with --exec CMD"),
    (("--exec", "cat", "--kill-after", "-1"), "invalid value for '--kill-after'"),
    (("--exec", "cat", "--base64"), "--base64 does not apply to --exec"),
])
def test_bad_exec_input_is_one_error_at_start_up(args: tuple[str, ...], message: str) -> None:
    proc = run_wstool_inprocess("listen", "-p", "0", *args)
    assert proc.returncode == ExitStatus.USAGE
    assert proc.stderr.startswith(f"wstool: error: {message}"), proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_program_in_the_current_directory_is_named_with_its_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As a shell, --exec looks a bare name up in PATH; the error shows the fix.
    (tmp_path / "count.sh").write_text("#!/bin/sh\necho 1\n")
    (tmp_path / "count.sh").chmod(0o755)
    monkeypatch.chdir(tmp_path)
    proc = run_wstool_inprocess("listen", "-p", "0", "--exec", "count.sh")
    assert proc.returncode == ExitStatus.USAGE
    assert proc.stderr.splitlines()[0] == (
        "wstool: error: --exec: count.sh: command not found in PATH "
        "(it is in the current directory: --exec ./count.sh)"), proc.stderr


def test_once_serves_one_client_and_exits_with_its_status(exec_server: Any) -> None:
    s = exec_server("--once", "--exec", "cat")

    async def client() -> Any:
        async with connect(s.url) as ws:
            await ws.send("only")
            return await ws.recv()

    assert run(client()) == "only"
    assert s.proc.wait(scaled(15)) == 0


def test_once_exits_1_when_the_process_fails(exec_server: Any) -> None:
    """--once --exec: the process exiting 3 closes the client with 1011, and the exit
    status is the process's failure (1, as connect --exec), not "the client closed"."""
    s = exec_server("--once", "--sh", "--exec", "read x; echo got $x; exit 3")

    async def client() -> Any:
        async with connect(s.url) as ws:
            await ws.send("only")
            answer = await ws.recv()
            await ws.wait_closed()
            return answer, ws.close_code, ws.close_reason

    assert run(client()) == ("got only", 1011, "exited with status 3")
    assert s.proc.wait(scaled(15)) == ExitStatus.ERROR
    s.wait_for_eof()
    errors = [line for line in s.lines if "error" in line]
    assert len(errors) == 1, s.stderr
    assert re.fullmatch(r"wstool: error: /bin/sh -c 'read x; echo got \$x; exit 3' "
                        r"\(pid \d+\) exited with status 3", errors[0]), s.stderr


def test_once_exits_1_when_the_process_cannot_start(exec_server: Any, tmp_path: Path) -> None:
    program = tmp_path / "prog.sh"
    program.write_text("#!/bin/sh\necho hi\n")
    program.chmod(0o755)
    s = exec_server("--once", "--exec", str(program))
    program.chmod(0o644)  # found at start-up, not executable when the client comes

    async def client() -> Any:
        async with connect(s.url) as ws:
            await ws.wait_closed()
            return ws.close_code, ws.close_reason

    code, reason = run(client())
    assert (code, reason.split(":")[0]) == (1011, f"cannot start {program}"), reason
    assert s.proc.wait(scaled(15)) == ExitStatus.ERROR
    s.wait_for_eof()
    assert [line for line in s.lines if "cannot start" in line] == [
        f"wstool: [1] cannot start {program}: Permission denied"], s.stderr


def test_null_separated_lines_keep_their_carriage_returns(exec_server: Any) -> None:
    s = exec_server("-0", "--exec", "cat")

    async def client() -> list[Any]:
        async with connect(s.url) as ws:
            await ws.send("a\rb\nc")  # one message: NUL ends it, \n and \r are data
            await ws.send("d\r")
            return [await ws.recv(), await ws.recv()]

    assert run(client()) == ["a\rb\nc", "d\r"]


def test_cr_lf_ends_a_line_in_text_mode(exec_server: Any) -> None:
    s = exec_server("--sh", "--exec", "printf 'one\\r\\ntwo\\n'")

    async def client() -> list[Any]:
        async with connect(s.url) as ws:
            return [message async for message in ws]

    assert run(client()) == ["one", "two"]


def test_origin_and_max_size_apply(exec_server: Any) -> None:
    s = exec_server("--origin", "https://ok.example", "--max-size", "100", "--kill-after",
                    "0.2", "--sh", "--exec", "echo $$; exec cat")

    async def scenario() -> tuple[Any, ...]:
        with pytest.raises(InvalidStatus) as denied:
            async with connect(s.url, origin=Origin("https://evil.example")):
                pass
        async with connect(s.url, origin=Origin("https://ok.example")) as ws:
            pid = int(await ws.recv())
            await ws.send("x" * 101)
            with pytest.raises(ConnectionClosed):
                await ws.recv()
            code = ws.close_code
        await wait_gone(pid)  # its client failed: the process is stopped
        return denied.value.response.status_code, code

    assert run(scenario()) == (403, 1009)


def test_keepalive_does_not_fail_a_client_held_back_by_its_process(exec_server: Any) -> None:
    # The process reads nothing for 1.5 s: the client's data (and its pongs) wait in
    # the socket, longer than --ping-interval + --ping-timeout; then all is echoed.
    s = exec_server("-b", "--no-compress", "--ping-interval", "0.2", "--ping-timeout", "0.2",
                    "--sh", "--exec", "sleep 1.5; exec cat")
    payload = os.urandom(2_000_000)

    assert run(bytes_round_trip(s.url, payload, 65536, compression=None,
                                ping_interval=None)) == payload


def test_line_echo_through_cat_on_uvloop() -> None:
    """`--loop auto` runs on uvloop when `wstool[fast]` is installed, and uvloop's pipe
    transports are not asyncio's classes: the bridge asserted they were, and every
    message to the process failed (1006) on uvloop."""
    from tests.uvloop_peer import uvloop_path

    pythonpath = os.pathsep.join(filter(None, [uvloop_path(), os.environ.get("PYTHONPATH")]))
    s = ServeEcho("--loop", "uvloop", "--exec", "cat", command="listen",
                  env={"PYTHONPATH": pythonpath})
    try:
        async def client() -> list[Any]:
            async with connect(s.url) as ws:
                await ws.send("hello")
                await ws.send("wörld")
                return [await ws.recv(), await ws.recv()]

        assert run(client()) == ["hello", "wörld"]
    finally:
        s.close()
