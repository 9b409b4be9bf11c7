"""The strict echo engine: RFC 6455 frames in, echoes out, on websockets' sans-I/O layer.

``StrictEcho`` replaces the frame loop of ``websockets.protocol.Protocol.parse``
(the handshake stays the library's). It is a mixin placed *between* the
library's ``ServerProtocol``/``ClientProtocol`` and ``Protocol`` in the MRO, so
their ``parse()`` hands over to it with ``super().parse()`` once the opening
handshake is done. Three things it does that the library's own loop does not
(issue 4):

* a message is handed to :meth:`StrictEcho.on_message` — which echoes it by
  default — the moment its last frame is parsed, before later bytes are parsed,
  so a protocol error in a later frame never swallows an earlier echo, and the
  echoes of messages that came with a Close frame go out before our Close
  (RFC 6455 §1.4, §5.5.1);
* text is validated with an incremental UTF-8 decoder as its bytes arrive, so
  invalid UTF-8 fails the connection (1007, §8.1) as soon as the offending byte
  is in, even mid-frame and across fragments (uncompressed frames; with
  permessage-deflate a frame is checked once it is complete and inflated);
* a Close frame between the fragments of a message is a legal control frame
  (§5.4, §5.5.1): the partial message is dropped and the Close is answered
  cleanly, not with 1002.

Everything else follows the RFC strictly: RSV bits without an extension,
unknown opcodes, unmasked client (or masked server) frames, fragmented or
over-long control frames, continuation frames out of sequence, invalid close
codes are 1002; a message over ``max_size`` is 1009.

No I/O here: ``receive_data()`` in, ``data_to_send()`` out, like the library.

Why a frame loop of its own (one of three parsers; issue 9 keeps each for its
reason): the three strictness points above cannot be had from the library's loop,
and echoing inside the ``data_received`` call that completes a message, with the
echo frame built from the header bytes and the unmasked payload (no ``Frame``
object), is what makes serve-echo 3.6x Node's ``ws`` per server CPU-second
pipelined and 1.25x in request/response (bench/README.md, "serve-echo").

In front of the loop, :meth:`StrictEcho.echo_fast` (issue 14): while the loop
waits between messages, the server hands it each read first; it echoes the
read's leading frames that need no rule beyond the ones it checks (final,
text/binary, RSV clear, masked, short, complete, valid UTF-8) and leaves the
rest to the loop, parked at the same boundary. A read of exactly one short
message -- request/response -- the server's ``data_received`` echoes inline
with the same checks (server/core.py), without even this call.

Being a replacement of the library's frame loop, this class reads the protocol's
private state (``reader.buffer``, ``events``, ``writes``, ``_state``, ...) inline,
per frame; each such use is a fenced assumption listed and tested with
:mod:`wstool.protocol.internals`.
"""

from __future__ import annotations

import codecs
import struct
from collections.abc import Generator, Sequence
from typing import cast

from websockets.client import ClientProtocol
from websockets.exceptions import PayloadTooBig, ProtocolError
from websockets.extensions.permessage_deflate import PerMessageDeflate
from websockets.frames import Close, CloseCode, Frame, Opcode
from websockets.protocol import CONNECTING, OPEN, SERVER, Protocol, State
from websockets.server import ServerProtocol

from wstool.protocol.internals import replace_parser

try:
    from websockets.speedups import apply_mask
except ImportError:  # pragma: no cover - the pure-Python fallback
    from websockets.utils import apply_mask

# For the server's inline fast path (server/core.py, data_received).
unmask = apply_mask

OP_CONT, OP_TEXT, OP_BINARY = 0x0, 0x1, 0x2
OP_CLOSE, OP_PING, OP_PONG = 0x8, 0x9, 0xA
_DATA_OPCODES = frozenset({OP_CONT, OP_TEXT, OP_BINARY})
_CONTROL_OPCODES = frozenset({OP_CLOSE, OP_PING, OP_PONG})

_Utf8Decoder = codecs.getincrementaldecoder("utf-8")
_PACK_16 = struct.Struct("!BBH").pack
_PACK_64 = struct.Struct("!BBQ").pack


# Echo headers of final text and binary frames with a 7-bit length, built once:
# a table lookup costs a fraction of bytes((b0, length)) per echo (echo_fast and
# the server's inline fast path): SHORT_ECHO_HEADERS[first byte][length].
SHORT_ECHO_HEADERS = {
    b0: tuple(bytes((b0, n)) for n in range(126)) for b0 in (0x80 | OP_TEXT, 0x80 | OP_BINARY)
}


def _check_utf8_tail(decoder: codecs.IncrementalDecoder) -> None:
    """Fail on a pending ED A0..BF (a UTF-16 surrogate, RFC 3629 §4).

    CPython's incremental decoder rejects every other invalid sequence at its
    first bad byte, but waits for a third byte after ``ED A0``..``ED BF``.
    """
    pending = decoder.getstate()[0]
    if len(pending) >= 2 and pending[0] == 0xED and pending[1] >= 0xA0:
        raise UnicodeDecodeError("utf-8", bytes(pending), 0, 2, "invalid continuation byte")


def _rotate(mask: bytes, offset: int) -> bytes:
    """The mask for a payload slice starting at ``offset`` (§5.3: octet i uses i mod 4)."""
    shift = offset & 3
    return mask[shift:] + mask[:shift] if shift else mask


def frame_header(opcode: int, length: int) -> bytes:
    """An unmasked, final frame header (§5.2) for a server's echo."""
    if length < 126:
        return bytes((0x80 | opcode, length))
    if length < 65536:
        return _PACK_16(0x80 | opcode, 126, length)
    return _PACK_64(0x80 | opcode, 127, length)


def is_utf8(data: bytes) -> bool:
    try:
        data.decode()
    except UnicodeDecodeError:
        return False
    return True


class StrictEcho(Protocol):
    """The frame loop (see module doc). Mix in before ``Protocol``.

    Attributes a driver may set on an instance:

    * ``echo_messages`` (default True): echo each complete message;
    * ``emit_data_frames`` (default False): also append data frames to
      ``events`` (control frames always are), for a driver that renders them;
    * ``raw_echo`` (default False): write echoes as pre-built bytes rather than
      through ``send_frame`` — the server's hot path; only valid on the server
      side without extensions, and it bypasses anything wrapping ``send_frame``.

    Counters (payload bytes, before compression): ``messages_in``, ``bytes_in``,
    ``messages_out``, ``bytes_out``. A message echoed as is by a fast path
    (``echo_fast``, the server's inline one) is counted once, in ``echoed`` and
    ``echoed_bytes`` -- two updates per message instead of four -- and the four
    add those in.
    """

    echo_messages: bool = True
    emit_data_frames: bool = False
    raw_echo: bool = False
    # Server side with permessage-deflate: echoes shorter than this go out
    # uncompressed (config.COMPRESS_THRESHOLD_BYTES); None compresses all.
    raw_below_bytes: int | None = None
    _deferred_close: bytes | None = None
    # Nonzero while the frame loop is parked at a frame boundary with no message
    # in progress and echo_fast() may run: the largest payload it may take (see
    # echo_fast). Zero otherwise.
    fast_echo_limit: int = 0
    _messages_in: int = 0
    _bytes_in: int = 0
    _messages_out: int = 0
    _bytes_out: int = 0
    echoed: int = 0
    echoed_bytes: int = 0

    @property
    def messages_in(self) -> int:
        return self._messages_in + self.echoed

    @property
    def bytes_in(self) -> int:
        return self._bytes_in + self.echoed_bytes

    @property
    def messages_out(self) -> int:
        return self._messages_out + self.echoed

    @property
    def bytes_out(self) -> int:
        return self._bytes_out + self.echoed_bytes

    # What to do with a message: override in a subclass, or set echo_messages.

    def on_message(self, opcode: int, payload: bytes) -> None:
        """A complete message (``OP_TEXT`` or ``OP_BINARY``) has arrived."""
        if self.echo_messages:
            self.send_message(opcode, payload)

    def send_message(self, opcode: int, payload: bytes) -> bool:
        """Send one whole message now, if the connection is still OPEN."""
        if self._state is not OPEN:
            # §5.5.1: after sending a Close frame, no more data frames.
            return False
        self._messages_out += 1
        self._bytes_out += len(payload)
        if self.raw_echo or (
            self.raw_below_bytes is not None and len(payload) < self.raw_below_bytes
        ):
            # One bytes object per echo: for request/response traffic the
            # driver then writes it without a join.
            self.writes.append(frame_header(opcode, len(payload)) + payload)
        else:
            self.send_frame(Frame(Opcode(opcode), payload))
        return True

    def send_messages(self, messages: Sequence[tuple[int, bytes]]) -> int:
        """``send_message`` for many (opcode, payload) at once, if still OPEN: one
        state check and, on the raw path, one bytes object for all (the bridges
        send a chunk of a process's output as many messages, issue 16)."""
        if self._state is not OPEN:
            return 0
        if not self.raw_echo:
            for opcode, payload in messages:
                self.send_message(opcode, payload)
            return len(messages)
        parts: list[bytes] = []
        size = 0
        for opcode, payload in messages:
            parts.append(frame_header(opcode, len(payload)))
            parts.append(payload)
            size += len(payload)
        self._messages_out += len(messages)
        self._bytes_out += size
        self.writes.append(b"".join(parts))
        return len(messages)

    def echo_fast(self, data: bytes) -> tuple[int, bytes]:
        """Echo the whole, simple frames at the start of ``data`` without the frame loop.

        For the server's hot path (issue 14): the whole frames of a read cost one
        call here instead of ``receive_data()``, the generator step,
        ``on_message``, ``send_message`` and the writes list per message (a read
        of exactly one short frame, request/response, the server's
        ``data_received`` echoes inline with the same checks). Only valid while
        ``fast_echo_limit`` is nonzero (the frame loop sets it when parked between
        messages and nothing but a plain echo is wanted; with permessage-deflate,
        for uncompressed messages below ``raw_below_bytes``).

        A frame is taken only if it is final, text or binary, RSV bits clear,
        masked, with a 7- or 16-bit length of at most ``fast_echo_limit`` (which
        already includes ``max_size``), complete in ``data`` and, for text, valid
        UTF-8. Anything else -- a control frame, a fragment, a cut frame, bad
        UTF-8 -- stops the scan; the caller hands the rest to ``receive_data()``,
        where the frame loop, parked at the same boundary, applies every rule
        (and fails with 1002/1007/1009 at the same byte as without this path).

        Returns the bytes consumed and the echo frames to write (b"" for none).
        """
        limit = self.fast_echo_limit
        end = len(data)
        pos = 0
        parts: list[bytes] = []
        size = 0
        while end - pos >= 6:
            b0 = data[pos]
            if b0 != 0x81 and b0 != 0x82:  # FIN, no RSV, text or binary
                break
            # The mask bit must be set (§5.1): without it this is 128 or more.
            length = data[pos + 1] ^ 0x80
            if length < 126:
                start = pos + 6
                header = SHORT_ECHO_HEADERS[b0][length]
            elif length == 126 and end - pos >= 8:
                length = (data[pos + 2] << 8) | data[pos + 3]
                if length < 126:
                    # Not minimal (§5.2); the loop takes it, and its echo has
                    # the minimal header: this one would repeat the long form.
                    break
                start = pos + 8
                header = _PACK_16(b0, 126, length)
            else:
                break
            stop = start + length
            if length > limit or stop > end:
                break
            payload = apply_mask(data[start:stop], data[start - 4 : start])
            if b0 == 0x81 and not payload.isascii():
                try:
                    payload.decode()
                except UnicodeDecodeError:
                    break  # the frame loop fails it with 1007
            parts.append(header)
            parts.append(payload)
            size += length
            pos = stop
        if not parts:
            return 0, b""
        self.echoed += len(parts) >> 1
        self.echoed_bytes += size
        return pos, b"".join(parts)

    # The frame loop.

    def parse(self) -> Generator[None]:
        # Reached through ServerProtocol/ClientProtocol.parse() (super().parse())
        # once the handshake is parsed.
        yield from self.frame_loop()

    def frame_loop(self) -> Generator[None]:
        """The strict frame loop as a generator of its own.

        A server may install a fresh one as ``self.parser`` once it has
        accepted, dropping the handshake's generator frames (memory per idle
        connection, issue 4).
        """
        try:
            reader = self.reader
            buf = reader.buffer  # a bytearray that feed_data() extends in place
            server = self.side is SERVER

            # A server may get frames in the same segment as its handshake request,
            # before it has accepted; leave them buffered until it has
            # (the driver steps the parser again after accept()).
            while self._state is CONNECTING:
                yield
            # Fixed once the handshake is done; locals are cheaper on the hot path.
            extensions = self.extensions
            max_message_size = self.max_message_size
            max_fragment_size = self.max_fragment_size

            # echo_fast() may take whole messages while this loop waits between
            # them, if a plain raw echo is all that is wanted (the server's hot path).
            fast_limit = 0
            if (
                server
                and self.echo_messages
                and not self.emit_data_frames
                and type(self).on_message is StrictEcho.on_message
            ):
                if self.raw_echo and not extensions:
                    fast_limit = 65535
                elif self.raw_below_bytes is not None and all(
                    isinstance(e, PerMessageDeflate) for e in extensions
                ):
                    # permessage-deflate: a message with RSV1 clear is uncompressed
                    # (RFC 7692 §6.1; echo_fast takes no RSV1 frame), and one
                    # shorter than raw_below_bytes is echoed uncompressed, as the
                    # loop below does for it.
                    fast_limit = max(0, min(65535, self.raw_below_bytes - 1))
                if max_message_size is not None:
                    fast_limit = min(fast_limit, max_message_size)
                if max_fragment_size is not None:
                    fast_limit = min(fast_limit, max_fragment_size)

            msg_opcode = 0  # opcode of the fragmented message in progress, 0: none
            msg_parts: list[bytes] = []
            msg_size = 0
            decoder: codecs.IncrementalDecoder | None = None  # while a text message is open

            while True:
                # Header: 2 bytes, then the extended length and the mask key (§5.2).
                while len(buf) < 2:
                    if reader.eof:
                        raise EOFError("unexpected end of stream")
                    if fast_limit and not buf and not msg_opcode:
                        # At a message boundary: echo_fast() may run until the
                        # next step (it never touches buf or this loop's state).
                        self.fast_echo_limit = fast_limit
                        yield
                        self.fast_echo_limit = 0
                    else:
                        yield
                b0 = buf[0]
                b1 = buf[1]
                fin = b0 & 0x80 != 0
                opcode = b0 & 0x0F
                if b0 & 0x70 and not extensions:
                    # §5.2: RSV1-3 MUST be 0 unless an extension defines them.
                    raise ProtocolError("reserved bits must be 0")
                if opcode not in _DATA_OPCODES and opcode not in _CONTROL_OPCODES:
                    raise ProtocolError("invalid opcode")  # §5.2: reserved opcodes
                if (b1 & 0x80 != 0) is not server:
                    # §5.1: client frames are masked, server frames are not.
                    raise ProtocolError("incorrect masking")
                length = b1 & 0x7F
                header_len = 2
                if length == 126:
                    header_len = 4
                elif length == 127:
                    header_len = 10
                if server:
                    header_len += 4
                while len(buf) < header_len:
                    if reader.eof:
                        raise EOFError("unexpected end of stream")
                    yield
                if length == 126:
                    length = (buf[2] << 8) | buf[3]
                elif length == 127:
                    length = int.from_bytes(buf[2:10], "big")
                    if length >> 63:
                        raise ProtocolError("payload length has its most significant bit set")
                mask = bytes(buf[header_len - 4 : header_len]) if server else b""

                is_control = opcode >= 0x8
                if is_control:
                    if b0 & 0x70:
                        # RFC 7692 §6: RSV1 marks the first frame of a compressed
                        # message, never a control frame.
                        raise ProtocolError("reserved bits must be 0")
                    # §5.5: control frames are final and carry at most 125 bytes.
                    if not fin:
                        raise ProtocolError("fragmented control frame")
                    if length > 125:
                        raise ProtocolError("control frame too long")
                else:
                    # §5.4: a message is one initial frame then continuations.
                    if opcode == OP_CONT:
                        if not msg_opcode:
                            raise ProtocolError("unexpected continuation frame")
                    elif msg_opcode:
                        raise ProtocolError("expected a continuation frame")
                    # With an extension the length is compressed: checked after inflating.
                    if (
                        max_message_size is not None
                        and msg_size + length > max_message_size
                        and not extensions
                    ):
                        raise PayloadTooBig(msg_size + length, max_message_size)
                    if max_fragment_size is not None and length > max_fragment_size:
                        raise PayloadTooBig(length, max_fragment_size)

                # Which text checks apply to this frame's bytes as they arrive.
                text_frame = (opcode == OP_TEXT or (opcode == OP_CONT and decoder is not None))
                incremental = text_frame and not extensions

                # Payload.
                frame_end = header_len + length
                if len(buf) >= frame_end:
                    # The whole frame is here (the common case): one slice, one delete.
                    if server:
                        payload = apply_mask(buf[header_len:frame_end], mask)
                    else:
                        payload = bytes(buf[header_len:frame_end])
                    del buf[:frame_end]
                    if incremental:
                        if fin and opcode == OP_TEXT:
                            # The common case, a whole text message in one frame.
                            if not payload.isascii():
                                payload.decode()
                        else:
                            if decoder is None:
                                decoder = _Utf8Decoder()
                            decoder.decode(payload, False)
                            _check_utf8_tail(decoder)
                else:
                    del buf[:header_len]
                    parts: list[bytes] = []
                    received = 0
                    if incremental and decoder is None:
                        decoder = _Utf8Decoder()
                    while True:
                        take = min(len(buf), length - received)
                        if take:
                            chunk = (
                                apply_mask(buf[:take], _rotate(mask, received))
                                if server
                                else bytes(buf[:take])
                            )
                            del buf[:take]
                            if incremental:
                                assert decoder is not None
                                # §8.1 and issue 4: fail at the offending byte,
                                # not when the frame completes.
                                decoder.decode(chunk, False)
                                _check_utf8_tail(decoder)
                            parts.append(chunk)
                            received += take
                        if received == length:
                            break
                        if reader.eof:
                            raise EOFError("unexpected end of stream")
                        yield
                    payload = b"".join(parts)

                if is_control:
                    self._control_frame(opcode, payload)
                    if opcode == OP_CLOSE:
                        if self._deferred_close is not None:
                            # defer_close(): park until answer_close() replaces
                            # this parser; §1.4: what follows a Close is discarded.
                            while True:
                                reader.discard()
                                yield
                        # answer_close() switched self.parser to discard().
                        break
                    continue

                if extensions and not (b0 & 0x70 or opcode == OP_CONT):
                    # RSV1 clear on a first frame: an uncompressed message
                    # (RFC 7692 §6.1), which the extension would hand back as
                    # is. Skip building a Frame for it; check it here instead.
                    if max_message_size is not None and msg_size + length > max_message_size:
                        raise PayloadTooBig(msg_size + length, max_message_size)
                    if text_frame:
                        if fin:
                            if not payload.isascii():
                                payload.decode()
                        else:
                            decoder = _Utf8Decoder()
                            decoder.decode(payload, False)
                            _check_utf8_tail(decoder)
                elif extensions:
                    # permessage-deflate (RFC 7692): inflate, then check as usual.
                    frame = Frame(
                        Opcode(opcode), payload, fin,
                        b0 & 0x40 != 0, b0 & 0x20 != 0, b0 & 0x10 != 0,
                    )
                    max_size = max_message_size
                    remaining = None if max_size is None else max_size - msg_size
                    for extension in reversed(extensions):
                        frame = extension.decode(frame, max_size=remaining)
                    frame.check()
                    payload = bytes(frame.data)
                    if max_size is not None and msg_size + len(payload) > max_size:
                        raise PayloadTooBig(msg_size + len(payload), max_size)
                    if text_frame:
                        if decoder is None:
                            decoder = _Utf8Decoder()
                        decoder.decode(payload, False)
                        _check_utf8_tail(decoder)

                if self.emit_data_frames:
                    self.events.append(Frame(Opcode(opcode), payload, fin))

                if fin:
                    if msg_opcode:
                        msg_parts.append(payload)
                        payload = b"".join(msg_parts)
                        opcode = msg_opcode
                        msg_parts = []
                        msg_opcode = 0
                        msg_size = 0
                        self.current_size = None
                    if decoder is not None:
                        decoder.decode(b"", True)  # a truncated sequence at the end
                        decoder = None
                    self._messages_in += 1
                    self._bytes_in += len(payload)
                    self.on_message(opcode, payload)
                else:
                    if not msg_opcode:
                        msg_opcode = opcode
                    msg_parts.append(payload)
                    msg_size += len(payload)
                    # Keep the library's view in step (close_expected, debugging).
                    self.current_size = msg_size
        # Same error mapping as Protocol.parse (§7.1.7 Fail the WebSocket
        # Connection, with the close codes of §7.4.1).
        except ProtocolError as exc:
            self.fail(CloseCode.PROTOCOL_ERROR, str(exc))
            self.parser_exc = exc
        except EOFError as exc:
            self.fail(CloseCode.ABNORMAL_CLOSURE, str(exc))
            self.parser_exc = exc
        except UnicodeDecodeError as exc:
            self.fail(CloseCode.INVALID_DATA, f"{exc.reason} at position {exc.start}")
            self.parser_exc = exc
        except PayloadTooBig as exc:
            self.fail(CloseCode.MESSAGE_TOO_BIG, str(exc))
            self.parser_exc = exc
        except Exception as exc:
            self.logger.error("parser failed", exc_info=True)
            self.fail(CloseCode.INTERNAL_ERROR)
            self.parser_exc = exc
        # fail() or the Close branch replaced self.parser with discard(); this
        # generator is never stepped again.
        yield
        raise AssertionError("the frame loop shouldn't step after the end")

    def _control_frame(self, opcode: int, payload: bytes) -> None:
        frame = Frame(Opcode(opcode), payload)
        if opcode == OP_PING:
            # §5.5.2: answer a Ping with a Pong carrying the same data.
            self.send_frame(Frame(Opcode.PONG, payload))
        elif opcode == OP_CLOSE:
            # §7.1.5-7.1.6: code and reason; a bad code is 1002, a reason that
            # is not UTF-8 is 1007 (raised from Close.parse).
            self.close_rcvd = Close.parse(payload)
            if self._state is State.CLOSING:
                self.close_rcvd_then_sent = False
            # Unlike the library, a Close between fragments is legal (§5.4:
            # control frames may be injected in the middle of a fragmented
            # message): the partial message is dropped, the Close answered.
            self.current_size = None
            self.events.append(frame)
            if self._state is OPEN and self.defer_close():
                self._deferred_close = payload
                return
            self.answer_close(payload)
            return
        self.events.append(frame)

    def defer_close(self) -> bool:
        """Return True to answer a received Close later, with answer_close().

        For a driver that still owes echoes (``--delay``): they go out first,
        then the Close (§5.5.1 allows sending data before the Close reply).
        """
        return False

    def answer_close(self, payload: bytes | None = None) -> None:
        """Answer the received Close (now, or after defer_close() said later)."""
        if payload is None:
            payload = self._deferred_close or b""
        self._deferred_close = None
        if self._state is OPEN:
            # §5.5.1: echo the status code; echo the original bytes so an
            # empty Close stays empty (the library does the same).
            self.send_frame(Frame(Opcode.CLOSE, payload))
            self.close_sent = self.close_rcvd
            self.close_rcvd_then_sent = True
            self.state = State.CLOSING
        # §7.1.1: the server closes the TCP connection first.
        if self.side is SERVER and not self.eof_sent:
            self.send_eof()
        # §1.4: after a Close, discard further data.
        replace_parser(self, self.discard())


class EchoServerProtocol(ServerProtocol, StrictEcho):
    """``ServerProtocol`` with the strict echo frame loop (MRO: Server, StrictEcho, Protocol)."""


class EchoClientProtocol(ClientProtocol, StrictEcho):
    """``ClientProtocol`` with the strict echo frame loop (``connect --echo``)."""


def make_strict_echo(protocol: Protocol) -> StrictEcho:
    """Give an existing protocol, still in its opening handshake, the strict echo loop.

    For protocols created by the library (the asyncio client creates its own
    ``ClientProtocol``): the instance's class is swapped for the subclass
    above, so that when the handshake part of ``parse()`` ends, its
    ``super().parse()`` resolves to :class:`StrictEcho`. Both classes have the
    same layout (plain ``__dict__`` instances).
    """
    if isinstance(protocol, StrictEcho):
        return protocol
    if protocol.state is not CONNECTING:
        raise ValueError("make_strict_echo() needs a protocol still in its handshake")
    if type(protocol) is ClientProtocol:
        protocol.__class__ = EchoClientProtocol
    elif type(protocol) is ServerProtocol:
        protocol.__class__ = EchoServerProtocol
    else:
        raise TypeError(f"cannot make a {type(protocol).__name__} echo")
    return cast(StrictEcho, protocol)
