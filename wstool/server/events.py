"""What the servers report (serve-echo, listen): event records like ``events.py``'s.

``client_id`` numbers the connections of one server run from 1. Kept apart from
``events.py`` so that a client run does not define them (start-up, bench/README.md).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, NamedTuple, TypeAlias

from wstool.events import Direction, FrameSeen, Handshake, Notice, Ping, Pong


class ServerListening(NamedTuple):
    url: str
    ts: float = 0.0


class ClientConnected(NamedTuple):
    client_id: int
    peer: str
    path: str
    subprotocol: str | None
    extensions: tuple[str, ...]
    handshake: Handshake
    ts: float = 0.0


class ClientRejected(NamedTuple):
    """An HTTP request answered without an upgrade (401, 403, 426, 503, /health...),
    or a connection dropped before its handshake (``status`` None)."""

    client_id: int
    peer: str
    status: int | None
    reason: str
    ts: float = 0.0


class ClientMessage(NamedTuple):
    client_id: int
    direction: Direction
    data: str | bytes
    ts: float = 0.0


class ClientDisconnected(NamedTuple):
    client_id: int
    peer: str
    code: int  # 1006 when no close frame was received
    reason: str
    initiated_by: Literal["client", "server"] | None
    messages_in: int = 0
    messages_out: int = 0
    error: str | None = None  # what failed the connection, if we did
    ts: float = 0.0
    # The peer broke the protocol (bad frame, invalid UTF-8, over --max-size).
    protocol_error: bool = False


class ServerSummary(NamedTuple):
    connections: int
    messages_in: int
    messages_out: int
    bytes_in: int
    bytes_out: int
    ts: float = 0.0


class H2ConnectionEvent(NamedTuple):
    """``--http2``: a TCP connection speaks HTTP/2 (``via`` "h2": TLS with ALPN h2;
    "h2c": cleartext with prior knowledge), or that connection ended."""

    peer: str
    state: Literal["opened", "closed"]
    via: str
    streams: int = 0  # streams it carried (when closed)
    error: str | None = None  # why it ended, when not a clean close
    ts: float = 0.0


class H2StreamEvent(NamedTuple):
    """``--http2``: a stream of an HTTP/2 connection opened or closed; ``client_id``
    is the id of the WebSocket connection (or HTTP request) it carries."""

    client_id: int
    peer: str
    stream_id: int
    state: Literal["opened", "closed"]
    method: str
    path: str
    protocol: str | None = None  # :protocol of an extended CONNECT (RFC 8441)
    error: str | None = None  # e.g. reset by the client
    ts: float = 0.0


ServerEvent: TypeAlias = (
    ServerListening | ClientConnected | ClientRejected | ClientMessage | ClientDisconnected
    | ServerSummary | FrameSeen | Notice | Ping | Pong | H2ConnectionEvent | H2StreamEvent
)
ServerEventSink: TypeAlias = Callable[[ServerEvent], None]
