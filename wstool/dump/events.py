"""What the frame-dump relay reports (``frame-dump --listen``).

The decoded records are ``wstool.protocol.frames`` objects (imported for the
annotation only). Kept apart from ``events.py`` for start-up, like the servers'
``server/events.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Literal, NamedTuple, TypeAlias

from wstool.events import Notice

if TYPE_CHECKING:
    from wstool.protocol.frames import Decoded


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
    records: tuple[Decoded, ...]
    ts: float = 0.0


class RelayError(NamedTuple):
    """Something went wrong on one connection (the relay goes on).

    ``protocol``: a peer's bytes could not be decoded (a request head that does
    not parse, a stream that ends inside a frame): a protocol problem, which
    counts toward frame-dump's exit status 6 like a frame's. False for what is
    not the traffic's fault (an unreachable upstream, a decoder bug).
    """

    conn: int
    message: str
    ts: float = 0.0
    protocol: bool = False


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
