"""Recordings to replay (issue 11): what was sent and received on one WebSocket, and when.

Three kinds of file are read, told apart by their content, not their name:

* a ``connect --json`` or ``connect --record`` event log, and a REPL ``/save``
  file: JSON lines in the README's "JSON events" schema (``message`` events with
  ``direction``, ``text`` or ``base64``, and ``mono``, the monotonic clock);
* a HAR file (HAR 1.2, ``{"log": {"entries": [...]}}``) saved by a browser's
  developer tools: Chrome (and Firefox, which uses the same extension) keeps a
  socket's frames in its entry's ``_webSocketMessages`` list, each with ``type``
  (``send``/``receive``), ``time`` (Unix seconds), ``opcode`` (1 text, 2 binary,
  whose ``data`` is base64) and ``data``.

A recording is one connection: an event log with several (``--reconnect``) gives
its first, and says so. Times are kept relative to the start of the connection
(the ``open`` event; in a HAR, the first frame, since the entry's handshake time
is not the socket's), so the replay can keep the original spacing.

``HarSocket`` and :func:`har_sockets` are shared with ``connect --har``
(``browser.py``), which takes the handshake request of the same entries.

Pure: reads a file, imports json (never on the connect path: only ``replay``
and ``--har`` import this module).
"""

from __future__ import annotations

import base64
import binascii
import json
from pathlib import Path
from typing import Any, Literal, NamedTuple

from wstool.errors import UsageError, WstoolError


class Step(NamedTuple):
    """One recorded message."""

    direction: Literal["sent", "received"]
    data: str | bytes  # str: text, bytes: binary
    at_s: float  # seconds since the connection started


class Recording(NamedTuple):
    """One connection's messages, as the file had them."""

    path: str
    kind: Literal["events", "har"]
    url: str | None  # the URL recorded (None: the log has no open event)
    subprotocol: str | None  # the one the server chose, if recorded
    steps: tuple[Step, ...]
    # How the recorded connection ended, when the file says (event logs only).
    close_code: int | None = None
    close_initiated_by: str | None = None

    @property
    def sent(self) -> tuple[Step, ...]:
        return tuple(s for s in self.steps if s.direction == "sent")

    @property
    def received(self) -> tuple[Step, ...]:
        return tuple(s for s in self.steps if s.direction == "received")


class HarSocket(NamedTuple):
    """A WebSocket entry of a HAR file (``number`` counts from 1, as ``--socket``)."""

    number: int
    url: str
    entry: dict[str, Any]


def read_json_file(path: str) -> tuple[Any | None, str]:
    """The file as one JSON value (None if it is not one, e.g. JSON lines), and its text."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise WstoolError(f"cannot read {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise WstoolError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        return json.loads(text), text
    except ValueError:
        return None, text


def har_sockets(path: str, har: Any) -> list[HarSocket]:
    """The WebSocket entries of a parsed HAR file, in the file's order."""
    entries = har.get("log", {}).get("entries") if isinstance(har, dict) else None
    if not isinstance(entries, list):
        raise WstoolError(f"{path}: not a HAR file (no log.entries)")
    sockets: list[HarSocket] = []
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        request = entry.get("request")
        url = str(request.get("url", "")) if isinstance(request, dict) else ""
        if (
            "_webSocketMessages" in entry
            or entry.get("_resourceType") == "websocket"
            or url.startswith(("ws://", "wss://"))
        ):
            sockets.append(HarSocket(len(sockets) + 1, url, entry))
    if not sockets:
        raise WstoolError(f"{path}: no WebSocket in this HAR file (an entry with "
                          "_webSocketMessages; in Chrome, save the HAR after the socket ran)")
    return sockets


def _path_and_query(url: str) -> str:
    rest = url.partition("://")[2]
    slash = rest.find("/")
    return rest[slash:] if slash >= 0 else "/"


def pick_har_socket(
    path: str, sockets: list[HarSocket], *, number: int | None, url: str | None
) -> tuple[HarSocket, list[str]]:
    """``--socket N``, else the first socket whose URL is URL (then: whose path is
    URL's), else the first one; with notices saying which when there was a choice."""
    listing = "; ".join(f"{s.number}: {s.url}" for s in sockets)
    if number is not None:
        if not 1 <= number <= len(sockets):
            raise UsageError(f"--socket {number}: {path} has {len(sockets)} WebSocket"
                             f"{'' if len(sockets) == 1 else 's'} ({listing})")
        return sockets[number - 1], []
    if len(sockets) == 1:
        return sockets[0], []
    if url is not None:
        for same in (lambda s: s.url == url,
                     lambda s: _path_and_query(s.url) == _path_and_query(url)):
            matching = [s for s in sockets if same(s)]
            if matching:
                return matching[0], [f"{path}: socket {matching[0].number} of "
                                     f"{len(sockets)} matches {url} (--socket N picks one)"]
    return sockets[0], [f"{path} has {len(sockets)} WebSockets; using the first "
                        f"(--socket N picks another: {listing})"]


def _har_recording(path: str, socket: HarSocket) -> Recording:
    frames = socket.entry.get("_webSocketMessages")
    if not isinstance(frames, list):
        frames = []
    steps: list[Step] = []
    start: float | None = None
    for number, frame in enumerate(frames, 1):
        if not isinstance(frame, dict):
            raise WstoolError(f"{path}: socket {socket.number}, frame {number}: not an object")
        kind = frame.get("type")
        opcode = frame.get("opcode", 1)
        if kind not in ("send", "receive") or opcode not in (1, 2):
            continue  # control frames, if a browser records them
        data: str | bytes = str(frame.get("data", ""))
        if opcode == 2:
            try:
                data = base64.b64decode(str(data), validate=True)
            except (binascii.Error, ValueError):
                raise WstoolError(f"{path}: socket {socket.number}, frame {number}: binary "
                                  "data that is not base64") from None
        try:
            time_s = float(frame.get("time", 0.0))
        except (TypeError, ValueError):
            time_s = 0.0
        if start is None:
            start = time_s
        steps.append(Step("sent" if kind == "send" else "received", data,
                          max(0.0, time_s - start)))
    return Recording(path, "har", socket.url or None, None, tuple(steps))


def _payload(path: str, line_number: int, obj: dict[str, Any]) -> str | bytes:
    if obj.get("type") == "binary" or "base64" in obj:
        try:
            return base64.b64decode(str(obj.get("base64", "")), validate=True)
        except (binascii.Error, ValueError):
            raise WstoolError(f"{path} line {line_number}: base64 payload is not "
                              "base64") from None
    text = obj.get("text")
    if not isinstance(text, str):
        raise WstoolError(f"{path} line {line_number}: a message event without text or "
                          "base64")
    return text


def _events_recording(path: str, text: str) -> tuple[Recording, list[str]]:
    steps: list[Step] = []
    url = subprotocol = None
    close_code: int | None = None
    close_by: str | None = None
    start: float | None = None
    opens = 0
    for line_number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            raise WstoolError(f"{path} line {line_number}: not JSON: this is not a "
                              "connect --json/--record log, a /save file or a HAR "
                              "file") from None
        if not isinstance(obj, dict) or "event" not in obj:
            raise WstoolError(f"{path} line {line_number}: not a wstool event "
                              "(no \"event\" key)")
        event = obj["event"]
        if event == "open":
            opens += 1
            if opens > 1:
                continue  # a reconnect: the recording is the first connection
            url = obj.get("url")
            subprotocol = obj.get("subprotocol")
            start = _mono(obj, start)
        elif opens > 1:
            continue
        elif event == "message" and obj.get("direction") in ("sent", "received"):
            at = _mono(obj, None)
            if start is None:
                start = at
            steps.append(Step(obj["direction"], _payload(path, line_number, obj),
                              max(0.0, (at or 0.0) - (start or 0.0))))
        elif event == "close" and close_code is None:
            close_code = obj.get("code")
            close_by = obj.get("initiated_by")
    notices = []
    if opens > 1:
        notices.append(f"{path} has {opens} connections (reconnects); replaying the first")
    return Recording(path, "events", url, subprotocol, tuple(steps), close_code,
                     close_by), notices


def _mono(obj: dict[str, Any], default: float | None) -> float | None:
    value = obj.get("mono", obj.get("ts"))
    return float(value) if isinstance(value, int | float) else default


def load_recording(
    path: str, *, socket_number: int | None = None, url: str | None = None
) -> tuple[Recording, list[str]]:
    """Read PATH (any of the three kinds): the recording and notices for stderr."""
    whole, text = read_json_file(path)
    if isinstance(whole, dict) and "log" in whole:
        sockets = har_sockets(path, whole)
        socket, notices = pick_har_socket(path, sockets, number=socket_number, url=url)
        recording = _har_recording(path, socket)
    else:
        if socket_number is not None:
            raise UsageError(f"--socket is for HAR files; {path} is an event log")
        recording, notices = _events_recording(path, text)
    if not recording.steps:
        raise WstoolError(f"{path}: no messages recorded, nothing to replay")
    return recording, notices
