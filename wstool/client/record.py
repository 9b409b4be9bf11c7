"""``connect --record FILE``: the run's events as ``--json`` writes them, to a file.

An observer on the run (``run.py``), so pipe mode and the REPL record alike and
neither's own output changes. The lines are ``render.event_json``'s, written by
``term/jsonl.py``: the README's "JSON events" schema, which ``wstool replay``
reads back. The file is flushed after each received chunk and at each open and
close, so a run that is killed keeps what it saw.

Imported only with ``--record`` (it imports json through ``term/jsonl.py``).
"""

from __future__ import annotations

import time
from typing import IO

from wstool.client.run import RunObserver
from wstool.errors import WstoolError
from wstool.events import Closed, Event, Message, Opened
from wstool.term.jsonl import json_line_bytes
from wstool.term.render import event_json


class Recorder(RunObserver):
    """Writes every event with a ``--json`` form to FILE, one JSON line each."""

    report_sent = True  # a recording without what we sent cannot be replayed

    def __init__(self, path: str) -> None:
        self.path = path
        try:
            self.file: IO[bytes] = open(path, "wb")  # noqa: SIM115 (closed by close())
        except OSError as exc:
            raise WstoolError(f"cannot write --record {path}: "
                              f"{exc.strerror or exc}") from None
        self.failed = False

    def _write(self, event: Event) -> None:
        obj = event_json(event)
        if obj is None or self.failed:
            return
        try:
            self.file.write(json_line_bytes(obj))
        except (OSError, ValueError):
            self.failed = True  # disk full: the run goes on; close() says so

    def _flush(self) -> None:
        if self.failed:
            return
        try:
            self.file.flush()
        except (OSError, ValueError):
            self.failed = True

    def on_event(self, event: Event) -> None:
        self._write(event)
        if isinstance(event, Opened | Closed):
            self._flush()

    def on_message(self, data: str | bytes) -> None:
        self._write(Message("received", data, ts=time.monotonic()))

    def on_batch(self) -> None:
        self._flush()

    def close(self) -> None:
        """At the end of the run; raises if the recording could not be written whole."""
        self._flush()
        try:
            self.file.close()
        except OSError:
            self.failed = True
        if self.failed:
            raise WstoolError(f"could not write all of --record {self.path} (disk full?)")
