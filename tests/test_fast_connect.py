"""cli/fast.py, cli/fast_connect.py: --version and a plain connect without click (issue 14).

The click-free parse must give exactly what click's gives, or leave the run to click:
argument lists are generated from the table (cli/connect_table.py) and both parses are
compared, then the records both paths would run with.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import wstool.client.pipe
from tests.conftest import ServerThread, lib_echo, scaled, start_websockets_server
from wstool.cli.app import main as click_main
from wstool.cli.cmd_connect import connect
from wstool.cli.connect_table import DEFAULTS, OPTIONS
from wstool.cli.fast_connect import connect_plan, parse_connect_args
from wstool.cli.fast_table import TABLE_PATH, table_source
from wstool.term.env import Environment

# No config file: the fast path is only for runs without one.
NO_CONFIG = {"HOME": "/nonexistent-wstool-test", "XDG_CONFIG_HOME": "/nonexistent-wstool-test"}


def test_committed_table_matches_generator() -> None:
    # After an option change: python -m wstool.cli.fast_table
    assert TABLE_PATH.read_text(encoding="utf-8") == table_source(), (
        "connect's options changed: run python -m wstool.cli.fast_table")


def _loaded_modules(*args: str, input: bytes = b"") -> tuple[subprocess.CompletedProcess[str],
                                                             set[str]]:
    result = subprocess.run([sys.executable, "-X", "importtime", "-m", "wstool", *args],
                            input=input.decode(), capture_output=True, text=True,
                            timeout=scaled(30))
    loaded = {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines()
              if line.startswith("import time:")}
    return result, loaded


def test_version_is_clicks_line_without_click() -> None:
    result, loaded = _loaded_modules("--version")
    assert result.returncode == 0
    assert "wstool.cli.fast" in loaded  # what the check reads is there
    assert not loaded & {"click", "typing", "wstool.errors", "wstool.cli.app"}
    import io

    out = io.BytesIO()
    env = Environment(io.BytesIO(), out, io.StringIO())
    assert click_main(["--version"], env) == 0
    assert result.stdout.encode() == out.getvalue() == b"wstool, version 0.1.0\n"
    short, _ = _loaded_modules("-V")
    assert short.stdout == result.stdout


def test_one_shot_runs_without_click(server_thread: ServerThread) -> None:
    _server, url = start_websockets_server(server_thread, lib_echo)
    result, loaded = _loaded_modules("connect", "-n", "1", url, input=b"hi\n")
    assert (result.returncode, result.stdout) == (0, "hi\n"), result.stderr
    assert "wstool.client.pipe" in loaded
    assert not loaded & {"click", "wstool.cli.app", "wstool.cli.options"}
    # Anything the table does not know goes to click: -h, --, a cluster, --exec.
    for args in (["-h"], ["-n", "1", "--", url], ["-qn", "1", url]):
        result, loaded = _loaded_modules("connect", *args, input=b"hi\n")
        assert "click" in loaded, args


def test_fast_errors_are_clicks_errors() -> None:
    # Connection refused: the run's own error line and status (run_to_status), the
    # same through click (`--` sends the run there).
    fast = subprocess.run([sys.executable, "-m", "wstool", "connect", "-n", "1",
                           "ws://127.0.0.1:1/"], input=b"hi\n", capture_output=True,
                          timeout=scaled(30))
    slow = subprocess.run([sys.executable, "-m", "wstool", "connect", "-n", "1", "--",
                           "ws://127.0.0.1:1/"], input=b"hi\n", capture_output=True,
                          timeout=scaled(30))
    assert fast.returncode == slow.returncode == 3
    assert fast.stderr == slow.stderr != b""
    assert fast.stdout == slow.stdout == b""


@pytest.mark.parametrize("args", [
    ["-n", "0", "ws://h/"],  # out of range: click's message
    ["-n", "x", "ws://h/"],
    ["ws://h/", "-n"],  # a missing value
    ["--binary=1", "ws://h/"],  # a flag with a value
    ["-bn", "1", "ws://h/"],  # a cluster
    ["-n1", "ws://h/"],
    ["--", "ws://h/"],
    ["-h"],
    ["ws://h/", "ws://i/"],  # an extra argument
    ["@profile"],
    ["--demo"],
    [],  # missing URL
    ["--exec", "cat", "ws://h/"],  # not a pipe run's option
    ["--vi", "ws://h/"],
    ["--expect", "x", "ws://h/"],
    ["--cacert", "ca.pem", "wss://h/"],
    ["-w", "nan", "ws://h/"],
    ["-w", "-2", "ws://h/"],  # the builder's usage error
    ["-b", "-0", "ws://h/"],
    ["-q", "-v", "ws://h/"],
    ["--no-such-option", "ws://h/"],
])
def test_what_click_must_say_is_left_to_click(args: list[str]) -> None:
    assert connect_plan(args, NO_CONFIG) is None


def test_a_config_file_or_key_password_variable_goes_to_click(tmp_path: Path) -> None:
    args = ["-n", "1", "ws://h/"]
    assert connect_plan(args, {"XDG_CONFIG_HOME": str(tmp_path)}) is not None
    (tmp_path / "wstool").mkdir()
    (tmp_path / "wstool" / "config.toml").write_text("[defaults]\n")
    assert connect_plan(args, {"XDG_CONFIG_HOME": str(tmp_path)}) is None
    assert connect_plan(args, {**NO_CONFIG, "WSTOOL_KEY_PASSWORD": "x"}) is None


# --- the two parses compared ---------------------------------------------------------

_VALUES = st.sampled_from([
    "1", "2", "0", "-1", "10", " 3", "+4", "1_0", "1.5", "-2.5", "0.0", "1e2", "nan", "inf",
    "x", "", "hi", "-x", "--", "-n", "a=b", "X-A: b", "User: x", "ws://h/", "@p",
    "http://p:3128", "user:pass", "10000000000",
])
_URLS = st.sampled_from(["ws://127.0.0.1:9/", "wss://h/p?q", "localhost:8765", "9100", "",
                         "-", "http://h/", "ws://u:p@h/", "ws+unix:///tmp/s.sock", "ws://[::1]:9/"])
# The pipe's options mostly, others now and then (they must go to click).
_OPTIONS = sorted(OPTIONS)


@st.composite
def _words(draw: st.DrawFn) -> list[str]:
    words: list[str] = []
    for _ in range(draw(st.integers(0, 6))):
        choice = draw(st.integers(0, 9))
        if choice == 0:
            words.append(draw(_URLS))
            continue
        if choice == 1:
            words.append(draw(_VALUES))
            continue
        opt = draw(st.sampled_from(_OPTIONS))
        _name, kind, _detail = OPTIONS[opt]
        if kind in ("flag", "count"):
            words.append(opt if draw(st.integers(0, 9)) else f"{opt}=1")
        elif opt.startswith("--") and draw(st.booleans()):
            words.append(f"{opt}={draw(_VALUES)}")
        else:
            words += [opt, draw(_VALUES)] if draw(st.integers(0, 9)) else [opt]
    if draw(st.integers(0, 4)):
        words.insert(draw(st.integers(0, len(words))), draw(_URLS))
    return words


def _typed(params: dict[str, Any]) -> dict[str, tuple[type, Any]]:
    return {name: (type(value), value) for name, value in params.items()}


def _click_params(args: list[str]) -> dict[str, Any] | None:
    try:
        ctx = connect.make_context("connect", list(args), obj=None)
    except click.exceptions.Exit:
        return None
    except click.ClickException:
        return None
    return ctx.params


@settings(max_examples=400, deadline=None)
@given(_words())
def test_the_fast_parse_is_clicks_or_none(args: list[str]) -> None:
    fast = parse_connect_args(args)
    if fast is None:
        return
    clicks = _click_params(args)
    assert clicks is not None, f"click refuses {args}, the fast parse took it"
    assert _typed(fast) == _typed(clicks)


def test_the_fast_parse_takes_the_common_runs() -> None:
    for args in (["-n", "1", "ws://h/"], ["ws://h/", "--count=1", "-x", "hi", "-b"],
                 ["-H", "A: b", "-H", "C: d", "--no-compress", "-w", "-1", "9100"],
                 ["-v", "--verbose", "-q", "--quiet", "ws://h/"]):
        fast = parse_connect_args(args)
        assert fast is not None, args
        clicks = _click_params(args)
        assert clicks is not None and _typed(fast) == _typed(clicks)
    assert parse_connect_args([]) == DEFAULTS


@contextmanager
def _captured_pipe_runs() -> Iterator[list[tuple[Any, ...]]]:
    """The records click's connect hands run_connect_pipe (which then does nothing)."""
    calls: list[tuple[Any, ...]] = []
    real = wstool.client.pipe.run_connect_pipe

    async def capture(env: Any, connect_cfg: Any, run_cfg: Any, stream_cfg: Any,
                      output_cfg: Any, *, observers: Any = (), wrap_input: Any = None) -> int:
        calls.append((connect_cfg, run_cfg, stream_cfg, output_cfg, list(observers),
                      wrap_input))
        return 0

    wstool.client.pipe.run_connect_pipe = capture  # type: ignore[assignment]
    try:
        yield calls
    finally:
        wstool.client.pipe.run_connect_pipe = real


def _click_records(args: list[str]) -> tuple[Any, ...] | None:
    import io

    env = Environment(io.BytesIO(), io.BytesIO(), io.StringIO(), environ=NO_CONFIG)
    with _captured_pipe_runs() as calls:
        click_main(["connect", *args], env)
    return calls[0] if calls else None


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_words())
def test_the_fast_records_are_clicks(args: list[str]) -> None:
    plan = connect_plan(args, NO_CONFIG)
    if plan is None:
        return
    clicks = _click_records(args)
    assert clicks is not None, f"click does not run the pipe for {args}"
    assert clicks == (plan.connect, plan.run, plan.stream, plan.output, [], None)


def test_the_records_of_a_one_shot_are_clicks() -> None:
    args = ["-n", "1", "-x", "hi", "-H", "A: b", "--no-compress", "ws://127.0.0.1:9/"]
    plan = connect_plan(args, NO_CONFIG)
    assert plan is not None
    assert _click_records(args) == (plan.connect, plan.run, plan.stream, plan.output, [],
                                    None)


def test_the_collector_is_off_for_start_up_only() -> None:
    # cli/fast.py turns cyclic GC off while the modules load, then freezes what they
    # made and turns it on before the run; on click's path it is on again too.
    code = """
import gc, sys
import wstool.client.pipe

async def run_connect_pipe(*args, **kwargs):
    print("run", gc.isenabled(), gc.get_freeze_count() > 0, flush=True)
    return 0

wstool.client.pipe.run_connect_pipe = run_connect_pipe
from wstool.cli.fast import run_fast
print("before", gc.isenabled())
run_fast(["connect", "--", "ws://127.0.0.1:9/"], {"HOME": "/nonexistent"})
print("click's path", gc.isenabled(), flush=True)
run_fast(["connect", "-n", "1", "ws://127.0.0.1:9/"], {"HOME": "/nonexistent"})
"""
    result = subprocess.run([sys.executable, "-c", code], input=b"", capture_output=True,
                            timeout=scaled(30))
    assert result.stdout.decode().split("\n") == [
        "before True", "click's path True", "run True True", ""], result.stderr
    assert result.returncode == 0
