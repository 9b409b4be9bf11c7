"""The wheel: built from the checkout, installed in a fresh venv, wstool runs (issue 13).

What `pipx install .` and `pip install .` do, minus the network: pip builds the
wheel (build isolation from the configured index), a new venv installs it with its
dependencies, and its own `wstool` script answers. The checkout is copied first so
the build's build/ and *.egg-info stay out of the working tree.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import scaled
from wstool import __version__

ROOT = Path(__file__).resolve().parent.parent


def _run(*argv: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([str(a) for a in argv], cwd=cwd, capture_output=True, text=True,
                          timeout=scaled(300))
    assert proc.returncode == 0, f"{argv}: {proc.stdout}\n{proc.stderr}"
    return proc


@pytest.mark.slow
def test_wheel_installs_and_runs(tmp_path: Path) -> None:
    source = tmp_path / "src"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".venv", ".git", "build", "dist", "*.egg-info", "__pycache__", ".*_cache"))
    wheels = tmp_path / "wheels"
    _run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", ".", "-w", wheels, cwd=source)
    [wheel] = wheels.glob("wstool-*.whl")
    assert wheel.name.startswith(f"wstool-{__version__}-")
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
    data = f"wstool-{__version__}.data/data/share/man/man1/"
    assert f"{data}wstool.1" in names and f"{data}wstool-connect.1" in names
    assert not any(name.startswith("tests/") for name in names)

    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", venv)
    _run(venv / "bin" / "python", "-m", "pip", "install", "-q", wheel)
    version = _run(venv / "bin" / "wstool", "--version")
    assert version.stdout.strip() == f"wstool, version {__version__}"
    assert (venv / "share" / "man" / "man1" / "wstool-connect.1").exists()
    # The installed script really runs a connection (its built-in echo server).
    echoed = subprocess.run([venv / "bin" / "wstool", "connect", "--demo", "-q"],
                            input="from the wheel\n", capture_output=True, text=True,
                            timeout=scaled(60))
    assert echoed.returncode == 0, echoed.stderr
    assert echoed.stdout == "from the wheel\n"
    # Completions are printed by the installed command, as README says.
    zsh = _run(venv / "bin" / "wstool", "completion", "zsh")
    assert zsh.stdout.startswith("#compdef wstool\n")
