"""``wstool listen`` on a terminal: the REPL of ``repl.py`` over a listening server.

:class:`ListenTarget` implements ``repl.ReplTarget``: a typed line goes to every
connected client; each client message is shown with its client id as the
label. Extra commands (``commands.py`` tables are data, so this table extends
the connect one):

* ``/clients`` lists the connected clients;
* ``/to ID MESSAGE`` sends a text message to one client;
* ``/kick ID [code [reason]]`` closes one client (default 1000).

``/ping [data]`` pings every client at once and shows one line per client (its
round-trip time, or no pong within ``--ping-timeout``). ``/close [code [reason]]``
and ``/quit`` (Ctrl-D) close every client and exit. ``/pong`` is per connection and
not offered here.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeAlias, assert_never

from wstool.config import ListenConfig, OutputConfig, ReplConfig, ServerConfig
from wstool.errors import ExitStatus
from wstool.events import EventSink, Message, Notice
from wstool.server.core import ListenApp, WebSocketServer, run_listen_server
from wstool.server.events import (
    ClientConnected,
    ClientDisconnected,
    ClientMessage,
    ClientRejected,
    ServerEvent,
    ServerListening,
)
from wstool.server.http2 import http2_setup
from wstool.server.log import (
    disconnect_line,
    once_status,
    prepared_tls,
    server_handshake_lines,
    summary_line,
)
from wstool.term.commands import (
    CONNECT_COMMANDS,
    CommandError,
    CommandSpec,
    CommandTable,
    close_code_error,
    parse_ping,
)
from wstool.term.env import Environment
from wstool.term.message_view import MessageMatch, regex_filter
from wstool.term.render import escape
from wstool.term.repl import Repl, ReplUI, TargetStatus, TargetUnavailable

# Records of the listen-only commands.


@dataclass(frozen=True, slots=True)
class ListClients:
    pass


@dataclass(frozen=True, slots=True)
class SendTo:
    client_id: int
    text: str


@dataclass(frozen=True, slots=True)
class Kick:
    client_id: int
    code: int = 1000
    reason: str = ""


# What ``ListenTarget.execute`` gets: the REPL keeps the core commands.
ListenCommand: TypeAlias = ListClients | SendTo | Kick


def _client_id(text: str, usage: str) -> int | CommandError:
    try:
        client_id = int(text.lstrip("#"), 10)
    except ValueError:
        return CommandError(f"invalid client id '{text}': a number from /clients ({usage})")
    return client_id


def parse_clients(rest: str) -> ListClients | CommandError:
    return CommandError("/clients takes no argument") if rest.strip() else ListClients()


def parse_to(rest: str) -> SendTo | CommandError:
    usage = "usage: /to ID MESSAGE"
    id_text, sep, text = rest.partition(" ")
    if not id_text.strip() or not sep:
        return CommandError(usage)
    client_id = _client_id(id_text.strip(), usage)
    if isinstance(client_id, CommandError):
        return client_id
    return SendTo(client_id, text)


def parse_kick(rest: str) -> Kick | CommandError:
    usage = "usage: /kick ID [code [reason]]"
    parts = rest.strip().split(None, 2)
    if not parts:
        return CommandError(usage)
    client_id = _client_id(parts[0], usage)
    if isinstance(client_id, CommandError):
        return client_id
    code = 1000
    if len(parts) > 1:
        try:
            code = int(parts[1], 10)
        except ValueError:
            return CommandError(f"invalid close code '{parts[1]}': expected a number, e.g. 1000")
        error = close_code_error(code)
        if error is not None:
            return CommandError(error)
    reason = parts[2] if len(parts) > 2 else ""
    if len(reason.encode()) > 123:
        return CommandError("close reason over 123 bytes (RFC 6455 §5.5)")
    return Kick(client_id, code, reason)


_LISTEN_SPECS: list[CommandSpec[ListenCommand]] = [
    CommandSpec("clients", "", "list the connected clients", parse_clients),
    CommandSpec("to", "ID MESSAGE", "send a text message to one client", parse_to, "text"),
    CommandSpec("kick", "ID [code [reason]]", "close one client's connection (default 1000)",
                parse_kick, "text"),
    CommandSpec("ping", "[data]", "ping every client; shows each pong's round-trip time",
                parse_ping),
]
LISTEN_COMMANDS: CommandTable[ListenCommand] = CONNECT_COMMANDS.extend(_LISTEN_SPECS)


@dataclass
class _Client:
    client_id: int
    peer: str
    path: str
    subprotocol: str | None
    connected_at: float
    handshake_lines: list[str]


class ListenTarget:
    """``listen`` as a ``repl.ReplTarget`` (see the module doc)."""

    def __init__(
        self,
        server_config: ServerConfig,
        listen_config: ListenConfig,
        output_config: OutputConfig,
    ) -> None:
        self.server_cfg = server_config
        self.cfg = listen_config
        self.out_cfg = output_config
        self.commands: CommandTable[ListenCommand] = LISTEN_COMMANDS
        self.ui: ReplUI | None = None  # set before run(): labels need the REPL itself
        self.url = ""
        self.clients: dict[int, _Client] = {}
        self._kicked: set[int] = set()  # closed by /kick, not yet disconnected
        self.once_result: ClientDisconnected | None = None
        self._server: WebSocketServer | None = None
        self._app: ListenApp | None = None
        self._stop = asyncio.Event()
        self._close = (1001, "going away")
        self._sent = 0
        self._received = 0
        self._last_rtt_s: float | None = None  # of the latest /ping answered

    # Server events -> the REPL

    def _state(self, line: str) -> None:
        if self.ui is not None:
            self.ui.show_state(line)

    def _on_server_event(self, event: ServerEvent) -> None:
        ui = self.ui
        if isinstance(event, ClientMessage):
            if event.direction == "received":
                self._received += 1
                if ui is not None:
                    ui.show_event(Message("received", event.data, ts=event.ts),
                                  label=f"[{event.client_id}]")
        elif isinstance(event, ServerListening):
            self.url = event.url
            self._state(f"listening on {event.url}")
        elif isinstance(event, Notice):
            self._state(event.text)
        elif isinstance(event, ClientConnected):
            self.clients[event.client_id] = _Client(
                event.client_id, event.peer, event.path, event.subprotocol, time.monotonic(),
                server_handshake_lines(event.handshake,
                                       show_secrets=self.out_cfg.show_secrets),
            )
            extra = f", subprotocol {escape(event.subprotocol)}" if event.subprotocol else ""
            self._state(f"[{event.client_id}] connected from {event.peer} "
                        f"to {escape(event.path)}{extra}")
            if self.cfg.once and self._server is not None:
                self._server.stop_accepting()
        elif isinstance(event, ClientDisconnected):
            self.clients.pop(event.client_id, None)
            kicked = event.client_id in self._kicked
            self._kicked.discard(event.client_id)
            self._state(disconnect_line(event, kicked=kicked))
            if self.cfg.once:
                self.once_result = event
                self._stop.set()
        elif isinstance(event, ClientRejected) and self.out_cfg.verbose:
            status = f"HTTP {event.status}" if event.status is not None else "dropped"
            self._state(f"[{event.client_id}] {status} for {event.peer}: "
                        f"{escape(event.reason)}")

    # ReplTarget

    async def run(self, sink: EventSink) -> ExitStatus:
        with prepared_tls(self.server_cfg, self._on_server_event) as tls:
            self._server, self._app = await run_listen_server(
                self.server_cfg, self._on_server_event,
                trace=False, ssl_context=tls.context,
                setup=http2_setup(self.server_cfg),
            )
            for notice in tls.trust_notices(self._server.urls):
                self._on_server_event(notice)
            try:
                await self._stop.wait()
            finally:
                await self._server.shutdown(*self._close)
                self._state(summary_line(self._server.summary()))
        return once_status(self.once_result)

    def status(self) -> TargetStatus:
        count = len(self.clients)
        status = TargetStatus(
            url=self.url or "(starting)",
            state="listening" if not self._stop.is_set() else "closing",
            messages_sent=self._sent,
            messages_received=self._received,
            last_rtt_s=self._last_rtt_s,
            extra=f"{count} client{'s' if count != 1 else ''}",
        )
        if self._server is None:
            return status
        # The server's live totals (a message sent to 3 clients counts 3 times).
        totals = self._server.summary()
        return dataclasses.replace(
            status,
            messages_sent=totals.messages_out,
            messages_received=totals.messages_in,
            bytes_sent=totals.bytes_out,
            bytes_received=totals.bytes_in,
        )

    def _require_app(self) -> ListenApp:
        if self._app is None:
            raise TargetUnavailable("the server is not listening yet")
        return self._app

    async def send(self, data: str | bytes) -> None:
        app = self._require_app()
        sent = app.send(data)
        if not sent:
            raise TargetUnavailable("no client connected")
        self._sent += sent
        if self.ui is not None:
            self.ui.show_event(Message("sent", data, ts=time.monotonic()),
                               label=f"[all {sent}]")
        await app.drain()

    async def ping(self, data: bytes | None) -> float | None:
        """/ping: every client at once; one line each, with its round-trip time."""
        server = self._server
        conns = [] if server is None else sorted(server.open_connections,
                                                  key=lambda c: c.client_id)
        if not conns:
            raise TargetUnavailable("no client connected")
        timeout_s = self.server_cfg.ping_timeout_s or 10.0
        results = await asyncio.gather(*(c.ping_and_wait(data, timeout_s) for c in conns),
                                       return_exceptions=True)
        lines = []
        for conn, result in zip(conns, results, strict=True):
            if isinstance(result, float):
                self._last_rtt_s = result
                lines.append(f"[{conn.client_id}] pong in {result * 1000:.2f} ms")
            elif isinstance(result, TimeoutError):
                lines.append(f"[{conn.client_id}] no pong within {timeout_s:g} s")
            else:
                lines.append(f"[{conn.client_id}] closed before its pong")
        if self.ui is not None:
            self.ui.show_info(lines)
        return None

    def pong(self, data: bytes) -> None:
        raise TargetUnavailable("/pong is per connection; listen has several")

    async def close(self, code: int, reason: str) -> None:
        self._close = (code, reason)
        self._stop.set()

    def headers_lines(self) -> list[str]:
        if not self.clients:
            return ["no client connected"]
        lines: list[str] = []
        for client in self.clients.values():
            lines.append(f"[{client.client_id}] {client.peer}")
            lines.extend(client.handshake_lines)
        return lines

    def stats_lines(self) -> list[str]:
        if self._server is None:
            return ["not listening yet"]
        return [summary_line(self._server.summary()),
                f"{len(self.clients)} connected now"]

    async def execute(self, command: ListenCommand, ui: ReplUI) -> bool:
        match command:
            case ListClients():
                now = time.monotonic()
                if not self.clients:
                    ui.show_info(["no client connected"])
                else:
                    ui.show_info([
                        f"[{c.client_id}] {c.peer} {escape(c.path)}"
                        + (f" subprotocol {escape(c.subprotocol)}" if c.subprotocol else "")
                        + f", connected {now - c.connected_at:.0f}s ago"
                        for c in self.clients.values()
                    ])
            case SendTo(client_id=client_id, text=text):
                app = self._require_app()
                if client_id not in self.clients or not app.send(text, [client_id]):
                    ui.show_error(f"no client {client_id} (see /clients)")
                    return True
                self._sent += 1
                ui.show_event(Message("sent", text, ts=time.monotonic()),
                              label=f"[{client_id}]")
                await app.drain()
            case Kick(client_id=client_id, code=code, reason=reason):
                server = self._server
                conn = None if server is None else next(
                    (c for c in server.open_connections if c.client_id == client_id), None)
                if conn is None:
                    ui.show_error(f"no client {client_id} (see /clients)")
                else:
                    self._kicked.add(client_id)
                    conn.close(code, reason)
            case _:
                assert_never(command)
        return True


async def run_listen_repl(
    env: Environment,
    server_config: ServerConfig,
    listen_config: ListenConfig,
    output_config: OutputConfig,
    repl_config: ReplConfig,
    *,
    compile_filter: Callable[[str], MessageMatch] = regex_filter,
) -> ExitStatus:
    """``listen`` on a terminal: the entry point ``cli.py`` calls. COMPILE_FILTER:
    ``/filter``'s patterns (the CLI passes connect's, with ``json:``)."""
    target = ListenTarget(server_config, listen_config, output_config)
    repl = Repl(env, repl_config, target, compile_filter=compile_filter)
    target.ui = repl
    return await repl.run()
