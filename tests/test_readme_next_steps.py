"""The README's "Next steps" walkthrough, every command of it, against real processes.

The commands are read from the README and run as written through ``bash -c`` (the
REPL one in a pseudo-terminal with pexpect), with two changes a shared machine needs:
the servers listen on free ports (``--port 0``) instead of 8765, 9000 and 9001, and
the clients are pointed at the ports they printed. ``.venv`` is this interpreter's
environment. A command added to the section without a check here fails the test.
"""

from __future__ import annotations

import os
import re
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pytest

from tests.conftest import scaled

ROOT = Path(__file__).resolve().parent.parent

ACTIVATE = ". .venv/bin/activate"
SERVE_ECHO = "wstool serve-echo"
REPL = "wstool connect localhost:8765"
PIPE = "printf 'one\\ntwo\\n' | wstool connect localhost:8765"
LISTEN = "wstool listen --port 9000"
TO_LISTEN = "echo 'hello, listener' | wstool connect localhost:9000"
RELAY = "wstool frame-dump --listen 127.0.0.1:9001 ws://127.0.0.1:8765/"
THROUGH_RELAY = "echo 'through the relay' | wstool connect localhost:9001"
WALKTHROUGH = [ACTIVATE, SERVE_ECHO, REPL, PIPE, LISTEN, TO_LISTEN, RELAY, THROUGH_RELAY]


def next_steps_section() -> str:
    readme = (ROOT / "README.md").read_text()
    return readme.split("\n## Next steps\n", 1)[1].split("\n## ", 1)[0]


def next_steps_commands() -> list[str]:
    blocks = re.findall(r"```sh\n(.*?)```", next_steps_section(), re.S)
    return [line for block in blocks for line in block.splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def test_next_steps_follow_the_quick_start_and_are_all_checked() -> None:
    readme = (ROOT / "README.md").read_text()
    headings = re.findall(r"^## (.+)$", readme, re.M)
    assert headings[:3] == ["Quick start", "Next steps", "Contents"]
    # Every command in the section is one this module runs, in this order.
    assert next_steps_commands() == WALKTHROUGH
    section = next_steps_section()
    for port in ("8765", "9000", "9001"):
        assert port in section  # the README says which port


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to -."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_contents_links_resolve() -> None:
    readme = (ROOT / "README.md").read_text()
    contents = readme.split("\n## Contents\n", 1)[1].split("\n## ", 1)[0]
    anchors = {_slug(h) for h in re.findall(r"^#{2,4} (.+)$", readme, re.M)}
    links = re.findall(r"\]\(#([^)]+)\)", contents)
    assert len(links) >= 10
    assert [link for link in links if link not in anchors] == []
    assert len(links) == len(set(links)), "a section is listed twice"
    # Every top-level section after the contents is listed.
    after = readme.split("\n## Contents\n", 1)[1]
    assert {_slug(h) for h in re.findall(r"^## (.+)$", after, re.M)} <= set(links)


@pytest.fixture
def shell_env(tmp_path: Path) -> dict[str, str]:
    """What `. .venv/bin/activate` gives: this interpreter's bin/ first on PATH."""
    bin_dir = Path(sys.prefix) / "bin"
    if not (bin_dir / "activate").exists() or not (bin_dir / "wstool").exists():
        pytest.skip(f"{sys.prefix} is not a venv with wstool installed")
    (tmp_path / ".venv").symlink_to(sys.prefix)
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONHOME")}
    env["NO_COLOR"] = "1"
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    env["HOME"] = str(tmp_path)  # REPL history goes there, not into the user's
    env["XDG_STATE_HOME"] = str(tmp_path / "state")
    return env


class Background:
    """A server command of the walkthrough, run as written (ports aside) in bash."""

    def __init__(self, command: str, env: dict[str, str], cwd: Path) -> None:
        self.command = command
        self.proc = subprocess.Popen(
            ["bash", "-c", f"exec {command}"], env=env, cwd=cwd,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        self.stderr_lines: list[str] = []

    def wait_for_port(self) -> int:
        """The port of the first `ws://127.0.0.1:PORT/` the command prints on stderr."""
        assert self.proc.stderr is not None
        selector = selectors.DefaultSelector()
        selector.register(self.proc.stderr, selectors.EVENT_READ)
        deadline = time.monotonic() + scaled(20)
        while time.monotonic() < deadline:
            if not selector.select(timeout=0.1):
                continue
            line = self.proc.stderr.readline().decode()
            if not line:
                break
            self.stderr_lines.append(line)
            if match := re.search(r"ws://127\.0\.0\.1:(\d+)/", line):
                return int(match.group(1))
        raise AssertionError(f"{self.command}: no port printed: {self.stderr_lines}")

    def interrupt(self) -> tuple[int, bytes, str]:
        """Ctrl-C, as the README says: status, stdout, the rest of stderr."""
        self.proc.send_signal(signal.SIGINT)
        out, err = self.proc.communicate(timeout=scaled(20))
        return self.proc.returncode, out, "".join(self.stderr_lines) + err.decode()


@pytest.fixture
def background(shell_env: dict[str, str], tmp_path: Path) -> Iterator[list[Background]]:
    started: list[Background] = []
    yield started
    for bg in started:
        if bg.proc.poll() is None:
            bg.proc.kill()
            bg.proc.communicate()


def _run(command: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["bash", "-c", command], env=env, cwd=cwd, capture_output=True,
                          timeout=scaled(30))


@pytest.mark.slow
def test_walkthrough_runs_as_written(shell_env: dict[str, str], tmp_path: Path,
                                     background: list[Background]) -> None:
    assert next_steps_commands() == WALKTHROUGH

    # Put wstool on PATH: the activate line itself, then wstool found by name.
    activated = _run(f"{ACTIVATE} && command -v wstool && wstool --version",
                     {k: v for k, v in shell_env.items() if k != "PATH"} | {
                         "PATH": os.defpath}, tmp_path)
    assert activated.returncode == 0, activated.stderr
    assert activated.stdout.decode().splitlines()[0].endswith("/.venv/bin/wstool")
    assert activated.stdout.decode().splitlines()[1].startswith("wstool")

    # Terminal 1: serve-echo (8765 in the README).
    echo = Background(f"{SERVE_ECHO} --port 0", shell_env, tmp_path)
    background.append(echo)
    echo_port = str(echo.wait_for_port())

    # Terminal 2: the REPL, in a pseudo-terminal.
    repl = pexpect.spawn("bash", ["-c", REPL.replace("8765", echo_port)], env=shell_env,
                         cwd=str(tmp_path), timeout=scaled(20), dimensions=(24, 100))
    repl.expect("ws>")
    repl.sendline("hello from the REPL")
    repl.expect("< hello from the REPL")
    repl.sendeof()
    repl.expect(pexpect.EOF)
    repl.close()
    assert repl.exitstatus == 0

    # The pipe example.
    piped = _run(PIPE.replace("8765", echo_port), shell_env, tmp_path)
    assert piped.returncode == 0, piped.stderr
    assert piped.stdout == b"one\ntwo\n"

    # listen (9000 in the README) and a client sending it a line.
    listen = Background(LISTEN.replace("9000", "0"), shell_env, tmp_path)
    background.append(listen)
    listen_port = str(listen.wait_for_port())
    sent = _run(TO_LISTEN.replace("9000", listen_port), shell_env, tmp_path)
    assert sent.returncode == 0, sent.stderr
    status, listen_out, listen_err = listen.interrupt()
    assert listen_out == b"hello, listener\n", listen_err
    assert status == 0, listen_err

    # frame-dump --listen (9001 in the README) in front of serve-echo.
    relay = Background(RELAY.replace("9001", "0").replace("8765", echo_port),
                       shell_env, tmp_path)
    background.append(relay)
    relay_port = str(relay.wait_for_port())
    through = _run(THROUGH_RELAY.replace("9001", relay_port), shell_env, tmp_path)
    assert through.returncode == 0, through.stderr
    assert through.stdout == b"through the relay\n"
    _status, relay_out, relay_err = relay.interrupt()
    frames = [line for line in relay_out.decode().splitlines() if "through the relay" in line]
    assert len(frames) == 2, relay_out  # the client's frame and the echo
    assert "problem" not in relay_err

    # Ctrl-C stops serve-echo; it saw the REPL, the pipe and the relay's upstream.
    status, _out, echo_err = echo.interrupt()
    assert status == 0, echo_err
    assert "summary: 3 connections" in echo_err
