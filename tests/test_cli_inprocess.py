"""`wstool.cli.main(argv, env)`: a command run in this interpreter, as tests use it.

It must answer exactly as the process does, return instead of exiting, and leave
nothing behind for the next run: no signal handler, event loop (policy), stream,
environment variable or working directory of one run may reach the next.
"""

from __future__ import annotations

import asyncio
import io
import os
import signal
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import Proc, run_wstool, run_wstool_inprocess
from wstool.cli import main
from wstool.term.env import Environment

HELLO_HEX = b"81 05 48 65 6c 6c 6f\n"


@pytest.mark.parametrize(
    ("args", "stdin"),
    [
        (["--version"], b""),
        (["--help"], b""),
        (["connect", "-h"], b""),
        ([], b""),  # no command: click's help, status 2
        (["connect"], b""),  # our usage error: status 2, one line
        (["connect", "--no-such-option", "ws://h/"], b""),  # click's usage error
        (["serve-echo", "--port", "70000"], b""),
        (["connect", "ftp://h/"], b""),
        (["frame-dump", "--hex", "-"], HELLO_HEX),
        (["frame-dump", "--hex", "-"], b"81 0"),  # decode error: status 6
        (["completion", "fish"], b""),
    ],
)
def test_in_process_answers_as_the_process_does(args: list[str], stdin: bytes) -> None:
    assert run_wstool_inprocess(*args, input=stdin) == run_wstool(*args, input=stdin)


def test_statuses_are_returned_not_exited() -> None:
    out, err = io.BytesIO(), io.StringIO()
    env = Environment(io.BytesIO(b""), out, err, environ={})
    # A SystemExit (or os._exit) would end this test instead of returning.
    assert main(["connect", "--wait", "-5", "ws://h/"], env) == 2
    assert err.getvalue() == (
        "wstool: error: invalid --wait: seconds, or -1 to wait for the server to close\n"
        "Try 'wstool connect -h' for help.\n")
    assert main(["frame-dump", "--hex", "-"], Environment(io.BytesIO(HELLO_HEX), out, err)) == 0
    assert out.getvalue() == b'@0 < TEXT fin 5 B unmasked "Hello"\n'
    assert not out.closed  # the caller's stream stays open after the run


def _process_state() -> dict[str, Any]:
    wakeup_fd = signal.set_wakeup_fd(-1)
    signal.set_wakeup_fd(wakeup_fd)
    return {
        "handlers": {sig: signal.getsignal(sig)
                     for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGPIPE)},
        "wakeup_fd": wakeup_fd,
        "policy": asyncio.get_event_loop_policy(),
        "environ": dict(os.environ),
        "cwd": os.getcwd(),
        "streams": (sys.stdin, sys.stdout, sys.stderr),
        "fast_exit": sys.modules["wstool.cli.app"]._fast_exit,
        "threads": {t for t in threading.enumerate() if t.name != "wstool-stdin"},
    }


@pytest.fixture
def own_signal_handlers() -> Iterator[None]:
    """Handlers of our own for SIGINT and SIGTERM, so that a run that resets them
    (to the defaults asyncio leaves behind) shows, whatever pytest started with."""

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    saved = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, previous in saved.items():
            signal.signal(sig, previous)


@pytest.mark.usefixtures("own_signal_handlers")
def test_two_runs_in_a_row_are_independent(lib_echo_url: str) -> None:
    before = _process_state()
    # A connect with -x, --json and its own environment, then a plain one: the
    # second must not see the first's options, output, environment or loop.
    first = run_wstool_inprocess("connect", "--json", "-x", "one", lib_echo_url,
                                 input=b"two\n", env={"WSTOOL_PROBE": "1"})
    after_first = _process_state()
    second = run_wstool_inprocess("connect", lib_echo_url, input=b"three\n")
    assert first.returncode == 0, first.stderr
    assert [line for line in first.stdout.splitlines() if b'"received"' in line] != []
    assert b"one" in first.stdout and b"two" in first.stdout
    assert second == Proc(0, b"three\n", second.stderr), second.stderr
    assert "closed by us: 1000" in second.stderr
    assert "WSTOOL_PROBE" not in os.environ
    assert after_first == before
    assert _process_state() == before
    with pytest.raises(RuntimeError):
        asyncio.get_running_loop()  # no loop left running in this thread
