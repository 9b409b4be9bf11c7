"""JSON lines: the one way wstool writes a ``--json`` object (or a ``/save`` line).

One object per line, non-ASCII as is (``ensure_ascii=False``: the README's
schemas show text as text), UTF-8 on byte streams. A string that cannot be
UTF-8 (a lone surrogate) is written backslash-escaped rather than failing the
whole line.

Import this module lazily on the connect path: it imports :mod:`json`, ~2.5 ms
that a pipe run without ``--json`` must not pay (``tests/test_repl_pty.py``).
Building the objects is ``render.py``'s job (``event_json``, ``payload_fields``,
``frame_json``...), which stays free of ``json``.
"""

from __future__ import annotations

import io
import json
from typing import IO, cast

from wstool.term.render import JsonObject


def json_line(obj: JsonObject) -> str:
    """``obj`` as one line of JSON, the newline included."""
    return json.dumps(obj, ensure_ascii=False) + "\n"


def json_line_bytes(obj: JsonObject) -> bytes:
    """:func:`json_line` as UTF-8, for a front-end with its own buffered writer."""
    return json_line(obj).encode("utf-8", "backslashreplace")


def write_json_line(stream: IO[bytes] | IO[str], obj: JsonObject) -> None:
    """Write ``obj`` as one JSON line to a byte stream (``env.stdout``) or a text
    stream (a file opened with ``"w"``). No flush: the caller knows when output
    must show."""
    if isinstance(stream, io.TextIOBase):
        stream.write(json_line(obj))
    else:
        # Not a text stream, so a byte stream (mypy cannot narrow IO[str] away).
        cast("IO[bytes]", stream).write(json_line_bytes(obj))
