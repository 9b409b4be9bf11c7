"""Rich renderers for the REPL: events to ``rich.text.Text`` (adapter layer).

Built on the plain renderers of ``render.py`` and the same vocabulary: ``>``
sent, ``<`` received, ``=`` state, ``!`` error. Every remote string goes
through :func:`wstool.term.render.escape` and into a ``Text`` (never markup), so a
server cannot move the cursor, change colours or set the window title.

Rendering is size-bounded: a message is cut to ``max_chars`` / ``max_lines`` rows
*before* it is escaped, highlighted or dumped, and the fold says how big the
message really was. Only pretty-printing JSON looks at a whole message, and
only below ``PRETTY_JSON_MAX_BYTES``.
"""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass

from rich.highlighter import JSONHighlighter
from rich.text import Text

from wstool.events import (
    Closed,
    ConnectPhase,
    Event,
    Failed,
    FrameSeen,
    Message,
    Notice,
    Opened,
    Ping,
    Pong,
    Reconnecting,
    Redirected,
)
from wstool.term.palette import PALETTE
from wstool.term.render import (
    close_line,
    connect_phase_line,
    escape,
    hex_dump,
    human_size,
    opened_line,
    redirect_line,
    trace_frame_line,
)

PRETTY_JSON_MAX_BYTES = 256 * 1024

# From the one palette (term/palette.py), which frame-dump uses too.
STYLE_SENT = PALETTE.sent
STYLE_RECEIVED = PALETTE.received
STYLE_STATE = PALETTE.state
STYLE_ERROR = PALETTE.error
STYLE_DIM = PALETTE.dim

_json_highlighter = JSONHighlighter()


@dataclass
class ViewOptions:
    """What the REPL shows; ``/json`` and ``/timestamps`` flip these live."""

    timestamps: bool = False
    pretty_json: bool = True
    base64: bool = False
    verbose: int = 0
    max_lines: int = 30  # terminal rows per message, wrapped lines included
    max_chars: int = 4000
    width: int = 80  # terminal columns; the REPL keeps it current
    ping_pong: bool = False  # connect -P: every ping and pong, both ways


def wall_clock(ts_monotonic: float) -> str:
    """A monotonic event time as local ``HH:MM:SS.mmm``."""
    wall = time.time() - (time.monotonic() - ts_monotonic)
    return time.strftime("%H:%M:%S", time.localtime(wall)) + f".{int(wall * 1000) % 1000:03d}"


def _prefix(marker: str, style: str, ts: float, view: ViewOptions) -> Text:
    text = Text()
    if view.timestamps and ts:
        text.append(wall_clock(ts) + " ", style=STYLE_DIM)
    text.append(marker + " ", style=style)
    return text


def _indent(view: ViewOptions) -> str:
    return " " * ((13 if view.timestamps else 0) + 2)


def _pretty_json(text: str) -> str | None:
    stripped = text.lstrip()
    if not stripped or stripped[0] not in "{[" or len(text) > PRETTY_JSON_MAX_BYTES:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return json.dumps(value, indent=2, ensure_ascii=False)


def _fold_note(size_bytes: int, shown: str) -> Text:
    return Text(f"… folded: {human_size(size_bytes)} ({size_bytes} bytes), showing {shown}",
                style=STYLE_DIM + " italic")


def cut_to_rows(body: str, view: ViewOptions, columns: int) -> tuple[list[str], bool]:
    """The lines of BODY that fit ``view.max_chars`` and ``view.max_lines`` terminal
    rows of COLUMNS (a long line costs the rows it wraps to), and whether any was cut.
    Cut first, then split: bounded work for a 1 MiB message."""
    cut = body[: view.max_chars]
    folded = len(cut) < len(body)
    rows_left = view.max_lines
    lines: list[str] = []
    for line in cut.split("\n"):
        rows = max(1, -(-len(line) // columns))
        if rows > rows_left:
            if rows_left > 0:
                lines.append(line[: rows_left * columns])
            folded = True
            break
        lines.append(line)
        rows_left -= rows
    return lines, folded


def append_lines(out: Text, lines: list[str], indent: str, *, highlight: bool) -> None:
    """LINES onto OUT, escaped, continuation lines indented; JSON colours when HIGHLIGHT."""
    for i, line in enumerate(lines):
        if i:
            out.append("\n" + indent)
        piece = Text(escape(line))
        if highlight:
            _json_highlighter.highlight(piece)
        out.append_text(piece)


def shown_text(lines: list[str]) -> str:
    """What a fold notice says was shown: ``the first 343 characters (30 lines)``."""
    shown_chars = sum(len(line) for line in lines) + len(lines) - 1
    return f"the first {shown_chars} characters ({len(lines)} line{'' if len(lines) == 1 else 's'})"


def message_text(event: Message, view: ViewOptions) -> Text:
    sent = event.direction == "sent"
    out = _prefix(">" if sent else "<", STYLE_SENT if sent else STYLE_RECEIVED, event.ts, view)
    indent = _indent(view)
    data = event.data
    if isinstance(data, bytes):
        return _binary_text(out, data, indent, view)
    if data == "":
        out.append("(empty text message)", style=STYLE_DIM)
        return out
    pretty = _pretty_json(data) if view.pretty_json else None
    body = pretty if pretty is not None else data
    # Cut first (bounded work for a 1 MiB message), then split and escape.
    lines, folded = cut_to_rows(body, view, max(20, view.width - len(indent)))
    append_lines(out, lines, indent, highlight=pretty is not None)
    if folded:
        out.append("\n" + indent)
        out.append_text(_fold_note(event.size_bytes, shown_text(lines)))
    return out


def _binary_text(out: Text, data: bytes, indent: str, view: ViewOptions) -> Text:
    size = len(data)
    out.append(f"binary, {size} bytes", style=STYLE_DIM)
    if not data:
        return out
    if view.base64:
        width = 76
        max_b64 = view.max_lines * width
        # 3 input bytes -> 4 base64 characters: encode only what is shown.
        chunk = data[: max_b64 // 4 * 3]
        encoded = base64.b64encode(chunk).decode("ascii")
        rows = [encoded[i : i + width] for i in range(0, len(encoded), width)]
        shown_bytes = len(chunk)
    else:
        rows = hex_dump(data, max_bytes=view.max_lines * 16)
        shown_bytes = min(size, view.max_lines * 16)
    for row in rows:
        out.append("\n" + indent + row)
    if shown_bytes < size:
        out.append("\n" + indent)
        out.append_text(_fold_note(size, f"the first {shown_bytes} bytes"))
    return out


def _payload_repr(data: bytes) -> str:
    """A ping/pong payload: quoted text when it is UTF-8, else hex."""
    if not data:
        return ""
    try:
        return " " + repr(escape(data.decode()))
    except UnicodeDecodeError:
        return " 0x" + data.hex()


def state_text(line: str, ts: float = 0.0, view: ViewOptions | None = None) -> Text:
    """A ``=`` line; ``line`` must already be escaped if it holds remote text."""
    out = _prefix("=", STYLE_STATE, ts, view or ViewOptions())
    out.append(line, style=STYLE_STATE)
    return out


def error_text(line: str) -> Text:
    out = Text("! ", style=STYLE_ERROR)
    out.append(line, style=STYLE_ERROR)
    return out


def info_text(lines: list[str]) -> Text:
    """Several lines of REPL information (help, stats, headers)."""
    return Text("\n".join(lines), style=STYLE_DIM)


def rtt_text(data: bytes, rtt_s: float, ts: float, view: ViewOptions) -> Text:
    out = _prefix("<", STYLE_RECEIVED, ts, view)
    out.append(f"pong{_payload_repr(data)}", style=STYLE_RECEIVED)
    out.append(f" in {rtt_s * 1000:.2f} ms")
    return out


def event_text(event: Event, view: ViewOptions) -> Text | None:
    """How an event shows in the REPL; None for events it leaves out."""
    if isinstance(event, Message):
        return message_text(event, view)
    if isinstance(event, Opened):
        return state_text(opened_line(event), event.ts, view)
    if isinstance(event, Redirected):
        return state_text(redirect_line(event), event.ts, view)
    if isinstance(event, Closed):
        return state_text(close_line(event), event.ts, view)
    if isinstance(event, Reconnecting):
        return state_text(
            f"reconnecting in {event.delay_s:.1f}s (attempt {event.attempt}): "
            f"{escape(event.reason)}",
            event.ts,
            view,
        )
    if isinstance(event, Notice):
        return state_text(escape(event.text), event.ts, view)
    if isinstance(event, ConnectPhase):  # reported with -v only; escaped there
        return Text(connect_phase_line(event), style=STYLE_DIM)
    if isinstance(event, Failed):
        return error_text(escape(event.message))
    if isinstance(event, Ping):
        # Keepalive traffic: only with -v or -P.
        if not (view.verbose or view.ping_pong):
            return None
        marker, style = (">", STYLE_SENT) if event.direction == "sent" else ("<", STYLE_RECEIVED)
        out = _prefix(marker, style, event.ts, view)
        out.append(f"ping{_payload_repr(event.data)}", style=STYLE_DIM)
        return out
    if isinstance(event, Pong):
        if event.direction == "sent":
            out = _prefix(">", STYLE_SENT, event.ts, view)
            out.append(f"pong{_payload_repr(event.data)}", style=STYLE_SENT)
            return out
        if not (view.verbose or view.ping_pong):
            return None  # a /ping shows its own pong with the RTT (not with -P)
        out = _prefix("<", STYLE_RECEIVED, event.ts, view)
        out.append(f"pong{_payload_repr(event.data)}", style=STYLE_DIM)
        if event.rtt_s is not None:
            out.append(f" in {event.rtt_s * 1000:.2f} ms", style=STYLE_DIM)
        return out
    if isinstance(event, FrameSeen):
        # Same vocabulary as frame-dump and pipe-mode --trace (escaped there).
        return Text(trace_frame_line(event.direction, event.frame), style=STYLE_DIM)
    return None
