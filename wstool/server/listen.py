"""``wstool listen`` in a pipe: stdin to the connected clients, their messages to stdout.

The rules (README "listen"):

* each stdin line is one text message to every connected client (``-b``: each
  chunk of stdin one binary message); each client message is one output line;
* stdin is not read while no client is connected: what is written before the
  first client arrives stays in the pipe and is delivered to it (wscat reads
  and drops it); a chunk read while clients were connected but sent after they
  all left waits for the next client;
* backpressure: the next chunk of stdin is read once every client's write
  buffer has drained;
* ``--json`` writes every event as a JSON line with the client's id; on a
  terminal each message line starts with ``[ID]``;
* ``--once``: one client; exit when it leaves, with a status from its close.
  Without ``--once``, run until SIGINT/SIGTERM (then close all with 1001).
  End of stdin closes nothing: clients may still send.

On a terminal (stdin and stdout both), ``cli.py`` runs the REPL of
``listen_repl.py`` instead; this front-end still tags and escapes its output
when only stdout is a terminal.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import signal
from typing import TYPE_CHECKING

from wstool.config import ListenConfig, OutputConfig, ServerConfig
from wstool.errors import ExitStatus, WstoolError
from wstool.server.events import ClientConnected, ClientDisconnected, ClientMessage, ServerEvent
from wstool.server.log import ServerLog, once_status, prepared_tls
from wstool.term.env import Environment
from wstool.term.render import binary_as_text, escape
from wstool.term.signals import handle_signals
from wstool.term.stdin import InputSplitter, StdinReader

if TYPE_CHECKING:
    from wstool.server.core import ListenApp, WebSocketServer

class ListenFrontEnd:
    def __init__(
        self,
        env: Environment,
        server_config: ServerConfig,
        listen_config: ListenConfig,
        output_config: OutputConfig,
    ) -> None:
        self.env = env
        self.server_cfg = server_config
        self.cfg = listen_config
        self.stream_cfg = listen_config.stream
        self.out_cfg = output_config
        self.log = ServerLog(env, output_config)
        self.separator = b"\0" if self.stream_cfg.null_separated else b"\n"
        self.tag_clients = env.stdout_isatty
        self.escape_output = env.stdout_isatty
        self.pending: collections.deque[str | bytes] = collections.deque()
        self.splitter = InputSplitter(binary=self.stream_cfg.binary, separator=self.separator)
        self.clients: set[int] = set()
        self.has_clients = asyncio.Event()
        self.clients_changed = asyncio.Event()
        self.stop = asyncio.Event()
        self.once_result: ClientDisconnected | None = None
        self.stdout_closed = False
        self._server: WebSocketServer
        self._app: ListenApp

    # Events from the server core

    def on_event(self, event: ServerEvent) -> None:
        if isinstance(event, ClientMessage) and not self.out_cfg.json:
            if event.direction == "received":
                self.write_message(event.client_id, event.data)
        else:
            self.log(event)
        if isinstance(event, ClientConnected | ClientDisconnected):
            self.clients_changed.set()
        if isinstance(event, ClientConnected):
            self.clients.add(event.client_id)
            self.has_clients.set()
            if self.cfg.once:
                self._server.stop_accepting()
        elif isinstance(event, ClientDisconnected):
            self.clients.discard(event.client_id)
            if not self.clients:
                self.has_clients.clear()
            if self.cfg.once:
                self.once_result = event
                self.stop.set()

    # Output

    def write_message(self, client_id: int, data: str | bytes) -> None:
        if self.stdout_closed:
            return
        if self.stream_cfg.binary:
            out = data.encode() if isinstance(data, str) else data
        else:
            if isinstance(data, bytes):
                text = binary_as_text(data, use_base64=self.stream_cfg.base64)
            else:
                text = escape(data) if self.escape_output else data
            if self.tag_clients:
                text = f"[{client_id}] {text}"
            out = text.encode() + self.separator
        try:
            self.env.stdout.write(out)
            self.env.stdout.flush()
        except (BrokenPipeError, ValueError, OSError):
            self.stdout_closed = True
            self.stop.set()

    # Input

    async def _deliver(self) -> None:
        """Send what is pending to the connected clients; keep it while there are none."""
        while self.pending:
            await self.has_clients.wait()
            self.clients_changed.clear()
            if not self._app.send(self.pending[0]):
                # The clients are closing: wait until one leaves or one comes
                # (Event.wait() on a set event would not yield: no busy loop).
                await self.clients_changed.wait()
                continue
            self.pending.popleft()
        await self._app.drain()

    async def pump_input(self) -> None:
        reader: StdinReader | None = None
        while True:
            await self._deliver()
            # Not a byte of stdin is read until someone is there to get it.
            await self.has_clients.wait()
            if reader is None:
                reader = StdinReader(self.env.stdin, self.stream_cfg.chunk_size_bytes)
            chunk = await reader.read()
            try:
                if chunk:
                    self.splitter.feed(chunk, self.pending)
                    continue
                self.splitter.finish(self.pending)
            except WstoolError:
                await self._deliver()  # the lines before the bad one still go
                raise
            await self._deliver()
            return

    # The run

    async def run(self) -> ExitStatus:
        from wstool.server.core import run_listen_server
        from wstool.server.http2 import http2_setup

        error: WstoolError | None = None
        stop_signals = {signal.SIGINT: self.stop.set, signal.SIGTERM: self.stop.set}
        try:
            with handle_signals(stop_signals), prepared_tls(self.server_cfg, self.log) as tls:
                self._server, self._app = await run_listen_server(
                    self.server_cfg, self.on_event,
                    trace=self.out_cfg.verbose >= 2,
                    report_sent=self.out_cfg.json,
                    ssl_context=tls.context,
                    setup=http2_setup(self.server_cfg),
                )
                for notice in tls.trust_notices(self._server.urls):
                    self.log(notice)
                pump = asyncio.ensure_future(self.pump_input())
                stop = asyncio.ensure_future(self.stop.wait())
                try:
                    while True:
                        await asyncio.wait({pump, stop}, return_when=asyncio.FIRST_COMPLETED)
                        if stop.done():
                            break
                        exc = pump.exception()
                        if isinstance(exc, WstoolError):
                            error = exc  # bad input: one line, after a clean shutdown
                            break
                        if exc is not None:
                            raise exc
                        # End of input: keep serving until --once's client leaves
                        # or a signal.
                        await stop
                        break
                finally:
                    pump.cancel()
                    stop.cancel()
                    await self._server.shutdown(1001, "going away")
                    self.log(self._server.summary())
        finally:
            with contextlib.suppress(OSError, ValueError):
                self.env.stdout.flush()
        if error is not None:
            raise error
        return self._once_status()

    def _once_status(self) -> ExitStatus:
        return once_status(self.once_result)
