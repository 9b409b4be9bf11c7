"""Every use of websockets' private API, fenced in one module (issue 9, item 3).

wstool's fast paths rely on parts of the websockets library that are not its public
API (the public API: ``receive_data``/``receive_eof``, ``send_*``, ``fail``,
``events_received``, ``data_to_send``, ``state``, ``handshake_exc``, ``close_code``,
``close_reason``, ``close_exc``; ``connect(create_connection=...)`` for a
``ClientConnection`` subclass). Each of them is named here once, with what wstool
assumes and why it needs it, and ``tests/test_internals.py`` has one test per
assumption, named after it, against the installed library: a websockets upgrade that
breaks one fails exactly that test, and the fix goes here (or in the fenced code
listed below).

Checked against websockets 17.4 (the installed version when this was written);
pyproject.toml pins ``websockets>=15.0,<18``. Before widening the pin, run
``pytest tests/test_internals.py`` against the new version.

Why wstool needs them (figures in bench/README.md and the modules' docstrings):

* the client's receive fast path (``client/session.py``, ``_receive_fast``) parses
  plain data frames itself — the library's generator parser was 40 % of the pipe's
  receive profile — and may do so only while the library's parser sits at a frame
  boundary (:func:`at_frame_boundary`);
* the client frames a batch of messages itself (one ``urandom()`` for all masking
  keys) and queues the bytes on the protocol (:func:`pending_writes`), and coalesces a
  flush into one ``transport.write`` (:func:`requeue_writes`);
* the strict echo engine (``protocol/echo.py``) replaces the library's frame loop
  (issue 4: echo before later frames are parsed, incremental UTF-8, a Close between
  fragments answered cleanly), so it reads the protocol's buffers and state directly;
* end-of-connection reporting (exit statuses, ``listen --once``, who closed first)
  needs the parser's error and both Close frames.

Accessed inline, not through a function here, because they are on a per-frame or
per-chunk path where a call is measurable (serve-echo request/response is one chunk
per message); each is still a fenced assumption with its test:

* ``Protocol.writes`` — the list ``data_to_send()`` drains; bytes appended to it go
  out as they are. ``StrictEcho.send_message`` appends each raw echo;
  ``server/core.py`` ``ServerConnection.flush`` swaps it for ``[]`` per chunk;
  ``bench/generator.py``'s echo receiver writes its pre-built frames straight to the
  transport only while it is empty (per chunk; also read, by name, by its C twin
  ``bench/_closedloop.c``, with ``_state`` below).
* ``Protocol.eof_sent`` — True once ``send_eof()`` queued the half-close
  (``ServerConnection.flush``, per chunk).
* ``Protocol.reader`` — a ``StreamReader`` whose ``buffer`` is a ``bytearray`` that
  ``receive_data()`` extends in place, ``eof`` its end-of-stream flag, ``discard()``
  drops what is buffered (the ``StrictEcho`` frame loop, per frame).
* ``Protocol.events`` — the list ``events_received()`` drains; ``StrictEcho`` appends
  frames to it (per frame).
* ``Protocol._state`` — the storage behind the ``state`` property, read without the
  property's call (``StrictEcho``, per frame; ``bench/generator.py``, per chunk);
  ``side``, ``extensions`` (the negotiated ``Extension`` objects), ``max_message_size``,
  ``max_fragment_size``,
  ``current_size`` (the size of the fragmented message in progress, ``None``
  outside one), ``close_rcvd``/``close_sent``/``close_rcvd_then_sent`` (set by
  ``StrictEcho`` as ``Protocol.recv_frame`` would), ``send_frame()``, ``send_eof()``,
  ``discard()``, and ``parse()`` handing over with ``super().parse()`` once the
  handshake is parsed (how ``StrictEcho`` gets into the MRO). ``max_message_size``
  is also read once per received chunk by ``_receive_fast``.
* ``ClientConnection.protocol`` (the sans-I/O protocol it drives), ``.loop``,
  ``.transport`` and ``drain()`` (the library's wait on its write buffer) —
  ``client/session.py``, per chunk.

Hooks of ``ClientConnection`` that ``client/session.py``'s ``_Connection`` overrides
and that must stay methods of the subclass (the library calls them itself), with the
signatures in :data:`CLIENT_CONNECTION_HOOKS` (tested on the base class):

* ``process_event(self, event)`` — every event after ``connect()`` set up the
  connection: the handshake response, then every frame; wstool takes frames here
  rather than through the per-message ``recv()`` queue;
* ``send_data(self)`` — writes what ``data_to_send()`` returns; wstool coalesces it;
* ``data_received(self, data)`` and ``connection_lost(self, exc)`` — asyncio's
  ``Protocol`` hooks, which the library implements and wstool extends (the fast path,
  ``close_timeout`` after a close we did not await).

Hooks of the asyncio client's ``connect`` class that ``_Connect`` overrides, in
:data:`CONNECT_HOOKS`: ``process_redirect(self, exc)`` (-L's policy) and
``open_tcp_connection(self)`` — awaited by ``connect.connect()`` once per hop (the
first URL and each redirect) for a connection whose ``handshake()`` it then runs;
wstool opens a direct TCP connection itself there to time its phases for ``-v``
(issue 10), with :func:`connect_uri`, :func:`connect_kwargs` and
:func:`connection_factory`.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any

from websockets.frames import Close, Frame
from websockets.protocol import CLOSED, OPEN, Protocol
from websockets.streams import StreamReader

if TYPE_CHECKING:
    from websockets.asyncio.client import ClientConnection, connect
    from websockets.client import ClientProtocol
    from websockets.uri import WebSocketURI

# The overridden hooks of ClientConnection: name -> parameter names (self first).
CLIENT_CONNECTION_HOOKS: dict[str, tuple[str, ...]] = {
    "process_event": ("self", "event"),
    "send_data": ("self",),
    "data_received": ("self", "data"),
    "connection_lost": ("self", "exc"),
}

# The overridden hooks of the asyncio client's connect class, likewise.
CONNECT_HOOKS: dict[str, tuple[str, ...]] = {
    "open_tcp_connection": ("self",),
    "process_redirect": ("self", "exc"),
}

# Assumes: Protocol.parse() waits for the next frame in StreamReader.at_eof() (via
# Frame.parse -> reader.read_exact after at_eof returns False), and `parser` is that
# generator, so the innermost frame of its `yield from` chain is at_eof's.
_AT_EOF_CODE = StreamReader.at_eof.__code__


def at_frame_boundary(protocol: Protocol) -> bool:
    """True when the library's parser has consumed all it was given and waits for the
    first byte of a frame, outside a fragmented message (the client fast path may
    then parse frames itself without the two splitting one between them).

    Assumes ``protocol.parser`` is the running ``parse()`` generator, walked through
    ``gi_yieldfrom`` (ClientProtocol.parse -> Protocol.parse -> StreamReader.at_eof),
    and ``current_size`` is ``None`` between messages. Called once per received chunk.
    """
    if protocol.state is not OPEN or protocol.current_size is not None:
        return False
    waiting: Any = protocol.parser  # a generator object: gi_yieldfrom, gi_code
    while True:
        inner = waiting.gi_yieldfrom
        if inner is None:
            break
        waiting = inner
    return bool(waiting.gi_code is _AT_EOF_CODE)


def pending_writes(protocol: Protocol) -> list[bytes]:
    """The protocol's outgoing queue: bytes appended to it are what the next
    ``data_to_send()`` returns, in order (``b""`` there means a half-close: never
    append it). For frames wstool builds itself (``Session.send_many``)."""
    return protocol.writes


def requeue_writes(protocol: Protocol, writes: list[bytes]) -> None:
    """Put WRITES (taken with ``data_to_send()``) back as the outgoing queue, e.g.
    joined into one write, for the library's ``send_data()`` to write."""
    protocol.writes = writes


def parser_error(protocol: Protocol) -> Exception | None:
    """Why the library's parser failed the connection: ``ProtocolError``,
    ``PayloadTooBig``, ``UnicodeDecodeError``, ``EOFError`` (…), or None.

    Assumes ``parse()`` stores it in ``parser_exc`` after ``fail()`` (the library
    never raises it from ``receive_data``); ``StrictEcho`` stores its own there too.
    """
    return protocol.parser_exc


def close_frames(protocol: Protocol) -> tuple[Close | None, Close | None, bool | None]:
    """(Close received, Close sent, whether ours answered theirs) — who closed first,
    with which code, for the Closed event and the exit status. The public
    ``close_code``/``close_reason`` only give the received one, once CLOSED."""
    return protocol.close_rcvd, protocol.close_sent, protocol.close_rcvd_then_sent


def replace_parser(protocol: Protocol, parser: Generator[None]) -> None:
    """Install PARSER as the generator ``receive_data()`` steps, started.

    The server installs a fresh ``frame_loop()`` once it has accepted (drops the
    handshake's generator frames: memory per idle connection, issue 4);
    ``StrictEcho`` installs ``discard()`` after answering a Close (§1.4), as the
    library's ``recv_frame`` does.
    """
    protocol.parser = parser
    next(parser)


def trace_sent_frames(protocol: Protocol, before_send: Callable[[Frame], None]) -> None:
    """Call BEFORE_SEND with every frame the protocol sends (``--trace``): wraps the
    instance's ``send_frame``, through which every ``send_*``, ``fail`` and the
    automatic Pong go."""
    send_frame = protocol.send_frame

    def traced_send_frame(frame: Frame) -> None:
        before_send(frame)
        send_frame(frame)

    protocol.send_frame = traced_send_frame  # type: ignore[method-assign]


def report_sent_pings(protocol: Protocol, on_ping: Callable[[bytes], None]) -> None:
    """Call ON_PING with the payload of every Ping the protocol sends (``-P``):
    wraps the instance's public ``send_ping``, through which the connection's
    ``ping()`` (keepalive and ``/ping``) goes."""
    send_ping = protocol.send_ping

    def reported_send_ping(data: Any) -> None:
        send_ping(data)
        on_ping(bytes(data))

    protocol.send_ping = reported_send_ping  # type: ignore[method-assign]


def end_of_stream(protocol: Protocol) -> None:
    """The TCP connection is gone: feed EOF unless the reader already has it, and
    mark the protocol CLOSED (the server drives ``ServerProtocol`` without the
    library's connection class, which does both)."""
    if not protocol.reader.eof:
        protocol.receive_eof()
    protocol.state = CLOSED


def pong_rtt_s(conn: ClientConnection, data: bytes) -> float | None:
    """The round-trip time of the ping a Pong with DATA answers, before the library's
    ``process_event`` resolves it; None for an unsolicited Pong.

    Assumes ``pending_pings`` maps a ping's payload to a tuple whose second item is
    when it was sent, in ``conn.loop.time()``.
    """
    pending = conn.pending_pings.get(data)
    return None if pending is None else conn.loop.time() - pending[1]


def close_deadline(conn: ClientConnection) -> float | None:
    """When the library gives up waiting for the closing handshake (loop time), set
    once a Close went out; None before."""
    return conn.close_deadline


def connection_error(conn: ClientConnection) -> BaseException | None:
    """The exception the transport reported (``connection_lost``), if any — a TLS alert
    after the handshake only shows up here."""
    return conn.connection_exc


def set_connection_error(conn: ClientConnection, exc: BaseException) -> None:
    """Record EXC as the transport's failure (first one wins), as the library does
    when a write fails."""
    conn.set_connection_exc(exc)


def allow_redirects(count: int) -> None:
    """Let ``connect()`` follow COUNT redirects. Assumes the asyncio client's
    ``connect.connect()`` loops ``for _ in range(MAX_REDIRECTS)`` over a module global
    (read at each call; set from $WEBSOCKETS_MAX_REDIRECTS at import, default 10).
    wstool counts hops itself for --max-redirects (``client/session.py``
    ``_Connect.process_redirect``) and only raises the library's bound when a user asks
    for more than it allows: one more than COUNT, so that ours is the limit reported.
    Called once per connection attempt.
    """
    from websockets.asyncio import client

    if count >= client.MAX_REDIRECTS:
        client.MAX_REDIRECTS = count + 1


def client_key(protocol: ClientProtocol) -> str:
    """The Sec-WebSocket-Key ``ClientProtocol.connect()`` put in its request: assumes
    the protocol generates it once, in ``__init__``, keeps it in ``key`` and checks the
    response's Sec-WebSocket-Accept against it. ``connect --http2`` (issue 12) hands
    the library a 101 equivalent of the server's ``:status 200`` (RFC 8441 has no
    key), whose accept key is computed from this one."""
    return protocol.key


def connect_uri(connector: connect) -> WebSocketURI:
    """The URL of the hop ``open_tcp_connection()`` is opening: assumes ``connect``
    keeps it parsed in ``ws_uri`` and updates it before following a redirect."""
    return connector.ws_uri


def connect_kwargs(connector: connect) -> dict[str, Any]:
    """What ``connect()`` passes to ``loop.create_connection`` (its "any other keyword
    arguments": ``ssl``, ``server_hostname``, ``unix``, ``path`` ...), kept in
    ``create_connection_kwargs``; wstool's redirect policy updates it per hop."""
    return connector.create_connection_kwargs


def connection_factory(connector: connect) -> Callable[[], ClientConnection]:
    """The asyncio protocol factory for the current hop: assumes ``connect`` keeps
    ``factory(ws_uri)``, which builds the ``ClientProtocol`` and the connection through
    ``create_connection=`` with the keepalive, close-timeout and limit settings."""
    factory = connector.factory
    uri = connector.ws_uri
    return lambda: factory(uri)
