"""Frame decoding for ``frame-dump``: bytes in, frame records out, no event loop.

The websockets library's parser (``websockets.frames.Frame.parse``) stops at the
first frame it refuses; a debugger must show exactly those frames. So this is a
small, table-driven decoder of its own that never refuses anything: every
header field is reported as it is on the wire, and each breach of RFC 6455 is
attached to the frame it occurs in as a :class:`Problem` naming the rule and
the close code a compliant peer would answer with. Decoding goes on after a
problem wherever the length is known (it always is, once the header is read).

Feeding is incremental (``FrameDecoder.feed`` may be given any split of the
input); ``finish()`` raises :class:`DecodeError` with the offset when the input
stops inside a frame. ``max_buffer_bytes`` bounds what is buffered: a longer
payload is streamed through (unmasked, UTF-8 checked and inflated chunk by
chunk) and only its head is kept (``FrameRecord.summarised``).

permessage-deflate (RFC 7692) is inflated when it was negotiated: pass
:class:`DeflateParams` (``deflate_params_from_response`` reads them from a
handshake), or let the decoder find them in an HTTP upgrade at the start of
the input.

Why a parser of its own (one of three; issue 9 keeps each for its reason): the
library's refuses what a debugger exists to show. It is not on any hot path of a
connection (``frame-dump`` and ``--trace`` rendering only); bench/bench_decode.py
measures it (256-338k small frames/s, GB/s for large ones, bench/README.md).
"""

from __future__ import annotations

import codecs
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, TypeAlias

from websockets.headers import parse_extension

try:  # the C speedup websockets itself uses; the pure-Python twin otherwise
    from websockets.speedups import apply_mask
except ImportError:  # pragma: no cover
    from websockets.utils import apply_mask

from wstool.config import DEFAULT_MAX_BUFFER_BYTES
from wstool.errors import ProtocolFailure, describe_close_code

Side: TypeAlias = Literal["client", "server"]

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA

# Opcode number -> the name used in every renderer and in --json.
OPCODE_NAMES: dict[int, str] = {
    OP_CONT: "CONT",
    OP_TEXT: "TEXT",
    OP_BINARY: "BINARY",
    OP_CLOSE: "CLOSE",
    OP_PING: "PING",
    OP_PONG: "PONG",
}
for _op in range(16):
    OPCODE_NAMES.setdefault(_op, f"0x{_op:X}")

DATA_OPCODES = frozenset({OP_CONT, OP_TEXT, OP_BINARY})
CONTROL_OPCODES = frozenset({OP_CLOSE, OP_PING, OP_PONG})

# Close codes an endpoint may put in a close frame (RFC 6455 §7.4.1-2, IANA
# registry; the set websockets accepts). 1004-1006 and 1015 are reserved.
VALID_CLOSE_CODES = frozenset({1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011,
                               1012, 1013, 1014})

MAX_HTTP_HEAD_BYTES = 64 * 1024
INFLATE_PIECE_BYTES = 1024 * 1024
_DEFLATE_TAIL = b"\x00\x00\xff\xff"  # RFC 7692 §7.2.2


@dataclass(frozen=True, slots=True)
class Problem:
    """One breach of the protocol, on the frame where it occurs."""

    text: str  # what is wrong, e.g. "reserved opcode 0x3"
    rule: str  # where the rule is, e.g. "RFC 6455 §5.2"
    close_code: int  # what a compliant peer would close with

    def __str__(self) -> str:
        return (f"{self.text} ({self.rule}; a compliant peer closes with "
                f"{self.close_code} {describe_close_code(self.close_code)})")


# The table of problems: key -> (rule, close code). Texts are built per frame.
_RULES: dict[str, tuple[str, int]] = {
    "opcode": ("RFC 6455 §5.2", 1002),
    "rsv": ("RFC 6455 §5.2", 1002),
    "rsv1": ("RFC 7692 §6.1", 1002),
    "control_len": ("RFC 6455 §5.5", 1002),
    "control_frag": ("RFC 6455 §5.5", 1002),
    "orphan_cont": ("RFC 6455 §5.4", 1002),
    "interleaved": ("RFC 6455 §5.4", 1002),
    "utf8": ("RFC 6455 §5.6, §8.1", 1007),
    "close_len": ("RFC 6455 §5.5.1", 1002),
    "close_code": ("RFC 6455 §7.4.1-2", 1002),
    "close_utf8": ("RFC 6455 §5.5.1", 1007),
    "length": ("RFC 6455 §5.2", 1002),
    "length_msb": ("RFC 6455 §5.2", 1002),
    "mask_client": ("RFC 6455 §5.1", 1002),
    "mask_server": ("RFC 6455 §5.1", 1002),
    "after_close": ("RFC 6455 §5.5.1", 1002),
    "inflate": ("RFC 7692 §7.2.2", 1002),
}


def _problem(key: str, text: str) -> Problem:
    rule, code = _RULES[key]
    return Problem(text, rule, code)


@dataclass(frozen=True, slots=True)
class DeflateParams:
    """permessage-deflate as negotiated, seen from the sender of the stream."""

    no_context_takeover: bool = False
    max_window_bits: int = 15


def deflate_params_from_response(extensions_header: str, sender: Side) -> DeflateParams | None:
    """Read a 101 response's ``Sec-WebSocket-Extensions`` (RFC 7692 §7.1).

    Returns the parameters that govern frames sent by ``sender``, or None when
    permessage-deflate was not accepted (or the header does not parse).
    """
    try:
        items = parse_extension(extensions_header)
    except Exception:  # websockets raises InvalidHeader subclasses
        return None
    for name, params in items:
        if name != "permessage-deflate":
            continue
        values = dict(params)
        takeover = f"{sender}_no_context_takeover" in values
        bits_text = values.get(f"{sender}_max_window_bits")
        bits = 15
        if bits_text is not None:
            try:
                bits = int(bits_text)
            except ValueError:
                bits = 15
        return DeflateParams(no_context_takeover=takeover,
                             max_window_bits=min(max(bits, 8), 15))
    return None


@dataclass(slots=True)
class FrameRecord:
    """One frame as it is on the wire, plus what the decoder learnt from it."""

    offset: int  # of the first header byte, in the input
    fin: bool
    rsv1: bool
    rsv2: bool
    rsv3: bool
    opcode: int
    masked: bool
    mask_key: bytes | None
    length: int  # payload length, as declared in the header
    length_bits: int  # 7, 16 or 64: the length encoding used
    header: bytes  # the raw header bytes (2 to 14)
    payload: bytes  # unmasked; only the first max_buffer_bytes when summarised
    direction: Side
    summarised: bool = False
    message: int = 0  # the data message this frame belongs to (1, 2, ...); 0: control
    problems: list[Problem] = field(default_factory=list)
    close_code: int | None = None
    close_reason: str | None = None
    compressed: bool = False  # RSV1 under permessage-deflate
    inflated: bytes | None = None  # what this frame's payload inflated to (compressed)
    inflated_length: int | None = None
    # On the CONT frame that ends a fragmented message: the whole message
    # (inflated when compressed); None when over max_buffer_bytes.
    reassembled: bytes | None = None
    reassembled_length: int | None = None
    message_opcode: int | None = None  # TEXT/BINARY of the message, for continuations

    @property
    def opcode_name(self) -> str:
        return OPCODE_NAMES[self.opcode]

    @property
    def data(self) -> bytes:
        """The application data of this frame: inflated when compressed."""
        return self.inflated if self.inflated is not None else self.payload


@dataclass(frozen=True, slots=True)
class HttpHead:
    """An HTTP upgrade request or response at the start of the input."""

    offset: int
    kind: Literal["request", "response"]
    start_line: str
    headers: tuple[tuple[str, str], ...]
    raw: bytes

    def header(self, name: str) -> str | None:
        lname = name.lower()
        values = [v for n, v in self.headers if n.lower() == lname]
        return ", ".join(values) if values else None

    @property
    def status_code(self) -> int | None:
        if self.kind != "response":
            return None
        parts = self.start_line.split(" ", 2)
        try:
            return int(parts[1])
        except (IndexError, ValueError):
            return None


Decoded: TypeAlias = FrameRecord | HttpHead


class DecodeError(ProtocolFailure):
    """Input the decoder cannot go on with: truncated, or an unreadable HTTP head."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.offset = offset


def _bytes(count: int) -> str:
    return f"{count} byte" if count == 1 else f"{count} bytes"


def parse_http_head(raw: bytes, offset: int = 0) -> HttpHead:
    """Split an HTTP/1.1 head (ending in CRLF CRLF) into start line and headers."""
    text = raw.decode("latin-1")
    lines = text.split("\r\n")
    start = lines[0]
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        if not line:
            continue
        if line[0] in " \t" and headers:  # obsolete line folding (RFC 9112 §5.2)
            name, value = headers[-1]
            headers[-1] = (name, value + " " + line.strip())
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise DecodeError(f"malformed HTTP header line {line[:60]!r} at offset {offset}",
                              offset)
        headers.append((name.strip(), value.strip()))
    kind: Literal["request", "response"] = "response" if start.startswith("HTTP/") else "request"
    return HttpHead(offset, kind, start, tuple(headers), raw)


class _Big:
    """State of a payload longer than max_buffer_bytes, streamed through in chunks."""

    __slots__ = ("done", "record", "remaining")

    def __init__(self, record: FrameRecord, remaining: int) -> None:
        self.record = record
        self.remaining = remaining
        self.done = 0  # payload bytes seen so far (for mask rotation)


class FrameDecoder:
    """Incremental decoder of one direction of a WebSocket stream.

    ``direction`` forces the sender ("client" / "server") and flags frames that
    break the masking rule; None detects it per frame from the MASK bit.
    ``detect_http`` looks for an HTTP upgrade request or response at offset 0.
    """

    def __init__(
        self,
        *,
        direction: Side | None = None,
        max_buffer_bytes: int | None = DEFAULT_MAX_BUFFER_BYTES,
        deflate: DeflateParams | None = None,
        detect_http: bool = True,
        start_offset: int = 0,
    ) -> None:
        self.direction = direction
        self.max_buffer = max_buffer_bytes if max_buffer_bytes else (1 << 63)
        self.deflate = deflate
        self.offset = start_offset  # input offset of self._buf[0]
        self._buf = bytearray()
        self._big: _Big | None = None
        self._http_pending = detect_http
        # The data message in progress (RFC 6455 §5.4).
        self.messages = 0
        self._frag_opcode: int | None = None  # TEXT/BINARY while a message is open
        self._frag_compressed = False
        self._frag_parts: list[bytes] | None = None
        self._frag_size = 0
        self._utf8: codecs.IncrementalDecoder | None = None
        self._utf8_failed = False
        self._inflater: zlib._Decompress | None = None
        self.close_seen = False
        self.not_upgraded = False  # an HTTP response other than 101 was seen

    # Input

    def feed(self, data: bytes) -> list[Decoded]:
        out: list[Decoded] = []
        if self.not_upgraded:
            self.offset += len(data)
            return out
        if self._big is not None:
            data = self._feed_big(data, out)
            if self._big is not None:
                return out
        if self._http_pending:
            self._buf += data
            if not self._take_http(out):
                return out
            data = b""
        buf = self._buf
        if data:
            buf += data
        self._parse(out)
        return out

    def finish(self) -> None:
        """End of input: raise DecodeError if it stopped inside a frame."""
        if self._big is not None:
            rec = self._big.record
            raise DecodeError(
                f"input ends inside the payload of the {rec.opcode_name} frame at offset "
                f"{rec.offset}: {_bytes(rec.length)} declared, {_bytes(self._big.done)} present",
                rec.offset,
            )
        if self._http_pending and self._buf:
            raise DecodeError(
                f"input ends inside the HTTP upgrade at offset {self.offset} "
                "(no blank line after the headers)", self.offset)
        if self._buf:
            buf = self._buf
            need = 2
            if len(buf) >= 2:
                ln = buf[1] & 0x7F
                need = 2 + (2 if ln == 126 else 8 if ln == 127 else 0) + (4 if buf[1] & 0x80
                                                                           else 0)
            if len(buf) < need:
                raise DecodeError(
                    f"input ends inside a frame header at offset {self.offset}: "
                    f"{need} header bytes needed, {_bytes(len(buf))} present", self.offset)
            length = self._declared_length(buf)
            raise DecodeError(
                f"input ends inside the payload of the "
                f"{OPCODE_NAMES[buf[0] & 0x0F]} frame at offset {self.offset}: "
                f"{_bytes(length)} declared, {_bytes(len(buf) - need)} present", self.offset)

    @staticmethod
    def _declared_length(buf: bytearray) -> int:
        ln = buf[1] & 0x7F
        if ln == 126:
            return int.from_bytes(buf[2:4], "big")
        if ln == 127:
            return int.from_bytes(buf[2:10], "big")
        return ln

    def _take_http(self, out: list[Decoded]) -> bool:
        """Consume an HTTP head at the start; False while more input is needed."""
        buf = self._buf
        if len(buf) < 5 and (b"HTTP/".startswith(bytes(buf)) or b"GET ".startswith(bytes(buf))):
            return False
        if not (buf.startswith(b"GET ") or buf.startswith(b"HTTP/")):
            self._http_pending = False
            return True
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            if len(buf) > MAX_HTTP_HEAD_BYTES:
                raise DecodeError(
                    f"HTTP upgrade at offset {self.offset} has no end of headers within "
                    f"{MAX_HTTP_HEAD_BYTES} bytes", self.offset)
            return False
        raw = bytes(buf[: end + 4])
        head = parse_http_head(raw, self.offset)
        out.append(head)
        self._learn_from_head(head)
        del buf[: end + 4]
        self.offset += end + 4
        self._http_pending = False
        if head.kind == "response" and head.status_code != 101:
            # Not an upgrade: an HTTP body follows, not frames. Skip the rest.
            self.not_upgraded = True
            self.offset += len(buf)
            del buf[:]
            return False
        return True

    def _learn_from_head(self, head: HttpHead) -> None:
        """Infer the sender and permessage-deflate from the upgrade at the start."""
        sender: Side = "server" if head.kind == "response" else "client"
        if self.direction is None:
            self.direction = sender
        if self.deflate is not None:
            return
        ext = head.header("Sec-WebSocket-Extensions")
        if ext:
            # A response states what was negotiated; a request only offers, but a
            # client that sends RSV1 frames after offering it had it accepted.
            self.deflate = deflate_params_from_response(ext, sender)

    # The frame loop

    def _parse(self, out: list[Decoded]) -> None:
        buf = self._buf
        size = len(buf)
        pos = 0
        max_buffer = self.max_buffer
        forced = self.direction
        while size - pos >= 2:
            b0 = buf[pos]
            b1 = buf[pos + 1]
            ln = b1 & 0x7F
            hl = 2
            bits = 7
            if ln >= 126:
                if ln == 126:
                    hl = 4
                    bits = 16
                    if size - pos < 4:
                        break
                    ln = (buf[pos + 2] << 8) | buf[pos + 3]
                else:
                    hl = 10
                    bits = 64
                    if size - pos < 10:
                        break
                    ln = int.from_bytes(buf[pos + 2 : pos + 10], "big")
            masked = b1 & 0x80
            if masked:
                if size - pos < hl + 4:
                    break
                key: bytes | None = bytes(buf[pos + hl : pos + hl + 4])
                hl += 4
            else:
                key = None
                if size - pos < hl:
                    break
            end = pos + hl + ln
            if ln > max_buffer:
                # Stream the payload through; keep only its head (--max-size).
                record = self._new_record(b0, b1, ln, bits, key, bytes(buf[pos : pos + hl]),
                                          b"", self.offset + pos)
                record.summarised = True
                self._begin(record)
                self._big = _Big(record, ln)
                start = pos + hl
                # Copy only this payload's bytes (never the rest of the buffer).
                take = min(size - start, ln)
                pos = start + take
                if self._big_take(buf[start:pos], out):
                    continue
                break
            if end > size:
                break
            payload = bytes(buf[pos + hl : end])
            if key is not None:
                payload = apply_mask(payload, key)
            if (
                (b0 == 0x81 or b0 == 0x82)
                and bits == 7
                and self._frag_opcode is None
                and not self.close_seen
                and (forced is None or (forced == "client") == (key is not None))
            ):
                # Fast path: a whole, unfragmented, uncompressed TEXT or BINARY
                # message on its own, the bulk of most streams.
                self.messages += 1
                record = FrameRecord(
                    self.offset + pos, True, False, False, False, b0 & 0x0F, key is not None,
                    key, ln, 7, bytes(buf[pos : pos + hl]), payload,
                    forced or ("client" if key is not None else "server"),
                    False, self.messages, [], None, None, False, None, None, None, None,
                    b0 & 0x0F,
                )
                if b0 == 0x81:
                    try:
                        payload.decode()
                    except UnicodeDecodeError as exc:
                        self._utf8_fail(record, exc)
                        self._utf8_failed = False
                out.append(record)
                pos = end
                continue
            if (
                (b0 == 0x89 or b0 == 0x8A)
                and bits == 7
                and (forced is None or (forced == "client") == (key is not None))
            ):
                # Fast path: a well-formed PING or PONG (nothing in it can be wrong).
                out.append(FrameRecord(
                    self.offset + pos, True, False, False, False, b0 & 0x0F, key is not None,
                    key, ln, 7, bytes(buf[pos : pos + hl]), payload,
                    forced or ("client" if key is not None else "server"),
                ))
                pos = end
                continue
            record = self._new_record(b0, b1, ln, bits, key, bytes(buf[pos : pos + hl]),
                                      payload, self.offset + pos)
            self._finish_record(record, payload)
            out.append(record)
            pos = end
        if pos:
            del buf[:pos]
            self.offset += pos

    def _feed_big(self, data: bytes, out: list[Decoded]) -> bytes:
        """Stream ``data`` into the oversized payload; return what follows it."""
        big = self._big
        assert big is not None
        take = min(big.remaining, len(data))
        self.offset += take
        if self._big_take(data[:take], out):
            return data[take:]
        return b""

    def _big_take(self, chunk: bytes | bytearray, out: list[Decoded]) -> bool:
        """One piece of an oversized payload; True once the frame is complete."""
        big = self._big
        assert big is not None
        record = big.record
        if chunk:
            if record.mask_key is not None:
                k = big.done % 4  # the mask goes on where the last piece stopped
                payload = apply_mask(chunk, record.mask_key[k:] + record.mask_key[:k])
            else:
                payload = bytes(chunk)
            # Piece by piece, so that nothing but the head stays buffered.
            self._stream_chunk(record, payload, False)
            big.done += len(chunk)
            big.remaining -= len(chunk)
        if big.remaining:
            return False
        self._big = None
        self._stream_chunk(record, b"", True)
        out.append(record)
        return True

    # Per-frame checks, fragments, UTF-8, inflation

    def _new_record(self, b0: int, b1: int, ln: int, bits: int, key: bytes | None,
                    header: bytes, payload: bytes, offset: int) -> FrameRecord:
        masked = key is not None
        direction = self.direction
        if direction is None:
            direction = "client" if masked else "server"
        record = FrameRecord(offset, bool(b0 & 0x80), bool(b0 & 0x40), bool(b0 & 0x20),
                             bool(b0 & 0x10), b0 & 0x0F, masked, key, ln, bits, header,
                             payload, direction)
        problems = record.problems
        if bits != 7:
            if bits == 16 and ln < 126:
                problems.append(_problem(
                    "length", f"non-minimal length: {ln} in the 16-bit encoding (7-bit fits)"))
            elif bits == 64:
                if ln >> 63:
                    problems.append(_problem(
                        "length_msb", "64-bit length with the most significant bit set"))
                elif ln < 65536:
                    problems.append(_problem(
                        "length", f"non-minimal length: {ln} in the 64-bit encoding "
                                  f"({'7' if ln < 126 else '16'}-bit fits)"))
        forced = self.direction
        if forced == "client" and not masked:
            problems.append(_problem("mask_client", "unmasked client frame"))
        elif forced == "server" and masked:
            problems.append(_problem("mask_server", "masked server frame"))
        return record

    def _finish_record(self, record: FrameRecord, payload: bytes) -> None:
        """Checks for a frame whose payload is complete."""
        self._begin(record)
        self._payload_chunk(record, payload)
        self._end(record)

    def _stream_chunk(self, record: FrameRecord, chunk: bytes, final: bool) -> None:
        """One piece of an oversized payload (``_begin`` has run already)."""
        if chunk:
            room = self.max_buffer - len(record.payload)
            if room > 0:
                record.payload += chunk[:room]
            self._payload_chunk(record, chunk)
        if final:
            self._end(record)

    def _begin(self, record: FrameRecord) -> None:
        op = record.opcode
        problems = record.problems
        deflate = self.deflate
        if op in DATA_OPCODES:
            if self.close_seen:
                problems.append(_problem("after_close", "data frame after a close frame"))
            if op == OP_CONT:
                if self._frag_opcode is None:
                    problems.append(_problem(
                        "orphan_cont", "continuation frame without a message to continue"))
                    record.message = 0
                else:
                    record.message = self.messages
                    record.message_opcode = self._frag_opcode
                    record.compressed = self._frag_compressed
                if record.rsv1 and deflate is not None:
                    problems.append(_problem(
                        "rsv1", "RSV1 on a continuation frame (only the first frame of a "
                                "compressed message carries it)"))
            else:
                if self._frag_opcode is not None:
                    problems.append(_problem(
                        "interleaved", f"new {OPCODE_NAMES[op]} message inside fragmented "
                                       f"message {self.messages}"))
                self.messages += 1
                record.message = self.messages
                record.message_opcode = op
                self._frag_opcode = op
                self._frag_compressed = record.compressed = bool(record.rsv1 and deflate)
                self._frag_parts = []
                self._frag_size = 0
                self._utf8 = None
                self._utf8_failed = False
                if record.compressed:
                    assert deflate is not None
                    if self._inflater is None or deflate.no_context_takeover:
                        self._inflater = zlib.decompressobj(
                            wbits=-max(deflate.max_window_bits, 9))
        elif op in CONTROL_OPCODES:
            if record.length > 125:
                problems.append(_problem(
                    "control_len", f"{OPCODE_NAMES[op]} frame with {record.length} bytes of "
                                   "payload (control frames carry at most 125)"))
            if not record.fin:
                problems.append(_problem(
                    "control_frag", f"fragmented {OPCODE_NAMES[op]} frame (FIN not set)"))
            if record.rsv1 and deflate is not None:
                problems.append(_problem("rsv1", "RSV1 on a control frame"))
            if op == OP_CLOSE:
                if self.close_seen:
                    problems.append(_problem("after_close", "second close frame"))
                self.close_seen = True
        else:
            problems.append(_problem("opcode", f"reserved opcode {OPCODE_NAMES[op]}"))
            if self.close_seen:
                problems.append(_problem("after_close", "frame after a close frame"))
        if record.rsv2 or record.rsv3 or (record.rsv1 and deflate is None):
            names = [n for n, bit in (("RSV1", record.rsv1), ("RSV2", record.rsv2),
                                      ("RSV3", record.rsv3)) if bit and (n != "RSV1" or
                                                                          deflate is None)]
            problems.append(_problem(
                "rsv", f"{'/'.join(names)} set without a negotiated extension"))

    def _payload_chunk(self, record: FrameRecord, chunk: bytes) -> None:
        op = record.opcode
        if record.message == 0 or op not in DATA_OPCODES:
            return
        if record.compressed:
            self._inflate(record, chunk)
        else:
            self._message_data(record, chunk)

    def _inflate(self, record: FrameRecord, chunk: bytes) -> None:
        """Inflate in bounded pieces: memory stays bounded whatever the ratio."""
        inflater = self._inflater
        if inflater is None:
            return
        if record.inflated is None:
            record.inflated = b""
            record.inflated_length = 0
        try:
            piece = inflater.decompress(chunk, INFLATE_PIECE_BYTES)
            while True:
                room = self.max_buffer - len(record.inflated)
                if room > 0:
                    record.inflated += piece[:room]
                record.inflated_length = (record.inflated_length or 0) + len(piece)
                self._message_data(record, piece)
                if not inflater.unconsumed_tail:
                    break
                piece = inflater.decompress(inflater.unconsumed_tail, INFLATE_PIECE_BYTES)
        except zlib.error as exc:
            record.problems.append(_problem("inflate", f"cannot inflate: {exc}"))
            self._inflater = None

    def _message_data(self, record: FrameRecord, data: bytes) -> None:
        if not data:
            return
        self._frag_size += len(data)
        parts = self._frag_parts
        if parts is not None:
            if self._frag_size <= self.max_buffer:
                parts.append(data)
            else:
                self._frag_parts = None
        if self._frag_opcode == OP_TEXT and not self._utf8_failed:
            if self._utf8 is None:
                self._utf8 = codecs.getincrementaldecoder("utf-8")()
            try:
                self._utf8.decode(data, False)
            except UnicodeDecodeError as exc:
                self._utf8_fail(record, exc)

    def _utf8_fail(self, record: FrameRecord, exc: UnicodeDecodeError | None) -> None:
        self._utf8_failed = True
        detail = f": {exc.reason}" if exc is not None else ": incomplete sequence at the end"
        record.problems.append(_problem(
            "utf8", f"invalid UTF-8 in text message {record.message}{detail}"))

    def _end(self, record: FrameRecord) -> None:
        op = record.opcode
        if op == OP_CLOSE:
            self._close_payload(record)
            return
        if record.message == 0 or op not in DATA_OPCODES or not record.fin:
            return
        # The message is complete.
        if record.compressed and self._inflater is not None:
            self._inflate(record, _DEFLATE_TAIL)
            if self.deflate is not None and self.deflate.no_context_takeover:
                self._inflater = None
        if self._frag_opcode == OP_TEXT and not self._utf8_failed and self._utf8 is not None:
            try:
                self._utf8.decode(b"", True)
            except UnicodeDecodeError as exc:
                self._utf8_fail(record, exc)
        parts = self._frag_parts
        if op == OP_CONT:  # several frames: the message, put back together
            record.reassembled_length = self._frag_size
            record.reassembled = b"".join(parts) if parts is not None else None
        self._frag_opcode = None
        self._frag_parts = None
        self._utf8 = None

    def _close_payload(self, record: FrameRecord) -> None:
        payload = record.payload
        if not payload:
            return
        if len(payload) == 1:
            record.problems.append(_problem(
                "close_len", "close frame with a 1-byte payload (a code takes 2)"))
            return
        code = int.from_bytes(payload[:2], "big")
        record.close_code = code
        if not (code in VALID_CLOSE_CODES or 3000 <= code < 5000):
            record.problems.append(_problem(
                "close_code", f"invalid close code {code} ({describe_close_code(code)})"))
        raw_reason = payload[2:]
        try:
            record.close_reason = raw_reason.decode()
        except UnicodeDecodeError as exc:
            record.close_reason = raw_reason.decode("utf-8", "replace")
            record.problems.append(_problem("close_utf8",
                                            f"invalid UTF-8 in the close reason: {exc.reason}"))


def apply_upgrade_response(head: HttpHead, client: FrameDecoder, server: FrameDecoder) -> bool:
    """After a server's response: set permessage-deflate on both decoders.

    Returns False when the response is not a 101 (what follows is then an HTTP
    body, not frames). The response states what was negotiated, for both
    senders (RFC 7692 §7.1); the request only offered it.
    """
    if head.status_code != 101:
        return False
    ext = head.header("Sec-WebSocket-Extensions")
    client.deflate = deflate_params_from_response(ext, "client") if ext else None
    server.deflate = deflate_params_from_response(ext, "server") if ext else None
    return True


def decode_all(data: bytes, **kwargs: object) -> list[Decoded]:
    """Decode a whole input; raises DecodeError if it is truncated (tests, tools)."""
    decoder = FrameDecoder(**kwargs)  # type: ignore[arg-type]
    out = decoder.feed(data)
    decoder.finish()
    return out


_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")
# What --hex skips between digits: ASCII whitespace and the separators of
# `xxd -p`, Wireshark's "Copy as Hex" (":") and C arrays (","); "0x" prefixes.
_HEX_SEPARATORS = frozenset(" \t\n\r\x0b\x0c,:")
_DROP_HEX_SEPARATORS = dict.fromkeys(map(ord, _HEX_SEPARATORS))


def parse_hex(text: str) -> bytes:
    """``--hex`` input: hex digits, whitespace, ``,``/``:`` and ``0x`` prefixes ignored.

    A ValueError names the line and column (1-based) of the first character
    that is none of these (issue 10), so a typo in a pasted dump is found.
    """
    # Same length as the input, so that positions stay those of the input.
    cleaned = text.replace("0x", "  ").replace("0X", "  ")
    digits = cleaned.translate(_DROP_HEX_SEPARATORS)
    try:  # the fast path (C); on failure, find the culprit
        return bytes.fromhex(digits)
    except ValueError:
        pass
    for index, char in enumerate(cleaned):
        if char not in _HEX_DIGITS and char not in _HEX_SEPARATORS:
            line = text.count("\n", 0, index) + 1
            column = index - (text.rfind("\n", 0, index) + 1) + 1
            # Never the raw character: it may be a terminal control byte.
            shown = (repr(char) if char.isascii() and char.isprintable()
                     else f"byte 0x{ord(char):02x}" if ord(char) < 0x100 else ascii(char))
            raise ValueError(f"{shown} at line {line}, column {column} is not a hex digit")
    raise ValueError(f"odd number of hex digits ({len(digits)})")


FrameCallback: TypeAlias = Callable[[Decoded], None]
