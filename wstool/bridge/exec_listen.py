"""``wstool listen --exec CMD``: every client gets its own process (websocketd's model).

An :class:`ExecApp` over the server core (``server/core.py``): the handshake, TLS,
origins, auth, subprotocols, limits, keepalive and compression are the core's,
as for ``listen``; what a connection does with its messages is this module's.
Each opened connection starts ``CMD`` (``bridge/process.py``) with a CGI-like
environment (:func:`cgi_environment`, the variables websocketd sets), and an
:class:`ExecClient` joins the two:

* client messages -> the process's stdin, written once per received chunk; the
  socket is not read while stdin is full (or the process is still starting);
* the process's stdout -> messages to the client; stdout is not read while the
  socket's write buffer is above its high-water mark;
* the process exits -> close 1000, or 1011 with "exited with status N" / "killed
  by SIGSEGV" as the reason;
* the client closes or drops -> the bridge's stop(): stdin closed, SIGTERM after
  --kill-after, then SIGKILL, to the whole process group;
* ``--max-connections N`` bounds processes: a client that comes while N
  processes are still running (some of them ending) is closed with 1013.

:class:`ExecListenFrontEnd` is the command's front-end: the server log
(``server/log.py``: -v, --json, the summary), stderr lines of the processes
prefixed with the client id, signals (SIGINT, SIGTERM, and SIGHUP unless nohup
ignores it: the processes must not outlive a closed terminal), and a shutdown that
waits until every process group is gone (a second signal SIGKILLs them at once).
With ``--once`` a process that failed by itself makes the exit status 1.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import signal
import sys
import time
import urllib.parse
from collections.abc import Coroutine, Iterator, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

from websockets.protocol import OPEN

from wstool import __version__
from wstool.bridge.process import BridgeSide, ProcessBridge, ProcessOutcome, start_process
from wstool.config import ExecConfig, ListenConfig, OutputConfig, ServerConfig
from wstool.errors import ExitStatus, WstoolError
from wstool.server.core import App, ServerConnection, ServerSideProtocol, WebSocketServer
from wstool.server.events import ClientConnected, ClientDisconnected, ServerEvent
from wstool.server.log import ServerLog, once_status, prepared_tls
from wstool.term.env import Environment
from wstool.term.render import escape
from wstool.term.signals import handle_signals

if TYPE_CHECKING:
    from websockets.http11 import Request

# RFC 6455 §5.5: a close frame's reason is at most 123 bytes.
_MAX_REASON_BYTES = 123
# The write buffer above which stdout is not read, when the transport does not say.
_DEFAULT_HIGH_WATER = 64 * 1024


# At shutdown, how long processes may take to go before the server says it waits.
_QUIET_WAIT_S = 0.5

_HANGUP_POLL_S = 0.25
_PROBE_TICKS = 4  # a probe ping every second while the socket is not read
_HANGUP_EVENTS = (getattr(select, "POLLRDHUP", 0) | select.POLLHUP | select.POLLERR
                  if hasattr(select, "poll") else 0)


def _client_hung_up(transport: asyncio.BaseTransport) -> bool:
    if transport.get_extra_info("h2_peer_ended"):
        # An HTTP/2 stream (--http2): its END_STREAM is TCP's FIN (RFC 8441 §5.1),
        # kept behind the DATA not read; the TCP socket is the connection's.
        return True
    sock = transport.get_extra_info("socket")
    if sock is None or not _HANGUP_EVENTS:
        return False
    try:
        poller = select.poll()
        poller.register(sock.fileno(), _HANGUP_EVENTS)
        return bool(poller.poll(0))
    except (OSError, ValueError):
        return False


class ProcessStarted(NamedTuple):
    client_id: int
    pid: int
    command: str
    ts: float = 0.0


class ProcessEnded(NamedTuple):
    client_id: int
    outcome: ProcessOutcome
    ts: float = 0.0


class ProcessFailed(NamedTuple):
    """The process could not be started for this client (closed 1011)."""

    client_id: int
    error: str
    ts: float = 0.0


class ProcessStderr(NamedTuple):
    client_id: int
    line: str
    ts: float = 0.0


BridgeEvent = ProcessStarted | ProcessEnded | ProcessFailed | ProcessStderr


def _header_env_name(name: str) -> str:
    return "HTTP_" + name.upper().replace("-", "_")


def _clean(value: str) -> str:
    # websocketd's appendEnv: no newlines in a variable, no surrounding blanks.
    return value.replace("\n", " ").replace("\r", " ").strip()


def cgi_environment(
    request: Request,
    peer: Any,
    *,
    client_id: int,
    secure: bool,
    parent: Mapping[str, str],
) -> dict[str, str]:
    """The environment of a client's process: PARENT plus the CGI variables
    websocketd 0.4 sets (libwebsocketd/env.go; RFC 3875 §4.1) and WSTOOL_CLIENT_ID.

    PEER is the transport's peername. Unlike websocketd, the parent environment
    is kept (websocketd keeps only --passenv's list): a program that runs under
    websocketd runs here unchanged, and one that needs PATH or HOME has them.
    ``Proxy:`` is not turned into HTTP_PROXY (httpoxy, CVE-2016-5385): a client
    must not choose the proxy of the program's own requests."""
    path, _, query = request.path.partition("?")
    headers = request.headers
    host_header = headers.get("Host", "") or ""
    server_name, server_port = _split_host(host_header, secure)
    if isinstance(peer, tuple) and len(peer) >= 2:
        remote_addr, remote_port = str(peer[0]), str(peer[1])
    else:  # a Unix socket (websocketd: "unknown_host")
        remote_addr, remote_port = "unknown_host", ""
    env = dict(parent)
    env.update({
        "SERVER_SOFTWARE": f"wstool/{__version__}",
        "REMOTE_ADDR": remote_addr,
        "REMOTE_HOST": remote_addr,  # no reverse lookup (websocketd --reverselookup=false)
        "SERVER_NAME": server_name,
        "SERVER_PORT": server_port,
        "SERVER_PROTOCOL": "HTTP/1.1",
        "GATEWAY_INTERFACE": "CGI/1.1",
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "/",
        "PATH_INFO": urllib.parse.unquote(path),
        "PATH_TRANSLATED": urllib.parse.unquote(path),
        "QUERY_STRING": query,
        # Set empty, as websocketd does, so none leaks in from the parent.
        "AUTH_TYPE": "",
        "CONTENT_LENGTH": "",
        "CONTENT_TYPE": "",
        "REMOTE_IDENT": "",
        "REMOTE_USER": "",
        "UNIQUE_ID": f"{time.time_ns()}-{client_id}",
        "REMOTE_PORT": remote_port,
        "REQUEST_URI": request.path,
        "WSTOOL_CLIENT_ID": str(client_id),
    })
    if secure:
        env["HTTPS"] = "on"
    else:
        env.pop("HTTPS", None)
    joined: dict[str, list[str]] = {}
    for name, value in headers.raw_items():
        joined.setdefault(_header_env_name(name), []).append(_clean(value))
    joined.pop("HTTP_PROXY", None)
    for name, values in joined.items():
        env[name] = ", ".join(values)
    return env


def _split_host(host: str, secure: bool) -> tuple[str, str]:
    """Host header -> SERVER_NAME, SERVER_PORT (the scheme's port when none is given)."""
    default_port = "443" if secure else "80"
    if host.startswith("["):
        end = host.find("]")
        if end < 0:
            return host, default_port
        name, rest = host[1:end], host[end + 1:]
        return name, rest[1:] if rest.startswith(":") and rest[1:].isdigit() else default_port
    name, sep, port = host.rpartition(":")
    if sep and port.isdigit():
        return name, port
    return host, default_port


class _ExecProtocol(ServerSideProtocol):
    """Client messages go to the connection's process, once per received chunk."""

    echo_messages = False
    client: ExecClient
    request: Request | None = None

    def accept(self, request: Request) -> Any:
        self.request = request  # for the process's environment
        return super().accept(request)

    def on_message(self, opcode: int, payload: bytes) -> None:
        self.client.inbox.append(payload)

    def receive_data(self, data: bytes | bytearray) -> None:
        super().receive_data(data)
        client = self.client
        if client.inbox:
            client.deliver_input()


class ExecClient(BridgeSide):
    """One client connection and its process (see the module doc)."""

    def __init__(self, app: ExecApp, conn: ServerConnection) -> None:
        self.app = app
        self.conn = conn
        self.inbox: list[bytes] = []
        self.bridge: ProcessBridge | None = None
        self.client_gone = False
        self.starting = False
        self._reading_paused = False
        self._draining = False
        self._high_water = _DEFAULT_HIGH_WATER

    # The process

    async def start(self) -> None:
        conn = self.conn
        app = self.app
        if self.client_gone:  # it left before its process could start: none is needed
            app.spawned(self)
            return
        protocol = conn.protocol
        assert isinstance(protocol, _ExecProtocol) and protocol.request is not None
        env = cgi_environment(
            protocol.request, conn.transport.get_extra_info("peername"),
            client_id=conn.client_id, secure=app.server.ssl_context is not None,
            parent=app.parent_env)
        self.starting = True
        try:
            self.bridge = await start_process(app.config, self, env)
        except OSError as exc:
            error = f"cannot start {app.config.argv[0]}: {exc.strerror or exc}"
            app.report(ProcessFailed(conn.client_id, error, ts=time.monotonic()))
            conn.fail(1011, error[:_MAX_REASON_BYTES])
            return
        finally:
            self.starting = False
            app.spawned(self)
        app.report(ProcessStarted(conn.client_id, self.bridge.pid, app.config.display,
                                  ts=time.monotonic()))
        with contextlib.suppress(OSError):
            limits = conn.transport.get_write_buffer_limits()
            self._high_water = max(limits[1], 1)
        if self.client_gone:
            self.bridge.stop()
            return
        if self.inbox:
            self.deliver_input()
        self._set_reading(paused=False)

    def deliver_input(self) -> None:
        bridge = self.bridge
        if bridge is None:
            # Still starting: keep what came, read no more until it runs.
            self._set_reading(paused=True)
            return
        inbox = self.inbox
        bridge.write_input(inbox)
        inbox.clear()

    def client_left(self) -> None:
        self.client_gone = True
        self.inbox.clear()
        if self.bridge is not None:
            self.bridge.stop()

    # BridgeSide

    def send_output(self, messages: list[tuple[int, bytes]]) -> None:
        conn = self.conn
        if self.client_gone:
            return
        conn.protocol.send_messages(messages)
        conn.flush()
        transport = conn.transport
        if (not self._draining and transport.get_write_buffer_size() > self._high_water
                and self.bridge is not None):
            self._draining = True
            self.bridge.pause_output()
            self.app.spawn(self._drain())

    async def _drain(self) -> None:
        try:
            await self.conn.drain()
        finally:
            self._draining = False
            if self.bridge is not None:
                self.bridge.resume_output()

    def stderr_line(self, line: bytes) -> None:
        self.app.report(ProcessStderr(self.conn.client_id, line.decode(errors="replace"),
                                      ts=time.monotonic()))

    def pause_input(self) -> None:
        self._set_reading(paused=True)

    def resume_input(self) -> None:
        self._set_reading(paused=False)

    def _set_reading(self, *, paused: bool) -> None:
        if paused == self._reading_paused:
            return
        self._reading_paused = paused
        transport = self.conn.transport
        if transport.is_closing():
            return
        if paused:
            transport.pause_reading()
            self._watch_hangup()
        else:
            transport.resume_reading()
            conn = self.conn
            if conn.ping_sent is not None:
                # The keepalive pong we could not read: its clock starts now.
                conn.unanswered_since = time.monotonic()

    def _watch_hangup(self, ticks: int = 0) -> None:
        """While the socket is not read, a client that goes away would go unnoticed
        and its process would live on: its FIN waits behind the data our full
        receive window does not take. So, every _PROBE_EVERY_S, a ping goes out
        (raw: the core's keepalive bookkeeping is not touched), which a closed
        socket answers with a RST, and every _HANGUP_POLL_S the socket is polled
        for the hang-up (POLLHUP, POLLERR, POLLRDHUP)."""
        if not self._reading_paused or self.client_gone:
            return
        conn = self.conn
        # The pong of a keepalive ping is behind data we do not read: keepalive must
        # not fail the connection for it (the probe below finds a client that left).
        conn.unanswered_since = None
        if _client_hung_up(conn.transport):
            conn.error = "the client went away while its process was not reading"
            conn.abort()
            return
        if ticks and ticks % _PROBE_TICKS == 0 and conn.protocol.state is OPEN:
            conn.protocol.send_ping(b"wstool-probe")
            conn.flush()
        self.app.server.loop.call_later(_HANGUP_POLL_S, self._watch_hangup, ticks + 1)

    def process_ended(self, outcome: ProcessOutcome) -> None:
        self.app.report(ProcessEnded(self.conn.client_id, outcome, ts=time.monotonic()))
        if self.client_gone:
            return
        self._set_reading(paused=False)  # its close frame must get through
        if outcome.ok:
            self.conn.close(1000, "")
        else:
            self.conn.close(1011, outcome.describe()[:_MAX_REASON_BYTES])


class ExecApp(App):
    """listen --exec: a process per connection (see the module doc)."""

    def __init__(self, config: ExecConfig, parent_env: Mapping[str, str],
                 report: Any) -> None:
        self.config = config
        self.parent_env = parent_env
        self.report = report  # a callable taking the bridge events
        self.clients: set[ExecClient] = set()  # whose process is not gone yet
        self._tasks: set[asyncio.Task[None]] = set()

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run CORO as a task, referenced until it is done."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def protocol_class(self) -> type[ServerSideProtocol]:
        return _ExecProtocol

    def configure(self, conn: ServerConnection) -> None:
        protocol = conn.protocol
        assert isinstance(protocol, _ExecProtocol)
        protocol.client = ExecClient(self, conn)

    def opened(self, conn: ServerConnection) -> None:
        protocol = conn.protocol
        assert isinstance(protocol, _ExecProtocol)
        client = protocol.client
        limit = self.server.config.max_connections
        if limit is not None and len(self.clients) >= limit:
            # Processes of clients that left are still ending (--kill-after).
            conn.close(1013, f"try again later: {len(self.clients)} processes still "
                             f"running (--max-connections {limit})")
            client.client_gone = True
            return
        self.clients.add(client)
        self.spawn(client.start())

    def closed(self, conn: ServerConnection) -> None:
        protocol = conn.protocol
        assert isinstance(protocol, _ExecProtocol)
        protocol.client.client_left()

    def spawned(self, client: ExecClient) -> None:
        """CLIENT's process started, or could not be started."""
        bridge = client.bridge
        if bridge is None:
            self.clients.discard(client)
            return
        self.spawn(self._forget_when_gone(client, bridge))

    async def _forget_when_gone(self, client: ExecClient, bridge: ProcessBridge) -> None:
        await bridge.wait_gone()
        self.clients.discard(client)

    def kill_all(self) -> int:
        """SIGKILL every process group still there; how many there were."""
        bridges = [c.bridge for c in self.clients if c.bridge is not None and not c.bridge.gone]
        for bridge in bridges:
            bridge.kill()
        return len(bridges)

    async def wait_all_gone(self, timeout_s: float) -> None:
        """Until every process group is gone (shutdown), at most TIMEOUT_S."""
        deadline = time.monotonic() + timeout_s
        while self.clients and time.monotonic() < deadline:
            await asyncio.sleep(0.01)


@contextlib.contextmanager
def _child_watcher() -> Iterator[None]:
    """Python 3.11's asyncio watches each child with a thread of its own (a thread per
    client); a pidfd in the event loop is the watcher 3.12 picks by itself where the
    kernel has pidfds (Linux 5.3+). Not with uvloop, which watches its children itself."""
    if (sys.version_info >= (3, 12) or not hasattr(os, "pidfd_open")
            or type(asyncio.get_event_loop_policy()) is not asyncio.DefaultEventLoopPolicy):
        yield
        return
    try:
        os.close(os.pidfd_open(os.getpid()))
    except OSError:  # an older kernel, or a sandbox without the call
        yield
        return
    previous = asyncio.get_child_watcher()
    watcher = asyncio.PidfdChildWatcher()
    watcher.attach_loop(asyncio.get_running_loop())
    asyncio.set_child_watcher(watcher)
    try:
        yield
    finally:
        asyncio.set_child_watcher(previous)
        watcher.close()


def bridge_event_json(event: BridgeEvent) -> dict[str, Any]:
    # The two times of every server event (README "JSON events"): the wall clock now,
    # and the monotonic time the event was made at.
    ts = {"ts": time.time(), "mono": event.ts}
    if isinstance(event, ProcessStarted):
        return {"event": "process", "client": event.client_id, "pid": event.pid,
                "command": event.command, **ts}
    if isinstance(event, ProcessEnded):
        code = event.outcome.returncode
        return {"event": "process_exit", "client": event.client_id, "pid": event.outcome.pid,
                "status": code if code >= 0 else None,
                "signal": -code if code < 0 else None,
                # The signal wstool sent last (its client had left), if any.
                "sent_signal": event.outcome.signalled, **ts}
    if isinstance(event, ProcessFailed):
        return {"event": "process_error", "client": event.client_id, "error": event.error,
                **ts}
    return {"event": "stderr", "client": event.client_id, "text": event.line, **ts}


class ExecListenFrontEnd:
    """``listen --exec``'s front-end: logs, signals, --once, shutdown (module doc)."""

    def __init__(
        self,
        env: Environment,
        server_config: ServerConfig,
        listen_config: ListenConfig,
        exec_config: ExecConfig,
        output_config: OutputConfig,
    ) -> None:
        self.env = env
        self.server_cfg = server_config
        self.cfg = listen_config
        self.exec_cfg = exec_config
        self.out_cfg = output_config
        self.log = ServerLog(env, output_config)
        self.stop = asyncio.Event()
        self.once_result: ClientDisconnected | None = None
        # --once: how its process ended (it decides the exit status when it failed).
        self.once_outcome: ProcessOutcome | None = None
        self.once_failure: str | None = None  # it could not be started
        self._server: WebSocketServer | None = None
        self._app: ExecApp | None = None
        self._killing = False  # a second signal came: the processes were killed

    def _on_stop_signal(self) -> None:
        """SIGINT/SIGTERM: stop; once stopping, kill the processes still there."""
        if not self.stop.is_set():
            self.stop.set()
            return
        app = self._app
        if app is None or self._killing:
            return
        self._killing = True
        count = app.kill_all()
        if count:
            self.log.diag(f"killing {count} process{'es' if count > 1 else ''} (SIGKILL)")

    def on_event(self, event: ServerEvent) -> None:
        self.log(event)
        if self.cfg.once:
            if isinstance(event, ClientConnected) and self._server is not None:
                self._server.stop_accepting()
            elif isinstance(event, ClientDisconnected):
                self.once_result = event
                self.stop.set()

    def on_bridge_event(self, event: BridgeEvent) -> None:
        if self.cfg.once:
            if isinstance(event, ProcessEnded):
                self.once_outcome = event.outcome
            elif isinstance(event, ProcessFailed):
                self.once_failure = event.error
        if isinstance(event, ProcessStderr):
            # The process's own diagnostics: always shown, as websocketd does.
            if self.out_cfg.json:
                self.log.json_line(bridge_event_json(event))
            else:
                self.env.write_stderr_line(f"[{event.client_id}] {escape(event.line)}")
            return
        if self.out_cfg.json:
            self.log.json_line(bridge_event_json(event))
            return
        if isinstance(event, ProcessFailed):
            self.log.diag(f"[{event.client_id}] {event.error}")
        elif not self.out_cfg.verbose:
            return
        elif isinstance(event, ProcessStarted):
            self.log.diag(f"[{event.client_id}] process {event.pid} started: {event.command}")
        elif isinstance(event, ProcessEnded):
            self.log.diag(f"[{event.client_id}] process {event.outcome.pid} "
                          f"{event.outcome.describe()}")

    async def run(self) -> ExitStatus:
        from wstool.server.http2 import http2_setup

        cfg = self.server_cfg
        setup = http2_setup(cfg)  # --http2: h2 missing is a usage error before anything
        app = ExecApp(self.exec_cfg._replace(max_line_bytes=cfg.max_size_bytes),
                      self.env.environ, self.on_bridge_event)
        self._app = app
        stop_signals = {signal.SIGINT: self._on_stop_signal,
                        signal.SIGTERM: self._on_stop_signal}
        # The terminal closed: the processes, each in a session of its own, get no
        # SIGHUP; wstool dying of it would leave them running. Not under nohup, whose
        # SIG_IGN says the user wants wstool to outlive the terminal.
        if signal.getsignal(signal.SIGHUP) is not signal.SIG_IGN:
            stop_signals[signal.SIGHUP] = self._on_stop_signal
        with (handle_signals(stop_signals), prepared_tls(cfg, self.log) as tls,
              _child_watcher()):
            server = self._server = WebSocketServer(
                cfg, app, self.on_event, trace=self.out_cfg.verbose >= 2,
                ssl_context=tls.context)
            if setup is not None:
                setup(server)
            await server.start()
            for notice in tls.trust_notices(server.urls):
                self.log(notice)
            try:
                await self.stop.wait()
            finally:
                await server.shutdown(1001, "going away")
                # Each process: stdin closed, SIGTERM, SIGKILL, --kill-after apart.
                # Most are gone at once (stdin's end); say what a longer wait is for.
                await app.wait_all_gone(_QUIET_WAIT_S)
                if app.clients and not self._killing:
                    count = len(app.clients)
                    self.log.diag(
                        f"waiting for {count} process{'es' if count > 1 else ''} to end "
                        f"(SIGTERM, then SIGKILL, --kill-after {self.exec_cfg.kill_after_s:g} "
                        "s apart); Ctrl-C again kills them now")
                await app.wait_all_gone(2 * self.exec_cfg.kill_after_s + 3.0)
                self.log(server.summary())
        if self.once_failure is not None:
            error = WstoolError(self.once_failure)
            error.said = True  # on_bridge_event's line said it
            raise error
        outcome = self.once_outcome
        if outcome is not None and not outcome.ok and outcome.signalled is None:
            # The process failed by itself (the client got 1011 for it): that is the
            # error, as with connect --exec, not how the client answered the close.
            raise WstoolError(f"{self.exec_cfg.display} (pid {outcome.pid}) "
                              f"{outcome.describe()}")
        return once_status(self.once_result)
