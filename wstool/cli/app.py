"""The Click edge: parse options, build configs, run a front-end, map errors to exits.

The only module with ``click``, ``asyncio.run`` and ``sys.exit``. Heavy modules
(websockets, rich, prompt_toolkit) are imported inside the commands, so that
``wstool --version`` and ``--help`` stay fast.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NoReturn

import click

from wstool import __version__
from wstool.cli.options import (
    RUN_JSON_EVENTS,
    SECONDS,
    SEQUENCE_PARAMS,
    Seconds,
    browser_request,
    browser_request_notes,
    connect_config,
    connect_options,
    connect_sequence,
    dump_output_options,
    frame_dump_plan,
    json_option_help,
    max_buffer_option,
    output_config,
    output_options,
    record_browser_options,
    repl_config,
    repl_options,
    replay_config,
    replay_options,
    replay_output_options,
    sequence_options,
    serve_echo_output_options,
    server_config,
    server_options,
    server_output_options,
    stream_config,
    stream_options,
    tls_options,
    upstream_tls_options,
    with_browser_request,
)
from wstool.config import ClientRunConfig, ConnectConfig, config_path
from wstool.errors import (
    EXIT_STATUS_HELP,
    FRAME_DUMP_EXIT_STATUS_HELP,
    LISTEN_EXIT_STATUS_HELP,
    REPLAY_EXIT_STATUS_HELP,
    SERVE_ECHO_EXIT_STATUS_HELP,
    ExitStatus,
    UsageError,
    WstoolError,
)

if TYPE_CHECKING:
    from wstool.client.run import RunObserver
    from wstool.term.env import Environment

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def _silence_stdout() -> None:
    # After a closed stdout (`| head -1`), Python would complain when it
    # flushes sys.stdout at exit; point fd 1 at /dev/null instead.
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def _print_traceback() -> None:
    import traceback  # ~10 ms of imports (linecache, tokenize): only for --debug

    traceback.print_exc()


async def _as_coroutine(factory: Callable[[], Awaitable[int]]) -> int:
    return await factory()


# Set by main(), the process entry point: once a command has run and every
# stream is flushed, leave with os._exit() rather than sys.exit(). Interpreter
# teardown (module GC, the idle resolver thread, atexit joins) took ~20 ms of a
# ~160 ms one-shot `wstool connect` (bench/README.md) and has nothing left to
# do by then. Callers of `cli` itself (click's CliRunner) keep sys.exit();
# main(argv, env) runs in-process and returns the status instead.
_fast_exit = False


class _InProcess:
    """ctx.obj of a main(argv, env) run: the Environment the commands use.

    Carried by click's context, not a module global, so that nothing of one
    in-process run is left for the next."""

    def __init__(self, env: Environment) -> None:
        self.env = env


def _in_process() -> _InProcess | None:
    ctx = click.get_current_context(silent=True)
    return None if ctx is None else ctx.find_object(_InProcess)


def _environment(color: bool | None) -> Environment:
    """The command's streams: those main(argv, env) was given, else the process's."""
    from wstool.term.env import Environment

    run = _in_process()
    if run is None:
        return Environment.from_process(color=color)
    given = run.env
    return Environment(
        given.stdin, given.stdout, given.stderr,
        stdin_isatty=given.stdin_isatty, stdout_isatty=given.stdout_isatty,
        stderr_isatty=given.stderr_isatty, environ=given.environ,
        color=given.color if color is None else color,
    )


def _exit(status: int, env: Environment | None) -> NoReturn:
    if _in_process() is not None:
        # In-process: flush what the command wrote, then end the command the way
        # click ends one (main() turns click.exceptions.Exit into its return value).
        # Never _silence_stdout() here: fd 1 belongs to the caller.
        for stream in (env.stdout if env is not None else None, sys.stdout, sys.stderr):
            try:
                if stream is not None:
                    stream.flush()
            except (ValueError, OSError):
                pass
        raise click.exceptions.Exit(status)
    streams: list[Any] = [sys.stdout, sys.stderr]
    if env is not None:
        streams.insert(0, env.stdout)
    for stream in streams:
        try:
            stream.flush()
        except (BrokenPipeError, ValueError, OSError):
            if stream is not sys.stderr:
                _silence_stdout()
    if _fast_exit:
        os._exit(status)
    sys.exit(status)


def run_async(
    factory: Callable[[], Awaitable[int]], *, debug: bool, env: Environment | None = None
) -> NoReturn:
    """Run a front-end coroutine; the one place errors become exit statuses.

    ENV's stdout (our buffered writer over fd 1) is flushed before exiting."""
    # Imported here, not at the top: asyncio costs ~30 ms that --version, --help and
    # completion never need (bench/README.md, start-up).
    import asyncio

    try:
        status: int = asyncio.run(_as_coroutine(factory))
    except WstoolError as exc:
        if debug:
            _print_traceback()
        click.echo(f"wstool: error: {exc}", err=True)
        status = exc.exit_status
    except KeyboardInterrupt:
        status = ExitStatus.INTERRUPTED
    except BrokenPipeError:
        status = ExitStatus.OK
    except Exception as exc:  # a bug: say so in one line, traceback with --debug
        if debug:
            _print_traceback()
        click.echo(
            f"wstool: error: internal error: {type(exc).__name__}: {exc} "
            "(run with --debug for a traceback)",
            err=True,
        )
        status = ExitStatus.ERROR
    _exit(int(status), env)


def _help_hint(ctx: click.Context | None) -> str:
    """``Try 'wstool connect -h' for help.``: where a usage error is explained."""
    command_path = ctx.command_path if ctx is not None else "wstool"
    return f"Try '{command_path} -h' for help."


def _click_message(exc: click.ClickException) -> str:
    # click says "No such option: --x." / "Missing argument 'URL'."; wstool's messages
    # are lower-case fragments without a final period (STYLE.md, Errors).
    # Some are several lines (a Choice lists its values one per line): one line here.
    message = " ".join(exc.format_message().split()).rstrip(".")
    if message[:1].isupper() and message[1:2].islower():
        message = message[0].lower() + message[1:]
    return message


def show_click_error(exc: click.ClickException) -> None:
    """Show click's own errors (usage errors: status 2) in wstool's style, not click's
    "Usage: ... Error: ..." block (issue 13): one line, then where the help is."""
    no_args_is_help = getattr(click.exceptions, "NoArgsIsHelpError", ())  # click >= 8.2
    if isinstance(exc, no_args_is_help):  # bare `wstool`: the help, as click shows it
        click.echo(exc.format_message(), err=True)
        return
    click.echo(f"wstool: error: {_click_message(exc)}", err=True)
    if isinstance(exc, click.UsageError):
        click.echo(_help_hint(exc.ctx), err=True)


def fail(exc: WstoolError, *, help_hint: bool = True) -> NoReturn:
    """Exit with EXC's one line; a usage error adds the `Try 'wstool CMD -h'` hint
    (not for a bad config file: the command line is not what is wrong)."""
    click.echo(f"wstool: error: {exc}", err=True)
    if help_hint and isinstance(exc, UsageError):
        click.echo(_help_hint(click.get_current_context(silent=True)), err=True)
    if _in_process() is not None:
        raise click.exceptions.Exit(int(exc.exit_status))
    sys.exit(int(exc.exit_status))


def _ask_key_password(cfg: ConnectConfig) -> ConnectConfig:
    """On a terminal, ask for the pass phrase of an encrypted --key (like curl and ssh)."""
    from wstool.tls import key_is_encrypted

    tls = cfg.tls
    key_path = tls.keyfile or tls.certfile
    if tls.key_password is not None or key_path is None or not key_is_encrypted(key_path):
        return cfg
    try:
        password = click.prompt(f"pass phrase for {key_path}", hide_input=True, err=True)
    except click.Abort:  # Ctrl-C or Ctrl-D at the prompt
        click.echo("", err=True)
        if _in_process() is not None:
            raise click.exceptions.Exit(int(ExitStatus.INTERRUPTED)) from None
        sys.exit(int(ExitStatus.INTERRUPTED))
    return cfg._replace(tls=tls._replace(key_password=password))


def _looks_like_url(word: str) -> bool:
    """``ws://h/``, ``localhost:8080``, ``9100``: a connect target, not a command name."""
    return "://" in word or word.isdigit() or (
        ":" in word and word.rpartition(":")[2].isdigit())


_CONFIG = "wstool.config"  # ctx.meta: the ConfigFile read for this run (or None)
_CONFIG_USED = "wstool.config_used"  # ctx.meta: (path, profile or None), for -v


def _environ() -> Mapping[str, str]:
    """The environment of the run: main(argv, env)'s, else the process's."""
    run = _in_process()
    return os.environ if run is None else run.env.environ


class _Command(click.Command):
    """wstool's commands (issue 13).

    * [defaults] (and, for connect, ``@PROFILE``) of the config file become click's
      ``default_map`` before the arguments are parsed;
    * the whole first line of the help in the command list: click cuts a short help
      at the width left (``Connect to URL: a REPL on a terminal, one message per
      line...``); each first line is one sentence written to fit, so it is shown
      whole, wrapped if it must.
    """

    profile_param: str | None = None  # the argument that may be ``@NAME``

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if ctx.resilient_parsing:  # shell completion: never a config error
            return super().parse_args(ctx, args)
        try:
            profile = self._use_config(ctx, args)
        except WstoolError as exc:
            fail(exc, help_hint=False)
        rest = super().parse_args(ctx, args)
        configured = ctx.default_map or {}
        if configured.get("headers") and ctx.get_parameter_source("headers") is \
                click.core.ParameterSource.COMMANDLINE:
            from wstool.cli.profiles import merge_headers

            ctx.params["headers"] = tuple(merge_headers(configured["headers"],
                                                        ctx.params["headers"]))
        if profile is not None and self.profile_param is not None:
            ctx.params[self.profile_param] = profile
        return rest

    def _use_config(self, ctx: click.Context, args: list[str]) -> str | None:
        """Read the file, set ctx.default_map; the profile's URL if ``@NAME`` was given."""
        environ = _environ()
        name = self._profile_name(ctx, args)
        if name is None and not os.path.exists(config_path(environ)):
            # No file: one stat, and cli/profiles.py (~1 ms to import) is not loaded.
            ctx.meta[_CONFIG] = None
            return None
        from wstool.cli.profiles import default_map, load_config, profile_url, unknown_profile

        config = load_config(environ, cli)
        ctx.meta[_CONFIG] = config
        if config is None:
            if name is not None:
                raise unknown_profile(None, name, config_path(environ))
            return None
        for line in config.warnings:
            click.echo(f"wstool: {line}", err=True)
        if name is not None and name not in config.profiles:
            raise unknown_profile(config, name, config.path)
        command_name = ctx.info_name or self.name or ""
        ctx.default_map = default_map(config, command_name, self, environ, name)
        ctx.meta[_CONFIG_USED] = (config.path, name)
        return None if name is None else profile_url(config, name, environ)

    def _profile_name(self, ctx: click.Context, args: list[str]) -> str | None:
        if self.profile_param is None or not any(a.startswith("@") for a in args):
            return None
        try:  # where the argument is: a parse of the same words, no callbacks
            opts, _rest, _order = self.make_parser(ctx).parse_args(args=list(args))
        except click.UsageError:
            return None  # the real parse reports it
        value = opts.get(self.profile_param)
        return value[1:] if isinstance(value, str) and value.startswith("@") else None

    def invoke(self, ctx: click.Context) -> Any:
        used = ctx.meta.get(_CONFIG_USED)
        if used is not None and ctx.params.get("verbose"):
            path, profile = used
            click.echo(f"* config {path}" + (f", profile {profile}" if profile else ""),
                       err=True)
        return super().invoke(ctx)

    def get_short_help_str(self, limit: int = 45) -> str:
        if self.short_help:
            return self.short_help
        return (self.help or "").strip().split("\n\n", 1)[0].replace("\n", " ")

    def full_epilog(self) -> str:
        """The epilog as --help and the man page show it."""
        return self.epilog or ""

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        epilog = self.full_epilog()
        if epilog:
            formatter.write_paragraph()
            with formatter.indentation():
                formatter.write_text(epilog)


class _Group(click.Group):
    command_class = _Command

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        # websocat takes the URL first (`websocat ws://h/`): say what wstool wants.
        name = args[0] if args else ""
        if self.get_command(ctx, name) is None and _looks_like_url(name):
            import shlex

            ctx.fail(f"no such command '{name}'; did you mean: "
                     f"wstool connect {shlex.join(args)}")
        return super().resolve_command(ctx, args)


@click.group(cls=_Group, context_settings=CONTEXT_SETTINGS, epilog=EXIT_STATUS_HELP)
@click.version_option(__version__, "-V", "--version", prog_name="wstool")
def cli() -> None:
    """A WebSocket client, server and frame debugger for terminals and pipes.

    \b
    Try it with nothing else running:
      wstool connect --demo
    """


_SEQUENCE_ORDER = "wstool.sequence_order"


class _ConnectCommand(_Command):
    """``connect`` records the order of -x, --expect and --capture (issue 11): click
    keeps the values of each option in order, not the order across options. Its URL
    may be ``@PROFILE`` (issue 13)."""

    profile_param = "url"

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if any(arg.startswith(("--expect", "--capture")) for arg in args):
            # click's parser lists each option every time it is given (its
            # "order"); a second parse of the same arguments, with no callbacks.
            _opts, _rest, order = self.make_parser(ctx).parse_args(args=list(args))
            ctx.meta[_SEQUENCE_ORDER] = [p.name for p in order if p.name in SEQUENCE_PARAMS]
        return super().parse_args(ctx, args)


# What `connect --help` ends with (issue 13): one example per way in.
CONNECT_EXAMPLES = """\
\b
Examples:
  wstool connect --demo                          # a built-in echo server, nothing else needed
  wstool connect localhost:8765                  # REPL; `wstool serve-echo` in another terminal
  echo '{"op":"ping"}' | wstool connect ws://localhost:8765/      # one message per line
  wstool connect -b ws://localhost:8765/ < in.bin > out.bin       # binary, byte for byte
  wstool connect -n 1 -x '{"subscribe":"ticks"}' localhost:8765   # send, first reply, exit"""


@cli.command(cls=_ConnectCommand, epilog=f"{EXIT_STATUS_HELP}\n\n{CONNECT_EXAMPLES}")
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
@sequence_options
@repl_options
@connect_options
@tls_options
@output_options
@record_browser_options
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
        if raw["wait"] < 0 and raw["wait"] != -1:
            raise UsageError("invalid --wait: seconds, or -1 to wait for the server to close")
        max_time = raw["max_time"]
        if max_time is not None and not 0 < max_time < float("inf"):
            raise UsageError("invalid --max-time: seconds, more than 0")
        if raw["echo"] and raw["binary"]:
            raise UsageError("--echo already mirrors binary as binary; drop -b/--binary")
        stream_cfg = stream_config(raw)
        run_cfg = ClientRunConfig(
            execute=tuple(raw["execute"]),
            message_count=raw["count"],
            wait_s=None if raw["wait"] == -1 else raw["wait"],
            echo=raw["echo"],
            reconnect=raw["reconnect"] or raw["reconnect_limit"] > 0,
            reconnect_limit=raw["reconnect_limit"],
            max_time_s=max_time,
        )
        out_cfg = output_config(raw, trace=raw["trace"])
        # Validate the URL and options before anything starts.
        conn_cfg = connect_config(url or "ws://127.0.0.1:1/", raw)
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


def _read_stdin_text() -> str:
    """``--curl -``: the whole of stdin (a pasted command ends with Ctrl-D)."""
    data = _environment(color=None).stdin.read()
    return data.decode("utf-8", "replace") if isinstance(data, bytes) else str(data)


@cli.command(epilog=REPLAY_EXIT_STATUS_HELP)
@click.argument("file", type=click.Path(dir_okay=False))
@click.argument("url", required=False)
@replay_options
@connect_options
@upstream_tls_options
@replay_output_options
def replay(file: str, url: str | None, **raw: Any) -> None:
    """Replay a recording to URL and compare the replies with the recorded ones.

    FILE is a `connect --record`/`--json` log, a REPL /save file, or a browser's
    HAR file. The recorded messages are sent with their original spacing
    (--speed), and what comes back must be what was recorded (--ignore drops
    fields, --unordered ignores the order). URL defaults to the recorded one.
    """
    from wstool.client.recording import load_recording
    from wstool.config import parse_target

    try:
        replay_cfg = replay_config(raw)
        out_cfg = output_config(raw)
        target_url = parse_target(url).url if url else None
        recording, notices = load_recording(file, socket_number=raw["socket_number"],
                                            url=target_url)
        if url is None and recording.url is None:
            raise UsageError(f"{file} records no URL (no open event): give the URL")
        if not raw["subprotocols"] and recording.subprotocol:
            raw = {**raw, "subprotocols": (recording.subprotocol,)}  # as recorded
        conn_cfg = connect_config(url or recording.url or "", raw)
    except WstoolError as exc:
        fail(exc)
    env = _environment(color=out_cfg.color)

    async def main() -> int:
        from wstool.client.replay import run_replay

        return await run_replay(env, recording, conn_cfg, replay_cfg, out_cfg,
                                notices=notices)

    run_async(main, debug=raw["debug"], env=env)


class _ListenCommand(_Command):
    def full_epilog(self) -> str:
        # The listen REPL's commands, from its own table (imported only for --help
        # and man pages: it brings in the server).
        from wstool.server.listen_repl import LISTEN_COMMANDS

        lines = "\n".join(f"  {line}" for line in LISTEN_COMMANDS.help_lines())
        return (f"{self.epilog}\n\n\b\nOn a terminal, a REPL (listen>): a typed line goes "
                f"to every client; its commands:\n{lines}")


@cli.command(name="listen", cls=_ListenCommand, epilog=LISTEN_EXIT_STATUS_HELP)
@click.option("--once", is_flag=True,
              help="Serve one client; exit when it leaves (status from its close).")
@stream_options
@repl_options
@server_options
@server_output_options
def listen_cmd(**raw: Any) -> None:
    """Accept WebSocket clients and bridge them to stdin/stdout (like nc -l).

    Each stdin line goes to every connected client; each client message is a
    line on stdout (--json: JSON lines with the client's id). Input written
    before the first client connects is kept for it.
    """
    from wstool.config import ListenConfig

    try:
        server_cfg = server_config(raw)
        listen_cfg = ListenConfig(once=raw["once"], stream=stream_config(raw))
        out_cfg = output_config(raw)
    except WstoolError as exc:
        fail(exc)
    _use_loop(raw["loop_name"])
    env = _environment(color=out_cfg.color)

    async def main() -> int:
        if env.interactive and not out_cfg.json:
            from wstool.server.listen_repl import run_listen_repl

            repl_cfg = repl_config(raw, env.environ, out_cfg, prompt="listen> ")
            return await run_listen_repl(env, server_cfg, listen_cfg, out_cfg, repl_cfg)
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


@cli.command(name="serve-echo", epilog=SERVE_ECHO_EXIT_STATUS_HELP)
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
        server_cfg = server_config(raw)
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


@cli.command(name="frame-dump", epilog=FRAME_DUMP_EXIT_STATUS_HELP)
@click.argument("source", required=False, metavar="[FILE|-|URL]")
@click.option("--hex", "hex_input", is_flag=True,
              help="FILE holds hex text (whitespace and 0x prefixes ignored).")
@click.option("--from", "from_side", type=click.Choice(["client", "server"]),
              help="Who sent the bytes (default: per frame, from the MASK bit); "
                   "frames that break the masking rule are flagged.")
@max_buffer_option
@click.option("--payload", "payload_limit", type=click.IntRange(0), default=64,
              show_default=True, metavar="N", help="Payload bytes previewed per frame; 0 = all.")
@click.option("-x", "--hexdump", is_flag=True,
              help="Add an offset/hex/ASCII dump of each header and (unmasked) payload.")
@click.option("--listen", metavar="HOST:PORT",
              help="Relay mode: accept clients on HOST:PORT, connect each to URL, print "
                   "both directions.")
@click.option("--pcap", metavar="FILE", help="Read a pcap/pcapng capture of TCP traffic.")
@click.option("--no-fail", is_flag=True,
              help="Exit 0 even when frames break the protocol (default: exit 6, "
                   "for CI); the output is the same.")
@click.option("-H", "--header", "headers", multiple=True, metavar="'NAME: VALUE'",
              help="Relay: extra header added to each upgrade request (repeatable).")
@click.option("--open-timeout", type=SECONDS, default=10.0, show_default=True, metavar="SECONDS",
              help="Relay: deadline for connecting to URL (TCP + TLS); 0 = none.")
@upstream_tls_options
@dump_output_options
def frame_dump_cmd(source: str | None, **raw: Any) -> None:
    """Show every frame: decode captured bytes, or relay and print both directions.

    \b
    wstool frame-dump capture.bin          one direction of a stream, raw bytes
    wstool frame-dump --hex - <<< '81 05 48 65 6c 6c 6f'
    wstool frame-dump --listen 127.0.0.1:9000 ws://127.0.0.1:8000/
    wstool frame-dump --pcap capture.pcapng
    """
    debug = raw["debug"]
    try:
        plan = frame_dump_plan(source, raw)
    except WstoolError as exc:
        fail(exc)
    env = _environment(color=raw["color"])

    async def main() -> int:
        return await plan.run(env)

    run_async(main, debug=debug, env=env)


RUN_EXIT_STATUS_HELP = """\
Exit status: 0 every step of every scenario passed; 8 a step failed (or a scenario
could not connect); 1 --junit FILE cannot be written; 2 usage, or a mistake in FILE
(with its line for TOML syntax)."""


@cli.command(name="run", epilog=RUN_EXIT_STATUS_HELP)
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--only", metavar="NAME", help="Run only the scenario named NAME.")
@click.option("--junit", "junit_path", type=click.Path(dir_okay=False), metavar="FILE",
              help="Also write the results as JUnit XML to FILE (CI test reports).")
@click.option("--json", "json_output", is_flag=True,
              help=json_option_help(RUN_JSON_EVENTS))
@click.option("--color/--no-color", default=None, help="Force colour (and the ✓/✗ marks).")
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
def run_cmd(file: str, only: str | None, junit_path: str | None, json_output: bool,
            color: bool | None, debug: bool) -> None:
    """Run the scenarios of a TOML FILE: connect, send, expect, capture, ping, close.

    Each [[scenario]] runs on a fresh connection, its steps in order; one line per
    step, then a summary. The format is in README "Scenario files"; a complete
    example is examples/chat.toml (try it against `wstool serve-echo`).
    """
    from wstool.cli.scenario_file import load_scenarios

    env = _environment(color=color)
    try:
        scenarios = load_scenarios(file, env.environ, only)
    except WstoolError as exc:
        fail(exc)

    async def main() -> int:
        from wstool.client.scenario import run_scenarios

        return await run_scenarios(env, file, scenarios, json=json_output,
                                   junit_path=junit_path)

    run_async(main, debug=debug, env=env)


@cli.command(name="profiles")
@click.pass_context
def profiles_cmd(ctx: click.Context) -> None:
    """List the profiles of the config file: NAME and URL, for `wstool connect @NAME`.

    The file is $XDG_CONFIG_HOME/wstool/config.toml (~/.config/wstool/config.toml);
    its format is in README "Profiles and defaults".
    """
    config = ctx.meta.get(_CONFIG)
    if config is None:
        click.echo(f"wstool: no config file at {config_path(_environ())}", err=True)
        return
    if not config.profiles:
        click.echo(f"wstool: no [profile.NAME] tables in {config.path}", err=True)
        return
    width = max(len(name) for name in config.profiles) + 1
    for name, profile in config.profiles.items():
        # The URL as written: a ${env:NAME} in it is not expanded (nor shown).
        click.echo(f"@{name:<{width}} {profile.get('url', '(no url)')}")


@cli.command(name="completion")
@click.argument("shell", metavar="SHELL", type=click.Choice(["bash", "zsh", "fish"]))
def completion_cmd(shell: str) -> None:
    """Print the shell completion script for SHELL (bash, zsh or fish).

    \b
    bash:  wstool completion bash > ~/.local/share/bash-completion/completions/wstool
    zsh:   mkdir -p ~/.zfunc && wstool completion zsh > ~/.zfunc/_wstool
           ...and in ~/.zshrc, before compinit:  fpath=(~/.zfunc $fpath)
    fish:  wstool completion fish > ~/.config/fish/completions/wstool.fish
    """
    from wstool.cli.completion import completion_script

    click.echo(completion_script(shell), nl=False)


def main(argv: Sequence[str] | None = None, env: Environment | None = None) -> int:
    """Run one wstool command and return its exit status.

    ``main()`` with neither argument is the process entry point (the ``wstool``
    script, ``python -m wstool``): it reads ``sys.argv`` and never returns — a
    command leaves with os._exit() once its streams are flushed (see _fast_exit),
    click's own exits (--help, usage errors) with sys.exit(), as always.

    Given ARGV (without the program name) and/or ENV, the command runs in this
    interpreter and its status is returned; nothing exits. ENV's streams replace
    the process's for the run (click's --help, --version and usage errors included),
    and every error becomes the same one-line message and status as in a process.
    """
    if argv is None and env is None:
        _process_main()
    return _run_in_process(sys.argv[1:] if argv is None else list(argv), env)


def _process_main() -> NoReturn:
    global _fast_exit
    _fast_exit = True
    if "_WSTOOL_COMPLETE" in os.environ:  # a shell asking for completions (completions/)
        from wstool.cli.completion import register_completion_classes

        register_completion_classes()
    try:
        # Not standalone: click's errors are shown here, in wstool's style.
        result = cli.main(prog_name="wstool", standalone_mode=False)
    except click.ClickException as exc:
        show_click_error(exc)
        sys.exit(exc.exit_code)
    except click.Abort:  # Ctrl-C or Ctrl-D at a click prompt
        click.echo("Aborted!", err=True)
        sys.exit(1)
    sys.exit(result if isinstance(result, int) else 0)  # --help, --version: click's Exit


def _run_in_process(argv: list[str], env: Environment | None) -> int:
    import asyncio
    import contextlib
    import io
    import signal
    import threading

    from wstool.term.env import Environment

    if env is None:
        env = Environment.from_process()
    # What a command may change for the whole interpreter, put back after it:
    # loop.remove_signal_handler() leaves SIGINT at default_int_handler and
    # SIGTERM at SIG_DFL, whatever they were; --loop sets the loop policy.
    handlers: dict[signal.Signals, Any] = {}
    if threading.current_thread() is threading.main_thread():
        handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    policy = asyncio.get_event_loop_policy()
    # click writes --help, --version, usage errors and `completion` to sys.stdout
    # and sys.stderr: point them at ENV for the run, put them back after.
    saved = sys.stdout, sys.stderr
    stdout_text = io.TextIOWrapper(env.stdout, encoding="utf-8", write_through=True)
    sys.stdout, sys.stderr = stdout_text, env.stderr
    try:
        result = cli.main(args=argv, prog_name="wstool", standalone_mode=False,
                          obj=_InProcess(env))
        return 0 if result is None else int(result)
    except click.ClickException as exc:  # click's usage errors: status 2
        show_click_error(exc)
        return exc.exit_code
    except click.Abort:  # Ctrl-C or Ctrl-D at a click prompt
        click.echo("Aborted!", err=True)
        return 1
    finally:
        for stream in (stdout_text, env.stderr):
            with contextlib.suppress(ValueError, OSError):
                stream.flush()
        stdout_text.detach()  # ENV's stdout stays open for the caller
        sys.stdout, sys.stderr = saved
        for sig, handler in handlers.items():
            if handler is not None:  # None: not set from Python, cannot be put back
                signal.signal(sig, handler)
        asyncio.set_event_loop_policy(policy)
