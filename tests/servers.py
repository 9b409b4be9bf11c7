"""Real peers for client tests: handlers for the websockets library's server,
and tiny HTTP-CONNECT and SOCKS5 proxies. All bind 127.0.0.1 port 0."""

from __future__ import annotations

import asyncio
import json
import socket
import struct
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.http11 import Request, Response


async def reflect_headers(ws: ServerConnection) -> None:
    """First message: the request line, headers and negotiated subprotocol as JSON."""
    request = ws.request
    assert request is not None
    await ws.send(
        json.dumps(
            {
                "path": request.path,
                "headers": {k.lower(): v for k, v in request.headers.raw_items()},
                "subprotocol": ws.subprotocol,
            }
        )
    )
    async for message in ws:
        await ws.send(message)


def reject_403(ws: ServerConnection, request: Request) -> Response:
    return ws.respond(403, "Forbidden: bad token\nsecond line\n")


async def close_4001(ws: ServerConnection) -> None:
    await ws.close(4001, "custom reason")


async def push_then_idle(ws: ServerConnection) -> None:
    """Push three messages, record what comes back, never close by itself."""
    for i in range(3):
        await ws.send(f"push {i}")
    async for message in ws:
        ws.received.append(message)  # type: ignore[attr-defined]  # set by the test


async def send_big(ws: ServerConnection) -> None:
    await ws.send("x" * 2000)
    await ws.wait_closed()


async def slow_replies(ws: ServerConnection) -> None:
    """Reply to each message twice, the second 0.2 s later (tests --wait)."""
    async for message in ws:
        await ws.send(message)
        await asyncio.sleep(0.2)
        await ws.send(f"late {message!r}" if isinstance(message, bytes) else f"late {message}")


async def start_silent_tcp(host: str = "127.0.0.1") -> tuple[asyncio.Server, int]:
    """Accepts TCP and never answers: a handshake that never completes."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()
        writer.close()

    server = await asyncio.start_server(handle, host, 0)
    return server, server.sockets[0].getsockname()[1]


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


class ProxyLog:
    def __init__(self) -> None:
        self.requests: list[str] = []


async def start_http_proxy(log: ProxyLog) -> tuple[asyncio.Server, int]:
    """A minimal HTTP CONNECT proxy that only tunnels to 127.0.0.1."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        request_line = head.split(b"\r\n", 1)[0].decode()
        log.requests.append(request_line)
        method, authority, _ = request_line.split(" ", 2)
        host, _, port = authority.rpartition(":")
        if method != "CONNECT" or host not in ("127.0.0.1", "localhost"):
            writer.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
            writer.close()
            return
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", int(port))
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def start_socks5_proxy(log: ProxyLog) -> tuple[asyncio.Server, int]:
    """A minimal SOCKS5 proxy (RFC 1928, no auth, CONNECT only, loopback only)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        _ver, nmethods = await reader.readexactly(2)
        await reader.readexactly(nmethods)
        writer.write(b"\x05\x00")
        _ver, cmd, _rsv, atyp = await reader.readexactly(4)
        if atyp == 1:
            host = socket.inet_ntoa(await reader.readexactly(4))
        elif atyp == 3:
            (length,) = await reader.readexactly(1)
            host = (await reader.readexactly(length)).decode()
        else:
            writer.close()
            return
        (port,) = struct.unpack("!H", await reader.readexactly(2))
        log.requests.append(f"CONNECT {host}:{port}")
        if cmd != 1 or host not in ("127.0.0.1", "localhost"):
            writer.write(b"\x05\x02\x00\x01" + bytes(6))
            writer.close()
            return
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"\x05\x00\x00\x01" + socket.inet_aton("127.0.0.1") + struct.pack("!H", 0))
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


def port_of(server: Any) -> int:
    return int(next(iter(server.sockets)).getsockname()[1])
