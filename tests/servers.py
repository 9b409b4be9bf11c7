"""Real peers for client tests: handlers for the websockets library's server,
and tiny HTTP-CONNECT and SOCKS5 proxies. All bind 127.0.0.1 port 0."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.http11 import Request, Response

from tests.conftest import scaled


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


class ServeEcho:
    """`python -m wstool serve-echo --port 0 ARGS`; stderr collected in a thread."""

    def __init__(
        self, *args: str, env: dict[str, str] | None = None, command: str = "serve-echo",
        stdin: Any = subprocess.DEVNULL, prefix: tuple[str, ...] = (),
    ) -> None:
        # PREFIX runs it through another command (e.g. nsenter into a network namespace).
        # Its own $TMPDIR, so close() can check what it left behind (--self-signed).
        self.tmpdir = Path(tempfile.mkdtemp(prefix="wstool-test-server-"))
        self.proc = subprocess.Popen(
            [*prefix, sys.executable, "-m", "wstool", command, "--port", "0", *args],
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, "NO_COLOR": "1", "TMPDIR": str(self.tmpdir), **(env or {})},
        )
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self._stdout = b""
        self._stdout_done = threading.Event()
        threading.Thread(target=self._read_stderr, daemon=True).start()
        threading.Thread(target=self._read_stdout, daemon=True).start()
        line = self.wait_for("listening on ")
        match = re.search(r"listening on (\S+)", line)
        assert match, line
        self.url = match.group(1)
        port = re.search(r":(\d+)/", self.url)
        self.port = int(port.group(1)) if port else 0

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            with self._cond:
                self.lines.append(raw.decode(errors="replace").rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self.lines.append("<EOF>")
            self._cond.notify_all()

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        self._stdout = self.proc.stdout.read()
        self._stdout_done.set()

    def wait_for(self, fragment: str, timeout: float = 15) -> str:
        with self._cond:
            ok = self._cond.wait_for(
                lambda: any(fragment in line or line == "<EOF>" for line in self.lines),
                scaled(timeout),
            )
            assert ok, f"no {fragment!r} on stderr: {self.lines}"
            line = next(line for line in self.lines if fragment in line or line == "<EOF>")
            assert line != "<EOF>", f"exited before {fragment!r}: {self.lines}"
            return line

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(scaled(15))
        finally:
            self.wait_for_eof()

    def close(self) -> None:
        """End it at a test's end: SIGTERM first, so it cleans up after itself (the
        --self-signed certificate directory in $TMPDIR), SIGKILL only if that fails."""
        killed = False
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(scaled(10))
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
                killed = True
        left = sorted(p.name for p in self.tmpdir.iterdir())
        shutil.rmtree(self.tmpdir, ignore_errors=True)
        assert killed or not left, f"the server left {left} in its $TMPDIR"

    def wait_for_eof(self) -> None:
        """Both pipes read to the end (stderr's lines and the whole stdout)."""
        with self._cond:
            self._cond.wait_for(lambda: "<EOF>" in self.lines, scaled(10))
        self._stdout_done.wait(scaled(10))

    @property
    def stderr(self) -> str:
        return "\n".join(self.lines)

    @property
    def stdout(self) -> bytes:
        return self._stdout


async def greeting_echo(ws: ServerConnection) -> None:
    """Says "welcome" first, then echoes each message after 1 ms of work (issue 10:
    the greeting counts as a reply; the last echo must not be cut off)."""
    await ws.send("welcome")
    async for message in ws:
        await asyncio.sleep(0.001)
        await ws.send(message)


async def slow_echo(ws: ServerConnection) -> None:
    """Echoes each message after 1 s: later than a short -w."""
    async for message in ws:
        await asyncio.sleep(1)
        await ws.send(message)


class RawPeer:
    """What a raw TCP peer received, and when (tests wait on it, not on sleeps)."""

    def __init__(self) -> None:
        self.received = bytearray()
        self.event = threading.Event()

    async def record(self, reader: asyncio.StreamReader) -> None:
        """Keep what READER gives until its end."""
        while data := await reader.read(65536):
            self.received += data
            self.event.set()

    def wait_for(self, fragment: bytes, timeout: float = 10) -> None:
        deadline = scaled(timeout)
        while fragment not in self.received:
            assert self.event.wait(deadline), f"no {fragment!r} in {bytes(self.received)!r}"
            self.event.clear()


async def start_recording_silent_tcp(peer: RawPeer) -> tuple[asyncio.Server, int]:
    """Accepts TCP, records what comes (an HTTP request, a TLS ClientHello), never
    answers: a handshake that never completes."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await peer.record(reader)
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def start_no_close_answer(peer: RawPeer) -> tuple[asyncio.Server, int]:
    """Completes the opening handshake, sends "ready", then records what comes and
    never answers anything: not our close frame either (RFC 6455 §7.1.1 wait)."""
    import base64
    import hashlib

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        key = next(line.split(b":", 1)[1].strip() for line in head.split(b"\r\n")
                   if line.lower().startswith(b"sec-websocket-key:"))
        accept = base64.b64encode(hashlib.sha1(
            key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
        writer.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"
                     b"\x81\x05ready")
        await peer.record(reader)
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


# Issue 11: servers for --expect, --capture and scenario files.

AUTH_TOKEN_PREFIX = "tok-"


async def auth_then_subscribe(ws: ServerConnection) -> None:
    """`{"op":"auth","user":U}` -> `{"type":"authed","token":...}` (a new token each
    connection); `{"op":"sub","token":T,"channel":C}` with that token ->
    `{"type":"subscribed","channel":C}` and three `{"type":"tick","channel":C,"n":i}`;
    a wrong or missing token -> `{"type":"error","reason":"bad token"}`."""
    token = AUTH_TOKEN_PREFIX + os.urandom(4).hex()
    async for message in ws:
        request = json.loads(message)
        if request.get("op") == "auth":
            await ws.send(json.dumps({"type": "authed", "user": request.get("user"),
                                      "token": token}))
        elif request.get("op") == "sub" and request.get("token") == token:
            channel = request.get("channel")
            await ws.send(json.dumps({"type": "subscribed", "channel": channel}))
            for i in range(3):
                await ws.send(json.dumps({"type": "tick", "channel": channel, "n": i}))
        else:
            await ws.send(json.dumps({"type": "error", "reason": "bad token"}))


async def never_answers(ws: ServerConnection) -> None:
    """Reads everything, answers nothing, never closes by itself."""
    async for _message in ws:
        pass


async def noise_then_json(ws: ServerConnection) -> None:
    """On any message: non-JSON text, a binary message, then JSON."""
    async for _message in ws:
        await ws.send("not json {")
        await ws.send(b"\x00\x01binary")
        await ws.send("[1, 2")
        await ws.send(json.dumps({"type": "data", "value": 42}))


async def close_after_first(ws: ServerConnection) -> None:
    """Answers the first message with `first`, then closes with 1000."""
    await ws.recv()
    await ws.send("first")
    await ws.close(1000, "bye")


async def lib_echo_like(ws: ServerConnection) -> None:
    async for message in ws:
        await ws.send(message)


async def describe_binary(ws: ServerConnection) -> None:
    """Answers a binary message with the text `binary:HEX`, text with itself."""
    async for message in ws:
        await ws.send(f"binary:{message.hex()}" if isinstance(message, bytes) else message)
