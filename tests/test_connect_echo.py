"""`wstool connect --echo` mirrors with serve-echo's strict engine (issue 4).

The peer is the websockets library's server; for the strictness checks its
handler writes hand-built (unmasked, server-side) frames straight to the TCP
transport, bypassing the library.
"""

from __future__ import annotations

import struct
import threading
from typing import Any

from tests.conftest import ServerThread, run_wstool_inprocess, scaled, start_websockets_server
from wstool.errors import ExitStatus


def server_frame(opcode: int, payload: bytes, *, fin: bool = True, rsv: int = 0) -> bytes:
    head = bytes([(0x80 if fin else 0) | (rsv << 4) | opcode])
    n = len(payload)
    if n < 126:
        head += bytes([n])
    else:
        head += bytes([126]) + struct.pack("!H", n)
    return head + payload


class Recorder:
    def __init__(self) -> None:
        self.received: list[Any] = []
        self.close_code: int | None = None
        self.closed = threading.Event()

    def record_close(self, ws: Any) -> None:
        self.close_code = ws.close_code
        self.closed.set()

    def wait_closed(self) -> None:
        """The server's side of the close, which can come after our client returns."""
        assert self.closed.wait(scaled(10)), "the server never saw the connection close"


def test_echo_mirrors_types_and_fragmented_messages(server_thread: ServerThread) -> None:
    rec = Recorder()

    async def handler(ws: Any) -> None:
        await ws.send("text ü")
        await ws.send(b"\x00\xffbin")
        await ws.send(["frag", "mented"])
        for _ in range(3):
            rec.received.append(await ws.recv())
        await ws.close(1000)

    _s, url = start_websockets_server(server_thread, handler)
    proc = run_wstool_inprocess("connect", "--echo", "-w", "-1", url)
    assert proc.returncode == 0, proc.stderr
    assert rec.received == ["text ü", b"\x00\xffbin", "fragmented"]
    assert proc.stdout.splitlines()[0] == "text ü".encode()


def test_echo_before_a_later_protocol_error(server_thread: ServerThread) -> None:
    rec = Recorder()

    async def handler(ws: Any) -> None:
        # A good message and, in the same write, a frame with RSV1 set
        # (no extension negotiated: --no-compress).
        ws.transport.write(server_frame(0x1, b"first") + server_frame(0x1, b"bad", rsv=4))
        rec.received.append(await ws.recv())
        await ws.wait_closed()
        rec.record_close(ws)

    _s, url = start_websockets_server(server_thread, handler, compression=None)
    proc = run_wstool_inprocess("connect", "--echo", "--no-compress", "-w", "-1", url)
    rec.wait_closed()
    assert rec.received == ["first"]
    assert rec.close_code == 1002
    assert proc.returncode == ExitStatus.PROTOCOL_ERROR, proc.stderr


def test_invalid_utf8_mid_frame_fails_at_once(server_thread: ServerThread) -> None:
    rec = Recorder()

    async def handler(ws: Any) -> None:
        frame = server_frame(0x1, b"ok \xf4\x90\x80\x80" + b"z" * 30)
        ws.transport.write(frame[:8])  # header + 6 payload bytes; the rest never comes
        await ws.wait_closed()
        rec.record_close(ws)

    _s, url = start_websockets_server(server_thread, handler, compression=None)
    proc = run_wstool_inprocess("connect", "--echo", "--no-compress", "-w", "-1", url)
    rec.wait_closed()
    assert rec.close_code == 1007
    assert proc.returncode == ExitStatus.PROTOCOL_ERROR, proc.stderr
    assert "UTF-8" in proc.stderr


def test_close_between_fragments_is_a_clean_close(server_thread: ServerThread) -> None:
    rec = Recorder()

    async def handler(ws: Any) -> None:
        ws.transport.write(server_frame(0x1, b"part", fin=False)
                           + server_frame(0x8, struct.pack("!H", 1000) + b"bye"))
        await ws.wait_closed()
        rec.record_close(ws)

    _s, url = start_websockets_server(server_thread, handler, compression=None)
    proc = run_wstool_inprocess("connect", "--echo", "--no-compress", "-w", "-1", url)
    rec.wait_closed()
    assert rec.close_code == 1000  # our answer to its Close, not 1002
    assert proc.returncode == 0, proc.stderr


def test_echo_with_compression(server_thread: ServerThread) -> None:
    rec = Recorder()

    async def handler(ws: Any) -> None:
        for i in range(20):
            await ws.send("compressible " * i)
        for _ in range(20):
            rec.received.append(await ws.recv())
        await ws.close()

    _s, url = start_websockets_server(server_thread, handler)
    proc = run_wstool_inprocess("connect", "--echo", "-w", "-1", url)
    assert proc.returncode == 0, proc.stderr
    assert rec.received == ["compressible " * i for i in range(20)]


def test_echo_in_the_repl_uses_the_engine() -> None:
    # connect --echo on a terminal: the REPL's session echoes with the same
    # engine, so the Close-between-fragments case is a clean close here too.
    import asyncio

    from tests.test_repl import repl_on, server
    from wstool.config import ClientRunConfig

    async def handler(ws: Any, peer: Any) -> None:
        await ws.send("mirror me")
        peer.received.append(await ws.recv())
        ws.transport.write(server_frame(0x1, b"part", fin=False)
                           + server_frame(0x8, struct.pack("!H", 1000)))

    async def go() -> Any:
        async with server(handler, compression=None) as (url, peer), repl_on(
            url, run=ClientRunConfig(echo=True)
        ) as d:
            await d.see("mirror me")
            status = await d.result()
            return status, peer.received, peer.close_code

    status, received, close_code = asyncio.run(go())
    assert received == ["mirror me"]
    assert close_code == 1000
    assert status == ExitStatus.OK
