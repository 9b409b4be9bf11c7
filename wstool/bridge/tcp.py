"""WebSocket <-> TCP (issue 16): ``listen --to-tcp`` and ``connect --from-tcp``.

``listen --to-tcp HOST:PORT`` (the websockify model): :class:`TcpBridgeApp` is an
``App`` over ``server/core.py``, so every server option applies (TLS, origins,
auth, limits, compression, logs). Each client that completes its handshake gets a
new TCP connection to HOST:PORT:

* client -> TCP: each message's payload is written as it is (binary as bytes, text
  as its UTF-8); messages that arrive while the TCP connection is being made wait
  for it (the client's socket is not read meanwhile);
* TCP -> client: each chunk read is one binary message;
* the TCP side closes (EOF) -> close 1000 (the client still gets every byte read
  before); it resets -> close 1011 with the error; it cannot be reached (refused,
  unreachable, no answer within --open-timeout) -> that client gets close 1011
  with the reason, one line is logged, and the server carries on;
* the client closes or drops -> TCP half-close (``shutdown(SHUT_WR)``: the
  service reads everything the client sent, then EOF); what the service still
  sends is read and dropped until it closes, or --close-timeout, then the socket
  is closed;
* backpressure both ways: a TCP service that does not read pauses reading from
  its client, and a client that does not read pauses reading from its service.
  Nothing is buffered beyond the transports' high-water marks.

``connect --from-tcp [HOST:]PORT URL``: accept local TCP connections (default
host 127.0.0.1) and bridge each to its own :class:`~wstool.client.run.ClientRun`
against URL (every connect option applies: headers, TLS, subprotocols,
compression, proxies, -x): :class:`TcpInput` is the run's input source (each
chunk read from the local connection is one binary message) and
:class:`FromTcpFrontEnd` its front-end (each message received is written to the
local connection). The local side's EOF is the run's end of input: nothing more
is sent, what comes back is still written until the server closes or nothing
came for ``-w`` seconds (``-w -1``: until the server closes); then the WebSocket
is closed (1000) and the local connection half-closed, then closed. The server's
close ends the local connection the same way.

``--text`` (both commands) is for line-based services (SMTP, Redis' inline
protocol, a chat): the TCP byte stream is cut at each ``\\n``, and each line,
without its ``\\n`` (and a ``\\r`` before it), is one **text** message; a line that
is not UTF-8 goes as a binary message instead (no byte is lost), a line longer
than ``MAX_LINE_BYTES`` is sent in pieces, and a last line without ``\\n`` is sent
at EOF. The other way, each **text** message is written followed by ``\\n``;
binary messages are written as they are.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import signal
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, cast

from wstool.client.run import ClientFrontEnd, ClientRun, InputSource
from wstool.config import (
    ClientRunConfig,
    ConnectConfig,
    OutputConfig,
    ServerConfig,
    TcpBridgeConfig,
)
from wstool.errors import ExitStatus, WstoolError
from wstool.events import Closed, Event, Notice, Opened
from wstool.protocol.echo import OP_BINARY, OP_TEXT
from wstool.server.core import App, ServerConnection, ServerSideProtocol, WebSocketServer
from wstool.server.log import ServerLog, prepared_tls
from wstool.term.env import Environment
from wstool.term.render import escape
from wstool.term.signals import handle_signals

if TYPE_CHECKING:
    import collections

# --text: the longest line sent as one message; a longer one goes in pieces.
MAX_LINE_BYTES = 1024 * 1024
# connect --from-tcp: stop reading the local connection once this much waits to be sent.
READ_AHEAD_BYTES = 256 * 1024
# RFC 6455 §5.5: a close frame's payload is at most 125 bytes (2 for the code).
_MAX_REASON_BYTES = 123


def close_reason(text: str) -> str:
    """TEXT cut to fit a close frame (at a character boundary)."""
    data = text.encode()
    if len(data) <= _MAX_REASON_BYTES:
        return text
    return data[: _MAX_REASON_BYTES - 3].decode(errors="ignore") + "..."


def _oserror_text(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, OSError) and exc.errno:
        # asyncio's "Connect call failed (...)" hides the cause: the errno's text.
        return os.strerror(exc.errno)
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class LineSplitter:
    """--text: a byte stream cut into lines, each one message (see the module doc)."""

    def __init__(self) -> None:
        self._buffer = b""

    @staticmethod
    def _message(line: bytes) -> tuple[int, bytes]:
        if line.endswith(b"\r"):
            line = line[:-1]
        try:
            line.decode()
        except UnicodeDecodeError:
            return OP_BINARY, line
        return OP_TEXT, line

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        buffer = self._buffer + data if self._buffer else data
        *lines, rest = buffer.split(b"\n")
        out = [self._message(line) for line in lines]
        while len(rest) > MAX_LINE_BYTES:
            # A cut inside a UTF-8 sequence makes both pieces binary: no byte is lost.
            out.append(self._message(rest[:MAX_LINE_BYTES]))
            rest = rest[MAX_LINE_BYTES:]
        self._buffer = rest
        return out

    def finish(self) -> list[tuple[int, bytes]]:
        rest, self._buffer = self._buffer, b""
        return [self._message(rest)] if rest else []


# listen --to-tcp


class _BridgeProtocol(ServerSideProtocol):
    """Client messages go to the TCP link, not back to the client."""

    echo_messages = False
    link: _TcpLink

    def on_message(self, opcode: int, payload: bytes) -> None:
        self.link.from_client(opcode, payload)


class _TcpLink(asyncio.Protocol):
    """The TCP side of one bridged client (see the module doc for the rules)."""

    transport: asyncio.Transport | None = None

    def __init__(self, app: TcpBridgeApp, conn: ServerConnection) -> None:
        self.app = app
        self.conn = conn
        self.text = app.config.text
        self.lines = LineSplitter() if self.text else None
        self.pending: list[bytes] = []  # client messages before the TCP connection
        self.tcp_eof = False
        self.ws_gone = False
        self._timer: asyncio.TimerHandle | None = None

    # From the client

    def from_client(self, opcode: int, payload: bytes) -> None:
        if self.text and opcode == OP_TEXT:
            payload += b"\n"
        transport = self.transport
        if transport is None:
            self.pending.append(payload)
        elif not transport.is_closing():
            transport.write(payload)

    def client_gone(self) -> None:
        """The WebSocket connection is closed: half-close TCP, then close it."""
        self.ws_gone = True
        transport = self.transport
        if transport is None or transport.is_closing():
            return  # still connecting: _connect() closes it
        if self.tcp_eof or not transport.can_write_eof():
            transport.close()
            return
        transport.write_eof()
        transport.resume_reading()  # read (and drop) until its EOF
        self._timer = self.app.server.loop.call_later(
            self.app.server.config.close_timeout_s, transport.abort)

    # asyncio.Protocol: the TCP side

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = t = cast(asyncio.Transport, transport)
        self.app.live.add(self)
        if self.ws_gone:
            t.close()
            return
        self.conn.transport.resume_reading()  # paused while connecting
        if self.pending:
            t.write(b"".join(self.pending))
            self.pending = []

    def data_received(self, data: bytes) -> None:
        if self.ws_gone:
            return
        conn = self.conn
        protocol = conn.protocol
        lines = self.lines
        if lines is None:
            protocol.send_message(OP_BINARY, data)
        else:
            for opcode, line in lines.feed(data):
                protocol.send_message(opcode, line)
        conn.flush()

    def eof_received(self) -> bool:
        self.tcp_eof = True
        if self.ws_gone:
            return False  # the half-close is answered: close
        if self.lines is not None:
            for opcode, line in self.lines.finish():
                self.conn.protocol.send_message(opcode, line)
        self.conn.close(1000, "")
        # Keep our side open: what the client sends before it sees our Close still goes.
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self.app.live.discard(self)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.ws_gone:
            return
        self.conn.transport.resume_reading()  # if the service had paused it: the close reply
        if exc is not None:
            where = _address(self.app.config.host, self.app.config.port)
            self.conn.close(1011, close_reason(f"tcp {where}: {_oserror_text(exc)}"))
        else:
            self.conn.close(1000, "")

    def pause_writing(self) -> None:
        # The service does not read: stop reading from its client.
        self.conn.transport.pause_reading()

    def resume_writing(self) -> None:
        if not self.ws_gone:
            self.conn.transport.resume_reading()


class TcpBridgeApp(App):
    """``listen --to-tcp``: each client bridged to a new TCP connection."""

    def __init__(self, config: TcpBridgeConfig) -> None:
        self.config = config
        self.links: dict[ServerConnection, _TcpLink] = {}  # by open WebSocket
        self.live: set[_TcpLink] = set()  # TCP connections not yet lost (half-closed too)
        self._tasks: set[asyncio.Task[None]] = set()

    def protocol_class(self) -> type[ServerSideProtocol]:
        return _BridgeProtocol

    def configure(self, conn: ServerConnection) -> None:
        link = _TcpLink(self, conn)
        cast(_BridgeProtocol, conn.protocol).link = link

    def opened(self, conn: ServerConnection) -> None:
        link = cast(_BridgeProtocol, conn.protocol).link
        self.links[conn] = link
        # Frames that came with the request are parsed right after this call; the
        # rest waits in the socket until the TCP connection is made.
        conn.transport.pause_reading()
        task = asyncio.ensure_future(self._connect(conn, link))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _connect(self, conn: ServerConnection, link: _TcpLink) -> None:
        cfg = self.config
        server = self.server
        try:
            coro = server.loop.create_connection(lambda: link, cfg.host, cfg.port)
            await asyncio.wait_for(coro, server.config.open_timeout_s)
        except (OSError, TimeoutError) as exc:
            reason = f"cannot connect to {_address(cfg.host, cfg.port)}: {_oserror_text(exc)}"
            server.sink(Notice(f"[{conn.client_id}] {escape(reason)}", ts=time.monotonic()))
            conn.transport.resume_reading()  # for the client's close reply
            conn.close(1011, close_reason(reason))

    def closed(self, conn: ServerConnection) -> None:
        link = self.links.pop(conn, None)
        if link is not None:
            link.client_gone()

    def writing_paused(self, conn: ServerConnection) -> None:
        link = self.links.get(conn)
        if link is not None and link.transport is not None and not link.ws_gone:
            link.transport.pause_reading()

    def writing_resumed(self, conn: ServerConnection) -> None:
        link = self.links.get(conn)
        if link is not None and link.transport is not None and not link.ws_gone:
            link.transport.resume_reading()

    async def stop(self) -> None:
        """At shutdown: no connect left in flight, no TCP socket left open."""
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task
        for link in list(self.live):
            if link.transport is not None:
                link.transport.abort()
        await asyncio.sleep(0)  # their connection_lost


async def run_to_tcp(
    env: Environment,
    server_cfg: ServerConfig,
    bridge_cfg: TcpBridgeConfig,
    out_cfg: OutputConfig,
) -> ExitStatus:
    """``wstool listen --to-tcp``: run until SIGINT/SIGTERM, then close all with 1001."""
    from wstool.server.http2 import http2_setup

    setup = http2_setup(server_cfg)  # --http2: h2 missing is a usage error before anything
    log = ServerLog(env, out_cfg)
    stop = asyncio.Event()
    app = TcpBridgeApp(bridge_cfg)
    with (
        handle_signals({signal.SIGINT: stop.set, signal.SIGTERM: stop.set}),
        prepared_tls(server_cfg, log) as tls,
    ):
        server = WebSocketServer(server_cfg, app, log, trace=out_cfg.verbose >= 2,
                                 ssl_context=tls.context)
        if setup is not None:
            setup(server)
        await server.start()
        for notice in tls.trust_notices(server.urls):
            log(notice)
        mode = " (--text: lines as text messages)" if bridge_cfg.text else ""
        log(Notice(f"each client is bridged to tcp "
                   f"{_address(bridge_cfg.host, bridge_cfg.port)}{mode}"))
        try:
            await stop.wait()
        finally:
            await server.shutdown(1001, "going away")
            await app.stop()
            log(server.summary())
    return ExitStatus.OK


# connect --from-tcp


class _LocalTcp(asyncio.Protocol):
    """One accepted local connection: read by TcpInput, written by FromTcpFrontEnd."""

    transport: asyncio.Transport

    def __init__(self, bridge: FromTcpBridge) -> None:
        self.bridge = bridge
        self.client_id = 0
        self.chunks: list[bytes] = []
        self.buffered = 0
        self.eof = False
        self.lost = False
        self.finished = False
        self.run: ClientRun | None = None
        self._reading_paused = False
        self._waiter: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = None

    def _wake(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def wait_readable(self) -> None:
        if self.chunks or self.eof:
            return
        self._waiter = asyncio.get_running_loop().create_future()
        await self._waiter

    def take(self) -> bytes:
        data = b"".join(self.chunks) if len(self.chunks) != 1 else self.chunks[0]
        self.chunks = []
        self.buffered = 0
        if self._reading_paused and not self.finished:
            self._reading_paused = False
            self.transport.resume_reading()
        return data

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.bridge.accepted(self)

    def data_received(self, data: bytes) -> None:
        if self.finished:
            return  # the WebSocket is gone: read and drop until EOF
        self.chunks.append(data)
        self.buffered += len(data)
        if self.buffered >= READ_AHEAD_BYTES and not self._reading_paused:
            self._reading_paused = True
            self.transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake()
        # Keep our side open for what the server still sends back, unless we are done.
        return not self.finished

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = self.lost = True
        if self._timer is not None:
            self._timer.cancel()
        self._wake()
        run = self.run
        if run is not None and not self.finished:
            run.stop(discard_outcome=True)  # nobody left to write to
        self.bridge.gone(self)

    def pause_writing(self) -> None:
        run = self.run
        if run is not None and run.session is not None:
            run.session.pause_reading()

    def resume_writing(self) -> None:
        run = self.run
        if run is not None and run.session is not None:
            run.session.resume_reading()

    # The end

    def finish(self, close_timeout_s: float) -> None:
        """The WebSocket is closed: half-close, drop what still comes, then close."""
        if self.finished:
            return
        self.finished = True
        transport = self.transport
        if transport.is_closing():
            return
        if self.eof or not transport.can_write_eof():
            transport.close()
            return
        transport.write_eof()
        if self._reading_paused:
            self._reading_paused = False
            transport.resume_reading()
        self._timer = asyncio.get_running_loop().call_later(close_timeout_s, transport.abort)


class TcpInput(InputSource):
    """The run's input: what the local connection sends (see the module doc)."""

    def __init__(self, local: _LocalTcp, text: bool) -> None:
        self.local = local
        self.lines = LineSplitter() if text else None

    async def read_into(self, out: collections.deque[str | bytes]) -> bool:
        local = self.local
        await local.wait_readable()
        if local.chunks:
            data = local.take()
            if self.lines is None:
                out.append(data)
            else:
                out.extend(_as_messages(self.lines.feed(data)))
            return True
        if self.lines is not None:
            out.extend(_as_messages(self.lines.finish()))
        return False


def _as_messages(lines: list[tuple[int, bytes]]) -> list[str | bytes]:
    return [line.decode() if opcode == OP_TEXT else line for opcode, line in lines]


class FromTcpFrontEnd(ClientFrontEnd):
    """What the run receives goes to the local connection; events to the log."""

    def __init__(self, local: _LocalTcp, text: bool, log: Callable[[str], None],
                 verbose: int, close_timeout_s: float) -> None:
        self.local = local
        self.text = text
        self.log = log
        self.verbose = verbose
        self.close_timeout_s = close_timeout_s

    def on_message(self, data: str | bytes) -> None:
        transport = self.local.transport
        if self.local.finished or transport.is_closing():
            return
        if isinstance(data, str):
            transport.write(data.encode() + b"\n" if self.text else data.encode())
        else:
            transport.write(data)

    def on_event(self, event: Event) -> None:
        cid = self.local.client_id
        if isinstance(event, Notice):
            self.log(f"[{cid}] {event.text}")
        elif isinstance(event, Opened) and self.verbose:
            self.log(f"[{cid}] bridged to {escape(event.url)}")
        elif isinstance(event, Closed):
            self.local.finish(self.close_timeout_s)
            if self.verbose:
                reason = f" {escape(event.reason)!r}" if event.reason else ""
                self.log(f"[{cid}] closed: {event.code}{reason}")


class FromTcpBridge:
    """``connect --from-tcp``: the accepting socket and one ClientRun per connection."""

    def __init__(self, env: Environment, connect_cfg: ConnectConfig, run_cfg: ClientRunConfig,
                 bridge_cfg: TcpBridgeConfig, out_cfg: OutputConfig) -> None:
        self.env = env
        self.connect_cfg = connect_cfg
        # A byte stream's messages are not requests: "a reply to each" ends nothing.
        self.run_cfg = run_cfg._replace(replies_end_input=False)
        self.bridge_cfg = bridge_cfg
        self.out_cfg = out_cfg
        self.locals: set[_LocalTcp] = set()
        self.tasks: set[asyncio.Task[None]] = set()
        self._next_id = 0
        self.url = ""

    def log(self, line: str) -> None:
        self.env.write_stderr_line(f"wstool: {line}")

    def accepted(self, local: _LocalTcp) -> None:
        self._next_id += 1
        local.client_id = self._next_id
        self.locals.add(local)
        if self.out_cfg.verbose:
            peer = local.transport.get_extra_info("peername")
            where = _address(peer[0], peer[1]) if isinstance(peer, tuple) else "?"
            self.log(f"[{local.client_id}] tcp connection from {where}")
        task = asyncio.ensure_future(self._bridge(local))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def gone(self, local: _LocalTcp) -> None:
        self.locals.discard(local)

    async def _bridge(self, local: _LocalTcp) -> None:
        text = self.bridge_cfg.text
        run = ClientRun(self.connect_cfg, self.run_cfg, input_source=TcpInput(local, text),
                        trace=self.out_cfg.trace)
        local.run = run
        front = FromTcpFrontEnd(local, text, self.log, self.out_cfg.verbose,
                                self.connect_cfg.close_timeout_s)
        try:
            await run.run(front)
        except WstoolError as exc:
            self.log(f"[{local.client_id}] error: {exc.message}")
        finally:
            local.finish(self.connect_cfg.close_timeout_s)

    async def start(self) -> str:
        cfg = self.bridge_cfg
        loop = asyncio.get_running_loop()
        try:
            self.server = await loop.create_server(
                lambda: _LocalTcp(self), cfg.host, cfg.port, reuse_address=True)
        except OSError as exc:
            hint = None
            if exc.errno == errno.EADDRINUSE:
                hint = "choose another --from-tcp port, or 0 for a free one"
            raise WstoolError(
                f"cannot listen on {_address(cfg.host, cfg.port)}: {_oserror_text(exc)}",
                hint=hint) from None
        host, port = self.server.sockets[0].getsockname()[:2]
        self.url = f"tcp://{_address(host, port)}"
        return self.url

    async def stop(self) -> None:
        """Stop accepting; close every bridged WebSocket with 1001, wait for them."""
        self.server.close()
        for local in list(self.locals):
            if local.run is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(local.run.close(1001, "going away"),
                                           self.connect_cfg.close_timeout_s)
        if self.tasks:
            await asyncio.wait(set(self.tasks), timeout=self.connect_cfg.close_timeout_s)
        for task in list(self.tasks):
            task.cancel()
        for local in list(self.locals):
            local.transport.abort()


async def run_from_tcp(
    env: Environment,
    connect_cfg: ConnectConfig,
    run_cfg: ClientRunConfig,
    bridge_cfg: TcpBridgeConfig,
    out_cfg: OutputConfig,
) -> ExitStatus:
    """``wstool connect --from-tcp``: run until SIGINT/SIGTERM (exit 0)."""
    bridge = FromTcpBridge(env, connect_cfg, run_cfg, bridge_cfg, out_cfg)
    stop = asyncio.Event()
    with handle_signals({signal.SIGINT: stop.set, signal.SIGTERM: stop.set}):
        url = await bridge.start()
        mode = " (--text: lines as text messages)" if bridge_cfg.text else ""
        bridge.log(f"listening on {url}; each connection is bridged to "
                   f"{escape(connect_cfg.target.url)}{mode}")
        try:
            await stop.wait()
        finally:
            await bridge.stop()
    return ExitStatus.OK
