"""The REPL's messages on screen (issue 13): numbered, compact, kept, searched, filtered.

Pure state and rendering, no I/O: :class:`MessageView` numbers every message the
REPL sees (``#12 <`` received, ``#13 >`` sent; one counter), keeps the last
:data:`KEPT_MESSAGES` of them for ``/show``, ``/pager`` and ``/find``, and decides
what reaches the screen:

* ``/json compact`` (the default): a JSON message that fits the terminal width is
  one highlighted line (the text as received, or re-serialised on one line when the
  server sent it over several lines); one that does not fit is pretty-printed.
  ``/json pretty``: always pretty-printed. ``/json off`` (``--no-pretty``): every
  message as received, no highlighting. Text that is not JSON shows as it is in
  every mode.
* ``/filter REGEX|json:EXPR``: only the incoming messages that match are shown;
  the others are counted (the status bar) and still kept and numbered. Sent
  messages always show. The matcher is the caller's (``connect`` passes
  ``client/expect.py``'s :class:`Matcher`, the one ``--expect`` uses).
* ``/pause``: incoming messages are kept and counted but not shown (what you send
  still shows); ``/resume`` shows the ones that arrived meanwhile (through the filter), at most
  :data:`RESUME_SHOW_MAX`, the last ones, with a line saying how many were left
  out (``/show N`` still prints those that are kept).
* ``/find TEXT``: the kept messages containing TEXT (case-insensitive), printed
  again as one line each with every match highlighted (what a browser's devtools
  search shows), the most recent :data:`FIND_SHOW_MAX`.

Every remote string goes through :func:`~wstool.term.render.escape` into a rich
``Text`` (never markup), as in ``render_rich.py``.
"""

from __future__ import annotations

import collections
import json
import re
from collections.abc import Callable, Iterator
from typing import Literal, NamedTuple

from rich.cells import cell_len
from rich.text import Text

from wstool.events import Message
from wstool.term.commands import KEPT_MESSAGES, RESUME_SHOW_MAX
from wstool.term.palette import PALETTE
from wstool.term.render import escape, hex_dump, human_size
from wstool.term.render_rich import (
    PRETTY_JSON_MAX_BYTES,
    ViewOptions,
    append_lines,
    cut_to_rows,
    shown_text,
    wall_clock,
)

JsonMode = Literal["compact", "pretty", "off"]
JSON_MODES: tuple[JsonMode, ...] = ("compact", "pretty", "off")

# KEPT_MESSAGES (commands.py, where /help quotes it): the kept messages are the same
# Message objects as /save's transcript, so keeping them costs a reference each; the
# bound is what keeps a long session's memory flat.
# /find prints at most this many matches (the most recent).
FIND_SHOW_MAX = 50

STYLE_MATCH = "bold black on yellow"

# A message filter: True for a message to show.
MessageMatch = Callable[[str | bytes], bool]


class Kept(NamedTuple):
    number: int
    event: Message
    label: str | None = None  # listen's client id


class MessageFilter(NamedTuple):
    source: str  # as typed: REGEX or json:EXPR
    match: MessageMatch


def regex_filter(source: str) -> MessageMatch:
    """The default ``/filter`` matcher: a regular expression searched in text
    messages (binary messages never match). Raises ``ValueError`` with one line."""
    if source.startswith("json:"):
        raise ValueError("json: filters are not available here (use a regular expression)")
    try:
        regex = re.compile(source)
    except re.error as exc:
        raise ValueError(f"invalid regular expression '{source}': {exc}") from None
    return lambda data: isinstance(data, str) and regex.search(data) is not None


class MessageLog:
    """The last MAXLEN messages, numbered from 1 in the order the REPL saw them."""

    def __init__(self, maxlen: int = KEPT_MESSAGES) -> None:
        self._kept: collections.deque[Kept] = collections.deque(maxlen=maxlen)
        self.last_number = 0

    def add(self, event: Message, label: str | None = None) -> Kept:
        self.last_number += 1
        kept = Kept(self.last_number, event, label)
        self._kept.append(kept)
        return kept

    def get(self, number: int) -> Kept | None:
        if not self._kept:
            return None
        index = number - self._kept[0].number
        if 0 <= index < len(self._kept):
            return self._kept[index]
        return None

    def last_received(self) -> Kept | None:
        for kept in reversed(self._kept):
            if kept.event.direction == "received":
                return kept
        return None

    def since(self, number: int) -> list[Kept]:
        """The kept messages numbered NUMBER and later."""
        return [k for k in self._kept if k.number >= number]

    def kept_range(self) -> str:
        if not self._kept:
            return "no messages yet"
        return f"#{self._kept[0].number}-#{self._kept[-1].number} are kept"

    def __iter__(self) -> Iterator[Kept]:
        return iter(self._kept)

    def __len__(self) -> int:
        return len(self._kept)


# Rendering


def _prefix(kept: Kept, view: ViewOptions) -> Text:
    event = kept.event
    sent = event.direction == "sent"
    text = Text()
    if kept.label:
        text.append(kept.label + " ", style="bold")
    if view.timestamps and event.ts:
        text.append(wall_clock(event.ts) + " ", style=PALETTE.dim)
    text.append(f"#{kept.number} ", style=PALETTE.dim)
    text.append("> " if sent else "< ", style=PALETTE.sent if sent else PALETTE.received)
    return text


def _parse_json(text: str) -> object | None:
    """The value of a JSON object or array, else None (bounded: big texts are not parsed)."""
    stripped = text.lstrip()
    if not stripped or stripped[0] not in "{[" or len(text) > PRETTY_JSON_MAX_BYTES:
        return None
    try:
        value: object = json.loads(text)
    except ValueError:
        return None
    return value


def _fold_note(kept: Kept, shown: str) -> Text:
    size = kept.event.size_bytes
    return Text(f"… folded (/show {kept.number} prints it whole): {human_size(size)} "
                f"({size} bytes), showing {shown}", style=PALETTE.dim + " italic")


def message_text(kept: Kept, view: ViewOptions, mode: JsonMode, *, whole: bool = False) -> Text:
    """A numbered message as the REPL shows it; WHOLE (``/show``, ``/pager``): not folded."""
    out = _prefix(kept, view)
    indent = " " * out.cell_len
    data = kept.event.data
    if isinstance(data, bytes):
        return _binary_text(out, kept, indent, view, whole)
    if data == "":
        out.append("(empty text message)", style=PALETTE.dim)
        return out
    value = None if mode == "off" else _parse_json(data)
    body = data
    if value is not None:
        one_line = data
        if "\n" in data or "\r" in data:
            one_line = json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
        if mode == "compact" and out.cell_len + cell_len(escape(one_line)) <= view.width:
            body = one_line
        else:
            body = json.dumps(value, indent=2, ensure_ascii=False)
    if whole:
        lines = body.split("\n")
        folded = False
    else:
        lines, folded = cut_to_rows(body, view, max(20, view.width - len(indent)))
    append_lines(out, lines, indent, highlight=value is not None)
    if folded:
        out.append("\n" + indent)
        out.append_text(_fold_note(kept, shown_text(lines)))
    return out


def _binary_text(out: Text, kept: Kept, indent: str, view: ViewOptions, whole: bool) -> Text:
    import base64

    data = kept.event.data
    assert isinstance(data, bytes)
    size = len(data)
    out.append(f"binary, {size} bytes", style=PALETTE.dim)
    if not data:
        return out
    if view.base64:
        width = 76
        # 3 input bytes -> 4 base64 characters: encode only what is shown.
        chunk = data if whole else data[: view.max_lines * width // 4 * 3]
        encoded = base64.b64encode(chunk).decode("ascii")
        rows = [encoded[i : i + width] for i in range(0, len(encoded), width)]
        shown_bytes = len(chunk)
    else:
        limit = size if whole else view.max_lines * 16
        rows = hex_dump(data, max_bytes=limit)
        shown_bytes = min(size, limit)
    for row in rows:
        out.append("\n" + indent + row)
    if shown_bytes < size:
        out.append("\n" + indent)
        out.append_text(_fold_note(kept, f"the first {shown_bytes} bytes"))
    return out


def find_text(kept: Kept, needle: str, view: ViewOptions) -> Text | None:
    """KEPT on one line with every (case-insensitive) match of NEEDLE highlighted,
    cut to the terminal width around the first match; None if it does not match.
    Binary messages are not searched."""
    data = kept.event.data
    if isinstance(data, bytes) or not needle:
        return None
    line = escape(data)  # one line: newlines show as \n
    pattern = re.compile(re.escape(escape(needle)), re.IGNORECASE)
    first = pattern.search(line)
    if first is None:
        return None
    out = _prefix(kept, view)
    room = max(20, view.width - out.cell_len)
    start, end = 0, len(line)
    if len(line) > room:
        # The first match a third of the way in, so some context before it shows.
        start = max(0, min(first.start() - room // 3, len(line) - room + 1))
        end = start + room - 2
    piece = Text(("…" if start else "") + line[start:end] + ("…" if end < len(line) else ""))
    offset = 1 if start else 0
    for found in pattern.finditer(line, start, end):
        piece.stylize(STYLE_MATCH, found.start() - start + offset,
                      min(found.end(), end) - start + offset)
    out.append_text(piece)
    return out


# The state


class MessageView:
    """What the REPL keeps of and shows for messages (see the module docstring)."""

    def __init__(self, view: ViewOptions, mode: JsonMode = "compact",
                 keep: int = KEPT_MESSAGES) -> None:
        self.view = view
        self.mode: JsonMode = mode
        self.log = MessageLog(keep)
        self.filter: MessageFilter | None = None
        self.hidden = 0  # incoming messages the filter hid (since it was set)
        self.paused_at: int | None = None  # the first number not shown since /pause
        self.held = 0  # messages that arrived while paused

    def add(self, event: Message, label: str | None = None) -> Text | None:
        """Number and keep EVENT; its text, or None when it is not shown now."""
        kept = self.log.add(event, label)
        if self.paused_at is not None and event.direction == "received":
            self.held += 1
            return None
        if not self._passes(kept):
            self.hidden += 1
            return None
        return message_text(kept, self.view, self.mode)

    def _passes(self, kept: Kept) -> bool:
        if self.filter is None or kept.event.direction == "sent":
            return True
        return self.filter.match(kept.event.data)

    def lookup(self, number: int | None) -> Kept | str:
        """Message NUMBER (None: the last received), or one line saying why not."""
        if number is None:
            kept = self.log.last_received()
            return kept if kept is not None else "no message received yet"
        kept = self.log.get(number)
        if kept is None:
            return f"no message #{number} ({self.log.kept_range()})"
        return kept

    def whole(self, kept: Kept) -> Text:
        return message_text(kept, self.view, "off" if self.mode == "off" else "pretty",
                            whole=True)

    def find(self, needle: str) -> tuple[list[Text], str]:
        """The lines /find prints and its summary line."""
        found = [t for k in self.log if (t := find_text(k, needle, self.view)) is not None]
        shown = found[-FIND_SHOW_MAX:]
        what = f"'{escape(needle)}'"
        if not found:
            return [], f"no kept message contains {what} ({self.log.kept_range()})"
        summary = (f"{len(found)} of {len(self.log)} kept messages contain {what}"
                   f"{' (binary messages are not searched)' if self._any_binary() else ''}")
        if len(shown) < len(found):
            summary += f"; the last {len(shown)} shown"
        return shown, summary

    def _any_binary(self) -> bool:
        return any(isinstance(k.event.data, bytes) for k in self.log)

    def set_filter(self, flt: MessageFilter | None) -> None:
        self.filter = flt
        self.hidden = 0

    def pause(self) -> bool:
        """False if already paused."""
        if self.paused_at is not None:
            return False
        self.paused_at = self.log.last_number + 1
        self.held = 0
        return True

    def resume(self) -> tuple[list[Text], str] | None:
        """The held messages to print now and a summary line; None if not paused."""
        if self.paused_at is None:
            return None
        held = [k for k in self.log.since(self.paused_at) if k.event.direction == "received"]
        lost = self.held - len(held)  # no longer kept (past KEPT_MESSAGES)
        shown = []
        for kept in held:
            if self._passes(kept):
                shown.append(kept)
            else:
                self.hidden += 1
        printed = shown[-RESUME_SHOW_MAX:]
        texts = [message_text(k, self.view, self.mode) for k in printed]
        summary = f"display resumed: {self.held} message{'' if self.held == 1 else 's'} " \
                  "arrived while paused"
        left_out = len(shown) - len(printed) + lost
        if left_out:
            summary += f"; {left_out} not printed (the first ones; /show N prints a kept one)"
        if len(shown) < len(held):
            summary += f"; {len(held) - len(shown)} hidden by the filter"
        self.paused_at = None
        self.held = 0
        return texts, summary

    def status_segments(self) -> list[str]:
        """The status bar's part: the filter's hidden count, the paused count."""
        segments = []
        if self.filter is not None:
            segments.append(f"filter: {self.hidden} hidden")
        if self.paused_at is not None:
            segments.append(f"paused: {self.held} new")
        return segments
