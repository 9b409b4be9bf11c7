"""The client session core: options in, one WebSocket connection, events out.

Connection set-up (TCP or Unix socket, HTTP/SOCKS proxy, TLS, redirects, the
opening handshake, open timeout, keepalive pings, the closing handshake) is the
websockets library's asyncio client. What wstool needs that the library's
message API does not give is the hot path, so ``_Connection`` — a
``ClientConnection`` subclass, plugged in through the documented
``create_connection=`` hook — takes over once the connection is open:

* every received frame goes straight to the session (no per-message ``await``),
  which reassembles fragments and hands whole messages to the event sink;
* sends are synchronous and batched: ``send_text()`` many times, then one
  ``flush()`` (one ``transport.write``), then ``await drain()`` for backpressure;
* ``--trace`` sees every frame in both directions, pings and pongs included.

This module never prints and never exits: it reports through an ``EventSink``
and raises :class:`~wstool.errors.WstoolError` subclasses.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import re
import socket
import ssl
import struct
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

from wstool.lazyimport import deferred

# websockets imports importlib.metadata and urllib.request at import time; a direct
# connection uses neither (~20 ms of start-up): see wstool/lazyimport.py.
with deferred("importlib.metadata", "urllib.request"):
    from websockets.asyncio.client import ClientConnection, connect
    from websockets.datastructures import Headers
    from websockets.exceptions import (
        InvalidHandshake,
        InvalidMessage,
        InvalidProxy,
        InvalidProxyStatus,
        InvalidStatus,
        InvalidURI,
        PayloadTooBig,
        ProtocolError,
        ProxyError,
    )
    from websockets.extensions.permessage_deflate import PerMessageDeflate
    from websockets.frames import Frame, Opcode
    from websockets.headers import build_authorization_basic
    from websockets.protocol import State
    from websockets.proxy import get_proxy
    from websockets.typing import Origin, Subprotocol
    from websockets.uri import parse_uri

    try:  # the library's C extension; its pure-Python twin otherwise
        from websockets.speedups import apply_mask
    except ImportError:  # pragma: no cover
        from websockets.utils import apply_mask

    from wstool.protocol import internals

from wstool import __version__
from wstool.config import COMPRESS_THRESHOLD_BYTES, ConnectConfig
from wstool.errors import (
    NORMAL_CLOSE_CODES,
    ClosedAbnormally,
    ConnectFailed,
    HandshakeRejected,
    ProtocolFailure,
    TimedOut,
    UsageError,
    WstoolError,
    describe_close_code,
)
from wstool.events import (
    Closed,
    ConnectPhase,
    EventSink,
    FrameSeen,
    Handshake,
    Message,
    Notice,
    Opened,
    Ping,
    Pong,
    Redirected,
)
from wstool.protocol import deflate
from wstool.term.render import escape
from wstool.term.stdin import TextLines, is_utf8
from wstool.tls import certificate_summary, client_context, tls_summary

# -v shows what the server answered to a failed upgrade: keep its first bytes.
HANDSHAKE_RECORD_BYTES = 64 * 1024

# Read pacing (_Connection._pace, issue 14): how long to pause after a small read
# that came soon after the one before, and what counts as small.
READ_PACE_S = 0.001
READ_PACE_BELOW_BYTES = 64 * 1024

DEFAULT_USER_AGENT = f"wstool/{__version__}"


def _proxy_settings_possible(environ: Mapping[str, str]) -> bool:
    """False when urllib.request.getproxies() would certainly find no proxy.

    On Linux and the BSDs it reads only non-empty ``*_proxy`` variables (any case);
    macOS and Windows also have system settings, which only urllib can read.
    """
    if sys.platform in ("darwin", "win32"):
        return True
    return any(value and name.lower().endswith("_proxy") for name, value in environ.items())


class SessionClosed(Exception):
    """Raised by ``send_*`` once the connection is no longer open."""


def _headers_tuple(headers: Headers) -> tuple[tuple[str, str], ...]:
    return tuple(headers.raw_items())


class _Connection(ClientConnection):
    """The library's connection with wstool's receive path (see module doc)."""

    session: Session

    def process_event(self, event: Any) -> None:
        if self.response is None:  # the handshake response
            super().process_event(event)
            return
        frame: Frame = event
        session = self.session
        if session.trace:
            session.sink(FrameSeen("received", frame, ts=time.monotonic()))
        opcode = frame.opcode
        if opcode is Opcode.TEXT or opcode is Opcode.BINARY or opcode is Opcode.CONT:
            session._on_data_frame(frame)
        elif opcode is Opcode.PING:
            # The sans-I/O layer has already queued the pong (RFC 6455 §5.5.2): it
            # goes out after this chunk, so reporting it now is wire order.
            data = bytes(frame.data)
            now = time.monotonic()
            session.sink(Ping("received", data, ts=now))
            if session.report_pings:
                session.sink(Pong("sent", data, ts=now))
        elif opcode is Opcode.PONG:
            data = bytes(frame.data)
            rtt = internals.pong_rtt_s(self, data)
            super().process_event(event)  # resolves ping() waiters
            if rtt is not None:
                session.rtts_s.append(rtt)
            session.sink(Pong("received", data, rtt_s=rtt, ts=time.monotonic()))

    # The bytes received before the handshake response was parsed (bounded): when
    # the library's parser refuses them (an HTTP/1.0 status line, not HTTP at all),
    # they are what the server said (issue 10). And how long the upgrade took.
    _handshake_rx = b""
    handshake_s: float | None = None

    async def handshake(self, *args: Any, **kwargs: Any) -> None:
        start = time.perf_counter()
        try:
            if self.h2_stream is not None:  # issue 12: the extended CONNECT instead
                await self._h2_handshake(*args, **kwargs)
            else:
                await self._handshake(*args, **kwargs)
        finally:
            self.handshake_s = time.perf_counter() - start

    # connect --http2 (issue 12): the stream this connection runs over (an
    # http2.stream.H2StreamTransport, also self.transport), and its extended CONNECT.
    h2_stream: Any = None
    h2_exchange: Any = None

    async def _h2_handshake(self, additional_headers: Any = None,
                            user_agent_header: str | None = None) -> None:
        from wstool.http2.client import websocket_handshake

        def exchange_ready(exchange: Any) -> None:
            self.h2_exchange = exchange

        await websocket_handshake(
            self, self.h2_stream, scheme="https" if self.session.config.target.secure
            else "http", authority=self.session.config.host_header,
            additional_headers=additional_headers, user_agent_header=user_agent_header,
            exchange_ready=exchange_ready)

    async def _handshake(self, *args: Any, **kwargs: Any) -> None:
        host = self.session.config.host_header
        if host is not None:
            # -H 'Host: NAME' replaces the Host header the protocol builds from the URL
            # (curl's rule), first in the request as curl sends it, never a second one.
            make_request = self.protocol.connect

            def connect_with_host() -> Any:
                request = make_request()
                headers = Headers(Host=host)
                for name, value in request.headers.raw_items():
                    if name.lower() != "host":
                        headers[name] = value
                request.headers = headers
                return request

            self.protocol.connect = connect_with_host  # type: ignore[method-assign]
        await super().handshake(*args, **kwargs)

    def send_data(self) -> None:
        # The library writes each frame with its own transport.write(), one
        # send() syscall per frame when the buffer is empty; coalesce them.
        writes = self.protocol.data_to_send()
        if len(writes) > 1 and all(writes):
            internals.requeue_writes(self.protocol, [b"".join(writes)])  # as one write
        else:
            internals.requeue_writes(self.protocol, writes)
        super().send_data()

    _close_timer: asyncio.TimerHandle | None = None
    # The receive fast path (see _receive_fast); switched on by Session.open().
    fast_receive = False
    _rx_pending = b""
    # Read pacing (see _pace): the pause, 0 for none; switched on by Session.open().
    pace_s = 0.0
    _last_read_at = 0.0
    _pace_timer: asyncio.TimerHandle | None = None
    # Session.pause_reading() (a bridge's backpressure): pacing must not resume.
    _reading_held = False

    def _pace(self, size: int) -> None:
        """Read pacing (issue 14): when small reads come in quick succession, pause
        reading for ``pace_s`` after each one, so that the next read takes what has
        arrived meanwhile in one go.

        A server that writes each message with its own ``send()`` (Node's ``ws``, the
        websockets library) makes one TCP segment per message, and a client that keeps
        up wakes for every one of them: an ``epoll_wait``, a ``recv``, a parse, a
        ``write`` to stdout and a context switch per message or two. 100 000 32-byte
        lines through Node's ``ws`` took ~20 000 such reads (websocat, busy sending,
        reads 8 KiB at a time); paced, ~1 000, and half the CPU time
        (bench/README.md, "Read pacing"). A read of READ_PACE_BELOW_BYTES or more is
        bulk data (more is waiting): it is never followed by a pause; neither is a
        read after a quiet spell (2 * pace_s), so a lone reply is not delayed. A
        message in a fast stream of small ones waits at most ``pace_s``."""
        now = self.loop.time()
        last, self._last_read_at = self._last_read_at, now
        if size >= READ_PACE_BELOW_BYTES or now - last >= 2 * self.pace_s:
            return
        transport = self.transport
        if self._reading_held or self._pace_timer is not None or transport.is_closing():
            return
        transport.pause_reading()
        self._pace_timer = self.loop.call_at(now + self.pace_s, self._end_pace)

    def _end_pace(self) -> None:
        self._pace_timer = None
        if not self._reading_held and not self.transport.is_closing():
            self.transport.resume_reading()

    def hold_reading(self, held: bool) -> None:
        """Stop (True) or restart (False) reading from the socket, over any pacing."""
        self._reading_held = held
        if self._pace_timer is not None:
            self._pace_timer.cancel()
            self._pace_timer = None
        transport = self.transport
        if not transport.is_closing():
            if held:
                transport.pause_reading()
            else:
                transport.resume_reading()

    def _receive_fast(self, data: bytes) -> bytes:
        """Parse the frames of the common case here; return the rest, from the
        first frame the library must see (b"" when there is none).

        The library's parser is a generator stepped for every frame (with a
        Frame object, enum lookups and the extension chain); for complete,
        unfragmented, unmasked text/binary frames with RSV bits clear — every
        frame of a busy pipe — that is most of the receive cost. Anything else
        (control frames, fragments, RSV1, masked or oversized frames, invalid
        UTF-8) is handed to the library from that frame on, which does exactly
        what it always does. Only used while the library sits at a frame
        boundary, so the two never split a frame between them.

        Why a parser of its own (one of three; issue 9 keeps each for its reason):
        the library's generator parser was 40 % of the pipe's receive profile
        (bench/README.md, "What changed"); with this, 100 000 32-byte lines ran at
        0.99x websocat's rate through serve-echo (bench/README.md, at 4486bf6).
        """
        buf = self._rx_pending + data if self._rx_pending else data
        self._rx_pending = b""
        size = len(buf)
        pos = 0
        max_size = self.protocol.max_message_size
        session = self.session
        deliver = session._deliver
        # Pipe mode's text lines (issue 14): with a batch handler, text payloads are
        # collected as validated UTF-8 bytes and handed over once per chunk, in order
        # (what came before a binary frame, or before a frame for the library, goes
        # first). That saves, per message, a decode, the renderer's encode and
        # three calls: 100 000 32-byte lines through Node's ws echo took ~35 % less
        # CPU (bench/README.md, "Pipe mode's CPU per message").
        batch: list[bytes] | None = [] if session.on_text_batch is not None else None
        batch_bytes = 0
        # With a batch, runs of short text frames (under 126 bytes, FIN set, RSV and
        # MASK clear: a first byte of 0x81, a second under 126) take the tight loop
        # below: no size check is needed (the limit is at least 125), and the run's
        # payloads are checked as UTF-8 together, joined. That halves the receive
        # loop's instructions per line (5 500 -> 2 600; issue 14, bench/README.md).
        runs = batch is not None and (max_size is None or max_size >= 125)
        try:
            while size - pos >= 2:
                if runs and buf[pos] == 0x81 and buf[pos + 1] < 126:
                    assert batch is not None
                    run_start = pos
                    first_index = len(batch)
                    append = batch.append
                    limit = size - 2
                    start = pos
                    while pos <= limit:
                        length = buf[pos + 1]
                        if buf[pos] != 0x81 or length > 125:
                            break
                        start = pos + 2
                        pos = start + length
                        append(buf[start:pos])
                    if pos > size:  # the last frame is cut: it waits for the next read
                        batch.pop()
                        pos = start - 2
                        if pos == run_start:
                            break
                    run = batch[first_index:] if first_index else batch
                    # Joined by a byte that cannot continue a UTF-8 sequence, the
                    # run is valid if and only if each payload is.
                    joined = b"\n".join(run)
                    if not joined.isascii() and not is_utf8(joined):
                        bad = next(i for i, p in enumerate(run) if not is_utf8(p))
                        offset = run_start + 2 * bad + sum(map(len, run[:bad]))
                        del batch[first_index + bad :]
                        batch_bytes += offset - run_start - 2 * bad
                        return buf[offset:]  # the library path fails it with 1007
                    batch_bytes += len(joined) - len(run) + 1
                    continue
                first = buf[pos]
                second = buf[pos + 1]
                opcode = first & 0x0F
                # FIN set, RSV1-3 clear, TEXT or BINARY, MASK clear (RFC 6455 §5.1, §5.2).
                if first & 0xF0 != 0x80 or second & 0x80 or not 1 <= opcode <= 2:
                    return buf[pos:]
                length = second
                header = 2
                if length == 126:
                    if size - pos < 4:
                        break
                    length = (buf[pos + 2] << 8) | buf[pos + 3]
                    header = 4
                elif length == 127:
                    if size - pos < 10:
                        break
                    length = int.from_bytes(buf[pos + 2 : pos + 10], "big")
                    header = 10
                if max_size is not None and length > max_size:
                    return buf[pos:]  # the library fails it with 1009
                end = pos + header + length
                if end > size:
                    break
                payload = buf[pos + header : end]
                if opcode == 1:
                    if batch is not None:
                        # isascii() is a fast C scan; only other text pays for decode().
                        if not payload.isascii():
                            try:
                                payload.decode()
                            except UnicodeDecodeError:
                                return buf[pos:]  # the library path fails it with 1007
                        batch.append(payload)
                        batch_bytes += length
                    else:
                        try:
                            text = payload.decode()
                        except UnicodeDecodeError:
                            return buf[pos:]  # the library path fails it with 1007
                        deliver(text, length)
                else:
                    if batch:
                        done, batch = batch, []
                        session._deliver_text_batch(done, batch_bytes)
                        batch_bytes = 0
                    deliver(payload, length)
                pos = end
            self._rx_pending = buf[pos:]
            return b""
        finally:
            if batch:
                session._deliver_text_batch(batch, batch_bytes)

    def data_received(self, data: bytes) -> None:
        session = self.session
        if session.trace:
            # --trace in wire order (issue 10: a PONG was printed before the PING it
            # answers): the protocol sends the automatic Pong (or the Close reply)
            # while it parses, before process_event() reports what was received, so
            # the frames sent meanwhile are held until this chunk's are reported.
            held: list[FrameSeen] = []
            session._held_sent = held
            try:
                self._data_received(data)
            finally:
                session._held_sent = None
                for event in held:
                    session.sink(event)
            return
        self._data_received(data)
        if self.pace_s:
            self._pace(len(data))

    def _data_received(self, data: bytes) -> None:
        if self.fast_receive and (
            self._rx_pending or internals.at_frame_boundary(self.protocol)
        ):
            data = self._receive_fast(data)
            if not data:
                self.session._batch_done()
                return
        if self.response is None:
            if len(self._handshake_rx) < HANDSHAKE_RECORD_BYTES:
                self._handshake_rx += data[: HANDSHAKE_RECORD_BYTES - len(self._handshake_rx)]
            super().data_received(data)
            if self.protocol.handshake_exc is not None and _response_complete(
                    self._handshake_rx):
                # Refused by the parser (e.g. HTTP/1.0) and all of it here: do not
                # wait for a keep-alive server to close (handshake() waits for that).
                self.transport.close()
                return
        else:
            super().data_received(data)
        # After a close frame went out because of what we received (the peer's
        # close, or our failing the connection), nobody awaits close(), so
        # enforce close_timeout here: RFC 6455 §7.1.1 lets the client close
        # TCP when the server does not.
        if (
            internals.parser_error(self.protocol) is not None
            or self.session._failure is not None
        ):
            # We failed the connection (RFC 6455 §7.1.7): the close frame is
            # queued; close TCP after it rather than wait for the server.
            self.transport.close()
        elif self._close_timer is None:
            deadline = internals.close_deadline(self)
            if deadline is not None:
                self._close_timer = self.loop.call_at(deadline, self.transport.abort)
        if self.h2_stream is not None:  # issue 12
            rcvd, sent, _ = internals.close_frames(self.protocol)
            if rcvd is not None and sent is not None:
                # The closing handshake is done: end our half of the stream (HTTP/2
                # has no TCP close to wait for; RFC 8441 §5 maps it to END_STREAM).
                self.h2_stream.write_eof()
        self.session._batch_done()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._pace_timer is not None:
            self._pace_timer.cancel()
            self._pace_timer = None
        if self._close_timer is not None:
            self._close_timer.cancel()
        super().connection_lost(exc)
        if self.session._conn is self:  # not a connection left behind by a redirect
            self.session._on_connection_lost()


# Redirect schemes: a generic "http -> https" rule of a web server answers the upgrade
# with https://...; the WebSocket meaning of that is wss:// (RFC 6455 §3).
_HTTP_TO_WS = {"http": "ws", "https": "wss"}


class _Connect(connect):
    """The library's ``connect()`` with wstool's redirect policy (issue 10).

    Not following is the default (curl, wscat): the 3xx goes back to ``open()`` and is
    reported with its Location. With -L each hop becomes a ``Redirected`` event, the
    TLS options apply to a wss:// hop, and --max-redirects bounds the hops.
    """

    session: Session

    async def open_tcp_connection(self) -> ClientConnection:
        """Each hop's connection. A direct TCP connection is made here, resolving and
        connecting with timings for -v's ``*`` lines (issue 10), then handed to the
        library as a connected socket (``sock=`` to asyncio, not to ``connect()``,
        whose redirects refuse a ``sock``); proxies and Unix sockets are the
        library's, timed as a whole."""
        session = self.session
        kwargs = internals.connect_kwargs(self)
        if session.config.http2 and session.h2_fallback is None:  # issue 12
            conn = await session._open_h2(self)
            if conn is not None:
                return conn
        if session.proxy is None and set(kwargs) <= {"ssl", "server_hostname"}:
            return await session._open_direct(self)
        return await session._open_through_library(self)

    def process_redirect(self, exc: Exception) -> Exception | str:
        session = self.session
        location = _redirect_location(exc, self.uri)
        if location is None or not session.config.follow_redirects:
            return exc
        assert isinstance(exc, InvalidStatus)
        cfg = session.config
        if session.redirects >= cfg.max_redirects:
            return HandshakeRejected(
                f"more than --max-redirects {cfg.max_redirects} redirects "
                f"(the last to {location})")
        del exc.response.headers["Location"]  # http(s):// mapped, made absolute
        exc.response.headers["Location"] = location
        try:
            result = super().process_redirect(exc)
        except InvalidURI:
            return HandshakeRejected(f"cannot follow the redirect to {location}")
        if not isinstance(result, str):
            return result  # e.g. a wss:// -> ws:// downgrade, which the library refuses
        session.redirects += 1
        old = parse_uri(self.uri)
        new = parse_uri(result)
        if new.secure:
            # The library would use a default context: our --cacert/--cert/-k apply.
            self.create_connection_kwargs["ssl"] = client_context(cfg.tls)
        if (new.host, new.port) != (old.host, old.port):
            # --server-name was the original host's name.
            self.create_connection_kwargs.pop("server_hostname", None)
        handshake = session._handshake_report(exc.response)
        session._conn = None  # the redirected connection is gone, and not our loss
        session.sink(Redirected(exc.response.status_code, exc.response.reason_phrase,
                                self.uri, result, handshake, ts=time.monotonic()))
        session.url = result
        return result


_AddrInfo = tuple[int, int, int, str, tuple[Any, ...]]


def _address_literal(host: str, port: int) -> list[_AddrInfo] | None:
    """HOST as an address when it is one, without getaddrinfo (as asyncio's
    ``_ipaddr_info``: no resolver thread, and a str host there loads the IDNA codec,
    ~2 ms of a one-shot connect); None for a name."""
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, host)
        except (OSError, ValueError):
            continue
        address: tuple[Any, ...] = (host, port) if family == socket.AF_INET else (
            host, port, 0, 0)
        return [(family, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", address)]
    return None


async def _resolve(host: str, port: int) -> list[Any]:
    """``getaddrinfo`` in a daemon thread of its own, not the loop's default executor:
    ``asyncio.run()`` joins that executor's threads when it returns, so a Ctrl-C during
    a lookup that hangs (a resolver that never answers) would wait for the resolver's
    timeouts before exiting (issue 10: abort at once in every phase). A daemon thread
    is left behind instead; the process is exiting anyway."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[list[Any]] = loop.create_future()

    def settle(result: list[Any] | None, error: BaseException | None) -> None:
        if future.done():  # cancelled (Ctrl-C) while the lookup ran
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result or [])

    def lookup() -> None:
        try:
            result, error = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM), None
        except Exception as exc:  # socket.gaierror, UnicodeError for a bad IDNA name
            result, error = None, exc
        with contextlib.suppress(RuntimeError):  # the loop is closed: we are exiting
            loop.call_soon_threadsafe(settle, result, error)

    threading.Thread(target=lookup, name="wstool-resolve", daemon=True).start()
    return await future


def _without_userinfo(url: str) -> str:
    """A proxy URL for display: ``http://user:secret@host:3128`` -> ``http://host:3128``."""
    scheme, sep, rest = url.partition("://")
    netloc, slash, path = rest.partition("/")
    return scheme + sep + netloc.rpartition("@")[2] + slash + path


class _ForeignResponse(NamedTuple):
    """An HTTP response the library's HTTP/1.1 parser refused (issue 10)."""

    http_version: str
    status_code: int
    reason: str
    headers: tuple[tuple[str, str], ...]
    body: bytes


def _parse_foreign_response(data: bytes) -> _ForeignResponse | None:
    """Read an ``HTTP/1.0`` (or any ``HTTP/x.y`` other than 1.1) response from the
    bytes a connection received, leniently: a debugger shows what came.

    The library's ``Response.parse`` (websockets/http11.py) accepts only
    ``HTTP/1.1`` from a WebSocket server (RFC 6455 §4.1 requires it); an old web
    server or a bare responder still answers ``HTTP/1.0 404 Not Found``, and that
    status is what the user needs to see, not "did not receive a valid HTTP response".
    """
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        head, sep, body = data.partition(b"\n\n")
    lines = head.decode("iso-8859-1").splitlines()
    if not lines:
        return None
    match = re.fullmatch(r"(HTTP/\d\.\d) (\d{3})(?: (.*))?", lines[0].strip())
    if match is None or match.group(1) == "HTTP/1.1":
        return None  # HTTP/1.1 the library refused for another reason: its message
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if colon:
            headers.append((name.strip(), value.strip()))
    length = next((value for name, value in headers if name.lower() == "content-length"), None)
    if length is not None and length.isdigit():
        body = body[: int(length)]
    return _ForeignResponse(match.group(1), int(match.group(2)), match.group(3) or "",
                            tuple(headers), body)


def _response_complete(data: bytes) -> bool:
    """Whether DATA holds a whole response with a Content-Length (or none needed)."""
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        return False
    match = re.search(rb"(?im)^content-length:[ \t]*(\d+)[ \t]*$", head)
    return match is not None and len(body) >= int(match.group(1))


def _first_body_line(body: bytes) -> str:
    text = body.decode("utf-8", "replace").strip()
    return escape(text.splitlines()[0][:200]) if text else ""


def _redirect_location(exc: Exception, base: str) -> str | None:
    """The absolute ws(s):// URL a 3xx answer points to, or None if it is not one."""
    if not isinstance(exc, InvalidStatus) or exc.response.status_code not in (
        300, 301, 302, 303, 307, 308
    ):
        return None
    location = exc.response.headers.get("Location")
    if location is None:
        return None
    import urllib.parse

    absolute = urllib.parse.urljoin(base, location)
    scheme, sep, rest = absolute.partition("://")
    return _HTTP_TO_WS.get(scheme.lower(), scheme.lower()) + sep + rest


class Session:
    """One client connection.

    ``sink`` receives every event; ``on_batch`` (optional) is called after each
    chunk of received data has been processed, so a front-end can flush its
    output once per chunk rather than once per message.
    """

    # issue 4, `connect --echo`: set before open() to mirror every received
    # message with serve-echo's strict engine (wstool/protocol/echo.py), inside the
    # receive call itself; the session still sees every frame.
    echo_engine: bool = False
    # Set before open() to pace reads (_Connection._pace): pipe mode, whose output
    # is a stream, where waiting a millisecond for more data costs nothing seen.
    pace_reads: bool = False

    def __init__(
        self,
        config: ConnectConfig,
        sink: EventSink,
        *,
        on_batch: Callable[[], None] | None = None,
        on_message: Callable[[str | bytes], None] | None = None,
        trace: bool = False,
        report_sent: bool = True,
        report_phases: bool = False,
        report_pings: bool = False,
    ) -> None:
        self.config = config
        self.sink = sink
        self.on_batch = on_batch
        # Received messages go here instead of to the sink as Message events
        # when set: the pipe's hot path (one call per message, no record).
        self.on_message = on_message
        # Set (by the run) to take the receive fast path's text messages a chunk at a
        # time, as a list of UTF-8-checked payloads, instead of one on_message call
        # each (pipe mode's hot path; issue 14). Other messages still go one by one.
        self.on_text_batch: Callable[[list[bytes]], None] | None = None
        self.trace = trace
        # Pipe mode without --json does not render sent messages: skip the events.
        self.report_sent = report_sent
        # -v: report each step of setting up the connection (ConnectPhase).
        self.report_phases = report_phases
        # -P (issue 13): also report the pings we send (/ping and keepalive) and the
        # automatic pongs, so the four kinds show in wire order; received pings and
        # pongs are always reported.
        self.report_pings = report_pings
        self.handshake: Handshake | None = None
        self.subprotocol: str | None = None
        self.extensions: tuple[str, ...] = ()
        self.messages_sent = 0
        self.messages_received = 0
        self.bytes_sent = 0  # payload bytes (before compression)
        self.bytes_received = 0  # payload bytes (after decompression)
        self.rtts_s: list[float] = []
        self.opened_at: float | None = None
        self.closed: Closed | None = None
        self._conn: _Connection | None = None
        self._fragments: list[bytes] = []
        self._fragmented_text = False
        self._failure: WstoolError | None = None
        self._closed_event = asyncio.Event()
        self._lost = False
        self.proxy: str | None = None
        # --trace: frames sent while a received chunk is processed (wire order).
        self._held_sent: list[FrameSeen] | None = None
        # The URL connected to: the target's, or where -L's redirects led.
        self.url = config.target.url
        self.redirects = 0

    # Opening

    def _connect_kwargs(self) -> dict[str, Any]:
        cfg = self.config
        headers: list[tuple[str, str]] = list(cfg.headers)
        if cfg.auth is not None and not any(n.lower() == "authorization" for n, _ in headers):
            headers.append(("Authorization", build_authorization_basic(*cfg.auth)))
        kwargs: dict[str, Any] = {
            "additional_headers": headers,
            "subprotocols": [Subprotocol(s) for s in cfg.subprotocols] or None,
            "origin": Origin(cfg.origin) if cfg.origin else None,
            "user_agent_header": cfg.user_agent or DEFAULT_USER_AGENT,
            # permessage-deflate with our zlib settings (config.DEFLATE_SETTINGS).
            "compression": None,
            "extensions": (
                [deflate.client_factory()]
                if cfg.compress
                else None
            ),
            "max_size": cfg.max_size_bytes,
            "open_timeout": cfg.open_timeout_s,
            "ping_interval": cfg.ping_interval_s,
            "ping_timeout": cfg.ping_timeout_s,
            "close_timeout": cfg.close_timeout_s or 0.001,  # 0: do not wait
            "create_connection": self._make_connection,
            "proxy": self._resolve_proxy(),
        }
        if cfg.target.secure:
            kwargs["ssl"] = client_context(cfg.tls)
            if cfg.tls.server_name:
                kwargs["server_hostname"] = cfg.tls.server_name
            if cfg.tls.insecure:
                self.sink(
                    Notice("warning: -k/--insecure: the server's TLS certificate is not verified")
                )
        if cfg.target.unix_path is not None:
            kwargs["unix"] = True
            kwargs["path"] = cfg.target.unix_path
        return kwargs

    def _resolve_proxy(self) -> str | None:
        """--proxy, else the environment (websockets' rules, plus ALL_PROXY)."""
        cfg = self.config
        if cfg.proxy is not None or cfg.target.unix_path is not None:
            self.proxy = cfg.proxy or None
            return self.proxy
        if not _proxy_settings_possible(os.environ):
            self.proxy = None
            return None
        import urllib.request  # only here: see wstool/lazyimport.py

        ws_uri = parse_uri(cfg.target.url)
        proxy = get_proxy(ws_uri)
        if proxy is None and not urllib.request.proxy_bypass(f"{ws_uri.host}:{ws_uri.port}"):
            proxy = urllib.request.getproxies().get("all")
        self.proxy = proxy
        return proxy

    def _make_connection(self, protocol: Any, **kwargs: Any) -> _Connection:
        conn = _Connection(protocol, **kwargs)
        conn.session = self
        if self.echo_engine:  # issue 4: connect --echo (see echo_engine)
            from wstool.protocol.echo import make_strict_echo

            make_strict_echo(protocol).emit_data_frames = True
        if self.trace:

            def report_sent(frame: Frame) -> None:
                event = FrameSeen("sent", frame, ts=time.monotonic())
                if self._held_sent is not None:
                    self._held_sent.append(event)  # see _Connection.data_received
                else:
                    self.sink(event)

            internals.trace_sent_frames(protocol, report_sent)
        if self.report_pings:

            def report_ping(data: bytes) -> None:
                # Queued now, written after: reported before any pong can come back.
                self.sink(Ping("sent", data, ts=time.monotonic()))

            internals.report_sent_pings(protocol, report_ping)
        self._conn = conn
        return conn

    def _phase(self, phase: str, text: str, elapsed_s: float | None = None) -> None:
        self.sink(ConnectPhase(phase, text, elapsed_s, ts=time.monotonic()))

    async def _open_direct(self, connector: _Connect) -> ClientConnection:
        """Resolve, connect (each address in turn, as asyncio's create_connection
        does without happy eyeballs), then TLS and the connection over the socket."""
        loop = asyncio.get_running_loop()
        uri = internals.connect_uri(connector)
        host, port = uri.host, uri.port
        report = self.report_phases
        literal = _address_literal(host, port)
        infos: list[Any]
        if literal is not None:
            infos = literal
        else:
            start = time.perf_counter()
            infos = await _resolve(host, port)
            if report:
                addresses = ", ".join(dict.fromkeys(str(info[4][0]) for info in infos))
                self._phase("resolved", f"resolved {host} to {addresses or 'nothing'}",
                            time.perf_counter() - start)
        if not infos:
            raise OSError(f"getaddrinfo({host!r}) returned empty list")
        errors: list[OSError] = []
        for family, type_, proto, _name, address in infos:
            where = f"{address[0]!s} port {port}"
            if report:
                self._phase("connecting", f"connecting to {where}")
            sock = socket.socket(family, type_, proto)
            start = time.perf_counter()
            try:
                sock.setblocking(False)
                await loop.sock_connect(sock, address)
            except OSError as exc:
                sock.close()
                errors.append(exc)
                if report:
                    self._phase("connect-failed", f"connect to {where} failed: "
                                f"{os.strerror(exc.errno) if exc.errno else exc}",
                                time.perf_counter() - start)
                continue
            except BaseException:  # Ctrl-C, --open-timeout
                sock.close()
                raise
            if report:
                self._phase("connected", f"connected to {where}", time.perf_counter() - start)
            break
        else:
            if len({(type(exc), exc.errno) for exc in errors}) == 1:
                raise errors[0]  # e.g. refused on ::1 and on 127.0.0.1
            raise OSError("Multiple exceptions: " + ", ".join(str(exc) for exc in errors))
        kwargs = dict(internals.connect_kwargs(connector))
        if uri.secure:
            kwargs.setdefault("ssl", True)
            kwargs.setdefault("server_hostname", host)
        start = time.perf_counter()
        try:
            _transport, conn = await loop.create_connection(
                internals.connection_factory(connector), sock=sock, **kwargs)
        except BaseException:
            sock.close()
            raise
        if report and uri.secure:
            self._report_tls(conn, time.perf_counter() - start)
        return conn

    async def _open_through_library(self, connector: _Connect) -> ClientConnection:
        """A proxy or a Unix socket: the library connects, timed as a whole."""
        report = self.report_phases
        if report:
            uri = internals.connect_uri(connector)
            if self.config.target.unix_path is not None:
                where = f"Unix socket {self.config.target.unix_path}"
            else:
                where = f"{uri.host} port {uri.port}"
                if self.proxy:
                    where += f" through proxy {_without_userinfo(self.proxy)}"
            self._phase("connecting", f"connecting to {where}")
        start = time.perf_counter()
        conn = await super(_Connect, connector).open_tcp_connection()
        if report:
            elapsed = time.perf_counter() - start
            phase = "connected-unix" if self.config.target.unix_path else "connected-proxy"
            self._phase(phase, f"connected to {where}", elapsed)
            if conn.transport.get_extra_info("ssl_object") is not None:
                self._report_tls(conn, None)
        return conn

    # connect --http2 (issue 12). Why the HTTP/1.1 upgrade was used instead
    # (--http2 without =only), once known.
    h2_fallback: str | None = None

    async def _open_h2(self, connector: _Connect) -> ClientConnection | None:
        """The connection over one HTTP/2 stream, or None to fall back to HTTP/1.1
        (after a Notice saying why). See wstool/http2/client.py."""
        cfg = self.config
        if self.proxy or cfg.target.unix_path is not None:
            what = "a proxy" if self.proxy else "a Unix socket"
            if cfg.http2 == "only":
                raise UsageError(f"--http2=only does not go through {what} (not yet)")
            self.h2_fallback = f"not through {what}"
            self.sink(Notice(f"--http2: not through {what} (not yet): using the "
                             "HTTP/1.1 upgrade"))
            return None
        try:
            from wstool.http2 import client as h2client
        except ImportError as exc:
            raise UsageError(
                "--http2 needs the h2 package: pip install 'wstool[http2]'") from exc
        uri = internals.connect_uri(connector)
        kwargs = internals.connect_kwargs(connector)
        # The hop's own context (--cacert, -k, a redirect's), with ALPN set for h2;
        # loading the CA store again would cost ~20 ms of a one-shot.
        context: ssl.SSLContext | None = None
        if uri.secure:
            given = kwargs.get("ssl")
            context = given if isinstance(given, ssl.SSLContext) else client_context(cfg.tls)
        trace = None
        if cfg.trace_h2:
            def trace(direction: str, line: str) -> None:
                arrow = ">" if direction == "sent" else "<"
                self._phase("h2-frame", f"h2 {arrow} {line}")
        if self.report_phases:
            how = ("TLS, ALPN " + ", ".join(h2client.alpn_protocols(cfg.http2 == "only"))
                   if context is not None else "h2c, prior knowledge")
            self._phase("connecting", f"connecting to {uri.host} port {uri.port} "
                        f"for HTTP/2 ({how})")
        start = time.perf_counter()
        try:
            endpoint = await h2client.open_endpoint(
                uri.host, uri.port, ssl_context=context,
                server_hostname=kwargs.get("server_hostname"),
                strict=cfg.http2 == "only", trace=trace)
        except h2client.NotH2 as exc:
            if cfg.http2 == "only":
                raise HandshakeRejected(f"no WebSocket over HTTP/2 at {self.url}: {exc}",
                                        hint="--http2 without =only falls back to "
                                        "HTTP/1.1") from exc
            self.h2_fallback = str(exc)
            if context is not None:
                context.set_alpn_protocols(["http/1.1"])  # the upgrade's connection
            self.sink(Notice(f"--http2: {exc}: falling back to the HTTP/1.1 upgrade"))
            return None
        if self.report_phases:
            transport = endpoint.transport
            ssl_object = transport.get_extra_info("ssl_object") if transport else None
            if ssl_object is not None:
                self._phase("tls", tls_summary(ssl_object), time.perf_counter() - start)
                self._phase("certificate", certificate_summary(ssl_object))
                self._phase("alpn", f"ALPN: server chose {ssl_object.selected_alpn_protocol()}")
            from wstool.http2.rfc8441 import settings_text

            self._phase("h2-settings",
                        f"HTTP/2 server SETTINGS: {settings_text(endpoint.remote_settings)}",
                        time.perf_counter() - start)
        stream = endpoint.open_stream()
        conn = internals.connection_factory(connector)()
        assert isinstance(conn, _Connection)
        conn.h2_stream = stream
        stream.set_protocol(conn)
        conn.connection_made(stream)
        return conn

    def _h2_handshake_report(self, conn: _Connection) -> Handshake:
        """-v over HTTP/2: the extended CONNECT's header blocks (issue 12)."""
        exchange = conn.h2_exchange
        response = exchange.response_block
        status = next((v for n, v in response if n == ":status"), None)
        return Handshake(
            request_line=f"HTTP/2 stream {exchange.stream_id}: extended CONNECT "
                         "(RFC 8441)",
            request_headers=tuple(exchange.request_block),
            status_code=int(status) if status and status.isdigit() else None,
            response_headers=tuple((n, v) for n, v in response if n != ":status"),
            body=exchange.body,
            http_version="HTTP/2",
            elapsed_s=exchange.elapsed_s,
        )

    def _report_tls(self, conn: ClientConnection, elapsed_s: float | None) -> None:
        ssl_object = conn.transport.get_extra_info("ssl_object")
        if ssl_object is None:
            return
        self._phase("tls", tls_summary(ssl_object), elapsed_s)
        self._phase("certificate", certificate_summary(ssl_object))

    async def open(self) -> None:
        """Connect and complete the opening handshake, or raise a WstoolError."""
        cfg = self.config
        kwargs = self._connect_kwargs()
        internals.allow_redirects(cfg.max_redirects)
        connector = _Connect(cfg.target.url, **kwargs)
        connector.session = self
        try:
            conn = await connector
        except Exception as exc:
            raise self._open_error(exc) from exc
        assert isinstance(conn, _Connection)
        self._conn = conn
        # --trace must see the library's Frame objects; --echo runs the echo
        # engine's own frame loop instead of the library's parser.
        conn.fast_receive = not self.trace and not self.echo_engine
        if self.pace_reads and conn.fast_receive and conn.h2_stream is None:
            conn.pace_s = READ_PACE_S
        for extension in conn.protocol.extensions:
            if isinstance(extension, PerMessageDeflate):
                deflate.skip_incompressible_binary(extension)
        self.handshake = self._handshake_report()
        self.subprotocol = conn.subprotocol
        self.extensions = tuple(
            str(ext.name) for ext in conn.protocol.extensions  # e.g. permessage-deflate
        )
        self.opened_at = time.monotonic()
        self.sink(
            Opened(
                self.url,
                self.subprotocol,
                self.extensions,
                self.handshake,
                ts=self.opened_at,
            )
        )
        if self._lost:
            self._finish_close()

    def _handshake_report(self, response: Any = None) -> Handshake:
        conn = self._conn
        if conn is not None and conn.h2_exchange is not None:  # issue 12
            return self._h2_handshake_report(conn)
        request = conn.request if conn is not None else None
        if response is None and conn is not None:
            response = conn.response
        request_line = f"GET {request.path} HTTP/1.1" if request is not None else ""
        return Handshake(
            request_line=request_line,
            request_headers=_headers_tuple(request.headers) if request is not None else (),
            status_code=response.status_code if response is not None else None,
            reason=response.reason_phrase if response is not None else "",
            response_headers=_headers_tuple(response.headers) if response is not None else (),
            body=bytes(response.body or b"") if response is not None else b"",
            elapsed_s=conn.handshake_s if conn is not None and response is not None else None,
        )

    def _foreign_handshake_report(self) -> tuple[Handshake, _ForeignResponse | None]:
        """After the library's parser refused the response: the request, and what the
        server sent, parsed as an HTTP/1.0 response when it is one."""
        report = self._handshake_report()
        conn = self._conn
        received = conn._handshake_rx if conn is not None else b""
        foreign = _parse_foreign_response(received) if report.status_code is None else None
        if foreign is None:
            if report.status_code is None:
                report = report._replace(unparsed=received)
            return report, None
        return report._replace(
            http_version=foreign.http_version, status_code=foreign.status_code,
            reason=foreign.reason, response_headers=foreign.headers, body=foreign.body,
            elapsed_s=conn.handshake_s if conn is not None else None), foreign

    def _open_error(self, exc: BaseException) -> WstoolError:
        """Translate what connect() raised into one clear line and an exit status."""
        cfg = self.config
        where = cfg.target.unix_path or self.url
        if isinstance(exc, WstoolError):
            return exc
        # A TLS alert after the handshake (TLS 1.3 reports a missing client
        # certificate that way) reaches connection_lost(), not the handshake.
        lost_exc = internals.connection_error(self._conn) if self._conn is not None else None
        if isinstance(lost_exc, ssl.SSLError) and isinstance(exc, (InvalidMessage, OSError)):
            exc = lost_exc
        if isinstance(exc, InvalidURI):
            return UsageError(f"invalid URL '{cfg.target.url}': {exc}")
        if isinstance(exc, InvalidStatus):
            response = exc.response
            self.handshake = self._handshake_report(response)
            location = _redirect_location(exc, self.url)
            if location is not None and not cfg.follow_redirects:
                return HandshakeRejected(
                    f"HTTP {response.status_code} {escape(response.reason_phrase)} -> "
                    f"{escape(location)}", hint="use -L to follow")
            body_line = _first_body_line(bytes(response.body or b""))
            message = (
                f"server rejected the WebSocket handshake: "
                f"HTTP {response.status_code} {escape(response.reason_phrase)}"
            )
            if body_line:
                message += f": {body_line}"
            return HandshakeRejected(message)
        if isinstance(exc, InvalidProxyStatus):
            return ConnectFailed(
                f"proxy refused the tunnel: HTTP {exc.response.status_code} "
                f"{exc.response.reason_phrase}"
            )
        if isinstance(exc, (ProxyError, InvalidProxy)):
            return ConnectFailed(f"proxy failed: {exc}", hint="check --proxy or *_PROXY")
        if self._conn is not None and self._conn.request is not None:
            # -v: the request went out; show it with whatever came back (issue 10).
            self.handshake, foreign = self._foreign_handshake_report()
            if foreign is not None:
                status = (f"{foreign.http_version} {foreign.status_code} "
                          f"{escape(foreign.reason)}".rstrip())
                if foreign.status_code == 101:
                    return HandshakeRejected(
                        f"invalid handshake response from {where}: {status}",
                        hint="WebSocket needs HTTP/1.1, RFC 6455 §4.1")
                body_line = _first_body_line(foreign.body)
                message = f"server rejected the WebSocket handshake: {status}"
                return HandshakeRejected(message + (f": {body_line}" if body_line else ""))
        if isinstance(exc, InvalidMessage) and isinstance(exc.__cause__, EOFError):
            if cfg.target.secure and not cfg.tls.certfile:
                # Python's asyncio turns a TLS 1.3 "certificate required" alert
                # into a plain EOF, so this is the most we can say.
                return ConnectFailed(
                    f"{where} closed the connection before answering the handshake",
                    hint="if it requires a client certificate, give --cert FILE --key FILE",
                )
            # A TLS server reading our plain request fails its own handshake and closes
            # (issue 10: say so, as the reverse case says "try ws://").
            return HandshakeRejected(
                f"{where} closed the connection before answering the handshake",
                hint=None if cfg.target.secure or cfg.target.unix_path
                else "does it expect TLS? try wss://",
            )
        if isinstance(exc, InvalidMessage):
            return HandshakeRejected(
                f"invalid handshake response from {where}: {exc}",
                hint=None if cfg.target.secure or cfg.target.unix_path
                else "does it expect TLS? try wss://",
            )
        if isinstance(exc, InvalidHandshake):
            return HandshakeRejected(f"handshake with {where} failed: {exc}")
        if isinstance(exc, TimeoutError):
            return TimedOut(
                f"no WebSocket connection to {where} within --open-timeout {cfg.open_timeout_s}s"
            )
        if isinstance(exc, ssl.SSLCertVerificationError):
            return ConnectFailed(
                f"TLS certificate of {where} not trusted: {exc.verify_message}",
                hint="trust its CA with --cacert FILE, or skip the check with -k/--insecure",
            )
        if isinstance(exc, ssl.SSLError):
            reason = str(exc.reason or exc)
            if "CERTIFICATE_REQUIRED" in reason:
                return ConnectFailed(
                    f"TLS handshake with {where} failed: the server requires a client "
                    "certificate", hint="give it with --cert FILE --key FILE"
                )
            return ConnectFailed(f"TLS handshake with {where} failed: {reason}")
        if isinstance(exc, (ConnectionResetError, EOFError)) and cfg.target.secure:
            return ConnectFailed(
                f"connection to {where} reset during the TLS handshake",
                hint="does it serve TLS? try ws://",
            )
        if isinstance(exc, socket.gaierror):
            host = cfg.target.url.split("://", 1)[1].split("/", 1)[0]
            return ConnectFailed(f"cannot resolve host {host}: {exc.strerror}")
        if isinstance(exc, OSError) and self.proxy and self._conn is None:
            # Nothing of the WebSocket connection exists yet: the proxy failed.
            return ConnectFailed(
                f"cannot reach proxy {self.proxy}: {exc.strerror or exc}",
                hint="check --proxy or *_PROXY, or use --no-proxy",
            )
        if isinstance(exc, ConnectionRefusedError):
            return ConnectFailed(f"connection refused by {where}")
        if isinstance(exc, FileNotFoundError) and cfg.target.unix_path:
            return ConnectFailed(f"no Unix socket at {cfg.target.unix_path}")
        if isinstance(exc, OSError):
            return ConnectFailed(f"cannot connect to {where}: {exc.strerror or exc}")
        if isinstance(exc, ImportError) and "python-socks" in str(exc):
            return UsageError(
                "SOCKS proxies need python-socks: pip install 'wstool[socks]'"
            )
        if isinstance(exc, ValueError):
            return UsageError(str(exc))
        return WstoolError(f"cannot connect to {where}: {exc}")

    # Receiving

    def _on_data_frame(self, frame: Frame) -> None:
        if self._failure is not None:
            # We failed the connection (RFC 6455 §7.1.7): frames the library
            # parsed from the same chunk after the bad one are not delivered.
            return
        opcode = frame.opcode
        if opcode is Opcode.CONT:
            self._fragments.append(bytes(frame.data))
            if not frame.fin:
                return
            payload = b"".join(self._fragments)
            self._fragments = []
            is_text = self._fragmented_text
        elif not frame.fin:
            self._fragments = [bytes(frame.data)]
            self._fragmented_text = opcode is Opcode.TEXT
            return
        else:
            payload = bytes(frame.data)
            is_text = opcode is Opcode.TEXT
        if is_text:
            try:
                text = payload.decode()
            except UnicodeDecodeError as exc:
                # RFC 6455 §8.1: fail the connection with 1007.
                self._failure = ProtocolFailure(
                    f"server sent invalid UTF-8 in a text message ({exc.reason} "
                    f"at byte {exc.start})"
                )
                self._fail(1007, "invalid UTF-8")
                return
            self._deliver(text, len(payload))
        else:
            self._deliver(payload, len(payload))

    def _deliver(self, data: str | bytes, size: int) -> None:
        """A whole received message (str: text, bytes: binary) of SIZE payload bytes."""
        self.messages_received += 1
        self.bytes_received += size
        if self.on_message is not None:
            self.on_message(data)
        else:
            self.sink(Message("received", data, ts=time.monotonic()))

    def _deliver_text_batch(self, payloads: list[bytes], size: int) -> None:
        """Whole received text messages as UTF-8 bytes (already checked), SIZE bytes
        in all: the receive fast path's batch (see ``on_text_batch``)."""
        self.messages_received += len(payloads)
        self.bytes_received += size
        assert self.on_text_batch is not None
        self.on_text_batch(payloads)

    def _fail(self, code: int, reason: str) -> None:
        conn = self._require_conn()
        if conn.protocol.state is State.OPEN:
            conn.protocol.fail(code, reason)
            conn.send_data()

    def _batch_done(self) -> None:
        if self.on_batch is not None:
            self.on_batch()

    # Sending: synchronous and buffered; call flush() then await drain().

    def _require_conn(self) -> _Connection:
        if self._conn is None:
            raise RuntimeError("session not opened")
        return self._conn

    @property
    def is_open(self) -> bool:
        return self._conn is not None and self._conn.protocol.state is State.OPEN

    def send_text(self, text: str) -> None:
        self.send_many((text,))

    def send_binary(self, data: bytes) -> None:
        self.send_many((data,))

    def send(self, data: str | bytes) -> None:
        self.send_many((data,))

    def send_many(self, messages: Sequence[str | bytes]) -> int:
        """Send whole messages in order (str: text, bytes: binary); then flush().

        Raises SessionClosed if the connection is not open. Every send goes
        through here (the pipe's hot path sends a stdin chunk at a time).

        Frames are built here in one go — one urandom() call for every masking
        key, the library's C apply_mask — which is several times cheaper than
        ``protocol.send_text`` one frame at a time, and writes exactly what the
        library would (RFC 6455 §5.2, §5.3). With permessage-deflate, messages
        under COMPRESS_THRESHOLD_BYTES are sent uncompressed, as Node's ``ws``
        does by default (RFC 7692 §6.1 lets a sender clear RSV1 per message;
        deflating 32 bytes costs more than it saves); larger ones go through
        the library's extension. --trace, or an extension other than
        permessage-deflate, takes the library's path for every message.
        """
        count = len(messages)
        if not count:
            return 0  # and never append b"": that is SEND_EOF, a TCP half-close
        conn = self._require_conn()
        protocol = conn.protocol
        if protocol.state is not State.OPEN:
            raise SessionClosed
        extensions = protocol.extensions
        library_only = self.trace or any(
            not isinstance(ext, PerMessageDeflate) for ext in extensions
        )
        if library_only or self.report_sent:
            # Each line of a TextLines block as the str message it is (events, --trace).
            messages = _expand_text_lines(messages)
            count = len(messages)
        threshold = COMPRESS_THRESHOLD_BYTES if extensions else None
        writes = internals.pending_writes(protocol)
        keys = os.urandom(4 * count)
        raw: list[bytes] = []
        append = raw.append
        # Short frames (every line of a busy pipe) take the first branch: a header
        # from a table, the key, the masked payload, appended apart and joined once
        # (a third fewer instructions per message than building each frame with
        # bytes() and two concatenations; issue 14, bench/README.md).
        short = 126 if not library_only else 0
        payload_bytes = 0
        pos = 0
        for message in messages:
            if message.__class__ is str:
                data = message.encode()
                headers = _TEXT_HEADERS
            elif message.__class__ is TextLines:
                # Pipe mode's stdin chunk (issue 14): its lines framed together.
                assert isinstance(message, TextLines)
                lines = message.payloads
                count += len(lines) - 1
                payload_bytes += len(message) - len(lines) * len(message.separator)
                frames = _short_text_frames(lines)
                if frames is not None:
                    append(frames)
                else:  # a line of 126 bytes or more: one by one
                    self._append_text_payloads(lines, raw, writes, threshold)
                continue
            else:
                data = message  # type: ignore[assignment]
                headers = _BINARY_HEADERS
            length = len(data)
            payload_bytes += length
            key = keys[pos : pos + 4]
            pos += 4
            if length < short:
                append(headers[length])
                append(key)
                append(apply_mask(data, key))
                continue
            first = headers[0][0]  # FIN + TEXT or BINARY
            if library_only or (threshold is not None and length >= threshold):
                if raw:
                    writes.append(b"".join(raw))
                    raw.clear()
                if first == 0x81:
                    protocol.send_text(data)
                else:
                    protocol.send_binary(data)
                continue
            if length < 65536:
                header = _HEADER_16.pack(first, 0xFE, length)
            else:
                header = _HEADER_64.pack(first, 0xFF, length)
            append(header + key + apply_mask(data, key))
        if raw:
            writes.append(b"".join(raw))
        self.messages_sent += count
        self.bytes_sent += payload_bytes
        if self.report_sent:
            ts = time.monotonic()
            for message in messages:
                self.sink(Message("sent", message, ts=ts))
        return count

    def _append_text_payloads(self, payloads: list[bytes], raw: list[bytes],
                              writes: list[bytes], threshold: int | None) -> None:
        """send_many()'s framing of text messages (UTF-8 bytes, checked) one by one,
        for a TextLines block with a line too long for _short_text_frames."""
        protocol = self._require_conn().protocol
        keys = os.urandom(4 * len(payloads))
        append = raw.append
        pos = 0
        for data in payloads:
            length = len(data)
            key = keys[pos : pos + 4]
            pos += 4
            if length < 126:
                append(_TEXT_HEADERS[length])
                append(key)
                append(apply_mask(data, key))
            elif threshold is not None and length >= threshold:
                if raw:
                    writes.append(b"".join(raw))
                    raw.clear()
                protocol.send_text(data)  # permessage-deflate: the library's extension
            else:
                if length < 65536:
                    header = _HEADER_16.pack(0x81, 0xFE, length)
                else:
                    header = _HEADER_64.pack(0x81, 0xFF, length)
                append(header + key + apply_mask(data, key))

    def send_prebuilt(self, frames: bytes, count: int, payload_bytes: int) -> None:
        """Queue COUNT whole data frames, already built and masked by the caller (``wstool
        bench``'s generator: RFC 6455 §5.3 wants a fresh key per frame; a load generator
        cycles through a pool of them), and write them: one ``transport.write`` when
        nothing of the library's is queued (its queue first otherwise, in order). No
        event is reported."""
        conn = self._require_conn()
        protocol = conn.protocol
        if protocol.state is not State.OPEN:
            raise SessionClosed
        self.messages_sent += count
        self.bytes_sent += payload_bytes
        writes = internals.pending_writes(protocol)
        if writes:
            writes.append(frames)
            self.flush()
            return
        try:
            conn.transport.write(frames)
        except Exception as exc:  # the transport is gone; connection_lost follows
            internals.set_connection_error(conn, exc)

    @property
    def connection(self) -> Any:
        """The open connection (websockets' ClientConnection, an asyncio.Protocol), for
        ``wstool bench``'s receive path, which stands in front of it on the transport
        (``transport.set_protocol``) and hands it every frame it does not parse."""
        return self._require_conn()

    @property
    def write_buffer_bytes(self) -> int:
        """Bytes written but not yet taken by the kernel (0 when not open)."""
        conn = self._conn
        if conn is None or conn.transport is None:
            return 0
        return int(conn.transport.get_write_buffer_size())

    def flush(self) -> None:
        conn = self._require_conn()
        try:
            conn.send_data()
        except Exception as exc:  # the transport is gone; connection_lost follows
            internals.set_connection_error(conn, exc)

    async def drain(self) -> None:
        await self._require_conn().drain()

    def pause_reading(self) -> None:
        """Stop reading from the socket: a bridge whose other side is full (issue 16)."""
        conn = self._conn
        if conn is not None:
            conn.hold_reading(True)

    def resume_reading(self) -> None:
        conn = self._conn
        if conn is not None:
            conn.hold_reading(False)

    async def ping(self, data: bytes | None = None) -> float:
        """Send a ping and wait for its pong; returns the round-trip time."""
        conn = self._require_conn()
        if conn.protocol.state is not State.OPEN:
            raise SessionClosed
        waiter = await conn.ping(data)
        return await waiter

    def pong(self, data: bytes = b"") -> None:
        conn = self._require_conn()
        if conn.protocol.state is not State.OPEN:
            raise SessionClosed
        conn.protocol.send_pong(data)
        self.flush()
        self.sink(Pong("sent", data, ts=time.monotonic()))

    # Closing

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Start the closing handshake (if still open) and wait for the end."""
        conn = self._require_conn()
        if conn.protocol.state is State.OPEN:
            await conn.close(code, reason)
        await self.wait_closed()

    def abort(self) -> None:
        if self._conn is not None:
            self._conn.transport.abort()

    def close_now(self, code: int = 1000, reason: str = "") -> None:
        """Close without waiting for the server: our close frame (if still open)
        goes out, then TCP closes (issue 10: Ctrl-C and --max-time end at once).

        The closing handshake is best effort here: RFC 6455 §7.1.1 would have the
        client wait for the server's answer, which is what ``close()`` does."""
        conn = self._conn
        if conn is None:
            return
        if conn.protocol.state is State.OPEN:
            conn.protocol.send_close(code, reason)
            self.flush()
        conn.transport.close()  # flushes what is buffered, then FIN
        # A TLS transport waits for the peer's close_notify first: do not.
        conn.loop.call_soon(conn.transport.abort)

    async def wait_closed(self) -> Closed:
        """Wait for the end of an opened connection."""
        await self._closed_event.wait()
        assert self.closed is not None
        return self.closed

    def _on_connection_lost(self) -> None:
        self._lost = True
        if self.opened_at is not None:
            self._finish_close()
        # else: lost during the opening handshake. Either open() raises, or the
        # handshake completed in the same chunk and open() finishes the close.

    def _finish_close(self) -> None:
        conn = self._require_conn()
        protocol = conn.protocol
        rcvd, sent, rcvd_then_sent = internals.close_frames(protocol)
        initiated_by: Any
        code, reason = (rcvd.code, rcvd.reason) if rcvd is not None else (1006, "")
        if rcvd is None:
            initiated_by = None
            if sent is not None:
                # We failed the connection (e.g. 1009) and stopped reading:
                # the code worth showing is the one we sent.
                initiated_by, code, reason = "client", sent.code, sent.reason
        elif sent is None or rcvd_then_sent:
            initiated_by = "server"
        else:
            initiated_by = "client"
        self.closed = Closed(code, reason, initiated_by, ts=time.monotonic())
        self.sink(self.closed)
        self._closed_event.set()

    def outcome(self) -> WstoolError | None:
        """After the close: None for a clean end, else the error to exit with."""
        if self._failure is not None:
            return self._failure
        conn = self._require_conn()
        protocol = conn.protocol
        parser_exc = internals.parser_error(protocol)
        limit = self.config.max_size_bytes
        if isinstance(parser_exc, PayloadTooBig):
            # The size is unknown when the limit is hit while inflating.
            size = parser_exc.size
            if size:
                what = (f"message of {size + (parser_exc.current_size or 0)} bytes "
                        f"exceeds --max-size {limit}")
            else:
                what = (f"a compressed message from the server decompresses to more than "
                        f"--max-size {limit} bytes")
            return ProtocolFailure(what, hint="raise it, or 0 for no limit")
        if isinstance(parser_exc, ProtocolError):
            return ProtocolFailure(f"protocol error from the server: {parser_exc}")
        if isinstance(parser_exc, UnicodeDecodeError):
            return ProtocolFailure(
                f"server sent invalid UTF-8 ({parser_exc.reason} at byte {parser_exc.start})"
            )
        rcvd, sent, _ = internals.close_frames(protocol)
        if sent is not None and sent.code == 1011 and "keepalive" in sent.reason:
            return TimedOut(
                f"no pong within --ping-timeout {self.config.ping_timeout_s}s",
                hint="0 disables keepalive pings",
            )
        closed = self.closed
        if rcvd is None:
            deadline = internals.close_deadline(conn)  # set when our close went out
            if sent is not None and deadline is not None and conn.loop.time() + 0.01 >= deadline:
                if not self.config.close_timeout_s:
                    return None  # --close-timeout 0: the user chose not to wait
                return ClosedAbnormally(
                    "the server did not answer our close frame within --close-timeout "
                    f"{self.config.close_timeout_s:g}s (1006)",
                    hint="raise --close-timeout, or 0 not to wait",
                )
            # issue 12: RST_STREAM, GOAWAY, END_STREAM
            loss = conn.h2_stream.loss_reason() if conn.h2_stream is not None else None
            return ClosedAbnormally("connection lost without a close frame (1006)"
                                    + (f": {escape(loss)}" if loss is not None else ""))
        if closed is not None and closed.initiated_by == "client":
            return None  # we closed and the server completed the handshake
        if rcvd.code in NORMAL_CLOSE_CODES:
            return None
        # Remote text, on a terminal's stderr: escaped as the close line's is.
        reason = f": {escape(rcvd.reason)}" if rcvd.reason else ""
        return ClosedAbnormally(
            f"server closed the connection with {rcvd.code} "
            f"({describe_close_code(rcvd.code)}){reason}",
            close_code=rcvd.code,
            server_close=True,
        )


def _expand_text_lines(messages: Sequence[str | bytes]) -> list[str | bytes]:
    out: list[str | bytes] = []
    for message in messages:
        if message.__class__ is TextLines:
            assert isinstance(message, TextLines)
            out.extend(message.lines())
        else:
            out.append(message)
    return out


# The second byte of a masked frame by payload length (under 128): MASK + length.
_MASKED_LENGTHS = bytes((0x80 | n) & 0xFF for n in range(256))


@functools.lru_cache(maxsize=8)
def _splitter(count: int, width: int) -> struct.Struct:
    """Cuts COUNT * WIDTH bytes into COUNT bytes objects, in C."""
    return struct.Struct(f"{width}s" * count)


def _short_text_frames(payloads: list[bytes]) -> bytes | None:
    """The masked text frames of PAYLOADS (UTF-8) when each is under 126 bytes (else
    None): built a whole block at a time, by slicing and C calls over all of it
    rather than Python steps per line (issue 14: ~4 600 -> ~2 400 instructions a
    line). The wire is what the per-message path writes: a fresh random key per
    frame (RFC 6455 §5.3), FIN + TEXT, MASK + the 7-bit length.
    """
    count = len(payloads)
    try:
        lengths = bytes(map(len, payloads))
    except ValueError:  # a length over 255
        return None
    if max(lengths) > 125:
        return None
    keys = os.urandom(4 * count)
    # Each frame's header: 0x81, MASK + length, the key (6 bytes), laid out for all.
    heads = bytearray(6 * count)
    heads[0::6] = b"\x81" * count
    heads[1::6] = lengths.translate(_MASKED_LENGTHS)
    heads[2::6] = keys[0::4]
    heads[3::6] = keys[1::4]
    heads[4::6] = keys[2::4]
    heads[5::6] = keys[3::4]
    frames: list[bytes] = [b""] * (2 * count)
    frames[0::2] = _splitter(count, 6).unpack(heads)
    frames[1::2] = map(apply_mask, payloads, _splitter(count, 4).unpack(keys))
    return b"".join(frames)


_HEADER_16 = struct.Struct("!BBH")
_HEADER_64 = struct.Struct("!BBQ")
# The first two bytes of a masked client frame with a payload under 126 bytes, by
# payload length: FIN + opcode, MASK + length (RFC 6455 §5.2).
_TEXT_HEADERS = tuple(bytes((0x81, 0x80 | n)) for n in range(126))
_BINARY_HEADERS = tuple(bytes((0x82, 0x80 | n)) for n in range(126))
