"""`wstool listen` in a pipe, as a real process on 127.0.0.1 port 0 (issue 4)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.conftest import run_wstool_inprocess, scaled
from tests.node_peers import NodeWsClient, ensure_node_ws
from tests.servers import ServeEcho
from wstool.errors import ExitStatus


@pytest.fixture
def listen() -> Iterator[Any]:
    started: list[ServeEcho] = []

    def start(*args: str) -> ServeEcho:
        s = ServeEcho(*args, command="listen", stdin=subprocess.PIPE)
        started.append(s)
        return s

    yield start
    for s in started:
        s.close()


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, scaled(20)))


def feed(s: ServeEcho, data: bytes, *, close: bool = False) -> None:
    assert s.proc.stdin is not None
    s.proc.stdin.write(data)
    s.proc.stdin.flush()
    if close:
        s.proc.stdin.close()


def finish(s: ServeEcho) -> int:
    code = s.proc.wait(scaled(15))
    s.wait_for_eof()
    return code


def test_input_before_the_first_client_is_delivered_to_it(listen: Any) -> None:
    s = listen("--once")
    feed(s, b"early 1\nearly 2\n")

    async def client() -> Any:
        async with connect(s.url) as ws:
            got = [await ws.recv(), await ws.recv()]
            feed(s, b"late\n", close=True)
            got.append(await ws.recv())
            await ws.send("reply")
            await ws.send(b"\x00\xff")
            return got

    assert run(client()) == ["early 1", "early 2", "late"]
    assert finish(s) == 0
    assert s.stdout == b"reply\n00ff\n"


def test_once_exit_status_from_the_clients_close(listen: Any) -> None:
    s = listen("--once")

    async def client() -> None:
        async with connect(s.url) as ws:
            await ws.close(4000, "custom")

    run(client())
    assert finish(s) == ExitStatus.CLOSED_ABNORMALLY
    assert "wstool: error: client 1 closed with 4000 (private use): custom" in s.stderr

    s2 = listen("--once")

    async def vanish() -> None:
        async with connect(s2.url) as ws:
            ws.transport.abort()

    run(vanish())
    assert finish(s2) == ExitStatus.CLOSED_ABNORMALLY
    assert "without a closing handshake (1006)" in s2.stderr


def test_several_clients_json_with_ids(listen: Any) -> None:
    s = listen("--json")

    async def clients() -> Any:
        async with connect(s.url) as a, connect(s.url) as b:
            s.wait_for("listening")
            feed(s, b"to all\n")
            got = (await a.recv(), await b.recv())
            await a.send("from a")
            await b.send("from b")
            await asyncio.sleep(0)
            return got

    assert run(clients()) == ("to all", "to all")
    s.proc.send_signal(signal.SIGTERM)
    assert finish(s) == 0
    events = [json.loads(line) for line in s.stdout.decode().splitlines()]
    received = {(e["client"], e["text"]) for e in events
                if e["event"] == "message" and e["direction"] == "received"}
    assert received == {(1, "from a"), (2, "from b")}
    sent = sorted(e["client"] for e in events
                  if e["event"] == "message" and e["direction"] == "sent")
    assert sent == [1, 2]


def test_binary_and_null_separated(listen: Any) -> None:
    s = listen("--once", "-b")
    feed(s, b"\x00\x01\x02", close=True)

    async def client() -> Any:
        async with connect(s.url) as ws:
            got = await ws.recv()
            await ws.send(b"\xff\xfe")
            await ws.send("t")
            return got

    assert run(client()) == b"\x00\x01\x02"
    assert finish(s) == 0
    assert s.stdout == b"\xff\xfet"

    s0 = listen("--once", "-0")
    feed(s0, b"a\nb\0c\0", close=True)

    async def client0() -> Any:
        async with connect(s0.url) as ws:
            got = [await ws.recv(), await ws.recv()]
            await ws.send("x\ny")
            return got

    assert run(client0()) == ["a\nb", "c"]
    assert finish(s0) == 0
    assert s0.stdout == b"x\ny\0"


def test_invalid_utf8_input_is_a_one_line_error(listen: Any) -> None:
    s = listen("--once")
    feed(s, b"ok\n\xff\xfe\n", close=True)

    async def client() -> Any:
        async with connect(s.url) as ws:
            got = await ws.recv()
            with contextlib.suppress(ConnectionClosed):
                await ws.recv()
            return got, ws.close_code

    assert run(client()) == ("ok", 1001)
    assert finish(s) == ExitStatus.ERROR
    assert "wstool: error: input line 2 is not valid UTF-8" in s.stderr
    assert "Traceback" not in s.stderr


def test_listen_usage_error() -> None:
    proc = run_wstool_inprocess("listen", "--port", "0", "--key", "k.pem")
    assert proc.returncode == ExitStatus.USAGE
    assert "wstool: error: --key needs --cert" in proc.stderr


@pytest.mark.slow
def test_node_ws_client_to_listen(listen: Any) -> None:
    client = NodeWsClient(ensure_node_ws())
    s = listen("--once")
    feed(s, b"hello node\n", close=True)
    result = client(s.url, ["hello wstool"], expect=1)
    assert result.errors == [], result.stderr
    assert result.messages == ["hello node"]
    assert finish(s) == 0
    assert s.stdout == b"hello wstool\n"


def test_once_client_protocol_error_is_status_6(listen: Any) -> None:
    from tests.test_echo_strict import TEXT, RawClient, frame

    s = listen("--once", "--no-compress")
    c = RawClient(s.port)
    c.send(frame(TEXT, b"fine") + frame(TEXT, b"\xc3\x28"))  # invalid UTF-8: 1007
    frames = c.read_until_closed()
    c.close()
    assert frames[-1].close_code == 1007
    assert finish(s) == ExitStatus.PROTOCOL_ERROR
    assert s.stdout == b"fine\n"
    assert "wstool: error: client 1: invalid UTF-8" in s.stderr


def test_line_read_while_the_only_client_is_closing_goes_to_the_next(listen: Any) -> None:
    from tests.test_echo_strict import CLOSE, TEXT, RawClient, close_payload, frame

    s = listen("--no-compress")
    first = RawClient(s.port)
    feed(s, b"one\n")
    assert first.read_frames(1)[0].payload == b"one"
    # The client closes but keeps its TCP connection open: the server holds
    # it in CLOSING (up to --close-timeout) while stdin has a new line.
    first.send(frame(CLOSE, close_payload(1000)))
    assert first.read_frames(1)[0].opcode == CLOSE  # answered; our side stays open
    feed(s, b"two\n")

    async def second() -> Any:
        async with connect(s.url) as ws:
            return await ws.recv()

    assert run(second()) == "two"
    first.send(frame(TEXT, b"ignored"))
    first.close()
    s.proc.send_signal(signal.SIGTERM)
    assert finish(s) == 0
