"""Shared Click options as decorator factories, and their raw -> config builders.

Model: click's ``decorators.py`` (``version_option``) and httpie's
``ProcessingOptions.from_raw_args``. Each factory adds a group of options to a
command; each ``*_config`` function turns the raw keyword arguments into the
frozen records of ``config.py`` (and frame-dump's of ``dump/``), raising
``UsageError`` with a one-line message on bad input. This is the edge: the raw
click values go no further than this package.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

import click

from wstool.cli.records import _open_timeout_s
from wstool.cli.records import connect_config as connect_config
from wstool.cli.records import output_config as output_config
from wstool.cli.records import stream_config as stream_config
from wstool.cli.records import tls_config as tls_config
from wstool.config import (
    DEFAULT_CHUNK_SIZE_BYTES,
    DEFAULT_MAX_BUFFER_BYTES,
    DEFAULT_MAX_SIZE_BYTES,
    KEY_PASSWORD_ENV,
    ConnectConfig,
    OutputConfig,
    ReplConfig,
    TcpBridgeConfig,
    default_history_path,
    parse_auth,
    parse_header,
    parse_listen_address,
    parse_target,
    parse_tcp_address,
    seconds_or_none,
    size_or_none,
    split_userinfo,
)
from wstool.errors import UsageError

if TYPE_CHECKING:
    from wstool.client.expect import SequenceObserver, Step, TypedLines
    from wstool.client.run import InputSource
    from wstool.config import ClientRunConfig
    from wstool.dump.frontend import DumpConfig, DumpPlan
    from wstool.dump.relay import RelayConfig
    from wstool.templates import Template

F = TypeVar("F", bound=Callable[..., Any])

_FILE = click.Path(dir_okay=False)  # existence is checked when read, with our message


class Seconds(click.FloatRange):
    """A number of seconds: a float (within the range given), but never NaN or infinite
    (issue 10: `-w nan` made every comparison false and the run waited forever; a
    FloatRange lets NaN through, since no comparison fails). Each option keeps its own
    meaning for 0 and negative values."""

    name = "number of seconds"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> Any:
        seconds = click.FLOAT.convert(value, param, ctx)
        if math.isnan(seconds) or math.isinf(seconds):
            self.fail(f"{value!r} is not a finite number of seconds", param, ctx)
        return super().convert(seconds, param, ctx)

    def _describe_range(self) -> str:
        # click's FloatRange describes an unbounded range as "x<=None" in --help;
        # an empty string makes click leave the range out.
        if self.min is None and self.max is None:
            return ""
        return super()._describe_range()


SECONDS = Seconds()


def _apply(options: list[Callable[[F], F]]) -> Callable[[F], F]:
    def decorator(f: F) -> F:
        for option in reversed(options):
            f = option(f)
        return f

    return decorator


def stream_options(f: F) -> F:
    """How stdin and stdout carry messages (connect and listen in a pipe)."""
    return _apply([
        click.option("-0", "--null", "null_separated", is_flag=True,
                     help="NUL, not newline, separates messages on stdin and stdout."),
        click.option("-b", "--binary", is_flag=True,
                     help="Send stdin as binary messages as it arrives; write binary "
                          "payloads raw."),
        click.option("--base64", "use_base64", is_flag=True,
                     help="Show received binary as base64 (text mode), not hex."),
        click.option("--chunk-size", type=click.IntRange(1), default=DEFAULT_CHUNK_SIZE_BYTES,
                     show_default=True, metavar="BYTES",
                     help="Largest binary message read from stdin."),
    ])(f)


def repl_options(f: F) -> F:
    """The REPL's own options (connect and listen on a terminal)."""
    return _apply([
        click.option("--vi", is_flag=True, help="REPL: Vi key bindings (default: Emacs)."),
        click.option("--no-history", is_flag=True,
                     help="REPL: do not read or write $XDG_STATE_HOME/wstool/history."),
        click.option("--timestamps", is_flag=True,
                     help="REPL: a timestamp column on each message (/timestamps)."),
        click.option("--no-pretty", is_flag=True,
                     help="REPL: messages as received, no JSON colours or pretty-printing "
                          "(/json off; default /json compact: one coloured line per message "
                          "that fits the width)."),
    ])(f)


def max_size_option(help_text: str) -> Callable[[F], F]:
    """``--max-size``: the largest message a connection accepts (connect and the servers).

    frame-dump's ``--max-size`` is spelled the same but bounds buffering, not
    messages: ``max_buffer_option``.
    """
    return click.option("--max-size", "max_size", type=int, default=DEFAULT_MAX_SIZE_BYTES,
                        show_default=True, metavar="BYTES", help=help_text)


def max_buffer_option(f: F) -> F:
    """frame-dump's ``--max-size``: how much payload is kept, not what is accepted."""
    return click.option(
        "--max-size", "max_buffer", type=int, default=DEFAULT_MAX_BUFFER_BYTES,
        show_default=True, metavar="BYTES",
        help="Most payload bytes buffered per frame or message; longer ones are "
             "summarised. 0 = no limit.")(f)


def connect_options(f: F) -> F:
    """Headers, subprotocols, auth, proxy, compression, limits, keepalive."""
    return _apply([
        click.option("-H", "--header", "headers", multiple=True, metavar="'NAME: VALUE'",
                     help="Extra HTTP header for the handshake (repeatable); Host and "
                          "User-Agent replace the defaults."),
        click.option("-s", "--subprotocol", "subprotocols", multiple=True, metavar="NAME",
                     help="Offer this subprotocol (repeatable, in preference order)."),
        click.option("-o", "--origin", metavar="ORIGIN", help="Origin header."),
        click.option("--auth", metavar="USER:PASS",
                     help="HTTP Basic auth (also taken from user:pass@ in the URL)."),
        click.option("--user-agent", metavar="TEXT", help="User-Agent header."),
        click.option("--proxy", metavar="URL",
                     help="http://, https:// or socks5:// proxy "
                          "(default: HTTPS_PROXY/HTTP_PROXY/ALL_PROXY, minus NO_PROXY)."),
        click.option("--no-proxy", is_flag=True, help="Ignore proxy settings; connect directly."),
        click.option("--compress/--no-compress", default=True, show_default=True,
                     help="Offer permessage-deflate."),
        max_size_option("Largest message accepted; 0 = no limit."),
        click.option("--open-timeout", type=SECONDS, default=10.0, show_default=True,
                     metavar="SECONDS", help="Connect + TLS + handshake deadline; 0 = none."),
        click.option("--ping-interval", type=SECONDS, default=20.0, show_default=True,
                     metavar="SECONDS", help="Keepalive ping period; 0 disables."),
        click.option("--ping-timeout", type=SECONDS, default=20.0, show_default=True,
                     metavar="SECONDS", help="Fail if a keepalive pong is later; 0 disables."),
        click.option("--close-timeout", type=SECONDS, default=5.0, show_default=True,
                     metavar="SECONDS",
                     help="Longest wait for the server's closing handshake; 0 = do not wait."),
        click.option("-L", "--location", "follow_redirects", is_flag=True,
                     help="Follow a 3xx answer to the upgrade (default: report it, exit 4)."),
        click.option("--max-redirects", type=click.IntRange(0), default=10, show_default=True,
                     metavar="N", help="With -L: give up after N redirects."),
    ])(f)


def _key_password_option(more: str = "") -> Callable[[F], F]:
    return click.option(
        "--key-password", metavar="TEXT", envvar=KEY_PASSWORD_ENV,
        help=f"Pass phrase of an encrypted --key; better in {KEY_PASSWORD_ENV}, which ps "
             f"does not show{more}.")


def _tls_options(key_password_more: str) -> Callable[[F], F]:
    return _apply([
        click.option("--cacert", type=_FILE, metavar="FILE",
                     help="Trust the CA certificates in this PEM file."),
        click.option("--cert", type=_FILE, metavar="FILE", help="Client certificate (PEM)."),
        click.option("--key", type=_FILE, metavar="FILE", help="Private key of --cert (PEM)."),
        _key_password_option(key_password_more),
        click.option("-k", "--insecure", is_flag=True,
                     help="Do not verify the server's certificate (warns on stderr)."),
        click.option("--server-name", metavar="NAME",
                     help="TLS server name (SNI) and the name the certificate must match."),
        click.option("--keylog", type=click.Path(dir_okay=False), metavar="FILE",
                     help="Append TLS session keys to FILE (NSS key log format) so "
                          "Wireshark can decrypt wss://; as $SSLKEYLOGFILE does."),
    ])


# Only connect asks for a missing pass phrase (on a terminal); replay and
# frame-dump's relay never prompt, so their help must not promise it (issue 13).
tls_options = _tls_options(" (asked for on a terminal when not given)")
upstream_tls_options = _tls_options("")


# The event kinds each command's --json writes, named in its help (issue 13: "schema
# in README" sent a newcomer away); the keys of each are in README.
CONNECT_JSON_EVENTS = "open, message, ping, pong, close, redirect, reconnecting, expect"
REPLAY_JSON_EVENTS = CONNECT_JSON_EVENTS.replace(", expect", "") + " and a final replay"
LISTEN_JSON_EVENTS = ("listening, connect, reject, message, disconnect, frame (-vv), summary, "
                      "h2_connection, h2_stream (--http2)"
                      "; process, process_exit, process_error, stderr (--exec)")
SERVE_ECHO_JSON_EVENTS = ("listening, connect, reject, disconnect, frame (-vv), summary, "
                          "h2_connection, h2_stream (--http2)")
FRAME_DUMP_JSON_EVENTS = ("one object per frame, and the events handshake, message, error; "
                          "relay and --pcap also listening, open, close, skipped")
RUN_JSON_EVENTS = "step (one per step) and summary"


def json_option_help(events: str) -> str:
    return f"Write events as JSON lines on stdout: {events} (keys in README)."


def _common_output_options(json_events: str) -> list[Callable[[F], F]]:
    return [
        click.option("--json", "json_output", is_flag=True, help=json_option_help(json_events)),
        click.option("--color/--no-color", default=None,
                     help="Force colour on or off (default: on for a terminal, off "
                          "with NO_COLOR)."),
        click.option("--debug", is_flag=True, help="Show tracebacks for errors."),
    ]


def _output_options(verbose_help: str, json_events: str, *,
                    quiet: bool = False) -> Callable[[F], F]:
    quiet_option = [click.option(
        "-q", "--quiet", is_flag=True,
        help="Nothing on stderr but warnings and errors (not even the close line).",
    )] if quiet else []
    return _apply([
        click.option("-v", "--verbose", count=True, help=verbose_help),
        *quiet_option,
        click.option("--show-secrets", is_flag=True,
                     help="Do not mask Authorization/Cookie values in -v output."),
        *_common_output_options(json_events),
    ])


# What each -v level logs, said per command (issue 10: "and more" told nothing).
_CONNECT_VERBOSE_HELP = (
    "On stderr, curl -v style: each connection step (address, TCP and TLS with "
    "timings, the server certificate), the handshake request and response (a "
    "rejected one too: status, headers, first lines of the body), the connected "
    "line and pong round-trip times.")
output_options = _output_options(_CONNECT_VERBOSE_HELP, CONNECT_JSON_EVENTS, quiet=True)
replay_output_options = _output_options(_CONNECT_VERBOSE_HELP, REPLAY_JSON_EVENTS, quiet=True)
_SERVER_VERBOSE_HELP = (
    "On stderr: -v each connection, rejection and close; -vv also each handshake, "
    "every frame and ping.")
server_output_options = _output_options(_SERVER_VERBOSE_HELP, LISTEN_JSON_EVENTS)
serve_echo_output_options = _output_options(_SERVER_VERBOSE_HELP, SERVE_ECHO_JSON_EVENTS)


def dump_output_options(f: F) -> F:
    """frame-dump's: no -v (it prints everything already)."""
    return _apply([
        click.option("--show-secrets", is_flag=True,
                     help="Relay: do not mask Authorization/Cookie values in the upgrade "
                          "requests and responses shown."),
        *_common_output_options(FRAME_DUMP_JSON_EVENTS),
    ])(f)


def repl_config(raw: Mapping[str, Any], environ: Mapping[str, str], output: OutputConfig,
                *, prompt: str | None = None) -> ReplConfig:
    """``repl_options`` (and ``-b``/``--base64``) -> ``ReplConfig``, for connect and listen.

    ENVIRON locates the history file ($XDG_STATE_HOME) unless --no-history;
    PROMPT replaces the default ``ws> `` (listen's ``listen> ``).
    """
    cfg = ReplConfig(
        vi=bool(raw.get("vi")),
        history_path=None if raw.get("no_history") else default_history_path(environ),
        timestamps=bool(raw.get("timestamps")),
        pretty_json=not raw.get("no_pretty"),
        base64=bool(raw.get("use_base64")),
        lines_as_binary=bool(raw.get("binary")),
        verbose=output.verbose,
        show_secrets=output.show_secrets,
        show_ping_pong=output.show_ping_pong,
    )
    return cfg if prompt is None else cfg._replace(prompt=prompt)


# Servers (issue 4): serve-echo and listen.

import os  # noqa: E402

from wstool.config import ServerConfig  # noqa: E402


def server_options(f: F) -> F:
    """Where to listen, TLS, who may connect, limits, keepalive."""
    d = ServerConfig()
    return _apply([
        click.option("--host", default=d.host, show_default=True, metavar="ADDR",
                     help="Address to listen on."),
        click.option("-p", "--port", type=click.IntRange(0, 65535), default=d.port,
                     show_default=True, help="TCP port; 0 picks a free one (printed)."),
        click.option("--unix", "unix_path", metavar="PATH",
                     help="Listen on this Unix socket instead of TCP."),
        click.option("--cert", type=_FILE, metavar="FILE",
                     help="Serve wss:// with this certificate (PEM)."),
        click.option("--key", type=_FILE, metavar="FILE", help="Private key of --cert (PEM)."),
        _key_password_option(),
        click.option("--self-signed", is_flag=True,
                     help="Serve wss:// with a throwaway certificate for localhost "
                          "(prints its SHA-256 fingerprint and file for --cacert)."),
        click.option("-s", "--subprotocol", "subprotocols", multiple=True, metavar="NAME",
                     help="Accept this subprotocol (repeatable, preference order); "
                          "default: accept the first one a client offers."),
        click.option("--origin", "origins", multiple=True, metavar="PATTERN",
                     help="Allowed Origin (repeatable, * wildcards); others get 403."),
        click.option("--auth", metavar="USER:PASS",
                     help="Require HTTP Basic auth; others get 401."),
        click.option("--token", metavar="TOKEN",
                     help="Require 'Authorization: Bearer TOKEN' or ?token=TOKEN; "
                          "others get 401."),
        max_size_option("Largest message accepted (else close 1009); 0 = no limit."),
        click.option("--compress/--no-compress", default=True, show_default=True,
                     help="Accept permessage-deflate."),
        click.option("--ping-interval", type=SECONDS, default=d.ping_interval_s,
                     show_default=True, metavar="SECONDS",
                     help="Keepalive ping period; 0 disables."),
        click.option("--ping-timeout", type=SECONDS, default=d.ping_timeout_s,
                     show_default=True, metavar="SECONDS",
                     help="Close 1011 when a keepalive pong is later; 0 disables."),
        click.option("--max-connections", type=click.IntRange(1), metavar="N",
                     help="Refuse more than N open connections with HTTP 503."),
        click.option("--open-timeout", type=SECONDS, default=d.open_timeout_s,
                     show_default=True, metavar="SECONDS",
                     help="Drop a client that has not completed its handshake; 0 = never."),
        click.option("--close-timeout", type=SECONDS, default=d.close_timeout_s,
                     show_default=True, metavar="SECONDS",
                     help="Longest wait for closing handshakes (and at shutdown)."),
        click.option("--http2", "http2", is_flag=True,
                     help="Also accept HTTP/2 (ALPN h2 with TLS, h2c prior knowledge on "
                          "cleartext) and WebSockets over it (RFC 8441); needs "
                          "wstool[http2]."),
        click.option("--loop", "loop_name", type=click.Choice(["auto", "asyncio", "uvloop"]),
                     default="auto", show_default=True,
                     help="Event loop: uvloop when installed (wstool[fast]) with auto."),
    ])(f)


def server_config(raw: Mapping[str, Any]) -> ServerConfig:
    """Raw server options -> ``ServerConfig``."""
    if raw.get("key") and not raw.get("cert"):
        raise UsageError("--key needs --cert (the certificate it belongs to)")
    if raw.get("self_signed") and raw.get("cert"):
        raise UsageError("give --cert/--key or --self-signed, not both")
    if raw.get("unix_path") and raw.get("host") != "127.0.0.1":
        raise UsageError("give --host or --unix, not both")
    for flag in ("open_timeout", "close_timeout", "ping_interval", "ping_timeout"):
        if raw[flag] < 0:
            raise UsageError(f"invalid --{flag.replace('_', '-')}: must be 0 or more")
    token = raw.get("token")
    if token is not None and not token:
        raise UsageError("invalid --token: empty")
    return ServerConfig(
        host=raw["host"],
        port=raw["port"],
        # Absolute, so the printed ws+unix:// URL works from any directory.
        unix_path=os.path.abspath(raw["unix_path"]) if raw.get("unix_path") else None,
        certfile=raw.get("cert"),
        keyfile=raw.get("key"),
        key_password=raw.get("key_password"),
        self_signed=bool(raw.get("self_signed")),
        subprotocols=tuple(raw.get("subprotocols", ())),
        origins=tuple(raw.get("origins", ())),
        auth=parse_auth(raw["auth"]) if raw.get("auth") else None,
        token=token,
        max_size_bytes=size_or_none(raw["max_size"]),
        compress=raw["compress"],
        ping_interval_s=seconds_or_none(raw["ping_interval"]),
        ping_timeout_s=seconds_or_none(raw["ping_timeout"]),
        max_connections=raw.get("max_connections"),
        open_timeout_s=seconds_or_none(raw["open_timeout"]),
        close_timeout_s=raw["close_timeout"] or 0.001,
        http2=bool(raw.get("http2")),
    )


def static_options(f: F) -> F:
    """``--static DIR`` (issue 16): serve-echo and listen answer plain GET/HEAD from DIR."""
    return click.option(
        "--static", "static_dir", metavar="DIR",
        help="Answer plain HTTP GET/HEAD (not upgrades) with files from DIR "
             "(index.html for directories); /health and the 426 page stay.")(f)


def with_static(cfg: ServerConfig, raw: Mapping[str, Any]) -> ServerConfig:
    """``cfg`` with @static_options' DIR, checked now: a missing DIR is exit 2 at start-up."""
    directory = raw.get("static_dir")
    if directory is None:
        return cfg
    from wstool.server.static import check_static_dir

    try:
        return cfg._replace(static_dir=check_static_dir(directory))
    except ValueError as exc:
        raise UsageError(f"invalid --static: {exc}") from None


# frame-dump (issues 5 and 7): what it shows, and where the bytes come from. The
# dump package receives these records and never sees a click value.


def dump_config(raw: Mapping[str, Any]) -> DumpConfig:
    """What frame-dump shows and how (every mode)."""
    from wstool.dump.frontend import DumpConfig

    return DumpConfig(
        direction=raw.get("from_side"),
        max_buffer_bytes=size_or_none(raw["max_buffer"]),
        payload_limit=raw["payload_limit"] or None,
        hexdump=raw["hexdump"],
        json=raw["json_output"],
        # A relay shows other people's credentials: masked unless --show-secrets
        # (as -v does); a file or capture is shown as it is.
        show_secrets=raw["show_secrets"] or not raw.get("listen"),
        fail_on_problems=not raw.get("no_fail"),
    )


def relay_config(url: str, listen: str, raw: Mapping[str, Any],
                 max_buffer_bytes: int | None) -> RelayConfig:
    """``--listen HOST:PORT URL``: where the relay accepts clients and what it connects to.

    The upstream is a ``ConnectConfig`` for its target, TLS, -H headers and
    --open-timeout; the relay forwards bytes, so nothing else of a client
    connection (subprotocols, compression, keepalive, proxies) applies.
    """
    from wstool.dump.relay import RelayConfig

    host, port = parse_listen_address(listen)
    target, url_auth = split_userinfo(parse_target(url))
    tls = tls_config(raw)
    open_timeout_s = _open_timeout_s(raw["open_timeout"])
    upstream = ConnectConfig(
        target=target,
        headers=tuple(parse_header(h) for h in raw.get("headers", ())),
        auth=url_auth,
        tls=tls,
        proxy="",  # the relay connects directly
        open_timeout_s=open_timeout_s,
        ping_interval_s=None,
        ping_timeout_s=None,
    )
    if target.unix_path is not None:
        raise UsageError("--listen relays to ws:// or wss:// URLs, not ws+unix://")
    return RelayConfig(host, port, upstream, max_buffer_bytes)


def frame_dump_plan(source: str | None, raw: Mapping[str, Any]) -> DumpPlan:
    """frame-dump's SOURCE argument and options -> a validated plan (UsageError on bad input)."""
    from wstool.dump.frontend import DumpPlan, OfflineSource

    cfg = dump_config(raw)
    listen, pcap = raw.get("listen"), raw.get("pcap")
    if listen and pcap:
        raise UsageError("give --listen or --pcap, not both")
    if listen:
        if source is None:
            raise UsageError("--listen needs the URL to relay to (ws:// or wss://)")
        if raw["hex_input"]:
            raise UsageError("--hex reads a file; it does not apply to --listen")
        return DumpPlan(cfg, relay=relay_config(source, listen, raw, cfg.max_buffer_bytes))
    if pcap:
        if source is not None:
            raise UsageError(f"unexpected argument '{source}' with --pcap FILE")
        return DumpPlan(cfg, pcap_path=pcap)
    if source is None:
        raise UsageError("missing FILE (or - for stdin, --listen HOST:PORT URL, --pcap FILE)")
    if raw.get("headers") or raw.get("cacert") or raw.get("insecure"):
        raise UsageError("-H and TLS options apply to --listen only")
    return DumpPlan(cfg, source=OfflineSource(source, raw["hex_input"]))


# connect --expect/--capture/--template (issue 11): the sequence of -x, --expect and
# --capture in command-line order. Everything is compiled here, before connecting.

SEQUENCE_PARAMS = ("execute", "expect", "capture")


def sequence_options(f: F) -> F:
    return _apply([
        click.option("--expect", multiple=True, metavar="PATTERN",
                     help="Succeed only when a received message matches PATTERN (a regex, "
                          "or json:EXPR, a jq expression that must be true); repeatable, "
                          "in order with -x and --capture. All met: close 1000, exit 0; "
                          "else exit 8."),
        click.option("--expect-timeout", type=Seconds(0, min_open=True), default=10.0,
                     show_default=True, metavar="SECONDS",
                     help="Longest wait for each --expect/--capture, from the previous match."),
        click.option("--capture", multiple=True, metavar="NAME=REGEX",
                     help="Keep the first group of the first message matching REGEX (or "
                          "NAME=json:EXPR: its value) for {{NAME}} in later messages."),
        click.option("--template", is_flag=True,
                     help="Expand {{uuid}}, {{seq}}, {{now_ms}}, {{now_iso}}, {{env:NAME}}, "
                          "{{file:PATH}}, {{random:N}} and captures in -x and input lines."),
    ])(f)


def connect_sequence(raw: Mapping[str, Any], order: list[str] | None,
                     environ: Mapping[str, str]) -> SequencePlan | None:
    """-x/--expect/--capture/--template -> the steps (None: none of them is used).

    ORDER is the parameter names in command-line order (the connect command
    records it); without it, -x come first, then the captures, then the expects."""
    expects, captures = tuple(raw.get("expect") or ()), tuple(raw.get("capture") or ())
    template = bool(raw.get("template"))
    if not expects and not captures and not template:
        return None
    from wstool.client.expect import ExpectStep, Matcher, SendStep, parse_capture
    from wstool.templates import Template, compile_template

    execute = tuple(raw.get("execute") or ())
    if order is None:
        order = (["execute"] * len(execute) + ["capture"] * len(captures)
                 + ["expect"] * len(expects))
    values = {"execute": iter(execute), "expect": iter(expects), "capture": iter(captures)}
    timeout_s = float(raw.get("expect_timeout", 10.0))
    steps: list[Step] = []
    known: list[str] = []
    for name in order:
        value = next(values[name])
        if name == "execute":
            if template:
                steps.append(SendStep(compile_template(value, captures=known, environ=environ,
                                                       where=f"-x '{value}'")))
            else:
                steps.append(SendStep(Template(value, (value,))))
        elif name == "expect":
            steps.append(ExpectStep(Matcher(value, "--expect"), timeout_s))
        else:
            capture, pattern = parse_capture(value)
            if capture in known:
                raise UsageError(f"--capture {capture}: given twice")
            steps.append(ExpectStep(Matcher(pattern, f"--capture {capture}="), timeout_s,
                                    capture))
            known.append(capture)
    return SequencePlan(tuple(steps), template, tuple(known), environ)


class SequencePlan:
    """What connect_sequence() built: the steps, and how input lines are templated."""

    def __init__(self, steps: tuple[Step, ...], template: bool, captures: tuple[str, ...],
                 environ: Mapping[str, str]) -> None:
        self.steps = steps
        self.template = template
        self.captures = captures
        self.environ = environ

    def run_config(self, cfg: ClientRunConfig) -> ClientRunConfig:
        """The sequence sends the -x messages itself; with an --expect, it ends the run
        (the end-of-input rules would cut it short: -w does not apply)."""
        from wstool.client.expect import ExpectStep

        ends_run = any(isinstance(s, ExpectStep) and s.capture is None for s in self.steps)
        cfg = cfg._replace(execute=())
        return cfg._replace(wait_s=None) if ends_run else cfg

    def observer_and_input(self) -> tuple[SequenceObserver, Callable[[InputSource], InputSource]
                                          | None]:
        from wstool.client.expect import SequenceObserver, TemplatedInput
        from wstool.templates import Renderer, compile_template

        renderer = Renderer()
        observer = SequenceObserver(self.steps, renderer)
        if not self.template:
            return observer, None

        def compile_line(line: str) -> Template:
            return compile_template(line, captures=self.captures, environ=self.environ,
                                    where="input line")

        def wrap(source: InputSource) -> InputSource:
            return TemplatedInput(source, compile_line, renderer, observer)

        return observer, wrap

    def typed_lines(self, observer: SequenceObserver) -> TypedLines | None:
        """With --template, how the REPL expands a typed line (the run's renderer)."""
        if not self.template:
            return None
        from wstool.client.expect import TypedLines
        from wstool.templates import compile_template

        def compile_line(line: str) -> Template:
            # No "where": the REPL shows the message as it is, "unknown placeholder ...".
            return compile_template(line, captures=self.captures, environ=self.environ,
                                    where="")

        return TypedLines(compile_line, observer.renderer)


# Issue 11: recording, replay, and a browser's request (--curl, --har). The client
# modules behind them are imported only when these options are used: none is on
# the connect path otherwise.

if TYPE_CHECKING:
    from wstool.client.browser import BrowserRequest
    from wstool.client.replay import ReplayConfig


def record_browser_options(f: F) -> F:
    """connect's ``--record`` and the browser's request (``--curl``, ``--har``)."""
    return _apply([
        click.option("--record", type=_FILE, metavar="FILE",
                     help="Also write every event to FILE as --json does (wstool replay "
                          "reads it); output is unchanged."),
        click.option("--curl", metavar="'CURL …'",
                     help="Take the URL and headers from a browser's \"Copy as cURL\" "
                          "(- reads it from stdin)."),
        click.option("--har", type=_FILE, metavar="FILE",
                     help="Take the URL and headers from a WebSocket entry of a HAR file."),
        click.option("--socket", "socket_number", type=click.IntRange(1), metavar="N",
                     help="With --har: the Nth WebSocket of the file (default: the first)."),
    ])(f)


def browser_request(raw: Mapping[str, Any], read_stdin: Callable[[], str]
                    ) -> tuple[BrowserRequest, list[str]] | None:
    """``--curl``/``--har`` -> the request (None without them) and notices for stderr."""
    if raw.get("curl") is None and not raw.get("har"):
        if raw.get("socket_number") is not None:
            raise UsageError("--socket picks a WebSocket of --har FILE; give --har")
        return None
    from wstool.client import browser

    if raw.get("curl") is not None and raw.get("har"):
        raise UsageError("give --curl or --har, not both")
    if raw.get("socket_number") is not None and not raw.get("har"):
        raise UsageError("--socket picks a WebSocket of --har FILE; give --har")
    if raw.get("curl") is not None:
        text = read_stdin() if raw["curl"] == "-" else raw["curl"]
        return browser.parse_curl(text), []
    return browser.har_request(raw["har"], socket_number=raw.get("socket_number"))


def with_browser_request(raw: Mapping[str, Any], request: BrowserRequest) -> dict[str, Any]:
    """RAW with the browser's headers and subprotocols under the user's own options:
    a header the user gives (-H, -o, --user-agent) replaces the browser's, and -s
    replaces Sec-WebSocket-Protocol."""
    given = {parse_header(h)[0].lower() for h in raw.get("headers", ())}
    if raw.get("origin"):
        given.add("origin")
    if raw.get("user_agent"):
        given.add("user-agent")
    headers = [f"{name}: {value}" for name, value in request.headers
               if name.lower() not in given]
    return {
        **raw,
        "headers": (*headers, *raw.get("headers", ())),
        "subprotocols": tuple(raw.get("subprotocols", ())) or request.subprotocols,
    }


def browser_request_notes(request: BrowserRequest, source: str) -> list[str]:
    """The stderr lines: which headers were dropped and what became -s."""
    lines = []
    if request.dropped:
        lines.append(f"{source}: dropped {', '.join(request.dropped)} (the WebSocket "
                     "handshake sends its own)")
    if request.subprotocols:
        lines.append(f"{source}: Sec-WebSocket-Protocol -> -s "
                     f"{' -s '.join(request.subprotocols)}")
    return lines + list(request.notes)


def replay_options(f: F) -> F:
    """``wstool replay``'s own options."""
    return _apply([
        click.option("--socket", "socket_number", type=click.IntRange(1), metavar="N",
                     help="HAR file: replay its Nth WebSocket (default: the first whose "
                          "URL matches URL, else the first)."),
        click.option("--speed", default="1", show_default=True, metavar="FACTOR|max",
                     help="Replay faster (2: twice as fast) or with no waiting (max)."),
        click.option("--ignore", multiple=True, metavar="json:PATH",
                     help="Leave out this field when comparing JSON messages (repeatable; "
                          "jq paths: .ts, .data.id, .items[].id)."),
        click.option("--unordered", is_flag=True,
                     help="Compare received messages in any order."),
        click.option("-w", "--wait", type=Seconds(min=0, min_open=True), default=5.0,
                     show_default=True, metavar="SECONDS",
                     help="After the last message sent, give up on the missing replies "
                          "after SECONDS without a message."),
    ])(f)


def replay_config(raw: Mapping[str, Any]) -> ReplayConfig:
    from wstool.client.replay import ReplayConfig, parse_ignore

    speed_text = str(raw["speed"]).strip().lower()
    speed: float | None
    if speed_text == "max":
        speed = None
    else:
        try:
            speed = float(speed_text)
        except ValueError:
            speed = -1.0
        if not (speed > 0 and math.isfinite(speed)):
            raise UsageError(f"invalid --speed '{raw['speed']}': a factor above 0 "
                             "(2: twice as fast) or max")
    ignore_text = tuple(raw.get("ignore", ()))
    return ReplayConfig(
        speed=speed,
        ignore=tuple(parse_ignore(text) for text in ignore_text),
        ignore_text=ignore_text,
        unordered=bool(raw.get("unordered")),
        wait_s=raw["wait"],
    )


# The TCP bridges (issue 16): listen --to-tcp, connect --from-tcp.

_TCP_TEXT_HELP = ("Line-based service: each line from TCP is one text message, each text "
                  "message is written followed by a newline.")


def to_tcp_options(f: F) -> F:
    """``listen --to-tcp HOST:PORT [--text]``: each client bridged to a TCP connection."""
    return _apply([
        click.option("--to-tcp", "to_tcp", metavar="HOST:PORT",
                     help="Bridge each client to a new TCP connection to HOST:PORT "
                          "(binary messages; websockify's model)."),
        click.option("--text", "tcp_text", is_flag=True, help=f"With --to-tcp: {_TCP_TEXT_HELP}"),
    ])(f)


def from_tcp_options(f: F) -> F:
    """``connect --from-tcp [HOST:]PORT URL [--text]``: local TCP connections to URL."""
    return _apply([
        click.option("--from-tcp", "from_tcp", metavar="[HOST:]PORT",
                     help="Accept TCP connections on PORT (host 127.0.0.1 unless given) "
                          "and bridge each to its own WebSocket connection to URL."),
        click.option("--text", "tcp_text", is_flag=True,
                     help=f"With --from-tcp: {_TCP_TEXT_HELP}"),
    ])(f)


def tcp_bridge_config(raw: Mapping[str, Any], flag: str) -> TcpBridgeConfig | None:
    """The TCP end of ``--to-tcp`` or ``--from-tcp`` (FLAG), or None without it."""
    value = raw.get(flag.removeprefix("--").replace("-", "_"))
    if value is None:
        if raw.get("tcp_text"):
            raise UsageError(f"--text applies to {flag} only")
        return None
    if flag == "--from-tcp":
        host, port = parse_tcp_address(value, flag, default_host="127.0.0.1")
    else:
        host, port = parse_tcp_address(value, flag)
    return TcpBridgeConfig(host, port, text=bool(raw.get("tcp_text")))
# Issue 16: listen --exec / connect --exec, a process per connection
# (wstool/bridge/). One factory for both commands; the builder checks the command
# exists now, not per client.

if TYPE_CHECKING:
    from wstool.config import ExecConfig


_DEFAULT_KILL_AFTER_S = 1.0


def exec_options(f: F) -> F:
    """``--exec CMD`` and what goes with it (listen and connect)."""
    return _apply([
        click.option("--exec", "exec_command", metavar="CMD",
                     help="Bridge each connection to its own process CMD (split like "
                          "shell words): messages are lines on its stdin, its stdout "
                          "lines are messages (-b: bytes as they come)."),
        click.option("--sh", "exec_shell", is_flag=True,
                     help="With --exec: run CMD through /bin/sh -c (pipes, $VARS)."),
        # No click default: given without --exec, it is an error (as --sh is).
        click.option("--kill-after", type=Seconds(0), default=None,
                     metavar="SECONDS",
                     help="With --exec, once the connection is gone: stdin is closed, "
                          "SIGTERM after SECONDS, SIGKILL after as long again "
                          f"(default: {_DEFAULT_KILL_AFTER_S:g})."),
        click.option("--stderr-to-client", is_flag=True,
                     help="With --exec: send the process's stderr lines over the "
                          "connection as text messages (default: wstool's stderr, with "
                          "the client id)."),
    ])(f)


def exec_config(raw: Mapping[str, Any]) -> ExecConfig | None:
    """@exec_options (and -b, -0, --chunk-size) -> ``ExecConfig``; None without --exec."""
    command = raw.get("exec_command")
    if command is None:
        for flag, name in (("exec_shell", "--sh"), ("stderr_to_client", "--stderr-to-client"),
                           ("kill_after", "--kill-after")):
            if raw.get(flag) is not None and raw.get(flag) is not False:  # 0 is given
                raise UsageError(f"{name} goes with --exec CMD")
        return None
    from wstool.bridge.process import command_argv
    from wstool.config import ExecConfig

    if raw.get("use_base64"):
        raise UsageError("--base64 does not apply to --exec (the process gets the bytes)")
    if raw.get("binary") and raw.get("null_separated"):
        raise UsageError("-0/--null separates text messages; -b/--binary has no "
                         "separator: give one of them")
    return ExecConfig(
        argv=command_argv(command, shell=bool(raw.get("exec_shell"))),
        binary=bool(raw.get("binary")),
        separator=b"\0" if raw.get("null_separated") else b"\n",
        chunk_size=raw.get("chunk_size", DEFAULT_CHUNK_SIZE_BYTES),
        kill_after_s=float(_DEFAULT_KILL_AFTER_S if raw.get("kill_after") is None
                           else raw["kill_after"]),
        stderr_to_client=bool(raw.get("stderr_to_client")),
    )
