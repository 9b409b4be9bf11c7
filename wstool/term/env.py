"""The one environment object: standard streams, their tty flags, colour, console.

Model: httpie's ``context.py``. Front-ends receive an ``Environment`` instead of
touching ``sys.std*``; tests build one over ``io.BytesIO``. rich is imported only
when a console is first asked for, so pipe mode never loads it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


class Environment:
    # A plain class, not a dataclass: importing dataclasses costs ~1 ms of a
    # one-shot `wstool connect` (bench/README.md).
    def __init__(
        self,
        stdin: IO[bytes],
        stdout: IO[bytes],
        stderr: IO[str],
        stdin_isatty: bool = False,
        stdout_isatty: bool = False,
        stderr_isatty: bool = False,
        environ: Mapping[str, str] | None = None,
        # --no-color / --color from the command line; None: decide per stream.
        color: bool | None = None,
    ) -> None:
        self.stdin = stdin
        self.stdout = stdout
        self.stderr = stderr
        self.stdin_isatty = stdin_isatty
        self.stdout_isatty = stdout_isatty
        self.stderr_isatty = stderr_isatty
        self.environ: Mapping[str, str] = {} if environ is None else environ
        self.color = color
        self._stdout_console: Console | None = None

    @classmethod
    def from_process(cls, color: bool | None = None) -> Environment:
        # Our own buffered writer over fd 1: sys.stdout.buffer is unbuffered
        # under PYTHONUNBUFFERED / -u, which would cost one write() syscall
        # per message. Front-ends flush at the points where output must show.
        try:
            stdout: IO[bytes] = open(  # noqa: SIM115 - lives as long as the process
                sys.stdout.fileno(), "wb", buffering=1 << 16, closefd=False
            )
        except (AttributeError, OSError, ValueError):
            stdout = sys.stdout.buffer
        return cls(
            stdin=sys.stdin.buffer,
            stdout=stdout,
            stderr=sys.stderr,
            stdin_isatty=_isatty(sys.stdin),
            stdout_isatty=_isatty(sys.stdout),
            stderr_isatty=_isatty(sys.stderr),
            environ=os.environ,
            color=color,
        )

    @property
    def no_color(self) -> bool:
        # https://no-color.org: any non-empty value disables colour.
        return bool(self.environ.get("NO_COLOR"))

    def color_for(self, isatty: bool) -> bool:
        # An explicit --color/--no-color wins over NO_COLOR (no-color.org).
        if self.color is not None:
            return self.color
        return isatty and not self.no_color and self.environ.get("TERM") != "dumb"

    @property
    def interactive(self) -> bool:
        """Both ends are a terminal: ``connect`` opens the REPL."""
        return self.stdin_isatty and self.stdout_isatty

    def stdout_console(self) -> Console:
        """The rich console over our stdout writer (created on first use)."""
        if self._stdout_console is None:
            from rich.console import Console

            isatty = self.stdout_isatty
            color = self.color_for(isatty)
            self._stdout_console = Console(
                file=_TextView(self.stdout),  # type: ignore[arg-type]
                force_terminal=isatty if color else None,
                no_color=not color,
                color_system="auto" if color else None,
                highlight=False,
                markup=False,
                emoji=False,
                soft_wrap=True,
            )
        return self._stdout_console

    def write_stderr_line(self, line: str) -> None:
        """A plain diagnostic line; never raises on a closed stderr."""
        try:
            self.stderr.write(line + "\n")
            self.stderr.flush()
        except (OSError, ValueError):
            pass


class _TextView:
    """A minimal text wrapper over a binary stream, for a rich Console in tests."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw

    def write(self, text: str) -> int:
        self.raw.write(text.encode())
        return len(text)

    def flush(self) -> None:
        self.raw.flush()

    def isatty(self) -> bool:
        return False
