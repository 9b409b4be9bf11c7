"""One test per assumption of wstool/protocol/internals.py, against the installed websockets.

Sans-I/O, on bytes: a real ``ClientProtocol`` and ``ServerProtocol`` talk to each other
through ``data_to_send()``/``receive_data()``. Only the ``ClientConnection`` tests that
need a transport open a connection, to the library's own server on 127.0.0.1. A
websockets upgrade that breaks an assumption fails the test named after it; fix
internals.py (or the fenced code its docstring lists), not the test.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Generator

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.client import ClientProtocol
from websockets.exceptions import PayloadTooBig, ProtocolError
from websockets.frames import Frame, Opcode
from websockets.protocol import CLOSED, CLOSING, OPEN, Protocol
from websockets.server import ServerProtocol
from websockets.uri import parse_uri

from wstool.protocol import internals


def _open_pair(
    client: ClientProtocol | None = None, server: ServerProtocol | None = None
) -> tuple[ClientProtocol, ServerProtocol]:
    """A client and a server protocol through their opening handshake, both OPEN."""
    client = client or ClientProtocol(parse_uri("ws://localhost/"))
    server = server or ServerProtocol()
    client.send_request(client.connect())
    server.receive_data(b"".join(client.data_to_send()))
    [request] = server.events_received()
    server.send_response(server.accept(request))  # type: ignore[arg-type]
    client.receive_data(b"".join(server.data_to_send()))
    client.events_received()
    assert client.state is OPEN and server.state is OPEN
    return client, server


def _server_frames(*frames: Frame) -> bytes:
    """FRAMES as a server sends them (unmasked)."""
    sender = ServerProtocol(state=OPEN)
    for frame in frames:
        sender.send_frame(frame)
    return b"".join(sender.data_to_send())


# Functions of internals.py


def test_parser_waits_in_stream_reader_at_eof_between_frames() -> None:
    client, _ = _open_pair()
    assert internals.at_frame_boundary(client)
    frame = _server_frames(Frame(Opcode.TEXT, b"hello"))
    client.receive_data(frame[:1])  # inside a frame header
    assert not internals.at_frame_boundary(client)
    client.receive_data(frame[1:])
    assert internals.at_frame_boundary(client)
    # Between the fragments of a message: current_size is set.
    client.receive_data(_server_frames(Frame(Opcode.TEXT, b"part", fin=False)))
    assert client.current_size == 4
    assert not internals.at_frame_boundary(client)
    client.receive_data(_server_frames(Frame(Opcode.CONT, b"end")))
    assert client.current_size is None
    assert internals.at_frame_boundary(client)


def test_protocol_writes_is_the_queue_data_to_send_drains() -> None:
    client, _ = _open_pair()
    queue = internals.pending_writes(client)
    assert queue == [] and isinstance(queue, list)
    queue.append(b"\x81\x80raw!")  # what Session.send_many queues
    client.send_text(b"x")  # the library appends to the same list
    assert queue is internals.pending_writes(client)
    sent = client.data_to_send()
    assert sent[0] == b"\x81\x80raw!" and len(sent) == 2
    assert client.data_to_send() == []
    # What StrictEcho.send_message and ServerConnection.flush do inline.
    client.writes.append(b"echo")
    writes, client.writes = client.writes, []
    assert writes == [b"echo"] and client.data_to_send() == []


def test_requeue_writes_hands_writes_back_to_data_to_send() -> None:
    client, _ = _open_pair()
    client.send_text(b"a")
    client.send_text(b"b")
    writes = client.data_to_send()
    internals.requeue_writes(client, [b"".join(writes)])
    assert client.data_to_send() == [b"".join(writes)]


@pytest.mark.parametrize(
    ("data", "max_size", "error"),
    [
        (b"\xa1\x01x", None, ProtocolError),  # RSV2 set, no extension (§5.2)
        (b"\x88\x03\x03\xe8\xff", None, UnicodeDecodeError),  # close reason not UTF-8
        (b"\x82\x64" + b"x" * 100, 10, PayloadTooBig),
    ],
    ids=["protocol-error", "invalid-utf8", "too-big"],
)
def test_parser_exc_holds_why_the_parser_failed(
    data: bytes, max_size: int | None, error: type[Exception]
) -> None:
    client, _ = _open_pair(ClientProtocol(parse_uri("ws://localhost/"), max_size=max_size))
    assert internals.parser_error(client) is None
    client.receive_data(data)  # never raises: the parser stores it
    exc = internals.parser_error(client)
    assert isinstance(exc, error)
    assert client.state is CLOSING  # failed: our close frame is queued
    if isinstance(exc, PayloadTooBig):
        # session.outcome() words --max-size errors from these two.
        assert exc.size == 100 and hasattr(exc, "current_size")


def test_close_rcvd_close_sent_and_who_closed_first() -> None:
    client, server = _open_pair()
    server.send_close(1001, "bye")
    client.receive_data(b"".join(server.data_to_send()))
    rcvd, sent, answered = internals.close_frames(client)
    assert rcvd is not None and (rcvd.code, rcvd.reason) == (1001, "bye")
    assert sent is not None and sent.code == 1001 and answered is True
    # The other way round: we closed first.
    client, server = _open_pair()
    client.send_close(1000, "done")
    server.receive_data(b"".join(client.data_to_send()))
    client.receive_data(b"".join(server.data_to_send()))
    rcvd, sent, answered = internals.close_frames(client)
    assert rcvd is not None and sent is not None and sent.reason == "done"
    assert answered is False
    assert internals.close_frames(_open_pair()[0]) == (None, None, None)


def test_parser_is_the_generator_receive_data_steps() -> None:
    client, _ = _open_pair()
    seen: list[bytes] = []

    def loop() -> Generator[None]:
        reader = client.reader
        while True:
            if reader.buffer:
                seen.append(bytes(reader.buffer))
                reader.discard()
            yield

    internals.replace_parser(client, loop())
    client.receive_data(b"abc")
    client.receive_data(b"def")
    assert seen == [b"abc", b"def"]


def test_send_frame_carries_every_frame_sent() -> None:
    client, server = _open_pair()
    traced: list[Opcode] = []
    internals.trace_sent_frames(client, lambda frame: traced.append(frame.opcode))
    client.send_text(b"t")
    client.send_binary(b"b")
    client.send_ping(b"p")
    server.send_ping(b"q")
    client.receive_data(b"".join(server.data_to_send()))  # the automatic pong
    client.fail(1002, "test")
    assert traced == [
        Opcode.TEXT, Opcode.BINARY, Opcode.PING, Opcode.PONG, Opcode.CLOSE,
    ]


def test_reader_eof_and_settable_state_for_end_of_stream() -> None:
    _, server = _open_pair()
    assert not server.reader.eof
    internals.end_of_stream(server)
    assert server.reader.eof and server.state is CLOSED
    internals.end_of_stream(server)  # twice: connection_lost after eof_received
    assert server.state is CLOSED


def test_client_connection_pending_pings_hold_the_send_time() -> None:
    async def main() -> None:
        async def handler(ws: ServerConnection) -> None:
            await ws.wait_closed()

        async with serve(handler, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            async with connect(f"ws://127.0.0.1:{port}/") as conn:
                assert internals.pong_rtt_s(conn, b"none") is None  # unsolicited
                waiter = await conn.ping(b"ping")
                rtt = internals.pong_rtt_s(conn, b"ping")
                assert rtt is not None and 0 <= rtt < 5
                await waiter

    asyncio.run(main())


def test_connection_ping_goes_through_the_protocols_send_ping() -> None:
    """-P (issue 13): the keepalive's and /ping's pings are reported from send_ping,
    with the payload the connection chose and before any pong can come back."""

    async def main() -> None:
        async def handler(ws: ServerConnection) -> None:
            await ws.wait_closed()

        async with serve(handler, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            async with connect(f"ws://127.0.0.1:{port}/", ping_interval=None) as conn:
                seen: list[bytes] = []
                internals.report_sent_pings(conn.protocol, seen.append)
                waiter = await conn.ping()  # a random payload, as the keepalive's
                [payload] = seen
                assert len(payload) == 4 and payload in conn.pending_pings
                await waiter
                await conn.ping(b"mine")
                assert seen[1] == b"mine"

    asyncio.run(main())


def test_client_connection_close_deadline_set_when_close_goes_out() -> None:
    async def main() -> None:
        async def handler(ws: ServerConnection) -> None:
            await ws.wait_closed()

        async with serve(handler, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            conn = await connect(f"ws://127.0.0.1:{port}/", close_timeout=3)
            assert internals.close_deadline(conn) is None
            loop = asyncio.get_running_loop()
            before = loop.time()
            await conn.close()
            deadline = internals.close_deadline(conn)
            assert deadline is not None and before + 3 <= deadline <= loop.time() + 3

    asyncio.run(main())


def test_client_connection_connection_exc_first_one_wins() -> None:
    async def main() -> None:
        conn = ClientConnection(ClientProtocol(parse_uri("ws://localhost/")))
        assert internals.connection_error(conn) is None
        first, second = OSError("first"), OSError("second")
        internals.set_connection_error(conn, first)
        internals.set_connection_error(conn, second)
        assert internals.connection_error(conn) is first

    asyncio.run(main())


# Fenced assumptions used inline (see internals.py's docstring)


def test_eof_sent_once_send_eof_queued_the_half_close() -> None:
    client, server = _open_pair()
    assert not server.eof_sent
    client.send_close()
    server.receive_data(b"".join(client.data_to_send()))
    assert server.eof_sent  # §7.1.1: the server closes TCP first
    assert server.data_to_send()[-1] == b""


def test_reader_buffer_is_a_bytearray_extended_in_place() -> None:
    client, _ = _open_pair()
    reader = client.reader
    buffer = reader.buffer

    def idle() -> Generator[None]:
        while True:
            yield

    internals.replace_parser(client, idle())
    client.receive_data(b"ab")
    client.receive_data(b"cd")
    assert isinstance(buffer, bytearray) and reader.buffer is buffer
    assert buffer == b"abcd"
    del buffer[:1]  # StrictEcho consumes with `del buf[:n]`
    assert bytes(reader.buffer) == b"bcd"
    reader.discard()
    assert reader.buffer == b""
    client.receive_eof()
    assert reader.eof


def test_events_is_the_queue_events_received_drains() -> None:
    client, _ = _open_pair()
    frame = Frame(Opcode.TEXT, b"mine")
    client.events.append(frame)  # what StrictEcho does per frame
    client.receive_data(_server_frames(Frame(Opcode.PING, b"p")))
    events = client.events_received()
    assert events[0] is frame and isinstance(events[1], Frame)
    assert client.events == []


def test_state_is_stored_in_underscore_state() -> None:
    client, _ = _open_pair()
    assert client._state is client.state is OPEN
    client.state = CLOSING
    assert client._state is CLOSING


def test_protocol_attributes_read_by_the_frame_loop() -> None:
    client, server = _open_pair(
        ClientProtocol(parse_uri("ws://localhost/"), max_size=(1000, 100))
    )
    assert client.side is not server.side
    assert client.max_message_size == 1000 and client.max_fragment_size == 100
    assert client.extensions == [] and isinstance(client.extensions, list)
    assert client.current_size is None
    assert client.close_rcvd is None and client.close_sent is None
    assert client.close_rcvd_then_sent is None
    assert inspect.isgeneratorfunction(Protocol.discard)
    assert callable(client.send_frame) and callable(client.send_eof)


def test_parse_hands_over_to_super_parse_after_the_handshake() -> None:
    # StrictEcho sits between ServerProtocol/ClientProtocol and Protocol in the MRO.
    reached: list[str] = []

    class Probe(Protocol):
        def parse(self) -> Generator[None]:
            reached.append(type(self).__name__)
            yield from super().parse()

    class ProbeServer(ServerProtocol, Probe):
        pass

    class ProbeClient(ClientProtocol, Probe):
        pass

    _open_pair(ProbeClient(parse_uri("ws://localhost/")), ProbeServer())
    assert reached == ["ProbeServer", "ProbeClient"]
    # make_strict_echo swaps __class__ on a library-made ClientProtocol: same layout.
    plain = ClientProtocol(parse_uri("ws://localhost/"))
    assert hasattr(plain, "__dict__") and "__slots__" not in vars(ClientProtocol)


def test_client_connection_protocol_loop_transport_and_drain() -> None:
    async def main() -> None:
        async def handler(ws: ServerConnection) -> None:
            await ws.wait_closed()

        async with serve(handler, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            async with connect(f"ws://127.0.0.1:{port}/") as conn:
                assert isinstance(conn.protocol, ClientProtocol)
                assert conn.loop is asyncio.get_running_loop()
                assert isinstance(conn.transport, asyncio.Transport)
                await conn.drain()

    asyncio.run(main())


@pytest.mark.parametrize("hook", sorted(internals.CLIENT_CONNECTION_HOOKS))
def test_client_connection_hooks_keep_their_signatures(hook: str) -> None:
    method = getattr(ClientConnection, hook)
    assert callable(method)
    params = tuple(inspect.signature(method).parameters)
    assert params == internals.CLIENT_CONNECTION_HOOKS[hook]


def test_allow_redirects_raises_the_librarys_module_bound() -> None:
    """Assumes websockets.asyncio.client.MAX_REDIRECTS is the int connect() loops over
    (the end-to-end check: tests/test_connect_redirects.py, 11 hops)."""
    from websockets.asyncio import client

    from wstool.protocol import internals

    before = client.MAX_REDIRECTS
    assert isinstance(before, int)
    try:
        internals.allow_redirects(before + 5)
        raised = client.MAX_REDIRECTS
        internals.allow_redirects(1)  # never lowered
        assert (raised, client.MAX_REDIRECTS) == (before + 6, before + 6)
    finally:
        client.MAX_REDIRECTS = before


@pytest.mark.parametrize("hook", sorted(internals.CONNECT_HOOKS))
def test_connect_hooks_keep_their_signatures(hook: str) -> None:
    method = getattr(connect, hook)
    assert callable(method)
    params = tuple(inspect.signature(method).parameters)
    assert params == internals.CONNECT_HOOKS[hook]
    if hook == "open_tcp_connection":
        assert inspect.iscoroutinefunction(method)


def test_open_tcp_connection_once_per_hop_with_uri_kwargs_and_factory() -> None:
    """Assumes connect.connect() awaits open_tcp_connection() for each hop, with
    ws_uri already the hop's URL, create_connection_kwargs the extra keyword
    arguments, and factory(ws_uri) the connection it then runs handshake() on: what
    client/session.py's _Connect.open_tcp_connection opens itself (issue 10)."""
    from websockets.datastructures import Headers
    from websockets.http11 import Response

    async def main() -> None:
        async def echo(ws: ServerConnection) -> None:
            async for message in ws:
                await ws.send(message)

        def redirect(ws: ServerConnection, request: object) -> Response | None:
            if getattr(request, "path", "") == "/final":
                return None
            return Response(302, "Found", Headers({"Location": "/final",
                                                   "Content-Length": "0"}), b"")

        hops: list[tuple[str, dict[str, object]]] = []

        class Connect(connect):
            async def open_tcp_connection(self) -> ClientConnection:
                uri = internals.connect_uri(self)
                hops.append((uri.path, dict(internals.connect_kwargs(self))))
                loop = asyncio.get_running_loop()
                _transport, conn = await loop.create_connection(
                    internals.connection_factory(self), uri.host, uri.port)
                return conn

        async with serve(echo, "127.0.0.1", 0, process_request=redirect) as server:
            port = next(iter(server.sockets)).getsockname()[1]
            conn = await Connect(f"ws://127.0.0.1:{port}/", close_timeout=7)
            try:
                assert isinstance(conn, ClientConnection)
                assert conn.close_timeout == 7  # the factory's settings
                await conn.send("hi")
                assert await conn.recv() == "hi"
            finally:
                await conn.close()
        assert hops == [("/", {}), ("/final", {})]

    asyncio.run(main())


def test_client_key_is_the_key_of_the_request_and_of_the_accept_check() -> None:
    """connect --http2 (issue 12): a 101 built with client_key's accept is accepted."""
    from websockets.http11 import Response

    from wstool.http2.rfc8441 import accept_key

    client = ClientProtocol(parse_uri("ws://localhost/"))
    request = client.connect()
    key = internals.client_key(client)
    assert request.headers["Sec-WebSocket-Key"] == key
    assert client.connect().headers["Sec-WebSocket-Key"] == key  # generated once
    client.receive_data(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Accept: "
        + accept_key(key).encode() + b"\r\n\r\n")
    [response] = client.events_received()
    assert isinstance(response, Response)
    assert client.handshake_exc is None and client.state is OPEN
