"""man pages: the committed files match the Click tree, and man can read them."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import run_wstool_inprocess
from wstool.cli.app import cli
from wstool.cli.manpages import MAN_DIR, man_pages


def test_committed_pages_match_generator() -> None:
    pages = man_pages()
    committed = {p.name for p in MAN_DIR.glob("*.1")}
    assert committed == set(pages), "run `python -m wstool.cli.manpages`"
    for name, text in pages.items():
        assert (MAN_DIR / name).read_text(encoding="utf-8") == text, (
            f"man/{name} is out of date: run `python -m wstool.cli.manpages`")


def test_one_page_per_command() -> None:
    assert set(man_pages()) == {"wstool.1", *(f"wstool-{n}.1" for n in cli.commands)}


def test_generator_writes_every_file_and_drops_stale_ones(tmp_path: Path) -> None:
    (tmp_path / "wstool-gone.1").write_text("old")
    proc = subprocess.run([sys.executable, "-m", "wstool.cli.manpages", str(tmp_path)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(man_pages())


def test_pages_carry_every_option_and_the_epilog() -> None:
    pages = man_pages()
    connect = pages["wstool-connect.1"]
    for param in cli.commands["connect"].params:
        if getattr(param, "hidden", False):  # --http2-only: spelled --http2=only
            continue
        for opt in getattr(param, "opts", []):
            if opt.startswith("-"):
                assert opt.replace("-", "\\-") in connect, opt
    assert ".SH EXIT STATUS" in connect
    assert "wstool connect \\-\\-demo" in connect  # the examples
    assert "/kick ID" in pages["wstool-listen.1"]  # listen's REPL commands
    assert "wstool\\-serve\\-echo\\fR(1)" in pages["wstool.1"]


@pytest.mark.skipif(shutil.which("man") is None, reason="man not installed")
@pytest.mark.parametrize("name", sorted(man_pages()))
def test_man_renders_without_warnings(name: str) -> None:
    env = {**os.environ, "MANWIDTH": "80", "MAN_KEEP_FORMATTING": "0", "LC_ALL": "C.UTF-8"}
    proc = subprocess.run(["man", "--warnings", "-l", str(MAN_DIR / name)], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == "", proc.stderr
    shown = re.sub(r".\x08", "", proc.stdout)  # bold and underline as overstrikes
    assert "NAME" in shown and "SYNOPSIS" in shown and "OPTIONS" in shown
    assert "-h, --help" in shown


def test_generating_leaves_minus_h_working() -> None:
    # click caches a command's help option from the first context that asks for it:
    # the generator's contexts must carry -h too, or a later in-process run loses it.
    man_pages()
    proc = run_wstool_inprocess("connect", "-h")
    assert proc.returncode == 0, proc.stderr
