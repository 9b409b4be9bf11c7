"""`wstool connect --trace`: every frame both ways on stderr, in the frame-dump vocabulary."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection
from websockets.frames import Frame, Opcode

from tests.conftest import ServerThread, run_wstool_inprocess, scaled, start_websockets_server


class _NotesClientPings(ServerConnection):
    """A ServerConnection that tells when the client pinged (the library answers
    pings itself and reports nothing)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.client_pinged = asyncio.Event()

    def process_event(self, event: Any) -> None:
        super().process_event(event)
        if isinstance(event, Frame) and event.opcode is Opcode.PING:
            self.client_pinged.set()


async def _chatty(ws: Any) -> None:
    # A server-initiated ping, a fragmented message, a keepalive ping from the
    # client (answered before our close), then the closing handshake from the server.
    pong = await ws.ping(b"srv")
    await pong
    await ws.send(iter(["frag", "mented"]))
    await asyncio.wait_for(ws.client_pinged.wait(), scaled(10))
    await ws.close(1000, "bye")


@pytest.mark.slow
def test_trace_shows_pings_pongs_fragments_and_close(server_thread: ServerThread) -> None:
    _server, url = start_websockets_server(server_thread, _chatty, compression=None,
                                           create_connection=_NotesClientPings)
    proc = run_wstool_inprocess("connect", "--trace", "--wait", "-1", "--ping-interval", "0.2", url,
                                input=b"")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    assert '< PING fin 3 B "srv"' in lines
    assert '> PONG fin 3 B "srv"' in lines
    assert '< TEXT more 4 B "frag"' in lines
    assert '< CONT more 6 B "mented"' in lines
    assert "< CONT fin 0 B" in lines
    assert any(line.startswith("> PING fin 4 B ") for line in lines)
    assert any(line.startswith("< PONG fin 4 B ") for line in lines)
    assert '< CLOSE fin 5 B 1000 (normal closure) "bye"' in lines
    assert '> CLOSE fin 5 B 1000 (normal closure) "bye"' in lines
    assert proc.stdout == b"fragmented\n"
    # Wire order (issue 10: the PONG was printed before the PING it answers).
    assert lines.index('< PING fin 3 B "srv"') < lines.index('> PONG fin 3 B "srv"')
    assert (lines.index('< CLOSE fin 5 B 1000 (normal closure) "bye"')
            < lines.index('> CLOSE fin 5 B 1000 (normal closure) "bye"'))


def test_no_trace_without_the_flag(lib_echo_url: str) -> None:
    proc = run_wstool_inprocess("connect", lib_echo_url, input=b"hi\n")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == b"hi\n"
    assert "TEXT" not in proc.stderr
