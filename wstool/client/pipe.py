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

Those rules are the run's (``wstool/client/run.py``, which also owns ``-x``,
``-n``, ``--echo``, ``--reconnect`` and Ctrl-C); this module is the renderer
(:class:`PipeFrontEnd`) and the input source (:class:`StdinInput`) over it.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable, Sequence

from wstool.client.run import ClientFrontEnd, ClientRun, InputSource, RunObserver
from wstool.config import ClientRunConfig, ConnectConfig, OutputConfig, StreamConfig
from wstool.errors import NORMAL_CLOSE_CODES, ClosedAbnormally, ExitStatus, WstoolError
from wstool.events import (
    Closed,
    ConnectPhase,
    Event,
    FrameSeen,
    Handshake,
    Message,
    Notice,
    Opened,
    Ping,
    Pong,
    Reconnecting,
    Redirected,
)
from wstool.term.env import Environment
from wstool.term.render import (
    binary_as_text,
    close_line,
    connect_phase_line,
    escape,
    event_json,
    handshake_lines,
    opened_line,
    ping_pong_line,
    redirect_line,
    trace_frame_line,
)
from wstool.term.stdin import InputSplitter, StdinReader


class StdinInput(InputSource):
    """Stdin as messages: one line (or, with -b, one chunk) per message.

    One chunk is read per request, and the run asks for the next one only once
    the previous one is sent and drained: that is the backpressure.

    TEXT_BLOCKS: a chunk's lines come as one TextLines (term/stdin.py) when the
    run sends what it reads as it is (no wrapper that looks at each line)."""

    def __init__(self, env: Environment, stream_config: StreamConfig, *,
                 text_blocks: bool = False) -> None:
        self.stream = env.stdin
        self.chunk_size_bytes = stream_config.chunk_size_bytes
        separator = b"\0" if stream_config.null_separated else b"\n"
        self.splitter = InputSplitter(binary=stream_config.binary, separator=separator,
                                      text_blocks=text_blocks)
        self._reader: StdinReader | None = None

    async def read_into(self, out: collections.deque[str | bytes]) -> bool:
        reader = self._reader
        if reader is None:  # its thread needs the running loop
            reader = self._reader = StdinReader(self.stream, self.chunk_size_bytes)
        chunk = await reader.read()
        if chunk:
            self.splitter.feed(chunk, out)
            return True
        self.splitter.finish(out)
        return False


class PipeFrontEnd(ClientFrontEnd):
    """Received messages to stdout, one per line; diagnostics to stderr; --json events."""

    # A fast stream of small messages is read at most once a millisecond (issue 14).
    pace_reads = True

    def __init__(
        self,
        env: Environment,
        stream_config: StreamConfig,
        output_config: OutputConfig,
        run: ClientRun,
    ) -> None:
        self.env = env
        self.cfg = stream_config
        self.out_cfg = output_config
        self.run = run
        # Pipe mode without --json does not render sent messages: skip their events.
        self.report_sent = output_config.json
        self.report_phases = bool(output_config.verbose)
        # -P: the pings we send and the automatic pongs too; on stderr, or as
        # --json events (then not on stderr as well: the stream has them all).
        self.report_pings = output_config.show_ping_pong
        self.ping_lines = output_config.show_ping_pong and not output_config.json
        self.separator = b"\0" if stream_config.null_separated else b"\n"
        self.out = env.stdout
        # Escape remote text when our stdout is a terminal (STYLE.md "Output").
        self.escape_output = env.stdout_isatty
        self.stdout_closed = False
        # A server's close that may end the run with an error (issue 13): its line
        # waits for what comes next. The run's end with that very close: the error
        # line says it, once; anything else (a reconnect, another error): the line.
        self._held_close: Closed | None = None
        # Received text goes to stdout as it came (no escaping, no JSON): whole
        # chunks of lines can be written in one go (issue 14, the hot path).
        # A subclass that handles messages itself (connect --exec's front-end writes
        # them to a process) must see each one: the batch path would bypass it.
        self.text_batches = not (output_config.json or self.escape_output
                                 or stream_config.binary) \
            and type(self).on_message is PipeFrontEnd.on_message

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
        self.run.stop(discard_outcome=True)

    def diag(self, line: str) -> None:
        self.env.write_stderr_line(f"wstool: {line}")

    def write_json(self, event: Event) -> None:
        obj = event_json(event)
        if obj is not None:
            from wstool.term.jsonl import json_line_bytes  # json: ~2.5 ms, only for --json

            self.write(json_line_bytes(obj))

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
        if self._held_close is not None:
            self._say_held_close()  # the run goes on after the server's close
        if isinstance(event, Message):  # sent messages (--json); received: on_message
            if self.out_cfg.json:
                self.write_json(event)
            return
        if self.out_cfg.json:
            self.write_json(event)
        if isinstance(event, FrameSeen):
            self.env.write_stderr_line(trace_frame_line(event.direction, event.frame))
        elif isinstance(event, ConnectPhase):  # -v only: the session reports them then
            self.env.write_stderr_line(connect_phase_line(event))
        elif isinstance(event, Opened):
            if self.out_cfg.verbose:
                for line in handshake_lines(event.handshake,
                                            show_secrets=self.out_cfg.show_secrets):
                    self.env.write_stderr_line(line)
                self.diag(opened_line(event))
        elif isinstance(event, Redirected):
            if self.out_cfg.verbose:  # -L's hops, each as curl -v -L shows them
                for line in handshake_lines(event.handshake,
                                            show_secrets=self.out_cfg.show_secrets):
                    self.env.write_stderr_line(line)
                self.diag(redirect_line(event))
        elif isinstance(event, Closed):
            # -q: an abnormal close is the error line's job; cut short (Ctrl-C, SIGTERM,
            # --max-time): the server's answer was not awaited, "interrupted" or the
            # error says it all.
            if not self.out_cfg.quiet and not self.run.cut_short:
                if event.initiated_by == "server" and event.code not in NORMAL_CLOSE_CODES:
                    self._held_close = event
                else:
                    self.diag(close_line(event))
        elif isinstance(event, Notice):
            if not self.out_cfg.quiet or event.text.startswith("warning:"):
                self.diag(event.text)
        elif isinstance(event, Ping | Pong) and self.ping_lines:
            self.diag(ping_pong_line(event))
        elif isinstance(event, Pong) and self.out_cfg.verbose and event.rtt_s is not None:
            self.diag(f"pong in {event.rtt_s * 1000:.1f} ms")
        elif isinstance(event, Reconnecting) and not self.out_cfg.quiet:
            self.diag(f"reconnecting in {event.delay_s:.1f}s (attempt {event.attempt}): "
                      f"{event.reason}")

    def on_message(self, data: str | bytes) -> None:
        """A received message (the hot path: the run calls this for each one)."""
        if self.out_cfg.json:
            self.write_json(Message("received", data, ts=time.monotonic()))
        else:
            self.write_message(data)

    def on_text_batch(self, payloads: list[bytes]) -> None:
        """Received text lines of one chunk (UTF-8 checked), when text_batches: one
        write of the joined lines (hence a separator after the last one too)."""
        separator = self.separator
        payloads.append(b"")
        self.write(separator.join(payloads))

    def on_batch(self) -> None:
        self.flush()

    def _say_held_close(self) -> None:
        held, self._held_close = self._held_close, None
        if held is not None:
            self.diag(close_line(held))

    def on_end(self, error: WstoolError | None) -> None:
        held = self._held_close
        if (
            held is not None
            and isinstance(error, ClosedAbnormally)
            and error.server_close
            and error.close_code == held.code
        ):
            self._held_close = None  # "wstool: error: server closed ... with 4001 ..."
        self._say_held_close()

    def on_open_failed(self, handshake: Handshake) -> None:
        if self.out_cfg.verbose:  # -v: the rejected handshake
            for line in handshake_lines(handshake, show_secrets=self.out_cfg.show_secrets):
                self.env.write_stderr_line(line)


async def run_connect_pipe(
    env: Environment,
    connect_config: ConnectConfig,
    run_config: ClientRunConfig,
    stream_config: StreamConfig,
    output_config: OutputConfig,
    *,
    observers: Sequence[RunObserver] = (),
    wrap_input: Callable[[InputSource], InputSource] | None = None,
) -> ExitStatus:
    """``connect`` in a pipe: the entry point ``cli/app.py`` calls.

    OBSERVERS plug later capabilities (``--expect``, ``--capture``) into the run;
    WRAP_INPUT turns stdin into another source (``--template``: lines as templates)."""
    # Lines as blocks (TextLines, pipe mode's hot path) unless a wrapper reads them.
    source: InputSource = StdinInput(env, stream_config, text_blocks=wrap_input is None)
    run = ClientRun(
        connect_config,
        run_config,
        input_source=source if wrap_input is None else wrap_input(source),
        observers=observers,
        trace=output_config.trace,
        interrupt_on_sigint=True,  # Ctrl-C: exit 130 at once, in every phase
        close_on_sigterm=True,  # close 1001, exit 143
    )
    return await run.run(PipeFrontEnd(env, stream_config, output_config, run))
