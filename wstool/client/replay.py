"""``wstool replay FILE [URL]``: a recording as a regression test (issue 11).

The replay is a client run (``run.py``) like ``connect``'s, so every connect
option applies (headers, TLS, proxy, compression...). It plugs into the run's
seams, as the architecture says a capability should:

* :class:`ReplayInput`, the input source: the recorded outgoing messages in
  order, each when its time comes (the recorded spacing divided by ``--speed``;
  ``--speed max``: no waiting);
* :class:`ReplayChecker`, an observer: keeps what comes back and ends the run
  once the input is over and as many messages as were recorded have arrived,
  or nothing arrived for ``--wait`` seconds (a server that sends less), or the
  server closed;
* :class:`ReplayFrontEnd`: stderr notices, and ``--json`` events on stdout.

Then :func:`compare` decides: exact (text as text, binary as bytes) by default;
with ``--ignore json:PATH`` a text message that is JSON compares as a JSON value
with those fields removed; ``--unordered`` compares as multisets (servers that
interleave). The first divergences are shown escaped and bounded, and the run
fails with :class:`~wstool.errors.ExpectationNotMet` (exit 8).

``--ignore`` paths are a small, jq-compatible subset written here rather than
a dependency: ``.a.b``, ``.items[].id`` (every element), ``.items[0]``,
``."odd key"`` — what ``del(PATH)`` accepts in jq for those forms. A query
language is not needed to *drop* a field, and the parser is a dozen lines,
tested in tests/test_replay.py.
"""

from __future__ import annotations

import asyncio
import collections
import difflib
import json
import time
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

from wstool.client.recording import Recording
from wstool.client.run import ClientFrontEnd, ClientRun, InputSource, RunObserver
from wstool.config import ClientRunConfig, ConnectConfig, OutputConfig
from wstool.errors import (
    ClosedAbnormally,
    ExitStatus,
    ExpectationNotMet,
    UsageError,
    WstoolError,
)
from wstool.events import Closed, Event, Message, Notice, Opened
from wstool.term.env import Environment
from wstool.term.jsonl import json_line_bytes
from wstool.term.render import close_line, escape, event_json, opened_line

# A path segment: a key (str), an index (int), or None for "[]" (every element).
PathSegment = str | int | None
IgnorePath = tuple[PathSegment, ...]

# How many divergences the diff shows, and how much of each message.
MAX_DIFF_LINES = 20
MAX_SHOWN_CHARS = 200
DEFAULT_WAIT_S = 5.0


class ReplayConfig(NamedTuple):
    """``replay``'s own options (the connection's are a ``ConnectConfig``)."""

    speed: float | None = 1.0  # None: --speed max, no waiting
    ignore: tuple[IgnorePath, ...] = ()
    ignore_text: tuple[str, ...] = ()  # as given, for messages
    unordered: bool = False
    wait_s: float = DEFAULT_WAIT_S


# --ignore paths


def parse_ignore(text: str) -> IgnorePath:
    """``json:.a.b[].c`` -> ``("a", "b", None, "c")``; UsageError names what is wrong."""
    usage = f"invalid --ignore '{text}': expected json:PATH, e.g. json:.ts or json:.items[].id"
    prefix, sep, path = text.partition(":")
    if not sep or prefix != "json" or not path.startswith("."):
        raise UsageError(usage)
    segments: list[PathSegment] = []
    i, n = 0, len(path)
    while i < n:
        c = path[i]
        if c == "." and i + 1 < n and path[i + 1] == '"':
            end = path.find('"', i + 2)
            if end < 0:
                raise UsageError(f"{usage} (unclosed quote)")
            segments.append(path[i + 2 : end])
            i = end + 1
        elif c == ".":
            j = i + 1
            while j < n and (path[j].isalnum() or path[j] in "_-"):
                j += 1
            if j == i + 1:
                if j < n and path[j] == "[":
                    i = j  # ".[0]" is jq for "[0]"
                    continue
                raise UsageError(f"{usage} (empty key at '{path[i:]}')")
            segments.append(path[i + 1 : j])
            i = j
        elif c == "[":
            end = path.find("]", i)
            if end < 0:
                raise UsageError(f"{usage} (unclosed [)")
            inner = path[i + 1 : end].strip()
            if inner == "":
                segments.append(None)
            elif inner.lstrip("-").isdigit():
                segments.append(int(inner))
            elif len(inner) >= 2 and inner[0] == inner[-1] == '"':
                segments.append(inner[1:-1])
            else:
                raise UsageError(f"{usage} (not an index: [{inner}])")
            i = end + 1
        else:
            raise UsageError(f"{usage} (unexpected '{c}')")
    if not segments:
        raise UsageError(f"{usage} (the whole message: nothing would be compared)")
    return tuple(segments)


def delete_path(value: Any, path: IgnorePath) -> None:
    """Remove PATH from VALUE in place; a part that is not there is no error (jq's del)."""
    head, rest = path[0], path[1:]
    if head is None:
        children = list(value.values()) if isinstance(value, dict) else (
            value if isinstance(value, list) else [])
        if not rest:
            if isinstance(value, dict | list):
                value.clear()
            return
        for child in children:
            delete_path(child, rest)
        return
    if isinstance(head, str):
        if not isinstance(value, dict) or head not in value:
            return
        if rest:
            delete_path(value[head], rest)
        else:
            del value[head]
        return
    if not isinstance(value, list) or not -len(value) <= head < len(value):
        return
    if rest:
        delete_path(value[head], rest)
    else:
        del value[head]


# Comparison


class Compared(NamedTuple):
    """A message as it is compared (KEY) and shown (SHOWN)."""

    key: tuple[str, str | bytes]
    shown: str


def normalise(data: str | bytes, ignore: Sequence[IgnorePath]) -> Compared:
    if isinstance(data, bytes):
        shown = data[:MAX_SHOWN_CHARS // 2].hex()
        more = f"… ({len(data)} B)" if len(data) > MAX_SHOWN_CHARS // 2 else ""
        return Compared(("binary", data), f"binary {shown}{more}")
    if ignore:
        try:
            value = json.loads(data)
        except ValueError:
            value = None
        else:
            for path in ignore:
                delete_path(value, path)
            text = json.dumps(value, ensure_ascii=False, sort_keys=True,
                              separators=(",", ":"))
            return Compared(("json", text), _bounded(text))
    return Compared(("text", data), _bounded(data))


def _bounded(text: str) -> str:
    if len(text) > MAX_SHOWN_CHARS:
        return escape(text[:MAX_SHOWN_CHARS], keep_tab=False) + f"… ({len(text)} chars)"
    return escape(text, keep_tab=False)


class Verdict(NamedTuple):
    matched: bool
    expected: int
    received: int
    lines: tuple[str, ...]  # the diff (empty when matched)


def compare(expected: Sequence[str | bytes], received: Sequence[str | bytes],
            config: ReplayConfig) -> Verdict:
    want = [normalise(d, config.ignore) for d in expected]
    got = [normalise(d, config.ignore) for d in received]
    if config.unordered:
        lines = _multiset_diff(want, got)
    elif [w.key for w in want] == [g.key for g in got]:
        lines = []
    else:
        lines = _ordered_diff(want, got)
    return Verdict(not lines, len(want), len(got), tuple(lines[:MAX_DIFF_LINES]) + (
        (f"… {len(lines) - MAX_DIFF_LINES} more lines",) if len(lines) > MAX_DIFF_LINES
        else ()))


def _ordered_diff(want: list[Compared], got: list[Compared]) -> list[str]:
    """Unified-diff hunks over the message sequences: '-' recorded, '+' received now."""
    matcher = difflib.SequenceMatcher(a=[w.key for w in want], b=[g.key for g in got],
                                      autojunk=False)
    lines: list[str] = []
    for group in matcher.get_grouped_opcodes(1):
        first, last = group[0], group[-1]
        lines.append(f"@@ recorded #{first[1] + 1}-{last[2]}, received "
                     f"#{first[3] + 1}-{last[4]} @@")
        for tag, i1, i2, j1, j2 in group:
            if tag == "equal":
                lines.extend(f"  {w.shown}" for w in want[i1:i2])
                continue
            lines.extend(f"- {w.shown}" for w in want[i1:i2])
            lines.extend(f"+ {g.shown}" for g in got[j1:j2])
    return lines


def _multiset_diff(want: list[Compared], got: list[Compared]) -> list[str]:
    missing = collections.Counter(w.key for w in want)
    missing.subtract(g.key for g in got)
    shown = {c.key: c.shown for c in (*want, *got)}
    lines = [f"- {shown[k]}" + (f"  (x{n})" if n > 1 else "")
             for k, n in missing.items() if n > 0]
    lines += [f"+ {shown[k]}" + (f"  (x{-n})" if n < -1 else "")
              for k, n in missing.items() if n < 0]
    return lines


# The run's parts


class ReplayChecker(RunObserver):
    """Keeps what the server sends and ends the run when the replay is over."""

    def __init__(self, expected_count: int, wait_s: float, *,
                 server_closes: bool = False) -> None:
        self.expected_count = expected_count
        self.wait_s = wait_s
        # The recording ends with the server closing: wait for that close too.
        self.server_closes = server_closes
        self.received: list[str | bytes] = []
        self.closed: Closed | None = None
        self.run: ClientRun | None = None
        self.input_done = False
        self.stopped = False  # what arrives after the verdict's moment is not compared
        self._timer: asyncio.TimerHandle | None = None

    def end_of_input(self) -> None:
        """Every recorded message is sent: from now on, wait for the rest."""
        self.input_done = True
        self._check()

    def on_message(self, data: str | bytes) -> None:
        if self.stopped:
            return
        self.received.append(data)
        if self.input_done:
            self._check()

    def on_event(self, event: Event) -> None:
        if isinstance(event, Closed):
            self.closed = event
            self._cancel_timer()

    def _check(self) -> None:
        self._cancel_timer()
        if len(self.received) >= self.expected_count and not self.server_closes:
            self._stop()
        else:
            self._timer = asyncio.get_running_loop().call_later(self.wait_s, self._stop)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _stop(self) -> None:
        self._timer = None
        self.stopped = True
        if self.run is not None:
            self.run.stop()


class ReplayInput(InputSource):
    """The recorded outgoing messages, each at its recorded time over --speed."""

    def __init__(self, recording: Recording, speed: float | None,
                 checker: ReplayChecker) -> None:
        self.sent = list(recording.sent)
        self.speed = speed
        self.checker = checker
        self.next = 0
        self.started_at: float | None = None

    async def read_into(self, out: collections.deque[str | bytes]) -> bool:
        if self.started_at is None:
            self.started_at = time.monotonic()
        steps = self.sent
        if self.next >= len(steps):
            self.checker.end_of_input()
            return False
        if self.speed is not None:
            due = self.started_at + steps[self.next].at_s / self.speed
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        now = time.monotonic()
        # Everything due by now goes in one batch (a recorded burst stays one).
        while self.next < len(steps) and (
            self.speed is None or self.started_at + steps[self.next].at_s / self.speed <= now
        ):
            out.append(steps[self.next].data)
            self.next += 1
        return True


class ReplayFrontEnd(ClientFrontEnd):
    """Notices and close lines on stderr; with --json, the events on stdout."""

    def __init__(self, env: Environment, output_config: OutputConfig) -> None:
        self.env = env
        self.out_cfg = output_config
        self.report_sent = output_config.json
        self.report_phases = False

    def write_json(self, event: Event) -> None:
        obj = event_json(event)
        if obj is not None:
            self.env.stdout.write(json_line_bytes(obj))

    def on_event(self, event: Event) -> None:
        if self.out_cfg.json:
            self.write_json(event)
        if isinstance(event, Notice):
            if not self.out_cfg.quiet or event.text.startswith("warning:"):
                self.env.write_stderr_line(f"wstool: {event.text}")
        elif isinstance(event, Opened) and self.out_cfg.verbose:
            self.env.write_stderr_line(f"wstool: {opened_line(event)}")
        elif isinstance(event, Closed) and self.out_cfg.verbose:
            self.env.write_stderr_line(f"wstool: {close_line(event)}")

    def on_message(self, data: str | bytes) -> None:
        if self.out_cfg.json:
            self.write_json(Message("received", data, ts=time.monotonic()))

    def on_batch(self) -> None:
        if self.out_cfg.json:
            self.env.stdout.flush()


def _closed_like(closed: Closed | None, recording: Recording) -> bool:
    return (closed is not None and closed.initiated_by == "server"
            and closed.code == recording.close_code)


def _closed_as_recorded(error: WstoolError, recording: Recording) -> bool:
    """The server closed with the code it closed with in the recording: not a failure."""
    return (isinstance(error, ClosedAbnormally)
            and recording.close_initiated_by == "server"
            and error.close_code == recording.close_code)


async def run_replay(
    env: Environment,
    recording: Recording,
    connect_config: ConnectConfig,
    replay_config: ReplayConfig,
    output_config: OutputConfig,
    *,
    notices: Iterable[str] = (),
) -> ExitStatus:
    """``wstool replay``: the entry point ``cli/app.py`` calls."""
    if not output_config.quiet:
        for line in notices:
            env.write_stderr_line(f"wstool: {line}")
    expected = [s.data for s in recording.received]
    checker = ReplayChecker(len(expected), replay_config.wait_s,
                            server_closes=recording.close_initiated_by == "server")
    run = ClientRun(
        connect_config,
        # No -w: the checker ends the run (wait_s None turns off "every message sent
        # has had a reply", which is not a replay's rule).
        ClientRunConfig(wait_s=None),
        input_source=ReplayInput(recording, replay_config.speed, checker),
        observers=(checker,),
        trace=output_config.trace,
        interrupt_on_sigint=True,
    )
    checker.run = run
    run_error: WstoolError | None = None
    try:
        status = await run.run(ReplayFrontEnd(env, output_config))
    except WstoolError as exc:
        if run.session is None or run.session.opened_at is None:
            raise  # never connected: nothing was replayed
        run_error = exc
        status = exc.exit_status
    if status == ExitStatus.INTERRUPTED:
        return status
    verdict = compare(expected, checker.received, replay_config)
    if checker.server_closes and not _closed_like(checker.closed, recording):
        got = (f"closed by the server: {checker.closed.code}" if checker.closed is not None
               and checker.closed.initiated_by == "server" else "no close from the server")
        verdict = verdict._replace(matched=False, lines=(
            *verdict.lines, f"- closed by the server: {recording.close_code}", f"+ {got}"))
    _report(env, recording, replay_config, output_config, verdict, checker)
    if not verdict.matched:
        raise ExpectationNotMet(
            f"replay of {recording.path}: received messages differ from the recording "
            f"({verdict.received} received, {verdict.expected} recorded"
            + (f"; ignoring {', '.join(replay_config.ignore_text)}"
               if replay_config.ignore_text else "") + ")")
    if run_error is not None and not _closed_as_recorded(run_error, recording):
        raise run_error
    return ExitStatus.OK


def _report(env: Environment, recording: Recording, config: ReplayConfig,
            output_config: OutputConfig, verdict: Verdict, checker: ReplayChecker) -> None:
    sent = len(recording.sent)
    if output_config.json:
        env.stdout.write(json_line_bytes({
            "event": "replay", "matched": verdict.matched, "sent": sent,
            "recorded": verdict.expected, "received": verdict.received,
            "diff": list(verdict.lines),
        }))
        env.stdout.flush()
        return
    if verdict.matched:
        if not output_config.quiet:
            env.write_stderr_line(
                f"wstool: replay matched: {sent} sent, {verdict.received} received "
                "as recorded")
        return
    out = [f"replay of {escape(recording.path)}: {sent} sent; {verdict.expected} recorded, "
           f"{verdict.received} received "
           + ("(compared unordered)" if config.unordered else "") ]
    if checker.closed is not None and checker.closed.initiated_by == "server":
        out.append(f"the server closed: {close_line(checker.closed)}")
    out.append("--- recorded")
    out.append("+++ received")
    out.extend(verdict.lines)
    env.stdout.write("".join(line.rstrip() + "\n" for line in out).encode())
    env.stdout.flush()
