"""websockify (PyPI) as an independent peer: the WebSocket -> TCP bridge wstool's own
``listen --to-tcp`` is modelled on, for ``connect --from-tcp`` to talk to.

`ensure_websockify()` returns a websockify executable: $WSTOOL_TEST_WEBSOCKIFY if set
(no install is tried then; a path that is not an executable skips), else one installed
with pip, once, into a venv in the test cache (~/.cache/wstool-tests/websockify, or
$WSTOOL_TEST_CACHE/websockify). websockify pulls numpy, requests, jwcrypto and redis,
which is why it is not in the `test` extra. Where the install fails the caller's test
is skipped with the reason. Only loopback addresses are ever used.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from pathlib import Path

import pytest

WEBSOCKIFY_ENV = "WSTOOL_TEST_WEBSOCKIFY"
PIP_INSTALL_TIMEOUT_S = 240.0


def _cache_dir() -> Path:
    base = os.environ.get("WSTOOL_TEST_CACHE")
    root = Path(base) if base else Path.home() / ".cache" / "wstool-tests"
    return root / "websockify"


def ensure_websockify() -> str:
    given = os.environ.get(WEBSOCKIFY_ENV)
    if given:
        if not os.access(given, os.X_OK):
            pytest.skip(f"websockify not available: ${WEBSOCKIFY_ENV}={given} is not "
                        "an executable")
        return given
    venv = _cache_dir()
    binary = venv / "bin" / "websockify"
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(venv.parent / "websockify.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # parallel test runs install once
        if binary.exists():
            return str(binary)
        try:
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True,
                           capture_output=True, timeout=60)
            subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "websockify"],
                           check=True, capture_output=True, timeout=PIP_INSTALL_TIMEOUT_S)
        except (OSError, subprocess.SubprocessError) as exc:
            detail = getattr(exc, "stderr", b"") or b""
            pytest.skip(f"websockify not available: pip install failed: {exc} "
                        f"{detail.decode(errors='replace')[-300:]}")
        if not binary.exists():
            pytest.skip("websockify not available: no bin/websockify after pip install")
    return str(binary)
