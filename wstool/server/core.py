"""Server core: serve-echo, listen, and the in-process echo behind ``connect --demo``.

One asyncio ``Protocol`` per TCP connection drives a sans-I/O
:class:`~wstool.protocol.echo.EchoServerProtocol` (no coroutine per connection): bytes in,
``receive_data()``, every complete message handled — echoed by default — inside
that same call, ``data_to_send()`` written once. The opening handshake is the
library's ``ServerProtocol.accept()`` with wstool's checks in front of it
(plain HTTP -> 426 or ``/health`` 200, origin -> 403, auth -> 401, limit -> 503).

The core never prints and never exits: it reports ``ServerEvent`` records to a
sink (``server_events.py``) and raises :class:`~wstool.errors.WstoolError` on start-up
failures. What a connection does with its messages is an ``App``: ``EchoApp``
here; ``listen`` brings its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import errno
import fnmatch
import hmac
import logging
import os
import re
import secrets
import socket
import ssl
import time
import urllib.parse
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from websockets.datastructures import Headers
from websockets.exceptions import InvalidHeader, PayloadTooBig, ProtocolError
from websockets.extensions.permessage_deflate import PerMessageDeflate
from websockets.frames import Frame, Opcode
from websockets.headers import parse_authorization_basic
from websockets.http11 import Request, Response
from websockets.protocol import OPEN
from websockets.server import ServerProtocol
from websockets.typing import Origin, Subprotocol

from wstool import __version__
from wstool.config import COMPRESS_THRESHOLD_BYTES, EchoConfig, ServerConfig
from wstool.errors import UsageError, WstoolError
from wstool.events import FrameSeen, Handshake, Ping, Pong
from wstool.protocol import deflate, internals
from wstool.protocol.echo import (
    OP_BINARY,
    OP_TEXT,
    SHORT_ECHO_HEADERS,
    EchoServerProtocol,
    is_utf8,
    unmask,
)
from wstool.server import static
from wstool.server.events import (
    ClientConnected,
    ClientDisconnected,
    ClientMessage,
    ClientRejected,
    ServerEventSink,
    ServerListening,
    ServerSummary,
)

SERVER_HEADER = f"wstool/{__version__}"
# RFC 9113 §3.4: what an HTTP/2 client sends first (h2c with prior knowledge).
H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

# The library's protocol logs through this; wstool reports through events.
_NULL_LOGGER = logging.getLogger("wstool.server.core.protocol")
_NULL_LOGGER.addHandler(logging.NullHandler())
_NULL_LOGGER.propagate = False

# What the 426 page may repeat of a request's Host header and path: a host[:port] and
# a path made of URL characters only (they are the client's bytes, echoed back).
_PAGE_HOST_RE = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._~-]+)(:[0-9]{1,5})?$")
_PAGE_PATH_RE = re.compile(r"^/[A-Za-z0-9._~!$&'()*+,;=:@%/?-]*$")


def _upgrade_page(scheme: str, host: str | None, path: str) -> str:
    """The 426 page, with a connect line for the URL the browser asked for."""
    if host is None or not _PAGE_HOST_RE.match(host):
        host = "HOST:PORT"
    if not _PAGE_PATH_RE.match(path) or len(path) > 200:
        path = "/"
    return (
        "426 Upgrade Required\n\n"
        "This is a WebSocket server (wstool). Connect with a WebSocket client, e.g.\n"
        f"  wstool connect {scheme}://{host}{path}\n"
    )



def _glob_origin(pattern: str) -> Origin | re.Pattern[str]:
    if "*" in pattern or "?" in pattern:
        return re.compile(fnmatch.translate(pattern))
    return Origin(pattern)


def _is_upgrade(headers: Headers) -> bool:
    upgrade = ",".join(headers.get_all("Upgrade")).lower()
    return "websocket" in upgrade


def _peer_name(transport: asyncio.BaseTransport) -> str:
    peer = transport.get_extra_info("peername")
    if isinstance(peer, tuple) and len(peer) >= 2:
        host = peer[0]
        return f"[{host}]:{peer[1]}" if ":" in str(host) else f"{host}:{peer[1]}"
    return "unix"


@dataclass
class Stats:
    connections: int = 0
    messages_in: int = 0
    messages_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0


class ServerSideProtocol(EchoServerProtocol):
    """The echo protocol, knowing the connection that drives it."""

    conn: ServerConnection


class App:
    """What a server does with its connections; the default echoes."""

    server: WebSocketServer

    def protocol_class(self) -> type[ServerSideProtocol]:
        return ServerSideProtocol

    def configure(self, conn: ServerConnection) -> None:
        """A new connection's protocol was created (before the handshake)."""

    def opened(self, conn: ServerConnection) -> None:
        """The handshake succeeded."""

    def closed(self, conn: ServerConnection) -> None:
        """The TCP connection is gone."""

    def writing_paused(self, conn: ServerConnection) -> None:
        """CONN's write buffer went over its high-water mark (a bridge stops reading)."""

    def writing_resumed(self, conn: ServerConnection) -> None:
        """CONN's write buffer drained below its low-water mark."""


class ServerConnection(asyncio.Protocol):
    """One TCP connection: drives its sans-I/O protocol (see module doc)."""

    transport: asyncio.Transport
    # Set by ping_and_wait() only (a class default costs no memory per connection).
    _pong_waiter: asyncio.Future[float] | None = None
    # --http2 on cleartext: the first bytes seen so far, until they are or are not
    # the HTTP/2 preface (None: not looking).
    _sniffed: bytes | None = None
    sniff_h2 = True  # False for the streams of an HTTP/2 connection (server/http2.py)

    def __init__(self, server: WebSocketServer) -> None:
        self.server = server
        self.client_id = server._next_id()
        self.peer = "?"
        self.protocol = server._new_protocol()
        self.protocol.conn = self
        self.opened = False
        self.pending_echoes = 0  # --delay: echoes scheduled, not yet sent
        self._drain_waiter: asyncio.Future[None] | None = None
        self.rejected = False
        self._eof_handled = False
        self._timer: asyncio.TimerHandle | None = None
        self.ping_sent: tuple[bytes, float] | None = None  # the latest ping (for RTTs)
        # When the oldest ping still unanswered went out (keepalive): a ping sent
        # while one is pending (--ping-every) must not move it forward.
        self.unanswered_since: float | None = None
        self.error: str | None = None
        server.app.configure(self)

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        self.peer = _peer_name(self.transport)
        server = self.server
        server.connections.add(self)
        if server.config.open_timeout_s is not None:
            self._timer = server.loop.call_later(
                server.config.open_timeout_s, self._open_timed_out
            )
        if server.h2_handoff is not None and self.sniff_h2:
            if server.ssl_context is None:
                self._sniffed = b""
            else:
                ssl_object = self.transport.get_extra_info("ssl_object")
                if ssl_object is not None and ssl_object.selected_alpn_protocol() == "h2":
                    self._hand_over(b"", "h2")

    def data_received(self, data: bytes) -> None:
        protocol = self.protocol
        # Nonzero only while the frame loop waits between messages and a plain
        # echo is all that is wanted (echo.py; issue 14) -- so after the
        # handshake, with no HTTP/2 sniffing pending.
        limit = protocol.fast_echo_limit
        if limit and protocol._state is OPEN:
            # Request/response: a read of exactly one final, masked text or binary
            # frame with a 7-bit length, RSV clear, within the limit (max-size),
            # valid UTF-8 if text, is echoed here: StrictEcho.echo_fast's checks,
            # inline because the call alone is ~8 % of a round trip's
            # instructions on uvloop (bench/README.md). Anything else goes on.
            length = len(data) - 6
            if 0 <= length < 126 and data[1] == 0x80 | length and length <= limit:
                b0 = data[0]
                if b0 == 0x81 or b0 == 0x82:
                    payload = unmask(data[6:], data[2:6])
                    if b0 == 0x82 or payload.isascii() or is_utf8(payload):
                        protocol.echoed += 1
                        protocol.echoed_bytes += length
                        # No is_closing() check as in flush(): nothing ran since
                        # the transport delivered this read, and a closed one
                        # delivers none.
                        self.transport.write(SHORT_ECHO_HEADERS[b0][length] + payload)
                        return
            # Whole small messages echoed without the frame loop (echo_fast);
            # anything else goes on to it below.
            used, echo = protocol.echo_fast(data)
            if echo:
                self.transport.write(echo)
            if used == len(data):
                return
            data = data[used:]
        elif self._sniffed is not None:
            # h2c with prior knowledge (RFC 9113 §3.3): the connection preface
            # comes first; anything else is HTTP/1.1 as without --http2.
            data = self._sniffed + data
            if len(data) < len(H2_PREFACE) and H2_PREFACE.startswith(data):
                self._sniffed = data
                return
            self._sniffed = None
            if data.startswith(H2_PREFACE):
                self._hand_over(data, "h2c")
                return
        protocol.receive_data(data)
        if not self.opened:
            self._handshake_step()
        elif protocol.events:
            self._process_events()
        self.flush()

    def _hand_over(self, data: bytes, via: str) -> None:
        """An HTTP/2 connection: its own protocol object takes the transport."""
        self.rejected = True  # this object reports nothing more
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.server.connections.discard(self)
        handoff = self.server.h2_handoff
        assert handoff is not None
        handoff(self.server, self.transport, data, via)

    def eof_received(self) -> bool | None:
        self.protocol.receive_eof()
        self.flush()
        if not self.opened and not self.rejected:
            self._report_reject(None, "connection closed before the handshake completed")
        return None  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.resume_writing()  # release drain() waiters
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        protocol = self.protocol
        internals.end_of_stream(protocol)
        waiter = self._pong_waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(ConnectionError("closed before its pong"))
        server = self.server
        server.connections.discard(self)
        if self.opened:
            server.open_connections.discard(self)
            stats = server.stats
            stats.messages_in += protocol.messages_in
            stats.messages_out += protocol.messages_out
            stats.bytes_in += protocol.bytes_in
            stats.bytes_out += protocol.bytes_out
            server.app.closed(self)
            rcvd, sent, rcvd_then_sent = internals.close_frames(protocol)
            initiated_by: Any
            if rcvd is None:
                initiated_by = "server" if sent is not None else None
            elif sent is None or rcvd_then_sent:
                initiated_by = "client"
            else:
                initiated_by = "server"
            parser_exc = internals.parser_error(protocol)
            error = self.error or _failure_text(parser_exc)
            if error is None and exc is not None and rcvd is None:
                error = f"connection lost: {exc}"
            server.sink(
                ClientDisconnected(
                    self.client_id,
                    self.peer,
                    rcvd.code if rcvd is not None else 1006,
                    rcvd.reason if rcvd is not None else "",
                    initiated_by,
                    protocol.messages_in,
                    protocol.messages_out,
                    error,
                    ts=time.monotonic(),
                    protocol_error=_failure_text(parser_exc) is not None,
                )
            )
        elif not self.rejected:
            reason = "connection lost before the handshake completed"
            if protocol.handshake_exc is not None:
                reason = f"invalid HTTP request: {_cause_text(protocol.handshake_exc)}"
            self._report_reject(None, reason)
        server._connection_gone()

    def pause_writing(self) -> None:
        if self._drain_waiter is None:
            self._drain_waiter = self.server.loop.create_future()
            self.server.app.writing_paused(self)

    def resume_writing(self) -> None:
        waiter, self._drain_waiter = self._drain_waiter, None
        if waiter is not None:
            if not waiter.done():
                waiter.set_result(None)
            self.server.app.writing_resumed(self)

    async def drain(self) -> None:
        """Wait while the transport's write buffer is above its high-water mark."""
        waiter = self._drain_waiter
        if waiter is not None:
            await asyncio.shield(waiter)

    # Output

    def flush(self) -> None:
        protocol = self.protocol
        # Protocol.writes and eof_sent inline: once per chunk, i.e. per message
        # in request/response (fenced in wstool/protocol/internals.py).
        writes = protocol.writes
        if writes:
            protocol.writes = []
            if self.transport.is_closing():
                return  # aborted (--drop-after) or closed: nothing more goes out
            if len(writes) == 1:
                self.transport.write(writes[0])
            else:
                self.transport.write(b"".join(writes))
        if protocol.eof_sent and not self._eof_handled:
            self._eof_handled = True
            self._half_close()

    def _half_close(self) -> None:
        # §7.1.1: the server closes the TCP connection first. Half-close so the
        # client still reads everything we wrote (a full close with unread
        # input would send RST and could destroy our last frames), then give
        # it --close-timeout to close its side.
        transport = self.transport
        if transport.is_closing():
            return
        if transport.can_write_eof():
            transport.write_eof()
            if self._timer is not None:
                self._timer.cancel()
            self._timer = self.server.loop.call_later(
                self.server.config.close_timeout_s, transport.abort
            )
        else:  # TLS: close_notify, then close
            transport.close()

    # Handshake

    def _open_timed_out(self) -> None:
        self._timer = None
        if not self.opened and not self.rejected:
            self._report_reject(
                None,
                f"no complete handshake within --open-timeout {self.server.config.open_timeout_s}s",
            )
            self.transport.abort()

    def _report_reject(self, status: int | None, reason: str) -> None:
        self.rejected = True
        self.server.sink(
            ClientRejected(self.client_id, self.peer, status, reason, ts=time.monotonic())
        )

    def _handshake_step(self) -> None:
        protocol = self.protocol
        for event in protocol.events_received():
            if isinstance(event, Request):
                self._handle_request(event)
                return
        if protocol.handshake_exc is not None and not self.rejected:
            # Garbage or an oversized request: the library answered or dropped it.
            reason = _cause_text(protocol.handshake_exc)
            self._report_reject(None, f"invalid HTTP request: {reason}")

    def _handle_request(self, request: Request) -> None:
        self._send_response(request, self._response_for(request))

    def _response_for(self, request: Request) -> Response:
        """The answer to a request: 101, or the page of a plain HTTP request (426,
        /health) or of a refused upgrade (401, 403, 503...). The HTTP/2 streams of
        ``--http2`` (server/http2.py) get theirs here too."""
        server = self.server
        protocol = self.protocol
        cfg = server.config
        path, _, query = request.path.partition("?")
        response: Response
        if not _is_upgrade(request.headers):
            served = None
            if server.static_root is not None and path != "/health":
                # --static (issue 16): the version-independent answer, framed here.
                served = static.static_response(
                    server.static_root, getattr(request, "method", "GET"), request.path,
                    tuple(request.headers.raw_items()))
            if served is not None:
                response = Response(
                    served.status, served.reason,
                    Headers([("Date", email.utils.formatdate(usegmt=True)),
                             ("Connection", "close"), *served.headers]),
                    served.body)
                self._report_static(request, served)
            elif path == "/health":
                response = protocol.reject(200, "ok\n")
            else:
                scheme = "wss" if server.ssl_context is not None else "ws"
                response = protocol.reject(
                    426, _upgrade_page(scheme, request.headers.get("Host"), request.path))
                response.headers["Upgrade"] = "websocket"
        else:
            response = protocol.accept(request)
            if response.status_code == 101:
                denied = server._check_auth(request.headers, query)
                if denied is not None:
                    response = protocol.reject(401, denied + "\n")
                    if cfg.auth is not None:
                        response.headers["WWW-Authenticate"] = 'Basic realm="wstool"'
                    else:
                        response.headers["WWW-Authenticate"] = 'Bearer realm="wstool"'
                elif (
                    cfg.max_connections is not None
                    and len(server.open_connections) >= cfg.max_connections
                ):
                    response = protocol.reject(
                        503,
                        f"server full: --max-connections {cfg.max_connections} reached\n",
                    )
                    response.headers["Retry-After"] = "1"
        response.headers["Server"] = SERVER_HEADER
        return response

    def _send_response(self, request: Request, response: Response) -> None:
        self.protocol.send_response(response)
        if self.rejected:
            return  # reported already (a static file)
        if response.status_code != 101:
            self._report_refused(request, response)
            return
        self._accepted(request, response)

    def _report_refused(self, request: Request, response: Response) -> None:
        body = bytes(response.body or b"").decode(errors="replace").strip()
        self._report_reject(
            response.status_code,
            f"{request.path}: {body.splitlines()[0] if body else response.reason_phrase}",
        )

    def _handshake_record(self, request: Request, response: Response) -> Handshake:
        return Handshake(
            request_line=f"GET {request.path} HTTP/1.1",
            request_headers=tuple(request.headers.raw_items()),
            status_code=101,
            reason=response.reason_phrase,
            response_headers=tuple(response.headers.raw_items()),
        )

    def _accepted(self, request: Request, response: Response) -> None:
        """The handshake succeeded (``response`` went out): the connection is open."""
        server = self.server
        protocol = self.protocol
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.opened = True
        server.open_connections.add(self)
        server.stats.connections += 1
        server.sink(
            ClientConnected(
                self.client_id,
                self.peer,
                request.path,
                protocol.subprotocol,
                tuple(str(ext.name) for ext in protocol.extensions),
                self._handshake_record(request, response),
                ts=time.monotonic(),
            )
        )
        if server.trace:
            protocol.emit_data_frames = True
        else:
            # The hot path: echoes as pre-built bytes (see echo.py).
            protocol.raw_echo = not protocol.extensions
            if protocol.extensions:  # permessage-deflate, the only one we accept
                protocol.raw_below_bytes = COMPRESS_THRESHOLD_BYTES
                for extension in protocol.extensions:
                    if isinstance(extension, PerMessageDeflate):
                        deflate.skip_incompressible_binary(extension)
        # A fresh parser with the frame loop alone: the handshake's generator
        # frames would stay alive for the life of the connection otherwise.
        internals.replace_parser(protocol, protocol.frame_loop())
        server.app.opened(self)
        # Frames that came with the request waited for the accept (echo.py).
        protocol.receive_data(b"")
        if protocol.events:
            self._process_events()

    def _report_static(self, request: Request, served: static.StaticResponse) -> None:
        length = dict(served.headers).get("Content-Length", "0")
        kind = dict(served.headers).get("Content-Type")
        what = f"{length} bytes" + (f", {kind}" if kind and served.status == 200 else "")
        method = getattr(request, "method", "GET")
        self._report_reject(served.status, f"{method} {request.path}: static {what}")

    # Frames after the handshake (control frames; data frames with -vv)

    def _process_events(self) -> None:
        server = self.server
        for frame in self.protocol.events_received():
            if not isinstance(frame, Frame):
                continue
            opcode = frame.opcode
            if server.trace:
                server.sink(FrameSeen("received", frame, conn=self.client_id,
                                      ts=time.monotonic()))
            if opcode is Opcode.PING:
                server.sink(Ping("received", bytes(frame.data), ts=time.monotonic()))
            elif opcode is Opcode.PONG:
                data = bytes(frame.data)
                rtt = None
                if self.ping_sent is not None and self.ping_sent[0] == data:
                    rtt = time.monotonic() - self.ping_sent[1]
                    self.ping_sent = self.unanswered_since = None
                    waiter = self._pong_waiter
                    if waiter is not None and not waiter.done():
                        waiter.set_result(rtt)
                elif self.ping_sent is not None and self.unanswered_since is not None:
                    # An older ping answered: only the latest is still pending.
                    self.unanswered_since = self.ping_sent[1]
                server.sink(Pong("received", data, rtt_s=rtt, ts=time.monotonic()))

    # Actions (for apps and the server)

    def send_ping(self, data: bytes | None = None) -> None:
        protocol = self.protocol
        if protocol.state is not OPEN:
            return
        if data is None:
            data = secrets.token_bytes(4)
        now = time.monotonic()
        self.ping_sent = (data, now)
        if self.unanswered_since is None:
            self.unanswered_since = now
        protocol.send_ping(data)
        self.flush()

    async def ping_and_wait(self, data: bytes | None, timeout_s: float) -> float:
        """Ping; the round-trip time of its pong. TimeoutError, or ConnectionError when
        the connection closes first (the listen REPL's /ping)."""
        if self.protocol.state is not OPEN:
            raise ConnectionError("closed")
        waiter: asyncio.Future[float] = self.server.loop.create_future()
        self._pong_waiter = waiter
        self.send_ping(data)
        try:
            return await asyncio.wait_for(waiter, timeout_s)
        finally:
            if self._pong_waiter is waiter:
                self._pong_waiter = None

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Start the closing handshake (no-op unless OPEN)."""
        protocol = self.protocol
        if protocol.state is OPEN:
            protocol.send_close(code, reason)
            self.flush()

    def fail(self, code: int, reason: str) -> None:
        protocol = self.protocol
        if protocol.state is OPEN:
            self.error = reason
            protocol.fail(code, reason)
            self.flush()

    def abort(self) -> None:
        """Drop the TCP connection without a closing handshake."""
        self.transport.abort()


def _cause_text(exc: BaseException) -> str:
    text = str(exc)
    cause = exc.__cause__
    if cause is not None and str(cause):
        text += f" ({cause})"
    return text


def _failure_text(exc: BaseException | None) -> str | None:
    if exc is None or isinstance(exc, EOFError):
        return None
    if isinstance(exc, PayloadTooBig):
        return f"{exc} (--max-size)"
    if isinstance(exc, UnicodeDecodeError):
        return f"invalid UTF-8: {exc.reason} at position {exc.start}"
    if isinstance(exc, ProtocolError):
        return f"protocol error: {exc}"
    return str(exc)


class _TracingProtocol(ServerSideProtocol):
    """-vv: report every frame we send."""

    def send_frame(self, frame: Frame) -> None:
        conn = self.conn
        if conn.server.trace:
            conn.server.sink(FrameSeen("sent", frame, conn=conn.client_id, ts=time.monotonic()))
        super().send_frame(frame)


class WebSocketServer:
    """Listening sockets, the set of connections, shared limits, keepalive, shutdown."""

    def __init__(
        self,
        config: ServerConfig,
        app: App,
        sink: ServerEventSink,
        *,
        trace: bool = False,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.config = config
        self.app = app
        app.server = self
        self.sink = sink
        self.trace = trace
        self.report_sent = False  # listen --json: report messages sent to clients
        self.ssl_context = ssl_context
        self.loop = asyncio.get_running_loop()
        self.connections: set[ServerConnection] = set()
        self.open_connections: set[ServerConnection] = set()
        self.stats = Stats()
        self.urls: list[str] = []
        self._servers: list[asyncio.Server] = []
        self._id = 0
        self._timers: list[asyncio.TimerHandle] = []
        self._all_gone: asyncio.Event | None = None
        self._closing = False
        # --http2 (server/http2.py): takes over a connection that speaks HTTP/2
        # (transport, bytes read so far, "h2" or "h2c"); its shutdown hooks send GOAWAY.
        self.h2_handoff: Callable[[WebSocketServer, asyncio.Transport, bytes, str], None] | None
        self.h2_handoff = None
        self.shutdown_hooks: list[Callable[[], None]] = []
        self._origins: list[Origin | re.Pattern[str] | None] | None = (
            [_glob_origin(o) for o in config.origins] if config.origins else None
        )
        self._extensions = (
            [deflate.server_factory()]
            if config.compress
            else None
        )
        self._subprotocols = [Subprotocol(s) for s in config.subprotocols]
        self.static_root: str | None = None
        if config.static_dir is not None:
            try:
                self.static_root = static.check_static_dir(config.static_dir)
            except ValueError as exc:
                raise UsageError(f"invalid --static: {exc}") from None
        self._protocol_class: type[ServerSideProtocol] = app.protocol_class()
        if trace:
            self._protocol_class = type(
                "TracingProtocol", (_TracingProtocol, self._protocol_class), {}
            )

    def _next_id(self) -> int:
        self._id += 1
        return self._id

    def _new_protocol(self) -> ServerSideProtocol:
        return self._protocol_class(
            origins=self._origins,
            extensions=self._extensions,
            subprotocols=self._subprotocols or None,
            select_subprotocol=_select_subprotocol,
            max_size=self.config.max_size_bytes,
            logger=_NULL_LOGGER,
        )

    def _check_auth(self, headers: Headers, query: str) -> str | None:
        """None if authorised, else why not (for the 401 body)."""
        cfg = self.config
        if cfg.auth is None and cfg.token is None:
            return None
        try:
            authorization = headers.get("Authorization")
        except Exception:
            authorization = None
        if cfg.token is not None:
            if authorization and authorization.lower().startswith("bearer "):
                given = authorization[7:].strip()
                if hmac.compare_digest(given.encode(), cfg.token.encode()):
                    return None
            for value in urllib.parse.parse_qs(query).get("token", []):
                if hmac.compare_digest(value.encode(), cfg.token.encode()):
                    return None
        if cfg.auth is not None and authorization:
            try:
                user, password = parse_authorization_basic(authorization)
            except InvalidHeader:
                pass
            else:
                if hmac.compare_digest(user.encode(), cfg.auth[0].encode()) and (
                    hmac.compare_digest(password.encode(), cfg.auth[1].encode())
                ):
                    return None
        if authorization:
            return "invalid credentials"
        return "credentials required"

    # Lifecycle

    async def start(self) -> list[str]:
        cfg = self.config
        scheme = "wss" if self.ssl_context is not None else "ws"
        try:
            if cfg.unix_path is not None:
                server = await self.loop.create_unix_server(
                    lambda: ServerConnection(self), cfg.unix_path, ssl=self.ssl_context
                )
                self.urls = [f"{scheme}+unix://{cfg.unix_path}"]
            else:
                server = await self.loop.create_server(
                    lambda: ServerConnection(self), cfg.host, cfg.port,
                    ssl=self.ssl_context, reuse_address=True, backlog=1024,
                )
                self.urls = []
                for sock in server.sockets:
                    host, port = sock.getsockname()[:2]
                    if sock.family == socket.AF_INET6:
                        host = f"[{host}]"
                    self.urls.append(f"{scheme}://{host}:{port}/")
        except OSError as exc:
            where = cfg.unix_path or f"{cfg.host}:{cfg.port}"
            reason = exc.strerror or str(exc)
            hint = None
            if exc.errno == errno.EADDRINUSE:
                hint = "choose another --port, or 0 for a free one"
            raise WstoolError(f"cannot listen on {where}: {reason}", hint=hint) from None
        self._servers.append(server)
        for url in self.urls:
            self.sink(ServerListening(url, ts=time.monotonic()))
        if cfg.ping_interval_s is not None:
            self._schedule(cfg.ping_interval_s, self._keepalive)
        return self.urls

    def _schedule(self, delay_s: float, callback: Callable[[], None]) -> None:
        self._timers = [t for t in self._timers if not t.cancelled()]
        self._timers.append(self.loop.call_later(delay_s, callback))

    def _keepalive(self) -> None:
        # One timer for all connections (a timer each would cost memory per
        # idle connection): ping every open connection, then check the pongs
        # --ping-timeout later.
        cfg = self.config
        assert cfg.ping_interval_s is not None
        for conn in list(self.open_connections):
            if conn.ping_sent is None:
                conn.send_ping()
        if cfg.ping_timeout_s is not None:
            self._schedule(cfg.ping_timeout_s, self._check_pongs)
        self._schedule(cfg.ping_interval_s, self._keepalive)

    def _check_pongs(self) -> None:
        timeout_s = self.config.ping_timeout_s
        assert timeout_s is not None
        now = time.monotonic()
        for conn in list(self.open_connections):
            since = conn.unanswered_since
            if since is not None and now - since >= timeout_s * 0.99:
                conn.fail(1011, "keepalive ping timeout")

    def every(self, period_s: float, callback: Callable[[], None]) -> None:
        """Call ``callback`` every ``period_s`` seconds until shutdown."""

        def tick() -> None:
            if self._closing:
                return
            callback()
            self._schedule(period_s, tick)

        self._schedule(period_s, tick)

    def stop_accepting(self) -> None:
        """Close the listening sockets; open connections carry on."""
        for server in self._servers:
            server.close()

    def _connection_gone(self) -> None:
        if self._all_gone is not None and not self.connections:
            self._all_gone.set()

    async def shutdown(self, code: int = 1001, reason: str = "going away") -> None:
        """Stop accepting, close every connection with ``code``, wait up to --close-timeout."""
        self._closing = True
        for server in self._servers:
            server.close()
        for timer in self._timers:
            timer.cancel()
        self._all_gone = asyncio.Event()
        for hook in self.shutdown_hooks:
            hook()
        for conn in list(self.connections):
            if conn.opened:
                conn.close(code, reason)
            else:
                conn.transport.close()
        if self.connections:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._all_gone.wait(), self.config.close_timeout_s)
        for conn in list(self.connections):
            conn.abort()
        # Let connection_lost run for the aborted ones.
        for _ in range(3):
            await asyncio.sleep(0)
        if self.config.unix_path is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.config.unix_path)

    def summary(self) -> ServerSummary:
        stats = Stats(**vars(self.stats))
        for conn in self.open_connections:
            stats.messages_in += conn.protocol.messages_in
            stats.messages_out += conn.protocol.messages_out
            stats.bytes_in += conn.protocol.bytes_in
            stats.bytes_out += conn.protocol.bytes_out
        return ServerSummary(
            stats.connections, stats.messages_in, stats.messages_out,
            stats.bytes_in, stats.bytes_out, ts=time.monotonic(),
        )


def _select_subprotocol(
    protocol: ServerProtocol, offered: Sequence[Subprotocol]
) -> Subprotocol | None:
    """-s given: the first of ours the client offers (none offered: none).

    No -s: the first the client offers — Node's ``ws`` client, among others,
    fails the connection when it offered subprotocols and the server picked none.
    """
    available = protocol.available_subprotocols
    if not available:
        return offered[0] if offered else None
    if not offered:
        return None
    return ServerProtocol.select_subprotocol(protocol, offered)


# serve-echo


class _KnobProtocol(ServerSideProtocol):
    """Echo with the serve-echo knobs (the plain class keeps the hot path lean)."""

    def on_message(self, opcode: int, payload: bytes) -> None:
        app = self.conn.server.app
        assert isinstance(app, EchoApp)
        app.message(self.conn, opcode, payload)

    def defer_close(self) -> bool:
        return self.conn.pending_echoes > 0


class EchoApp(App):
    """serve-echo: echo (or broadcast) every message, with the test knobs."""

    def __init__(self, config: EchoConfig, *, report_messages: bool = False) -> None:
        self.config = config
        self.report_messages = report_messages
        knobs = config
        self.plain = not (
            knobs.broadcast or knobs.delay_s > 0 or knobs.close_after is not None
            or knobs.drop_after is not None or report_messages
        )

    def protocol_class(self) -> type[ServerSideProtocol]:
        return ServerSideProtocol if self.plain else _KnobProtocol

    def opened(self, conn: ServerConnection) -> None:
        if self.config.greeting is not None:
            conn.protocol.send_message(OP_TEXT, self.config.greeting.encode())
            conn.flush()
        if self.config.ping_every_s is not None and len(self.server.open_connections) == 1:
            self._start_pings()

    _pinging = False

    def _start_pings(self) -> None:
        if self._pinging:
            return
        self._pinging = True
        assert self.config.ping_every_s is not None

        def ping_all() -> None:
            for c in list(self.server.open_connections):
                c.send_ping()
                self.server.sink(Ping("sent", b"", ts=time.monotonic()))

        self.server.every(self.config.ping_every_s, ping_all)

    def message(self, conn: ServerConnection, opcode: int, payload: bytes) -> None:
        cfg = self.config
        server = self.server
        protocol = conn.protocol
        if self.report_messages:
            data: str | bytes = payload.decode() if opcode == OP_TEXT else payload
            server.sink(ClientMessage(conn.client_id, "received", data, ts=time.monotonic()))
        count = protocol.messages_in
        if cfg.drop_after is not None and count > cfg.drop_after:
            return
        if cfg.delay_s > 0:
            conn.pending_echoes += 1
            server.loop.call_later(cfg.delay_s, self._echo_later, conn, opcode, payload, count)
            return
        self._echo(conn, opcode, payload, count)

    def _echo_later(self, conn: ServerConnection, opcode: int, payload: bytes, count: int) -> None:
        conn.pending_echoes -= 1
        if conn.transport.is_closing():
            return
        self._echo(conn, opcode, payload, count)
        protocol = conn.protocol
        if not conn.pending_echoes and protocol._deferred_close is not None:
            protocol.answer_close()
        conn.flush()

    def _echo(self, conn: ServerConnection, opcode: int, payload: bytes, count: int) -> None:
        cfg = self.config
        if cfg.broadcast:
            for other in list(self.server.open_connections):
                if other.protocol.send_message(opcode, payload) and other is not conn:
                    other.flush()
        else:
            conn.protocol.send_message(opcode, payload)
        if cfg.drop_after is not None and count >= cfg.drop_after:
            conn.flush()
            conn.error = f"dropped after {count} messages (--drop-after)"
            conn.abort()
        elif cfg.close_after is not None and count >= cfg.close_after:
            conn.close(cfg.close_code, cfg.close_reason)


# listen


class _ListenProtocol(ServerSideProtocol):
    """Messages go to the front-end (as events), not back to the client."""

    echo_messages = False

    def on_message(self, opcode: int, payload: bytes) -> None:
        conn = self.conn
        # The engine has validated text already (strict UTF-8).
        data: str | bytes = payload.decode() if opcode == OP_TEXT else payload
        conn.server.sink(ClientMessage(conn.client_id, "received", data, ts=time.monotonic()))


class ListenApp(App):
    """listen: client messages become ClientMessage events; send() goes to clients."""

    def protocol_class(self) -> type[ServerSideProtocol]:
        return _ListenProtocol

    def clients(self) -> dict[int, ServerConnection]:
        return {c.client_id: c for c in self.server.open_connections if c.protocol.state is OPEN}

    def send(self, data: str | bytes, client_ids: Sequence[int] | None = None) -> int:
        """Send one message to the given clients (default: all); returns how many got it."""
        opcode, payload = (OP_TEXT, data.encode()) if isinstance(data, str) else (OP_BINARY, data)
        sent = 0
        clients = self.clients()
        targets = clients.values() if client_ids is None else [
            clients[i] for i in client_ids if i in clients]
        for conn in targets:
            if conn.protocol.send_message(opcode, payload):
                conn.flush()
                sent += 1
                if self.server.report_sent:
                    self.server.sink(ClientMessage(conn.client_id, "sent", data,
                                                   ts=time.monotonic()))
        return sent

    async def drain(self) -> None:
        for conn in list(self.server.open_connections):
            await conn.drain()


async def run_listen_server(
    server_config: ServerConfig,
    sink: ServerEventSink,
    *,
    trace: bool = False,
    report_sent: bool = False,
    ssl_context: ssl.SSLContext | None = None,
    setup: Callable[[WebSocketServer], None] | None = None,
) -> tuple[WebSocketServer, ListenApp]:
    """Start a listen server; the front-end drives ListenApp.send().

    ``setup`` runs before the server listens (``--http2``: server/http2.enable_http2)."""
    app = ListenApp()
    server = WebSocketServer(server_config, app, sink, trace=trace, ssl_context=ssl_context)
    server.report_sent = report_sent
    if setup is not None:
        setup(server)
    await server.start()
    return server, app


def tls_context_for(config: ServerConfig) -> ssl.SSLContext | None:
    from wstool.tls import server_context

    if config.certfile is None:
        return None
    return server_context(config.certfile, config.keyfile, config.key_password)


async def run_echo_server(
    server_config: ServerConfig,
    echo_config: EchoConfig,
    sink: ServerEventSink,
    *,
    trace: bool = False,
    report_messages: bool = False,
    ssl_context: ssl.SSLContext | None = None,
    setup: Callable[[WebSocketServer], None] | None = None,
) -> WebSocketServer:
    """Start serve-echo; the caller awaits shutdown() when it is time to stop.

    ``setup`` runs before the server listens (``--http2``: server/http2.enable_http2)."""
    if echo_config.close_after is not None and echo_config.close_after < 1:
        raise UsageError("invalid --close-after: must be 1 or more")
    server = WebSocketServer(
        server_config, EchoApp(echo_config, report_messages=report_messages), sink,
        trace=trace, ssl_context=ssl_context,
    )
    if setup is not None:
        setup(server)
    await server.start()
    return server


@contextlib.asynccontextmanager
async def demo_echo_server() -> AsyncIterator[str]:
    """Run an echo server on a free loopback port; yields its ws:// URL."""

    def ignore(_event: object) -> None:
        pass

    config = ServerConfig(port=0, max_size_bytes=None, ping_interval_s=None)
    server = await run_echo_server(config, EchoConfig(), ignore)
    try:
        yield server.urls[0]
    finally:
        await server.shutdown(1001, "")


__all__ = [
    "OP_BINARY",
    "OP_TEXT",
    "App",
    "EchoApp",
    "ListenApp",
    "ServerConnection",
    "WebSocketServer",
    "demo_echo_server",
    "run_echo_server",
    "run_listen_server",
    "tls_context_for",
]
