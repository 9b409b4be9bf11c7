"""What the core reports: plain, immutable event records.

They are ``NamedTuple`` classes rather than frozen dataclasses on purpose: a
dataclass costs ~0.7 ms to define at import and there are two dozen of them,
which was a tenth of a one-shot ``wstool connect`` (bench/README.md).

The session core (and later the servers and the relay) never print; they call
an ``EventSink`` with these records, and a front-end renders them (``render.py``
for text and JSON lines, ``repl.py`` on a terminal). Timestamps are
``time.monotonic()`` seconds.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, NamedTuple, TypeAlias

Direction: TypeAlias = Literal["sent", "received"]


class Handshake(NamedTuple):
    """The HTTP upgrade as it went on the wire (for ``-v`` and ``/headers``)."""

    request_line: str
    request_headers: tuple[tuple[str, str], ...]
    status_code: int | None = None
    reason: str = ""
    response_headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""


class Connecting(NamedTuple):
    url: str
    attempt: int = 1
    ts: float = 0.0


class Opened(NamedTuple):
    url: str
    subprotocol: str | None
    extensions: tuple[str, ...]
    handshake: Handshake
    ts: float = 0.0


class Message(NamedTuple):
    direction: Direction
    data: str | bytes  # str: a text message, bytes: a binary message
    ts: float = 0.0

    @property
    def is_text(self) -> bool:
        return isinstance(self.data, str)

    @property
    def size_bytes(self) -> int:
        # The size on the wire before compression: UTF-8 length for text.
        return len(self.data.encode()) if isinstance(self.data, str) else len(self.data)


class Ping(NamedTuple):
    direction: Direction
    data: bytes
    ts: float = 0.0


class Pong(NamedTuple):
    direction: Direction
    data: bytes
    # Round-trip time of the ping this pong answers (received pongs only).
    rtt_s: float | None = None
    ts: float = 0.0


class FrameSeen(NamedTuple):
    """One frame as it crossed the wire (``--trace``; ``frame-dump`` relay)."""

    direction: Direction
    # A websockets.frames.Frame; typed loosely to keep this module pure.
    frame: object
    conn: int = 0
    ts: float = 0.0


class Closed(NamedTuple):
    code: int  # 1006 when no close frame was received
    reason: str
    # Who sent the first close frame: "client", "server", or None when the
    # connection dropped without a closing handshake.
    initiated_by: Literal["client", "server"] | None
    ts: float = 0.0


class Failed(NamedTuple):
    message: str
    exit_status: int
    ts: float = 0.0


class Reconnecting(NamedTuple):
    attempt: int
    delay_s: float
    reason: str
    ts: float = 0.0


class Notice(NamedTuple):
    """A diagnostic for stderr that is not an error (e.g. ``-k`` warning)."""

    text: str
    ts: float = 0.0


Event: TypeAlias = (
    Connecting
    | Opened
    | Message
    | Ping
    | Pong
    | FrameSeen
    | Closed
    | Failed
    | Reconnecting
    | Notice
)
EventSink: TypeAlias = Callable[[Event], None]


# Server events (issue 4): serve-echo and listen. ``client_id`` numbers the
# connections of one server run from 1.


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


ServerEvent: TypeAlias = (
    ServerListening | ClientConnected | ClientRejected | ClientMessage | ClientDisconnected
    | ServerSummary | FrameSeen | Notice | Ping | Pong
)
ServerEventSink: TypeAlias = Callable[[ServerEvent], None]


# Relay events (frame-dump --listen, issue 5). The decoded records are
# ``wstool.frames`` objects, typed loosely here like FrameSeen.frame.


class RelayListening(NamedTuple):
    host: str
    port: int
    upstream_url: str
    ts: float = 0.0


class RelayConnOpened(NamedTuple):
    conn: int
    peer: str
    ts: float = 0.0


class RelayDecoded(NamedTuple):
    """Records decoded from one chunk of one direction (HTTP heads and frames)."""

    conn: int
    direction: Literal["client", "server"]
    records: tuple[object, ...]
    ts: float = 0.0


class RelayError(NamedTuple):
    """Something went wrong on one connection (the relay goes on)."""

    conn: int
    message: str
    ts: float = 0.0


class RelayConnClosed(NamedTuple):
    conn: int
    reason: str
    client_bytes: int  # bytes from the client to the server
    server_bytes: int  # bytes from the server to the client
    ts: float = 0.0


RelayEvent: TypeAlias = (
    RelayListening | RelayConnOpened | RelayDecoded | RelayError | RelayConnClosed | Notice
)
RelayEventSink: TypeAlias = Callable[[RelayEvent], None]
