"""``connect --http2``: an HTTP/2 connection, its SETTINGS, one extended CONNECT.

``open_endpoint()`` connects (TLS with ALPN ``h2``, or h2c with prior knowledge on
``ws://``, RFC 8441 §3 / RFC 9113 §3.3), sends the preface and waits for the
server's SETTINGS. :class:`NotH2` says why the server cannot take a WebSocket over
HTTP/2 (ALPN chose ``http/1.1``, no ``ENABLE_CONNECT_PROTOCOL``, not HTTP/2 at all):
the session falls back to the HTTP/1.1 upgrade, or fails with ``--http2=only``.

``websocket_handshake()`` replaces websockets' HTTP/1.1 opening handshake for a
``ClientConnection`` whose transport is an ``H2StreamTransport``: the request the
library built goes out as the extended CONNECT; a 200 answer is handed to the
library as the equivalent 101 (``rfc8441.upgrade_response``), anything else raises
the library's ``InvalidStatus`` with the status, headers and body, as an HTTP/1.1
refusal does (exit 4).
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import ssl
import time
from collections.abc import Callable
from typing import Any

from websockets.datastructures import Headers
from websockets.exceptions import InvalidStatus
from websockets.http11 import Response

from wstool.errors import HandshakeRejected
from wstool.http2.rfc8441 import (
    ENABLE_CONNECT_PROTOCOL,
    extended_connect_block,
    status_of,
    upgrade_response,
)
from wstool.http2.stream import GoAway, H2Endpoint, H2StreamTransport, StreamReset
from wstool.protocol import internals
from wstool.term.render import escape

# What -v shows of a refusal's body, and how long we wait for it after the status.
BODY_RECORD_BYTES = 64 * 1024
BODY_WAIT_S = 1.0


class NotH2(Exception):
    """The server does not take WebSockets over HTTP/2; the reason, in plain words."""


class H2ClientEndpoint(H2Endpoint):
    """The client's HTTP/2 connection: one WebSocket stream, then GOAWAY and close."""

    def __init__(self, *, trace: Callable[[str, str], None] | None = None) -> None:
        super().__init__(client_side=True, trace=trace)

    def stream_closed(self, stream: H2StreamTransport) -> None:
        if not self.streams:
            self.loop.call_soon(self.close)


class H2Exchange:
    """The extended CONNECT as it went (-v): header blocks, how long the answer took."""

    def __init__(self, stream_id: int, request_block: list[tuple[str, str]]) -> None:
        self.stream_id = stream_id
        self.request_block = request_block
        self.response_block: list[tuple[str, str]] = []
        self.body = b""
        self.elapsed_s: float | None = None


def alpn_protocols(strict: bool) -> list[str]:
    return ["h2"] if strict else ["h2", "http/1.1"]


async def open_endpoint(
    host: str,
    port: int,
    *,
    ssl_context: ssl.SSLContext | None,
    server_hostname: str | None = None,
    strict: bool = False,
    trace: Callable[[str, str], None] | None = None,
) -> H2ClientEndpoint:
    """Connect and read the server's SETTINGS; raise NotH2 when HTTP/2 WebSockets
    cannot work there (the connection is closed then), OSError/ssl errors as
    ``loop.create_connection`` does."""
    loop = asyncio.get_running_loop()
    if ssl_context is not None:
        ssl_context.set_alpn_protocols(alpn_protocols(strict))
    kwargs: dict[str, Any] = {}
    if ssl_context is not None:
        kwargs["ssl"] = ssl_context
        kwargs["server_hostname"] = server_hostname or host
    transport, endpoint = await loop.create_connection(
        lambda: H2ClientEndpoint(trace=trace), host, port, **kwargs)
    try:
        if ssl_context is not None:
            ssl_object = transport.get_extra_info("ssl_object")
            chosen = ssl_object.selected_alpn_protocol() if ssl_object else None
            if chosen != "h2":
                raise NotH2("the server did not choose h2 in ALPN (it chose "
                            f"{chosen or 'nothing'})")
        try:
            await endpoint.settings_received
        except (ConnectionError, OSError) as exc:
            if endpoint.protocol_error is not None or ssl_context is None:
                first = endpoint.first_bytes
                status_line = escape(first.split(b"\r\n", 1)[0].decode("latin-1")[:100])
                answer = (f"it answered {status_line!r}" if first.startswith(b"HTTP/") else
                          "it closed the connection" if not first else str(exc))
                raise NotH2("the server does not speak HTTP/2 (h2c with prior knowledge "
                            f"on ws://): {answer}") from exc
            raise
        if endpoint.remote_settings.get(ENABLE_CONNECT_PROTOCOL) != 1:
            raise NotH2("the server speaks HTTP/2 but does not advertise "
                        "SETTINGS_ENABLE_CONNECT_PROTOCOL (RFC 8441)")
    except BaseException:
        endpoint.close()
        transport.abort()
        raise
    return endpoint


async def websocket_handshake(
    conn: Any,  # websockets.asyncio.client.ClientConnection over an H2StreamTransport
    stream: H2StreamTransport,
    *,
    scheme: str,
    authority: str | None,
    additional_headers: Any,
    user_agent_header: str | None,
    exchange_ready: Callable[[H2Exchange], None],
) -> H2Exchange:
    """The opening handshake over HTTP/2 (see module doc); sets ``conn.request``,
    and the library's ``conn.response`` (the 101 equivalent) on success."""
    request = conn.protocol.connect()
    if additional_headers is not None:
        request.headers.update(additional_headers)
    if user_agent_header is not None:
        request.headers.setdefault("User-Agent", user_agent_header)
    conn.request = request
    block = extended_connect_block(
        scheme=scheme, authority=authority or request.headers["Host"],
        path=request.path, headers=request.headers.raw_items())
    exchange = H2Exchange(stream.stream_id, block)
    exchange_ready(exchange)
    start = time.perf_counter()
    stream.endpoint.send_headers(stream.stream_id, block)
    try:
        response_block = await stream.headers_received
    except (StreamReset, GoAway) as exc:
        # Refused before any answer (REFUSED_STREAM, a GOAWAY for our stream...): the
        # server saw the request and said no, as a status would (exit 4).
        raise HandshakeRejected(f"no answer to the extended CONNECT: {exc}") from exc
    exchange.elapsed_s = time.perf_counter() - start
    exchange.response_block = response_block
    status = status_of(response_block)
    if status != 200:
        if not stream.ended.done():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(stream.ended), BODY_WAIT_S)
        body = stream.early_data()[:BODY_RECORD_BYTES]
        exchange.body = body
        headers = Headers((n, v) for n, v in response_block if not n.startswith(":"))
        code = status if status is not None else 502
        try:
            reason = http.HTTPStatus(code).phrase
        except ValueError:
            reason = ""
        raise InvalidStatus(Response(code, reason, headers, body))
    stream.start(upgrade_response(response_block, internals.client_key(conn.protocol)))
    if conn.protocol.handshake_exc is not None:
        raise conn.protocol.handshake_exc
    return exchange
