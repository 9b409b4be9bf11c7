"""HTTP/2 peers for the RFC 8441 tests (issue 12), all on 127.0.0.1 port 0.

* :func:`start_hypercorn`: Hypercorn (PyPI), an independent server that serves an
  ASGI echo app over HTTP/2 extended CONNECT (TLS with ALPN h2, or h2c with prior
  knowledge) and over HTTP/1.1 upgrades;
* :class:`RawH2Server`: a server of our own on the ``h2`` package, for what no real
  server does on purpose: advertise ``ENABLE_CONNECT_PROTOCOL`` and answer 404/400,
  not advertise it, reset the stream in the middle of a message, send GOAWAY.

Both run in a ``ServerThread``'s loop. The modules are skipped with a clear message
where h2 or Hypercorn are not installed (the ``test`` extra installs them).
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from typing import Any

import pytest

from tests.conftest import ServerThread

h2_connection = pytest.importorskip(
    "h2.connection", reason="h2 is not installed: pip install -e '.[test]' (issue 12)")
import h2.config  # noqa: E402
import h2.events  # noqa: E402
import h2.exceptions as h2_exceptions  # noqa: E402
import h2.settings  # noqa: E402


async def asgi_echo(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """An ASGI app: WebSocket echo (text as text, bytes as bytes); HTTP: 200 'hello'."""
    if scope["type"] == "websocket":
        await receive()  # websocket.connect
        subprotocols = scope.get("subprotocols") or []
        await send({"type": "websocket.accept",
                    **({"subprotocol": subprotocols[0]} if subprotocols else {})})
        while True:
            event = await receive()
            if event["type"] == "websocket.disconnect":
                return
            if event.get("text") is not None:
                await send({"type": "websocket.send", "text": event["text"]})
            else:
                await send({"type": "websocket.send", "bytes": event.get("bytes") or b""})
    elif scope["type"] == "http":
        while (await receive()).get("more_body"):
            pass
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"hello"})
    elif scope["type"] == "lifespan":
        while True:
            event = await receive()
            if event["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif event["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return


_RUNNING: list[asyncio.Future[None]] = []


def _listening_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    sock.set_inheritable(True)
    return sock


def start_hypercorn(st: ServerThread, *, certfile: str | None = None,
                    keyfile: str | None = None) -> int:
    """Hypercorn serving :func:`asgi_echo` in ST's loop; its port. Stopped with ST."""
    config_mod = pytest.importorskip(
        "hypercorn.config", reason="Hypercorn is not installed: pip install -e '.[test]'")
    from hypercorn.asyncio import serve

    sock = _listening_socket()
    config = config_mod.Config()
    config.bind = [f"fd://{sock.fileno()}"]
    config.accesslog = None
    config.errorlog = None
    config.loglevel = "WARNING"
    config.websocket_max_message_size = 1 << 30
    config.h2_max_inbound_frame_size = 1 << 14
    if certfile:
        config.certfile = certfile
        config.keyfile = keyfile
    started = asyncio.Event()

    async def run() -> None:
        never = asyncio.Event()
        task = asyncio.ensure_future(serve(asgi_echo, config,  # type: ignore[arg-type]
                                           shutdown_trigger=never.wait))
        started.set()
        try:
            await task
        finally:
            sock.close()

    async def start() -> None:
        _RUNNING.append(asyncio.ensure_future(run()))  # cancelled by ServerThread.stop
        await started.wait()

    st.run(start())
    port: int = sock.getsockname()[1]  # listening since listen() above
    return port


class RawH2Server:
    """An HTTP/2 server of our own on ``h2`` that misbehaves on purpose (see module doc).

    ``mode``: ``"404"``/``"400"`` (advertise ENABLE_CONNECT_PROTOCOL, refuse the
    CONNECT with that status and a body), ``"no-setting"`` (do not advertise it),
    ``"rst-mid"`` (accept, then on the first DATA send half a WebSocket frame and
    RST_STREAM), ``"goaway"`` (accept, then on the first DATA send GOAWAY with
    PROTOCOL_ERROR and close), ``"end-mid"`` (accept, then on the first DATA send
    half a frame with END_STREAM: the stream's FIN), ``"rst-connect"`` (reset the
    CONNECT stream with REFUSED_STREAM before any answer), ``"redirect"`` (302 to
    ``/final``, where it accepts as ``"accept"``), ``"accept"`` (accept and
    send one text frame ``hi`` per DATA frame received).
    The same port accepts HTTP/1.1 upgrades (ALPN http/1.1, or no h2 preface on
    cleartext), as a web server in front of both does.
    """

    def __init__(self, st: ServerThread, mode: str, *,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self.mode = mode
        self.ssl_context = ssl_context
        self.requests: list[list[tuple[str, str]]] = []

        if ssl_context is not None:
            ssl_context.set_alpn_protocols(["h2", "http/1.1"])

        async def start() -> Any:
            return await asyncio.start_server(self._serve, "127.0.0.1", 0,
                                              ssl=ssl_context)

        self.server = st.run(start())
        self.port: int = self.server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            first = await reader.read(65536)
            ssl_object = writer.get_extra_info("ssl_object")
            alpn = ssl_object.selected_alpn_protocol() if ssl_object is not None else None
            if first and (alpn == "h2" or (ssl_object is None and first.startswith(b"PRI "))):
                await self._serve_h2(reader, writer, first)
            elif first:
                await self._serve_http11(reader, writer, first)
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    async def _serve_http11(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                            data: bytes) -> None:
        """The same port's HTTP/1.1 upgrade, accepted (websockets' sans-I/O server);
        then it only answers pings and the closing handshake."""
        from websockets.http11 import Request
        from websockets.server import ServerProtocol

        protocol = ServerProtocol()
        while data:
            protocol.receive_data(data)
            for event in protocol.events_received():
                if isinstance(event, Request):
                    protocol.send_response(protocol.accept(event))
            for chunk in protocol.data_to_send():
                if chunk:
                    writer.write(chunk)
                else:
                    return
            data = await reader.read(65536)

    async def _serve_h2(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                        data: bytes) -> None:
        conn = h2_connection.H2Connection(h2.config.H2Configuration(
            client_side=False, header_encoding="utf-8"))
        settings = {h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 7}
        if self.mode != "no-setting":
            settings[h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL] = 1
        conn.local_settings = h2.settings.Settings(client=False, initial_values=settings)
        conn.initiate_connection()
        writer.write(conn.data_to_send())
        if True:
            while data:
                try:
                    events = conn.receive_data(data)
                except Exception:
                    writer.write(conn.data_to_send())
                    return
                for event in events:
                    if isinstance(event, h2.events.RequestReceived):
                        self._on_request(conn, event)
                    elif isinstance(event, h2.events.DataReceived):
                        conn.acknowledge_received_data(event.flow_controlled_length,
                                                       event.stream_id)
                        try:
                            close = self._on_data(conn, event.stream_id, event.data)
                        except h2_exceptions.ProtocolError:  # the client went away first
                            return
                        if close:
                            writer.write(conn.data_to_send())
                            return
                writer.write(conn.data_to_send())
                data = await reader.read(65536)

    def _on_request(self, conn: Any, event: Any) -> None:
        block = [(str(n), str(v)) for n, v in event.headers]
        self.requests.append(block)
        if self.mode in ("404", "400"):
            body = b"no WebSocket here\n" if self.mode == "404" else b"bad request\n"
            conn.send_headers(event.stream_id, [(":status", self.mode),
                                                ("content-type", "text/plain"),
                                                ("content-length", str(len(body)))])
            conn.send_data(event.stream_id, body, end_stream=True)
        elif self.mode == "redirect" and (":path", "/final") not in block:
            conn.send_headers(event.stream_id, [(":status", "302"), ("location", "/final"),
                                                ("content-length", "0")], end_stream=True)
        elif self.mode == "rst-connect":
            conn.reset_stream(event.stream_id, 0x7)  # REFUSED_STREAM
        elif self.mode == "no-setting":
            conn.send_headers(event.stream_id, [(":status", "200")], end_stream=True)
        else:
            conn.send_headers(event.stream_id, [(":status", "200")])

    def _on_data(self, conn: Any, stream_id: int, data: bytes) -> bool:
        """Answer the first DATA; True to close the TCP connection afterwards."""
        if data[:1] == b"\x88":  # the client's Close (RFC 6455 §5.5.1): answer, end
            conn.send_data(stream_id, b"\x88\x02\x03\xe8", end_stream=True)
        elif self.mode == "rst-mid":
            # A text frame announcing 10 bytes, 3 of them sent, then the reset.
            conn.send_data(stream_id, b"\x81\x0aabc")
            conn.reset_stream(stream_id, 0x8)  # CANCEL
        elif self.mode == "end-mid":
            conn.send_data(stream_id, b"\x81\x0aabc", end_stream=True)
        elif self.mode == "goaway":
            conn.close_connection(error_code=0x1, additional_data=b"going away for tests")
            return True
        elif self.mode in ("accept", "redirect"):
            conn.send_data(stream_id, b"\x81\x02hi")
        return False
