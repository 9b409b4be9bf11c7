"""Relay core for ``frame-dump --listen``: forward bytes unchanged, decode on the side.

Each accepted client gets its own connection to the upstream URL. The client's
upgrade request is forwarded with its Host (and, when asked, path, Origin,
Authorization, User-Agent and ``-H`` headers) pointed at the upstream, like any
reverse proxy; after that every byte goes through as it came, in both
directions, written before it is decoded so that the relay adds no delay and
changes nothing, invalid frames included (that is the point: issue 5).

Decoding is the pure ``frames.FrameDecoder``, one per direction; the server's
101 response tells the client-side decoder whether permessage-deflate was
accepted and with which parameters (RFC 7692 §7.1). This module never prints:
it emits ``RelayEvent``s (``relay_events.py``) that ``dump.py`` renders.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
import urllib.parse
from dataclasses import dataclass

from websockets.headers import build_authorization_basic

from wstool.config import DEFAULT_MAX_BUFFER_BYTES, ConnectConfig
from wstool.dump.events import (
    RelayConnClosed,
    RelayConnOpened,
    RelayDecoded,
    RelayError,
    RelayEventSink,
    RelayListening,
)
from wstool.errors import WstoolError
from wstool.events import Notice
from wstool.protocol.frames import (
    Decoded,
    DecodeError,
    FrameDecoder,
    HttpHead,
    Side,
    apply_upgrade_response,
    parse_http_head,
)
from wstool.tls import client_context

READ_CHUNK_BYTES = 64 * 1024
MAX_REQUEST_HEAD_BYTES = 64 * 1024
_BAD_GATEWAY = (b"HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain\r\n"
                b"Connection: close\r\nContent-Length: %d\r\n\r\n%s")


@dataclass(frozen=True)
class RelayConfig:
    """``frame-dump --listen HOST:PORT URL`` (built by ``cli.options.relay_config``)."""

    listen_host: str
    listen_port: int
    upstream: ConnectConfig  # target, TLS, -H headers and --open-timeout of URL
    # Payload bytes each decoder keeps (frame-dump --max-size); the relay
    # forwards every byte whatever this is.
    max_buffer_bytes: int | None = DEFAULT_MAX_BUFFER_BYTES


def _upstream_address(cfg: ConnectConfig) -> tuple[str, int, str]:
    """Host, port and the Host header value for the upstream URL."""
    parts = urllib.parse.urlsplit(cfg.target.url)
    host = parts.hostname or "localhost"
    default = 443 if cfg.target.secure else 80
    port = parts.port or default
    shown = f"[{host}]" if ":" in host else host
    host_header = shown if port == default else f"{shown}:{port}"
    return host, port, host_header


def upstream_request(head: HttpHead, cfg: ConnectConfig) -> bytes:
    """The client's upgrade request as forwarded: Host and the asked-for headers replaced."""
    _host, _port, host_header = _upstream_address(cfg)
    parts = urllib.parse.urlsplit(cfg.target.url)
    start = head.start_line
    words = start.split(" ")
    url_target = parts.path + (f"?{parts.query}" if parts.query else "")
    if len(words) == 3 and url_target not in ("", "/"):
        start = f"{words[0]} {url_target} {words[2]}"
    replace: dict[str, tuple[str, str]] = {"host": ("Host", cfg.host_header or host_header)}
    if cfg.origin:
        replace["origin"] = ("Origin", cfg.origin)
    if cfg.auth is not None:
        replace["authorization"] = ("Authorization", build_authorization_basic(*cfg.auth))
    for name, value in cfg.headers:
        replace[name.lower()] = (name, value)
    if cfg.user_agent:  # after the -H extras: a -H 'User-Agent' keeps its place among them
        replace["user-agent"] = ("User-Agent", cfg.user_agent)
    lines = [start]
    done: set[str] = set()
    for name, value in head.headers:
        key = name.lower()
        if key in replace:
            if key not in done:
                new_name, new_value = replace[key]
                lines.append(f"{new_name}: {new_value}")
                done.add(key)
            continue
        lines.append(f"{name}: {value}")
    for key, (name, value) in replace.items():
        if key not in done:
            lines.append(f"{name}: {value}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace")


def _describe_connect_error(exc: BaseException, url: str, timeout_s: float | None) -> str:
    if isinstance(exc, TimeoutError):
        return f"no connection to {url} within --open-timeout {timeout_s}s"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return (f"TLS certificate of {url} not trusted: {exc.verify_message} "
                "(trust its CA with --cacert FILE, or skip the check with -k/--insecure)")
    if isinstance(exc, ssl.SSLError):
        return f"TLS handshake with {url} failed: {exc.reason or exc}"
    if isinstance(exc, ConnectionRefusedError):
        return f"connection refused by {url}"
    if isinstance(exc, OSError):
        return f"cannot connect to {url}: {exc.strerror or exc}"
    return f"cannot connect to {url}: {exc}"


class Relay:
    """Accepts clients on ``listen_host:listen_port``; see the module doc."""

    def __init__(self, cfg: RelayConfig, sink: RelayEventSink) -> None:
        self.cfg = cfg
        self.sink = sink
        self.connections = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._ssl: ssl.SSLContext | None = None
        self.address: tuple[str, int] | None = None

    async def start(self) -> tuple[str, int]:
        upstream = self.cfg.upstream
        if upstream.target.secure:
            self._ssl = client_context(upstream.tls)  # bad --cacert etc. fail here, once
            if upstream.tls.insecure:
                self.sink(Notice("warning: -k/--insecure: the server's TLS certificate is "
                                 "not verified"))
        try:
            self._server = await asyncio.start_server(
                self._accept, self.cfg.listen_host, self.cfg.listen_port)
        except OSError as exc:
            raise WstoolError(
                f"cannot listen on {self.cfg.listen_host}:{self.cfg.listen_port}: "
                f"{exc.strerror or exc}", hint="choose another --listen address") from None
        sockname = self._server.sockets[0].getsockname()
        self.address = (sockname[0], sockname[1])
        self.sink(RelayListening(sockname[0], sockname[1], upstream.target.url,
                                 ts=time.monotonic()))
        return self.address

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await self._server.wait_closed()

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        task = asyncio.ensure_future(self._relay(self.connections, reader, writer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _open_upstream(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        cfg = self.cfg.upstream
        host, port, _ = _upstream_address(cfg)
        server_hostname = None
        if self._ssl is not None:
            server_hostname = cfg.tls.server_name or host
        return await asyncio.wait_for(
            asyncio.open_connection(host, port, ssl=self._ssl,
                                    server_hostname=server_hostname),
            cfg.open_timeout_s,
        )

    async def _relay(self, conn: int, reader: asyncio.StreamReader,
                     writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        peer_text = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        self.sink(RelayConnOpened(conn, peer_text, ts=time.monotonic()))
        counts = {"client": 0, "server": 0}
        reason = "closed"
        upstream_writer: asyncio.StreamWriter | None = None
        try:
            try:
                head_bytes = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError:
                reason = "the client closed before sending an upgrade request"
                return
            except asyncio.LimitOverrunError:
                self.sink(RelayError(conn, "the client's request head is too long "
                                           f"(over {MAX_REQUEST_HEAD_BYTES} bytes)",
                                     protocol=True))
                reason = "bad request"
                return
            try:
                head = parse_http_head(head_bytes)
            except DecodeError as exc:
                self.sink(RelayError(conn, f"the client's request: {exc}", protocol=True))
                reason = "bad request"
                return
            forwarded = upstream_request(head, self.cfg.upstream)
            try:
                up_reader, upstream_writer = await self._open_upstream()
            except (OSError, TimeoutError, ssl.SSLError) as exc:
                message = _describe_connect_error(exc, self.cfg.upstream.target.url,
                                                  self.cfg.upstream.open_timeout_s)
                self.sink(RelayError(conn, message))
                body = message.encode() + b"\n"
                writer.write(_BAD_GATEWAY % (len(body), body))
                with contextlib.suppress(OSError):
                    await writer.drain()
                reason = "upstream unreachable"
                return
            max_buffer = self.cfg.max_buffer_bytes
            client_decoder = FrameDecoder(direction="client", max_buffer_bytes=max_buffer)
            server_decoder = FrameDecoder(direction="server", max_buffer_bytes=max_buffer)
            state = _PumpState(client_decoder, server_decoder)
            upstream_writer.write(forwarded)
            counts["client"] += len(forwarded)
            self._decode(conn, "client", client_decoder, forwarded, state)
            pumps = [
                asyncio.ensure_future(self._pump(conn, "client", reader, upstream_writer,
                                                 client_decoder, state, counts)),
                asyncio.ensure_future(self._pump(conn, "server", up_reader, writer,
                                                 server_decoder, state, counts)),
            ]
            try:
                await asyncio.gather(*pumps)
            except (ConnectionError, OSError) as exc:
                reason = f"connection reset ({exc.strerror or type(exc).__name__})"
            else:
                reason = f"{state.first_eof} closed first" if state.first_eof else "closed"
            finally:
                for pump in pumps:
                    pump.cancel()
        finally:
            for w in (writer, upstream_writer):
                if w is not None:
                    w.close()
            self.sink(RelayConnClosed(conn, reason, counts["client"], counts["server"],
                                      ts=time.monotonic()))

    def _decode(self, conn: int, direction: Side, decoder: FrameDecoder, data: bytes,
                state: _PumpState) -> None:
        if not state.decoding:
            return
        try:
            records: list[Decoded] = decoder.feed(data)
        except DecodeError as exc:
            self.sink(RelayError(conn, f"{direction} stream: {exc}; no longer decoding",
                                 protocol=True))
            state.decoding = False
            return
        except Exception as exc:  # a decoder bug must never break the forwarding
            self.sink(RelayError(conn, f"internal error decoding the {direction} stream: "
                                       f"{type(exc).__name__}: {exc}; still forwarding"))
            state.decoding = False
            return
        if direction == "server":
            for record in records:
                if isinstance(record, HttpHead):
                    state.on_response(record)
        if records:
            self.sink(RelayDecoded(conn, direction, tuple(records), ts=time.monotonic()))

    async def _pump(self, conn: int, direction: Side, src: asyncio.StreamReader,
                    dst: asyncio.StreamWriter, decoder: FrameDecoder, state: _PumpState,
                    counts: dict[str, int]) -> None:
        while True:
            data = await src.read(READ_CHUNK_BYTES)
            if not data:
                break
            # Forward first, decode after: the relay adds no delay.
            dst.write(data)
            counts[direction] += len(data)
            self._decode(conn, direction, decoder, data, state)
            await dst.drain()
        if state.first_eof is None:
            state.first_eof = direction
        if state.decoding:
            try:
                decoder.finish()
            except DecodeError as exc:
                self.sink(RelayError(conn, f"{direction} stream: {exc}", protocol=True))
        if dst.can_write_eof():
            with contextlib.suppress(OSError):
                dst.write_eof()
        else:  # TLS: no half-close; closing is the closest thing
            dst.close()


class _PumpState:
    """What the two directions of one connection share."""

    def __init__(self, client_decoder: FrameDecoder, server_decoder: FrameDecoder) -> None:
        self.client_decoder = client_decoder
        self.server_decoder = server_decoder
        self.decoding = True
        self.first_eof: Side | None = None

    def on_response(self, head: HttpHead) -> None:
        if not apply_upgrade_response(head, self.client_decoder, self.server_decoder):
            self.decoding = False  # not an upgrade: an HTTP body follows, not frames
