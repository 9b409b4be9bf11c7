"""The session core in-process, against a raw server that writes scripted bytes.

The receive path has two parsers (session._Connection._receive_fast for plain
data frames, the library for everything else); these tests cut the server's
byte stream everywhere and mix in what must go to the library.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from websockets.server import ServerProtocol

from tests.conftest import scaled
from wstool.client.session import Session
from wstool.config import ConnectConfig, parse_target
from wstool.errors import ProtocolFailure
from wstool.events import Event, Message, Ping
from wstool.term.stdin import text_lines


def frame(opcode: int, payload: bytes, *, fin: bool = True, rsv1: bool = False) -> bytes:
    """A server frame (unmasked), with the shortest length encoding."""
    first = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode
    n = len(payload)
    if n < 126:
        header = bytes((first, n))
    elif n < 65536:
        header = struct.pack("!BBH", first, 126, n)
    else:
        header = struct.pack("!BBQ", first, 127, n)
    return header + payload


TEXT, BINARY, CONT, CLOSE, PING = 1, 2, 0, 8, 9

Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def run_session(script: Script, batches: list[list[bytes]] | None = None,
                      setup: Callable[[Session], None] | None = None,
                      **config: Any) -> tuple[Session, list[Event], Any]:
    """Serve one connection with SCRIPT after the handshake; return what the client saw.

    With BATCHES, the session's text batch handler is on (pipe mode's hot path): each
    batch is appended there, and its messages to the events as Message records.
    SETUP is called with the session before it opens."""
    client_bytes: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        protocol = ServerProtocol()
        protocol.receive_data(await reader.readuntil(b"\r\n\r\n"))
        request = protocol.events_received()[0]
        protocol.send_response(protocol.accept(request))  # type: ignore[arg-type]
        writer.write(b"".join(protocol.data_to_send()))
        await writer.drain()
        await script(reader, writer)
        # Read what the client sends until its close frame (or EOF), then
        # close TCP as a server does (RFC 6455 §7.1.1).
        received = b""
        while CLOSE not in client_opcodes(received):
            chunk = await reader.read(65536)
            if not chunk:
                break
            received += chunk
        client_bytes.append(received)
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    events: list[Event] = []
    config.setdefault("compress", False)
    session = Session(
        ConnectConfig(target=parse_target(f"ws://127.0.0.1:{port}/"), **config),
        events.append, report_sent=False,
    )
    if batches is not None:
        def on_text_batch(payloads: list[bytes]) -> None:
            batches.append(list(payloads))
            events.extend(Message("received", p.decode(), ts=0.0) for p in payloads)

        session.on_text_batch = on_text_batch
    if setup is not None:
        setup(session)
    async with server:
        await session.open()
        if batches is not None:
            # Tell the script that the handshake's read is over: what it sends next
            # starts a read of its own, at a frame boundary (see READY).
            session.send_text("go")
            session.flush()
        await asyncio.wait_for(session.wait_closed(), scaled(10))
    return session, events, b"".join(client_bytes)


def client_opcodes(data: bytes) -> list[int]:
    """Opcodes of the complete masked client frames in DATA (payloads < 126 B)."""
    opcodes = []
    while len(data) >= 6 and len(data) >= 6 + (data[1] & 0x7F):
        opcodes.append(data[0] & 0x0F)
        data = data[6 + (data[1] & 0x7F) :]
    return opcodes


def messages(events: list[Event]) -> list[str | bytes]:
    return [e.data for e in events if isinstance(e, Message) and e.direction == "received"]


STREAM = [
    frame(TEXT, b"hello"),
    frame(BINARY, bytes(range(256)) + b"x" * 44),  # 16-bit length
    frame(PING, b"p1"),
    frame(TEXT, b"ab", fin=False),
    frame(PING, b"p2"),  # a control frame between fragments (RFC 6455 §5.4)
    frame(CONT, b"cd"),
    frame(TEXT, b"y" * 70_000),  # 64-bit length
    frame(TEXT, "é✓".encode()),
    frame(CLOSE, struct.pack("!H", 1000)),
]
EXPECTED = ["hello", bytes(range(256)) + b"x" * 44, "abcd", "y" * 70_000, "é✓"]


@pytest.mark.parametrize("chunk", [1, 3, 7, 64, 100_000])
def test_stream_cut_anywhere(chunk: int) -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # The first 200 bytes of each frame (header included) in CHUNK-sized
        # flushed pieces, the rest at once: cuts land in every header field.
        for data in STREAM:
            head, tail = data[:200], data[200:]
            for i in range(0, len(head), chunk):
                writer.write(head[i : i + chunk])
                await writer.drain()
                await asyncio.sleep(0)
            writer.write(tail)
            await writer.drain()

    session, events, from_client = asyncio.run(run_session(script))
    assert messages(events) == EXPECTED
    assert [e.data for e in events if isinstance(e, Ping)] == [b"p1", b"p2"]
    assert session.outcome() is None
    assert session.closed is not None and session.closed.code == 1000
    # Both pongs and the close reply went out.
    assert client_opcodes(from_client) == [0xA, 0xA, CLOSE]


def test_invalid_utf8_after_valid_messages_fails_with_1007() -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(frame(TEXT, b"fine"))
        await writer.drain()
        await asyncio.sleep(0.01)
        writer.write(frame(TEXT, b"ok") + frame(TEXT, b"\xc3\x28") + frame(TEXT, b"never"))

    session, events, from_client = asyncio.run(run_session(script))
    assert messages(events) == ["fine", "ok"]
    error = session.outcome()
    assert isinstance(error, ProtocolFailure) and "invalid UTF-8" in str(error)
    assert from_client[0] == 0x88  # our close frame, first thing we sent
    assert session.closed is not None and session.closed.code == 1007


def test_oversized_message_after_small_ones_fails_with_1009() -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(frame(TEXT, b"small") + frame(BINARY, b"z" * 2000))

    session, events, _ = asyncio.run(run_session(script, max_size_bytes=1000))
    assert messages(events) == ["small"]
    error = session.outcome()
    assert isinstance(error, ProtocolFailure)
    assert "message of 2000 bytes exceeds --max-size 1000" in str(error)


def test_masked_server_frame_is_a_protocol_error() -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(frame(TEXT, b"first") + bytes((0x81, 0x80 | 2)) + b"\0\0\0\0hi")

    session, events, _ = asyncio.run(run_session(script))
    assert messages(events) == ["first"]
    error = session.outcome()
    assert isinstance(error, ProtocolFailure) and "protocol error" in str(error)


def test_compressed_and_plain_messages_mixed() -> None:
    # With permessage-deflate, RSV1 frames go to the library's inflater and
    # plain ones may take the fast path; the order must hold.
    import zlib

    def deflate(data: bytes) -> bytes:
        c = zlib.compressobj(wbits=-15)
        return (c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH))[:-4]

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(
            frame(TEXT, b"plain1")
            + frame(TEXT, deflate(b"squeezed " * 50), rsv1=True)
            + frame(TEXT, b"plain2")
            + frame(CLOSE, struct.pack("!H", 1000))
        )

    async def run() -> tuple[Session, list[Event], Any]:
        # The raw server must accept permessage-deflate (no context takeover
        # on its side, so each message is deflated on its own above).
        from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory

        original = ServerProtocol.__init__

        def with_deflate(self: ServerProtocol, *args: Any, **kwargs: Any) -> None:
            kwargs["extensions"] = [ServerPerMessageDeflateFactory(server_no_context_takeover=True)]
            original(self, *args, **kwargs)

        ServerProtocol.__init__ = with_deflate  # type: ignore[method-assign]
        try:
            return await run_session(script, compress=True)
        finally:
            ServerProtocol.__init__ = original  # type: ignore[method-assign]

    session, events, _ = asyncio.run(run())
    assert session.extensions == ("permessage-deflate",)
    assert messages(events) == ["plain1", "squeezed " * 50, "plain2"]


# The text batch handler (pipe mode's hot path, issue 14): the same streams, the same
# messages in the same order, and whole runs of text frames come as one batch.

READY = 8  # the client's masked "go" frame: 2 + 4 + 2 bytes


@pytest.mark.parametrize("chunk", [1, 7, 64, 100_000])
def test_stream_cut_anywhere_with_text_batches(chunk: int) -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readexactly(READY)
        for data in STREAM:
            head, tail = data[:200], data[200:]
            for i in range(0, len(head), chunk):
                writer.write(head[i : i + chunk])
                await writer.drain()
                await asyncio.sleep(0)
            writer.write(tail)
            await writer.drain()

    batches: list[list[bytes]] = []
    session, events, from_client = asyncio.run(run_session(script, batches))
    assert messages(events) == EXPECTED
    # Which frames the library parses depends on where the reads cut (a frame that
    # begins in the middle of a read after a frame of the library's is the library's);
    # the first one is always ours.
    assert batches[0] == [b"hello"]
    assert session.messages_received == len(EXPECTED)
    assert session.messages_sent == 1  # the go
    assert session.outcome() is None
    assert client_opcodes(from_client) == [0xA, 0xA, CLOSE]


def test_text_batch_is_split_around_binary_in_order() -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readexactly(READY)
        writer.write(frame(TEXT, b"a") + frame(TEXT, "b✓".encode()) + frame(BINARY, b"\x00")
                     + frame(TEXT, b"c") + frame(TEXT, b"d" * 300)
                     + frame(CLOSE, struct.pack("!H", 1000)))

    batches: list[list[bytes]] = []
    session, events, _ = asyncio.run(run_session(script, batches))
    assert messages(events) == ["a", "b✓", b"\x00", "c", "d" * 300]
    assert batches == [[b"a", "b✓".encode()], [b"c", b"d" * 300]]
    assert (session.messages_received, session.bytes_received) == (5, 1 + 4 + 1 + 1 + 300)


def test_invalid_utf8_with_text_batches_delivers_the_lines_before() -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readexactly(READY)
        writer.write(frame(TEXT, b"ok") + frame(TEXT, "é".encode()) + frame(TEXT, b"\xc3\x28")
                     + frame(TEXT, b"never"))

    batches: list[list[bytes]] = []
    session, events, _ = asyncio.run(run_session(script, batches))
    assert batches == [[b"ok", "é".encode()]]
    assert messages(events) == ["ok", "é"]
    error = session.outcome()
    assert isinstance(error, ProtocolFailure) and "invalid UTF-8" in str(error)
    assert session.closed is not None and session.closed.code == 1007


# Read pacing (issue 14, session._Connection._pace): a server that writes each message
# with its own send() (Node's ws, the websockets library) is read at most once a
# millisecond while its small writes come fast, and at once after a quiet spell.

BURST = 300


async def _burst(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readexactly(READY)
    for i in range(BURST):  # one write (one TCP segment) per message, as Node's ws
        writer.write(frame(TEXT, b"%05d" % i))
        await writer.drain()
        await asyncio.sleep(0)
    writer.write(frame(CLOSE, struct.pack("!H", 1000)))


def _pacing(on: bool) -> Callable[[Session], None]:
    def setup(session: Session) -> None:
        session.pace_reads = on
    return setup


def test_pacing_reads_a_burst_of_small_writes_in_few_reads() -> None:
    expected = [b"%05d" % i for i in range(BURST)]
    paced: list[list[bytes]] = []
    asyncio.run(run_session(_burst, paced, _pacing(True)))
    unpaced: list[list[bytes]] = []
    asyncio.run(run_session(_burst, unpaced, _pacing(False)))
    # Nothing lost or reordered either way; unpaced, the client (in the server's loop
    # here) reads every write or two on its own; paced, a read takes a millisecond's.
    assert [p for batch in paced for p in batch] == expected
    assert [p for batch in unpaced for p in batch] == expected
    assert len(unpaced) > BURST // 3
    assert len(paced) < BURST // 10


def _reading_after_each_read(session: Session, seen: list[tuple[int, bool]]) -> None:
    """Record, right after each read (and its pacing decision), its payload bytes and
    whether the transport still reads."""
    loop = asyncio.get_running_loop()
    deliver = session.on_text_batch
    assert deliver is not None

    def on_text_batch(payloads: list[bytes]) -> None:
        deliver(payloads)
        conn = session.connection
        size = sum(map(len, payloads))
        loop.call_soon(lambda: seen.append((size, conn.transport.is_reading())))

    session.on_text_batch = on_text_batch


def test_pacing_never_delays_a_message_after_a_quiet_spell() -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readexactly(READY)
        for word in (b"one", b"two", b"three"):
            await asyncio.sleep(0.02)  # far more than twice the pause
            writer.write(frame(TEXT, word))
            await writer.drain()
        writer.write(frame(CLOSE, struct.pack("!H", 1000)))

    seen: list[tuple[int, bool]] = []
    batches: list[list[bytes]] = []

    def setup(session: Session) -> None:
        session.pace_reads = True
        _reading_after_each_read(session, seen)

    asyncio.run(run_session(script, batches, setup))
    assert batches == [[b"one"], [b"two"], [b"three"]]
    assert [reading for _size, reading in seen] == [True, True, True]  # no pause after any


def test_pause_reading_holds_over_a_pacing_pause() -> None:
    # A bridge's backpressure (Session.pause_reading) while a pacing pause runs: the
    # pause's end must not resume reading; resume_reading() does.
    held: list[bool] = []

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _burst(reader, writer)

    def setup(session: Session) -> None:
        session.pace_reads = True
        loop = asyncio.get_running_loop()
        deliver = session.on_text_batch
        assert deliver is not None

        def check() -> None:
            transport = session.connection.transport
            if held or transport.is_reading():
                return
            # Paced: hold reading, and look again well after the pause's end.
            session.pause_reading()
            held.append(True)

            def look() -> None:
                held.append(transport.is_reading())
                session.resume_reading()
                held.append(transport.is_reading())

            loop.call_later(0.02, look)

        def on_text_batch(payloads: list[bytes]) -> None:
            deliver(payloads)
            loop.call_soon(check)

        session.on_text_batch = on_text_batch

    batches: list[list[bytes]] = []
    asyncio.run(run_session(script, batches, setup))
    assert held == [True, False, True]
    assert [p for batch in batches for p in batch] == [b"%05d" % i for i in range(BURST)]


# The batch's tight loop for runs of short text frames (issue 14): a run's payloads
# are checked as UTF-8 together; a sequence cut between two frames is still invalid.

@pytest.mark.parametrize("chunk", [1, 5, 100_000])
def test_a_utf8_sequence_split_across_two_short_frames_fails_with_1007(chunk: int) -> None:
    data = (frame(TEXT, b"ok") + frame(TEXT, b"\xc3") + frame(TEXT, b"\xa9")
            + frame(TEXT, b"never"))

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readexactly(READY)
        for i in range(0, len(data), chunk):
            writer.write(data[i : i + chunk])
            await writer.drain()
            await asyncio.sleep(0)

    batches: list[list[bytes]] = []
    session, events, _ = asyncio.run(run_session(script, batches))
    assert messages(events) == ["ok"]
    assert (session.messages_received, session.bytes_received) == (1, 2)
    error = session.outcome()
    assert isinstance(error, ProtocolFailure) and "invalid UTF-8" in str(error)
    assert session.closed is not None and session.closed.code == 1007


def test_runs_of_short_text_frames_count_bytes_and_keep_order_around_longer_frames() -> None:
    long_text = "ü" * 100  # 200 bytes: a 16-bit length, the general path
    data = b"".join([frame(TEXT, b"a" * 125), frame(TEXT, "é".encode()), frame(TEXT, b""),
                     frame(TEXT, long_text.encode()), frame(TEXT, b"z"),
                     frame(CLOSE, struct.pack("!H", 1000))])

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readexactly(READY)
        writer.write(data)

    batches: list[list[bytes]] = []
    session, events, _ = asyncio.run(run_session(script, batches))
    assert messages(events) == ["a" * 125, "é", "", long_text, "z"]
    assert session.messages_received == 5
    assert session.bytes_received == 125 + 2 + 0 + 200 + 1
    assert session.outcome() is None


# Session.send_many with TextLines blocks (issue 14): what goes on the wire is what the
# per-message path writes, a fresh masking key per frame, in order among other messages.

def unmask_client_frames(data: bytes) -> list[tuple[int, bytes, bytes]]:
    """(opcode, masking key, payload) of each complete masked client frame in DATA."""
    frames = []
    pos = 0
    while pos < len(data):
        first, second = data[pos], data[pos + 1]
        assert first & 0xF0 == 0x80 and second & 0x80, "FIN set, RSV clear, masked"
        length, pos = second & 0x7F, pos + 2
        if length == 126:
            length, pos = struct.unpack("!H", data[pos : pos + 2])[0], pos + 2
            assert length >= 126  # the shortest encoding, as the library writes
        elif length == 127:
            length, pos = struct.unpack("!Q", data[pos : pos + 8])[0], pos + 8
            assert length >= 65536
        key, pos = data[pos : pos + 4], pos + 4
        masked = data[pos : pos + length]
        pos += length
        frames.append((first & 0x0F, key,
                       bytes(b ^ key[i % 4] for i, b in enumerate(masked))))
    return frames


def complete_frames_end(data: bytes) -> tuple[int, int]:
    """Where the complete client frames at the start of DATA end, and where the last
    one of them starts."""
    pos = last = 0
    while pos + 2 <= len(data):
        length, head = data[pos + 1] & 0x7F, 2
        if length == 126:
            length, head = struct.unpack("!H", data[pos + 2 : pos + 4])[0], 4
        elif length == 127:
            length, head = struct.unpack("!Q", data[pos + 2 : pos + 10])[0], 10
        if pos + head + 4 + length > len(data):
            break
        last, pos = pos, pos + head + 4 + length
    return pos, last


async def send_and_capture(messages: list[str | bytes], *, report_sent: bool = False
                           ) -> tuple[Session, list[Event], bytes]:
    """Send MESSAGES and "END" in one send_many() to a raw server: the session, its
    events and the bytes the server received."""
    got: list[bytes] = []

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        data = b""
        while True:
            chunk = await reader.read(65536)
            assert chunk
            data += chunk
            end, last = complete_frames_end(data)
            if end and unmask_client_frames(data[last:end])[0][2] == b"END":
                break
        got.append(data)
        writer.write(frame(CLOSE, struct.pack("!H", 1000)))

    def setup(session: Session) -> None:
        session.report_sent = report_sent  # pipe mode's --json, connect --record
        loop = asyncio.get_running_loop()

        def send_when_open() -> None:
            if session.opened_at is None:
                loop.call_later(0.001, send_when_open)
                return
            session.send_many([*messages, "END"])
            session.flush()

        loop.call_soon(send_when_open)

    session, events, _ = await run_session(script, None, setup)
    return session, events, got[0]


def test_text_lines_blocks_go_on_the_wire_as_text_frames_with_fresh_keys() -> None:
    lines = [f"line {i} é" for i in range(300)]
    short = text_lines("".join(line + "\n" for line in lines).encode(), b"\n")
    long_lines = ["x" * 125, "y" * 126, "", "z" * 70_000]
    mixed = text_lines("".join(line + "\n" for line in long_lines).encode(), b"\n")
    session, _, wire = asyncio.run(send_and_capture([short, b"\x00bin", "one", mixed]))
    frames = unmask_client_frames(wire)
    expected: list[str | bytes] = [*lines, b"\x00bin", "one", *long_lines, "END"]
    assert [payload if opcode == BINARY else payload.decode()
            for opcode, _, payload in frames] == expected
    assert [opcode for opcode, _, _ in frames] == [
        BINARY if isinstance(m, bytes) else TEXT for m in expected]
    keys = [key for _, key, _ in frames]
    assert len(set(keys)) == len(keys)  # a fresh key per frame (RFC 6455 §5.3)
    assert session.messages_sent == len(expected)
    assert session.bytes_sent == sum(
        len(m if isinstance(m, bytes) else m.encode()) for m in expected)


def test_text_lines_are_reported_one_by_one_when_sent_messages_are_reported() -> None:
    block = text_lines(b"a\nb\n", b"\n")
    session, events, wire = asyncio.run(send_and_capture([block], report_sent=True))
    sent = [e.data for e in events if isinstance(e, Message) and e.direction == "sent"]
    assert sent == ["a", "b", "END"]
    assert [payload for _, _, payload in unmask_client_frames(wire)] == [b"a", b"b", b"END"]
    assert session.messages_sent == 3


def test_pacing_never_pauses_after_a_read_of_bulk_data() -> None:
    # Reads of READ_PACE_BELOW_BYTES or more: more is coming, read on at once (a pause
    # there could fill the receive window and hold the sender up).
    from wstool.client.session import READ_PACE_BELOW_BYTES

    payload = b"x" * 40_000

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readexactly(READY)
        for _ in range(40):
            writer.write(frame(TEXT, payload))
            await writer.drain()
            await asyncio.sleep(0)
        writer.write(frame(CLOSE, struct.pack("!H", 1000)))

    seen: list[tuple[int, bool]] = []  # payload bytes of each read, reading after it

    def setup(session: Session) -> None:
        session.pace_reads = True
        _reading_after_each_read(session, seen)

    batches: list[list[bytes]] = []
    session, _, _ = asyncio.run(run_session(script, batches, setup))
    assert session.messages_received == 40
    bulk = [reading for size, reading in seen if size >= READ_PACE_BELOW_BYTES]
    assert bulk and all(bulk)
