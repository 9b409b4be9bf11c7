"""ruff and mypy --strict over wstool, tests and bench, so the one test command enforces them.

Both run as subprocesses with the configuration in pyproject.toml; a failure shows
their full report.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINTED = ["wstool", "tests", "bench"]


def _run(module: str, *args: str) -> subprocess.CompletedProcess[str]:
    if importlib.util.find_spec(module) is None:
        pytest.fail(f"{module} is not installed: pip install -e '.[test]'")
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )


@pytest.mark.slow
def test_ruff_is_clean() -> None:
    proc = _run("ruff", "check", "--no-cache", *LINTED)
    assert proc.returncode == 0, f"ruff check found problems:\n{proc.stdout}{proc.stderr}"


@pytest.mark.slow
def test_mypy_strict_is_clean() -> None:
    # `files` and `strict` come from [tool.mypy] in pyproject.toml.
    proc = _run("mypy", "--config-file", str(ROOT / "pyproject.toml"))
    assert proc.returncode == 0, f"mypy found problems:\n{proc.stdout}{proc.stderr}"
    assert "Success" in proc.stdout, proc.stdout
