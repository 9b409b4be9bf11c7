"""Front-end of the servers: start-up lines, -v/-vv/--json logs, summary.

``serve-echo`` runs entirely here; ``listen`` uses :class:`ServerLog` and
:func:`prepared_tls` too, and both ``listen`` front-ends take ``--once``'s exit
status from :func:`once_status` (here, so that front-ends never import each other).
Diagnostics go to stderr; ``--json`` writes events as
JSON lines on stdout (the shared ``--json`` help: "events as JSON lines on
stdout"). Remote text (paths, reasons, subprotocols, frames) is escaped.
"""

from __future__ import annotations

import contextlib
import shutil
import ssl
import tempfile
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from typing import NamedTuple

from wstool.config import OutputConfig, ServerConfig
from wstool.errors import ClosedAbnormally, ExitStatus, ProtocolFailure, describe_close_code
from wstool.events import FrameSeen, Handshake, Notice, Ping, Pong
from wstool.server.events import (
    ClientConnected,
    ClientDisconnected,
    ClientMessage,
    ClientRejected,
    H2ConnectionEvent,
    H2StreamEvent,
    ServerEvent,
    ServerListening,
    ServerSummary,
)
from wstool.term.env import Environment
from wstool.term.jsonl import write_json_line
from wstool.term.render import (
    JsonObject,
    escape,
    event_times,
    handshake_lines,
    payload_fields,
    trace_frame_line,
)


def server_event_json(event: ServerEvent) -> JsonObject | None:
    """The ``--json`` schema of the servers (README "serve-echo")."""
    ts = event_times(event.ts)
    if isinstance(event, ServerListening):
        return {"event": "listening", "url": event.url, **ts}
    if isinstance(event, ClientConnected):
        return {"event": "connect", "client": event.client_id, "peer": event.peer,
                "path": event.path, "subprotocol": event.subprotocol,
                "extensions": list(event.extensions), **ts}
    if isinstance(event, ClientRejected):
        return {"event": "reject", "client": event.client_id, "peer": event.peer,
                "status": event.status, "reason": event.reason, **ts}
    if isinstance(event, ClientMessage):
        return {"event": "message", "client": event.client_id, "direction": event.direction,
                **payload_fields(event.data), **ts}
    if isinstance(event, ClientDisconnected):
        return {"event": "disconnect", "client": event.client_id, "peer": event.peer,
                "code": event.code, "reason": event.reason,
                "initiated_by": event.initiated_by, "messages_in": event.messages_in,
                "messages_out": event.messages_out, "error": event.error, **ts}
    if isinstance(event, ServerSummary):
        return {"event": "summary", "connections": event.connections,
                "messages_in": event.messages_in, "messages_out": event.messages_out,
                "bytes_in": event.bytes_in, "bytes_out": event.bytes_out, **ts}
    if isinstance(event, H2ConnectionEvent):
        return {"event": "h2_connection", "peer": event.peer, "state": event.state,
                "via": event.via, "streams": event.streams, "error": event.error, **ts}
    if isinstance(event, H2StreamEvent):
        return {"event": "h2_stream", "client": event.client_id, "peer": event.peer,
                "stream": event.stream_id, "state": event.state, "method": event.method,
                "path": event.path, "protocol": event.protocol, "error": event.error, **ts}
    if isinstance(event, FrameSeen):
        return {"event": "frame", "client": event.conn, "direction": event.direction,
                "frame": str(event.frame), **ts}
    return None


def server_handshake_lines(handshake: Handshake, *, show_secrets: bool = False) -> list[str]:
    """``render.handshake_lines`` from the server's side: ``<`` the request it
    received, ``>`` the response it sent (the stable vocabulary: ``>`` sent)."""
    swap = {">": "<", "<": ">"}
    return [swap.get(line[:1], line[:1]) + line[1:]
            for line in handshake_lines(handshake, show_secrets=show_secrets)]


def disconnect_line(event: ClientDisconnected, *, kicked: bool = False) -> str:
    """KICKED: the listen REPL's /kick closed it, so the server is "us" (issue 10)."""
    by = {"client": "by the client", "server": "by us (kick)" if kicked else "by the server",
          None: "without a closing handshake"}[event.initiated_by]
    reason = f" {escape(event.reason)!r}" if event.reason else ""
    line = (f"[{event.client_id}] closed {by}: {event.code} "
            f"({describe_close_code(event.code)}){reason}; "
            f"{event.messages_in} in, {event.messages_out} out")
    if event.error:
        line += f"; {escape(event.error)}"
    return line


def summary_line(event: ServerSummary) -> str:
    return (f"summary: {event.connections} connection{'s' if event.connections != 1 else ''}; "
            f"messages {event.messages_in} in, {event.messages_out} out; "
            f"bytes {event.bytes_in} in, {event.bytes_out} out")


class ServerLog:
    """Renders server events: stderr lines by verbosity, or JSON lines on stdout."""

    def __init__(self, env: Environment, out_cfg: OutputConfig) -> None:
        self.env = env
        self.cfg = out_cfg

    def diag(self, line: str) -> None:
        self.env.write_stderr_line(f"wstool: {line}")

    def json_line(self, obj: JsonObject) -> None:
        try:
            write_json_line(self.env.stdout, obj)
            self.env.stdout.flush()
        except (OSError, ValueError):
            pass

    def __call__(self, event: ServerEvent) -> None:
        verbose = self.cfg.verbose
        if self.cfg.json:
            obj = server_event_json(event)
            if obj is not None and (not isinstance(event, FrameSeen) or verbose >= 2):
                self.json_line(obj)
            if isinstance(event, ServerListening):
                self.diag(f"listening on {event.url}")
            return
        if isinstance(event, ServerListening):
            self.diag(f"listening on {event.url}")
        elif isinstance(event, Notice):
            self.diag(event.text)
        elif isinstance(event, ServerSummary):
            self.diag(summary_line(event))
        elif not verbose:
            return
        elif isinstance(event, ClientConnected):
            extra = f", subprotocol {escape(event.subprotocol)}" if event.subprotocol else ""
            if event.extensions:
                extra += ", " + ", ".join(escape(e) for e in event.extensions)
            self.diag(f"[{event.client_id}] connected from {event.peer} "
                      f"to {escape(event.path)}{extra}")
            if verbose >= 2:
                for line in server_handshake_lines(event.handshake,
                                                   show_secrets=self.cfg.show_secrets):
                    self.env.write_stderr_line(f"[{event.client_id}] {line}")
        elif isinstance(event, ClientRejected):
            status = f"HTTP {event.status}" if event.status is not None else "dropped"
            self.diag(f"[{event.client_id}] {status} for {event.peer}: {escape(event.reason)}")
        elif isinstance(event, ClientDisconnected):
            self.diag(disconnect_line(event))
        elif isinstance(event, H2ConnectionEvent):
            how = "TLS, ALPN h2" if event.via == "h2" else "h2c, prior knowledge"
            if event.state == "opened":
                self.diag(f"HTTP/2 connection from {event.peer} ({how})")
            else:
                line = (f"HTTP/2 connection from {event.peer} closed; "
                        f"{event.streams} stream{'s' if event.streams != 1 else ''}")
                if event.error:
                    line += f"; {escape(event.error)}"
                self.diag(line)
        elif isinstance(event, H2StreamEvent):
            what = f"{escape(event.method)} {escape(event.path)}"
            if event.protocol is not None:
                what += f" (:protocol {escape(event.protocol)})"
            line = f"[{event.client_id}] h2 stream {event.stream_id} {event.state}: {what}"
            if event.error:
                line += f"; {escape(event.error)}"
            self.diag(line)
        elif isinstance(event, FrameSeen) and verbose >= 2:
            # frame-dump's vocabulary, as `connect --trace` (escaped there).
            line = trace_frame_line(event.direction, event.frame)
            self.env.write_stderr_line(f"[{event.conn}] {escape(line)}")
        elif isinstance(event, Pong) and verbose >= 2 and event.rtt_s is not None:
            self.diag(f"pong in {event.rtt_s * 1000:.1f} ms")
        elif isinstance(event, Ping) and verbose >= 2 and event.direction == "received":
            self.diag("ping received")


class ServerTLS(NamedTuple):
    """What ``prepared_tls`` made: the SSL context, and with --self-signed the
    certificate file a client must trust."""

    context: ssl.SSLContext | None
    self_signed_cafile: str | None = None

    def trust_notices(self, urls: Sequence[str]) -> list[Notice]:
        """The ready-to-paste connect line, with the port the server really got (-p 0)."""
        if self.self_signed_cafile is None:
            return []
        notices = []
        ports: set[int] = set()
        for url in urls:
            port = urllib.parse.urlsplit(url).port
            if url.startswith("wss://") and port is not None and port not in ports:
                ports.add(port)
                notices.append(Notice(f"trust it with: wstool connect --cacert "
                                      f"{self.self_signed_cafile} wss://localhost:{port}/"))
        return notices


@contextlib.contextmanager
def prepared_tls(
    config: ServerConfig, log: Callable[[ServerEvent], None]
) -> Iterator[ServerTLS]:
    """The server's SSL context; with --self-signed, a throwaway cert removed on exit."""
    from wstool.tls import self_signed_certificate, server_context

    if config.self_signed:
        directory = tempfile.mkdtemp(prefix="wstool-cert-")
        try:
            certfile, keyfile, fingerprint = self_signed_certificate(directory)
            log(Notice(f"self-signed certificate for localhost, 127.0.0.1, ::1 in {certfile}"))
            log(Notice(f"SHA-256 fingerprint {fingerprint}"))
            yield ServerTLS(server_context(certfile, keyfile), certfile)
        finally:
            shutil.rmtree(directory, ignore_errors=True)
    elif config.certfile is not None:
        yield ServerTLS(server_context(config.certfile, config.keyfile, config.key_password))
    else:
        yield ServerTLS(None)


# A client's close that ends `listen --once` with status 0 (1001: a browser
# tab going away is a normal way to leave).
CLEAN_CLIENT_CLOSE_CODES = frozenset({1000, 1001, 1005})


def once_status(event: ClientDisconnected | None) -> ExitStatus:
    """``--once``: the exit status from how the client left (raises the error ones)."""
    if event is None:
        return ExitStatus.OK
    if event.protocol_error:
        raise ProtocolFailure(f"client {event.client_id}: {event.error}")
    if event.error:
        raise ClosedAbnormally(f"client {event.client_id}: {event.error}")
    if event.code in CLEAN_CLIENT_CLOSE_CODES:
        return ExitStatus.OK
    if event.code == 1006:
        raise ClosedAbnormally(
            f"client {event.client_id} left without a closing handshake (1006)"
        )
    reason = f": {event.reason}" if event.reason else ""
    raise ClosedAbnormally(
        f"client {event.client_id} closed with {event.code} "
        f"({describe_close_code(event.code)}){reason}"
    )
