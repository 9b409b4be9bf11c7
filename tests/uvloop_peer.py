"""uvloop (PyPI, the `fast` extra) for the tests that run the servers on it.

`--loop auto` picks uvloop when it is installed, so users of `wstool[fast]` run
every server on it; the `test` extra leaves it out so the suite's servers keep
running on asyncio's loop, the one a plain `pip install wstool` gets. A test that
must see a server on uvloop (its transports are not asyncio's classes) runs wstool
with `uvloop_path()` on PYTHONPATH: uvloop installed once with `pip install --target`
into the test cache (~/.cache/wstool-tests/uvloop, or $WSTOOL_TEST_CACHE/uvloop), or
the test is skipped with the reason.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from pathlib import Path

import pytest

PIP_INSTALL_TIMEOUT_S = 240.0


def uvloop_path() -> str:
    base = os.environ.get("WSTOOL_TEST_CACHE")
    root = Path(base) if base else Path.home() / ".cache" / "wstool-tests"
    target = root / "uvloop"
    root.mkdir(parents=True, exist_ok=True)
    with open(root / "uvloop.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # parallel test runs install once
        if (target / "uvloop" / "__init__.py").exists():
            return str(target)
        try:
            subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--target",
                            str(target), "uvloop>=0.19"], check=True, capture_output=True,
                           timeout=PIP_INSTALL_TIMEOUT_S)
        except (OSError, subprocess.SubprocessError) as exc:
            detail = getattr(exc, "stderr", b"") or b""
            pytest.skip(f"uvloop not available: pip install failed: {exc} "
                        f"{detail.decode(errors='replace')[-300:]}")
    return str(target)
