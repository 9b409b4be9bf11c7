"""``wstool connect --exec CMD URL``: one connection bridged to one process (issue 16).

Not a session of its own: the client run loop (``client/run.py``) with

* :class:`ProcessInput`, the run's input source: the process's stdout, one message
  per line (``-b``: per read); the end of input is the process's end (it exited
  and its stdout is at EOF), and from there pipe mode's end-of-input rules apply
  (keep receiving until the server closes, ``-n``, every message had a reply, or
  ``-w`` idle seconds);
* :class:`ExecFrontEnd`, pipe mode's front-end (``client/pipe.py``) with the
  received messages going to the process's stdin instead of stdout (written once
  per received chunk); the socket is not read while stdin is full. Diagnostics
  (-v, the close line, --json events on stdout) are pipe mode's.

Once the run is over, stdin is closed, then SIGTERM and SIGKILL follow
--kill-after apart (``bridge/process.py``); a process that exited by itself with
a non-zero status (or by a signal we did not send) makes the exit status 1.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Callable, Mapping, Sequence

from wstool.bridge.process import OP_TEXT, BridgeSide, ProcessBridge, ProcessOutcome, start_process
from wstool.client.pipe import PipeFrontEnd
from wstool.client.run import ClientRun, InputSource, RunObserver
from wstool.config import ClientRunConfig, ConnectConfig, ExecConfig, OutputConfig, StreamConfig
from wstool.errors import ExitStatus, WstoolError
from wstool.events import Notice
from wstool.term.env import Environment

# Messages read from stdout and not yet taken by the run, above which stdout is
# not read (the run takes them all at once, then sends and drains).
_MAX_QUEUED = 1024


class ProcessInput(InputSource, BridgeSide):
    """The process's stdout as the run's input (see the module doc)."""

    def __init__(self, config: ExecConfig, env: Environment, environ: Mapping[str, str]) -> None:
        self.config = config
        self.env = env
        self.environ = environ
        self.bridge: ProcessBridge | None = None
        self.outcome: ProcessOutcome | None = None
        self.run: ClientRun | None = None
        self.start_error: WstoolError | None = None
        self._queue: collections.deque[str | bytes] = collections.deque()
        self._wake = asyncio.Event()
        self._started = asyncio.Event()
        self._early_input: list[bytes] = []  # received before the process ran

    async def start(self) -> ProcessBridge:
        if self.bridge is None:
            try:
                self.bridge = await start_process(self.config, self, self.environ)
            except OSError as exc:
                raise WstoolError(f"cannot start {self.config.argv[0]}: "
                                  f"{exc.strerror or exc}") from None
            finally:
                self._started.set()
            if self._early_input:
                self.bridge.write_input(self._early_input)
                self._early_input.clear()
        return self.bridge

    # InputSource

    async def read_into(self, out: collections.deque[str | bytes]) -> bool:
        bridge = await self.start()
        queue = self._queue
        while not queue and self.outcome is None:
            self._wake.clear()
            bridge.resume_output()
            await self._wake.wait()
        out.extend(queue)
        queue.clear()
        bridge.resume_output()
        return self.outcome is None

    # BridgeSide

    def send_output(self, messages: list[tuple[int, bytes]]) -> None:
        queue = self._queue
        for opcode, payload in messages:
            queue.append(payload.decode() if opcode == OP_TEXT else payload)
        self._wake.set()
        if len(queue) >= _MAX_QUEUED and self.bridge is not None:
            self.bridge.pause_output()

    def stderr_line(self, line: bytes) -> None:
        self.env.write_stderr_line(line.decode(errors="replace"))

    def pause_input(self) -> None:
        if self.run is not None and self.run.session is not None:
            self.run.session.pause_reading()

    def resume_input(self) -> None:
        if self.run is not None and self.run.session is not None:
            self.run.session.resume_reading()

    def process_ended(self, outcome: ProcessOutcome) -> None:
        self.outcome = outcome
        self._wake.set()
        self.resume_input()  # nothing to hold the socket back for any more

    # Messages for the process

    def write(self, payloads: list[bytes]) -> None:
        if self.bridge is None:
            self._early_input.extend(payloads)
        else:
            self.bridge.write_input(payloads)

    async def finish(self) -> ProcessOutcome | None:
        """The run is over: stop the process (stdin, SIGTERM, SIGKILL) and wait for it."""
        if self.bridge is None:
            return None
        self.bridge.stop()
        await self.bridge.wait_gone()
        return self.bridge.outcome


class ExecFrontEnd(PipeFrontEnd):
    """Pipe mode's front-end, with received messages going to the process's stdin."""

    def __init__(self, env: Environment, stream_config: StreamConfig,
                 output_config: OutputConfig, run: ClientRun, source: ProcessInput) -> None:
        super().__init__(env, stream_config, output_config, run)
        self.source = source
        self._batch: list[bytes] = []

    def on_message(self, data: str | bytes) -> None:
        if self.out_cfg.json:
            super().on_message(data)  # the event on stdout, as pipe mode writes it
        self._batch.append(data.encode() if isinstance(data, str) else data)

    def on_batch(self) -> None:
        batch = self._batch
        if batch:
            self.source.write(batch)
            self._batch = []
        super().on_batch()


async def run_connect_exec(
    env: Environment,
    connect_config: ConnectConfig,
    run_config: ClientRunConfig,
    exec_config: ExecConfig,
    stream_config: StreamConfig,
    output_config: OutputConfig,
    *,
    observers: Sequence[RunObserver] = (),
    wrap_input: Callable[[InputSource], InputSource] | None = None,
) -> ExitStatus:
    """``connect --exec``: the entry point ``cli/cmd_connect.py`` calls; WRAP_INPUT as
    ``run_connect_pipe``'s (``--template``: the process's lines as templates)."""
    source = ProcessInput(exec_config._replace(max_line_bytes=connect_config.max_size_bytes),
                          env, env.environ)
    run = ClientRun(
        connect_config,
        run_config,
        input_source=source if wrap_input is None else wrap_input(source),
        observers=observers,
        trace=output_config.trace,
        interrupt_on_sigint=True,
        close_on_sigterm=True,
        close_on_sighup=True,
    )
    source.run = run
    front_end = ExecFrontEnd(env, stream_config, output_config, run, source)
    try:
        status = await run.run(front_end)
    finally:
        outcome = await source.finish()
    if outcome is not None and not outcome.ok and outcome.signalled is None:
        raise WstoolError(f"{exec_config.display} (pid {outcome.pid}) {outcome.describe()}")
    if outcome is not None and output_config.verbose:
        front_end.on_event(Notice(f"process {outcome.pid} {outcome.describe()}",
                                  ts=time.monotonic()))
    return status


__all__ = ["ExecFrontEnd", "ProcessInput", "run_connect_exec"]
