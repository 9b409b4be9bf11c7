"""One HTTP/2 connection over asyncio, and an asyncio transport per stream.

Shared by the client (``connect --http2``, ``client.py``) and the server
(``serve-echo``/``listen --http2``, ``server/http2.py``): the WebSocket connection of
a stream — websockets' asyncio ``ClientConnection`` for the client, a
``ServerConnection`` for the server — runs over an :class:`H2StreamTransport`
exactly as it runs over TCP: ``write()`` becomes DATA frames, ``close()``/
``write_eof()`` END_STREAM, ``abort()`` RST_STREAM; DATA received goes to the
protocol's ``data_received()``, END_STREAM to ``eof_received()``, a reset or the loss
of the TCP connection to ``connection_lost()``.

Flow control (RFC 9113 §5.2): DATA received is acknowledged (``WINDOW_UPDATE``) as
soon as the protocol has consumed it, which it does in the ``data_received()`` call.
``pause_reading()`` is TCP's: DATA is kept here, not given to the protocol and not
acknowledged, so the peer's window for the stream runs out and it stops sending
(memory bounded by our stream window); ``resume_reading()`` hands it over. Writes
wait for the peer's windows, buffered here, and the protocol's ``pause_writing()``/
``resume_writing()`` follow that buffer and ``set_write_buffer_limits()`` (the
``drain()`` of websockets and of the bridges is the backpressure, as over TCP).

:class:`H2Endpoint` is the ``asyncio.Protocol`` of the TCP (or TLS) connection: it
owns the sans-I/O ``h2.connection.H2Connection``, dispatches its events to the
streams (an exception costs the stream it concerns, RST_STREAM INTERNAL_ERROR, not
the connection) and writes what h2 has to send once per received chunk (what the
streams write while it is handled goes out with it) or per write outside of one.
Its class attributes are the side's policies (windows, write limits, whether a
stream whose writes are paused stops acknowledging); subclasses (``client.py``,
``server/http2.py``) add what their side does with new streams and ends.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import Callable
from typing import Any, cast

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
from h2.errors import ErrorCodes

from wstool.http2.rfc8441 import FrameTracer, decode_block, error_name

# A stream's write buffer above which its protocol is paused (asyncio's default).
WRITE_HIGH_WATER_BYTES = 64 * 1024
# Our receive windows (RFC 9113 §6.9.2): large, so that a fast sender is never
# waiting for a WINDOW_UPDATE round trip on loopback; the defaults (64 KiB) would
# make a 100 MB transfer a thousand and more round trips.
RECEIVE_WINDOW_BYTES = 8 * 1024 * 1024
# The largest DATA frame the peer may send us (RFC 9113 §6.5.2; default 16 KiB):
# h2's cost is per frame, and a server's echoes come in fewer, larger frames.
MAX_FRAME_BYTES = 256 * 1024
# DATA kept before start() (a refusal's body, the first frames after a 200).
EARLY_DATA_BYTES = 1 << 26


class StreamReset(ConnectionResetError):
    """The peer reset the stream (RST_STREAM)."""

    def __init__(self, error_code: int, message: str | None = None) -> None:
        self.error_code = error_code
        super().__init__(
            message or f"the server reset the HTTP/2 stream ({error_name(error_code)})")


class StreamFailed(ConnectionError):
    """Handling one of the stream's events raised: we reset the stream
    (INTERNAL_ERROR); the connection and its other streams go on."""


class GoAway(ConnectionError):
    """The peer ended the connection (GOAWAY) before the stream ended."""

    def __init__(self, error_code: int, last_stream_id: int, debug: bytes = b"") -> None:
        self.error_code = error_code
        self.last_stream_id = last_stream_id
        detail = debug.decode("utf-8", "replace")[:200]
        super().__init__(
            f"the server sent GOAWAY ({error_name(error_code)}, last stream "
            f"{last_stream_id})" + (f": {detail}" if detail else ""))


class H2StreamTransport(asyncio.Transport):
    """An asyncio transport over one HTTP/2 stream of an :class:`H2Endpoint`.

    Until :meth:`start`, DATA received is kept (up to the endpoint's
    ``early_data_bytes``: a non-200 answer's body, or the first WebSocket frames that
    came with the 200), not given to the protocol: the protocol is attached before the
    stream's answer is known.
    """

    # RFC 9113 §8.1: once our END_STREAM is out, RST_STREAM NO_ERROR if the peer has
    # not ended (a server that answered without reading the request: a refusal).
    reset_after_end = False

    def __init__(self, endpoint: H2Endpoint, stream_id: int) -> None:
        super().__init__()
        self.endpoint = endpoint
        self.stream_id = stream_id
        self._protocol: Any = None
        # Written, not yet sent (flow control): views of bytes, sent without a copy.
        self._pending: collections.deque[memoryview] = collections.deque()
        self._pending_bytes = 0
        self._end_pending = False  # END_STREAM once _pending is sent
        self._end_sent = False
        self._end_received = False
        self._closing = False
        self._lost = False
        self.loss: BaseException | None = None  # why the stream ended, if not cleanly
        self._paused_protocol = False
        self._high_water = endpoint.stream_high_water
        self._low_water = endpoint.stream_low_water
        self._reading = True
        self._held = bytearray()  # DATA received while reading is paused
        self._held_flow = 0  # its flow-controlled length (padding included)
        self._held_end = False  # END_STREAM received behind it
        self._delivery: asyncio.Handle | None = None
        self._unacknowledged = 0  # consumed, acknowledgement deferred
        self._started = False
        self._early = bytearray()  # DATA before start()
        self.headers: list[tuple[str, str]] | None = None  # the peer's header block
        self.headers_received: asyncio.Future[list[tuple[str, str]]] = (
            endpoint.loop.create_future())
        self.ended: asyncio.Future[None] = endpoint.loop.create_future()

    # What the endpoint calls

    def _on_headers(self, block: list[tuple[str, str]]) -> None:
        if self.headers is None:
            self.headers = block
            if not self.headers_received.done():
                self.headers_received.set_result(block)

    def _on_data(self, data: bytes, flow_length: int) -> None:
        if not self._started:
            if len(self._early) < self.endpoint.early_data_bytes:  # bounded
                self._early += data
        elif self._lost:
            pass
        elif not self._reading or self._held:
            # Paused, or resumed with the earlier DATA not handed over yet: behind it.
            self._held += data
            self._held_flow += flow_length
            return  # acknowledged when handed over
        else:
            self._protocol.data_received(data)
        self._ack(flow_length)

    def _ack(self, flow_length: int) -> None:
        if not flow_length:
            return
        if not self._reading or (self._paused_protocol
                                 and self.endpoint.hold_acks_while_writing_paused):
            self._unacknowledged += flow_length
            return
        self.endpoint.acknowledge(self.stream_id, flow_length)

    def _release_acks(self) -> None:
        count = self._unacknowledged
        if not count or self._lost or not self._reading or (
                self._paused_protocol and self.endpoint.hold_acks_while_writing_paused):
            return
        self._unacknowledged = 0
        self.endpoint.acknowledge(self.stream_id, count)
        self.endpoint.flush()

    def loss_reason(self) -> str | None:
        """Why the stream ended, for a 1006: a reset, a GOAWAY, the connection lost, or
        the peer's END_STREAM before ours (the WebSocket's TCP FIN); None otherwise."""
        if self.loss is not None:
            return str(self.loss)
        if self._peer_ended_first:
            return "the server ended the HTTP/2 stream (END_STREAM)"
        return None

    _peer_ended_first = False

    def _on_end(self) -> None:
        if not self._end_sent and not self._end_pending:
            self._peer_ended_first = True
        if self._started and not self._lost and (self._held or not self._reading):
            self._held_end = True  # as TCP's FIN: after the DATA not read yet
            return
        self._end_received = True
        if not self.ended.done():
            self.ended.set_result(None)
        if not self._started:
            self._maybe_done()
            return
        keep_open = False
        if self._protocol is not None and not self._lost:
            keep_open = bool(self._protocol.eof_received())
        if not keep_open:
            self.close()
        self._maybe_done()

    def _on_reset(self, exc: BaseException, *, now: bool = False) -> None:
        self._end_received = True
        self._end_sent = True
        self._lose(exc, now=now)

    def _fail(self, exc: BaseException) -> None:
        """An event of ours raised (see StreamFailed): reset, INTERNAL_ERROR."""
        if not self._lost:
            self.endpoint.reset(self.stream_id, ErrorCodes.INTERNAL_ERROR)
            self._on_reset(exc)

    def _lose(self, exc: BaseException | None, *, now: bool = False) -> None:
        if self._lost:
            return
        self._lost = True
        self._closing = True
        self._pending.clear()
        self._pending_bytes = 0
        self._held.clear()
        if self._delivery is not None:
            self._delivery.cancel()
            self._delivery = None
        if exc is not None and self.loss is None:
            self.loss = exc
        if not self.headers_received.done():
            self.headers_received.set_exception(
                exc or ConnectionResetError("the HTTP/2 stream ended before its answer"))
            self.headers_received.exception()  # retrieved: no "never retrieved" warning
        if not self.ended.done():
            self.ended.set_result(None)
        endpoint = self.endpoint
        endpoint._stream_done(self)
        if self._protocol is not None:
            reported = exc if endpoint.loss_to_protocol else None
            if now:
                self._protocol.connection_lost(reported)
            else:  # as asyncio does: connection_lost never runs inside a write
                endpoint.loop.call_soon(self._protocol.connection_lost, reported)

    def _maybe_done(self) -> None:
        if self._end_sent and self._end_received:
            self._lose(None)

    def _window_opened(self) -> None:
        if self._pending or self._end_pending:
            self._pump()

    def _tcp_paused(self, paused: bool) -> None:
        self._update_pause()

    # Starting: the answer was accepted (client) or sent (server)

    def start(self, prefix: bytes = b"") -> None:
        """Hand PREFIX (e.g. a synthesised HTTP/1.1 handshake message), then the DATA
        received so far, to the protocol; from now on DATA goes straight to it."""
        self._started = True
        protocol = self._protocol
        early, self._early = bytes(self._early), bytearray()
        if prefix:
            protocol.data_received(prefix)
        if early and not self._lost:
            protocol.data_received(early)
        if not self._lost and self._end_received:
            self._end_received = False
            self._on_end()

    def early_data(self) -> bytes:
        """The DATA received before start() (a refusal's body)."""
        return bytes(self._early)

    def send_headers(self, block: list[tuple[str, str]], *, end_stream: bool = False) -> None:
        """A header block on the stream (a server's response); END_STREAM with it
        ends our side as ``write_eof()`` does."""
        try:
            self.endpoint.h2.send_headers(self.stream_id, block, end_stream=end_stream)
        except h2.exceptions.ProtocolError:  # reset by the peer meanwhile
            end_stream = True
        if end_stream and not self._end_sent:
            self._end_sent = True
            self._ended_ours()
        self.endpoint.flush()
        self._maybe_done()

    # asyncio.Transport

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "h2_stream_id":
            return self.stream_id
        if name == "h2_peer_ended":  # its END_STREAM came, read or still kept
            return self._end_received or self._held_end
        transport = self.endpoint.transport
        return default if transport is None else transport.get_extra_info(name, default)

    def is_closing(self) -> bool:
        return self._closing

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._protocol = protocol

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._protocol  # type: ignore[no-any-return]

    def is_reading(self) -> bool:
        return self._reading and not self._lost

    def get_read_buffer_size(self) -> int:
        """DATA received and kept while reading is paused (as asyncio's SSL transport)."""
        return len(self._held)

    def pause_reading(self) -> None:
        # DATA is kept, not acknowledged: the peer's window runs out and it stops.
        self._reading = False

    def resume_reading(self) -> None:
        if self._reading:
            return
        self._reading = True
        if self._lost:
            return
        if (self._held or self._held_end) and self._delivery is None:
            # Not inside this call (the protocol may be in the middle of something):
            # as asyncio's transports, the next read comes from the loop.
            self._delivery = self.endpoint.loop.call_soon(self._deliver_held)
        self._release_acks()

    def _deliver_held(self) -> None:
        self._delivery = None
        if not self._reading or self._lost:
            return
        data, self._held = bytes(self._held), bytearray()
        flow, self._held_flow = self._held_flow, 0
        if data:
            self._protocol.data_received(data)
        self._ack(flow)
        if self._held_end and self._reading and not self._lost:
            self._held_end = False
            self._on_end()
        self.endpoint.flush()

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._end_pending or self._end_sent or self._lost or not data:
            return  # as a closed TCP transport: dropped (the protocol knows it closed)
        # Kept until the peer's window allows: a copy of anything mutable.
        view = memoryview(data if type(data) is bytes else bytes(data))
        self._pending.append(view)
        self._pending_bytes += len(view)
        self._pump()

    def writelines(self, list_of_data: Any) -> None:
        for data in list_of_data:
            self.write(data)

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        if self._end_pending or self._end_sent or self._lost:
            return
        self._end_pending = True
        self._pump()

    def close(self) -> None:
        """END_STREAM after what is buffered (TCP's FIN)."""
        if self._closing and (self._end_pending or self._end_sent):
            return
        self._closing = True
        self.write_eof()
        self._maybe_done()

    def abort(self) -> None:
        """RST_STREAM (CANCEL) at once (TCP's RST)."""
        if self._lost:
            return
        if not (self._end_sent and self._end_received):
            self.endpoint.reset(self.stream_id)
        self._end_sent = self._end_received = True
        self._lose(None)

    def get_write_buffer_size(self) -> int:
        return self._pending_bytes

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return (self._low_water, self._high_water)

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        # asyncio's rule for the defaults of one from the other.
        if high is None:
            high = 4 * low if low is not None else WRITE_HIGH_WATER_BYTES
        if low is None:
            low = high // 4
        if not high >= low >= 0:
            raise ValueError(f"high ({high!r}) must be >= low ({low!r}) must be >= 0")
        self._high_water, self._low_water = high, low
        self._update_pause()

    # Sending within the windows

    def _pump(self) -> None:
        endpoint = self.endpoint
        if self._lost or endpoint.closed:
            return
        if self._pending:
            sent = endpoint.send_within_window(self.stream_id, self._pending)
            if sent < 0:  # the stream is gone in h2: dropped, as a closed socket would
                self._pending_bytes = 0
                self._end_pending = False
                self._end_sent = True
            else:
                self._pending_bytes -= sent
        if not self._pending and self._end_pending and not self._end_sent:
            self._end_pending = False
            self._end_sent = True
            endpoint.end_stream(self.stream_id)
            self._ended_ours()
        endpoint.flush()
        self._update_pause()
        self._maybe_done()

    def _ended_ours(self) -> None:
        if self.reset_after_end and not self._end_received and not self._lost:
            self.endpoint.reset(self.stream_id, ErrorCodes.NO_ERROR)
            self._end_received = True

    def _update_pause(self) -> None:
        protocol = self._protocol
        if protocol is None:
            return
        pending = self._pending_bytes
        if pending > self._high_water or self.endpoint.tcp_paused:
            if not self._paused_protocol:
                self._paused_protocol = True
                protocol.pause_writing()
        elif self._paused_protocol and (pending <= self._low_water or self._lost):
            self._paused_protocol = False
            protocol.resume_writing()
            self._release_acks()


class H2Endpoint(asyncio.Protocol):
    """The asyncio protocol of one HTTP/2 connection (see module doc).

    ``trace(direction, line)``, when given, receives a line per frame
    (``--trace-h2``); ``direction`` is ``"sent"`` or ``"received"``.
    """

    # The side's policies (the client's; server/http2.py sets the server's).
    stream_window_bytes = RECEIVE_WINDOW_BYTES  # SETTINGS_INITIAL_WINDOW_SIZE
    connection_window_bytes = RECEIVE_WINDOW_BYTES
    stream_high_water = WRITE_HIGH_WATER_BYTES  # each stream's write buffer limits
    stream_low_water = WRITE_HIGH_WATER_BYTES // 4
    # True: while a stream's writes are paused, what it receives is not acknowledged
    # (a peer that sends but does not read is held by its own window).
    hold_acks_while_writing_paused = False
    early_data_bytes = EARLY_DATA_BYTES
    # False: a stream's protocol gets connection_lost(None) whatever ended it (the
    # reason is the subclass's to report, in stream_closed).
    loss_to_protocol = True

    def __init__(self, *, client_side: bool,
                 trace: Callable[[str, str], None] | None = None) -> None:
        self.loop = asyncio.get_running_loop()
        self.h2 = h2.connection.H2Connection(h2.config.H2Configuration(
            client_side=client_side, header_encoding=None))
        self.transport: asyncio.Transport | None = None
        self.streams: dict[int, H2StreamTransport] = {}
        self.closed = False
        self.tcp_paused = False
        self.lost: asyncio.Future[BaseException | None] = self.loop.create_future()
        # The peer's SETTINGS (the first SETTINGS frame: RFC 9113 §3.4), by code.
        self.remote_settings: dict[int, int] = {}
        self.settings_received: asyncio.Future[dict[int, int]] = self.loop.create_future()
        self.goaway: GoAway | None = None
        self.protocol_error: Exception | None = None
        self.error: str | None = None  # why the connection failed, in words
        self._in_receive = False  # handling a received chunk: flush() at its end
        self._trace = trace
        self._sent_tracer = FrameTracer(preface=client_side)
        self._rcvd_tracer = FrameTracer()

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # cast, not isinstance: uvloop's transports do not subclass asyncio's.
        self.transport = cast(asyncio.Transport, transport)
        # Initial values, not update(): h2 sends only acknowledged values in the
        # first SETTINGS frame, and an update() is pending until the peer's ACK.
        client_side = bool(self.h2.config.client_side)
        initial: dict[h2.settings.SettingCodes, int] = {
            **self.local_settings(),
            h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: self.stream_window_bytes,
            h2.settings.SettingCodes.MAX_FRAME_SIZE: MAX_FRAME_BYTES,
        }
        if client_side:
            initial[h2.settings.SettingCodes.ENABLE_PUSH] = 0
        self.h2.local_settings = h2.settings.Settings(client=client_side,
                                                      initial_values=initial)
        # Initial values are never reported as a change: tell h2 the frame limit.
        self.h2.max_inbound_frame_size = self.h2.local_settings.max_frame_size
        self.h2.initiate_connection()
        self.h2.increment_flow_control_window(self.connection_window_bytes - 65535)
        self.flush()

    # The first bytes the peer sent (bounded): an HTTP/1.1 server's answer to the
    # preface, for a clear "does not speak HTTP/2".
    first_bytes = b""

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        if len(self.first_bytes) < 256:
            self.first_bytes += data[: 256 - len(self.first_bytes)]
        if self._trace is not None:
            for line in self._rcvd_tracer.feed(data):
                self._trace("received", line)
        try:
            events = self.h2.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            self.protocol_error = exc
            self.error = f"HTTP/2 protocol error: {exc}"
            self._write_out()  # h2's GOAWAY
            self._fail_all(ConnectionError(self.error))
            self.close_transport()
            return
        self._in_receive = True
        try:
            for event in events:
                try:
                    self.handle_event(event)
                except Exception as exc:  # a bug must cost one stream, not the connection
                    self.event_failed(event, exc)
        finally:
            self._in_receive = False
        self._write_out()

    def eof_received(self) -> bool | None:
        return None  # close: an HTTP/2 connection has no half-close

    def pause_writing(self) -> None:
        self.tcp_paused = True
        for stream in list(self.streams.values()):
            stream._tcp_paused(True)

    def resume_writing(self) -> None:
        self.tcp_paused = False
        for stream in list(self.streams.values()):
            stream._tcp_paused(False)
        self.flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        reason: BaseException = exc or self.goaway or ConnectionResetError(
            "the HTTP/2 connection closed")
        # Now, not soon: the loop called us, as it calls a TCP protocol's.
        self._fail_all(reason, now=True)
        if not self.settings_received.done():
            self.settings_received.set_exception(reason)
            self.settings_received.exception()
        if not self.lost.done():
            self.lost.set_result(exc)

    def local_settings(self) -> dict[h2.settings.SettingCodes, int]:
        """SETTINGS of this side beyond the window (a server adds
        ENABLE_CONNECT_PROTOCOL and MAX_CONCURRENT_STREAMS here)."""
        return {}

    # Events

    def handle_event(self, event: h2.events.Event) -> None:
        """One h2 event, dispatched to its stream; the hooks below are the side's."""
        if isinstance(event, h2.events.DataReceived):
            stream = self.streams.get(event.stream_id or 0)
            length = event.flow_controlled_length or 0
            if stream is None:  # a stream we no longer serve: hand the window back
                if length:
                    self.acknowledge(event.stream_id or 0, length)
                return
            stream._on_data(event.data or b"", length)
            if event.stream_ended is not None:
                stream._on_end()
        elif isinstance(event, h2.events.RequestReceived):
            self.request_received(event)
        elif isinstance(event, h2.events.ResponseReceived):
            stream = self.streams.get(event.stream_id or 0)
            if stream is not None:
                stream._on_headers(decode_block(event.headers or ()))
                if event.stream_ended is not None:
                    stream._on_end()
        elif isinstance(event, h2.events.StreamEnded):
            stream = self.streams.get(event.stream_id or 0)
            if stream is not None:
                stream._on_end()
        elif isinstance(event, h2.events.StreamReset):
            stream = self.streams.get(event.stream_id or 0)
            if stream is not None:
                stream._on_reset(self.reset_error(int(event.error_code or 0)))
        elif isinstance(event, h2.events.WindowUpdated):
            targets = (list(self.streams.values()) if not event.stream_id
                       else [s for s in [self.streams.get(event.stream_id)] if s])
            for stream in targets:
                stream._window_opened()
        elif isinstance(event, h2.events.RemoteSettingsChanged):
            for code, setting in event.changed_settings.items():
                self.remote_settings[int(code)] = setting.new_value
            if not self.settings_received.done():
                self.settings_received.set_result(dict(self.remote_settings))
            for stream in list(self.streams.values()):
                stream._window_opened()  # INITIAL_WINDOW_SIZE may have grown
        elif isinstance(event, h2.events.ConnectionTerminated):
            self.goaway = GoAway(int(event.error_code or 0), event.last_stream_id or 0,
                                 event.additional_data or b"")
            self.goaway_received(self.goaway)

    def request_received(self, event: h2.events.RequestReceived) -> None:
        """The peer opened a stream (a server's hook; a client ignores it)."""

    def goaway_received(self, goaway: GoAway) -> None:
        """The peer's GOAWAY: the streams it will not process (or all, on an error)
        are lost; a hook."""
        for stream_id, stream in list(self.streams.items()):
            if goaway.error_code or stream_id > goaway.last_stream_id:
                stream._on_reset(goaway)

    def reset_error(self, error_code: int) -> BaseException:
        """What the peer's RST_STREAM is, in the side's words."""
        return StreamReset(error_code)

    def event_failed(self, event: h2.events.Event, exc: Exception) -> None:
        """handle_event raised: the stream of the event is reset; an event of the
        connection itself closes it."""
        text = f"internal error: {exc!r}"
        stream = self.streams.get(getattr(event, "stream_id", 0) or 0)
        if stream is not None:
            stream._fail(StreamFailed(text))
            return
        self.error = text
        self._write_out()
        self._fail_all(ConnectionError(text))
        self.close_transport()

    # What the streams call

    def open_stream(self) -> H2StreamTransport:
        stream_id = self.h2.get_next_available_stream_id()
        stream = H2StreamTransport(self, stream_id)
        self.streams[stream_id] = stream
        return stream

    def adopt_stream(self, stream_id: int) -> H2StreamTransport:
        """A stream the peer opened (a server's RequestReceived)."""
        stream = H2StreamTransport(self, stream_id)
        self.streams[stream_id] = stream
        return stream

    def send_headers(self, stream_id: int, block: list[tuple[str, str]], *,
                     end_stream: bool = False) -> None:
        self.h2.send_headers(stream_id, block, end_stream=end_stream)
        self.flush()

    def send_within_window(self, stream_id: int, pending: collections.deque[memoryview]) -> int:
        """Send from PENDING as much as the windows allow (taking it off); the count
        sent, or -1 when the stream is gone (PENDING is cleared)."""
        h2conn = self.h2
        sent = 0
        try:
            window = h2conn.local_flow_control_window(stream_id)
            frame_size = h2conn.max_outbound_frame_size
            while pending and window > 0:
                view = pending[0]
                size = min(window, frame_size)
                if len(view) <= size:
                    pending.popleft()
                    size = len(view)
                    h2conn.send_data(stream_id, view)
                else:
                    h2conn.send_data(stream_id, view[:size])
                    pending[0] = view[size:]
                sent += size
                window -= size
        except h2.exceptions.ProtocolError:  # StreamClosedError too
            pending.clear()
            return -1
        return sent

    def end_stream(self, stream_id: int) -> None:
        with contextlib.suppress(h2.exceptions.ProtocolError):  # the stream is gone
            self.h2.end_stream(stream_id)

    def reset(self, stream_id: int, error_code: int = ErrorCodes.CANCEL) -> None:
        with contextlib.suppress(h2.exceptions.ProtocolError):  # gone already
            self.h2.reset_stream(stream_id, error_code)
        self.flush()

    def acknowledge(self, stream_id: int, length: int) -> None:
        with contextlib.suppress(h2.exceptions.ProtocolError):  # the connection closed
            self.h2.acknowledge_received_data(length, stream_id)

    def flush(self) -> None:
        """Write what h2 has to send, unless a received chunk is being handled
        (data_received writes once at its end)."""
        if not self._in_receive:
            self._write_out()

    def _write_out(self) -> None:
        data = self.h2.data_to_send()
        if not data or self.transport is None or self.transport.is_closing():
            return
        if self._trace is not None:
            for line in self._sent_tracer.feed(data):
                self._trace("sent", line)
        self.transport.write(data)

    def _stream_done(self, stream: H2StreamTransport) -> None:
        self.streams.pop(stream.stream_id, None)
        self.stream_closed(stream)

    def stream_closed(self, stream: H2StreamTransport) -> None:
        """A stream ended (both sides, reset, or the connection lost); a hook, called
        before the stream's protocol gets connection_lost()."""

    def _fail_all(self, exc: BaseException, *, now: bool = False) -> None:
        for stream in list(self.streams.values()):
            stream._on_reset(exc, now=now)

    def close(self) -> None:
        """GOAWAY (NO_ERROR), then close the TCP connection."""
        if self.closed or self.transport is None:
            return
        self.closed = True
        with contextlib.suppress(h2.exceptions.ProtocolError):  # the peer's GOAWAY came
            self.h2.close_connection()
        self._write_out()
        self.close_transport()

    def close_transport(self) -> None:
        """Close the TCP (or TLS) connection; a subclass may bound how long it takes."""
        if self.transport is not None:
            self.transport.close()
