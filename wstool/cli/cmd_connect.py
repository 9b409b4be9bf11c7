"""``wstool connect``: a client, a REPL on a terminal, lines in a pipe."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from wstool.cli.app import _ask_key_password, _Command, _environment, fail, run_async
from wstool.cli.options import (
    SECONDS,
    SEQUENCE_PARAMS,
    browser_request,
    browser_request_notes,
    connect_config,
    connect_options,
    connect_sequence,
    exec_config,
    exec_options,
    from_tcp_options,
    output_config,
    output_options,
    record_browser_options,
    repl_config,
    repl_options,
    sequence_options,
    stream_config,
    stream_options,
    tcp_bridge_config,
    tls_options,
    with_browser_request,
)
from wstool.cli.records import client_run_config
from wstool.config import ConnectConfig
from wstool.errors import (
    CONNECT_BRIDGES_EXIT_STATUS_HELP,
    EXIT_STATUS_HELP,
    UsageError,
    WstoolError,
)

if TYPE_CHECKING:
    from wstool.client.run import RunObserver


_SEQUENCE_ORDER = "wstool.sequence_order"


class _ConnectCommand(_Command):
    """``connect`` records the order of -x, --expect and --capture (issue 11): click
    keeps the values of each option in order, not the order across options. Its URL
    may be ``@PROFILE`` (issue 13)."""

    profile_param = "url"

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if any(arg.startswith("--http2=") for arg in args):
            args = _http2_value(args)
        if any(arg.startswith(("--expect", "--capture")) for arg in args):
            # click's parser lists each option every time it is given (its
            # "order"); a second parse of the same arguments, with no callbacks.
            _opts, _rest, order = self.make_parser(ctx).parse_args(args=list(args))
            ctx.meta[_SEQUENCE_ORDER] = [p.name for p in order if p.name in SEQUENCE_PARAMS]
        return super().parse_args(ctx, args)


def _http2_value(args: list[str]) -> list[str]:
    """``--http2=only`` (issue 12): click has no option whose value is optional and
    given only after ``=`` (``--http2 URL`` must not take URL as the value), so the
    strict form becomes the hidden flag ``--http2-only`` before parsing."""
    out: list[str] = []
    for i, arg in enumerate(args):
        if arg == "--":
            return out + args[i:]
        if arg.startswith("--http2="):
            if arg != "--http2=only":
                fail(UsageError(f"invalid {arg}: give --http2 (falls back to HTTP/1.1) "
                                "or --http2=only"))
            arg = "--http2-only"
        out.append(arg)
    return out


# What `connect --help` ends with (issue 13): one example per way in.
CONNECT_EXAMPLES = """\
\b
Examples:
  wstool connect --demo                          # a built-in echo server, nothing else needed
  wstool connect localhost:8765                  # REPL; `wstool serve-echo` in another terminal
  echo '{"op":"ping"}' | wstool connect ws://localhost:8765/      # one message per line
  wstool connect -b ws://localhost:8765/ < in.bin > out.bin       # binary, byte for byte
  wstool connect -n 1 -x '{"subscribe":"ticks"}' localhost:8765   # send, first reply, exit"""


@click.command(cls=_ConnectCommand, epilog=f"{EXIT_STATUS_HELP}\n\n"
               f"{CONNECT_BRIDGES_EXIT_STATUS_HELP}\n\n{CONNECT_EXAMPLES}")
@click.argument("url", required=False)
@click.option("--demo", is_flag=True,
              help="Start a built-in echo server on a free loopback port and connect to it.")
@stream_options
@click.option("-x", "--execute", multiple=True, metavar="MSG",
              help="Send MSG on connect, before stdin (repeatable; again on reconnect).")
@click.option("-n", "--count", type=click.IntRange(1), metavar="N",
              help="Exit after N received messages.")
@click.option("-w", "--wait", type=SECONDS, default=1.0, show_default=True, metavar="SECONDS",
              help="Idle timer after end of input: close once no message came for "
                   "SECONDS (unlike wscat's -w, not a total wait: see --max-time); -1 "
                   "waits for the server to close.")
@click.option("--max-time", type=SECONDS, metavar="SECONDS",
              help="Total deadline of the run, connect included (curl's --max-time): "
                   "then close with 1000 and exit 7.")
@click.option("--echo", is_flag=True, help="Mirror mode: send every received message back.")
@click.option("--reconnect", is_flag=True,
              help="Retry with backoff after a failed connect or an abnormal close.")
@click.option("--reconnect-limit", type=click.IntRange(min=0), default=0, metavar="N",
              help="Give up after N reconnect attempts in a row (implies --reconnect; "
                   "0: never; a connection that opens starts the count over).")
@click.option("--trace", is_flag=True, help="Print every frame sent and received on stderr.")
@click.option("-P", "--show-ping-pong", is_flag=True,
              help="Show pings and pongs both ways in wire order, with the RTT of ours "
                   "(wscat's -P): in the REPL, and the age of the server's last ping in "
                   "its status bar; in a pipe on stderr (--json: as events).")
@click.option("--http2", "http2", is_flag=True,
              help="WebSocket over HTTP/2 (RFC 8441 extended CONNECT; TLS with ALPN h2, "
                   "h2c on ws://); falls back to the HTTP/1.1 upgrade when the server "
                   "cannot, saying so. --http2=only: fail instead (exit 4). Needs "
                   "'wstool[http2]'.")
@click.option("--http2-only", "http2_only", is_flag=True, hidden=True)
@click.option("--trace-h2", is_flag=True,
              help="Print every HTTP/2 frame sent and received on stderr (with --http2).")
@sequence_options
@repl_options
@connect_options
@tls_options
@output_options
@record_browser_options
@from_tcp_options
@exec_options
def connect(url: str | None, demo: bool, **raw: Any) -> None:
    """Connect to URL: a REPL on a terminal, one message per line in a pipe.

    URL is ws://, wss://, ws+unix:///path.sock, host:port (ws://), or a bare
    port (ws://localhost:PORT/).
    """
    debug = raw["debug"]
    browser_notes: list[str] = []
    try:
        # --curl/--har (issue 11): the URL and headers of a browser's request.
        request = browser_request(raw, lambda: _read_stdin_text())
        if request is not None:
            if demo:
                raise UsageError("give --demo or --curl/--har, not both")
            raw = with_browser_request(raw, request[0])
            url = url or request[0].url  # a URL given replaces the browser's
            browser_notes = request[1] + browser_request_notes(
                request[0], "--curl" if raw.get("curl") is not None else "--har")
        if demo and url:
            raise UsageError("give a URL or --demo, not both")
        if not demo and not url:
            raise UsageError("missing URL (or use --demo for a built-in echo server)")
        run_cfg = client_run_config(raw)  # -x, -n, -w, --max-time, --echo ...
        stream_cfg = stream_config(raw)
        exec_cfg = exec_config(raw)  # --exec (issue 16): messages to and from a process
        if exec_cfg is not None and raw["echo"]:
            raise UsageError("--exec and --echo both answer the messages: give one")
        out_cfg = output_config(raw, trace=raw["trace"])
        # Validate the URL and options before anything starts.
        conn_cfg = connect_config(url or "ws://127.0.0.1:1/", raw)
        from_tcp = tcp_bridge_config(raw, "--from-tcp")
        if from_tcp is not None:
            _check_from_tcp(raw)
            if exec_cfg is not None:
                raise UsageError("--exec and --from-tcp are two bridges: give one of them")
    except WstoolError as exc:
        fail(exc)
    env = _environment(color=out_cfg.color)
    try:
        order = click.get_current_context().meta.get(_SEQUENCE_ORDER)
        sequence = connect_sequence(raw, order, env.environ)
    except WstoolError as exc:
        fail(exc)
    if sequence is not None:
        run_cfg = sequence.run_config(run_cfg)
    if not out_cfg.quiet:
        for line in browser_notes:
            env.write_stderr_line(f"wstool: {line}")
    if conn_cfg.tls.certfile and env.stdin_isatty:
        conn_cfg = _ask_key_password(conn_cfg)
    observers: list[RunObserver] = []
    recorder = None
    if raw["record"]:
        from wstool.client.record import Recorder  # json: only with --record

        try:
            recorder = Recorder(raw["record"])
        except WstoolError as exc:
            fail(exc)
        observers.append(recorder)

    async def front_end(cfg: ConnectConfig) -> int:
        # Built inside the loop: the sequence observer's asyncio objects belong to it.
        run_observers: list[RunObserver] = list(observers)  # --record's, if any
        wrap_input = typed_lines = None
        if sequence is not None:
            observer, wrap_input = sequence.observer_and_input()
            typed_lines = sequence.typed_lines(observer)
            run_observers.append(observer)
        if from_tcp is not None:  # issue 16: local TCP connections, not stdin/stdout
            from wstool.bridge.tcp import run_from_tcp

            return await run_from_tcp(env, cfg, run_cfg, from_tcp, out_cfg)
        if exec_cfg is not None:
            from wstool.bridge.exec_connect import run_connect_exec

            return await run_connect_exec(env, cfg, run_cfg, exec_cfg, stream_cfg, out_cfg,
                                          observers=run_observers, wrap_input=wrap_input)
        if env.interactive and not out_cfg.json:  # a terminal: the REPL (issue 3)
            from wstool.client.repl import run_connect_repl

            repl_cfg = repl_config(raw, env.environ, out_cfg)
            return await run_connect_repl(env, cfg, run_cfg, out_cfg, repl_cfg,
                                          observers=run_observers, typed_lines=typed_lines)
        from wstool.client.pipe import run_connect_pipe

        return await run_connect_pipe(env, cfg, run_cfg, stream_cfg, out_cfg,
                                      observers=run_observers, wrap_input=wrap_input)

    async def main() -> int:
        try:
            if demo:
                from wstool.server.core import demo_echo_server

                async with demo_echo_server() as demo_url:
                    if not out_cfg.quiet:
                        env.write_stderr_line(f"wstool: demo echo server at {demo_url}")
                    return await front_end(connect_config(demo_url, raw))
            return await front_end(conn_cfg)
        finally:
            if recorder is not None:
                recorder.close()

    run_async(main, debug=debug, env=env)


def _check_from_tcp(raw: dict[str, Any]) -> None:
    """--from-tcp carries byte streams: what would change them is refused."""
    for name, flag in (("echo", "--echo"), ("reconnect", "--reconnect"),
                       ("expect", "--expect"), ("capture", "--capture"),
                       ("template", "--template"), ("record", "--record"),
                       ("json_output", "--json"), ("null_separated", "-0/--null"),
                       ("use_base64", "--base64")):
        if raw.get(name):
            raise UsageError(f"{flag} does not apply to --from-tcp (each connection is a "
                             "byte stream)")
    if raw.get("reconnect_limit"):
        raise UsageError("--reconnect-limit does not apply to --from-tcp")


def _read_stdin_text() -> str:
    """``--curl -``: the whole of stdin (a pasted command ends with Ctrl-D)."""
    data = _environment(color=None).stdin.read()
    return data.decode("utf-8", "replace") if isinstance(data, bytes) else str(data)
