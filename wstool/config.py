"""Frozen configuration built at the CLI edge, and the pure parsers behind it.

The records are ``NamedTuple`` classes, not frozen dataclasses: this module is
imported by every command, ``--version`` included, and defining ten dataclasses
cost ~9 ms of start-up (bench/README.md).

Nothing here touches the network or the terminal: ``wstool/cli/options.py``
turns raw option values into these records (raising
:class:`~wstool.errors.UsageError` with a one-line message on bad input), and
the core and front-ends only read them; no click value crosses that edge.
"""

# No `from __future__ import annotations` here, on purpose (issue 14): typing.NamedTuple
# turns every string annotation into a ForwardRef, which compiles it (~175 000
# instructions a field); real annotations cost next to nothing. The few names that
# exist only for type checkers are quoted.

import os
import re
import urllib.parse
from collections.abc import Mapping
from typing import TYPE_CHECKING, NamedTuple

from wstool.errors import UsageError

if TYPE_CHECKING:
    # Not at run time: pathlib is ~1.2 ms of `wstool --version`, which imports this
    # module, and only the REPL's history needs it (default_history_path imports it).
    from pathlib import Path

# The largest message a connection accepts: --max-size of connect, listen and
# serve-echo (over it: exit 6 / close 1009).
DEFAULT_MAX_SIZE_BYTES = 16 * 1024 * 1024
# frame-dump's --max-size is another bound: how much of one frame's or message's
# payload the decoder keeps; longer payloads stream through and are summarised,
# never refused (frames.py). The same figure, so that a message a wstool
# connection would accept is shown whole.
DEFAULT_MAX_BUFFER_BYTES = DEFAULT_MAX_SIZE_BYTES
DEFAULT_CHUNK_SIZE_BYTES = 64 * 1024
# With permessage-deflate, messages shorter than this are sent uncompressed
# (RFC 7692 §6.1 lets a sender decide per message): deflating a short message
# costs more CPU than the bytes it saves. Node's ws uses the same default.
COMPRESS_THRESHOLD_BYTES = 1024
# zlib settings for what we do compress: level 1 deflates typical payloads ~7x
# faster than the default level 6 (149 vs 22 MB/s on 64 KiB of digits, ratio
# 0.27 vs 0.24; bench/README.md); memLevel 5 is websockets' own default.
DEFLATE_SETTINGS = {"level": 1, "memLevel": 5}
# Where --key-password can come from instead (ps shows command lines, not the environment).
KEY_PASSWORD_ENV = "WSTOOL_KEY_PASSWORD"

# RFC 9110 §5.6.2 token: what a header name may be made of.
# The patterns are compiled on first use, not at import (issue 14): re's compiler is
# pure Python, ~1M instructions a pattern, and a one-shot connect uses neither.
_TOKEN_PATTERN = r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$"


class TLSConfig(NamedTuple):
    """Client-side TLS options (``tls.py`` turns them into an SSLContext)."""

    cafile: str | None = None
    certfile: str | None = None
    keyfile: str | None = None
    insecure: bool = False
    server_name: str | None = None
    # Pass phrase of an encrypted key (--key-password / WSTOOL_KEY_PASSWORD).
    key_password: str | None = None
    # --keylog FILE: TLS session keys in NSS key log format (Wireshark).
    keylog_file: str | None = None


class Target(NamedTuple):
    """Where to connect: a normalised ws:// or wss:// URL, maybe over a Unix socket."""

    url: str
    unix_path: str | None = None

    @property
    def secure(self) -> bool:
        return self.url.startswith("wss://")


class ConnectConfig(NamedTuple):
    """Everything the session core needs to open one client connection."""

    target: Target
    headers: tuple[tuple[str, str], ...] = ()
    subprotocols: tuple[str, ...] = ()
    origin: str | None = None
    auth: tuple[str, str] | None = None
    user_agent: str | None = None
    # -H 'Host: NAME': sent instead of the URL's host (curl's rule); the connection
    # still goes to the URL's host.
    host_header: str | None = None
    tls: TLSConfig = TLSConfig()
    # None: use the environment (HTTP(S)_PROXY, ALL_PROXY, NO_PROXY);
    # "" (from --no-proxy): connect directly.
    proxy: str | None = None
    compress: bool = True
    max_size_bytes: int | None = DEFAULT_MAX_SIZE_BYTES
    open_timeout_s: float | None = 10.0
    ping_interval_s: float | None = 20.0
    ping_timeout_s: float | None = 20.0
    close_timeout_s: float = 5.0
    # -L/--location: follow 3xx answers to the upgrade (curl's and wscat's default is
    # not to), at most max_redirects of them (--max-redirects; the library's 10).
    follow_redirects: bool = False
    max_redirects: int = 10
    # connect --http2 (issue 12): None (HTTP/1.1), "fallback" (try RFC 8441, else the
    # HTTP/1.1 upgrade) or "only"; --trace-h2 reports HTTP/2 frames.
    http2: str | None = None
    trace_h2: bool = False


class OutputConfig(NamedTuple):
    """How front-ends report: shared by connect, listen, serve-echo, frame-dump."""

    verbose: int = 0
    show_secrets: bool = False
    json: bool = False
    color: bool | None = None  # None: decide from the terminal and NO_COLOR
    debug: bool = False
    trace: bool = False
    # connect -q: no diagnostics on stderr but warnings and errors (the close line too).
    quiet: bool = False
    # connect -P/--show-ping-pong (issue 13): pings and pongs both ways, wire order.
    show_ping_pong: bool = False


class StreamConfig(NamedTuple):
    """How stdin becomes messages and messages become stdout: ``connect`` and ``listen``."""

    null_separated: bool = False
    binary: bool = False
    base64: bool = False
    chunk_size_bytes: int = DEFAULT_CHUNK_SIZE_BYTES


class ClientRunConfig(NamedTuple):
    """How a client run goes (``wstool/client/run.py``): pipe mode and the REPL alike."""

    execute: tuple[str, ...] = ()
    message_count: int | None = None  # -n/--count (not "count": a tuple method)
    # Idle time after end of input before closing; None waits for the server.
    wait_s: float | None = 1.0
    echo: bool = False
    reconnect: bool = False
    reconnect_max_delay_s: float = 30.0
    # --reconnect-limit: attempts in a row before giving up (0: never give up).
    reconnect_limit: int = 0
    # --max-time: total deadline of the run, connect included (curl's); None: none.
    max_time_s: float | None = None
    # After the end of input, "every message sent has had a reply" ends the run (issue
    # 10). False for a byte stream (connect --from-tcp): its messages are not requests.
    replies_end_input: bool = True


class ReplConfig(NamedTuple):
    """The REPL's own options (``--vi``, ``--no-history``...), for connect and listen."""

    vi: bool = False
    history_path: "Path | None" = None  # None: no history on disk (--no-history)
    timestamps: bool = False
    pretty_json: bool = True
    base64: bool = False
    verbose: int = 0
    show_secrets: bool = False
    prompt: str = "ws> "  # e.g. "listen> " for wstool listen
    lines_as_binary: bool = False  # -b: a typed line goes out as a binary message
    show_ping_pong: bool = False  # connect -P: every ping and pong, a server-ping age


def config_path(environ: Mapping[str, str]) -> str:
    """Where the file is: $XDG_CONFIG_HOME (an absolute path, per the XDG spec), else ~/.config."""
    base = environ.get("XDG_CONFIG_HOME", "")
    if not os.path.isabs(base):
        home = environ.get("HOME") or os.path.expanduser("~")
        base = os.path.join(home, ".config")
    return os.path.join(base, "wstool", "config.toml")


def default_history_path(environ: Mapping[str, str]) -> "Path":
    """``$XDG_STATE_HOME/wstool/history``, default ``~/.local/state/wstool/history``."""
    from pathlib import Path  # see the TYPE_CHECKING import above

    state_home = environ.get("XDG_STATE_HOME") or ""
    if not os.path.isabs(state_home):  # the XDG spec: ignore relative paths
        home = environ.get("HOME") or str(Path.home())
        state_home = os.path.join(home, ".local", "state")
    return Path(state_home) / "wstool" / "history"


# What a URL's host may be: a host name as RFC 3986 allows it (without the rarely meant
# sub-delims), or an IPv6 literal in brackets; anything else (a space, a comma, a quote)
# is a typo that must not become a DNS query. Checked without regular expressions: the
# two patterns cost ~0.6 ms to compile, on every command's start-up (--version too).
_HOST_CHARS = frozenset("._~%-")
_IPV6_CHARS = frozenset("0123456789abcdefABCDEF:.%")


def _is_host(host: str) -> bool:
    if host.startswith("[") and host.endswith("]"):
        literal, _, zone = host[1:-1].partition("%")
        return bool(literal) and all(c in _IPV6_CHARS for c in literal) and (
            all(c.isalnum() or c in _HOST_CHARS for c in zone))
    return bool(host) and all(c.isalnum() or c in _HOST_CHARS for c in host)


def _mistyped_scheme(text: str) -> tuple[str, str] | None:
    """``ws//host``, ``ws:/host``, ``wss:host``: (scheme, rest) when the ``://`` after a
    scheme is mistyped. ``ws:8080`` is left alone: a host named "ws" on port 8080, as
    in a docker-compose network."""
    lower = text.lower()
    for scheme in ("wss", "ws", "https", "http"):
        if not lower.startswith(scheme):
            continue
        rest = text[len(scheme):]
        if rest.startswith("//") or (rest.startswith(":/") and not rest.startswith("://")):
            return scheme, rest.lstrip(":/")
        if rest.startswith(":") and len(rest) > 1 and rest[1] not in "0123456789/":
            return scheme, rest[1:]
    return None


def parse_target(text: str) -> Target:
    """Normalise a URL argument.

    ``host:port`` and ``host`` mean ``ws://``; a bare port (``9100`` or ``:9100``)
    means ``ws://localhost:PORT/``; ``http(s)://`` are accepted as ``ws(s)://``;
    ``ws+unix:///path.sock`` connects over a Unix socket. A URL that could only be
    a typo is a usage error here, before any DNS lookup (issue 10: ``9100`` was
    taken as the host 0.0.35.140 and the connection left the machine).
    """
    text = text.strip()
    if not text:
        raise UsageError("empty URL")
    if text.startswith("ws+unix://"):
        path = text[len("ws+unix://") :]
        if not path.startswith("/"):
            raise UsageError(f"invalid URL '{text}': expected ws+unix:///absolute/path.sock")
        return Target(url="ws://localhost/", unix_path=path)
    if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in text):
        raise UsageError(
            f"invalid URL '{text}': it contains a space or a control character "
            "(percent-encode it, e.g. %20)"
        )
    bare_port = text[1:] if text.startswith(":") else text
    if bare_port.isdigit():
        text = f"ws://localhost:{bare_port}/"
    scheme, sep, _rest = text.partition("://")
    if not sep:
        mistyped = _mistyped_scheme(text)
        if mistyped:
            raise UsageError(f"invalid URL '{text}': did you mean "
                             f"{mistyped[0]}://{mistyped[1]}?")
        text = "ws://" + text
    else:
        scheme = scheme.lower()
        mapping = {"ws": "ws", "wss": "wss", "http": "ws", "https": "wss"}
        if scheme not in mapping:
            raise UsageError(
                f"invalid URL '{text}': scheme must be ws://, wss:// or ws+unix://"
            )
        text = mapping[scheme] + "://" + _rest
    try:
        parts = urllib.parse.urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise UsageError(f"invalid URL '{text}': {exc}") from None
    host = parts.netloc.rpartition("@")[2]
    host = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    if not parts.hostname:
        raise UsageError(f"invalid URL '{text}': no host")
    if not _is_host(host):
        raise UsageError(f"invalid URL '{text}': '{host}' is not a host name")
    if host.isdigit():
        # getaddrinfo reads "9100" as the IPv4 address 0.0.35.140: never what was meant.
        raise UsageError(
            f"invalid URL '{text}': the host '{host}' is a number; "
            f"for a local port, give {host} or ws://localhost:{host}/"
        )
    if port == 0:
        raise UsageError(f"invalid URL '{text}': port 0")
    if parts.fragment:
        raise UsageError(f"invalid URL '{text}': a WebSocket URL has no #fragment")
    if not parts.path:
        text = urllib.parse.urlunsplit(parts._replace(path="/"))
    return Target(url=text)


def split_userinfo(target: Target) -> tuple[Target, tuple[str, str] | None]:
    """Move ``user:pass@`` out of the URL, so it is sent as HTTP Basic auth once."""
    parts = urllib.parse.urlsplit(target.url)
    if parts.username is None:
        return target, None
    user = urllib.parse.unquote(parts.username)
    password = urllib.parse.unquote(parts.password or "")
    netloc = parts.netloc.rpartition("@")[2]
    url = urllib.parse.urlunsplit(parts._replace(netloc=netloc))
    return Target(url=url, unix_path=target.unix_path), (user, password)


def parse_header(text: str) -> tuple[str, str]:
    """``"Name: value"`` -> ``("Name", "value")``; a clear error otherwise."""
    name, sep, value = text.partition(":")
    name = name.strip()
    if not sep or not name:
        raise UsageError(f"invalid header '{text}': expected \"Name: value\"")
    if not re.match(_TOKEN_PATTERN, name):  # re caches the compiled pattern
        raise UsageError(f"invalid header name '{name}': not an HTTP token")
    value = value.strip()
    if any(c in value for c in "\r\n\0"):
        raise UsageError(f"invalid header '{name}': the value contains CR, LF or NUL")
    return name, value


# Headers the opening handshake makes itself (RFC 6455 §4.1): a -H repeating one would
# send it twice, and a server must then fail the handshake.
_HANDSHAKE_HEADERS = ("upgrade", "connection", "sec-websocket-key", "sec-websocket-version",
                      "sec-websocket-accept")
# Headers that options negotiate: a -H would bypass (and contradict) the negotiation.
_NEGOTIATED_HEADERS = {
    "sec-websocket-protocol": "-s/--subprotocol NAME",
    "sec-websocket-extensions": "--compress/--no-compress",
}


class HandshakeHeaders(NamedTuple):
    """``-H`` values split by what they do: extra headers, and the ones that replace
    what the handshake would send by default (curl's rule: Host and User-Agent)."""

    extra: tuple[tuple[str, str], ...]
    host: str | None
    user_agent: str | None
    origin: str | None


def handshake_headers(
    headers: tuple[tuple[str, str], ...], *, user_agent: str | None, origin: str | None
) -> HandshakeHeaders:
    """Sort ``-H`` headers so none is sent twice (issue 10: ``-H 'Host: x'`` sent two
    Host headers, which RFC 9112 §3.2 answers with 400). Pasting a browser's
    "Copy as cURL" headers is the common way to get here."""
    extra: list[tuple[str, str]] = []
    host = None
    for name, value in headers:
        lower = name.lower()
        if lower in _HANDSHAKE_HEADERS:
            raise UsageError(f"-H '{name}': the WebSocket handshake sets {name} itself")
        if lower in _NEGOTIATED_HEADERS:
            raise UsageError(f"-H '{name}': use {_NEGOTIATED_HEADERS[lower]} instead")
        if lower == "host":
            if host is not None:
                raise UsageError("-H 'Host' given twice")
            host = value
        elif lower == "user-agent":
            if user_agent is not None:
                raise UsageError("give the User-Agent once: --user-agent or -H, not both")
            user_agent = value
        elif lower == "origin":
            if origin is not None:
                raise UsageError("give the Origin once: -o/--origin or -H, not both")
            origin = value
        else:
            extra.append((name, value))
    return HandshakeHeaders(tuple(extra), host, user_agent, origin)


def parse_auth(text: str) -> tuple[str, str]:
    user, sep, password = text.partition(":")
    if not sep:
        raise UsageError("invalid --auth: expected user:password")
    return user, password


def seconds_or_none(value: float | None) -> float | None:
    """Options where 0 (or less) disables a timer."""
    if value is None or value <= 0:
        return None
    return value


def size_or_none(value: int) -> int | None:
    """``--max-size 0`` means no limit."""
    if value < 0:
        raise UsageError(f"invalid --max-size {value}: must be 0 (no limit) or more")
    return value or None


def parse_listen_address(text: str) -> tuple[str, int]:
    """frame-dump's ``--listen HOST:PORT``; an empty HOST is 127.0.0.1."""
    host, sep, port_text = text.rpartition(":")
    if not sep or not port_text.isdigit() or not 0 <= int(port_text) < 65536:
        raise UsageError(f"invalid --listen '{text}': expected HOST:PORT (port 0-65535)")
    host = host.strip("[]") or "127.0.0.1"
    return host, int(port_text)


# Servers (issue 4): serve-echo and listen share ServerConfig.


class ServerConfig(NamedTuple):
    """Where and how a server listens; built by ``options.server_config``."""

    host: str = "127.0.0.1"
    port: int = 8765
    unix_path: str | None = None
    certfile: str | None = None
    keyfile: str | None = None
    key_password: str | None = None  # of an encrypted --key
    self_signed: bool = False
    # Accepted subprotocols in preference order; empty: accept the first offered.
    subprotocols: tuple[str, ...] = ()
    # Allowed Origin values; shell-style * wildcards; empty: any origin.
    origins: tuple[str, ...] = ()
    auth: tuple[str, str] | None = None
    token: str | None = None
    max_size_bytes: int | None = DEFAULT_MAX_SIZE_BYTES
    compress: bool = True
    ping_interval_s: float | None = 20.0
    ping_timeout_s: float | None = 20.0
    max_connections: int | None = None
    open_timeout_s: float | None = 10.0
    close_timeout_s: float = 5.0
    # --http2: also accept HTTP/2 (ALPN h2, h2c prior knowledge) and RFC 8441's
    # WebSockets over it (server/http2.py).
    http2: bool = False
    # --static DIR (issue 16): plain GET/HEAD requests answered from this directory.
    static_dir: str | None = None


class EchoConfig(NamedTuple):
    """``serve-echo`` behaviour knobs."""

    broadcast: bool = False
    delay_s: float = 0.0
    close_after: int | None = None
    close_code: int = 1000
    close_reason: str = ""
    ping_every_s: float | None = None
    greeting: str | None = None
    drop_after: int | None = None


class ListenConfig(NamedTuple):
    """``listen`` options: its own, plus the stdin/stdout stream it shares with connect."""

    once: bool = False
    stream: StreamConfig = StreamConfig()


# Bridges (issue 16): listen --to-tcp and connect --from-tcp.


class TcpBridgeConfig(NamedTuple):
    """A TCP end of a bridge: where ``listen --to-tcp`` connects, or where
    ``connect --from-tcp`` accepts; ``text``: --text (lines <-> text messages)."""

    host: str
    port: int
    text: bool = False


def parse_tcp_address(text: str, flag: str, *, default_host: str | None = None) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:22`` for IPv6); with DEFAULT_HOST, ``PORT`` alone too.

    Syntax only (no DNS here): HOST is an IP literal or a host name of letters,
    digits, ``.``, ``-`` and ``_``; PORT is 1-65535 (0 too with DEFAULT_HOST: a free
    port to listen on)."""
    expected = "[HOST:]PORT" if default_host is not None else "HOST:PORT"
    host, sep, port_text = text.rpartition(":")
    if not sep:
        host, port_text = "", text
    if not sep and default_host is None:
        raise UsageError(f"invalid {flag} {text!r}: expected {expected}")
    low = 0 if default_host is not None else 1
    if not port_text.isascii() or not port_text.isdigit() or not low <= int(port_text) <= 65535:
        raise UsageError(f"invalid {flag} {text!r}: expected {expected} (port {low}-65535)")
    if not host:
        if default_host is None or sep:
            raise UsageError(f"invalid {flag} {text!r}: expected {expected} (HOST is empty)")
        host = default_host
    if host.startswith("[") and host.endswith("]"):
        literal = host[1:-1]
        if not literal or ":" not in literal or not all(c in _IPV6_CHARS for c in literal):
            raise UsageError(f"invalid {flag} {text!r}: {host} is not an IPv6 address")
        return literal, int(port_text)
    if ":" in host:
        raise UsageError(f"invalid {flag} {text!r}: an IPv6 HOST goes in brackets, "
                         "e.g. [::1]:22")
    labels = host.split(".")
    if len(host) > 253 or not all(
        label and len(label) <= 63 and label.isascii()
        and all(c.isalnum() or c in "-_" for c in label)
        and not label.startswith("-") and not label.endswith("-")
        for label in (labels[:-1] if host.endswith(".") else labels)
    ):
        raise UsageError(f"invalid {flag} {text!r}: {host!r} is not a host name or address")
    return host, int(port_text)
class ExecConfig(NamedTuple):
    """``listen --exec`` / ``connect --exec`` (issue 16): the process and how its
    streams become messages (``wstool/bridge/process.py``)."""

    argv: tuple[str, ...]
    binary: bool = False
    separator: bytes = b"\n"  # -0: NUL
    chunk_size: int = DEFAULT_CHUNK_SIZE_BYTES  # -b: largest message made of stdout
    kill_after_s: float = 1.0  # stdin closed -> SIGTERM -> SIGKILL, this far apart
    stderr_to_client: bool = False
    # Longest stdout line sent as one message (the connection's --max-size).
    max_line_bytes: int | None = None

    @property
    def display(self) -> str:
        import shlex

        return shlex.join(self.argv)


# wstool bench (issue 15)

BENCH_MODES = ("echo", "request", "connect", "idle", "broadcast")

# --fail-if METRIC OP VALUE: latency percentiles (a time: 50ms, 200us, 1.5s; a bare
# number is milliseconds), "errors" (a count) and "rate" (messages received per second).
BENCH_LATENCY_METRICS = ("min", "p50", "p90", "p99", "p99.9", "max", "mean")
BENCH_METRICS = (*BENCH_LATENCY_METRICS, "errors", "rate")
_THRESHOLD_PATTERN = (
    r"^\s*([a-z][a-z0-9.]*)\s*(<=|>=|<|>|==)\s*([0-9]+(?:\.[0-9]+)?)\s*([a-zµ]*)\s*$")
_TIME_UNITS_S = {"": 1e-3, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0}


class Threshold(NamedTuple):
    """One ``--fail-if``: crossed when ``METRIC OP VALUE`` holds for the report."""

    source: str
    metric: str
    op: str
    value: float  # seconds for a latency, a count for errors, per second for rate

    def crossed(self, measured: float) -> bool:
        value, op = self.value, self.op
        if op == ">":
            return measured > value
        if op == ">=":
            return measured >= value
        if op == "<":
            return measured < value
        if op == "<=":
            return measured <= value
        return measured == value


def parse_threshold(text: str) -> Threshold:
    """``'p99>50ms'``, ``'errors>0'``, ``'rate<10000'`` -> a Threshold (UsageError else)."""
    match = re.match(_THRESHOLD_PATTERN, text.lower())  # compiled once, cached by re
    hint = (f"invalid --fail-if '{text}': METRIC OP VALUE with METRIC one of "
            f"{', '.join(BENCH_METRICS)}, OP one of < <= > >= ==, e.g. 'p99>50ms'")
    if match is None:
        raise UsageError(hint)
    metric, op, number, unit = match.groups()
    if metric not in BENCH_METRICS:
        raise UsageError(hint)
    value = float(number)
    if metric in BENCH_LATENCY_METRICS:
        if unit not in _TIME_UNITS_S:
            raise UsageError(f"invalid --fail-if '{text}': unit '{unit}' (use us, ms or s)")
        value *= _TIME_UNITS_S[unit]
    elif unit not in ("", "/s") and not (metric == "rate" and unit == "k"):
        raise UsageError(f"invalid --fail-if '{text}': {metric} takes a plain number")
    elif unit == "k":
        value *= 1000
    return Threshold(text, metric, op, value)


class BenchConfig(NamedTuple):
    """``wstool bench``: what load to make and how to report it (the connection itself
    is a ConnectConfig, shared with ``connect``)."""

    mode: str = "echo"
    connections: int = 1
    duration_s: float | None = 10.0  # total sending time, warm-up included
    messages: int | None = None  # per connection, instead of --duration
    warmup_s: float = 0.0
    payloads: tuple[bytes, ...] = (b"x" * 32,)
    binary: bool = False
    window: int = 1  # messages in flight per connection (closed loop)
    refill: int = 1  # closed loop: send once this many replies are owed, that many at once
    rate_per_s: float | None = None  # per connection (open loop), instead of window
    match_id: str | None = None  # request mode: the reply's field that names the request
    connect_rate_per_s: float | None = None  # connect mode: new handshakes per second
    ramp_per_s: float | None = None  # how fast connections are opened (idle, echo)
    procs: int = 1
    thresholds: tuple[Threshold, ...] = ()
    slow_readers_percent: float = 0.0  # echo mode: this share of connections read slowly
    # echo mode: a payload is a template that changes ({{seq}}, {{uuid}}...): rendered
    # for each send (no pre-built frames)
    templated: bool = False
    # broadcast mode: where the publisher connects (None: the subscribers' URL)
    publish: ConnectConfig | None = None
    progress_interval_s: float = 0.5
