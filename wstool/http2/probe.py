"""``wstool probe URL`` (issue 12): every way a client may open a WebSocket there.

Three independent attempts, each on a connection of its own (as browsers do: a
browser that finds no extended CONNECT on its h2 connection opens another one for
the HTTP/1.1 upgrade):

1. TCP and TLS with ALPN ``h2, http/1.1`` offered, as a browser offers it: the TLS
   version, the protocol the server chose, its certificate;
2. the HTTP/1.1 upgrade (RFC 6455), with websockets' client: status, subprotocol,
   extensions, how long it took;
3. HTTP/2 (RFC 8441): whether h2 is chosen (h2c with prior knowledge on ws://), the
   server's SETTINGS (``ENABLE_CONNECT_PROTOCOL``, ``MAX_CONCURRENT_STREAMS``) and the
   answer to an extended CONNECT.

:func:`verdict` says in plain words what that means for browsers and CLI clients;
the report is a tree of records (``probe_report`` renders it as text or JSON).
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import socket
import ssl
import time
from typing import Any, NamedTuple

from wstool.config import ConnectConfig
from wstool.http2.client import H2ClientEndpoint
from wstool.http2.rfc8441 import (
    ENABLE_CONNECT_PROTOCOL,
    MAX_CONCURRENT_STREAMS,
    extended_connect_block,
    setting_name,
    status_of,
)
from wstool.tls import certificate_summary, client_context

BODY_BYTES = 200


class TransportResult(NamedTuple):
    ok: bool
    error: str | None = None
    elapsed_s: float | None = None
    tls_version: str | None = None
    cipher: str | None = None
    alpn_offered: tuple[str, ...] = ()
    alpn_chosen: str | None = None
    certificate: str | None = None


class UpgradeResult(NamedTuple):
    """The HTTP/1.1 upgrade."""

    ok: bool
    status: int | None = None
    reason: str = ""
    subprotocol: str | None = None
    extensions: tuple[str, ...] = ()
    body: str = ""
    error: str | None = None
    elapsed_s: float | None = None


# The error of an attempt not made because TCP/TLS failed.
NOT_TRIED = "not tried: "


class H2Result(NamedTuple):
    """HTTP/2: the connection, its SETTINGS, the extended CONNECT."""

    ok: bool
    h2: bool = False  # HTTP/2 spoken (ALPN h2, or h2c answered with SETTINGS)
    cleartext: bool = False
    settings: tuple[tuple[str, int], ...] = ()
    enable_connect_protocol: bool = False
    max_concurrent_streams: int | None = None
    status: int | None = None
    reason: str = ""
    subprotocol: str | None = None
    extensions: tuple[str, ...] = ()
    body: str = ""
    error: str | None = None
    elapsed_s: float | None = None


class ProbeReport(NamedTuple):
    url: str
    transport: TransportResult
    http11: UpgradeResult
    http2: H2Result
    verdict: tuple[str, ...]

    @property
    def accepted(self) -> bool:
        return self.http11.ok or self.http2.ok

    @property
    def reachable(self) -> bool:
        return self.transport.ok


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS certificate not trusted: {exc.verify_message}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS handshake failed: {exc.reason or exc}"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve host: {exc.strerror}"
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, OSError):
        return exc.strerror or str(exc) or type(exc).__name__
    return str(exc) or type(exc).__name__


def _body_text(body: bytes) -> str:
    text = body.decode("utf-8", "replace").strip()
    return text.splitlines()[0][:BODY_BYTES] if text else ""


def _context(config: ConnectConfig, alpn: list[str]) -> ssl.SSLContext:
    context = client_context(config.tls)
    context.set_alpn_protocols(alpn)
    return context


async def probe_transport(config: ConnectConfig, host: str, port: int) -> TransportResult:
    """TCP, and TLS with ALPN h2 + http/1.1 offered for wss://."""
    loop = asyncio.get_running_loop()
    secure = config.target.secure
    alpn = ("h2", "http/1.1") if secure else ()
    kwargs: dict[str, Any] = {}
    if secure:
        kwargs["ssl"] = _context(config, list(alpn))
        kwargs["server_hostname"] = config.tls.server_name or host
    start = time.perf_counter()
    try:
        async with asyncio.timeout(config.open_timeout_s):
            transport, _ = await loop.create_connection(asyncio.Protocol, host, port,
                                                        **kwargs)
    except (OSError, TimeoutError) as exc:
        return TransportResult(False, _error_text(exc), alpn_offered=alpn)
    elapsed = time.perf_counter() - start
    try:
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is None:
            return TransportResult(True, elapsed_s=elapsed)
        cipher = ssl_object.cipher()
        return TransportResult(
            True, elapsed_s=elapsed, tls_version=ssl_object.version(),
            cipher=cipher[0] if cipher else None, alpn_offered=alpn,
            alpn_chosen=ssl_object.selected_alpn_protocol(),
            certificate=certificate_summary(ssl_object).removeprefix("server certificate: "))
    finally:
        transport.abort()


async def probe_http11(config: ConnectConfig) -> UpgradeResult:
    """The RFC 6455 upgrade with websockets' client, ALPN http/1.1 only."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import InvalidStatus

    kwargs: dict[str, Any] = {}
    if config.target.secure:
        kwargs["ssl"] = _context(config, ["http/1.1"])
        if config.tls.server_name:
            kwargs["server_hostname"] = config.tls.server_name
    start = time.perf_counter()
    try:
        conn = await connect(
            config.target.url, additional_headers=list(config.headers),
            subprotocols=list(config.subprotocols) or None,  # type: ignore[arg-type]
            origin=config.origin,  # type: ignore[arg-type]
            open_timeout=config.open_timeout_s, proxy=None, **kwargs)
    except InvalidStatus as exc:
        refusal = exc.response
        return UpgradeResult(False, refusal.status_code, refusal.reason_phrase,
                             body=_body_text(bytes(refusal.body or b"")),
                             error=f"answered HTTP {refusal.status_code}",
                             elapsed_s=time.perf_counter() - start)
    except Exception as exc:
        return UpgradeResult(False, error=_error_text(exc),
                             elapsed_s=time.perf_counter() - start)
    elapsed = time.perf_counter() - start
    try:
        response = conn.response
        return UpgradeResult(
            True, response.status_code if response else 101,
            (response.reason_phrase if response else "") or "Switching Protocols",
            subprotocol=conn.subprotocol,
            extensions=tuple(str(ext.name) for ext in conn.protocol.extensions),
            elapsed_s=elapsed)
    finally:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(1.0):
                await conn.close()
        conn.transport.abort()


async def probe_http2(config: ConnectConfig, host: str, port: int) -> H2Result:
    """HTTP/2: ALPN h2 (or h2c prior knowledge), SETTINGS, one extended CONNECT."""
    loop = asyncio.get_running_loop()
    secure = config.target.secure
    kwargs: dict[str, Any] = {}
    if secure:
        kwargs["ssl"] = _context(config, ["h2", "http/1.1"])
        kwargs["server_hostname"] = config.tls.server_name or host
    start = time.perf_counter()
    endpoint: H2ClientEndpoint | None = None
    transport: asyncio.Transport | None = None
    try:
        async with asyncio.timeout(config.open_timeout_s):
            transport, endpoint = await loop.create_connection(
                H2ClientEndpoint, host, port, **kwargs)
            if secure:
                ssl_object = transport.get_extra_info("ssl_object")
                chosen = ssl_object.selected_alpn_protocol() if ssl_object else None
                if chosen != "h2":
                    return H2Result(False, error=f"ALPN chose {chosen or 'nothing'}, not h2")
            try:
                await endpoint.settings_received
            except (ConnectionError, OSError) as exc:
                return H2Result(False, cleartext=not secure,
                                error=f"no HTTP/2 answer ({_error_text(exc)})")
            settings = endpoint.remote_settings
            base = H2Result(
                False, True, not secure,
                settings=tuple((setting_name(c), v) for c, v in settings.items()),
                enable_connect_protocol=settings.get(ENABLE_CONNECT_PROTOCOL) == 1,
                max_concurrent_streams=settings.get(MAX_CONCURRENT_STREAMS))
            if not base.enable_connect_protocol:
                return base._replace(error="SETTINGS_ENABLE_CONNECT_PROTOCOL not advertised")
            return await _extended_connect(config, endpoint, host, port, base, start)
    except (OSError, TimeoutError) as exc:
        return H2Result(False, cleartext=not secure, error=_error_text(exc))
    finally:
        if endpoint is not None:
            endpoint.close()
        if transport is not None:
            transport.abort()


async def _extended_connect(config: ConnectConfig, endpoint: H2ClientEndpoint, host: str,
                            port: int, base: H2Result, start: float) -> H2Result:
    from websockets.client import ClientProtocol
    from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory
    from websockets.uri import parse_uri

    # The request websockets' client would send, then as RFC 8441 sends it.
    protocol = ClientProtocol(
        parse_uri(config.target.url), origin=config.origin,  # type: ignore[arg-type]
        extensions=[ClientPerMessageDeflateFactory()],
        subprotocols=list(config.subprotocols) or None)  # type: ignore[arg-type]
    request = protocol.connect()
    request.headers.update(list(config.headers))
    authority = config.host_header or request.headers["Host"]
    block = extended_connect_block(scheme="https" if config.target.secure else "http",
                                   authority=authority, path=request.path,
                                   headers=request.headers.raw_items())
    stream = endpoint.open_stream()
    connect_start = time.perf_counter()
    endpoint.send_headers(stream.stream_id, block)
    try:
        response = await stream.headers_received
    except (ConnectionError, OSError) as exc:
        return base._replace(error=f"no answer to the extended CONNECT ({exc})")
    elapsed = time.perf_counter() - connect_start
    status = status_of(response)
    headers = {name: value for name, value in response if not name.startswith(":")}
    if status != 200:
        if not stream.ended.done():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(stream.ended), 1.0)
        try:
            reason = http.HTTPStatus(status or 0).phrase
        except ValueError:
            reason = ""
        return base._replace(status=status, reason=reason,
                             body=_body_text(stream.early_data()),
                             error=f"answered :status {status}", elapsed_s=elapsed)
    stream.abort()
    extensions = tuple(part.split(";")[0].strip() for part in
                       headers.get("sec-websocket-extensions", "").split(",") if part.strip())
    return base._replace(ok=True, status=200, subprotocol=headers.get("sec-websocket-protocol"),
                         extensions=extensions, elapsed_s=elapsed)


def verdict(report_url: str, secure: bool, transport: TransportResult,
            http11: UpgradeResult, h2: H2Result) -> tuple[str, ...]:
    """What the results mean, in plain words (issue 12's examples)."""
    if not transport.ok:
        if (transport.error or "").startswith("TLS certificate not trusted"):
            # As connect says it: the two options that change it.
            return (f"cannot connect: {transport.error}",
                    "trust its CA with --cacert FILE, or skip the check with -k/--insecure")
        return (f"cannot connect: {transport.error}",)
    lines: list[str] = []
    h1_answer = ("works" if http11.ok else
                 f"answers {http11.status}" if http11.status is not None else "fails")
    if http11.ok and h2.ok:
        lines.append("accepts WebSockets over HTTP/1.1 and over HTTP/2 (RFC 8441)")
        if secure:
            lines.append("browsers that speak RFC 8441 (Chrome, Firefox) will open their "
                         "sockets on the page's h2 connection")
    elif h2.ok:
        lines.append(f"accepts WebSockets only over HTTP/2: the HTTP/1.1 upgrade {h1_answer}; "
                     "clients without RFC 8441 (wscat, websocat, curl, most libraries) fail")
    elif h2.enable_connect_protocol and h2.status is not None:
        lines.append(f"advertises extended CONNECT but answers {h2.status} on it"
                     + ((": Chrome will fail where wscat works" if secure else
                         ": an RFC 8441 client fails where wscat works") if http11.ok else
                        f"; the HTTP/1.1 upgrade {h1_answer} too"))
    elif h2.h2 and not h2.enable_connect_protocol:
        if secure:
            lines.append("serves h2 but does not advertise extended CONNECT: browsers will "
                         "use HTTP/1.1 on a separate connection"
                         + ("" if http11.ok else f", where the upgrade {h1_answer}"))
        else:
            lines.append("speaks h2c but does not advertise extended CONNECT")
    elif secure and transport.alpn_chosen != "h2":
        lines.append(f"does not serve HTTP/2 (ALPN chose {transport.alpn_chosen or 'nothing'}): "
                     f"browsers use the HTTP/1.1 upgrade, which {h1_answer}")
    elif not secure:
        lines.append(f"no h2c here: the HTTP/1.1 upgrade {h1_answer}")
    if not secure and (http11.ok or h2.ok):
        lines.append("browsers never use HTTP/2 over ws:// (h2c): they use the HTTP/1.1 "
                     "upgrade" + ("" if http11.ok else ", which fails here"))
    if not http11.ok and not h2.ok:
        lines.append("no way to open a WebSocket here works")
    return tuple(lines)


async def probe(config: ConnectConfig) -> ProbeReport:
    """Run the three attempts (one after the other: they are a few ms each)."""
    from websockets.uri import parse_uri

    uri = parse_uri(config.target.url)
    host, port = uri.host, uri.port
    transport = await probe_transport(config, host, port)
    if not transport.ok:
        skipped = NOT_TRIED + (transport.error or "no connection")
        http11 = UpgradeResult(False, error=skipped)
        h2 = H2Result(False, cleartext=not config.target.secure, error=skipped)
    else:
        http11 = await probe_http11(config)
        h2 = await probe_http2(config, host, port)
    return ProbeReport(config.target.url, transport, http11, h2,
                       verdict(config.target.url, config.target.secure, transport, http11, h2))
