"""Pure renderers: events to text lines and to JSON-lines objects.

No rich here, so pipe mode stays light; the REPL layers colour on top. The
vocabulary is stable: ``>`` sent, ``<`` received, ``=`` state, ``!`` error.
Remote text is escaped (C0, DEL, C1) before it can reach a terminal
(model: python-websockets ``cli.py`` ``escape()``).
"""

from __future__ import annotations

import base64
import functools
import re
import time
from typing import TYPE_CHECKING, Any, TypeAlias

from wstool.errors import describe_close_code
from wstool.events import (
    Closed,
    Connecting,
    ConnectPhase,
    Event,
    ExpectResult,
    Failed,
    FrameSeen,
    Handshake,
    Message,
    Notice,
    Opened,
    Ping,
    Pong,
    Reconnecting,
    Redirected,
)

if TYPE_CHECKING:
    # Types only: frames.py (and websockets.frames) load when a frame is first
    # rendered, not on a plain `connect` (start-up, tests/test_repl_pty.py).
    from websockets.frames import Frame

    from wstool.protocol.frames import FrameRecord, HttpHead

# A ``--json`` object. ``Any`` because the values are any JSON value (str, int,
# float, bool, None, lists and objects of them); a recursive alias would reject
# ``list[str]`` values (lists are invariant) without catching anything more.
JsonObject: TypeAlias = dict[str, Any]

# C0 controls, DEL and C1 controls, and the bidirectional embeddings, overrides and
# isolates (U+202A-U+202E, U+2066-U+2069), which make a terminal show text in another
# order than it was sent ("Trojan Source", CVE-2021-42574). TAB is kept only where the
# caller allows it.
_BIDI = "\u202a-\u202e\u2066-\u2069"
# Compiled on first use (_control_re), not at import: ~1M instructions each of a
# one-shot connect's start-up (issue 14), where printable ASCII never needs them.
_CONTROL_PATTERN = f"[\x00-\x08\x0a-\x1f\x7f-\x9f{_BIDI}]"
_CONTROL_WITH_TAB_PATTERN = f"[\x00-\x1f\x7f-\x9f{_BIDI}]"
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\x1b": "\\e"}

SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie"})


@functools.cache
def _control_re(keep_tab: bool) -> re.Pattern[str]:
    return re.compile(_CONTROL_PATTERN if keep_tab else _CONTROL_WITH_TAB_PATTERN)


def _escape_char(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    return _NAMED.get(char) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


def escape(text: str, *, keep_tab: bool = True) -> str:
    """Make remote text safe for a terminal: control characters become ``\\xNN``,
    bidirectional overrides ``\\uNNNN``."""
    if text.isascii() and text.isprintable():  # no control character, no bidi
        return text
    pattern = _control_re(keep_tab)
    if pattern.search(text) is None:
        return text
    return pattern.sub(_escape_char, text)


def binary_as_text(data: bytes, *, use_base64: bool = False) -> str:
    """How a binary message shows where only text can go (pipe text mode)."""
    if use_base64:
        return base64.b64encode(data).decode("ascii")
    return data.hex()


def mask_secret(name: str, value: str, show_secrets: bool) -> str:
    if show_secrets or name.lower() not in SECRET_HEADERS:
        return value
    scheme, sep, _rest = value.partition(" ")
    if sep and name.lower().endswith("authorization"):
        return f"{scheme} ***"
    return "***"


# How much of a rejected handshake's body -v shows (issue 10): the first lines,
# each cut, from the first bytes; a binary body as its size and first bytes in hex.
BODY_LINES_SHOWN = 10
BODY_LINE_CHARS = 200
BODY_BYTES_SHOWN = 4096


def body_lines(body: bytes, prefix: str = "< ") -> list[str]:
    """The first lines of a response body (or of bytes that are not HTTP), bounded
    and escaped; a note says how much there was when not all of it is shown."""
    if not body:
        return []
    head = body[:BODY_BYTES_SHOWN]
    if b"\0" in head:
        return [f"{prefix}[binary body, {len(body)} bytes: {head[:16].hex(' ')}"
                f"{' ...' if len(body) > 16 else ''}]"]
    text = head.decode("utf-8", "backslashreplace")
    rows = text.split("\n")
    if rows and rows[-1] == "" and len(head) == len(body):
        rows.pop()  # the final newline ends the last line
    lines = []
    for row in rows[:BODY_LINES_SHOWN]:
        row = row.removesuffix("\r")
        cut = row[:BODY_LINE_CHARS]
        lines.append(prefix + escape(cut) + ("..." if len(cut) < len(row) else ""))
    if len(rows) > BODY_LINES_SHOWN or len(head) < len(body):
        lines.append(f"{prefix}[... {len(body)} bytes in all]")
    return lines


def handshake_lines(handshake: Handshake, *, show_secrets: bool = False) -> list[str]:
    """A curl ``-v``-style report: ``>`` request, ``<`` response (with the first
    lines of its body), ``*`` how long the server took."""
    lines: list[str] = []
    if handshake.request_line:
        lines.append(f"> {handshake.request_line}")
        for name, value in handshake.request_headers:
            lines.append(f"> {name}: {escape(mask_secret(name, value, show_secrets))}")
        lines.append(">")
    if handshake.status_code is not None:
        lines.append(f"< {escape(handshake.http_version)} {handshake.status_code} "
                     f"{escape(handshake.reason)}".rstrip())
        for name, value in handshake.response_headers:
            lines.append(f"< {escape(name)}: {escape(mask_secret(name, value, show_secrets))}")
        lines.append("<")
        lines.extend(body_lines(handshake.body))
    elif handshake.unparsed:
        lines.append("* received, not an HTTP response:")
        lines.extend(body_lines(handshake.unparsed))
    elif handshake.request_line:
        lines.append("* no response")
    if handshake.elapsed_s is not None and handshake.status_code is not None:
        what = "upgraded" if handshake.status_code == 101 else "answered"
        lines.append(f"* {what} in {milliseconds(handshake.elapsed_s)}")
    return lines


def milliseconds(seconds: float) -> str:
    """``0.00042`` -> ``"0.4 ms"``; ``12.3456`` -> ``"12346 ms"`` (curl's precision)."""
    ms = seconds * 1000
    return f"{ms:.1f} ms" if ms < 100 else f"{ms:.0f} ms"


def connect_phase_line(event: ConnectPhase) -> str:
    """``-v``: ``* connected to 127.0.0.1 port 9112 (TCP 0.4 ms)``, as curl's ``*`` lines."""
    line = f"* {escape(event.text)}"
    if event.elapsed_s is not None:
        label = "TCP " if event.phase == "connected" else ""
        line += f" ({label}{milliseconds(event.elapsed_s)})"
    return line


def close_line(closed: Closed) -> str:
    by = {"client": "by us", "server": "by the server", None: "without a closing handshake"}
    reason = f" {escape(closed.reason)!r}" if closed.reason else ""
    return (
        f"closed {by[closed.initiated_by]}: {closed.code} "
        f"({describe_close_code(closed.code)}){reason}"
    )


def redirect_line(event: Redirected) -> str:
    """``-v`` and the REPL: one hop that ``-L`` followed."""
    return (f"redirected: HTTP {event.status_code} {escape(event.reason)} -> "
            f"{escape(event.to_url)}")


def opened_line(event: Opened) -> str:
    parts = [f"connected to {event.url}"]
    if event.handshake.http_version == "HTTP/2":
        # --http2 succeeded (it may also have fallen back): say which way it went.
        parts[0] += " over HTTP/2 (RFC 8441)"
    if event.subprotocol:
        parts.append(f"subprotocol {escape(event.subprotocol)}")
    if event.extensions:
        parts.append("extensions " + ", ".join(escape(e) for e in event.extensions))
    return "; ".join(parts)


def payload_fields(data: str | bytes) -> JsonObject:
    """A message's payload in the ``--json`` schemas of ``connect`` and the servers:
    ``type``, ``size`` (bytes on the wire, UTF-8 for text), ``text`` or ``base64``."""
    if isinstance(data, str):
        return {"type": "text", "size": len(data.encode()), "text": data}
    return {
        "type": "binary",
        "size": len(data),
        "base64": base64.b64encode(data).decode("ascii"),
    }


def event_times(mono_s: float) -> JsonObject:
    """``--json`` times of an event recorded at ``time.monotonic()`` MONO_S: ``ts``, Unix
    epoch seconds (to match other logs), and ``mono``, the monotonic clock (for
    intervals). Wall time is taken now, minus how long ago the event was: correct
    across a clock step or a suspend that happened before it (issue 10)."""
    now_mono = time.monotonic()
    return {"ts": round(time.time() - (now_mono - mono_s), 6), "mono": round(mono_s, 6)}


def event_json(event: Event) -> JsonObject | None:
    """The ``--json`` schema (README "JSON events"); None for events it omits."""
    if isinstance(event, Message):
        return {"event": "message", "direction": event.direction, **payload_fields(event.data),
                **event_times(event.ts)}
    if isinstance(event, Opened):
        return {
            "event": "open",
            "url": event.url,
            "subprotocol": event.subprotocol,
            "extensions": list(event.extensions),
            "status": event.handshake.status_code,
            "http_version": event.handshake.http_version,  # "HTTP/2": RFC 8441
            **event_times(event.ts),
        }
    if isinstance(event, Redirected):
        return {"event": "redirect", "status": event.status_code, "from": event.from_url,
                "to": event.to_url, **event_times(event.ts)}
    if isinstance(event, Ping):
        return {"event": "ping", "direction": event.direction, "data_hex": event.data.hex(),
                **event_times(event.ts)}
    if isinstance(event, Pong):
        out: JsonObject = {"event": "pong", "direction": event.direction,
                               "data_hex": event.data.hex(), **event_times(event.ts)}
        if event.rtt_s is not None:
            out["rtt_ms"] = round(event.rtt_s * 1000, 3)
        return out
    if isinstance(event, Closed):
        return {"event": "close", "code": event.code, "reason": event.reason,
                "initiated_by": event.initiated_by, **event_times(event.ts)}
    if isinstance(event, Failed):
        return {"event": "error", "message": event.message, "exit_status": event.exit_status,
                **event_times(event.ts)}
    if isinstance(event, Reconnecting):
        return {"event": "reconnecting", "attempt": event.attempt,
                "delay_s": round(event.delay_s, 3), "reason": event.reason,
                **event_times(event.ts)}
    if isinstance(event, ExpectResult):
        out = {"event": "expect", "pattern": event.pattern, "ok": event.ok,
               "index": event.message_index, "elapsed_ms": round(event.elapsed_s * 1000, 3),
               **event_times(event.ts)}
        if event.capture is not None:
            out["capture"] = event.capture
        return out
    if isinstance(event, Connecting | ConnectPhase | Notice | FrameSeen):
        return None
    return None


def control_payload_repr(data: bytes) -> str:
    """A ping/pong payload after its name: ``" 'text'"`` when it is printable UTF-8,
    ``" 0x1a2b3c4d"`` otherwise (random keepalive payloads that happen to decode, such
    as ``b"A\x1dm\x11"``, read better in hex), ``""`` when empty."""
    if not data:
        return ""
    try:
        text = data.decode()
    except UnicodeDecodeError:
        return " 0x" + data.hex()
    if escape(text) != text:
        return " 0x" + data.hex()
    return f" '{text}'"


def ping_pong_line(event: Ping | Pong) -> str:
    """``-P`` (issue 13): ``> ping 0x1a2b3c4d``, ``< pong 0x1a2b3c4d in 0.42 ms`` (the
    RTT of a pong that answers one of our pings), ``< ping 'x'``, ``> pong 'x'``."""
    marker = ">" if event.direction == "sent" else "<"
    kind = "ping" if isinstance(event, Ping) else "pong"
    line = f"{marker} {kind}{control_payload_repr(event.data)}"
    if isinstance(event, Pong) and event.rtt_s is not None:
        line += f" in {event.rtt_s * 1000:.2f} ms"
    return line


def human_size(size_bytes: int) -> str:
    """``1536`` -> ``"1.5 KiB"``: sizes for people (status bar, /stats, folds)."""
    if size_bytes < 1024:
        return f"{size_bytes} B"
    value = float(size_bytes)
    for unit in ("KiB", "MiB", "GiB"):
        value /= 1024
        if value < 1024 or unit == "GiB":
            return f"{value:.1f} {unit}"
    raise AssertionError("unreachable")


HEX_DUMP_WIDTH = 16


def hex_dump(data: bytes, *, max_bytes: int | None = None) -> list[str]:
    """``hexdump -C``-style lines: offset, 16 hex bytes, the ASCII column.

    Only ``max_bytes`` (rounded up to a whole line) are rendered, so a 1 MiB
    message costs no more than its first lines. The ASCII column shows
    printable ASCII only (``.`` for the rest), so it is terminal-safe.
    """
    shown = data if max_bytes is None else data[: max_bytes + (-max_bytes % HEX_DUMP_WIDTH)]
    lines = []
    for offset in range(0, len(shown), HEX_DUMP_WIDTH):
        row = shown[offset : offset + HEX_DUMP_WIDTH]
        left = " ".join(f"{b:02x}" for b in row[:8])
        right = " ".join(f"{b:02x}" for b in row[8:])
        ascii_col = "".join(chr(b) if 0x20 <= b < 0x7F else "." for b in row)
        lines.append(f"{offset:08x}  {left:<23}  {right:<23}  |{ascii_col}|")
    return lines


# Frames
# ------
# frame-dump (offline and relay) and connect --trace (issue 5). One line per
# frame in a stable vocabulary, e.g. ``> TEXT fin 5 B masked 37fa213d "Hello"``:
# direction (``>`` client / sent, ``<`` server / received), opcode name, ``fin``
# or ``more``, set RSV bits, payload length, the length encoding when not the
# 7-bit one (``len16``/``len64``), ``masked KEY`` or ``unmasked``, ``msg N`` for
# fragments, ``deflate W B -> I B`` for compressed frames, then the close code
# and reason or a bounded, escaped payload preview. ``!`` lines carry protocol
# problems, ``=`` lines reassembled messages.

DEFAULT_PAYLOAD_PREVIEW_BYTES = 64


def payload_preview(data: bytes, *, is_text: bool, limit: int | None,
                    total: int | None = None) -> str:
    """A bounded, terminal-safe view of a payload: quoted text or hex."""
    total = len(data) if total is None else total
    shown = data if limit is None else data[:limit]
    if is_text:
        text = shown.decode("utf-8", "backslashreplace")
        body = '"' + escape(text.replace('"', '\\"'), keep_tab=False) + '"'
    else:
        body = shown.hex()
    if total > len(shown):
        body += f"… (+{total - len(shown)} B)"
    return body


def _looks_textual(data: bytes) -> bool:
    try:
        text = data.decode()
    except UnicodeDecodeError:
        return False
    return text.isprintable()


def _close_words(code: int | None, reason: str | None) -> str:
    if code is None:
        return "no status"
    text = f"{code} ({describe_close_code(code)})"
    if reason:
        text += ' "' + escape(reason.replace('"', '\\"'), keep_tab=False) + '"'
    return text


def frame_line(record: FrameRecord, *, payload_limit: int | None = DEFAULT_PAYLOAD_PREVIEW_BYTES,
               prefix: str = "") -> str:
    """One line for a ``frames.FrameRecord``."""
    from wstool.protocol import frames

    words = [prefix + (">" if record.direction == "client" else "<"), record.opcode_name,
             "fin" if record.fin else "more"]
    if record.rsv1:
        words.append("rsv1")
    if record.rsv2:
        words.append("rsv2")
    if record.rsv3:
        words.append("rsv3")
    words.append(f"{record.length} B")
    if record.length_bits != 7:
        words.append(f"len{record.length_bits}")
    words.append(f"masked {record.mask_key.hex()}"
                 if record.masked and record.mask_key is not None else "unmasked")
    op = record.opcode
    if op == frames.OP_CONT or (op in (frames.OP_TEXT, frames.OP_BINARY) and not record.fin):
        words.append(f"msg {record.message}" if record.message else "msg ?")
    if record.compressed and record.inflated_length is not None:
        words.append(f"deflate {record.length} B -> {record.inflated_length} B")
    if op == frames.OP_CLOSE:
        words.append(_close_words(record.close_code, record.close_reason))
    elif record.length or record.inflated_length:
        data = record.data
        total = record.inflated_length if record.inflated is not None else record.length
        if op in frames.DATA_OPCODES:
            is_text = record.message_opcode == frames.OP_TEXT
        else:
            is_text = _looks_textual(data)
        words.append(payload_preview(data, is_text=is_text, limit=payload_limit,
                                     total=total))
    if record.summarised:
        words.append(f"[summarised: {len(record.payload)} B kept, --max-size]")
    return " ".join(words)


def frame_detail_lines(record: FrameRecord, *,
                       payload_limit: int | None = DEFAULT_PAYLOAD_PREVIEW_BYTES,
                       prefix: str = "") -> list[str]:
    """``!`` problem lines and the ``=`` reassembled-message line under a frame."""
    from wstool.protocol import frames

    lines = [f"{prefix}! {problem}" for problem in record.problems]
    if record.fin and record.reassembled_length is not None and record.message:
        kind = frames.OPCODE_NAMES[record.message_opcode or frames.OP_BINARY]
        line = f"{prefix}= message {record.message} {kind} {record.reassembled_length} B"
        if record.reassembled is not None:
            line += " " + payload_preview(record.reassembled,
                                          is_text=record.message_opcode == frames.OP_TEXT,
                                          limit=payload_limit)
        else:
            line += " [over --max-size, not reassembled]"
        lines.append(line)
    return lines


def offset_hex_lines(data: bytes, base_offset: int, *, max_bytes: int | None = None,
                     indent: str = "    ") -> list[str]:
    """Offset/hex/ASCII lines with offsets into the input (``-x/--hexdump``)."""
    shown = data if max_bytes is None else data[:max_bytes]
    lines = []
    for start in range(0, len(shown), 16):
        row = shown[start : start + 16]
        left = " ".join(f"{b:02x}" for b in row[:8])
        right = " ".join(f"{b:02x}" for b in row[8:])
        ascii_col = "".join(chr(b) if 0x20 <= b < 0x7F else "." for b in row)
        lines.append(f"{indent}{base_offset + start:08x}  {left:<23}  {right:<23}  |{ascii_col}|")
    if len(data) > len(shown):
        lines.append(f"{indent}… {len(data) - len(shown)} more bytes (--payload)")
    return lines


def frame_hexdump_lines(record: FrameRecord, *, max_bytes: int | None = None) -> list[str]:
    """The header as on the wire, then the payload unmasked."""
    lines = offset_hex_lines(record.header, record.offset)
    lines += offset_hex_lines(record.payload, record.offset + len(record.header),
                              max_bytes=max_bytes)
    return lines


def http_head_lines(head: HttpHead, *, prefix: str = "", show_secrets: bool = True) -> list[str]:
    """An HTTP upgrade found in the input: ``>`` request / ``<`` response."""
    mark = ">" if head.kind == "request" else "<"
    lines = [f"{prefix}{mark} {escape(head.start_line)}"]
    for name, value in head.headers:
        lines.append(f"{prefix}{mark} {escape(name)}: "
                     f"{escape(mask_secret(name, value, show_secrets))}")
    lines.append(f"{prefix}{mark}")
    return lines


def frame_json(record: FrameRecord, *, conn: int | None = None) -> JsonObject:
    """The ``--json`` object for a frame: exactly the keys in README "frame-dump"."""
    data = record.data
    try:
        text: str | None = data.decode()
    except UnicodeDecodeError:
        text = None
    out: JsonObject = {
        "offset": record.offset,
        "fin": record.fin,
        "rsv1": record.rsv1,
        "rsv2": record.rsv2,
        "rsv3": record.rsv3,
        "opcode": record.opcode_name,
        "masked": record.masked,
        "mask_key": record.mask_key.hex() if record.mask_key is not None else None,
        "length": record.length,
        "payload_hex": record.payload.hex(),
        "text": text,
        "close_code": record.close_code,
        "close_reason": record.close_reason,
        "problems": [str(p) for p in record.problems],
    }
    if conn is not None:
        out["direction"] = record.direction
        out["conn"] = conn
    return out


def message_json(record: FrameRecord, *, conn: int | None = None) -> JsonObject | None:
    """``{"event": "message"}`` for a reassembled (or inflated) message, else None."""
    from wstool.protocol import frames

    if not (record.fin and record.reassembled_length is not None and record.message):
        return None
    data = record.reassembled
    text = None
    if data is not None and record.message_opcode == frames.OP_TEXT:
        text = data.decode("utf-8", "replace")
    out: JsonObject = {
        "event": "message",
        "offset": record.offset,
        "message": record.message,
        "opcode": frames.OPCODE_NAMES[record.message_opcode or frames.OP_BINARY],
        "length": record.reassembled_length,
        "payload_hex": data.hex() if data is not None else None,
        "text": text,
    }
    if conn is not None:
        out["direction"] = record.direction
        out["conn"] = conn
    return out


def http_head_json(head: HttpHead, *, conn: int | None = None) -> JsonObject:
    out: JsonObject = {
        "event": "handshake",
        "offset": head.offset,
        "kind": head.kind,
        "start_line": head.start_line,
        "headers": [[n, v] for n, v in head.headers],
    }
    if conn is not None:
        out["conn"] = conn
    return out


def trace_frame_line(direction: str, frame: Frame, *,
                     payload_limit: int | None = DEFAULT_PAYLOAD_PREVIEW_BYTES) -> str:
    """``connect --trace``: a websockets ``Frame`` in the frame-dump vocabulary.

    The library hands us frames before masking (sent) and after inflation
    (received), so there is no mask key and the length is the data length.
    """
    from wstool.protocol import frames

    op = int(frame.opcode)
    data = bytes(frame.data)
    words = [">" if direction == "sent" else "<", frames.OPCODE_NAMES[op],
             "fin" if frame.fin else "more"]
    for name in ("rsv1", "rsv2", "rsv3"):
        if getattr(frame, name):
            words.append(name)
    words.append(f"{len(data)} B")
    if op == frames.OP_CLOSE:
        code = int.from_bytes(data[:2], "big") if len(data) >= 2 else None
        words.append(_close_words(code, data[2:].decode("utf-8", "replace")))
    elif data:
        if op == frames.OP_TEXT:
            is_text = True
        elif op == frames.OP_BINARY:
            is_text = False
        else:  # no message context here: continuations and pings by their look
            is_text = _looks_textual(data)
        words.append(payload_preview(data, is_text=is_text, limit=payload_limit))
    return " ".join(words)
