"""``connect`` in a pipe: stdin lines (or bytes) out, messages in, nothing lost.

The rules this front-end keeps (README "Pipe mode"):

* one input line -> one text message; one received message -> one output line,
  flushed once per received chunk so ``| grep --line-buffered`` sees it live;
* backpressure, not buffering: stdin is read one chunk at a time, and the next
  chunk is read only once the previous one is written to the socket and the
  socket's write buffer has drained below its limit; output is written with
  blocking writes, so a slow reader of our stdout slows our socket reads;
* end of input does not lose replies: after EOF we keep receiving until the
  server closes, ``--count`` is reached, every message sent has had a reply,
  or nothing arrived for ``--wait`` seconds; only then do we close with 1000.
  (websocat closes at EOF and loses what the server had queued; wscat exits.)
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import signal
import time
from typing import Any

from wstool.client.session import Reconnects, Session, SessionClosed
from wstool.config import ConnectConfig, OutputConfig, PipeConfig
from wstool.errors import ExitStatus, WstoolError, is_retryable
from wstool.events import Closed, Event, FrameSeen, Message, Notice, Opened, Pong, Reconnecting
from wstool.term.env import Environment
from wstool.term.render import (
    binary_as_text,
    close_line,
    escape,
    event_json,
    handshake_lines,
    opened_line,
    trace_frame_line,
)
from wstool.term.stdin import InputSplitter, StdinReader


class PipeFrontEnd:
    def __init__(
        self,
        env: Environment,
        connect_config: ConnectConfig,
        pipe_config: PipeConfig,
        output_config: OutputConfig,
    ) -> None:
        self.env = env
        self.connect_config = connect_config
        self.cfg = pipe_config
        self.out_cfg = output_config
        self.separator = b"\0" if pipe_config.null_separated else b"\n"
        self.out = env.stdout
        # Escape remote text when our stdout is a terminal (STYLE.md "Output").
        self.escape_output = env.stdout_isatty
        self.pending: collections.deque[str | bytes] = collections.deque()
        self.splitter = InputSplitter(binary=pipe_config.binary, separator=self.separator)
        self.input_eof = False
        self.received_total = 0
        self.stdout_closed = False
        self.session: Session | None = None
        self.done = asyncio.Event()  # --count reached, stdout closed, or interrupted
        self.interrupted = False
        self.activity = asyncio.Event()
        # "Every message sent has had a reply" ends the run after EOF, except in
        # --echo mode (replies are ours) and with --wait -1 (the user asked to
        # wait for the server to close).
        self.replies_end_input = not pipe_config.echo and pipe_config.wait_s is not None

    # Output

    def write(self, data: bytes) -> None:
        if self.stdout_closed:
            return
        try:
            self.out.write(data)
        except (BrokenPipeError, ValueError, OSError):
            self._on_stdout_closed()

    def flush(self) -> None:
        if self.stdout_closed:
            return
        try:
            self.out.flush()
        except (BrokenPipeError, ValueError, OSError):
            self._on_stdout_closed()

    def _on_stdout_closed(self) -> None:
        # `wstool connect URL | head -1`: the reader is gone; stop quietly.
        self.stdout_closed = True
        self.done.set()

    def diag(self, line: str) -> None:
        self.env.write_stderr_line(f"wstool: {line}")

    def write_json(self, event: Event) -> None:
        obj = event_json(event)
        if obj is not None:
            import json  # only --json needs it: ~2.5 ms of start-up otherwise

            self.write(json.dumps(obj, ensure_ascii=False).encode() + b"\n")

    def write_message(self, data: str | bytes) -> None:
        if self.cfg.binary:
            # Binary mode is a raw byte stream both ways: payloads, no separators.
            self.write(data.encode() if isinstance(data, str) else data)
            return
        if isinstance(data, bytes):
            text = binary_as_text(data, use_base64=self.cfg.base64)
        else:
            text = escape(data) if self.escape_output else data
        self.write(text.encode() + self.separator)

    def on_event(self, event: Event) -> None:
        if isinstance(event, Message):  # sent messages (--json); received: on_message
            if self.out_cfg.json:
                self.write_json(event)
            return
        if self.out_cfg.json:
            self.write_json(event)
        if isinstance(event, FrameSeen):
            self.env.write_stderr_line(trace_frame_line(event.direction, event.frame))
        elif isinstance(event, Opened):
            if self.out_cfg.verbose:
                for line in handshake_lines(event.handshake,
                                            show_secrets=self.out_cfg.show_secrets):
                    self.env.write_stderr_line(line)
                self.diag(opened_line(event))
        elif isinstance(event, Closed):
            self.diag(close_line(event))
            self.activity.set()
        elif isinstance(event, Notice):
            self.diag(event.text)
        elif isinstance(event, Pong) and self.out_cfg.verbose and event.rtt_s is not None:
            self.diag(f"pong in {event.rtt_s * 1000:.1f} ms")
        elif isinstance(event, Reconnecting):
            self.diag(f"reconnecting in {event.delay_s:.1f}s (attempt {event.attempt}): "
                      f"{event.reason}")

    def on_message(self, data: str | bytes) -> None:
        """A received message: the session calls this directly (hot path)."""
        count = self.cfg.message_count
        if count is not None and self.received_total >= count:
            return  # past --count: the user asked for exactly N
        self.received_total += 1
        if self.out_cfg.json:
            self.write_json(Message("received", data, ts=time.monotonic()))
        else:
            self.write_message(data)
        if self.input_eof:
            self.activity.set()  # only _after_input() waits on it
        session = self.session
        if self.cfg.echo and session is not None and not session.echo_engine:
            with contextlib.suppress(SessionClosed):
                session.send(data)
        if count is not None and self.received_total >= count:
            self.flush()
            self.done.set()
        elif (
            self.input_eof
            and self.replies_end_input
            and session is not None
            and session.messages_received >= session.messages_sent
            and session.messages_sent > 0
        ):
            # Every message sent has had a reply: request/response is over.
            self.done.set()

    def on_batch(self) -> None:
        self.flush()
        if self.cfg.echo and self.session is not None:
            self.session.flush()

    # Input

    async def _send_pending(self, session: Session) -> None:
        pending = self.pending
        try:
            session.send_many(pending)
            pending.clear()
        finally:
            session.flush()
        await session.drain()

    async def pump_input(self, reader: StdinReader, session: Session) -> None:
        """Send stdin to the session until EOF; raises SessionClosed if it closes."""
        while True:
            await self._send_pending(session)
            if self.input_eof:
                return
            chunk = await reader.read()
            try:
                if chunk:
                    self.splitter.feed(chunk, self.pending)
                    continue
                self.splitter.finish(self.pending)
            except WstoolError:
                await self._send_pending(session)  # the lines before the bad one still go
                raise
            self.input_eof = True

    # The run

    async def run(self) -> ExitStatus:
        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signal.SIGINT, self._interrupt)
        reader = StdinReader(self.env.stdin, self.cfg.chunk_size_bytes)
        reconnects = Reconnects(self.cfg.reconnect_max_delay_s, self.cfg.reconnect_limit)
        attempt = 0
        try:
            while True:
                attempt += 1
                try:
                    error = await self._run_session(reader)
                except WstoolError as exc:
                    if not self.cfg.reconnect or self.interrupted or not is_retryable(exc):
                        raise
                    error = exc
                if self.interrupted:
                    return ExitStatus.INTERRUPTED
                if (
                    error is None
                    or not self.cfg.reconnect
                    or not is_retryable(error)
                    or self.done.is_set()  # --count reached or stdout closed
                ):
                    break
                if self.session is not None and self.session.opened_at is not None:
                    reconnects.opened()  # it worked for a while: start over
                delay = reconnects.next_delay()
                if delay is None:
                    self.diag(reconnects.giving_up())
                    break
                self.on_event(Reconnecting(attempt, delay, str(error), ts=loop.time()))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.done.wait(), delay)  # Ctrl-C cuts it short
                if self.interrupted:
                    return ExitStatus.INTERRUPTED
        finally:
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(signal.SIGINT)
            self.flush()
        if error is not None:
            raise error
        return ExitStatus.OK

    def _interrupt(self) -> None:
        if self.interrupted and self.session is not None:
            self.session.abort()  # second Ctrl-C: do not wait for the close
        self.interrupted = True
        self.done.set()

    async def _run_session(self, reader: StdinReader) -> WstoolError | None:
        session = Session(
            self.connect_config,
            self.on_event,
            on_batch=self.on_batch,
            on_message=self.on_message,
            trace=self.out_cfg.trace,
            report_sent=self.out_cfg.json,
        )
        session.echo_engine = self.cfg.echo  # issue 4: the session echoes, not on_message
        self.session = session
        try:
            await session.open()
        except WstoolError as exc:
            if self.out_cfg.verbose and session.handshake is not None:
                for line in handshake_lines(session.handshake,
                                            show_secrets=self.out_cfg.show_secrets):
                    self.env.write_stderr_line(line)
            raise exc
        if self.cfg.execute:
            # -x messages go first, on every (re)connect.
            self.pending.extendleft(reversed(self.cfg.execute))
        closed = asyncio.ensure_future(session.wait_closed())
        done = asyncio.ensure_future(self.done.wait())
        pump = asyncio.ensure_future(self.pump_input(reader, session))
        try:
            await asyncio.wait({closed, done, pump}, return_when=asyncio.FIRST_COMPLETED)
            if pump.done() and not pump.cancelled():
                input_error = pump.exception()
                if isinstance(input_error, WstoolError):
                    # Bad input ends the input: the replies to what went out before it
                    # still come (the end-of-input rules), then the error.
                    if not closed.done() and not done.done():
                        await self._after_input(session, closed, done)
                    if not closed.done():
                        await session.close(1000)
                    raise input_error
                if input_error is not None and not isinstance(input_error, SessionClosed):
                    session.abort()
                    raise input_error  # a bug: cli.py reports it (traceback with --debug)
            if pump.done() and not closed.done() and not done.done():
                await self._after_input(session, closed, done)
        finally:
            pump.cancel()
            done.cancel()
        if not closed.done():
            await session.close(1000)
        return session.outcome() if not self.stdout_closed else None

    async def _after_input(
        self, session: Session, closed: asyncio.Future[Closed], done: asyncio.Future[Any]
    ) -> None:
        """End of input: wait for replies (see module doc), never lose one."""
        if (
            self.replies_end_input
            and session.messages_sent
            and session.messages_received >= session.messages_sent
        ):
            return
        wait_s = self.cfg.wait_s
        while True:
            self.activity.clear()
            activity: asyncio.Future[Any] = asyncio.ensure_future(self.activity.wait())
            try:
                finished, _ = await asyncio.wait(
                    {closed, done, activity},
                    timeout=wait_s,
                    return_when=asyncio.FIRST_COMPLETED,
                )
            finally:
                activity.cancel()
            if closed in finished or done in finished:
                return
            if not finished:  # --wait seconds without a message
                return
