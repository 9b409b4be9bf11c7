"""Running a front-end coroutine to an exit status, without click.

What ``cli/app.py``'s ``run_async`` does with a command's coroutine, shared with the
click-free start of a plain ``connect`` (``cli/fast.py``, issue 14): the one place
errors become exit statuses, and the flush before a process leaves.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from wstool.errors import ExitStatus, WstoolError

if TYPE_CHECKING:
    from wstool.term.env import Environment


def silence_stdout() -> None:
    # After a closed stdout (`| head -1`), Python would complain when it
    # flushes sys.stdout at exit; point fd 1 at /dev/null instead.
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def print_traceback() -> None:
    import traceback  # ~10 ms of imports (linecache, tokenize): only for --debug

    traceback.print_exc()


async def _as_coroutine(factory: Callable[[], Awaitable[int]]) -> int:
    return await factory()


def run_to_status(factory: Callable[[], Awaitable[int]], *, debug: bool,
                  say: Callable[[str], None]) -> int:
    """Run FACTORY's coroutine; its status, or the status of what it raised (SAY
    writes the one error line)."""
    # Imported here, not at the top: asyncio costs ~30 ms that --version, --help and
    # completion never need (bench/README.md, start-up).
    import asyncio

    try:
        status: int = asyncio.run(_as_coroutine(factory))
    except WstoolError as exc:
        if debug:
            print_traceback()
        if not exc.said:  # a front-end said it already (a server's close line)
            say(f"wstool: error: {exc}")
        status = exc.exit_status
    except KeyboardInterrupt:
        status = ExitStatus.INTERRUPTED
    except BrokenPipeError:
        status = ExitStatus.OK
    except Exception as exc:  # a bug: say so in one line, traceback with --debug
        if debug:
            print_traceback()
        say(f"wstool: error: internal error: {type(exc).__name__}: {exc} "
            "(run with --debug for a traceback)")
        status = ExitStatus.ERROR
    return int(status)


def flush_process_streams(env: Environment | None) -> None:
    """Before a process leaves: ENV's stdout, sys.stdout and sys.stderr; a closed
    stdout is pointed at /dev/null (nothing to complain about at exit)."""
    streams: list[Any] = [sys.stdout, sys.stderr]
    if env is not None:
        streams.insert(0, env.stdout)
    for stream in streams:
        try:
            stream.flush()
        except (BrokenPipeError, ValueError, OSError):
            if stream is not sys.stderr:
                silence_stdout()
