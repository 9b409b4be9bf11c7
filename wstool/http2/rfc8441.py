"""The sans-I/O glue between RFC 8441 (WebSockets over HTTP/2) and websockets.

websockets' protocol speaks the RFC 6455 opening handshake (an HTTP/1.1 GET and a
101 answer). Over HTTP/2 the handshake is an extended CONNECT instead (RFC 8441 §4,
§5): ``:method CONNECT``, ``:protocol websocket``, no ``Upgrade``/``Connection``, no
``Sec-WebSocket-Key``/``-Accept``, a ``:status 200`` answer; what follows on the
stream's DATA frames is RFC 6455 frames unchanged, masking included (§5). So:

* :func:`extended_connect_block` turns the request websockets' ``ClientProtocol``
  built into the HTTP/2 header block (the subprotocols, the extension offer, Origin,
  -H headers all come from the library as for HTTP/1.1);
* :func:`upgrade_response` turns the server's 200 header block into the HTTP/1.1 101
  response the library expects, so that its own code negotiates the extensions and
  the subprotocol and sets the protocol OPEN (the accept key is computed from the
  key the library generated: RFC 8441 has none, and nothing was sent over the wire);
* :func:`settings_text` and :class:`FrameTracer` describe SETTINGS and frames for
  ``-v`` and ``--trace-h2``.

No event loop here (``stream.py`` and ``client.py`` do the I/O).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable, Mapping, Sequence

from h2.settings import SettingCodes
from hyperframe.exceptions import HyperframeError
from hyperframe.frame import (
    DataFrame,
    Frame,
    GoAwayFrame,
    HeadersFrame,
    RstStreamFrame,
    SettingsFrame,
    WindowUpdateFrame,
)

# The client connection preface (RFC 9113 §3.4), before the first frame.
CONNECTION_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

# RFC 9113 §8.2.2: connection-specific header fields are malformed in HTTP/2;
# RFC 8441 §5: the key is not used; :authority replaces Host (RFC 9113 §8.3.1).
_NOT_OVER_H2 = frozenset({
    "host", "connection", "upgrade", "keep-alive", "proxy-connection",
    "transfer-encoding", "te", "sec-websocket-key",
})

# 1: the server accepts extended CONNECT (RFC 8441 §3).
ENABLE_CONNECT_PROTOCOL = int(SettingCodes.ENABLE_CONNECT_PROTOCOL)
MAX_CONCURRENT_STREAMS = int(SettingCodes.MAX_CONCURRENT_STREAMS)

_WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 §1.3


def extended_connect_block(
    *, scheme: str, authority: str, path: str, headers: Iterable[tuple[str, str]]
) -> list[tuple[str, str]]:
    """The HTTP/2 header block of a WebSocket's extended CONNECT (RFC 8441 §4):
    pseudo-headers first (RFC 9113 §8.3), then HEADERS lower-cased (§8.2), less
    those HTTP/2 forbids or RFC 8441 drops."""
    block = [
        (":method", "CONNECT"),
        (":protocol", "websocket"),
        (":scheme", scheme),
        (":path", path or "/"),
        (":authority", authority),
    ]
    for name, value in headers:
        lower = name.lower()
        if lower not in _NOT_OVER_H2:
            block.append((lower, value))
    return block


def accept_key(key: str) -> str:
    """Sec-WebSocket-Accept for KEY (RFC 6455 §4.2.2)."""
    digest = hashlib.sha1((key + _WS_GUID).encode()).digest()
    return base64.b64encode(digest).decode()


def _safe(text: str) -> bool:
    return not any(c in text for c in "\r\n\0")


def upgrade_response(headers: Sequence[tuple[str, str]], key: str) -> bytes:
    """The HTTP/1.1 ``101`` equivalent of a ``:status 200`` answer to the extended
    CONNECT: the server's headers (less pseudo-headers and anything that could not be
    one HTTP/1.1 header line) with the upgrade headers RFC 6455 §4.2.2 requires."""
    lines = [
        "HTTP/1.1 101 Switching Protocols",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Accept: {accept_key(key)}",
    ]
    for name, value in headers:
        lower = name.lower()
        if lower.startswith(":") or lower in _NOT_OVER_H2 or lower == "sec-websocket-accept":
            continue
        if _safe(name) and _safe(value) and name.strip():
            lines.append(f"{name}: {value}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "surrogateescape")


def decode_block(block: Iterable[tuple[bytes | str, bytes | str]]) -> list[tuple[str, str]]:
    """A header block as h2 reports it (bytes) -> text (ISO-8859-1: never fails)."""
    return [
        (n.decode("iso-8859-1") if isinstance(n, bytes) else n,
         v.decode("iso-8859-1") if isinstance(v, bytes) else v)
        for n, v in block
    ]


def status_of(block: Sequence[tuple[str, str]]) -> int | None:
    for name, value in block:
        if name == ":status":
            return int(value) if value.isdigit() else None
    return None


def setting_name(code: int) -> str:
    try:
        return SettingCodes(code).name
    except ValueError:
        return f"0x{code:x}"


def settings_text(settings: Mapping[int, int]) -> str:
    """``ENABLE_CONNECT_PROTOCOL=1 MAX_CONCURRENT_STREAMS=100 ...`` (-v, probe)."""
    if not settings:
        return "(none: all defaults)"
    return " ".join(f"{setting_name(code)}={value}" for code, value in settings.items())


def _frame_line(frame: Frame) -> str:
    flags = ",".join(sorted(frame.flags)) or "-"
    line = f"{type(frame).__name__.removesuffix('Frame').upper()} stream {frame.stream_id} " \
           f"flags {flags}"
    if isinstance(frame, DataFrame):
        line += f" length {frame.flow_controlled_length}"
    elif isinstance(frame, SettingsFrame):
        line += f" {settings_text(frame.settings)}" if frame.settings else ""
    elif isinstance(frame, WindowUpdateFrame):
        line += f" increment {frame.window_increment}"
    elif isinstance(frame, RstStreamFrame):
        line += f" error {error_name(frame.error_code)}"
    elif isinstance(frame, GoAwayFrame):
        line += f" last stream {frame.last_stream_id} error {error_name(frame.error_code)}"
    elif isinstance(frame, HeadersFrame):
        line += f" header block {len(frame.data)} bytes"
    return line


def error_name(code: int) -> str:
    from h2.errors import ErrorCodes

    try:
        return ErrorCodes(code).name
    except ValueError:
        return f"0x{code:x}"


class FrameTracer:
    """``--trace-h2``: the HTTP/2 frames in one direction of a connection, as lines.

    Fed the bytes as they go out or come in (hyperframe parses a copy; h2 itself
    does not report frames). A client's outgoing bytes start with the preface.
    """

    def __init__(self, *, preface: bool = False) -> None:
        self._buffer = b""
        self._preface = preface
        self.broken = False

    def feed(self, data: bytes) -> list[str]:
        if self.broken:
            return []
        buf = self._buffer + data
        lines: list[str] = []
        if self._preface:
            if len(buf) < len(CONNECTION_PREFACE):
                self._buffer = buf
                return lines
            buf = buf[len(CONNECTION_PREFACE):]
            self._preface = False
            lines.append("connection preface")
        while len(buf) >= 9:
            try:
                frame, length = Frame.parse_frame_header(memoryview(buf[:9]))
            except HyperframeError as exc:
                self.broken = True
                lines.append(f"not an HTTP/2 frame: {exc}")
                return lines
            if len(buf) < 9 + length:
                break
            try:
                frame.parse_body(memoryview(buf[9:9 + length]))
                lines.append(_frame_line(frame))
            except HyperframeError as exc:
                lines.append(f"bad frame ({exc})")
            buf = buf[9 + length:]
        self._buffer = buf
        return lines
