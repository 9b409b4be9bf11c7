"""A plain ``wstool connect`` in a pipe: its arguments parsed as click parses them, without click.

``wstool connect ARGS`` is run by ``cli/fast.py`` without click when ARGS are all
options of ``cli/connect_table.py`` (a table GENERATED from the click command:
``python -m wstool.cli.fast_table``) of the plain kinds (flags, -v, strings, integers,
seconds), the parameters given are the pipe's own (FAST_PARAMS), there is a URL, no
config file and no profile, and stdin or stdout is not a terminal: parsed here as
click parses them, made into the records with the builders the click command uses
(``cli/records.py``), and run with ``run_connect_pipe``, as ``connect`` runs it.

Anything else, and anything the table's kinds would have to report (a value that is
not a number, a missing value, an unknown or clustered option, ``--``, ``-h``, a
usage error of the builders), is left to click: :func:`connect_plan` returns None and the
click command runs as always, with its own messages and exit statuses.
tests/test_fast_connect.py checks that, for argument lists generated from the table,
this parse gives exactly the records click's gives, or leaves the run to click.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from wstool.config import ClientRunConfig, ConnectConfig, OutputConfig, StreamConfig

# The parameters a fast run may give a value other than their default: the pipe's
# own. Any other given (--exec, --expect, --record, --http2, TLS files, the REPL's
# options ...) sends the run to click, which knows their rules.
FAST_PARAMS = frozenset({
    "url", "null_separated", "binary", "use_base64", "chunk_size", "execute", "count",
    "wait", "max_time", "echo", "reconnect", "reconnect_limit", "trace", "show_ping_pong",
    "headers", "subprotocols", "origin", "auth", "user_agent", "proxy", "no_proxy",
    "compress", "max_size", "open_timeout", "ping_interval", "ping_timeout",
    "close_timeout", "follow_redirects", "max_redirects", "insecure", "server_name",
    "verbose", "quiet", "show_secrets", "json_output", "color", "debug",
})


class ConnectPlan(NamedTuple):
    """The records a plain ``connect`` in a pipe runs with."""

    connect: ConnectConfig
    run: ClientRunConfig
    stream: StreamConfig
    output: OutputConfig


class _Fallback(Exception):
    """This argument list is click's to parse."""


def _convert(kind: str, detail: Any, text: str) -> Any:
    """TEXT as click's type for KIND makes it; _Fallback where click would report it."""
    if kind == "str":
        return text
    if kind == "int":  # click.INT / click.IntRange: int(), then the closed bounds
        try:
            number = int(text)
        except ValueError:
            raise _Fallback from None
        low, high = detail
        if (low is not None and number < low) or (high is not None and number > high):
            raise _Fallback
        return number
    if kind == "seconds":  # cli/options.py's Seconds (unbounded): float(), finite
        try:
            seconds = float(text)
        except ValueError:
            raise _Fallback from None
        if math.isnan(seconds) or math.isinf(seconds):
            raise _Fallback
        return seconds
    raise _Fallback  # a kind click has to handle (paths, bounded seconds ...)


def parse_connect_args(args: Sequence[str]) -> dict[str, Any] | None:
    """``connect``'s parameters from ARGS (after ``connect``), as click's parse gives
    them; None when click must parse ARGS (or report them)."""
    from wstool.cli.connect_table import DEFAULTS, OPTIONS, POSITIONAL

    values = dict(DEFAULTS)
    multiple: dict[str, list[Any]] = {}
    positional: list[str] = []
    words = list(args)
    i = 0
    try:
        while i < len(words):
            word = words[i]
            i += 1
            if word[:1] != "-" or len(word) == 1:  # click: an option is "-" and more
                positional.append(word)
                continue
            explicit: str | None = None
            if word.startswith("--") and "=" in word:
                word, explicit = word.split("=", 1)
            spec = OPTIONS.get(word)
            if spec is None:  # unknown, "--", a cluster (-bn), -n1, -h ...
                raise _Fallback
            name, kind, detail = spec
            if kind == "flag":
                if explicit is not None:  # click: "does not take a value"
                    raise _Fallback
                values[name] = detail
                continue
            if kind == "count":
                if explicit is not None:
                    raise _Fallback
                values[name] += 1
                continue
            if explicit is None:  # the next word, whatever it is (as click)
                if i >= len(words):
                    raise _Fallback
                explicit = words[i]
                i += 1
            value = _convert(kind.rstrip("*"), detail, explicit)
            if kind.endswith("*"):
                multiple.setdefault(name, []).append(value)
            else:
                values[name] = value  # given again: the last one (as click)
    except _Fallback:
        return None
    if len(positional) > len(POSITIONAL):  # click: "unexpected extra argument"
        return None
    values.update(zip(POSITIONAL, positional, strict=False))
    values.update((name, tuple(given)) for name, given in multiple.items())
    return values


def connect_plan(args: Sequence[str], environ: Mapping[str, str]) -> ConnectPlan | None:
    """The records of ``wstool connect ARGS`` when they are a plain pipe run's; None
    when click must run the command."""
    from wstool.cli.connect_table import DEFAULTS, ENVVARS

    # What goes to click is told first, before the builders are imported, so that
    # `connect -h`, a REPL's options ... pay next to nothing for this attempt.
    if any(word.startswith("@") for word in args):  # @PROFILE: the config file's
        return None
    if any(name in environ for name in ENVVARS):
        return None
    raw = parse_connect_args(args)
    if raw is None:
        return None
    if any(value != DEFAULTS[name] for name, value in raw.items()
           if name not in FAST_PARAMS):
        return None
    url = raw["url"]
    if not url:
        return None
    from wstool.config import config_path

    # The config file's [defaults] change what click gives (cli/app.py, _Command).
    if os.path.exists(config_path(environ)):
        return None
    from wstool.cli.records import (
        client_run_config,
        connect_config,
        output_config,
        stream_config,
    )
    from wstool.errors import WstoolError

    try:
        run = client_run_config(raw)
        stream = stream_config(raw)
        output = output_config(raw, trace=raw["trace"])
        connect = connect_config(url, raw)
    except WstoolError:  # click's run says it, with its help hint
        return None
    return ConnectPlan(connect, run, stream, output)
