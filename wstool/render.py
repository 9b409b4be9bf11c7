"""Pure renderers: events to text lines and to JSON-lines objects.

No rich here, so pipe mode stays light; the REPL layers colour on top. The
vocabulary is stable: ``>`` sent, ``<`` received, ``=`` state, ``!`` error.
Remote text is escaped (C0, DEL, C1) before it can reach a terminal
(model: python-websockets ``cli.py`` ``escape()``).
"""

from __future__ import annotations

import base64
import re
from typing import Any

from wstool.errors import describe_close_code
from wstool.events import (
    Closed,
    Connecting,
    Event,
    Failed,
    FrameSeen,
    Handshake,
    Message,
    Notice,
    Opened,
    Ping,
    Pong,
    Reconnecting,
)

# C0 controls, DEL and C1 controls. TAB is kept only where the caller allows it.
_CONTROL_RE = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f]")
_CONTROL_WITH_TAB_RE = re.compile("[\x00-\x1f\x7f-\x9f]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\x1b": "\\e"}

SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie"})


def _escape_char(match: re.Match[str]) -> str:
    char = match.group()
    return _NAMED.get(char) or f"\\x{ord(char):02x}"


def escape(text: str, *, keep_tab: bool = True) -> str:
    """Make remote text safe for a terminal: control characters become ``\\xNN``."""
    pattern = _CONTROL_RE if keep_tab else _CONTROL_WITH_TAB_RE
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


def handshake_lines(handshake: Handshake, *, show_secrets: bool = False) -> list[str]:
    """A curl ``-v``-style report: ``>`` request, ``<`` response."""
    lines: list[str] = []
    if handshake.request_line:
        lines.append(f"> {handshake.request_line}")
        for name, value in handshake.request_headers:
            lines.append(f"> {name}: {escape(mask_secret(name, value, show_secrets))}")
        lines.append(">")
    if handshake.status_code is not None:
        lines.append(f"< HTTP/1.1 {handshake.status_code} {escape(handshake.reason)}")
        for name, value in handshake.response_headers:
            lines.append(f"< {escape(name)}: {escape(mask_secret(name, value, show_secrets))}")
        lines.append("<")
    return lines


def close_line(closed: Closed) -> str:
    by = {"client": "by us", "server": "by the server", None: "without a closing handshake"}
    reason = f" {escape(closed.reason)!r}" if closed.reason else ""
    return (
        f"closed {by[closed.initiated_by]}: {closed.code} "
        f"({describe_close_code(closed.code)}){reason}"
    )


def opened_line(event: Opened) -> str:
    parts = [f"connected to {event.url}"]
    if event.subprotocol:
        parts.append(f"subprotocol {escape(event.subprotocol)}")
    if event.extensions:
        parts.append("extensions " + ", ".join(escape(e) for e in event.extensions))
    return "; ".join(parts)


def _payload_fields(data: str | bytes) -> dict[str, Any]:
    if isinstance(data, str):
        return {"type": "text", "size": len(data.encode()), "text": data}
    return {
        "type": "binary",
        "size": len(data),
        "base64": base64.b64encode(data).decode("ascii"),
    }


def event_json(event: Event) -> dict[str, Any] | None:
    """The ``--json`` schema (README "JSON events"); None for events it omits."""
    if isinstance(event, Message):
        return {"event": "message", "direction": event.direction, **_payload_fields(event.data),
                "ts": round(event.ts, 6)}
    if isinstance(event, Opened):
        return {
            "event": "open",
            "url": event.url,
            "subprotocol": event.subprotocol,
            "extensions": list(event.extensions),
            "status": event.handshake.status_code,
            "ts": round(event.ts, 6),
        }
    if isinstance(event, Ping):
        return {"event": "ping", "direction": event.direction, "data_hex": event.data.hex(),
                "ts": round(event.ts, 6)}
    if isinstance(event, Pong):
        out: dict[str, Any] = {"event": "pong", "direction": event.direction,
                               "data_hex": event.data.hex(), "ts": round(event.ts, 6)}
        if event.rtt_s is not None:
            out["rtt_ms"] = round(event.rtt_s * 1000, 3)
        return out
    if isinstance(event, Closed):
        return {"event": "close", "code": event.code, "reason": event.reason,
                "initiated_by": event.initiated_by, "ts": round(event.ts, 6)}
    if isinstance(event, Failed):
        return {"event": "error", "message": event.message, "exit_status": event.exit_status,
                "ts": round(event.ts, 6)}
    if isinstance(event, Reconnecting):
        return {"event": "reconnecting", "attempt": event.attempt,
                "delay_s": round(event.delay_s, 3), "reason": event.reason,
                "ts": round(event.ts, 6)}
    if isinstance(event, Connecting | Notice | FrameSeen):
        return None
    return None


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
