"""`wstool listen` on a terminal: the REPL over a listening server (issue 4).

Keys go in through prompt_toolkit's pipe input, output is recorded (as in
tests/test_repl.py); clients are the websockets library's. One test runs the
real command in a pseudo-terminal with pexpect.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from prompt_toolkit.input import create_pipe_input
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.conftest import async_test, scaled, until
from tests.test_repl import CTRL_D, ENTER, RecordingOutput, make_env
from wstool.config import ListenConfig, OutputConfig, ReplConfig, ServerConfig
from wstool.errors import ExitStatus
from wstool.server.listen_repl import LISTEN_COMMANDS, Kick, ListClients, ListenTarget, SendTo
from wstool.term.commands import CommandError
from wstool.term.repl import Repl


def test_listen_commands_parse() -> None:
    assert LISTEN_COMMANDS.parse("/clients") == ListClients()
    assert LISTEN_COMMANDS.parse("/to 2 hello there") == SendTo(2, "hello there")
    assert LISTEN_COMMANDS.parse("/kick 3") == Kick(3, 1000, "")
    assert LISTEN_COMMANDS.parse("/kick 3 4000 go away") == Kick(3, 4000, "go away")
    assert isinstance(LISTEN_COMMANDS.parse("/to 2"), CommandError)
    assert isinstance(LISTEN_COMMANDS.parse("/to x hi"), CommandError)
    assert isinstance(LISTEN_COMMANDS.parse("/kick 1 1005"), CommandError)
    assert isinstance(LISTEN_COMMANDS.parse("/clients now"), CommandError)
    assert LISTEN_COMMANDS.parse("/ping") is not None  # the connect commands are kept


@dataclass
class ListenDriver:
    target: ListenTarget
    output: RecordingOutput
    send: Callable[[str], None]
    see: Callable[[str], Awaitable[None]]
    task: asyncio.Future[ExitStatus]


@asynccontextmanager
async def listen_repl_on(server_cfg: ServerConfig) -> AsyncIterator[ListenDriver]:
    """The listen REPL over a real server on port 0, keys through a pipe input."""
    with create_pipe_input() as pipe_input:
        output = RecordingOutput()
        target = ListenTarget(server_cfg, ListenConfig(), OutputConfig())
        repl = Repl(make_env(), ReplConfig(prompt="listen> "), target,
                    input=pipe_input, output=output)
        target.ui = repl
        task = asyncio.ensure_future(repl.run())

        async def see(fragment: str) -> None:
            await until(lambda: fragment in output.text or task.done(), repr(fragment))
            assert fragment in output.text, output.text[-2000:]

        await until(lambda: bool(target.url), "listening")
        try:
            yield ListenDriver(target, output, pipe_input.send_text, see, task)
        finally:
            if not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)


@async_test
async def test_listen_repl_broadcast_to_kick_and_quit() -> None:
    async with listen_repl_on(ServerConfig(port=0, ping_interval_s=None)) as d:
        target, see = d.target, d.see
        async with connect(target.url) as one, connect(target.url) as two:
            await until(lambda: len(target.clients) == 2, "two clients")
            d.send("hello all" + ENTER)
            assert await one.recv() == "hello all"
            assert await two.recv() == "hello all"
            await one.send("from one \x1b[2J")
            await see("[1]")
            await see("from one \\e[2J")  # escaped
            assert "\x1b[2J" not in d.output.text
            d.send("/clients" + ENTER)
            await see("[2] 127.0.0.1:")
            d.send("/to 2 just you" + ENTER)
            assert await two.recv() == "just you"
            # The status bar counts what went over the wire, bytes included:
            # "hello all" to two clients and "just you" to one; "from one ..." in.
            status = target.status()
            assert (status.messages_sent, status.bytes_sent) == (3, 2 * 9 + 8)
            assert (status.messages_received, status.bytes_received) == (1, 13)
            d.send("/to 9 nobody" + ENTER)
            await see("no client 9")
            d.send("/kick 1 4000 bye" + ENTER)
            with pytest.raises(ConnectionClosed) as info:
                await one.recv()
            assert info.value.rcvd is not None and info.value.rcvd.code == 4000
            await see("[1] closed by us (kick): 4000")  # issue 10: not "by the server"
            d.send(CTRL_D)
            with pytest.raises(ConnectionClosed) as info:
                await two.recv()
            assert info.value.rcvd is not None and info.value.rcvd.code == 1000
            assert await asyncio.wait_for(d.task, scaled(10)) == ExitStatus.OK


@async_test
async def test_listen_repl_ping_every_client() -> None:
    from tests.test_echo_strict import RawClient

    config = ServerConfig(port=0, ping_interval_s=None, ping_timeout_s=0.5)
    async with listen_repl_on(config) as d:
        target, see = d.target, d.see
        d.send("/ping" + ENTER)
        await see("ping not sent: no client connected")
        async with connect(target.url) as answering:  # the library answers pings itself
            await until(lambda: len(target.clients) == 1, "the first client")
            port = int(target.url.rsplit(":", 1)[1].strip("/"))
            silent = await asyncio.to_thread(RawClient, port)  # never answers
            try:
                await until(lambda: len(target.clients) == 2, "the second client")
                assert target.status().last_rtt_s is None
                d.send("/ping hello" + ENTER)
                await see("[1] pong in ")
                await see("[2] no pong within 0.5 s")
                assert target.status().last_rtt_s is not None
            finally:
                silent.close()
            await until(lambda: len(target.clients) == 1, "the silent client gone")
            assert answering.state.name == "OPEN"
        d.send(CTRL_D)
        assert await asyncio.wait_for(d.task, scaled(10)) == ExitStatus.OK


@pytest.mark.slow
def test_listen_in_a_real_terminal() -> None:
    pexpect = pytest.importorskip("pexpect")
    child = pexpect.spawn(sys.executable, ["-m", "wstool", "listen", "--port", "0", "--no-history",
                                           "--ping-interval", "0"],
                          env={"NO_COLOR": "1", "TERM": "xterm", "PATH": "/usr/bin:/bin",
                               "HOME": "/tmp"},
                          encoding="utf-8", timeout=scaled(15), dimensions=(24, 100))
    try:
        child.expect(r"listening on (ws://127\.0\.0\.1:\d+/)")
        url = child.match.group(1)

        async def client() -> Any:
            async with connect(url) as ws:
                await ws.send("hi from the client")
                child.expect("hi from the client")
                child.send("/clients\r")
                child.expect(r"\[1\] 127\.0\.0\.1:")
                child.send("to the client\r")
                got = await ws.recv()
                child.send("\x04")  # Ctrl-D: close with 1000 and exit
                with contextlib.suppress(ConnectionClosed):
                    await ws.recv()
                return got

        assert asyncio.run(asyncio.wait_for(client(), scaled(20))) == "to the client"
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert child.exitstatus == 0, child.before
