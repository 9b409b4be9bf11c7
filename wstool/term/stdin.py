"""Standard input as messages: a reader that never keeps the process alive, and the
splitter that turns its bytes into text lines or binary chunks (connect and listen)."""

from __future__ import annotations

import asyncio
import collections
import os
import threading
from typing import IO

from wstool.errors import WstoolError


class StdinReader:
    """Reads a stream in a daemon thread, one chunk per ``read()`` call.

    A daemon thread (rather than the loop's default executor) so that a read
    blocked on a terminal or an idle pipe never keeps the process alive after
    we are done. One chunk is requested at a time: that is the backpressure.
    """

    def __init__(self, stream: IO[bytes], chunk_size: int) -> None:
        self._stream = stream
        self._chunk_size = chunk_size
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[bytes | BaseException] = asyncio.Queue()
        self._want = threading.Semaphore(0)
        self._eof = False
        threading.Thread(target=self._run, name="wstool-stdin", daemon=True).start()

    def _read_once(self) -> bytes:
        try:
            fd = self._stream.fileno()
        except (OSError, ValueError):  # io.BytesIO in tests
            return self._stream.read(self._chunk_size) or b""
        return os.read(fd, self._chunk_size)

    def _run(self) -> None:
        while True:
            self._want.acquire()
            item: bytes | BaseException
            try:
                item = self._read_once()
            except OSError as exc:
                item = exc
            try:
                self._loop.call_soon_threadsafe(self._queue.put_nowait, item)
            except RuntimeError:  # the loop is closed: we are exiting
                return
            if not item or isinstance(item, BaseException):
                return

    async def read(self) -> bytes:
        """The next chunk; ``b""`` at end of input."""
        if self._eof:
            return b""
        self._want.release()
        item = await self._queue.get()
        if isinstance(item, BaseException):
            raise WstoolError(f"cannot read stdin: {item}")
        if not item:
            self._eof = True
        return item


class TextLines(bytes):
    """Whole input lines as one block of UTF-8 (checked), each one ended by
    ``separator``: ``len(payloads)`` text messages, not a binary one.

    Pipe mode's hot path (issue 14): the splitter hands a stdin chunk's complete
    lines over as one of these instead of a ``str`` per line, and
    ``Session.send_many`` frames the lines straight from the bytes (no decode, no
    split into str, no encode per line). A ``bytes`` subclass so that it travels
    through the ``str | bytes`` message queues; only a consumer that knows it may
    be handed one (``InputSplitter(text_blocks=True)``): anything else would take
    it for one binary message. ``lines()`` gives the messages as text."""

    separator: bytes
    payloads: list[bytes]  # the lines without their separators

    def lines(self) -> list[str]:
        lines = self.decode().split(self.separator.decode())
        lines.pop()  # the "" after the last separator
        return lines


# Lines from this long on are cut with find() (memchr) line by line rather than with
# split(), whose loop looks at every byte: ~1 against ~10 instructions a byte for
# 64 KiB lines; below it split()'s one call wins.
LONG_LINE_BYTES = 1024


def text_lines(block: bytes, separator: bytes) -> TextLines:
    """BLOCK (UTF-8, checked by the caller, ending with SEPARATOR) as TextLines."""
    lines = TextLines(block)
    lines.separator = separator
    if block.find(separator) < LONG_LINE_BYTES:
        payloads = block.split(separator)
        payloads.pop()  # the b"" after the last separator
    else:
        payloads = []
        append = payloads.append
        find = block.find
        pos, end = 0, len(block)
        while pos < end:
            cut = find(separator, pos)
            append(block[pos:cut])
            pos = cut + 1
    lines.payloads = payloads
    return lines


class InputSplitter:
    """Stdin bytes -> messages: separator-ended lines as text (UTF-8 checked),
    or, with -b, each chunk as one binary message. Shared by connect and listen.

    TEXT_BLOCKS: a chunk's complete lines come as one :class:`TextLines` when they
    are valid UTF-8 (for a consumer that knows it: pipe mode's ``send_many``)."""

    def __init__(self, *, binary: bool, separator: bytes, text_blocks: bool = False) -> None:
        self.binary = binary
        self.separator = separator
        self.text_blocks = text_blocks
        self.partial = b""
        self.line_no = 0

    def feed(self, chunk: bytes, out: collections.deque[str | bytes]) -> None:
        """Append the messages CHUNK completes to OUT. An invalid line raises
        WstoolError after the lines before it are appended (they still go)."""
        if self.binary:
            out.append(chunk)
            return
        data = self.partial + chunk if self.partial else chunk
        cut = data.rfind(self.separator) + 1
        if not cut:
            self.partial = data
            return
        self.partial = data[cut:]
        if self.text_blocks:
            block = data[:cut]
            if block.isascii() or is_utf8(block):  # isascii(): a fast C scan
                whole = text_lines(block, self.separator)
                self.line_no += len(whole.payloads)
                out.append(whole)
                return
        # The complete lines decoded in one go, then split as text: a quarter of the
        # time of a decode() per line (pipe mode's hot path, issue 14). Only when that
        # fails are they decoded one by one, to find the culprit's line number.
        try:
            text = data[:cut].decode()
        except UnicodeDecodeError:
            pass
        else:
            lines = text.split(self.separator.decode())
            lines.pop()  # the "" after the last separator
            self.line_no += len(lines)
            out.extend(lines)
            return
        pieces = data[:cut].split(self.separator)
        pieces.pop()
        for raw in pieces:
            out.append(self._decode(raw))

    def finish(self, out: collections.deque[str | bytes]) -> None:
        """End of input: a last line without a separator is a message too."""
        if self.partial:
            partial, self.partial = self.partial, b""
            out.append(partial if self.binary else self._decode(partial))

    def _decode(self, raw: bytes) -> str:
        self.line_no += 1
        try:
            return raw.decode()
        except UnicodeDecodeError as exc:
            raise WstoolError(
                f"input line {self.line_no} is not valid UTF-8 "
                f"(byte {exc.start}): send bytes with -b/--binary"
            ) from None


def is_utf8(data: bytes) -> bool:
    """DATA is valid UTF-8 (shared with the client's receive fast path). protocol/echo.py
    has the same five lines: importing them from there would put websockets' server
    modules on every connect's start-up."""
    try:
        data.decode()
    except UnicodeDecodeError:
        return False
    return True
