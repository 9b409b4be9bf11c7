"""One HTTP/2 connection over asyncio, and an asyncio transport per stream.

Shared by the client (``connect --http2``) and the server side: the WebSocket
connection of a stream — websockets' asyncio ``ClientConnection`` for the client, a
server protocol object for the server — runs over an :class:`H2StreamTransport`
exactly as it runs over TCP: ``write()`` becomes DATA frames, ``close()``/
``write_eof()`` END_STREAM, ``abort()`` RST_STREAM; DATA received goes to the
protocol's ``data_received()``, END_STREAM to ``eof_received()``, a reset or the loss
of the TCP connection to ``connection_lost()``.

Flow control (RFC 9113 §5.2): DATA received is acknowledged (``WINDOW_UPDATE``) as
soon as the protocol has consumed it, which it does in the ``data_received()`` call,
unless the protocol paused reading; writes wait for the peer's windows, buffered
here, and the protocol's ``pause_writing()``/``resume_writing()`` follow that buffer
(websockets' ``drain()`` is the backpressure, as over TCP).

:class:`H2Endpoint` is the ``asyncio.Protocol`` of the TCP (or TLS) connection: it
owns the sans-I/O ``h2.connection.H2Connection``, dispatches its events to the
streams and writes what h2 has to send once per received chunk or write. Subclasses
(``client.py``; a server) add what their side does with new streams.
"""

from __future__ import annotations

import asyncio
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


class StreamReset(ConnectionResetError):
    """The peer reset the stream (RST_STREAM)."""

    def __init__(self, error_code: int) -> None:
        self.error_code = error_code
        super().__init__(f"the server reset the HTTP/2 stream ({error_name(error_code)})")


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

    Until :meth:`start`, DATA received is kept (a non-200 answer's body, or the first
    WebSocket frames that came with the 200), not given to the protocol: the protocol
    is attached before the stream's answer is known.
    """

    def __init__(self, endpoint: H2Endpoint, stream_id: int) -> None:
        super().__init__()
        self.endpoint = endpoint
        self.stream_id = stream_id
        self._protocol: Any = None
        self._pending = bytearray()  # written, not yet sent (flow control)
        self._end_pending = False  # END_STREAM once _pending is sent
        self._end_sent = False
        self._end_received = False
        self._closing = False
        self._lost = False
        self.loss: BaseException | None = None  # why the stream ended, if not cleanly
        self._paused_protocol = False
        self._reading = True
        self._unacknowledged = 0  # flow-controlled bytes received while paused
        self._started = False
        self._early = bytearray()  # DATA before start()
        self.headers: list[tuple[str, str]] | None = None  # the peer's header block
        self.headers_received: asyncio.Future[list[tuple[str, str]]] = (
            endpoint.loop.create_future())
        self.ended: asyncio.Future[None] = endpoint.loop.create_future()
        self._extra: dict[str, Any] = {}

    # What the endpoint calls

    def _on_headers(self, block: list[tuple[str, str]]) -> None:
        if self.headers is None:
            self.headers = block
            if not self.headers_received.done():
                self.headers_received.set_result(block)

    def _on_data(self, data: bytes, flow_length: int) -> None:
        if not self._started:
            if len(self._early) < 1 << 26:  # bounded: 64 MiB before start()
                self._early += data
            self._ack(flow_length)
            return
        if not self._lost and self._protocol is not None:
            self._protocol.data_received(data)
        self._ack(flow_length)

    def _ack(self, flow_length: int) -> None:
        if not flow_length:
            return
        if not self._reading:
            self._unacknowledged += flow_length
            return
        self.endpoint.acknowledge(self.stream_id, flow_length)

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
        self._end_received = True
        if not self.ended.done():
            self.ended.set_result(None)
        if not self._started:
            return
        keep_open = False
        if self._protocol is not None and not self._lost:
            keep_open = bool(self._protocol.eof_received())
        if not keep_open:
            self.close()
        self._maybe_done()

    def _on_reset(self, exc: BaseException) -> None:
        self._end_received = True
        self._end_sent = True
        self._pending.clear()
        self._lose(exc)

    def _lose(self, exc: BaseException | None) -> None:
        if self._lost:
            return
        self._lost = True
        self._closing = True
        if exc is not None and self.loss is None:
            self.loss = exc
        if not self.headers_received.done():
            self.headers_received.set_exception(
                exc or ConnectionResetError("the HTTP/2 stream ended before its answer"))
            self.headers_received.exception()  # retrieved: no "never retrieved" warning
        if not self.ended.done():
            self.ended.set_result(None)
        self.endpoint._stream_done(self)
        if self._protocol is not None:
            self.endpoint.loop.call_soon(self._protocol.connection_lost, exc)

    def _maybe_done(self) -> None:
        if self._end_sent and self._end_received:
            self._lose(None)

    def _window_opened(self) -> None:
        self._pump()

    def _tcp_paused(self, paused: bool) -> None:
        self._update_pause()

    # Starting: the answer was accepted

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

    # asyncio.Transport

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name in self._extra:
            return self._extra[name]
        transport = self.endpoint.transport
        return default if transport is None else transport.get_extra_info(name, default)

    def is_closing(self) -> bool:
        return self._closing

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._protocol = protocol

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._protocol  # type: ignore[no-any-return]

    def is_reading(self) -> bool:
        return self._reading

    def pause_reading(self) -> None:
        # Stop acknowledging: the peer's window runs out and it stops sending.
        self._reading = False

    def resume_reading(self) -> None:
        if self._reading:
            return
        self._reading = True
        count, self._unacknowledged = self._unacknowledged, 0
        if count and not self._lost:
            self.endpoint.acknowledge(self.stream_id, count)
            self.endpoint.flush()

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._end_pending or self._end_sent or self._lost:
            return  # as a closed TCP transport: dropped (the protocol knows it closed)
        self._pending += data
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
        self._pending.clear()
        if not (self._end_sent and self._end_received):
            self.endpoint.reset(self.stream_id)
        self._end_sent = self._end_received = True
        self._lose(None)

    def get_write_buffer_size(self) -> int:
        return len(self._pending)

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return (WRITE_HIGH_WATER_BYTES // 4, WRITE_HIGH_WATER_BYTES)

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass  # fixed; websockets does not set them

    # Sending within the windows

    def _pump(self) -> None:
        endpoint = self.endpoint
        if self._lost or endpoint.closed:
            return
        sent = endpoint.send_within_window(self.stream_id, self._pending)
        if sent:
            del self._pending[:sent]
        if not self._pending and self._end_pending and not self._end_sent:
            self._end_pending = False
            self._end_sent = True
            endpoint.end_stream(self.stream_id)
        if sent or self._end_sent:
            endpoint.flush()
        self._update_pause()
        self._maybe_done()

    def _update_pause(self) -> None:
        protocol = self._protocol
        if protocol is None:
            return
        paused = len(self._pending) > WRITE_HIGH_WATER_BYTES or self.endpoint.tcp_paused
        if paused and not self._paused_protocol:
            self._paused_protocol = True
            protocol.pause_writing()
        elif not paused and self._paused_protocol and (
                len(self._pending) <= WRITE_HIGH_WATER_BYTES // 4 or self._lost):
            self._paused_protocol = False
            protocol.resume_writing()


class H2Endpoint(asyncio.Protocol):
    """The asyncio protocol of one HTTP/2 connection (see module doc).

    ``trace(direction, line)``, when given, receives a line per frame
    (``--trace-h2``); ``direction`` is ``"sent"`` or ``"received"``.
    """

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
            h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: RECEIVE_WINDOW_BYTES,
            h2.settings.SettingCodes.MAX_FRAME_SIZE: MAX_FRAME_BYTES,
            **self.local_settings(),
        }
        if client_side:
            initial[h2.settings.SettingCodes.ENABLE_PUSH] = 0
        self.h2.local_settings = h2.settings.Settings(client=client_side,
                                                      initial_values=initial)
        # Initial values are never reported as a change: tell h2 the frame limit.
        self.h2.max_inbound_frame_size = self.h2.local_settings.max_frame_size
        self.h2.initiate_connection()
        self.h2.increment_flow_control_window(RECEIVE_WINDOW_BYTES - 65535)
        self.flush()

    # The first bytes the peer sent (bounded): an HTTP/1.1 server's answer to the
    # preface, for a clear "does not speak HTTP/2".
    first_bytes = b""

    def data_received(self, data: bytes) -> None:
        if len(self.first_bytes) < 256:
            self.first_bytes += data[: 256 - len(self.first_bytes)]
        if self._trace is not None:
            for line in self._rcvd_tracer.feed(data):
                self._trace("received", line)
        try:
            events = self.h2.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            self.protocol_error = exc
            self.flush()  # h2's GOAWAY
            self._fail_all(ConnectionError(f"HTTP/2 protocol error: {exc}"))
            if self.transport is not None:
                self.transport.close()
            return
        for event in events:
            self.handle_event(event)
        self.flush()

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

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        reason: BaseException = exc or self.goaway or ConnectionResetError(
            "the HTTP/2 connection closed")
        self._fail_all(reason)
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
        """One h2 event; subclasses handle RequestReceived and call this for the rest."""
        if isinstance(event, h2.events.DataReceived):
            stream = self.streams.get(event.stream_id or 0)
            length = event.flow_controlled_length or 0
            if stream is None:
                if length:
                    self.h2.acknowledge_received_data(length, event.stream_id or 0)
                return
            stream._on_data(event.data or b"", length)
            if event.stream_ended is not None:
                stream._on_end()
        elif isinstance(event, h2.events.ResponseReceived | h2.events.RequestReceived):
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
                stream._on_reset(StreamReset(int(event.error_code or 0)))
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
            for stream_id, stream in list(self.streams.items()):
                if event.error_code or stream_id > (event.last_stream_id or 0):
                    stream._on_reset(self.goaway)

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

    def send_within_window(self, stream_id: int, pending: bytearray) -> int:
        """Send as much of PENDING as the windows allow; the count sent."""
        sent = 0
        try:
            window = self.h2.local_flow_control_window(stream_id)
            frame_size = self.h2.max_outbound_frame_size
            while sent < len(pending) and window > 0:
                size = min(window, frame_size, len(pending) - sent)
                self.h2.send_data(stream_id, bytes(pending[sent:sent + size]))
                sent += size
                window -= size
        except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
            return len(pending)  # the stream is gone: drop, as a closed socket would
        return sent

    def end_stream(self, stream_id: int) -> None:
        with contextlib.suppress(h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
            self.h2.end_stream(stream_id)

    def reset(self, stream_id: int) -> None:
        with contextlib.suppress(h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
            self.h2.reset_stream(stream_id, ErrorCodes.CANCEL)
        self.flush()

    def acknowledge(self, stream_id: int, length: int) -> None:
        with contextlib.suppress(h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
            self.h2.acknowledge_received_data(length, stream_id)

    def flush(self) -> None:
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
        """A stream ended (both sides, reset, or the connection lost); a hook."""

    def _fail_all(self, exc: BaseException) -> None:
        for stream in list(self.streams.values()):
            stream._on_reset(exc)

    def close(self) -> None:
        """GOAWAY (NO_ERROR), then close the TCP connection."""
        if self.closed or self.transport is None:
            return
        self.closed = True
        with contextlib.suppress(h2.exceptions.ProtocolError):
            self.h2.close_connection()
        self.flush()
        self.transport.close()
