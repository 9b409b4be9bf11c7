"""Exit statuses and one-line errors of `serve-echo` and `listen` (issue 4)."""

from __future__ import annotations

import socket

import pytest

from tests.conftest import Proc, run_wstool_inprocess
from wstool.errors import ExitStatus


def assert_one_line_error(proc: Proc, status: ExitStatus, fragment: str) -> None:
    assert proc.returncode == status, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("wstool: error:")]
    assert len(errors) == 1, proc.stderr
    assert fragment in errors[0], proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--key", "k.pem"], "--key needs --cert"),
        (["--self-signed", "--cert", "c.pem"], "--cert/--key or --self-signed"),
        (["--close-code", "1005"], "invalid --close-code 1005"),
        (["--close-reason", "x" * 124], "at most 123 bytes"),
        (["--open-timeout", "-1"], "invalid --open-timeout"),
        (["--max-size", "-5"], "invalid --max-size -5"),
        (["--auth", "nocolon"], "invalid --auth"),
    ],
)
def test_serve_echo_usage_errors(args: list[str], fragment: str) -> None:
    proc = run_wstool_inprocess("serve-echo", "--port", "0", *args)
    assert_one_line_error(proc, ExitStatus.USAGE, fragment)


def test_click_usage_error_is_status_2() -> None:
    proc = run_wstool_inprocess("serve-echo", "--port", "70000")
    assert proc.returncode == ExitStatus.USAGE


def test_port_in_use_is_one_line_status_1() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        proc = run_wstool_inprocess("serve-echo", "--port", str(port))
    assert_one_line_error(proc, ExitStatus.ERROR, f"cannot listen on 127.0.0.1:{port}")
    assert "--port" in proc.stderr


def test_missing_certificate_is_one_line_status_1(tmp_path: object) -> None:
    proc = run_wstool_inprocess("serve-echo", "--port", "0", "--cert", "/nonexistent/cert.pem")
    assert_one_line_error(proc, ExitStatus.ERROR, "cannot read --cert/--key /nonexistent/cert.pem")


def test_debug_shows_a_traceback() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        proc = run_wstool_inprocess("serve-echo", "--port", str(port), "--debug")
    assert proc.returncode == ExitStatus.ERROR
    assert "Traceback" in proc.stderr


@pytest.mark.parametrize("command", ["serve-echo", "listen"])
def test_help_shows_the_servers_exit_statuses_not_the_clients(command: str) -> None:
    """Issue 10: serve-echo/listen --help listed connect's table (3 could not connect...)."""
    proc = run_wstool_inprocess(command, "--help")
    assert proc.returncode == 0
    text = " ".join(proc.stdout.decode().split())
    assert "Exit status: 0 stopped by SIGINT/SIGTERM" in text
    assert "handshake rejected" not in text and "could not connect" not in text


@pytest.mark.parametrize(("command", "fragments"), [
    # Issue 16: the bridges' own statuses, said where a user looks for them.
    ("listen", ["(--once --exec) the process exited with another status than 0",
                "an --exec CMD that cannot be found",
                "a --static DIR that is not a directory",
                "a bad --to-tcp HOST:PORT"]),
    ("serve-echo", ["a --static DIR that is not a directory"]),
    ("connect", ["--exec: 1 also when the process exited with another status than 0",
                 "2 for a CMD that cannot be found",
                 "--from-tcp (a listener): 0 after SIGINT/SIGTERM, 1 cannot listen"]),
])
def test_help_says_the_bridges_exit_statuses(command: str, fragments: list[str]) -> None:
    proc = run_wstool_inprocess(command, "--help")
    assert proc.returncode == 0
    text = " ".join(proc.stdout.decode().split())
    for fragment in fragments:
        assert fragment in text, (fragment, text[text.find("Exit status"):])
