"""The echo engine's fast paths (``StrictEcho.echo_fast`` and the server's inline
one-frame path in ``ServerConnection.data_received``, issue 14) and their edge cases.

While the frame loop waits between messages, the server echoes a read of
exactly one short frame itself and hands any other read to ``echo_fast``;
whatever that does not take goes on to the frame loop. Two angles: the bytes
out must be exactly those of the frame loop alone for any frames cut anywhere
(Hypothesis: sans-I/O for ``echo_fast``, through a real connection's
``data_received`` for all three); and through a real server on loopback, the
cases where the paths meet (a frame split across reads, two frames in one read,
bad UTF-8, a control frame or a fragment in between, max-size).
"""

from __future__ import annotations

import base64
import itertools
import os
import socket
import struct
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from websockets.protocol import State

from tests.conftest import ServerThread, scaled, until
from tests.test_echo import deflate, open_deflate_protocol, open_protocol
from tests.test_echo_strict import (
    BINARY,
    CLOSE,
    CONT,
    PING,
    PONG,
    TEXT,
    RawClient,
    _start,
    close_payload,
    frame,
    parse_server_frames,
)
from wstool.config import EchoConfig, ServerConfig
from wstool.protocol.echo import EchoServerProtocol
from wstool.server.core import ServerConnection, WebSocketServer, run_echo_server


def fast_protocol(max_size: int | None = None) -> EchoServerProtocol:
    protocol, _response = open_protocol()
    protocol.max_message_size = max_size
    protocol.raw_echo = True  # as the server sets it for a plain echo
    protocol.receive_data(b"")  # the frame loop starts, parks between messages
    return protocol


def drive(protocol: EchoServerProtocol, piece: bytes) -> bytes:
    """What ServerConnection.data_received does with one read, but for its inline
    one-frame path (tested through a real connection below)."""
    out = b""
    if protocol.fast_echo_limit and protocol.state is State.OPEN:
        used, echo = protocol.echo_fast(piece)
        out += echo
        if used == len(piece):
            return out
        piece = piece[used:]
    protocol.receive_data(piece)
    return out + b"".join(protocol.data_to_send())


def slow(protocol: EchoServerProtocol, piece: bytes) -> bytes:
    protocol.receive_data(piece)
    return b"".join(protocol.data_to_send())


def test_the_fast_path_takes_whole_simple_frames() -> None:
    protocol = fast_protocol()
    assert protocol.fast_echo_limit == 65535
    wire = frame(TEXT, b"hi") + frame(BINARY, b"\x00" * 300) + frame(TEXT, "é".encode())
    used, echo = protocol.echo_fast(wire)
    assert used == len(wire)
    assert [(f.opcode, f.payload) for f in parse_server_frames(echo)] == [
        (TEXT, b"hi"), (BINARY, b"\x00" * 300), (TEXT, "é".encode())]
    assert (protocol.messages_in, protocol.messages_out) == (3, 3)
    assert protocol.bytes_in == protocol.bytes_out == 2 + 300 + 2


@pytest.mark.parametrize(
    "wire",
    [
        frame(TEXT, b"x", fin=False),  # a fragment
        frame(PING, b"p"),  # a control frame
        frame(TEXT, b"x", rsv=4),  # RSV1
        frame(TEXT, b"x", masked=False),
        frame(TEXT, b"\xc3\x28"),  # bad UTF-8
        frame(BINARY, b"x" * 70000),  # a 64-bit length
        frame(TEXT, b"hello")[:-1],  # cut
        frame(0x3, b"x"),  # reserved opcode
        # a 16-bit length under 126: the loop's echo has the minimal header (§5.2)
        bytes((0x81, 0x80 | 126)) + struct.pack("!H", 2) + frame(TEXT, b"hi")[2:],
    ],
    ids=["fragment", "ping", "rsv1", "unmasked", "bad-utf8", "64-bit", "cut", "opcode-3",
         "16-bit-short"],
)
def test_the_fast_path_leaves_anything_else_to_the_frame_loop(wire: bytes) -> None:
    protocol = fast_protocol()
    assert protocol.echo_fast(wire) == (0, b"")
    assert protocol.messages_in == 0


def test_an_unmasked_header_is_never_read_as_a_masked_length() -> None:
    # 0x05 without the mask bit reads as 133 after the XOR: a read of exactly
    # 133 + 6 bytes must not pass for one masked 133-byte frame.
    wire = frame(TEXT, b"hello", masked=False) + b"x" * 132
    assert len(wire) == 133 + 6
    protocol = fast_protocol()
    assert protocol.echo_fast(wire) == (0, b"")
    frames = parse_server_frames(drive(protocol, wire))
    assert frames[-1].opcode == CLOSE and frames[-1].close_code == 1002


@pytest.mark.parametrize("payload", [b"", b"x" * 125, "ünï".encode()])
def test_a_read_of_exactly_one_frame(payload: bytes) -> None:
    protocol = fast_protocol()
    wire = frame(TEXT, payload)
    assert protocol.echo_fast(wire) == (len(wire), bytes((0x81, len(payload))) + payload)


def test_the_fast_path_respects_max_size() -> None:
    protocol = fast_protocol(max_size=10)
    assert protocol.fast_echo_limit == 10
    assert protocol.echo_fast(frame(TEXT, b"x" * 11)) == (0, b"")
    out = drive(protocol, frame(TEXT, b"ok") + frame(TEXT, b"x" * 11))
    frames = parse_server_frames(out)
    assert [(f.opcode, f.payload) for f in frames[:1]] == [(TEXT, b"ok")]
    assert frames[1].opcode == CLOSE and frames[1].close_code == 1009


def test_no_fast_path_inside_a_fragmented_message() -> None:
    protocol = fast_protocol()
    drive(protocol, frame(TEXT, b"a", fin=False))
    assert protocol.fast_echo_limit == 0
    # A whole-looking text frame here is a protocol error, not an echo.
    frames = parse_server_frames(drive(protocol, frame(TEXT, b"b")))
    assert frames[-1].opcode == CLOSE and frames[-1].close_code == 1002


def test_no_fast_path_without_a_plain_raw_echo() -> None:
    protocol, _ = open_protocol()
    protocol.receive_data(b"")
    assert protocol.fast_echo_limit == 0  # raw_echo off (send_frame's path)


_simple = st.tuples(st.sampled_from([TEXT, BINARY]), st.binary(max_size=300))
_valid_text = st.text(max_size=40).map(lambda t: (TEXT, t.encode()))
_odd = st.sampled_from([
    frame(PING, b"ping"),
    frame(PONG, b""),
    frame(TEXT, b"frag", fin=False) + frame(CONT, "é".encode()),
    frame(TEXT, "\u20ac".encode()[:2], fin=False) + frame(CONT, "\u20ac".encode()[2:]),
    frame(TEXT, b"\xed\xa0\x80"),  # a surrogate: 1007
    frame(TEXT, b"\xff"),  # 1007
    frame(TEXT, b"x", rsv=2),  # 1002
    frame(CLOSE, close_payload(1000)),
    frame(BINARY, b"", masked=False),  # 1002
    # A 16-bit length under 126 (not minimal, §5.2, but the loop takes it): the
    # echo's header is the minimal one either way.
    bytes((0x82, 0x80 | 126)) + struct.pack("!H", 124) + frame(BINARY, b"y" * 124)[2:],
])


@settings(max_examples=300, deadline=None)
@given(
    items=st.lists(
        st.one_of(_simple.map(lambda m: frame(*m)), _valid_text.map(lambda m: frame(*m)), _odd),
        max_size=12,
    ),
    cuts=st.lists(st.integers(min_value=0, max_value=4000), max_size=6),
)
def test_fast_path_and_frame_loop_send_the_same_bytes(items: list[bytes], cuts: list[int]) -> None:
    wire = b"".join(items)
    points = sorted({c % (len(wire) + 1) for c in cuts} | {0, len(wire)})
    pieces = [wire[a:b] for a, b in itertools.pairwise(points)]
    fast, reference = fast_protocol(), fast_protocol()
    got = b"".join(drive(fast, p) for p in pieces)
    want = b"".join(slow(reference, p) for p in pieces)
    assert got == want
    assert fast.state is reference.state
    assert (fast.messages_in, fast.bytes_in, fast.messages_out, fast.bytes_out) == (
        reference.messages_in, reference.bytes_in, reference.messages_out, reference.bytes_out)
    if reference.close_sent is not None:
        assert fast.close_sent is not None
        assert fast.close_sent.code == reference.close_sent.code


def deflate_fast_protocol() -> EchoServerProtocol:
    protocol = open_deflate_protocol()
    protocol.raw_below_bytes = 1024  # as the server sets it (COMPRESS_THRESHOLD_BYTES)
    protocol.receive_data(b"")
    return protocol


def test_with_deflate_only_short_uncompressed_messages_take_the_fast_path() -> None:
    protocol = deflate_fast_protocol()
    assert protocol.fast_echo_limit == 1023
    short = frame(TEXT, b"x" * 1023)
    assert protocol.echo_fast(short)[0] == len(short)
    assert protocol.echo_fast(frame(TEXT, b"x" * 1024)) == (0, b"")  # echoed compressed
    assert protocol.echo_fast(frame(TEXT, deflate(b"abc"), rsv=4)) == (0, b"")


_deflated = st.sampled_from([
    frame(TEXT, deflate(b"compressed text"), rsv=4),
    frame(BINARY, deflate(b"\x00" * 2000), rsv=4),
    frame(TEXT, deflate(b"two "), rsv=4, fin=False) + frame(CONT, deflate(b"parts")),
    frame(TEXT, b"x" * 1500),  # uncompressed but over the threshold: echoed compressed
    frame(TEXT, deflate(b"\xff"), rsv=4),  # 1007 after inflating
])


@settings(max_examples=200, deadline=None)
@given(
    items=st.lists(
        st.one_of(_simple.map(lambda m: frame(*m)), _valid_text.map(lambda m: frame(*m)),
                  _odd, _deflated),
        max_size=10,
    ),
    cuts=st.lists(st.integers(min_value=0, max_value=4000), max_size=6),
)
def test_with_deflate_fast_path_and_frame_loop_send_the_same_bytes(
    items: list[bytes], cuts: list[int]
) -> None:
    wire = b"".join(items)
    points = sorted({c % (len(wire) + 1) for c in cuts} | {0, len(wire)})
    pieces = [wire[a:b] for a, b in itertools.pairwise(points)]
    fast, reference = deflate_fast_protocol(), deflate_fast_protocol()
    got = b"".join(drive(fast, p) for p in pieces)
    want = b"".join(slow(reference, p) for p in pieces)
    assert got == want
    assert fast.state is reference.state
    assert (fast.messages_in, fast.messages_out) == (reference.messages_in,
                                                     reference.messages_out)


# Through a real server (core.ServerConnection.data_received).


@pytest.fixture
def server(server_thread: ServerThread) -> Iterator[WebSocketServer]:
    yield from _start(server_thread, ServerConfig(port=0, compress=False, ping_interval_s=None))


def _client(server: WebSocketServer) -> RawClient:
    return RawClient(int(server.urls[0].rsplit(":", 1)[1].strip("/")))


def test_a_plain_server_connection_uses_the_fast_path(server: WebSocketServer) -> None:
    c = _client(server)
    try:
        c.send(frame(TEXT, b"one"))
        assert [f.payload for f in c.read_frames(1)] == [b"one"]
        [conn] = list(server.open_connections)
        assert conn.protocol.fast_echo_limit == 65535
    finally:
        c.close()


def test_knobs_keep_the_frame_loop(server_thread: ServerThread) -> None:
    async def start() -> WebSocketServer:
        config = ServerConfig(port=0, compress=False, ping_interval_s=None)
        return await run_echo_server(config, EchoConfig(close_after=5), lambda _e: None)

    srv = server_thread.run(start())
    c = _client(srv)
    try:
        c.send(frame(TEXT, b"one"))
        assert [f.payload for f in c.read_frames(1)] == [b"one"]
        [conn] = list(srv.open_connections)
        assert conn.protocol.fast_echo_limit == 0
    finally:
        c.close()
        server_thread.run(srv.shutdown())


def test_a_frame_split_across_reads_is_echoed(server: WebSocketServer) -> None:
    c = _client(server)
    try:
        wire = frame(TEXT, b"first") + frame(TEXT, b"second half")
        cut = len(frame(TEXT, b"first")) + 5
        c.send(wire[:cut])
        assert [f.payload for f in c.read_frames(1)] == [b"first"]
        c.send(wire[cut:], frame(BINARY, b"next"))
        frames = c.read_frames(2)
        assert [(f.opcode, f.payload) for f in frames] == [
            (TEXT, b"second half"), (BINARY, b"next")]
    finally:
        c.close()


def test_two_frames_in_one_read_and_a_ping_between(server: WebSocketServer) -> None:
    c = _client(server)
    try:
        c.send(frame(TEXT, b"a") + frame(PING, b"p") + frame(BINARY, b"b") + frame(TEXT, b"c"))
        frames = c.read_frames(4)
        assert [(f.opcode, f.payload) for f in frames] == [
            (TEXT, b"a"), (PONG, b"p"), (BINARY, b"b"), (TEXT, b"c")]
    finally:
        c.close()


def test_bad_utf8_after_good_frames_in_one_read_is_1007(server: WebSocketServer) -> None:
    c = _client(server)
    try:
        c.send(frame(TEXT, b"ok") + frame(TEXT, "ü".encode()) + frame(TEXT, b"a\xc3\x28")
               + frame(TEXT, b"never"))
        frames = c.read_until_closed()
        assert [(f.opcode, f.payload) for f in frames[:2]] == [
            (TEXT, b"ok"), (TEXT, "ü".encode())]
        assert frames[2].opcode == CLOSE and frames[2].close_code == 1007
        assert len(frames) == 3
    finally:
        c.close()


def test_fragments_then_whole_frames_in_one_read(server: WebSocketServer) -> None:
    c = _client(server)
    try:
        c.send(frame(TEXT, b"x", fin=False) + frame(CONT, b"y") + frame(BINARY, os.urandom(0))
               + frame(TEXT, b"z"))
        frames = c.read_frames(3)
        assert [(f.opcode, f.payload) for f in frames] == [
            (TEXT, b"xy"), (BINARY, b""), (TEXT, b"z")]
    finally:
        c.close()


def test_a_close_after_fast_echoes_is_answered_after_them(server: WebSocketServer) -> None:
    c = _client(server)
    try:
        c.send(b"".join(frame(TEXT, b"m%d" % i) for i in range(20))
               + frame(CLOSE, close_payload(1000)) + frame(TEXT, b"after"))
        frames = c.read_until_closed()
        assert [f.payload for f in frames[:20]] == [b"m%d" % i for i in range(20)]
        assert frames[20].opcode == CLOSE and frames[20].close_code == 1000
        assert len(frames) == 21
    finally:
        c.close()


def test_a_compressing_client_gets_the_fast_path_for_short_messages(
    server_thread: ServerThread,
) -> None:
    from websockets.sync.client import connect

    config = ServerConfig(port=0, ping_interval_s=None)  # compression on (the default)
    for srv in _start(server_thread, config):
        with connect(srv.urls[0], max_size=None) as ws:  # offers permessage-deflate
            big = "y" * 5000
            messages: list[str | bytes] = ["short", b"\x01\x02", big, "ünï", b""]
            for message in messages:
                ws.send(message)
                assert ws.recv() == message
            [conn] = list(srv.open_connections)
            assert [str(e.name) for e in conn.protocol.extensions] == ["permessage-deflate"]
            assert conn.protocol.fast_echo_limit == 1023


# The server's inline fast path (core.ServerConnection.data_received takes a read
# of exactly one short frame itself) against the frame loop alone, any cuts: a
# real connection on loopback gets the reads through data_received, as its
# transport would deliver them; a second connection of the same server, set up
# alike, is the reference, its protocol fed the same reads directly (the frame
# loop only). What the first wrote is read from its client socket until EOF.


def _raw_handshake(port: int, offer_deflate: bool) -> tuple[socket.socket, bytes]:
    sock = socket.create_connection(("127.0.0.1", port), timeout=scaled(5))
    key = base64.b64encode(os.urandom(16)).decode()
    extension = "Sec-WebSocket-Extensions: permessage-deflate\r\n" if offer_deflate else ""
    sock.sendall(
        (
            "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n{extension}"
            f"Sec-WebSocket-Key: {key}\r\n\r\n"
        ).encode()
    )
    response = b""
    while b"\r\n\r\n" not in response:
        chunk = sock.recv(4096)
        assert chunk, "server closed during the handshake"
        response += chunk
    head, _, extra = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101 "), head
    assert extra == b""
    return sock, head


def _open_connection(
    server_thread: ServerThread, server: WebSocketServer, offer_deflate: bool
) -> tuple[socket.socket, ServerConnection]:
    async def known() -> set[ServerConnection]:
        return set(server.open_connections)

    async def new(before: set[ServerConnection]) -> ServerConnection:
        await until(lambda: len(server.open_connections - before) == 1, "the new connection")
        [conn] = server.open_connections - before
        return conn

    before = server_thread.run(known())
    sock, _head = _raw_handshake(int(server.urls[0].rsplit(":", 1)[1].strip("/")), offer_deflate)
    return sock, server_thread.run(new(before))


def _read_to_eof(sock: socket.socket) -> bytes:
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            return data
        data += chunk
    return data


# Around max-size 50: payloads of 40..130 bytes, most over it, all 7-bit lengths.
_near_50 = st.tuples(st.sampled_from([TEXT, BINARY]), st.integers(40, 130)).map(
    lambda m: frame(m[0], b"z" * m[1]))
# A read that is (header byte 1 ^ 0x80) + 6 bytes without being one short masked
# frame: an unmasked frame and 4 more bytes (1002).
_lookalikes = st.just(frame(TEXT, b"hello", masked=False) + b"abcd")
_INLINE_CASES = {
    "plain": (
        ServerConfig(port=0, compress=False, ping_interval_s=None), False,
        st.one_of(_odd, _lookalikes)),
    # The inline path's own max-size check (1009 either way).
    "max-size-50": (
        ServerConfig(port=0, compress=False, ping_interval_s=None, max_size_bytes=50), False,
        st.one_of(_odd, _near_50, _lookalikes)),
    "deflate": (ServerConfig(port=0, ping_interval_s=None), True, st.one_of(_odd, _deflated)),
}


@pytest.mark.parametrize("case", list(_INLINE_CASES))
def test_the_server_inline_path_and_frame_loop_send_the_same_bytes(
    server_thread: ServerThread, case: str
) -> None:
    config, offer_deflate, odd = _INLINE_CASES[case]
    starter = _start(server_thread, config)
    srv = next(starter)

    async def feed(
        conn: ServerConnection, reference: EchoServerProtocol, pieces: list[bytes]
    ) -> tuple[bytes, tuple[int, ...], tuple[int, ...]]:
        want = b""
        for piece in pieces:
            conn.data_received(piece)
            reference.receive_data(piece)
            want += b"".join(reference.data_to_send())
        fast, ref = conn.protocol, reference
        counts = (fast.messages_in, fast.bytes_in, fast.messages_out, fast.bytes_out)
        ref_counts = (ref.messages_in, ref.bytes_in, ref.messages_out, ref.bytes_out)
        conn.transport.close()  # after what it wrote: EOF
        return want, counts, ref_counts

    @settings(max_examples=60, deadline=None)
    @given(
        items=st.lists(
            st.one_of(_simple.map(lambda m: frame(*m)),
                      _valid_text.map(lambda m: frame(*m)), odd),
            max_size=8,
        ),
        cuts=st.lists(st.integers(min_value=0, max_value=4000), max_size=6),
        per_item=st.booleans(),
    )
    def check(items: list[bytes], cuts: list[int], per_item: bool) -> None:
        wire = b"".join(items)
        cut_at = {c % (len(wire) + 1) for c in cuts} | {0, len(wire)}
        if per_item:  # also a read per item: one frame per read, request/response
            cut_at |= set(itertools.accumulate(len(item) for item in items))
        pieces = [wire[a:b] for a, b in itertools.pairwise(sorted(cut_at))]
        fast_sock, conn = _open_connection(server_thread, srv, offer_deflate)
        ref_sock, ref_conn = _open_connection(server_thread, srv, offer_deflate)
        try:
            want, counts, ref_counts = server_thread.run(
                feed(conn, ref_conn.protocol, pieces))
            assert _read_to_eof(fast_sock) == want
            assert counts == ref_counts
        finally:
            fast_sock.close()
            ref_sock.close()

    try:
        check()
    finally:
        next(starter, None)  # shutdown


def test_one_short_frame_per_read_takes_the_inline_path(server: WebSocketServer) -> None:
    c = _client(server)
    try:
        for payload in (b"abc", "ünï".encode(), b"x" * 125):
            c.send(frame(TEXT, payload))
            assert [f.payload for f in c.read_frames(1)] == [payload]
            c.extra = b""
        [conn] = list(server.open_connections)
        # The inline path counts each message once, as echoed.
        size = 3 + len("ünï".encode()) + 125
        assert (conn.protocol.echoed, conn.protocol.echoed_bytes) == (3, size)
        assert (conn.protocol.messages_in, conn.protocol.bytes_out) == (3, size)
    finally:
        c.close()


def test_no_inline_echo_after_the_server_sent_its_close(
    server_thread: ServerThread, server: WebSocketServer
) -> None:
    # §5.5.1: no data frame after a Close; the frame loop stays parked (its
    # fast_echo_limit still set) when the server closes, so the state decides.
    c = _client(server)
    try:
        c.send(frame(TEXT, b"before"))
        assert [f.payload for f in c.read_frames(1)] == [b"before"]
        c.extra = b""
        [conn] = list(server.open_connections)

        async def close() -> int:
            conn.close(1000, "bye")
            return conn.protocol.fast_echo_limit

        assert server_thread.run(close()) != 0
        c.send(frame(TEXT, b"late"), frame(CLOSE, close_payload(1000)))
        frames = c.read_until_closed()
        assert [f.opcode for f in frames] == [CLOSE]
        assert frames[0].close_code == 1000
    finally:
        c.close()
