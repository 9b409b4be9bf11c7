"""``wstool --version`` and a plain ``wstool connect`` in a pipe, without click (issue 14).

click and the ~80 ``click.Option`` objects of ``connect`` are ~45M of the ~390M
instructions of a one-shot ``echo hi | wstool connect -n 1 URL`` (bench/README.md,
"Start-up"), and most of ``--version``'s. So the process entry point
(``wstool.cli.main``) first calls :func:`run_fast`, which imports no click, and for
``--version`` nothing but ``os`` and ``sys`` (not even ``typing``):

* ``wstool --version`` / ``-V`` alone: click's line, ``wstool, version X``;
* a plain ``connect`` in a pipe (``cli/fast_connect.py`` says which): run as the click
  command runs it.

Anything else returns, and the click command runs as always.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (~3 ms)
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence


def _say(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def run_fast(argv: Sequence[str], environ: Mapping[str, str]) -> None:
    """Run ``wstool ARGV`` here and leave the process, or return: click's to run."""
    if "_WSTOOL_COMPLETE" in environ:  # a shell asking for completions
        return
    # No cyclic garbage collection while the modules are imported: the ~200 modules
    # of a one-shot connect allocate enough to run it ~40 times (36 young, 4 middle
    # generations), ~24M of its ~350M instructions, and find nothing to free
    # (module-level objects live as long as the process). It is back on before the
    # run, or before click's path, whatever happens here.
    import gc

    gc.disable()
    try:
        _run_fast(argv, environ)
    finally:
        gc.enable()


def _run_fast(argv: Sequence[str], environ: Mapping[str, str]) -> None:
    if list(argv) in (["--version"], ["-V"]):
        from wstool import __version__

        try:
            sys.stdout.write(f"wstool, version {__version__}\n")  # click's version_option
            sys.stdout.flush()
        except (BrokenPipeError, OSError, ValueError):  # stdout closed: nothing to say
            pass
        os._exit(0)
    if not argv or argv[0] != "connect":
        return
    from wstool.cli.fast_connect import connect_plan

    plan = connect_plan(argv[1:], environ)
    if plan is None:
        return
    from wstool.term.env import Environment

    env = Environment.from_process(color=plan.output.color)
    if env.interactive and not plan.output.json:  # the REPL: click's command runs it
        return
    import gc

    from wstool.cli.running import flush_process_streams, run_to_status
    from wstool.client.pipe import run_connect_pipe

    # Start-up is over (asyncio, websockets, the client are imported): what exists now
    # lives as long as the process, so the collector need never look at it again.
    gc.freeze()
    gc.enable()

    async def front_end() -> int:
        return await run_connect_pipe(env, plan.connect, plan.run, plan.stream, plan.output)

    status = run_to_status(front_end, debug=plan.output.debug, say=_say)
    flush_process_streams(env)
    # As cli/app.py's _exit after a command: teardown has nothing left to do.
    os._exit(status)

