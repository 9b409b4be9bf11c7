"""What the core reports: plain, immutable event records.

They are ``NamedTuple`` classes rather than frozen dataclasses on purpose: a
dataclass costs ~0.7 ms to define at import and there are two dozen of them,
which was a tenth of a one-shot ``wstool connect`` (bench/README.md).

The session core never prints; it calls an ``EventSink`` with these records, and
a front-end renders them (``render.py`` for text and JSON lines, ``repl.py`` on a
terminal). Timestamps are ``time.monotonic()`` seconds. The servers' and the
relay's records are in ``server_events.py`` and ``relay_events.py``: a one-shot
``connect`` does not pay for defining them.
"""

# No `from __future__ import annotations` here, on purpose (issue 14): typing.NamedTuple
# turns every string annotation into a ForwardRef, which compiles it (~175 000
# instructions a field); real annotations cost next to nothing. The few names that
# exist only for type checkers are quoted.

from collections.abc import Callable
from typing import TYPE_CHECKING, Literal, NamedTuple, TypeAlias

if TYPE_CHECKING:
    # For the annotation only: this module stays pure and quick to import.
    from websockets.frames import Frame

Direction: TypeAlias = Literal["sent", "received"]


class Handshake(NamedTuple):
    """The HTTP upgrade as it went on the wire (for ``-v`` and ``/headers``)."""

    request_line: str
    request_headers: tuple[tuple[str, str], ...]
    status_code: int | None = None
    reason: str = ""
    response_headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""  # its first bytes (bounded): -v shows its first lines
    # The status line's protocol: "HTTP/1.0" when wstool read a response the
    # library's HTTP/1.1 parser refuses (issue 10).
    http_version: str = "HTTP/1.1"
    # Bytes received that are not an HTTP response at all (bounded), for -v.
    unparsed: bytes = b""
    # From sending the request to the whole response (None: no response).
    elapsed_s: float | None = None


class Connecting(NamedTuple):
    url: str
    attempt: int = 1
    ts: float = 0.0


class ConnectPhase(NamedTuple):
    """A step of setting up the connection, as curl -v's ``*`` lines (issue 10):
    ``resolved``, ``connecting``, ``connect-failed``, ``connected`` (direct TCP),
    ``connected-proxy``, ``connected-unix``, ``tls``, ``certificate``. Only reported
    when the front-end asks (``-v``)."""

    phase: str
    text: str  # e.g. "connected to 127.0.0.1 port 9112"; remote parts unescaped
    elapsed_s: float | None = None  # how long the step took
    ts: float = 0.0


class Opened(NamedTuple):
    url: str
    subprotocol: str | None
    extensions: tuple[str, ...]
    handshake: Handshake
    ts: float = 0.0


class Redirected(NamedTuple):
    """The server answered the upgrade with a 3xx and ``-L`` follows it (issue 10)."""

    status_code: int
    reason: str
    from_url: str
    to_url: str
    handshake: Handshake  # the request and the 3xx response, for -v
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
    frame: "Frame"  # as the library parsed it (received) or is about to send it
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


class ExpectResult(NamedTuple):
    """How an ``--expect`` or ``--capture`` step (or a scenario's) ended (issue 11)."""

    pattern: str  # as the user wrote it, json: prefix included
    ok: bool
    # The matched message's number among those received on this connection (1-based).
    message_index: int | None
    elapsed_s: float  # from the start of the step (the previous match) to its end
    capture: str | None = None  # the capture's NAME; None for an --expect
    ts: float = 0.0


class Notice(NamedTuple):
    """A diagnostic for stderr that is not an error (e.g. ``-k`` warning)."""

    text: str
    ts: float = 0.0


Event: TypeAlias = (
    Connecting
    | ConnectPhase
    | Opened
    | Redirected
    | Message
    | Ping
    | Pong
    | FrameSeen
    | Closed
    | Failed
    | Reconnecting
    | ExpectResult
    | Notice
)
EventSink: TypeAlias = Callable[[Event], None]
