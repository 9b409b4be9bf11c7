"""Shell completion: the committed scripts match the Click tree, and completing works.

Completion is tested through click's real protocol in a subprocess: wstool run with
_WSTOOL_COMPLETE=bash_complete (or zsh_/fish_complete) and COMP_WORDS/COMP_CWORD,
and through the committed bash script itself, sourced into a real bash.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import run_wstool_inprocess
from wstool.cli.completion import COMPLETIONS_DIR, SHELLS, completion_path, completion_script

SUBCOMMANDS = {"connect", "listen", "serve-echo", "frame-dump", "completion", "replay"}


@pytest.mark.parametrize("shell", SHELLS)
def test_committed_script_matches_generator(shell: str) -> None:
    committed = completion_path(shell).read_text(encoding="utf-8")
    assert committed == completion_script(shell), (
        f"completions/wstool.{shell} is out of date: run `python -m wstool.cli.completion`"
    )


def test_generator_writes_every_file(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "wstool.cli.completion", str(tmp_path)],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    for shell in SHELLS:
        written = (tmp_path / f"wstool.{shell}").read_text(encoding="utf-8")
        assert written == completion_path(shell, COMPLETIONS_DIR).read_text(encoding="utf-8")


@pytest.mark.parametrize("shell", SHELLS)
def test_completion_subcommand_prints_the_committed_script(shell: str) -> None:
    proc = run_wstool_inprocess("completion", shell)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.decode() == completion_path(shell).read_text(encoding="utf-8")


def test_zsh_script_starts_with_compdef() -> None:
    # zsh autoloads from $fpath only when #compdef is the very first line.
    assert completion_script("zsh").startswith("#compdef wstool\n")


def test_unknown_shell_is_a_usage_error() -> None:
    proc = run_wstool_inprocess("completion", "tcsh")
    assert proc.returncode == 2
    assert "tcsh" in proc.stderr
    assert proc.stdout == b""


def _complete(shell: str, words: str, cword: int) -> list[str]:
    """Ask wstool for completions the way click's scripts do."""
    env = {
        **os.environ,
        "_WSTOOL_COMPLETE": f"{shell}_complete",
        "COMP_WORDS": words,
        "COMP_CWORD": str(cword),
    }
    proc = subprocess.run(
        [sys.executable, "-m", "wstool"], env=env, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.splitlines()


def test_bash_protocol_completes_subcommands() -> None:
    lines = _complete("bash", "wstool ", 1)
    assert {line.removeprefix("plain,") for line in lines} >= SUBCOMMANDS
    assert all(line.startswith("plain,") for line in lines)


def test_bash_protocol_completes_a_prefix() -> None:
    assert _complete("bash", "wstool con", 1) == ["plain,connect"]
    assert _complete("bash", "wstool serve", 1) == ["plain,serve-echo"]


def test_bash_protocol_completes_options_and_choices() -> None:
    assert "plain,--binary" in _complete("bash", "wstool connect --bi", 2)
    assert _complete("bash", "wstool completion z", 2) == ["plain,zsh"]


def test_zsh_protocol_completes_subcommands_with_help() -> None:
    # zsh_complete answers in triples: type, value, help ("_" when none).
    lines = _complete("zsh", "wstool con", 1)
    assert lines[:2] == ["plain", "connect"]
    assert lines[2] not in ("", "_")  # connect's help line is offered as its description


def test_fish_protocol_completes_subcommands() -> None:
    # fish passes the current token as COMP_CWORD.
    env = {**os.environ, "_WSTOOL_COMPLETE": "fish_complete",
           "COMP_WORDS": "wstool fr", "COMP_CWORD": "fr"}
    proc = subprocess.run(
        [sys.executable, "-m", "wstool"], env=env, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[:2] == ["plain", "frame-dump"]


def _wstool_shim(directory: Path) -> dict[str, str]:
    """A `wstool` on PATH that runs this checkout's interpreter, for the sourced scripts."""
    shim = directory / "wstool"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m wstool "$@"\n')
    shim.chmod(0o755)
    return {**os.environ, "PATH": f"{directory}{os.pathsep}{os.environ.get('PATH', '')}"}


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("bash") is None, reason="bash not installed")
def test_sourced_bash_script_completes(tmp_path: Path) -> None:
    script = completion_path("bash")
    program = (
        f'source "{script}"\n'
        "complete -p wstool\n"
        "COMP_WORDS=(wstool serve); COMP_CWORD=1\n"
        "_wstool_completion wstool\n"
        'printf "reply:%s\\n" "${COMPREPLY[@]}"\n'
    )
    proc = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", program],
        env=_wstool_shim(tmp_path), capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "-F _wstool_completion wstool" in proc.stdout
    assert "reply:serve-echo" in proc.stdout.splitlines()


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh not installed")
def test_zsh_script_loads(tmp_path: Path) -> None:
    program = (
        "autoload -Uz compinit && compinit -u -D\n"
        f'source "{completion_path("zsh")}"\n'
        "print -r -- ${_comps[wstool]}\n"
    )
    proc = subprocess.run(
        ["zsh", "-f", "-c", program],
        env=_wstool_shim(tmp_path), capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "_wstool_completion"


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("fish") is None, reason="fish not installed")
def test_sourced_fish_script_completes(tmp_path: Path) -> None:
    program = (
        f'source "{completion_path("fish")}"\n'
        'complete -C "wstool serve"\n'
        'complete -C "wstool connect --bi"\n'
    )
    proc = subprocess.run(
        ["fish", "--no-config", "-c", program],
        env=_wstool_shim(tmp_path), capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    # fish shows "value<TAB>help".
    assert lines[0].startswith("serve-echo\tA fast")
    assert any(line.startswith("--binary\t") for line in lines[1:])
