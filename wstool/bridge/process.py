"""The process bridge core: one child process <-> one message stream (issue 16).

``listen --exec`` gives every client its own :class:`ProcessBridge`
(``exec_listen.py``); ``connect --exec`` gives its one connection one
(``exec_connect.py``). This module knows nothing of WebSocket: a *side*
(:class:`BridgeSide`) hands it messages for the process's stdin and gets the
process's stdout back as messages.

The rules (README "A process per client"):

* text mode: each message is one line on stdin (the message, then the separator,
  ``\\n`` or ``-0``'s NUL); each line of stdout (``\\r\\n`` or ``\\n`` ended) is one
  text message; a line that is not UTF-8 is sent with U+FFFD for the bad bytes;
  a line longer than ``max_line_bytes`` is cut into messages of that size;
* binary mode (``-b``): message payloads go to stdin as they are, and each read
  of stdout (at most ``chunk_size`` bytes) is one binary message;
* stderr: line by line to the side (wstool's stderr with the client id, or the
  client with ``--stderr-to-client``);
* backpressure both ways, memory bounded: the stdin pipe's transport buffer above
  its high-water mark calls :meth:`BridgeSide.pause_input` (the side stops reading
  its socket) until it drains; the side calls :meth:`ProcessBridge.pause_output`
  while its socket cannot take more, and stdout is not read meanwhile (the
  process then blocks in ``write``). Neither direction waits on the other, which
  is what deadlocks websocketd 0.4.1 when a client sends before it reads;
* lifecycle: the process runs in a process group of its own
  (``start_new_session``); when it exits and its stdout is at EOF, the side gets
  :meth:`BridgeSide.process_ended` with the :class:`ProcessOutcome`. When the side
  is done (its client left), :meth:`ProcessBridge.stop` closes stdin, sends SIGTERM
  to the group after ``kill_after_s``, SIGKILL after as long again. Whatever is
  left of the group when the leader has exited (a child it forked) gets the same
  treatment: no orphan stays behind, and asyncio's child watcher reaps the leader,
  so no zombie either. :meth:`ProcessBridge.wait_gone` waits for all of it.

The core never prints: it reports to the side.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from typing import NamedTuple, cast

from wstool.config import ExecConfig
from wstool.errors import UsageError

OP_TEXT, OP_BINARY = 0x1, 0x2

# How often a process group whose leader has exited is polled (kill(0), then /proc).
_GROUP_POLL_S = 0.05
# After SIGKILL, how long to wait for the group to vanish before giving up on it.
_AFTER_KILL_S = 2.0


def command_argv(command: str, *, shell: bool) -> tuple[str, ...]:
    """``--exec CMD`` (split like a shell word list) or ``--sh`` (``/bin/sh -c CMD``).

    A command that cannot be found is a usage error now, before any client comes
    (websocketd: "Unable to locate specified COMMAND")."""
    if not command.strip():
        raise UsageError("--exec: empty command")
    if shell:
        return ("/bin/sh", "-c", command)
    try:
        argv = tuple(shlex.split(command))
    except ValueError as exc:
        raise UsageError(f"--exec: cannot split {command!r}: {exc}") from None
    if not argv:
        raise UsageError("--exec: empty command")
    program = argv[0]
    if "/" in program:
        if os.path.isdir(program):
            raise UsageError(f"--exec: {program}: a directory, not a program")
        if not os.path.isfile(program):
            raise UsageError(f"--exec: {program}: no such file")
        if not os.access(program, os.X_OK):
            raise UsageError(f"--exec: {program}: not executable")
    elif shutil.which(program) is None:
        # As in a shell, a bare name is looked up in PATH only: say so when the
        # program is right here (websocketd users write `websocketd ./count.sh`).
        hint = (f"it is in the current directory: --exec ./{program}"
                if os.path.isfile(program) else
                "give a path, or --sh to run CMD through /bin/sh")
        raise UsageError(f"--exec: {program}: command not found in PATH ({hint})")
    return argv


class ProcessOutcome(NamedTuple):
    """How the process ended: ``returncode`` as asyncio has it (negative: a signal)."""

    pid: int
    returncode: int
    # The signal we sent last (the client had left), if any.
    signalled: int | None = None

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def describe(self) -> str:
        code = self.returncode
        if code >= 0:
            return f"exited with status {code}"
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"killed by {name}"


class BridgeSide:
    """What a bridge talks to (the WebSocket side); every method is a callback."""

    def send_output(self, messages: list[tuple[int, bytes]]) -> None:
        """Messages (opcode, payload) made of the process's stdout (or stderr)."""

    def stderr_line(self, line: bytes) -> None:
        """One line of the process's stderr (without its end of line)."""

    def pause_input(self) -> None:
        """The process's stdin is full: stop reading messages for it."""

    def resume_input(self) -> None:
        """The process's stdin has room again."""

    def process_ended(self, outcome: ProcessOutcome) -> None:
        """The process exited and its stdout is at its end (all output delivered)."""


class ProcessBridge(asyncio.SubprocessProtocol):
    """One child process (see the module doc); build it with :func:`start_process`."""

    transport: asyncio.SubprocessTransport

    def __init__(self, spec: ExecConfig, side: BridgeSide) -> None:
        self.spec = spec
        self.side = side
        self.pid = 0
        self.outcome: ProcessOutcome | None = None
        self.input_closed = False  # stdin closed (by us, or the process went)
        self.stopping = False  # stop() called: output is discarded
        self._partial = bytearray()  # text mode: a stdout line not yet complete
        self._stderr_partial = bytearray()
        self._stdout_eof = False
        self._exited = False
        self._output_paused = False
        self._input_paused = False
        self._signalled: int | None = None
        self._reaper: asyncio.Task[None] | None = None
        self._gone = asyncio.Event()
        self._exit_waiter = asyncio.Event()
        self._loop = asyncio.get_running_loop()

    # asyncio.SubprocessProtocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.pid = self.transport.get_pid()

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        if fd == 1:
            if not self.stopping:
                self._stdout(data)
        elif fd == 2:
            self._stderr(data)

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        if fd == 0:
            # The process closed its stdin (or exited): what the client still
            # sends is dropped, and its socket must not stay paused for it.
            self.input_closed = True
            self.resume_writing()
        elif fd == 1:
            if self._partial and not self.stopping:
                line, self._partial = bytes(self._partial), bytearray()
                self.side.send_output([self._text_message(line, self.spec.separator == b"\n")])
            self._stdout_eof = True
            self._maybe_ended()
        elif fd == 2 and self._stderr_partial:
            line, self._stderr_partial = bytes(self._stderr_partial), bytearray()
            self._stderr_out([line])

    def process_exited(self) -> None:
        self._exited = True
        self._exit_waiter.set()
        # The leader is gone; a child it forked may hold stdout open (and would be
        # an orphan): the group gets stop()'s treatment unless stdout ends soon.
        if self._reaper is None:
            self._reaper = asyncio.ensure_future(self._reap_group(close_input=False))
        self._maybe_ended()

    def pause_writing(self) -> None:
        # The stdin pipe's buffer is above its high-water mark.
        if not self._input_paused:
            self._input_paused = True
            self.side.pause_input()

    def resume_writing(self) -> None:
        if self._input_paused:
            self._input_paused = False
            self.side.resume_input()

    # What the side calls

    def write_input(self, payloads: Sequence[bytes]) -> None:
        """Messages from the side, in order, to the process's stdin."""
        if self.input_closed or not payloads:
            return
        pipe = self.transport.get_pipe_transport(0)
        if pipe is None or pipe.is_closing():
            return
        if self.spec.binary:
            data = b"".join(payloads)
        else:
            sep = self.spec.separator
            data = sep.join(payloads) + sep
        # cast, not isinstance: uvloop's pipe transports (--loop uvloop, the default
        # when it is installed) do not subclass asyncio's transport classes.
        cast(asyncio.WriteTransport, pipe).write(data)

    def _output_fds(self) -> tuple[int, ...]:
        # --stderr-to-client: stderr becomes messages too, so it waits with stdout
        # (else a process flooding stderr at a client that does not read grows
        # wstool's write buffer without bound).
        return (1, 2) if self.spec.stderr_to_client else (1,)

    def pause_output(self) -> None:
        """Stop reading stdout (the side cannot send more now)."""
        if self._output_paused or (self._stdout_eof and not self.spec.stderr_to_client):
            return
        self._output_paused = True
        for fd in self._output_fds():
            pipe = self.transport.get_pipe_transport(fd)
            if pipe is not None and not pipe.is_closing():
                cast(asyncio.ReadTransport, pipe).pause_reading()  # uvloop: write_input

    def resume_output(self) -> None:
        if self._output_paused:
            self._output_paused = False
            for fd in self._output_fds():
                pipe = self.transport.get_pipe_transport(fd)
                if pipe is not None and not pipe.is_closing():
                    cast(asyncio.ReadTransport, pipe).resume_reading()

    def close_input(self) -> None:
        """End of the messages: close stdin once what is buffered is written."""
        if not self.input_closed:
            self.input_closed = True
            pipe = self.transport.get_pipe_transport(0)
            if pipe is not None:
                pipe.close()

    def stop(self) -> None:
        """The side is gone: close stdin, then SIGTERM and SIGKILL the group (module doc).

        Output from now on is read and dropped, so a process blocked writing
        sees its stdin close and can exit."""
        self.stopping = True
        self.resume_output()
        self.close_input()
        reaper = self._reaper
        if reaper is None or reaper.done():
            self._reaper = asyncio.ensure_future(self._reap_group(close_input=True))

    def kill(self) -> None:
        """SIGKILL the group now (a second Ctrl-C at shutdown), without the wait."""
        self.stop()
        if not self.gone:
            self._signal_group(signal.SIGKILL)

    async def wait_gone(self) -> None:
        """Until the process and every process of its group are gone."""
        await self._gone.wait()

    @property
    def gone(self) -> bool:
        return self._gone.is_set()

    # Output

    def _stdout(self, data: bytes) -> None:
        spec = self.spec
        if spec.binary:
            size = spec.chunk_size
            if len(data) <= size:
                self.side.send_output([(OP_BINARY, data)])
            else:
                self.side.send_output([(OP_BINARY, data[i:i + size])
                                       for i in range(0, len(data), size)])
            return
        sep = spec.separator
        partial = self._partial
        if sep not in data:
            partial += data
            self._cut_long_line()
            return
        if partial:
            partial += data
            data = bytes(partial)
            partial.clear()
        lines = data.split(sep)
        rest = lines.pop()
        if rest:
            partial += rest
        text = self._text_message
        trim = sep == b"\n"  # \r\n ends a line too; with -0, a \r is data
        self.side.send_output([text(line, trim) for line in lines])
        if partial:
            self._cut_long_line()

    def _cut_long_line(self) -> None:
        limit = self.spec.max_line_bytes
        partial = self._partial
        if limit is None or len(partial) <= limit:
            return
        pieces = []
        while len(partial) > limit:
            pieces.append(self._text_message(bytes(partial[:limit]), trim=False))
            del partial[:limit]
        self.side.send_output(pieces)

    @staticmethod
    def _text_message(line: bytes, trim: bool = True) -> tuple[int, bytes]:
        if trim and line.endswith(b"\r"):
            line = line[:-1]
        if not line.isascii():
            try:
                line.decode()
            except UnicodeDecodeError:
                line = line.decode(errors="replace").encode()
        return (OP_TEXT, line)

    def _stderr(self, data: bytes) -> None:
        partial = self._stderr_partial
        partial += data
        if b"\n" not in data and len(partial) < 65536:
            return
        lines = bytes(partial).split(b"\n")
        partial.clear()
        rest = lines.pop()
        if len(rest) >= 65536:
            lines.append(rest)
        else:
            partial += rest
        self._stderr_out([line[:-1] if line.endswith(b"\r") else line for line in lines])

    def _stderr_out(self, lines: list[bytes]) -> None:
        if self.spec.stderr_to_client:
            if not self.stopping:
                self.side.send_output([self._text_message(line) for line in lines])
        else:
            for line in lines:
                self.side.stderr_line(line)

    # The end

    def _maybe_ended(self) -> None:
        if self.outcome is not None or not (self._exited and self._stdout_eof):
            return
        code = self.transport.get_returncode()
        self.outcome = ProcessOutcome(self.pid, code if code is not None else -1,
                                      self._signalled)
        self.side.process_ended(self.outcome)

    def _group_alive(self) -> bool:
        return group_alive(self.pid)

    def _signal_group(self, sig: signal.Signals) -> None:
        self._signalled = sig
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)

    async def _wait_group(self, timeout_s: float) -> bool:
        """True once the leader is reaped and the group is empty, within TIMEOUT_S."""
        deadline = time.monotonic() + timeout_s
        while True:
            if self._exited and not self._group_alive():
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            if not self._exited:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._exit_waiter.wait(), min(left, 0.25))
                continue
            await asyncio.sleep(min(_GROUP_POLL_S, left))

    async def _reap_group(self, *, close_input: bool) -> None:
        try:
            kill_after_s = self.spec.kill_after_s
            if not close_input and self._exited and not self._group_alive():
                return
            if not await self._wait_group(kill_after_s):
                self._signal_group(signal.SIGTERM)
                if not await self._wait_group(kill_after_s):
                    self._signal_group(signal.SIGKILL)
                    await self._wait_group(_AFTER_KILL_S)
        finally:
            # Gone, or as gone as signals can make it (a process stuck in the
            # kernel): shutdown must not wait forever for it.
            self._gone.set()
            if not self._stdout_eof and self._exited:
                with contextlib.suppress(Exception):
                    self.transport.close()


def group_alive(pgid: int) -> bool:
    """Whether process group PGID has a process that is not a zombie.

    A zombie is dead: where PID 1 does not reap the orphans it inherits (as in
    some containers), the group of an exited process would look alive forever
    to ``kill(0)`` alone, so on Linux /proc tells the states apart."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover - a reused id of another user
        return False
    try:
        entries = os.listdir("/proc")
    except OSError:  # pragma: no cover - not Linux
        return True
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        # pid (comm) state ppid pgrp ...: comm may hold spaces and parentheses.
        fields = stat[stat.rfind(b")") + 2:].split(None, 3)
        if len(fields) >= 3 and int(fields[2]) == pgid and fields[0] != b"Z":
            return True
    return False


async def start_process(spec: ExecConfig, side: BridgeSide,
                        env: Mapping[str, str] | None = None) -> ProcessBridge:
    """Start SPEC's process for SIDE; OSError when it cannot be started."""
    loop = asyncio.get_running_loop()
    _transport, bridge = await loop.subprocess_exec(
        lambda: ProcessBridge(spec, side),
        *spec.argv,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=dict(env) if env is not None else None,
        # A process group of its own: signals reach what it forks too (no orphans),
        # and a Ctrl-C on wstool's terminal is wstool's to handle, not the child's.
        start_new_session=True,
    )
    return bridge


__all__ = [
    "OP_BINARY",
    "OP_TEXT",
    "BridgeSide",
    "ProcessBridge",
    "ProcessOutcome",
    "command_argv",
    "group_alive",
    "start_process",
]
