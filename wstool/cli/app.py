"""The Click edge: parse options, build configs, run a front-end, map errors to exits.

The only module with ``asyncio.run`` and ``sys.exit``: the ``cli`` group and the
machinery its commands share. Each command is in a module of its own
(``cmd_*.py``), imported only when it runs or is listed with its options
(LAZY_COMMANDS); heavy modules (websockets, rich, prompt_toolkit) are imported
inside the commands, so that ``wstool --version`` and ``--help`` stay fast.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Awaitable, Callable, Iterator, Mapping, MutableMapping, Sequence
from typing import TYPE_CHECKING, Any, NoReturn

import click

from wstool import __version__
from wstool.cli.running import flush_process_streams, run_to_status
from wstool.errors import (
    EXIT_STATUS_HELP,
    ExitStatus,
    UsageError,
    WstoolError,
)

if TYPE_CHECKING:
    from wstool.config import ConnectConfig
    from wstool.term.env import Environment

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


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
        # Never silence_stdout() here: fd 1 belongs to the caller.
        for stream in (env.stdout if env is not None else None, sys.stdout, sys.stderr):
            try:
                if stream is not None:
                    stream.flush()
            except (ValueError, OSError):
                pass
        raise click.exceptions.Exit(status)
    flush_process_streams(env)
    if _fast_exit:
        os._exit(status)
    sys.exit(status)


def run_async(
    factory: Callable[[], Awaitable[int]], *, debug: bool, env: Environment | None = None
) -> NoReturn:
    """Run a front-end coroutine; the one place errors become exit statuses.

    ENV's stdout (our buffered writer over fd 1) is flushed before exiting."""
    status = run_to_status(factory, debug=debug, say=lambda line: click.echo(line, err=True))
    _exit(status, env)


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
        # Imported here, not at the top: `--version` needs none of config.py's records
        # (eleven NamedTuple classes and urllib.parse: ~11 % of its instructions).
        from wstool.config import config_path

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


# The subcommands, each in a module of its own, imported when first asked for
# (click's "Lazily Loading Subcommands"): --version, --help of one command and a
# one-shot connect build only the click.Option objects they use (bench/README.md).
LAZY_COMMANDS: dict[str, str] = {
    "bench": "wstool.cli.cmd_bench:bench_cmd",
    "completion": "wstool.cli.cmd_misc:completion_cmd",
    "connect": "wstool.cli.cmd_connect:connect",
    "frame-dump": "wstool.cli.cmd_dump:frame_dump_cmd",
    "listen": "wstool.cli.cmd_servers:listen_cmd",
    "probe": "wstool.cli.cmd_probe:probe_cmd",  # issue 12
    "profiles": "wstool.cli.cmd_misc:profiles_cmd",
    "replay": "wstool.cli.cmd_replay:replay",
    "run": "wstool.cli.cmd_run:run_cmd",
    "serve-echo": "wstool.cli.cmd_servers:serve_echo_cmd",
}


def _load_command(name: str, spec: str) -> click.Command:
    import importlib

    module_name, _, attribute = spec.partition(":")
    command = getattr(importlib.import_module(module_name), attribute)
    if not isinstance(command, click.Command) or command.name != name:
        raise TypeError(f"{spec} is not the click command {name!r}")
    return command


class _LazyCommands(MutableMapping[str, click.Command]):
    """``group.commands``: every name at once, each command imported on first use.

    So that what reads ``cli.commands`` (man pages, the config file's [defaults.CMD],
    tests) sees every command, as with click's plain dict."""

    def __init__(self, table: Mapping[str, str]) -> None:
        self._table = dict(table)
        self._loaded: dict[str, click.Command] = {}

    def __getitem__(self, name: str) -> click.Command:
        command = self._loaded.get(name)
        if command is None:
            spec = self._table[name]  # KeyError: no such command
            command = self._loaded[name] = _load_command(name, spec)
        return command

    def __setitem__(self, name: str, command: click.Command) -> None:  # add_command()
        self._table.pop(name, None)
        self._loaded[name] = command

    def __delitem__(self, name: str) -> None:
        if name not in self:
            raise KeyError(name)
        self._table.pop(name, None)
        self._loaded.pop(name, None)

    def __contains__(self, name: object) -> bool:
        return name in self._table or name in self._loaded

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._table.keys() | self._loaded.keys()))

    def __len__(self) -> int:
        return len(self._table.keys() | self._loaded.keys())


class _Group(click.Group):
    """The ``wstool`` group: subcommands loaded lazily, "did you mean" for a URL."""

    command_class = _Command

    def __init__(self, *args: Any, lazy_commands: Mapping[str, str] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.commands: MutableMapping[str, click.Command] = _LazyCommands(
            lazy_commands or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)  # sorted: the help's command list, as before

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return self.commands.get(cmd_name)

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


@click.group(cls=_Group, context_settings=CONTEXT_SETTINGS, epilog=EXIT_STATUS_HELP,
             lazy_commands=LAZY_COMMANDS)
@click.version_option(__version__, "-V", "--version", prog_name="wstool")
def cli() -> None:
    """A WebSocket client, server and frame debugger for terminals and pipes.

    \b
    Try it with nothing else running:
      wstool connect --demo
    """


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
