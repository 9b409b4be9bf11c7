"""term/signals.py: handlers installed on the running loop, removed on exit.

Real signals sent to this process (no mocks); the CLI-level behaviour (exit 130
on SIGINT, 0 on SIGTERM for the servers and frame-dump) is tested as processes in
test_serve_exit_status.py and test_relay.py.
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading

import pytest

from wstool.term.signals import handle_signals

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGUSR1"), reason="POSIX signals")


def test_callbacks_run_in_the_loop_and_handlers_are_removed() -> None:
    async def main() -> tuple[list[str], frozenset[signal.Signals]]:
        got: list[str] = []
        done = asyncio.Event()

        def on_usr1() -> None:
            got.append("usr1")
            done.set()

        loop = asyncio.get_running_loop()
        with handle_signals({signal.SIGUSR1: on_usr1, signal.SIGUSR2: lambda: None}) as installed:
            os.kill(os.getpid(), signal.SIGUSR1)
            await asyncio.wait_for(done.wait(), 5)
        # Removed: asyncio no longer knows them, and the loop's wake-up handler is gone.
        assert not loop.remove_signal_handler(signal.SIGUSR1)
        assert not loop.remove_signal_handler(signal.SIGUSR2)
        return got, installed

    got, installed = asyncio.run(main())
    assert got == ["usr1"]
    assert installed == {signal.SIGUSR1, signal.SIGUSR2}
    assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL


def test_sigint_goes_back_to_keyboard_interrupt_even_after_an_error() -> None:
    async def main() -> None:
        with handle_signals({signal.SIGINT: lambda: None}):
            assert signal.getsignal(signal.SIGINT) is not signal.default_int_handler
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        asyncio.run(main())
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_outside_the_main_thread_nothing_is_installed() -> None:
    # The loop refuses (RuntimeError) off the main thread, as in a test's server
    # thread: the helper carries on with the signals' defaults, as before.
    result: list[frozenset[signal.Signals]] = []

    async def main() -> None:
        with handle_signals({signal.SIGTERM: lambda: None}) as installed:
            result.append(installed)

    thread = threading.Thread(target=lambda: asyncio.run(main()))
    thread.start()
    thread.join(10)
    assert result == [frozenset()]
