"""One client run: the policy of ``connect``, shared by pipe mode and the REPL (issue 9).

A *run* is one or more sessions (``session.Session``) against one URL. This
module decides how it goes, and nothing else does:

* open the session, and send the ``-x`` messages first, on every (re)connect;
* ``-n N``: count received messages across reconnects, end the run after N
  with a clean close (1000), ignore what arrives past N;
* ``--echo``: the session's strict echo engine mirrors every received message
  (``Session.echo_engine``); a front-end that wants them (the REPL) is shown each
  echo as a sent ``Message``;
* ``--reconnect`` / ``--reconnect-limit``: :class:`Reconnects` (backoff with
  jitter, attempts counted in a row); what is worth a retry is
  :func:`wstool.errors.is_retryable`;
* with an input source (pipe mode's stdin), the end-of-input rules: after EOF
  keep receiving until the server closes, ``-n`` is reached, every message sent
  has had a reply (not with ``--echo``, whose replies are ours, nor with
  ``-w -1``), or nothing arrived for ``--wait`` seconds; a bad input line ends
  the input like EOF (the lines before it still go, their replies still come),
  then the run fails with it;
* "every message sent has had a reply" counts messages, not replies: a greeting
  counts too, so the run keeps reading for a short grace after the count is
  reached (:func:`reply_grace_s`) and the message behind it is not cut off
  (issue 10); closing because ``-w`` ran out with fewer messages received than
  sent says so in one warning line (exit status unchanged: 0);
* ``--max-time``: a total deadline for the run (curl's, connect included): then
  close 1000 without waiting for the answer, fail with exit 7;
* the totals across reconnects (:meth:`ClientRun.totals`) that the REPL's status
  bar and ``/stats`` show;
* signals when asked. SIGINT (pipe mode): Ctrl-C ends the run at once in every
  phase (DNS, TCP, TLS, handshake, open, close wait): an open connection gets
  its close frame (1000) but no wait for the answer; one ``interrupted`` line;
  exit 130. SIGTERM (pipe mode and the REPL, whose Ctrl-C is a key, not a
  signal): close with 1001 (going away) as the servers do, waiting at most
  ``--close-timeout``; exit 143; a second SIGTERM stops at once.

The seams
---------

A **front-end** (:class:`ClientFrontEnd`) renders; it holds no policy:

``on_event(event)``
    every event but received messages: opened, closed, notices, pings/pongs,
    frames (``--trace``), reconnecting, and sent messages when ``report_sent``;
``on_message(data)``
    a received message (``str``: text, ``bytes``: binary), past the ``-n``
    filter. This is pipe mode's hot path: no event record, no ``await``; the
    session calls it directly when the run has nothing to do per message (no
    ``-n``, no observer, input not at its end), else through the run's
    ``_on_message``. Keep it cheap;
``on_text_batch(payloads)`` / ``text_batches``
    when the front-end sets ``text_batches`` (pipe mode writing plain lines), the
    received text messages of one chunk as a list of UTF-8-checked bytes, in
    order, instead of one ``on_message`` each (issue 14: the pipe's hot path);
    not used with observers or --echo shown as sent;
``on_batch()``
    after each chunk of received data (flush output here), and once at the end
    of the run;
``on_open_failed(handshake)``
    the opening handshake was rejected (``-v`` shows it);
``report_sent`` / ``echo_as_sent``
    class attributes: whether the session reports sent messages as events
    (costs a record per message), and whether ``--echo`` copies are shown as sent;
``pace_reads``
    whether the session paces its reads (a fast stream of small reads is read at
    most once a millisecond; pipe mode, issue 14).

An **input source** (:class:`InputSource`) is what the run *pulls* messages
from (pipe mode: :class:`wstool.client.pipe.StdinInput`); with none, a
front-end *pushes* through :meth:`ClientRun.send` / ``ping`` / ``pong`` /
``close`` (the REPL), and the end-of-input rules do not apply.

**Observers** (:class:`RunObserver`, the ``observers=`` argument) see what the
front-end sees, after it, and may end the run with :meth:`ClientRun.stop`
(``error=`` sets the exit status). Later capabilities plug in here without
touching ``pipe.py`` or ``repl.py``: ``--expect`` is an observer that stops the
run with an "expectation not met" error; ``--capture`` an observer that writes
what it sees; replay an input source that yields recorded messages on a
schedule; ``bench`` a front-end with no output and an input source that
generates load. The CLI edge (``cli/app.py``) composes the run from these parts.

Start-up matters: this module is on the connect path, so it imports nothing
heavier than ``session.py`` does already (no dataclasses, no json), and its
records are ``NamedTuple`` classes (see ``wstool/config.py``).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import random
import signal
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NamedTuple

from wstool.client.session import Session, SessionClosed
from wstool.config import DEFAULT_MAX_SIZE_BYTES, ClientRunConfig, ConnectConfig
from wstool.errors import ExitStatus, TimedOut, WstoolError, is_retryable
from wstool.events import Closed, Event, Handshake, Message, Notice, Opened, Reconnecting
from wstool.term.signals import handle_signals

# End of input, "received >= sent" (issue 10): keep reading for twice the time the
# replies took (last send -> count reached), within these bounds. The replies'
# time measures what matters, the server's pace: its network part is covered
# anyway, as what the server sent before our close frame reached it still
# arrives ahead of its own close frame. A one-shot on loopback takes ~0.3 ms.
GRACE_MIN_S = 0.001
GRACE_MAX_S = 0.25


def replies_took_s(reached_at: float, last_sent_at: float,
                   reply_gap_s: float | None) -> float:
    """What the replies took (see ``ClientRun._start_grace``): since the last send, or
    the gap between the last two replies when that is shorter."""
    took_s = max(reached_at - last_sent_at, 0.0)
    return took_s if reply_gap_s is None else min(took_s, reply_gap_s)


def reply_grace_s(replies_took_s: float, wait_s: float) -> float:
    """How long to keep reading once every message sent has had a reply."""
    return min(max(2 * replies_took_s, GRACE_MIN_S), GRACE_MAX_S, wait_s / 4)


# The states a run goes through, as the REPL's status bar shows them.
CONNECTING = "connecting"
OPEN = "open"
CLOSING = "closing"
CLOSED = "closed"
RECONNECTING = "reconnecting"


def backoff_delays(
    initial_s: float = 0.5, factor: float = 2.0, max_s: float = 30.0
) -> Iterator[float]:
    """Exponential backoff, capped, with full jitter (AWS architecture blog)."""
    delay = initial_s
    while True:
        yield random.uniform(delay / 2, delay)
        delay = min(delay * factor, max_s)


class Reconnects:
    """The ``--reconnect`` schedule of a run.

    Delays follow :func:`backoff_delays`. ``limit`` (``--reconnect-limit``; 0: none)
    caps the attempts *in a row*: a connection that opens starts the count and the
    backoff over, so a client that runs for days survives any number of server
    restarts but gives up on a server that stays down. Whether an error is worth a
    retry at all is :func:`wstool.errors.is_retryable`.
    """

    def __init__(self, max_delay_s: float = 30.0, limit: int = 0) -> None:
        self.max_delay_s = max_delay_s
        self.limit = limit
        self.in_a_row = 0
        self._delays = backoff_delays(max_s=max_delay_s)

    def opened(self) -> None:
        """A connection opened: the next failure starts from the first delay."""
        self.in_a_row = 0
        self._delays = backoff_delays(max_s=self.max_delay_s)

    def next_delay(self) -> float | None:
        """Seconds to wait before the next attempt, or None: the limit is reached."""
        if self.limit and self.in_a_row >= self.limit:
            return None
        self.in_a_row += 1
        return next(self._delays)

    def giving_up(self) -> str:
        return (f"giving up after {self.in_a_row} reconnect attempt"
                f"{'' if self.in_a_row == 1 else 's'} in a row (--reconnect-limit)")


class RunTotals(NamedTuple):
    """Counters of a whole run, every session so far included (payload bytes)."""

    messages_sent: int
    messages_received: int
    bytes_sent: int
    bytes_received: int
    last_rtt_s: float | None
    reconnects: int  # reconnect attempts announced (Reconnecting events)
    started_at: float  # time.monotonic() when the run was created


class RunObserver:
    """Sees a run's events; override what you need (the defaults do nothing)."""

    # Have the session report sent messages as Message events even when the
    # front-end does not ask (connect --record writes them).
    report_sent: bool = False

    def attach(self, run: ClientRun) -> None:
        """The run this observer watches (called once, when the run is built)."""

    def on_event(self, event: Event) -> None:
        """Any event but a received message (see the module doc)."""

    def on_message(self, data: str | bytes) -> None:
        """A received message within ``-n`` (the hot path: keep it cheap)."""

    def on_batch(self) -> None:
        """A chunk of received data is processed; also once when the run ends."""


class ClientFrontEnd(RunObserver):
    """What renders a run (pipe mode, the REPL); holds no connection policy."""

    # Have the session report every sent message as a Message event (a record
    # per message: pipe mode asks only with --json).
    report_sent: bool = False
    # Have the session report each step of setting up the connection (-v's
    # "* connected to ..." lines, ConnectPhase events).
    report_phases: bool = False
    # --echo: show each mirrored message as a sent Message (before the received one).
    echo_as_sent: bool = False
    # -P/--show-ping-pong: have the session report the pings we send and the
    # automatic pongs too (Ping/Pong events with direction "sent").
    report_pings: bool = False

    # Have the session pace its reads (session.py, _Connection._pace): when small
    # reads come fast, read at most once a millisecond (a stream's output, where
    # that delay is not seen; issue 14). Pipe mode asks.
    pace_reads: bool = False

    # Whether on_text_batch() is worth calling (the run's receive fast path hands
    # text messages over a chunk at a time then); the default renders one by one.
    text_batches: bool = False

    def on_text_batch(self, payloads: list[bytes]) -> None:
        """Received text messages as UTF-8 bytes (checked), in order: the hot path
        when ``text_batches`` is true and the run has no per-message work."""
        for payload in payloads:
            self.on_message(payload.decode())

    def on_open_failed(self, handshake: Handshake) -> None:
        """The opening handshake failed after a response came (``-v`` shows it)."""

    def on_end(self, error: WstoolError | None) -> None:
        """The run is over; ERROR is what it exits with (raised after this), if any.
        A front-end that has said what ERROR says sets ``error.said`` (issue 13: the
        REPL's close line of a server's close), so cli/app.py does not say it again."""


class InputSource:
    """Messages the run pulls and sends (pipe mode: stdin), with backpressure:
    the next read starts only once what was read is written and drained."""

    async def read_into(self, out: collections.deque[str | bytes]) -> bool:
        """Append the next messages to OUT; False at the end of input.

        A ``WstoolError`` ends the input like EOF after the messages appended
        before it are sent; the run then fails with it."""
        raise NotImplementedError


class NotOpen(Exception):
    """``send``/``ping``/``pong`` while no connection is open; one line for the user."""


class QueueFull(NotOpen):
    """``send_or_queue`` past the queue's bounds (QUEUE_MAX_MESSAGES, QUEUE_MAX_BYTES)."""


# The REPL's lines typed while --reconnect brings the connection back (issue 13)
# wait in a queue and go out in order once it is open again, after -x. Bounded:
# past either limit a line is refused with QueueFull (it says so), never dropped.
QUEUE_MAX_MESSAGES = 1000
QUEUE_MAX_BYTES = DEFAULT_MAX_SIZE_BYTES  # payload bytes: 16 MiB, --max-size's default


class ClientRun:
    """One client run (see the module doc): build it, then ``await run(front_end)``."""

    def __init__(
        self,
        connect_config: ConnectConfig,
        run_config: ClientRunConfig,
        *,
        input_source: InputSource | None = None,
        observers: Sequence[RunObserver] = (),
        trace: bool = False,
        interrupt_on_sigint: bool = False,
        close_on_sigterm: bool = False,
        close_on_sighup: bool = False,
    ) -> None:
        self.connect_config = connect_config
        self.config = run_config
        self.input_source = input_source
        self.observers = tuple(observers)
        self.trace = trace
        self.interrupt_on_sigint = interrupt_on_sigint
        self.close_on_sigterm = close_on_sigterm
        self.close_on_sighup = close_on_sighup
        self.session: Session | None = None
        self.state = CONNECTING
        self.started_at = time.monotonic()
        self.reconnects = 0  # reconnect attempts announced in the whole run
        self.reconnect_attempt = 0  # the current one's number in a row (Reconnecting)
        self.received_total = 0  # within -n, across reconnects (counted with -n only)
        self.interrupted = False
        self.terminated = False  # SIGTERM (or SIGHUP with close_on_sighup)
        self.hung_up = False  # it was SIGHUP
        self.timed_out = False  # --max-time
        # We closed TCP without waiting for the server's close frame (Ctrl-C,
        # --max-time): the Closed event's code is only the one we sent.
        self.cut_short = False
        self.input_eof = False
        # "Every message sent has had a reply" ends the run after EOF, except in
        # --echo mode (replies are ours) and with --wait -1 (the user asked to
        # wait for the server to close).
        self._replies_end_input = (
            run_config.replies_end_input and not run_config.echo and run_config.wait_s is not None
        )
        # Read from the input source, not yet sent: survives a reconnect.
        self._pending: collections.deque[str | bytes] = collections.deque()
        # Pushed by a front-end while the connection is down (send_or_queue).
        self._queued: collections.deque[str | bytes] = collections.deque()
        self._queued_bytes = 0
        # Set when the run is to end: -n reached, all replies in, stop(), close(),
        # Ctrl-C. A session in progress then closes with 1000 (or close()'s code).
        self._ending = asyncio.Event()
        # When the latest message came, after EOF (_after_input's --wait).
        self._last_activity_at = 0.0
        self._stop_error: WstoolError | None = None
        self._close_code = 1000  # 1001 after SIGTERM
        self._grace: asyncio.TimerHandle | None = None
        self._last_sent_at = 0.0  # time.monotonic() of the last send from the input
        # When the latest message received after the end of input came (the grace).
        self._received_after_eof_at: float | None = None
        self._input_ended_at = 0.0
        self._discard_outcome = False
        # Totals of the sessions before the current one.
        self._past_sent = self._past_received = 0
        self._past_bytes_sent = self._past_bytes_received = 0
        self._past_rtts_s: list[float] = []
        self._front: ClientFrontEnd = ClientFrontEnd()
        self._show_echo = False
        for observer in self.observers:
            observer.attach(self)

    # What front-ends and observers call

    def report(self, event: Event) -> None:
        """An observer's own event (--expect's results): to the front-end, then observers."""
        self._on_event(event)

    def stop(self, *, error: WstoolError | None = None, discard_outcome: bool = False) -> None:
        """End the run: close the session with 1000, no reconnect.

        ERROR (an observer's verdict) becomes the run's error; DISCARD_OUTCOME
        ignores how the connection ended (pipe mode once its stdout is gone)."""
        if error is not None and self._stop_error is None:
            self._stop_error = error
        self._discard_outcome = self._discard_outcome or discard_outcome
        self._ending.set()

    def _open_session(self) -> Session:
        session = self.session
        if session is None or not session.is_open:
            raise NotOpen(f"the connection is {self.state}")
        return session

    async def send(self, data: str | bytes) -> None:
        """Send one message now (str: text, bytes: binary); raises NotOpen."""
        session = self._open_session()
        try:
            session.send(data)
        except SessionClosed:
            raise NotOpen("the connection is closed") from None
        session.flush()
        await session.drain()

    @property
    def queued(self) -> int:
        """How many messages wait for the connection (send_or_queue)."""
        return len(self._queued)

    async def send_or_queue(self, data: str | bytes) -> int:
        """Send now (returns 0) or, while ``--reconnect`` brings the connection back,
        queue DATA to go in order once it is open: returns how many wait now.

        Raises NotOpen when it can do neither (no --reconnect, the run is ending),
        QueueFull past QUEUE_MAX_MESSAGES or QUEUE_MAX_BYTES (DATA not queued)."""
        if not self._queued:
            session = self.session
            if session is not None and session.is_open:
                await self.send(data)
                return 0
        if not self.config.reconnect or self._ending.is_set():
            raise NotOpen(f"the connection is {self.state}")
        size = len(data.encode()) if isinstance(data, str) else len(data)
        if (len(self._queued) >= QUEUE_MAX_MESSAGES
                or self._queued_bytes + size > QUEUE_MAX_BYTES):
            raise QueueFull(
                f"the queue is full ({len(self._queued)} messages, {self._queued_bytes} "
                f"bytes wait for the connection; it holds {QUEUE_MAX_MESSAGES} messages "
                f"and {QUEUE_MAX_BYTES // (1024 * 1024)} MiB at most; /discard drops them)")
        self._queued.append(data)
        self._queued_bytes += size
        return len(self._queued)

    def discard_queued(self) -> int:
        """Drop the queued messages (not sent): how many there were."""
        count = len(self._queued)
        self._queued.clear()
        self._queued_bytes = 0
        return count

    def _send_queued(self, session: Session) -> None:
        """The connection is open again: the queued messages go, in order."""
        count = len(self._queued)
        self._on_event(Notice(f"sending the {count} queued message{'' if count == 1 else 's'}",
                              ts=time.monotonic()))
        try:
            session.send_many(list(self._queued))  # all, or none if not open any more
        except SessionClosed:
            return  # still queued: the next connection sends them
        session.flush()
        self._queued.clear()
        self._queued_bytes = 0

    async def ping(self, data: bytes | None) -> float:
        """Send a ping and wait for its pong: the round-trip time; raises NotOpen."""
        session = self._open_session()
        try:
            return await session.ping(data)
        except SessionClosed:
            raise NotOpen("the connection is closed") from None
        except Exception as exc:  # closed while waiting, or a duplicate payload
            raise NotOpen(str(exc) or type(exc).__name__) from None

    def pong(self, data: bytes) -> None:
        session = self._open_session()
        try:
            session.pong(data)
        except SessionClosed:
            raise NotOpen("the connection is closed") from None

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close for good with CODE and REASON: no reconnect; ``run()`` then returns."""
        self._ending.set()
        session = self.session
        if session is not None and session.is_open:
            self.state = CLOSING
            await session.close(code, reason)

    def totals(self) -> RunTotals:
        """Cheap enough for every redraw of a status bar."""
        session = self.session
        rtts = session.rtts_s if session is not None and session.rtts_s else self._past_rtts_s
        return RunTotals(
            messages_sent=self._past_sent + (session.messages_sent if session else 0),
            messages_received=self._past_received
            + (session.messages_received if session else 0),
            bytes_sent=self._past_bytes_sent + (session.bytes_sent if session else 0),
            bytes_received=self._past_bytes_received
            + (session.bytes_received if session else 0),
            last_rtt_s=rtts[-1] if rtts else None,
            reconnects=self.reconnects,
            started_at=self.started_at,
        )

    def rtts_s(self) -> list[float]:
        """Every ping round-trip time of the run, oldest first."""
        session = self.session
        return self._past_rtts_s + (list(session.rtts_s) if session is not None else [])

    # The run

    async def run(self, front_end: ClientFrontEnd) -> ExitStatus:
        """Connect (and reconnect) until the run is over; raise its WstoolError, if any."""
        self._front = front_end
        self._show_echo = front_end.echo_as_sent and self.config.echo
        # The client's only signal set-up (term/signals.py is the one way to install one).
        signals = contextlib.ExitStack()
        handlers: dict[signal.Signals, Callable[[], object]] = {}
        if self.interrupt_on_sigint:
            handlers[signal.SIGINT] = self._interrupt
        if self.close_on_sigterm:
            handlers[signal.SIGTERM] = self._terminate
        # connect --exec: the terminal closed. The process runs in a session of its
        # own and gets no SIGHUP; wstool dying of it would leave it running. Not under
        # nohup, whose SIG_IGN says the user wants wstool to outlive the terminal.
        if self.close_on_sighup and signal.getsignal(signal.SIGHUP) is not signal.SIG_IGN:
            handlers[signal.SIGHUP] = self._hang_up
        if handlers:
            signals.enter_context(handle_signals(handlers))
        cfg = self.config
        if cfg.max_time_s is not None:
            deadline = asyncio.get_running_loop().call_later(cfg.max_time_s, self._time_out)
            signals.callback(deadline.cancel)
        reconnects = Reconnects(cfg.reconnect_max_delay_s, cfg.reconnect_limit)
        error: WstoolError | None = None
        try:
            while True:
                try:
                    error = await self._run_session()
                except WstoolError as exc:
                    if self._ended_by_us():
                        break  # e.g. a handshake the user's Ctrl-C cut short
                    if not cfg.reconnect or not is_retryable(exc):
                        raise
                    error = exc
                    if self.reconnects and self._ending.is_set():
                        error = None  # closed (/quit, Ctrl-D) during a reconnect attempt
                        break
                if self._ended_by_us():
                    break
                if (
                    error is None
                    or not cfg.reconnect
                    or not is_retryable(error)
                    or self._ending.is_set()  # -n reached, stop(), close()
                ):
                    break
                if self.session is not None and self.session.opened_at is not None:
                    reconnects.opened()  # it worked for a while: start over
                delay = reconnects.next_delay()
                if delay is None:
                    self._on_event(Notice(reconnects.giving_up(), ts=time.monotonic()))
                    break
                self.state = RECONNECTING
                self.reconnects += 1
                # The attempt number counts in a row, as --reconnect-limit does: it starts
                # at 1 again after a connection opened (issue 10; README).
                self.reconnect_attempt = reconnects.in_a_row
                self._on_event(Reconnecting(reconnects.in_a_row, delay, str(error),
                                            ts=time.monotonic()))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._ending.wait(), delay)  # Ctrl-C, /quit
                if self._ended_by_us():
                    break
                if self._ending.is_set():
                    error = None  # the user ended it while we waited: their choice
                    break
        finally:
            signals.close()
            if self._grace is not None:
                self._grace.cancel()
            self.state = CLOSED
            front_end.on_batch()
        if self._queued:
            # The run is over with messages still queued (reconnecting gave up, /quit,
            # a signal): they are dropped, and the user is told how many.
            count = len(self._queued)
            self._on_event(Notice(
                f"warning: {count} queued message{'' if count == 1 else 's'} not sent: "
                "the connection did not come back before the end", ts=time.monotonic()))
        final: WstoolError | None = None
        try:
            return self._final_status(error)
        except WstoolError as exc:
            final = exc
            raise
        finally:
            front_end.on_end(final)

    def _final_status(self, error: WstoolError | None) -> ExitStatus:
        """How the run ended: its status, or the error to exit with (raised)."""
        cfg = self.config
        if self.interrupted:
            return ExitStatus.INTERRUPTED
        if self.timed_out:
            raise TimedOut(
                f"--max-time {cfg.max_time_s:g}s ran out (the deadline of the whole run, "
                "connect included)"
                + ("; closed with 1000, not waiting for the answer" if self.cut_short else ""))
        if self.terminated:
            if error is not None:  # e.g. no answer to our close 1001 in --close-timeout
                self._on_event(Notice(f"warning: {error}", ts=time.monotonic()))
            return ExitStatus.HUNG_UP if self.hung_up else ExitStatus.TERMINATED
        if self._stop_error is not None:
            raise self._stop_error
        if error is not None:
            raise error
        return ExitStatus.OK

    def _ended_by_us(self) -> bool:
        """A signal or --max-time ended the run: how the connection went is moot."""
        return self.interrupted or self.terminated or self.timed_out

    def _cut_short(self) -> None:
        """End the connection now: an open one gets our close frame, no wait."""
        self._ending.set()  # a connection still opening is cancelled (_run_session)
        session = self.session
        if session is not None and session.opened_at is not None and session.closed is None:
            self.cut_short = True
            session.close_now(self._close_code)

    def _interrupt(self) -> None:
        """SIGINT: stop at once, whatever the phase (issue 10)."""
        if not self.interrupted:
            self.interrupted = True
            self._on_event(Notice("interrupted", ts=time.monotonic()))
        self._cut_short()

    def _hang_up(self) -> None:
        """SIGHUP (``close_on_sighup``): as SIGTERM, exit 129."""
        if not self.terminated:
            self.hung_up = True
        self._terminate("SIGHUP")

    def _terminate(self, name: str = "SIGTERM") -> None:
        """SIGTERM: close with 1001 (going away), as the servers do; a second one,
        or one during the close wait, stops at once."""
        if self.terminated:
            self._cut_short()
            return
        self.terminated = True
        self._close_code = 1001
        session = self.session
        is_open = session is not None and session.is_open
        self._on_event(Notice(f"terminated ({name})" + (": closing with 1001" if is_open else ""),
                              ts=time.monotonic()))
        if session is not None and session.opened_at is not None and not is_open:
            self._cut_short()  # already closing: SIGTERM's senders will not wait long
        self._ending.set()

    def _time_out(self) -> None:
        """--max-time ran out: close 1000 without waiting; run() raises TimedOut."""
        self.timed_out = True
        self._cut_short()

    async def _run_session(self) -> WstoolError | None:
        """One connection, from open to close: its outcome (None: a clean end)."""
        cfg = self.config
        session = Session(
            self.connect_config,
            self._on_event,
            on_batch=self._on_batch,
            on_message=self._message_handler(),
            trace=self.trace,
            report_sent=self._front.report_sent
            or any(getattr(observer, "report_sent", False) for observer in self.observers),
            report_phases=self._front.report_phases,
            report_pings=self._front.report_pings,
        )
        session.echo_engine = cfg.echo  # issue 4: the session echoes, inside its receive
        session.pace_reads = self._front.pace_reads
        if self._front.text_batches and not self.observers and not self._show_echo:
            session.on_text_batch = self._on_text_batch
        if self.session is not None:
            self._add_to_past(self.session)
        self.session = session
        self.state = CONNECTING
        opening = asyncio.ensure_future(session.open())
        ending = asyncio.ensure_future(self._ending.wait())
        try:
            await asyncio.wait({opening, ending}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            ending.cancel()
        opened = opening.done() and not opening.cancelled() and opening.exception() is None
        if not opening.done() or self.interrupted or self.timed_out or (
                self.terminated and not opened):
            # Ended while connecting (Ctrl-C, SIGTERM, --max-time, /quit), or Ctrl-C and
            # --max-time right as it opened: close at once. A SIGTERM that comes as the
            # connection opens (the server's first message may already be printed) goes
            # on below to the closing handshake with 1001, as it would a moment later.
            opening.cancel()
            with contextlib.suppress(BaseException):
                await opening
            if session.opened_at is not None and session.closed is None:
                session.close_now(self._close_code)  # it opened just now
                await session.wait_closed()
            return None
        exc = opening.exception()
        if exc is not None:
            if session.handshake is not None:
                self._front.on_open_failed(session.handshake)
            raise exc
        self.state = OPEN
        if self._ending.is_set():
            await session.close(self._close_code)
            # SIGTERM: how the close went is worth a warning (no answer to our 1001).
            return session.outcome() if self.terminated else None
        if cfg.execute:
            # -x goes first, on every (re)connect (then what stdin had left over).
            with contextlib.suppress(SessionClosed):
                session.send_many(cfg.execute)
                session.flush()
                self._last_sent_at = time.monotonic()
        if self._queued:
            self._send_queued(session)  # what was typed while reconnecting, after -x
        closed = asyncio.ensure_future(session.wait_closed())
        ending = asyncio.ensure_future(self._ending.wait())
        source = self.input_source
        pump = None if source is None else asyncio.ensure_future(self._pump(source, session))
        try:
            await asyncio.wait(
                {closed, ending} if pump is None else {closed, ending, pump},
                return_when=asyncio.FIRST_COMPLETED,
            )
            if pump is not None and pump.done() and not pump.cancelled():
                input_error = pump.exception()
                if self._ended_by_us():
                    pass  # a send cut short by Ctrl-C or --max-time: moot
                elif isinstance(input_error, WstoolError):
                    # Bad input ends the input: the replies to what went out before it
                    # still come (the end-of-input rules), then the error.
                    if not closed.done() and not ending.done():
                        await self._after_input(session, closed, ending)
                    if not closed.done():
                        await session.close(self._close_code)
                    raise input_error
                elif input_error is not None and not isinstance(input_error, SessionClosed):
                    session.abort()
                    raise input_error  # a bug: cli/app.py reports it (traceback with --debug)
                elif not closed.done() and not ending.done():
                    await self._after_input(session, closed, ending)
        finally:
            if pump is not None:
                pump.cancel()
            ending.cancel()
            if self._grace is not None:
                self._grace.cancel()
                self._grace = None
        if not closed.done():
            self.state = CLOSING
            await session.close(self._close_code)
        self.state = CLOSED
        return None if self._discard_outcome else session.outcome()

    # Input (with an input source)

    async def _send_pending(self, session: Session) -> None:
        pending = self._pending
        try:
            if pending:
                session.send_many(pending)
                pending.clear()
                self._last_sent_at = time.monotonic()
        finally:
            session.flush()
        await session.drain()

    async def _pump(self, source: InputSource, session: Session) -> None:
        """Send the input until its end; raises SessionClosed if the session closes."""
        pending = self._pending
        while True:
            await self._send_pending(session)
            if self.input_eof:
                return
            try:
                more = await source.read_into(pending)
            except WstoolError:
                await self._send_pending(session)  # the messages before the bad one still go
                raise
            if not more:
                self.input_eof = True
                self._input_ended_at = time.monotonic()
                session.on_message = self._on_message  # the end-of-input rules count now

    async def _after_input(
        self, session: Session, closed: asyncio.Future[Closed], ending: asyncio.Future[Any]
    ) -> None:
        """End of input: wait for replies (see the module doc), never lose one."""
        if (
            self._replies_end_input
            and session.messages_sent
            and session.messages_received >= session.messages_sent
        ):
            # They came before the end of input: within that time.
            self._start_grace(self._input_ended_at)
        wait_s = self.config.wait_s
        # Received messages only note the time (_last_activity_at); this loop wakes
        # when --wait seconds may have passed since. It used to wake (a task and an
        # asyncio.wait) for every received chunk: piped in at once, most replies
        # come after the end of input, and through the websockets library's echo
        # (a few messages a read) that was most of the client's CPU (issue 14).
        self._last_activity_at = time.monotonic()
        while True:
            timeout = None if wait_s is None else max(
                self._last_activity_at + wait_s - time.monotonic(), 0.0)
            finished, _ = await asyncio.wait(
                {closed, ending}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            if finished:
                return
            assert wait_s is not None
            if time.monotonic() - self._last_activity_at >= wait_s:
                self._warn_unanswered(session)  # --wait seconds without a message
                return

    def _warn_unanswered(self, session: Session) -> None:
        """-w ran out with fewer messages received than sent: say so (issue 10).

        A warning, not an error (exit 0): a server need not answer every message
        (a publish endpoint answers none), and -w is the rule the user chose; the
        line names the counts and the flags that wait longer."""
        sent, received = session.messages_sent, session.messages_received
        if self.config.echo or received >= sent:
            return  # --echo: what we sent are the replies
        self._on_event(Notice(
            f"warning: {sent} message{'' if sent == 1 else 's'} sent, {received} received: "
            f"closing after -w {self.config.wait_s:g}s without a message (wait longer "
            "with -w N, for the server's close with -w -1, or for N replies with -n N)",
            ts=time.monotonic()))

    def _start_grace(self, reached_at: float, reply_gap_s: float | None = None) -> None:
        """Every message sent has had a reply: end the run after a grace in which
        a message behind the last one still arrives (see reply_grace_s).

        What the replies took is the time since the last send, or, when the last two
        replies came after the end of input, the gap between them if that is shorter:
        piped in at once, 100 000 lines are answered long after the last is sent (the
        server's backlog), but each reply follows the one before within microseconds,
        and the grace must not add the backlog's time (measured: 0.84x the pipe's
        throughput with it, bench/README.md)."""
        if self._grace is not None:
            return
        wait_s = self.config.wait_s
        assert wait_s is not None  # -w -1 does not end on replies
        grace_s = reply_grace_s(replies_took_s(reached_at, self._last_sent_at, reply_gap_s),
                                wait_s)
        self._grace = asyncio.get_running_loop().call_later(grace_s, self._ending.set)

    # What the session calls

    def _on_event(self, event: Event) -> None:
        # The REPL's status bar redraws on this event: the state must be current.
        kind = type(event)
        if kind is Opened:
            self.state = OPEN
        elif kind is Closed:
            self.state = CLOSED
        self._front.on_event(event)
        for observer in self.observers:
            observer.on_event(event)

    def _message_handler(self) -> Callable[[str | bytes], None]:
        """What the session calls for each received message.

        The hot path: when the run has nothing to do per message (no -n, no
        observer, no echo to show, input not at its end yet), the session calls
        the front-end directly, which saves a call per message (~60-100 ns of
        ~500, measured with pipe mode's renderer); _pump() switches to
        _on_message at the end of input."""
        if (
            self.config.message_count is None
            and not self.observers
            and not self._show_echo
            and not self.input_eof
        ):
            return self._front.on_message
        return self._on_message

    def _on_message(self, data: str | bytes) -> None:
        """A received message: the session calls this directly (pipe mode's hot path)."""
        count = self.config.message_count
        if count is not None and self.received_total >= count:
            return  # past -n: the user asked for exactly N
        self.received_total += 1
        if self._show_echo:
            # The echo engine has mirrored it already, inside the receive call.
            self._on_event(Message("sent", data, ts=time.monotonic()))
        self._front.on_message(data)
        for observer in self.observers:
            observer.on_message(data)
        if self.input_eof:
            self._last_activity_at = time.monotonic()  # only _after_input() reads it
        if count is not None and self.received_total >= count:
            self._ending.set()  # -n: N messages received, then a clean close
        elif self.input_eof and self._replies_end_input:
            now = time.monotonic()
            previous, self._received_after_eof_at = self._received_after_eof_at, now
            session = self.session
            if (
                session is not None
                and session.messages_sent > 0
                and session.messages_received >= session.messages_sent
                and self._grace is None
            ):
                # Every message sent has had a reply: the run is over after the grace.
                self._start_grace(now, None if previous is None else now - previous)

    def _on_text_batch(self, payloads: list[bytes]) -> None:
        """Text messages of one received chunk (the session's fast path): what
        _on_message does, once for the lot (no observers, no echo to show here)."""
        if not self.input_eof and self.config.message_count is None:
            self._front.on_text_batch(payloads)  # nothing to count: the hot path
            return
        count = self.config.message_count
        if count is not None:
            room = count - self.received_total
            if room <= 0:
                return  # past -n: the user asked for exactly N
            if len(payloads) > room:
                payloads = payloads[:room]
        self.received_total += len(payloads)
        self._front.on_text_batch(payloads)
        if self.input_eof:
            self._last_activity_at = time.monotonic()  # only _after_input() reads it
        if count is not None and self.received_total >= count:
            self._ending.set()  # -n: N messages received, then a clean close
        elif self.input_eof and self._replies_end_input:
            now = time.monotonic()
            previous, self._received_after_eof_at = self._received_after_eof_at, now
            # Two or more replies in one chunk came together: their gap is ~0.
            if len(payloads) > 1:
                previous = now
            session = self.session
            if (
                session is not None
                and session.messages_sent > 0
                and session.messages_received >= session.messages_sent
                and self._grace is None
            ):
                # Every message sent has had a reply: the run is over after the grace.
                self._start_grace(now, None if previous is None else now - previous)

    def _on_batch(self) -> None:
        session = self.session
        if self.config.echo and session is not None:
            session.flush()  # what the echo engine queued goes out with this chunk
        self._front.on_batch()
        for observer in self.observers:
            observer.on_batch()

    def _add_to_past(self, session: Session) -> None:
        self._past_sent += session.messages_sent
        self._past_received += session.messages_received
        self._past_bytes_sent += session.bytes_sent
        self._past_bytes_received += session.bytes_received
        self._past_rtts_s.extend(session.rtts_s)
