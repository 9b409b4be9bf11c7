"""The connect REPL's session side in a real pseudo-terminal (issue 13): -P's ping and
pong lines in wire order, lines typed while --reconnect reconnects (queued across a
real server restart on the same port, /discard), a server's close said once.

Peers: the websockets library's server on 127.0.0.1 (tests/test_repl_pty.py's helpers).
"""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import pexpect
import pytest

from tests.conftest import ServerThread, start_websockets_server
from tests.test_repl_pty import Record, home, recording_handler, spawn_repl, wait_exit

pytestmark = pytest.mark.slow

__all__ = ["home"]  # the fixture, imported for these tests

_PAYLOAD = r"(0x[0-9a-f]+|'[^'\r\n]*')"


def test_show_ping_pong_in_wire_order_with_rtts(
    server_thread: ServerThread, home: Path
) -> None:
    _server, url = start_websockets_server(server_thread, recording_handler(Record()),
                                           ping_interval=0.2)
    child = spawn_repl(url, home, "--no-history", "-P", "--ping-interval", "0.3")
    screen = io.StringIO()
    child.logfile_read = screen
    # The server's ping, then our automatic pong with its payload, on the next line.
    child.expect(rf"< ping {_PAYLOAD}\r\n> pong {_PAYLOAD}\r\n")
    assert child.match.group(1) == child.match.group(2)
    # Our keepalive ping, then the server's pong with the round-trip time.
    child.expect(rf"> ping {_PAYLOAD}\r\n")
    ours = child.match.group(1)
    child.expect(rf"< pong {re.escape(ours)} in [0-9.]+ ms")
    child.send("/ping hi\r")
    child.expect(r"> ping 'hi'\r\n")
    child.expect(r"< pong 'hi' in [0-9.]+ ms\r\n")
    child.send("/quit\r")
    assert wait_exit(child) == 0
    # /ping's pong is said once: by its -P line, not again by /ping's result line.
    assert len(re.findall(r"< pong 'hi' in", screen.getvalue())) == 1


async def _stop(server: Any) -> None:
    server.close()  # closes its connections with 1001 (going away)
    await server.wait_closed()


def test_lines_typed_while_reconnecting_are_queued_across_a_server_restart(
    server_thread: ServerThread, home: Path
) -> None:
    from websockets.asyncio.server import serve

    record = Record()
    handler = recording_handler(record)
    server, url = start_websockets_server(server_thread, handler)
    port = int(url.rsplit(":", 1)[1].strip("/"))
    child = spawn_repl(url, home, "--no-history", "--reconnect")
    child.send("before\r")
    child.expect("< before")
    server_thread.run(_stop(server))  # the server goes away...
    child.expect(r"closed by the server: 1001 \(going away\)")
    child.expect("reconnecting in ")
    child.send("dropped\r")  # ...what is typed now waits...
    child.expect(r"= queued \(1 waiting\), sent once the connection is back \(/discard drops the "
                 r"queue\): dropped")
    child.send("/discard\r")  # ...unless dropped
    child.expect("discarded 1 queued message: not sent")
    child.send("one\r")
    child.expect(r"queued \(1 waiting\), .*: one")
    child.send("two\r")
    child.expect(r"queued \(2 waiting\), .*: two")

    async def start_again() -> Any:
        return await serve(handler, "127.0.0.1", port)  # the same port

    server_thread.run(start_again())
    child.expect("connected to ")
    child.expect(r"sending the 2 queued messages\r\n#\d+ > one\r\n#\d+ > two\r\n")
    child.expect("< one")
    child.expect("< two")
    child.send("three\r")  # open again: sent at once
    child.expect("< three")
    child.send("/quit\r")
    assert wait_exit(child) == 0
    assert record.received == ["before", "one", "two", "three"]


def test_queued_lines_not_sent_are_counted_at_quit(
    server_thread: ServerThread, home: Path
) -> None:
    server, url = start_websockets_server(server_thread, recording_handler(Record()))
    child = spawn_repl(url, home, "--no-history", "--reconnect")
    server_thread.run(_stop(server))
    child.expect("reconnecting in ")
    child.send("never\r")
    child.expect(r"queued \(1 waiting\)")
    child.send("/quit\r")
    child.expect("warning: 1 queued message not sent: the connection did not come back")
    assert wait_exit(child) == 0


def test_a_server_close_is_said_once(server_thread: ServerThread, home: Path) -> None:
    async def close_4001(ws: Any) -> None:
        await ws.recv()
        await ws.close(4001, "custom reason")

    _server, url = start_websockets_server(server_thread, close_4001)
    child = spawn_repl(url, home, "--no-history")
    child.send("bye\r")
    child.expect(r"closed by the server: 4001 \(private use\) 'custom reason'")
    child.expect(pexpect.EOF)
    assert "server closed the connection" not in child.before
    assert "error" not in child.before
    child.close()
    assert child.exitstatus == 5  # ExitStatus.CLOSED_ABNORMALLY, as before
