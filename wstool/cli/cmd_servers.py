"""``wstool listen`` and ``wstool serve-echo``: the servers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from wstool.cli.app import _Command, _environment, fail, run_async
from wstool.cli.options import (
    Seconds,
    exec_config,
    exec_options,
    output_config,
    repl_config,
    repl_options,
    serve_echo_output_options,
    server_config,
    server_options,
    server_output_options,
    static_options,
    stream_config,
    stream_options,
    tcp_bridge_config,
    to_tcp_options,
    with_static,
)
from wstool.errors import (
    LISTEN_EXIT_STATUS_HELP,
    SERVE_ECHO_EXIT_STATUS_HELP,
    UsageError,
    WstoolError,
)


class _ListenCommand(_Command):
    def full_epilog(self) -> str:
        # The listen REPL's commands, from its own table (imported only for --help
        # and man pages: it brings in the server).
        from wstool.server.listen_repl import LISTEN_COMMANDS

        lines = "\n".join(f"  {line}" for line in LISTEN_COMMANDS.help_lines())
        return (f"{self.epilog}\n\n\b\nOn a terminal, a REPL (listen>): a typed line goes "
                f"to every client; its commands:\n{lines}")


@click.command(name="listen", cls=_ListenCommand, epilog=LISTEN_EXIT_STATUS_HELP)
@click.option("--once", is_flag=True,
              help="Serve one client; exit when it leaves (status from its close).")
@stream_options
@repl_options
@server_options
@static_options
@to_tcp_options
@server_output_options
@exec_options
def listen_cmd(**raw: Any) -> None:
    """Accept WebSocket clients and bridge them to stdin/stdout (like nc -l).

    Each stdin line goes to every connected client; each client message is a
    line on stdout (--json: JSON lines with the client's id). Input written
    before the first client connects is kept for it.

    With --exec CMD (websocketd's model), each client gets its own process
    instead, with CGI variables (QUERY_STRING, REMOTE_ADDR, HTTP_*...) in its
    environment; the process exiting closes the connection (1000, or 1011 with
    its status).
    """
    from wstool.config import ListenConfig

    try:
        server_cfg = with_static(server_config(raw), raw)
        exec_cfg = exec_config(raw)  # --exec (issue 16): a process per client
        listen_cfg = ListenConfig(once=raw["once"], stream=stream_config(raw))
        out_cfg = output_config(raw)
        to_tcp = tcp_bridge_config(raw, "--to-tcp")
        if to_tcp is not None and raw["once"]:
            raise UsageError("--once does not apply to --to-tcp (every client is bridged)")
        if to_tcp is not None:
            for name, flag in (("null_separated", "-0/--null"), ("use_base64", "--base64")):
                if raw.get(name):
                    raise UsageError(f"{flag} does not apply to --to-tcp (each client is "
                                     "a byte stream; --text for lines)")
        if to_tcp is not None and exec_cfg is not None:
            raise UsageError("--exec and --to-tcp are two bridges: give one of them")
    except WstoolError as exc:
        fail(exc)
    _use_loop(raw["loop_name"])
    env = _environment(color=out_cfg.color)

    async def main() -> int:
        if to_tcp is not None:  # issue 16: stdin and stdout are not used
            from wstool.bridge.tcp import run_to_tcp

            return await run_to_tcp(env, server_cfg, to_tcp, out_cfg)
        if exec_cfg is not None:
            from wstool.bridge.exec_listen import ExecListenFrontEnd

            return await ExecListenFrontEnd(env, server_cfg, listen_cfg, exec_cfg,
                                            out_cfg).run()
        if env.interactive and not out_cfg.json:
            from wstool.server.listen_repl import run_listen_repl

            repl_cfg = repl_config(raw, env.environ, out_cfg, prompt="listen> ")
            return await run_listen_repl(env, server_cfg, listen_cfg, out_cfg, repl_cfg,
                                         compile_filter=_listen_filter)
        from wstool.server.listen import ListenFrontEnd

        return await ListenFrontEnd(env, server_cfg, listen_cfg, out_cfg).run()

    run_async(main, debug=out_cfg.debug, env=env)


def _use_loop(name: str) -> None:
    """--loop: uvloop (the optional extra wstool[fast]) when asked or, with auto, installed."""
    if name == "asyncio":
        return
    import asyncio

    try:
        import uvloop
    except ImportError:
        if name == "uvloop":
            fail(UsageError("--loop uvloop: uvloop is not installed (pip install 'wstool[fast]')"))
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


@click.command(cls=_Command, name="serve-echo", epilog=SERVE_ECHO_EXIT_STATUS_HELP)
@click.option("--broadcast", is_flag=True,
              help="Send each message to every connected client, not only its sender.")
@click.option("--delay", type=Seconds(0), default=0.0, metavar="SECONDS",
              help="Wait before each echo.")
@click.option("--close-after", type=click.IntRange(1), metavar="N",
              help="Close a connection after echoing N messages.")
@click.option("--close-code", type=click.IntRange(1000, 4999), default=1000, show_default=True,
              metavar="CODE",
              help="Close code for --close-after.")
@click.option("--close-reason", default="", metavar="TEXT", help="Close reason for --close-after.")
@click.option("--ping-every", type=Seconds(0, min_open=True), metavar="SECONDS",
              help="Send a ping to every client every SECONDS.")
@click.option("--greeting", metavar="TEXT", help="Send TEXT to each client when it connects.")
@click.option("--drop-after", type=click.IntRange(1), metavar="N",
              help="Drop the TCP connection abruptly (no close frame) after N messages.")
@server_options
@static_options
@serve_echo_output_options
def serve_echo_cmd(**raw: Any) -> None:
    """A fast, standards-strict echo server for testing clients.

    Echoes every message to its sender with its type (text or binary), in order,
    including those that arrive together with the client's Close. -v logs
    connections, -vv every frame. SIGINT/SIGTERM close every connection with
    1001 and print a summary.
    """
    from wstool.config import EchoConfig

    try:
        server_cfg = with_static(server_config(raw), raw)
        from wstool.term.commands import MAX_CLOSE_REASON_BYTES, close_code_error

        if len(raw["close_reason"].encode()) > MAX_CLOSE_REASON_BYTES:
            raise UsageError(f"invalid --close-reason: at most {MAX_CLOSE_REASON_BYTES} "
                             "bytes (RFC 6455 §5.5)")
        if (problem := close_code_error(raw["close_code"])) is not None:
            raise UsageError(f"invalid --close-code {raw['close_code']}: {problem}")
        echo_cfg = EchoConfig(
            broadcast=raw["broadcast"],
            delay_s=raw["delay"],
            close_after=raw["close_after"],
            close_code=raw["close_code"],
            close_reason=raw["close_reason"],
            ping_every_s=raw["ping_every"],
            greeting=raw["greeting"],
            drop_after=raw["drop_after"],
        )
        out_cfg = output_config(raw)
    except WstoolError as exc:
        fail(exc)
    _use_loop(raw["loop_name"])
    env = _environment(color=out_cfg.color)

    async def main() -> int:
        from wstool.server.serve_echo import serve_echo

        return await serve_echo(env, server_cfg, echo_cfg, out_cfg)

    run_async(main, debug=out_cfg.debug, env=env)


def _listen_filter(source: str) -> Callable[[str | bytes], bool]:
    """listen's ``/filter``: the matcher ``connect --expect`` uses (regex or json:EXPR),
    imported on the first /filter only (it loads the client's modules)."""
    from wstool.client.repl import filter_matcher

    return filter_matcher(source)
