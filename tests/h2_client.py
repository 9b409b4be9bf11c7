"""An independent HTTP/2 WebSocket client for the server tests (RFC 8441).

python-hyper's ``h2`` drives HTTP/2 (blocking socket, one thread: the test's);
the WebSocket frames are websockets' sans-I/O ``Frame.serialize`` (masked, as a
client's must be) and ``Frame.parse``. Nothing of wstool is used, so the tests
check the server against other people's code. ``send_raw`` writes bytes as they
are, for the strictness cases (unmasked frames, bad UTF-8...).
"""

from __future__ import annotations

import select
import socket
import ssl
import time
from collections.abc import Callable, Generator, Sequence

import h2.config
import h2.connection
import h2.events
import h2.settings
from websockets.frames import Close, Frame, Opcode
from websockets.streams import StreamReader

from tests.conftest import scaled


class WSStream:
    """One WebSocket over an HTTP/2 stream."""

    def __init__(self, client: H2Client, stream_id: int) -> None:
        self.client = client
        self.stream_id = stream_id
        self.status: int | None = None
        self.headers: dict[str, str] = {}
        self.body = bytearray()  # DATA before we treat it as frames (a refused request)
        self.ended = False  # the server's END_STREAM
        self.reset_code: int | None = None
        self._reader = StreamReader()
        self._parser: Generator[None, None, Frame] | None = None
        self.frames: list[Frame] = []
        self.websocket = True  # False for request(): DATA is a body

    # receiving (called by the client)

    def _data(self, data: bytes) -> None:
        if self.status != 200 or not self.websocket:
            self.body += data
            return
        self._reader.feed_data(data)
        while True:
            if self._parser is None:
                self._parser = Frame.parse(self._reader.read_exact, mask=False, max_size=None)
            try:
                next(self._parser)
            except StopIteration as done:
                self.frames.append(done.value)
                self._parser = None
                continue
            break

    # sending

    def send_raw(self, data: bytes) -> None:
        self.client.send_data(self.stream_id, data)

    def send_frame(self, opcode: Opcode, payload: bytes, *, fin: bool = True) -> None:
        self.send_raw(Frame(opcode, payload, fin).serialize(mask=True))

    def send_text(self, text: str) -> None:
        self.send_frame(Opcode.TEXT, text.encode())

    def send_binary(self, data: bytes) -> None:
        self.send_frame(Opcode.BINARY, data)

    def close(self, code: int = 1000, reason: str = "") -> None:
        self.send_frame(Opcode.CLOSE, Close(code, reason).serialize())

    def end_stream(self) -> None:
        self.client.h2.end_stream(self.stream_id)
        self.client.flush()

    def reset(self) -> None:
        self.client.h2.reset_stream(self.stream_id, 0x8)  # CANCEL
        self.client.flush()

    # waiting

    def recv(self, timeout: float = 10) -> Frame:
        """The next frame from the server (pings are frames too)."""
        self.client.wait(lambda: bool(self.frames) or self.ended or self.reset_code is not None,
                         timeout)
        if not self.frames:
            raise EOFError(f"stream {self.stream_id} ended (reset {self.reset_code})")
        return self.frames.pop(0)

    def recv_message(self, timeout: float = 10) -> Frame:
        while True:
            frame = self.recv(timeout)
            if frame.opcode in (Opcode.TEXT, Opcode.BINARY, Opcode.CLOSE):
                return frame

    def recv_close(self, timeout: float = 10) -> Close:
        while True:
            frame = self.recv(timeout)
            if frame.opcode is Opcode.CLOSE:
                return Close.parse(frame.data)

    def wait_ended(self, timeout: float = 10) -> None:
        self.client.wait(lambda: self.ended or self.reset_code is not None, timeout)


class H2Client:
    """A blocking HTTP/2 client: h2c with prior knowledge, or TLS with ALPN h2."""

    def __init__(self, port: int, *, ssl_context: ssl.SSLContext | None = None,
                 host: str = "127.0.0.1") -> None:
        sock = socket.create_connection((host, port), timeout=scaled(10))
        self.alpn: str | None = None
        if ssl_context is not None:
            ssl_context.set_alpn_protocols(["h2", "http/1.1"])
            sock = ssl_context.wrap_socket(sock, server_hostname="localhost")
            self.alpn = sock.selected_alpn_protocol()
        self.sock = sock
        self.scheme = "https" if ssl_context is not None else "http"
        self.authority = f"localhost:{port}"
        self.h2 = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding=None))
        self.h2.local_settings = h2.settings.Settings(
            client=True, initial_values={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 1 << 20})
        self.h2.initiate_connection()
        self.h2.increment_flow_control_window(16 << 20)
        self.flush()
        self.streams: dict[int, WSStream] = {}
        self.settings_seen = False
        self.goaway: h2.events.ConnectionTerminated | None = None
        self.closed = False
        # False: received DATA is not acknowledged (a client that does not read),
        # until ack_all().
        self.auto_ack = True
        self.unacked: dict[int, int] = {}
        self.default_wait_s = 10.0

    def flush(self) -> None:
        data = self.h2.data_to_send()
        if data:
            self.sock.sendall(data)

    def pump(self, timeout: float) -> None:
        """Read what arrives within TIMEOUT (one read) and handle its events."""
        if self.closed:
            time.sleep(min(timeout, 0.01))
            return
        pending = isinstance(self.sock, ssl.SSLSocket) and self.sock.pending()
        if not pending and not select.select([self.sock], [], [], timeout)[0]:
            return
        try:
            data = self.sock.recv(1 << 20)
        except (ConnectionError, ssl.SSLError):
            data = b""
        if not data:
            self.closed = True
            return
        for event in self.h2.receive_data(data):
            self._event(event)
        self.flush()

    def _event(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.RemoteSettingsChanged):
            self.settings_seen = True
        elif isinstance(event, h2.events.ResponseReceived):
            stream = self.streams[event.stream_id]
            for name, value in event.headers or []:
                if name == b":status":
                    stream.status = int(value)
                else:
                    stream.headers[name.decode()] = value.decode()
        elif isinstance(event, h2.events.DataReceived):
            if event.flow_controlled_length:
                if self.auto_ack:
                    self.h2.acknowledge_received_data(event.flow_controlled_length,
                                                      event.stream_id)
                else:
                    self.unacked[event.stream_id] = (
                        self.unacked.get(event.stream_id, 0) + event.flow_controlled_length)
            receiver = self.streams.get(event.stream_id)
            if receiver is not None:
                receiver._data(event.data or b"")
        elif isinstance(event, h2.events.StreamEnded):
            if event.stream_id in self.streams:
                self.streams[event.stream_id].ended = True
        elif isinstance(event, h2.events.StreamReset):
            if event.stream_id in self.streams:
                self.streams[event.stream_id].reset_code = int(event.error_code or 0)
        elif isinstance(event, h2.events.ConnectionTerminated):
            self.goaway = event

    def ack_all(self) -> None:
        for stream_id, size in self.unacked.items():
            self.h2.acknowledge_received_data(size, stream_id)
        self.unacked.clear()
        self.flush()

    def wait(self, condition: Callable[[], bool], timeout: float | None = None) -> None:
        deadline = time.monotonic() + scaled(self.default_wait_s if timeout is None else timeout)
        while not condition():
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("condition not met")
            if self.closed and not condition():
                raise EOFError("connection closed")
            self.pump(min(left, 0.5))

    def wait_settings(self) -> int:
        """The server's SETTINGS_ENABLE_CONNECT_PROTOCOL."""
        self.wait(lambda: self.settings_seen)
        return int(self.h2.remote_settings.enable_connect_protocol)

    def send_data(self, stream_id: int, data: bytes) -> None:
        """DATA within the server's windows (waiting for its WINDOW_UPDATEs)."""
        view = memoryview(data)
        while view:
            self.wait(lambda: self.h2.local_flow_control_window(stream_id) > 0)
            size = min(self.h2.local_flow_control_window(stream_id),
                       self.h2.max_outbound_frame_size, len(view))
            self.h2.send_data(stream_id, bytes(view[:size]))
            view = view[size:]
            self.flush()

    def open_websocket(self, path: str = "/", *, headers: Sequence[tuple[str, str]] = (),
                       protocol: str = "websocket", version: str | None = "13",
                       wait: bool = True) -> WSStream:
        """An extended CONNECT (RFC 8441 §4); waits for the response headers."""
        self.wait_settings()
        stream_id = self.h2.get_next_available_stream_id()
        stream = WSStream(self, stream_id)
        self.streams[stream_id] = stream
        fields = [(":method", "CONNECT"), (":protocol", protocol), (":scheme", self.scheme),
                  (":path", path), (":authority", self.authority)]
        if version is not None:
            fields.append(("sec-websocket-version", version))
        fields.extend(headers)
        self.h2.send_headers(stream_id, fields)
        self.flush()
        if wait:
            self.wait(lambda: stream.status is not None or stream.reset_code is not None)
        return stream

    def request(self, method: str, path: str) -> WSStream:
        """A plain request (GET/HEAD...); returns when the response has ended."""
        stream_id = self.h2.get_next_available_stream_id()
        stream = WSStream(self, stream_id)
        stream.websocket = False
        self.streams[stream_id] = stream
        self.h2.send_headers(stream_id, [(":method", method), (":scheme", self.scheme),
                                         (":path", path), (":authority", self.authority)],
                             end_stream=True)
        self.flush()
        stream.wait_ended()
        return stream

    def close(self) -> None:
        try:
            self.h2.close_connection()
            self.flush()
        except OSError:
            pass
        self.sock.close()
