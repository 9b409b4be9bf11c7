"""``--expect``, ``--capture`` and templates: a sequence of steps over a client run.

Issue 11. ``-x``, ``--expect`` and ``--capture``, in the order they were given,
form one sequence (auth -> expect the token -> subscribe with ``{{token}}`` ->
expect data). :class:`SequenceObserver` is a :class:`~wstool.client.run.RunObserver`,
so pipe mode and the REPL run it the same way:

* on each connection it starts the sequence over: the ``-x`` messages before the
  first expectation go at once (before stdin), the rest as the steps before them
  complete;
* ``--expect PATTERN`` waits for a received message that matches (each step
  looks at the messages after the previous match), at most ``--expect-timeout``
  seconds from the start of the step; ``--capture NAME=...`` the same, keeping a
  value for ``{{NAME}}``;
* every step's outcome is reported as an :class:`~wstool.events.ExpectResult`
  (``--json``: an ``expect`` event) and a notice (stderr, the REPL's state line);
* a step not met in time, or a close while steps remain, stops the run with
  :class:`~wstool.errors.ExpectationNotMet` (exit 8): one line naming the
  pattern, the timeout and how many messages arrived, then the last few;
* when the sequence holds an ``--expect`` and every step is done, the run ends
  with a clean close (1000, exit 0).

PATTERN is a regular expression searched in text messages, or ``json:EXPR``, a
jq expression (PyPI ``jq``, the optional extra ``wstool[jq]``) evaluated on the
parsed message, which matches when it yields a value other than false and null
(jq's own truthiness, as ``select`` has it). Messages that are not JSON never
match a ``json:`` pattern; binary messages match none.

:class:`Inbox` and :class:`Matcher` are shared with scenario files (``scenario.py``).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import re
import time
from collections.abc import Sequence
from typing import Any, NamedTuple

from wstool.client.run import ClientRun, InputSource, RunObserver
from wstool.client.session import SessionClosed
from wstool.errors import ExpectationNotMet, UsageError, WstoolError
from wstool.events import Closed, Event, ExpectResult, Notice, Opened
from wstool.templates import Renderer, Template, check_capture_name

# How many of the last received messages a failure shows, and how much of each.
RECENT_MESSAGES = 5
RECENT_MESSAGE_CHARS = 200

JQ_MISSING = "json: patterns need the jq library: pip install 'wstool[jq]'"


class Matcher:
    """A compiled PATTERN: ``match(data)`` is None or the captured value."""

    def __init__(self, source: str, where: str) -> None:
        self.source = source
        self._program: Any = None
        self._regex: re.Pattern[str] | None = None
        if source.startswith("json:"):
            expr = source[5:].strip()
            if not expr:
                raise UsageError(f"{where} 'json:': the jq expression is empty")
            try:
                import jq  # optional extra, imported only for json: patterns
            except ImportError:
                raise UsageError(f"{where} '{source}': {JQ_MISSING}") from None
            try:
                self._program = jq.compile(expr)
            except ValueError as exc:
                first = (str(exc).strip().splitlines() or ["invalid"])[0].rstrip(":")
                raise UsageError(f"{where} '{source}': invalid jq expression: {first}") from None
        else:
            try:
                self._regex = re.compile(source)
            except re.error as exc:
                raise UsageError(f"{where} '{source}': invalid regular expression: {exc}") from None

    @property
    def is_json(self) -> bool:
        return self._program is not None

    def match(self, data: str | bytes) -> str | None:
        """None: no match; else the value (regex: the first group, or the whole
        match; json: the first output, a string as it is, anything else as JSON)."""
        if isinstance(data, bytes):
            return None
        if self._regex is not None:
            found = self._regex.search(data)
            if found is None:
                return None
            if found.re.groups:
                group = found.group(1)
                return "" if group is None else group
            return found.group(0)
        try:
            outputs = self._program.input_text(data).all()
        except ValueError:  # not JSON, or the expression fails on this value
            return None
        for value in outputs:
            if value is not None and value is not False:
                if isinstance(value, str):
                    return value
                import json

                return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
        return None


# The steps of a connect sequence.


class SendStep(NamedTuple):
    template: Template


class ExpectStep(NamedTuple):
    matcher: Matcher
    timeout_s: float
    capture: str | None = None  # --capture NAME=...: keep the value as {{NAME}}


Step = SendStep | ExpectStep


def parse_capture(text: str) -> tuple[str, str]:
    """``NAME=REGEX`` or ``NAME=json:EXPR`` -> (NAME, PATTERN)."""
    name, sep, pattern = text.partition("=")
    if not sep or not pattern:
        raise UsageError(f"invalid --capture '{text}': expected NAME=REGEX or NAME=json:EXPR")
    return check_capture_name(name.strip()), pattern


def describe_step(step: ExpectStep) -> str:
    if step.capture is not None:
        return f"--capture {step.capture}='{step.matcher.source}'"
    return f"--expect '{step.matcher.source}'"


def seconds_text(seconds: float) -> str:
    return f"{seconds:g}s"


def recent_lines(messages: Sequence[str | bytes]) -> list[str]:
    """The last messages for a failure report: escaped, each size-bounded."""
    from wstool.term.render import binary_as_text, escape

    lines = []
    for data in messages:
        if isinstance(data, bytes):
            text = f"(binary, {len(data)} bytes) " + binary_as_text(data[:64])
        else:
            text = escape(data)
        if len(text) > RECENT_MESSAGE_CHARS:
            text = text[:RECENT_MESSAGE_CHARS] + f"... ({len(text)} characters)"
        lines.append(f"  < {text}")
    return lines


def not_met_error(what: str, timeout_s: float | None, flag: str, inbox: Inbox,
                  *, closed: Closed | None = None) -> ExpectationNotMet:
    """The one line (and the last messages) of a step not met."""
    count = inbox.received
    received = f"{count} message{'' if count == 1 else 's'} received"
    if closed is not None:
        from wstool.term.render import close_line

        line = (f"expectation not met: {what}: the connection closed first "
                f"({close_line(closed)}; {received})")
    else:
        line = (f"expectation not met: {what} within {flag} "
                f"{seconds_text(timeout_s or 0)} ({received})")
    recent = list(inbox.recent)
    if recent:
        shown = "the last one" if len(recent) == 1 else f"the last {len(recent)}"
        line += f"; {shown}:\n" + "\n".join(recent_lines(recent))
    return ExpectationNotMet(line)


class Inbox:
    """The received messages of one connection, for steps that wait for a match.

    Steps consume messages in order: a step looks at the messages after the
    one the previous step matched. ``recent`` keeps the last few for reports."""

    def __init__(self) -> None:
        self.received = 0
        self.recent: collections.deque[str | bytes] = collections.deque(
            maxlen=RECENT_MESSAGES)
        self._unread: collections.deque[tuple[int, str | bytes]] = collections.deque()
        self._arrived = asyncio.Event()
        self.listening = True

    def add(self, data: str | bytes) -> None:
        self.received += 1
        self.recent.append(data)
        if self.listening:
            self._unread.append((self.received, data))
            self._arrived.set()

    async def wait_for(self, matcher: Matcher, timeout_s: float | None) -> tuple[int, str]:
        """The (index, value) of the next message MATCHER matches; TimeoutError."""
        async with asyncio.timeout(timeout_s):
            while True:
                while self._unread:
                    index, data = self._unread.popleft()
                    value = matcher.match(data)
                    if value is not None:
                        return index, value
                self._arrived.clear()
                await self._arrived.wait()


class SequenceObserver(RunObserver):
    """Runs the connect sequence over a :class:`ClientRun` (see the module doc)."""

    def __init__(self, steps: Sequence[Step], renderer: Renderer) -> None:
        self.steps = tuple(steps)
        self.renderer = renderer
        # With an --expect, the sequence's end is the run's end (exit 0).
        self.ends_run = any(isinstance(s, ExpectStep) and s.capture is None for s in steps)
        self.has_waits = any(isinstance(s, ExpectStep) for s in steps)
        self.inbox = Inbox()
        self.done = not self.has_waits
        self._run: ClientRun | None = None
        self._task: asyncio.Future[None] | None = None
        self._captured = asyncio.Event()

    def attach(self, run: ClientRun) -> None:
        self._run = run

    # The run's events

    def on_event(self, event: Event) -> None:
        kind = type(event)
        if kind is Opened:
            self._start()
        elif kind is Closed:
            task, self._task = self._task, None
            if task is not None and not task.done():
                task.cancel()
                if not self.done and self._run is not None:
                    step = self._current
                    what = describe_step(step) if step is not None else "the sequence"
                    assert isinstance(event, Closed)
                    self._run.stop(error=not_met_error(what, None, "", self.inbox,
                                                       closed=event))
            # A next connection (--reconnect) starts with an empty inbox. Not reset
            # on Opened: a greeting can arrive in the same read as the handshake.
            self.inbox = Inbox()

    def on_message(self, data: str | bytes) -> None:
        self.inbox.add(data)

    # The sequence

    _current: ExpectStep | None = None

    def _start(self) -> None:
        """A connection opened: the sequence starts over (as -x go again)."""
        run = self._run
        assert run is not None
        self.done = not self.has_waits
        self._current = None
        # The sends before the first wait go now, inside the Opened event: before
        # the run starts reading stdin, as plain -x messages do.
        leading = 0
        for step in self.steps:
            if not isinstance(step, SendStep):
                break
            leading += 1
        session = run.session
        if leading and session is not None:
            messages = [self.renderer.render(s.template) for s in self.steps[:leading]
                        if isinstance(s, SendStep)]
            with contextlib.suppress(SessionClosed):
                session.send_many(messages)
                session.flush()
        rest = self.steps[leading:]
        if rest:
            self._task = asyncio.ensure_future(self._run_steps(rest))
            self._task.add_done_callback(self._step_task_done)
        elif self.ends_run:
            run.stop()

    def _step_task_done(self, task: asyncio.Future[None]) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None and self._run is not None:
            self._run.stop(error=exc if isinstance(exc, WstoolError)
                           else WstoolError(f"internal error: {type(exc).__name__}: {exc}"))

    async def _run_steps(self, steps: Sequence[Step]) -> None:
        run = self._run
        assert run is not None
        for step in steps:
            if isinstance(step, SendStep):
                session = run.session
                if session is None or not session.is_open:
                    return  # the Closed event reports it
                with contextlib.suppress(SessionClosed):
                    session.send(self.renderer.render(step.template))
                    session.flush()
                    await session.drain()
                continue
            self._current = step
            started = time.monotonic()
            try:
                index, value = await self.inbox.wait_for(step.matcher, step.timeout_s)
            except TimeoutError:
                elapsed = time.monotonic() - started
                run.report(ExpectResult(step.matcher.source, False, None, elapsed,
                                        step.capture, ts=time.monotonic()))
                self.done = True  # the error below is the verdict; the close is ours
                run.stop(error=not_met_error(describe_step(step), step.timeout_s,
                                             "--expect-timeout", self.inbox))
                return
            now = time.monotonic()
            elapsed = now - started
            run.report(ExpectResult(step.matcher.source, True, index, elapsed, step.capture,
                                    ts=now))
            if step.capture is not None:
                self.renderer.captured[step.capture] = value
                self._captured.set()
                run.report(Notice(f"captured {step.capture} from message {index} "
                                  f"({elapsed * 1000:.1f} ms)", ts=now))
            else:
                run.report(Notice(f"expected '{step.matcher.source}': message {index} "
                                  f"({elapsed * 1000:.1f} ms)", ts=now))
        self._current = None
        self.done = True
        self.inbox.listening = False
        if self.ends_run:
            run.stop()  # every expectation met: close with 1000, exit 0

    async def wait_captured(self, names: frozenset[str]) -> None:
        """Until every one of NAMES has a value (an input line that uses them waits)."""
        while any(name not in self.renderer.captured for name in names):
            self._captured.clear()
            await self._captured.wait()


class TemplatedInput(InputSource):
    """An input source whose text messages are templates (``connect --template``).

    A line that uses a capture not yet captured waits for it (the sequence's
    timeout bounds the wait: a capture not met stops the run)."""

    def __init__(self, source: InputSource, compile_line: Any, renderer: Renderer,
                 sequence: SequenceObserver | None) -> None:
        self.source = source
        self.compile_line = compile_line  # str -> Template (UsageError: a bad line)
        self.renderer = renderer
        self.sequence = sequence
        self._read: collections.deque[str | bytes] = collections.deque()
        self._eof = False

    async def read_into(self, out: collections.deque[str | bytes]) -> bool:
        read = self._read
        if not read and not self._eof:
            self._eof = not await self.source.read_into(read)
        while read:
            data = read[0]
            if isinstance(data, str):
                template: Template = self.compile_line(data)
                missing = self.renderer.missing(template)
                if missing:
                    if out:
                        return True  # send what is ready first
                    if self.sequence is None:
                        raise UsageError(f"input line uses {{{{{min(missing)}}}}}, "
                                         "which nothing captures")
                    await self.sequence.wait_captured(missing)
                data = self.renderer.render(template)
            read.popleft()
            out.append(data)
        return not self._eof or bool(read)


class TypedLines:
    """Lines typed at the REPL's prompt as templates (``connect --template`` on a terminal).

    They share the run's renderer with the ``-x`` messages (one ``{{seq}}``, the
    same captures). Unlike a pipe's input line, a typed line is never held back
    nor does it end the session: one that uses a capture not captured yet, an
    unknown placeholder, an unset variable or an unreadable file is refused with
    one line for the user, and the prompt stays."""

    def __init__(self, compile_line: Any, renderer: Renderer) -> None:
        self.compile_line = compile_line  # str -> Template (UsageError: a bad line)
        self.renderer = renderer

    def expand(self, text: str) -> str:
        """TEXT rendered now; a UsageError (one line: why it is not sent) if it cannot be."""
        template: Template = self.compile_line(text)
        missing = self.renderer.missing(template)
        if missing:
            name = min(missing)
            raise UsageError(f"{{{{{name}}}}} is not captured yet (--capture {name}=... has "
                             "not matched a message): not sent")
        return self.renderer.render(template)
