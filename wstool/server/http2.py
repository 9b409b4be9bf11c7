"""``serve-echo --http2`` and ``listen --http2``: WebSockets over HTTP/2 (RFC 8441).

The server's port keeps speaking HTTP/1.1; with ``--http2`` a connection that
chose ``h2`` by ALPN (TLS) or starts with the HTTP/2 preface (cleartext, "h2c
with prior knowledge", RFC 9113 §3.3) is handed over by
``core.ServerConnection`` to an ``H2Session`` (``server/h2_session.py``, imported
only then): python-hyper's sans-I/O ``h2`` (bytes in, events out, as websockets'
protocol) driven by ``wstool/http2/stream.py``'s ``H2Endpoint``, one asyncio
protocol per TCP connection, the client's with the server's policies.

The session advertises ``SETTINGS_ENABLE_CONNECT_PROTOCOL = 1`` (RFC 8441 §3).
Each stream is an ``H2StreamConnection``, a ``core.ServerConnection`` whose
transport is the stream (``H2StreamTransport``, the client's): an extended CONNECT
(``:method CONNECT``, ``:protocol websocket``) becomes the same ``Request`` an
HTTP/1.1 upgrade is, goes through the same checks (origin, auth,
``--max-connections``, subprotocol, permessage-deflate) and, once answered
``:status 200``, through the same strict echo engine (``protocol/echo.py``): the
stream's DATA carries RFC 6455 frames, masking included (RFC 8441 §5). A GET or
HEAD goes through the same code as a plain HTTP/1.1 request (``/health``, the 426
page). Several sockets share one TCP connection. The stream transport pauses
reading (DATA kept and not acknowledged) and reports its write buffer as a socket
does, so ``listen --exec`` and ``listen --to-tcp`` bridge HTTP/2 clients too.

Flow control (RFC 9113 §5.2): received DATA is acknowledged once the engine has
consumed it, so a large message never stalls; but while a stream has more than
1 MiB of echoes waiting for the client's window (or the TCP
connection is paused), acknowledgements wait, so the client's window closes and
memory per stream stays bounded (window + one message + the high-water mark).

Ends: the stream's END_STREAM is the TCP half-close of HTTP/1.1 (RFC 8441 §5.1);
RST_STREAM from the client is a lost connection (1006) for that socket only;
shutdown sends GOAWAY and closes the sockets with 1001.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING

from wstool.config import ServerConfig
from wstool.errors import UsageError

if TYPE_CHECKING:
    from wstool.server.core import WebSocketServer
    from wstool.server.h2_session import H2Session

INSTALL_HINT = "pip install 'wstool[http2]'"


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
    from wstool.server.h2_session import H2Session

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
            session.goaway_at_shutdown()

    server.h2_handoff = handoff
    server.shutdown_hooks.append(goaway_all)
