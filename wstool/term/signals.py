"""Signal handlers for a running command: the one way wstool installs them.

Use it around the part of a run that a signal should end, inside the event
loop::

    with handle_signals({signal.SIGINT: stop.set, signal.SIGTERM: stop.set}):
        await stop.wait()

Each callback runs in the event loop (``loop.add_signal_handler``), so it may
set events, resolve futures or abort a session; it takes no argument (bind one
with a lambda or ``functools.partial``). On exit, normal or not, the handlers are
removed again (SIGINT goes back to Python's ``KeyboardInterrupt``).

Where the loop cannot install a handler (``NotImplementedError``: Windows'
proactor loop; ``RuntimeError``: not the main thread, e.g. a test's server
thread) that signal is skipped and keeps its default behaviour, as before.

Callers: ``serve-echo`` and ``listen`` (SIGINT/SIGTERM stop the server),
``frame-dump --listen`` (SIGINT exits 130, SIGTERM 0), and the pipe front-end
(``{signal.SIGINT: self._interrupt}``: the first Ctrl-C closes, the second aborts).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable, Iterator, Mapping


@contextlib.contextmanager
def handle_signals(
    handlers: Mapping[signal.Signals, Callable[[], object]],
) -> Iterator[frozenset[signal.Signals]]:
    """Install ``handlers`` on the running loop; yields the signals actually installed."""
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    for signum, callback in handlers.items():
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, callback)
            installed.append(signum)
    try:
        yield frozenset(installed)
    finally:
        for signum in installed:
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(signum)
