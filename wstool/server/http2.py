"""``serve-echo --http2`` and ``listen --http2``: WebSockets over HTTP/2 (RFC 8441).

The server's port keeps speaking HTTP/1.1; with ``--http2`` a connection that
chose ``h2`` by ALPN (TLS) or starts with the HTTP/2 preface (cleartext, "h2c
with prior knowledge", RFC 9113 §3.3) is handed over by
``core.ServerConnection`` to an :class:`H2Session` here: python-hyper's sans-I/O
``h2`` (bytes in, events out, as websockets' protocol) driven by one asyncio
protocol per TCP connection.

The session advertises ``SETTINGS_ENABLE_CONNECT_PROTOCOL = 1`` (RFC 8441 §3).
Each stream is an :class:`H2StreamConnection`, a ``core.ServerConnection`` whose
transport is the stream (:class:`StreamTransport`): an extended CONNECT
(``:method CONNECT``, ``:protocol websocket``) becomes the same ``Request`` an
HTTP/1.1 upgrade is, goes through the same checks (origin, auth,
``--max-connections``, subprotocol, permessage-deflate) and, once answered
``:status 200``, through the same strict echo engine (``protocol/echo.py``): the
stream's DATA carries RFC 6455 frames, masking included (RFC 8441 §5). A GET or
HEAD goes through the same code as a plain HTTP/1.1 request (``/health``, the 426
page). Several sockets share one TCP connection.

Flow control (RFC 9113 §5.2): received DATA is acknowledged once the engine has
consumed it, so a large message never stalls; but while a stream has more than
``_HIGH_WATER`` bytes of echoes waiting for the client's window (or the TCP
connection is paused), acknowledgements wait, so the client's window closes and
memory per stream stays bounded (window + one message + the high-water mark).

Ends: the stream's END_STREAM is the TCP half-close of HTTP/1.1 (RFC 8441 §5.1);
RST_STREAM from the client is a lost connection (1006) for that socket only;
shutdown sends GOAWAY and closes the sockets with 1001.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import secrets
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, cast

from websockets.datastructures import Headers
from websockets.exceptions import InvalidHeader
from websockets.http11 import Request, Response

from wstool.config import ServerConfig
from wstool.errors import UsageError
from wstool.events import Handshake
from wstool.server.core import SERVER_HEADER, ServerConnection, WebSocketServer, _peer_name
from wstool.server.events import H2ConnectionEvent, H2StreamEvent
from wstool.term.render import escape

if TYPE_CHECKING:
    import h2.connection
    import h2.events

INSTALL_HINT = "pip install 'wstool[http2]'"

# Our receive windows: 1 MiB per stream, 16 MiB for the connection (the defaults,
# 64 KiB, would cost one round trip per 64 KiB of a large message).
_STREAM_WINDOW = 1 << 20
_CONNECTION_WINDOW = 16 << 20
_MAX_CONCURRENT_STREAMS = 128
# The largest DATA frame a client may send (RFC 9113 §6.5.2; the default is 16 KiB).
# h2's cost is per frame (parse, state machines, one data_received per frame): a
# client that sends 16 KiB frames pays it 16 times per 256 KiB read.
_MAX_FRAME_BYTES = 256 * 1024
# Echoes waiting for the client's window: above this, stop acknowledging DATA.
_HIGH_WATER = 1 << 20

# RFC 9113 §8.2.2: connection-specific fields are not sent over HTTP/2; the
# accept key has no place in RFC 8441's handshake (§5).
_NOT_IN_H2 = frozenset({
    "connection", "upgrade", "keep-alive", "proxy-connection", "transfer-encoding",
    "sec-websocket-accept",
})


def require_h2() -> None:
    """``--http2`` without the optional package: say how to install it."""
    try:
        import h2  # noqa: F401
    except ImportError:
        raise UsageError(f"--http2 needs the h2 package: {INSTALL_HINT}") from None


def http2_setup(config: ServerConfig) -> Callable[[WebSocketServer], None] | None:
    """The ``setup=`` of ``core.run_*_server`` for ``--http2`` (None without it);
    checks now that h2 is installed."""
    if not config.http2:
        return None
    require_h2()
    return enable_http2


def enable_http2(server: WebSocketServer) -> None:
    """Give ``server`` HTTP/2 (before it listens): ALPN h2 on TLS, h2c on cleartext."""
    require_h2()
    if server.ssl_context is not None:
        # h2 first: a client that offers both gets HTTP/2; http/1.1 stays for others.
        server.ssl_context.set_alpn_protocols(["h2", "http/1.1"])
    sessions: set[H2Session] = set()

    def handoff(
        server: WebSocketServer, transport: asyncio.Transport, data: bytes, via: str
    ) -> None:
        session = H2Session(server, via, sessions)
        transport.set_protocol(session)
        session.connection_made(transport)
        if data:
            session.data_received(data)

    def goaway_all() -> None:
        for session in list(sessions):
            session.goaway()

    server.h2_handoff = handoff
    server.shutdown_hooks.append(goaway_all)


def _text(value: bytes) -> str:
    return value.decode("latin-1")


class StreamTransport:
    """One HTTP/2 stream, with the part of ``asyncio.Transport`` that
    ``ServerConnection`` uses: write/write_eof/close/abort over DATA, END_STREAM
    and RST_STREAM."""

    def __init__(self, session: H2Session, stream_id: int) -> None:
        self.session = session
        self.stream_id = stream_id
        self.conn: H2StreamConnection | None = None
        self.pending: collections.deque[memoryview] = collections.deque()
        self.pending_bytes = 0
        self.end_pending = False  # write_eof() asked; END_STREAM once pending is sent
        self.local_ended = False
        self.remote_ended = False
        self.closing = False
        self.gone = False
        self.unacked = 0  # flow-controlled bytes consumed but not yet acknowledged
        self.paused = False

    # asyncio.Transport, as far as ServerConnection goes

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self.gone or self.end_pending or not data:
            return
        # Kept until the client's window allows: a copy of anything mutable.
        view = memoryview(data if isinstance(data, bytes) else bytes(data))
        self.pending.append(view)
        self.pending_bytes += len(view)
        self.session.pump(self)

    def write_eof(self) -> None:
        if self.gone or self.end_pending:
            return
        self.end_pending = True
        self.session.pump(self)

    def can_write_eof(self) -> bool:
        return True

    def close(self) -> None:
        self.closing = True
        self.write_eof()

    def is_closing(self) -> bool:
        return self.closing or self.gone

    def abort(self) -> None:
        # As a TCP abort: what led to it (--drop-after, a close timeout) says why.
        self.session.reset(self, None)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "h2_stream_id":
            return self.stream_id
        return self.session.transport.get_extra_info(name, default)

    def set_protocol(self, protocol: Any) -> None:  # pragma: no cover - not used
        raise NotImplementedError


class H2StreamConnection(ServerConnection):
    """A ServerConnection over one stream: the request comes as HEADERS, the
    response goes as HEADERS (RFC 8441 §5: ``:status 200`` for a WebSocket)."""

    transport_stream: StreamTransport
    sniff_h2 = False  # already HTTP/2
    method = "GET"
    h2_path = "/"
    h2_protocol: str | None = None
    h2_request_headers: tuple[tuple[str, str], ...] = ()
    h2_response_headers: tuple[tuple[str, str], ...] = ()

    def _send_response(self, request: Request, response: Response) -> None:
        stream = self.transport_stream
        session = stream.session
        fields = [(":status", "200" if response.status_code == 101 else
                   str(response.status_code))]
        for name, value in response.headers.raw_items():
            lower = name.lower()
            if lower not in _NOT_IN_H2 and lower != "content-length":
                fields.append((lower, value))
        self.h2_response_headers = tuple(fields)
        if response.status_code == 101:
            # The protocol moves to OPEN; its HTTP/1.1 bytes do not go out.
            self.protocol.send_response(response)
            self.protocol.writes.clear()
            session.send_headers(stream, fields, end_stream=False)
            self._accepted(request, response)
            return
        reported = self.rejected  # a static file (--static) is reported already
        self.rejected = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not reported:
            self._report_refused(request, response)
        body = bytes(response.body or b"")
        head = self.method == "HEAD"
        # HEAD: the length of what GET would send (server/static.py says it).
        length = response.headers.get("Content-Length")
        fields.append(("content-length", length if head and length else str(len(body))))
        session.send_headers(stream, fields, end_stream=head or not body)
        if head or not body:
            stream.end_pending = stream.local_ended = True
            session.maybe_finished(stream)
        else:
            stream.write(body)
            stream.write_eof()

    def _handshake_record(self, request: Request, response: Response) -> Handshake:
        return Handshake(
            request_line=(f"CONNECT {escape(request.path)} HTTP/2 (:protocol websocket, "
                          f"stream {self.transport_stream.stream_id})"),
            request_headers=self.h2_request_headers,
            status_code=200,
            reason="OK",
            response_headers=self.h2_response_headers,
            http_version="HTTP/2",
        )


class H2Session(asyncio.Protocol):
    """One HTTP/2 connection: the h2 state machine and its streams (module doc)."""

    transport: asyncio.Transport

    def __init__(self, server: WebSocketServer, via: str, registry: set[H2Session]) -> None:
        import h2.config
        import h2.connection
        import h2.settings

        self.server = server
        self.via = via
        self.registry = registry
        self.peer = "?"
        self.h2 = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=False, header_encoding=None)
        )
        codes = h2.settings.SettingCodes
        self.h2.local_settings = h2.settings.Settings(
            client=False,
            initial_values={
                codes.ENABLE_CONNECT_PROTOCOL: 1,  # RFC 8441 §3
                codes.MAX_CONCURRENT_STREAMS: _MAX_CONCURRENT_STREAMS,
                codes.INITIAL_WINDOW_SIZE: _STREAM_WINDOW,
                codes.MAX_FRAME_SIZE: _MAX_FRAME_BYTES,
            },
        )
        # h2 read the frame limit from the settings it was built with: these are the
        # initial values (no ACK will report them as a change), so tell it here.
        self.h2.max_inbound_frame_size = _MAX_FRAME_BYTES
        self.streams: dict[int, StreamTransport] = {}
        self.stream_count = 0
        self.goaway_sent = False
        self.closed = False
        self.tcp_paused = False
        self._in_receive = False
        self.error: str | None = None

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.peer = _peer_name(self.transport)
        self.registry.add(self)
        self.h2.initiate_connection()
        self.h2.increment_flow_control_window(_CONNECTION_WINDOW - 65535)
        self.server.sink(H2ConnectionEvent(self.peer, "opened", self.via, ts=time.monotonic()))
        self.flush()
        open_timeout_s = self.server.config.open_timeout_s
        if open_timeout_s is not None:
            # --open-timeout: a connection that opens no stream has no handshake either.
            self.server.loop.call_later(open_timeout_s, self._open_timed_out)

    def _open_timed_out(self) -> None:
        if not self.stream_count and not self.closed:
            self.error = (f"no stream within --open-timeout "
                          f"{self.server.config.open_timeout_s}s")
            self._close()

    def data_received(self, data: bytes) -> None:
        import h2.exceptions

        if self.closed:
            return
        try:
            events = self.h2.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            # h2 has queued a GOAWAY with the error: send it, then close.
            self.error = f"HTTP/2 protocol error: {exc}"
            self.flush()
            self._close_transport()
            return
        self._in_receive = True
        try:
            for event in events:
                try:
                    self._dispatch(event)
                except Exception as exc:  # a bug must cost one stream, not the server
                    self._stream_failed(event, exc)
        finally:
            self._in_receive = False
        self.flush()

    def _stream_failed(self, event: h2.events.Event, exc: Exception) -> None:
        stream = self.streams.get(getattr(event, "stream_id", 0) or 0)
        if stream is None:
            self.error = f"internal error: {exc!r}"
            self.flush()
            self._close_transport()
            return
        if stream.conn is not None and stream.conn.opened:
            stream.conn.error = f"internal error: {exc!r}"
        self._reset(stream, 0x2, f"internal error: {exc!r}")  # INTERNAL_ERROR

    def eof_received(self) -> bool | None:
        return None  # close the transport: connection_lost ends every stream

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.registry.discard(self)
        for stream in list(self.streams.values()):
            if stream.conn is not None and stream.conn.opened and exc is not None:
                stream.conn.error = stream.conn.error or f"connection lost: {exc}"
            self._finish(stream, None, now=True)
        if self.error is None and exc is not None:
            self.error = f"connection lost: {exc}"
        self.server.sink(H2ConnectionEvent(self.peer, "closed", self.via, self.stream_count,
                                           self.error, ts=time.monotonic()))

    def pause_writing(self) -> None:
        self.tcp_paused = True
        for stream in self.streams.values():
            if stream.conn is not None:
                stream.conn.pause_writing()

    def resume_writing(self) -> None:
        self.tcp_paused = False
        for stream in list(self.streams.values()):
            if stream.conn is not None and not stream.paused:
                stream.conn.resume_writing()
            self._ack_deferred(stream)
        self.flush_soon()

    # Output

    def flush(self) -> None:
        data = self.h2.data_to_send()
        if data and not self.transport.is_closing():
            self.transport.write(data)

    def flush_soon(self) -> None:
        """Write now, unless inside data_received (which writes once at its end)."""
        if not self._in_receive:
            self.flush()

    def send_headers(self, stream: StreamTransport, fields: list[tuple[str, str]],
                     *, end_stream: bool) -> None:
        import h2.exceptions

        try:
            self.h2.send_headers(stream.stream_id, fields, end_stream=end_stream)
        except h2.exceptions.ProtocolError:  # reset by the client meanwhile
            stream.local_ended = True
        self.flush_soon()

    def pump(self, stream: StreamTransport) -> None:
        """Send what the stream has pending, as far as the client's windows allow."""
        import h2.exceptions

        if stream.gone or self.closed:
            return
        h2conn = self.h2
        stream_id = stream.stream_id
        pending = stream.pending
        try:
            while pending:
                window = h2conn.local_flow_control_window(stream_id)
                if window <= 0:
                    break
                size = min(window, h2conn.max_outbound_frame_size)
                view = pending[0]
                if len(view) <= size:
                    pending.popleft()
                    h2conn.send_data(stream_id, view)
                    stream.pending_bytes -= len(view)
                else:
                    h2conn.send_data(stream_id, view[:size])
                    pending[0] = view[size:]
                    stream.pending_bytes -= size
            if not pending and stream.end_pending and not stream.local_ended:
                stream.local_ended = True
                h2conn.end_stream(stream_id)
        except h2.exceptions.ProtocolError:  # the stream (or connection) is closed
            pending.clear()
            stream.pending_bytes = 0
            stream.local_ended = True
        conn = stream.conn
        if stream.pending_bytes > _HIGH_WATER:
            if not stream.paused:
                stream.paused = True
                if conn is not None:
                    conn.pause_writing()
        elif stream.paused:
            stream.paused = False
            if conn is not None and not self.tcp_paused:
                conn.resume_writing()
            self._ack_deferred(stream)
        self.flush_soon()
        self.maybe_finished(stream)

    def _ack_deferred(self, stream: StreamTransport) -> None:
        if stream.unacked and not stream.paused and not self.tcp_paused:
            self.h2.acknowledge_received_data(stream.unacked, stream.stream_id)
            stream.unacked = 0

    # Stream ends

    def maybe_finished(self, stream: StreamTransport) -> None:
        if not stream.local_ended or stream.gone:
            return
        if stream.remote_ended:
            self._finish(stream, None)
            return
        conn = stream.conn
        if conn is not None and conn.rejected and not stream.pending:
            # RFC 9113 §8.1: the response is complete before the request; ask the
            # client to stop sending with RST_STREAM NO_ERROR.
            self._reset(stream, 0, None)

    def reset(self, stream: StreamTransport, error: str | None) -> None:
        """RST_STREAM (CANCEL) from our side: --drop-after, a close timeout."""
        self._reset(stream, 0x8, error)  # CANCEL

    def _reset(self, stream: StreamTransport, code: int, error: str | None) -> None:
        import h2.exceptions

        if stream.gone:
            return
        if not self.closed:
            with contextlib.suppress(h2.exceptions.StreamClosedError):
                self.h2.reset_stream(stream.stream_id, code)
            self.flush_soon()
        self._finish(stream, error)

    def _finish(self, stream: StreamTransport, error: str | None, *, now: bool = False) -> None:
        """The stream is over: its connection is lost (as a TCP connection's would be)."""
        if stream.gone:
            return
        stream.gone = True
        stream.pending.clear()
        stream.pending_bytes = 0
        self.streams.pop(stream.stream_id, None)
        conn = stream.conn
        if conn is not None:
            if error is not None and conn.opened and conn.error is None:
                conn.error = error
            self.server.sink(H2StreamEvent(
                conn.client_id, self.peer, stream.stream_id, "closed", conn.method,
                conn.h2_path, conn.h2_protocol,
                error, ts=time.monotonic()))
            if now:
                conn.connection_lost(None)
            else:
                # As asyncio does: connection_lost never runs inside a write.
                self.server.loop.call_soon(conn.connection_lost, None)
        if self.goaway_sent and not self.streams and not self.closed:
            self._close()

    def goaway(self) -> None:
        """Shutdown: refuse new streams; the server closes the open sockets (1001),
        and once their streams are done (_finish) GOAWAY goes out and TCP closes.

        Not RFC 9113 §6.8's early GOAWAY before the last frames: h2 as a client
        (and so every client built on it) moves to CLOSED on a GOAWAY and then
        refuses the DATA still to come, the close frames included.
        """
        if self.goaway_sent or self.closed:
            return
        self.goaway_sent = True
        if not self.streams:
            self._close()

    def _close(self) -> None:
        import h2.exceptions

        with contextlib.suppress(h2.exceptions.ProtocolError):
            self.h2.close_connection(last_stream_id=self.h2.highest_inbound_stream_id)
        self.flush()
        self._close_transport()

    def _close_transport(self) -> None:
        # TLS waits for the client's close_notify: not longer than --close-timeout.
        self.transport.close()
        self.server.loop.call_later(self.server.config.close_timeout_s, self.transport.abort)

    # Events

    def _dispatch(self, event: h2.events.Event) -> None:
        import h2.events as ev

        if isinstance(event, ev.DataReceived):
            self._data(event)
        elif isinstance(event, ev.RequestReceived):
            self._request(event.stream_id, event.headers or [],
                          event.stream_ended is not None)
        elif isinstance(event, ev.StreamEnded):
            stream = self.streams.get(event.stream_id)
            if stream is not None:
                self._remote_end(stream)
        elif isinstance(event, ev.StreamReset):
            stream = self.streams.get(event.stream_id)
            if stream is not None:
                code = event.error_code
                name = getattr(code, "name", str(code))
                self._finish(stream, f"stream reset by the client (RST_STREAM {name})")
        elif isinstance(event, ev.WindowUpdated):
            if event.stream_id:
                stream = self.streams.get(event.stream_id)
                if stream is not None:
                    self.pump(stream)
            else:
                self._pump_all()
        elif isinstance(event, ev.RemoteSettingsChanged):
            self._pump_all()
        elif isinstance(event, ev.ConnectionTerminated) and not self.streams:
            # The client's GOAWAY: it opens no new streams; the open ones go on.
            self._close_transport()

    def _pump_all(self) -> None:
        for stream in list(self.streams.values()):
            if stream.pending or stream.end_pending:
                self.pump(stream)

    def _data(self, event: h2.events.DataReceived) -> None:
        stream_id = event.stream_id
        flow = event.flow_controlled_length or 0
        stream = self.streams.get(stream_id)
        data = event.data or b""
        if stream is None or stream.conn is None or not stream.conn.opened:
            # A stream we no longer serve (or a GET with a body): hand the window back.
            if flow:
                self.h2.acknowledge_received_data(flow, stream_id)
            return
        stream.conn.data_received(data)
        if stream.paused or self.tcp_paused:
            stream.unacked += flow
        elif flow:
            self.h2.acknowledge_received_data(flow, stream_id)

    def _remote_end(self, stream: StreamTransport) -> None:
        stream.remote_ended = True
        conn = stream.conn
        if conn is not None and conn.opened:
            # RFC 8441 §5.1: END_STREAM is the TCP FIN of HTTP/1.1.
            conn.eof_received()
            stream.close()
        self.maybe_finished(stream)

    def _request(self, stream_id: int, raw: Iterable[tuple[bytes, bytes]],
                 ended: bool) -> None:
        import h2.errors

        if self.goaway_sent:
            # RFC 9113 §8.7: a stream the server will not process.
            self.h2.reset_stream(stream_id, h2.errors.ErrorCodes.REFUSED_STREAM)
            return
        pseudo: dict[str, str] = {}
        fields: list[tuple[str, str]] = []
        for name_b, value_b in raw:
            name, value = _text(name_b), _text(value_b)
            if name.startswith(":"):
                pseudo[name] = value
            else:
                fields.append((name, value))
        method = pseudo.get(":method", "")
        path = pseudo.get(":path", "/")
        protocol = pseudo.get(":protocol")
        stream = StreamTransport(self, stream_id)
        self.streams[stream_id] = stream
        self.stream_count += 1
        conn = H2StreamConnection(self.server)
        conn.transport_stream = stream
        conn.method = method
        conn.h2_path = path
        conn.h2_protocol = protocol
        conn.h2_request_headers = (*pseudo.items(), *fields)
        stream.conn = conn
        stream.remote_ended = ended
        conn.connection_made(cast(asyncio.Transport, stream))
        self.server.sink(H2StreamEvent(conn.client_id, self.peer, stream_id, "opened", method,
                                       path, protocol, ts=time.monotonic()))
        headers = Headers()
        authority = pseudo.get(":authority")
        try:
            if authority is not None:
                headers["Host"] = authority
            for name, value in fields:
                if name != "host" or authority is None:
                    headers[name] = value
        except InvalidHeader as exc:  # a value websockets refuses (control characters...)
            self._refuse(conn, path, Headers(), 400, f"{exc}\n")
            return
        if method == "CONNECT" and protocol is not None:
            if protocol.lower() != "websocket":
                self._refuse(conn, path, headers, 501,
                             f"unsupported :protocol {protocol!r}: only websocket\n")
                return
            # RFC 8441 §5: the request is the HTTP/1.1 upgrade without its
            # connection-specific fields; give the library's accept() those
            # (and a key: h2 has no Sec-WebSocket-Accept to compute).
            headers["Upgrade"] = "websocket"
            headers["Connection"] = "Upgrade"
            headers["Sec-WebSocket-Key"] = base64.b64encode(secrets.token_bytes(16)).decode()
            if "Sec-WebSocket-Version" not in headers:
                self._refuse(conn, path, headers, 400,
                             "missing sec-websocket-version (RFC 8441 §5)\n")
                return
        elif method == "CONNECT":
            self._refuse(conn, path, headers, 405,
                         "CONNECT without :protocol is not served here\n")
            return
        elif method not in ("GET", "HEAD"):
            self._refuse(conn, path, headers, 405, f"method {method} not allowed\n")
            return
        request = Request(path, headers)
        if method == "HEAD":
            # What answers GET and HEAD alike reads it (server/static.py); an
            # extended CONNECT stays the GET of the HTTP/1.1 upgrade it stands for.
            request.method = method
        conn._handle_request(request)

    def _refuse(self, conn: H2StreamConnection, path: str, headers: Headers, status: int,
                body: str) -> None:
        response = conn.protocol.reject(status, body)
        response.headers["Server"] = SERVER_HEADER
        conn._send_response(Request(path, headers), response)
