"""The echo engine on bytes alone (wstool/protocol/echo.py): no sockets, no event loop.

A client handshake and hand-built frames go into ``EchoServerProtocol.receive_data``
in arbitrary pieces; what ``data_to_send`` returns is parsed back into frames.
Hypothesis varies the messages, their fragmentation and where the byte stream is
cut.
"""

from __future__ import annotations

import base64
import os

from hypothesis import given, settings
from hypothesis import strategies as st
from websockets.http11 import Request
from websockets.protocol import State

from tests.test_echo_strict import (
    BINARY,
    CLOSE,
    CONT,
    PING,
    PONG,
    TEXT,
    ServerFrame,
    close_payload,
    frame,
    parse_server_frames,
)
from wstool.protocol.echo import EchoServerProtocol


def open_protocol(**kwargs: object) -> tuple[EchoServerProtocol, bytes]:
    """An engine past its handshake; returns it and the bytes of the 101 response."""
    protocol = EchoServerProtocol(max_size=None, **kwargs)  # type: ignore[arg-type]
    key = base64.b64encode(os.urandom(16)).decode()
    protocol.receive_data(
        (
            "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    [request] = protocol.events_received()
    assert isinstance(request, Request)
    protocol.send_response(protocol.accept(request))
    assert protocol.state is State.OPEN
    return protocol, b"".join(protocol.data_to_send())


def feed(protocol: EchoServerProtocol, pieces: list[bytes]) -> list[ServerFrame]:
    out = b""
    for piece in pieces:
        protocol.receive_data(piece)
        out += b"".join(protocol.data_to_send())
    return parse_server_frames(out)


def test_frames_pipelined_with_the_request_wait_for_the_accept() -> None:
    protocol = EchoServerProtocol(max_size=None)
    key = base64.b64encode(os.urandom(16)).decode()
    protocol.receive_data(
        (
            "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
        + frame(TEXT, b"early")
    )
    assert protocol.data_to_send() == []  # nothing echoed before the 101
    [request] = protocol.events_received()
    assert isinstance(request, Request)
    protocol.send_response(protocol.accept(request))
    head = b"".join(protocol.data_to_send())
    assert head.startswith(b"HTTP/1.1 101")
    protocol.receive_data(b"")  # the driver steps the parser after accept()
    frames = parse_server_frames(b"".join(protocol.data_to_send()))
    assert [(f.opcode, f.payload) for f in frames] == [(TEXT, b"early")]


def test_counters() -> None:
    protocol, _ = open_protocol()
    feed(protocol, [frame(TEXT, "é".encode()), frame(BINARY, b"123")])
    assert (protocol.messages_in, protocol.bytes_in) == (2, 5)
    assert (protocol.messages_out, protocol.bytes_out) == (2, 5)


def test_echo_messages_off_counts_but_does_not_echo() -> None:
    protocol, _ = open_protocol()
    protocol.echo_messages = False
    assert feed(protocol, [frame(TEXT, b"x")]) == []
    assert protocol.messages_in == 1


def test_raw_echo_matches_send_frame() -> None:
    payloads = [b"", b"a" * 125, b"b" * 126, b"c" * 65535, b"d" * 65536]
    outputs = []
    for raw in (False, True):
        protocol, _ = open_protocol()
        protocol.raw_echo = raw
        outputs.append(feed(protocol, [b"".join(frame(BINARY, p) for p in payloads)]))
    assert outputs[0] == outputs[1]
    assert [f.payload for f in outputs[1]] == payloads


messages = st.lists(
    st.one_of(
        st.text(max_size=300).map(lambda t: (TEXT, t.encode())),
        st.binary(max_size=300).map(lambda b: (BINARY, b)),
    ),
    min_size=1,
    max_size=12,
)


@settings(max_examples=150, deadline=None)
@given(messages=messages, data=st.data())
def test_any_fragmentation_and_any_cuts_echo_every_message(
    messages: list[tuple[int, bytes]], data: st.DataObject
) -> None:
    wire = b""
    for opcode, payload in messages:
        # Cut the payload into 1-4 fragments anywhere (even inside a UTF-8
        # sequence: only the whole message must be valid), with a ping
        # sometimes injected between fragments (RFC 6455 §5.4).
        cuts = sorted(data.draw(st.lists(st.integers(0, len(payload)), max_size=3)))
        parts = [payload[a:b] for a, b in zip([0, *cuts], [*cuts, len(payload)], strict=True)]
        for i, part in enumerate(parts):
            wire += frame(opcode if i == 0 else CONT, part, fin=i == len(parts) - 1)
            if i < len(parts) - 1 and data.draw(st.booleans()):
                wire += frame(PING, b"p")
    wire += frame(CLOSE, close_payload(1000))
    split_at = sorted(set(data.draw(st.lists(st.integers(1, len(wire) - 1), max_size=8))))
    pieces = [wire[a:b] for a, b in zip([0, *split_at], [*split_at, len(wire)], strict=True)]
    protocol, _ = open_protocol()
    frames = [f for f in feed(protocol, pieces) if f.opcode != PONG]
    assert [(f.opcode, f.payload) for f in frames] == [*messages, (CLOSE, close_payload(1000))]
    assert all(f.fin for f in frames)


# Invalid sequences and the index of the byte that makes each one invalid.
INVALID_UTF8 = [
    (b"\xff", 0),  # never valid
    (b"\x80", 0),  # a continuation byte first
    (b"\xc0\xaf", 0),  # C0 only starts overlong forms
    (b"\xed\xa0\x80", 1),  # ED A0: a UTF-16 surrogate
    (b"\xf4\x90\x80\x80", 1),  # above U+10FFFF
    (b"\xe2\x82x", 2),  # a sequence cut by an ASCII byte
]


@settings(max_examples=100, deadline=None)
@given(
    prefix=st.text(max_size=50),
    bad=st.sampled_from(INVALID_UTF8),
    suffix=st.binary(max_size=50),
    data=st.data(),
)
def test_invalid_utf8_fails_by_the_offending_byte(
    prefix: str, bad: tuple[bytes, int], suffix: bytes, data: st.DataObject
) -> None:
    sequence, offending = bad
    payload = prefix.encode() + sequence + suffix
    wire = frame(TEXT, payload)
    header_len = len(wire) - len(payload)
    # Deliver the frame up to and including the offending byte, in two writes;
    # the rest never comes.
    cut = header_len + len(prefix.encode()) + offending + 1
    split = data.draw(st.integers(1, cut))
    protocol, _ = open_protocol()
    frames = feed(protocol, [wire[:split], wire[split:cut]])
    assert frames and frames[-1].opcode == CLOSE and frames[-1].close_code == 1007


# permessage-deflate (RFC 7692): the extension path of the engine.


def open_deflate_protocol(max_size: int | None = None) -> EchoServerProtocol:
    from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory

    protocol = EchoServerProtocol(
        max_size=max_size, extensions=[ServerPerMessageDeflateFactory()]
    )
    key = base64.b64encode(os.urandom(16)).decode()
    protocol.receive_data(
        (
            "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            "Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n"
        ).encode()
    )
    [request] = protocol.events_received()
    assert isinstance(request, Request)
    protocol.send_response(protocol.accept(request))
    protocol.data_to_send()
    assert [str(e.name) for e in protocol.extensions] == ["permessage-deflate"]
    return protocol


def deflate(data: bytes) -> bytes:
    import zlib

    compressor = zlib.compressobj(wbits=-15)
    out = compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(b"\x00\x00\xff\xff")
    return out[:-4]


def inflate(data: bytes) -> bytes:
    import zlib

    return zlib.decompressobj(wbits=-15).decompress(data + b"\x00\x00\xff\xff")


def test_deflate_message_is_echoed_compressed() -> None:
    protocol = open_deflate_protocol()
    text = ("compress me " * 20).encode()
    frames = feed(protocol, [frame(TEXT, deflate(text), rsv=4)])
    assert len(frames) == 1 and frames[0].opcode == TEXT
    assert inflate(frames[0].payload) == text


def test_deflate_invalid_utf8_is_1007() -> None:
    protocol = open_deflate_protocol()
    frames = feed(protocol, [frame(TEXT, deflate(b"ok \xff no"), rsv=4)])
    assert frames[-1].opcode == CLOSE and frames[-1].close_code == 1007


def test_deflate_bomb_over_max_size_is_1009() -> None:
    protocol = open_deflate_protocol(max_size=1000)
    compressed = deflate(b"\x00" * 100_000)
    assert len(compressed) < 1000
    frames = feed(protocol, [frame(BINARY, compressed, rsv=4)])
    assert frames[-1].opcode == CLOSE and frames[-1].close_code == 1009


def test_deflate_rsv1_on_a_control_frame_is_1002() -> None:
    protocol = open_deflate_protocol()
    frames = feed(protocol, [frame(PING, b"x", rsv=4)])
    assert frames[-1].opcode == CLOSE and frames[-1].close_code == 1002


def test_deflate_rsv2_is_1002() -> None:
    protocol = open_deflate_protocol()
    frames = feed(protocol, [frame(TEXT, b"x", rsv=2)])
    assert frames[-1].opcode == CLOSE and frames[-1].close_code == 1002


def test_deflate_uncompressed_messages_are_checked_too() -> None:
    # RSV1 clear: an uncompressed message on a deflate connection (RFC 7692
    # §6.1) takes the engine's plain path; the same rules hold there.
    protocol = open_deflate_protocol(max_size=1000)
    protocol.raw_below_bytes = 1024  # as the server sets it: short echoes go uncompressed
    frames = feed(protocol, [frame(TEXT, "plain é".encode()), frame(BINARY, b"\x00\xff")])
    assert [(f.opcode, f.payload) for f in frames] == [
        (TEXT, "plain é".encode()), (BINARY, b"\x00\xff")
    ]
    # A fragmented uncompressed text whose UTF-8 breaks in the second part.
    frames = feed(protocol, [frame(TEXT, b"ok \xc3", fin=False), frame(CONT, b"\x28")])
    assert frames[-1].opcode == CLOSE and frames[-1].close_code == 1007
    protocol = open_deflate_protocol()
    frames = feed(protocol, [frame(TEXT, b"bad \xff")])
    assert frames[-1].opcode == CLOSE and frames[-1].close_code == 1007
    protocol = open_deflate_protocol(max_size=1000)
    frames = feed(protocol, [frame(BINARY, b"z" * 1001)])
    assert frames[-1].opcode == CLOSE and frames[-1].close_code == 1009


def _random_frame(b0: int, payload: bytes) -> bytes:
    """Any first byte (FIN, RSV, opcode), a masked, well-formed length."""
    return bytes([b0]) + frame(BINARY, payload)[1:]


frame_soup = st.lists(
    st.tuples(st.integers(0, 255), st.binary(max_size=140)).map(lambda t: _random_frame(*t)),
    min_size=1, max_size=8,
).map(b"".join)


@settings(max_examples=300, deadline=None)
@given(garbage=st.one_of(st.binary(min_size=1, max_size=400), frame_soup), data=st.data())
def test_arbitrary_bytes_never_break_the_engine(garbage: bytes, data: st.DataObject) -> None:
    # Whatever arrives after the handshake, the engine echoes, waits for more,
    # or fails the connection for a protocol reason: never an internal error
    # (the catch-all that would close with 1011).
    from websockets.exceptions import PayloadTooBig, ProtocolError

    protocol, _ = open_protocol()
    protocol.max_message_size = 2000
    cut = data.draw(st.integers(0, len(garbage)))
    feed(protocol, [garbage[:cut], garbage[cut:]])
    exc = protocol.parser_exc
    assert exc is None or isinstance(
        exc, ProtocolError | UnicodeDecodeError | PayloadTooBig | EOFError
    ), repr(exc)
    if exc is not None:
        assert protocol.close_sent is not None and protocol.close_sent.code != 1011


def test_send_messages_is_send_message_for_many() -> None:
    # Issue 16's bridges send a chunk of a process's output at once: same frames, same
    # counters, on the raw path and the frame path; nothing once closing.
    messages = [(1, b"one"), (2, b"\x00\xff"), (1, b"x" * 70_000)]
    for raw in (True, False):
        protocol, _response = open_protocol()
        protocol.raw_echo = raw
        assert protocol.send_messages(messages) == 3
        frames = parse_server_frames(b"".join(protocol.data_to_send()))
        assert [(f.opcode, f.payload) for f in frames] == messages
        assert (protocol.messages_out, protocol.bytes_out) == (3, 3 + 2 + 70_000)
        protocol.send_close(1000, "")
        assert protocol.send_messages(messages) == 0
