"""The server's HTTP/2 connection (``--http2``): an ``H2Endpoint`` whose streams are
``ServerConnection``s (see ``server/http2.py`` for the whole picture).

:class:`H2Session` is ``wstool/http2/stream.py``'s ``H2Endpoint`` with the server's
policies: its windows (1 MiB per stream, 16 MiB for the connection),
``SETTINGS_ENABLE_CONNECT_PROTOCOL`` (RFC 8441 §3), streams whose unsent echoes
above 1 MiB stop the acknowledgement of what they receive (bounded memory: the
client's window closes), ``--open-timeout`` for a connection that opens no stream,
GOAWAY after the last stream at shutdown, the ``H2ConnectionEvent``/``H2StreamEvent``
reports and the reset's wording in the server's logs. Each stream is an
:class:`H2StreamConnection` over the stream's ``H2StreamTransport``, exactly as a
``ServerConnection`` is over TCP, so the bridges (``listen --exec``,
``listen --to-tcp``) pause it and measure it as they do a socket.

Imported only with ``--http2`` (it imports ``h2``, the optional extra).
"""

from __future__ import annotations

import asyncio
import base64
import secrets
import time
from collections.abc import Iterable
from typing import cast

import h2.errors
import h2.events
import h2.settings
from websockets.datastructures import Headers
from websockets.exceptions import InvalidHeader
from websockets.http11 import Request, Response

from wstool.events import Handshake
from wstool.http2.rfc8441 import error_name
from wstool.http2.stream import H2Endpoint, H2StreamTransport, StreamFailed, StreamReset
from wstool.server.core import SERVER_HEADER, ServerConnection, WebSocketServer, _peer_name
from wstool.server.events import H2ConnectionEvent, H2StreamEvent
from wstool.term.render import escape

# Our receive windows: 1 MiB per stream, 16 MiB for the connection (the defaults,
# 64 KiB, would cost one round trip per 64 KiB of a large message).
_STREAM_WINDOW = 1 << 20
_CONNECTION_WINDOW = 16 << 20
_MAX_CONCURRENT_STREAMS = 128
# Echoes waiting for the client's window: above this, the stream's writing is paused
# and what it receives is not acknowledged.
_HIGH_WATER = 1 << 20

# RFC 9113 §8.2.2: connection-specific fields are not sent over HTTP/2; the
# accept key has no place in RFC 8441's handshake (§5).
_NOT_IN_H2 = frozenset({
    "connection", "upgrade", "keep-alive", "proxy-connection", "transfer-encoding",
    "sec-websocket-accept",
})


def _text(value: bytes) -> str:
    return value.decode("latin-1")


class H2StreamConnection(ServerConnection):
    """A ServerConnection over one stream: the request comes as HEADERS, the
    response goes as HEADERS (RFC 8441 §5: ``:status 200`` for a WebSocket)."""

    transport_stream: H2StreamTransport
    sniff_h2 = False  # already HTTP/2
    method = "GET"
    h2_path = "/"
    h2_protocol: str | None = None
    h2_request_headers: tuple[tuple[str, str], ...] = ()
    h2_response_headers: tuple[tuple[str, str], ...] = ()

    def _send_response(self, request: Request, response: Response) -> None:
        stream = self.transport_stream
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
            stream.send_headers(fields)
            self._accepted(request, response)
            stream.start()  # from now on DATA is WebSocket frames
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
        # RFC 9113 §8.1: the response is complete before the request; once it is
        # out, ask the client to stop sending with RST_STREAM NO_ERROR.
        stream.reset_after_end = True
        stream.send_headers(fields, end_stream=head or not body)
        if body and not head:
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


class H2Session(H2Endpoint):
    """One HTTP/2 connection of the server: the h2 state machine and its streams."""

    transport: asyncio.Transport
    stream_window_bytes = _STREAM_WINDOW
    connection_window_bytes = _CONNECTION_WINDOW
    stream_high_water = stream_low_water = _HIGH_WATER
    hold_acks_while_writing_paused = True
    early_data_bytes = 0  # DATA before the response (a GET's body): dropped
    loss_to_protocol = False  # as over TCP, conn.error says why (stream_closed)

    def __init__(self, server: WebSocketServer, via: str, registry: set[H2Session]) -> None:
        super().__init__(client_side=False)
        self.server = server
        self.via = via
        self.registry = registry
        self.peer = "?"
        self.stream_count = 0
        self.goaway_sent = False

    def local_settings(self) -> dict[h2.settings.SettingCodes, int]:
        codes = h2.settings.SettingCodes
        return {codes.ENABLE_CONNECT_PROTOCOL: 1,  # RFC 8441 §3
                codes.MAX_CONCURRENT_STREAMS: _MAX_CONCURRENT_STREAMS}

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.peer = _peer_name(transport)
        self.registry.add(self)
        super().connection_made(transport)
        self.server.sink(H2ConnectionEvent(self.peer, "opened", self.via, ts=time.monotonic()))
        open_timeout_s = self.server.config.open_timeout_s
        if open_timeout_s is not None:
            # --open-timeout: a connection that opens no stream has no handshake either.
            self.server.loop.call_later(open_timeout_s, self._open_timed_out)

    def _open_timed_out(self) -> None:
        if not self.stream_count and not self.closed:
            self.error = (f"no stream within --open-timeout "
                          f"{self.server.config.open_timeout_s}s")
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.registry.discard(self)
        if exc is not None:
            for stream in self.streams.values():
                conn = cast(H2StreamConnection, stream.get_protocol())
                if conn.opened:
                    conn.error = conn.error or f"connection lost: {exc}"
            if self.error is None:
                self.error = f"connection lost: {exc}"
        super().connection_lost(exc)
        self.server.sink(H2ConnectionEvent(self.peer, "closed", self.via, self.stream_count,
                                           self.error, ts=time.monotonic()))

    # The hooks of H2Endpoint

    def reset_error(self, error_code: int) -> BaseException:
        return StreamReset(error_code, "stream reset by the client "
                                       f"(RST_STREAM {error_name(error_code)})")

    def stream_closed(self, stream: H2StreamTransport) -> None:
        """The stream is over: reported; its connection is lost next, as a TCP
        connection's would be (with conn.error saying why)."""
        if self.goaway_sent and not self.streams:
            self.loop.call_soon(self.close)  # after this stream's last frames
        conn = cast("H2StreamConnection | None", stream.get_protocol())
        if conn is None:  # its ServerConnection could not be made (event_failed)
            return
        loss = stream.loss
        error = str(loss) if isinstance(loss, StreamReset | StreamFailed) else None
        if error is not None and conn.opened and (
                conn.error is None or isinstance(loss, StreamFailed)):
            conn.error = error
        self.server.sink(H2StreamEvent(
            conn.client_id, self.peer, stream.stream_id, "closed", conn.method,
            conn.h2_path, conn.h2_protocol, error, ts=time.monotonic()))

    def goaway_received(self, goaway: object) -> None:
        # The client's GOAWAY: it opens no new streams; the open ones go on.
        if not self.streams:
            self.close_transport()

    def close_transport(self) -> None:
        # TLS waits for the client's close_notify: not longer than --close-timeout.
        self.transport.close()
        self.server.loop.call_later(self.server.config.close_timeout_s, self.transport.abort)

    def goaway_at_shutdown(self) -> None:
        """Shutdown: refuse new streams; the server closes the open sockets (1001),
        and once their streams are done (stream_closed) GOAWAY goes out and TCP closes.

        Not RFC 9113 §6.8's early GOAWAY before the last frames: h2 as a client
        (and so every client built on it) moves to CLOSED on a GOAWAY and then
        refuses the DATA still to come, the close frames included.
        """
        if self.goaway_sent or self.closed:
            return
        self.goaway_sent = True
        if not self.streams:
            self.close()

    # A new stream

    def request_received(self, event: h2.events.RequestReceived) -> None:
        stream_id = event.stream_id or 0
        if self.goaway_sent:
            # RFC 9113 §8.7: a stream the server will not process.
            self.reset(stream_id, h2.errors.ErrorCodes.REFUSED_STREAM)
            return
        self._request(stream_id, event.headers or [], event.stream_ended is not None)

    def _request(self, stream_id: int, raw: Iterable[tuple[bytes, bytes]],
                 ended: bool) -> None:
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
        stream = self.adopt_stream(stream_id)
        self.stream_count += 1
        conn = H2StreamConnection(self.server)
        conn.transport_stream = stream
        conn.method = method
        conn.h2_path = path
        conn.h2_protocol = protocol
        conn.h2_request_headers = (*pseudo.items(), *fields)
        stream.set_protocol(conn)
        conn.connection_made(stream)
        self.server.sink(H2StreamEvent(conn.client_id, self.peer, stream_id, "opened", method,
                                       path, protocol, ts=time.monotonic()))
        if ended:
            stream._on_end()  # the request's END_STREAM: the response ends the stream
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
