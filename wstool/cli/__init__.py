"""The Click edge: commands, option factories, completion.

The only package that imports ``click``, calls ``asyncio.run`` or exits. It turns
option values into the frozen records of :mod:`wstool.config` and hands them to a
capability (``client``, ``server``, ``dump``); nothing below it sees a click value.

The process entry point, :func:`main`, first lets ``cli/fast.py`` run ``--version``
and a plain ``connect`` in a pipe without importing click (issue 14, start-up);
everything else is ``cli/app.py``'s. ``cli`` (the click group) is imported on first
use.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing for --version
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

    from wstool.cli.app import cli as cli
    from wstool.term.env import Environment

__all__ = ["cli", "main"]


def main(argv: Sequence[str] | None = None, env: Environment | None = None) -> int:
    """Run one wstool command: see ``wstool.cli.app.main``."""
    if argv is None and env is None:  # the process itself (the `wstool` script)
        from wstool.cli.fast import run_fast

        run_fast(sys.argv[1:], os.environ)  # returns unless it ran the command
    from wstool.cli.app import main as click_main

    return click_main(argv, env)


def __getattr__(name: str) -> Any:
    if name == "cli":
        from wstool.cli.app import cli

        return cli
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
