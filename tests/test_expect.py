"""connect --expect / --capture / --template against real servers on 127.0.0.1 (issue 11)."""

from __future__ import annotations

import json

import pytest

from tests import servers
from tests.conftest import ServerThread, run_wstool_inprocess, start_websockets_server
from wstool.errors import ExitStatus

AUTH = '{"op":"auth","user":"ann"}'
SUB = '{"op":"sub","token":"{{token}}","channel":"ticks"}'


@pytest.fixture
def auth_url(server_thread: ServerThread) -> str:
    return start_websockets_server(server_thread, servers.auth_then_subscribe)[1]


def test_auth_then_subscribe_in_command_line_order(auth_url: str) -> None:
    proc = run_wstool_inprocess(
        "connect", "--template", "-x", AUTH, "--capture", "token=json:.token",
        "-x", SUB, "--expect", 'json:.type == "subscribed" and .channel == "ticks"',
        "--expect", 'json:.type == "tick" and .n == 2', auth_url)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.decode().splitlines()
    assert json.loads(lines[0])["type"] == "authed"
    assert json.loads(lines[1]) == {"type": "subscribed", "channel": "ticks"}
    assert "captured token from message 1" in proc.stderr
    assert "closed by us: 1000" in proc.stderr


def test_the_subscription_needs_the_captured_token(auth_url: str) -> None:
    # Without --template the placeholder goes out as it is: the server refuses it,
    # so the expectation fails (exit 8), which shows the test can fail.
    proc = run_wstool_inprocess(
        "connect", "-x", AUTH, "--capture", "token=json:.token", "-x", SUB,
        "--expect", 'json:.type == "subscribed"', "--expect-timeout", "0.5", auth_url)
    assert proc.returncode == ExitStatus.EXPECTATION_NOT_MET, proc.stderr
    assert "bad token" in proc.stderr  # among the last messages shown


def test_regex_capture_takes_the_first_group(auth_url: str) -> None:
    proc = run_wstool_inprocess(
        "connect", "--template", "-x", AUTH, "--capture", r'token="token": "(tok-\w+)"',
        "-x", SUB, "--expect", "subscribed", "--json", auth_url)
    assert proc.returncode == 0, proc.stderr
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    sent = [e["text"] for e in events if e["event"] == "message" and e["direction"] == "sent"]
    token = json.loads(events[2]["text"])["token"]  # open, sent auth, received authed
    assert json.loads(sent[1])["token"] == token
    expects = [e for e in events if e["event"] == "expect"]
    assert [(e["ok"], e["index"], e.get("capture")) for e in expects] == [
        (True, 1, "token"), (True, 2, None)]
    assert all(e["elapsed_ms"] >= 0 and e["pattern"] for e in expects)


def test_server_that_never_answers_exits_8_after_the_timeout(server_thread: ServerThread) -> None:
    _s, url = start_websockets_server(server_thread, servers.never_answers)
    proc = run_wstool_inprocess("connect", "-x", "hi", "--expect", "pong",
                                "--expect-timeout", "0.3", url, timeout=20)
    assert proc.returncode == ExitStatus.EXPECTATION_NOT_MET, proc.stderr
    assert ("wstool: error: expectation not met: --expect 'pong' within --expect-timeout "
            "0.3s (0 messages received)") in proc.stderr
    assert "closed by us: 1000" in proc.stderr


def test_json_patterns_skip_messages_that_are_not_json(server_thread: ServerThread) -> None:
    _s, url = start_websockets_server(server_thread, servers.noise_then_json)
    proc = run_wstool_inprocess("connect", "-x", "go", "--expect", "json:.value == 42",
                                "--json", url)
    assert proc.returncode == 0, proc.stderr
    expect = next(json.loads(line) for line in proc.stdout.splitlines()
              if b'"expect"' in line)
    assert expect["index"] == 4 and expect["ok"] is True
    # A regex matches text only: the binary message is never searched.
    proc = run_wstool_inprocess("connect", "-x", "go", "--expect", "binary",
                                "--expect-timeout", "0.3", url)
    assert proc.returncode == ExitStatus.EXPECTATION_NOT_MET


def test_failure_shows_the_last_messages_escaped_and_bounded(
        server_thread: ServerThread) -> None:
    _s, url = start_websockets_server(server_thread, servers.lib_echo_like)
    long = "x" * 500
    proc = run_wstool_inprocess("connect", "-x", "a\x1b[31mred", "-x", long, "--expect", "nope",
                                "--expect-timeout", "0.3", url)
    assert proc.returncode == ExitStatus.EXPECTATION_NOT_MET
    lines = proc.stderr.splitlines()
    index = next(i for i, line in enumerate(lines) if line.startswith("wstool: error:"))
    assert lines[index].endswith("(2 messages received); the last 2:")
    assert lines[index + 1] == "  < a\\e[31mred"
    assert lines[index + 2].startswith("  < " + "x" * 200 + "... (500 characters)")


def test_close_mid_sequence_is_reported_and_exits_8(server_thread: ServerThread) -> None:
    _s, url = start_websockets_server(server_thread, servers.close_after_first)
    proc = run_wstool_inprocess("connect", "-x", "hi", "--expect", "first", "--expect", "second",
                                url)
    assert proc.returncode == ExitStatus.EXPECTATION_NOT_MET, proc.stderr
    assert ("expectation not met: --expect 'second': the connection closed first (closed by "
            "the server: 1000 (normal closure) 'bye'; 1 message received)") in proc.stderr


def test_stdin_lines_are_templates_and_wait_for_captures(auth_url: str) -> None:
    proc = run_wstool_inprocess(
        "connect", "--template", "-x", AUTH, "--capture", "token=json:.token",
        "--expect", "json:.n == 2", auth_url, input=SUB.encode() + b"\n")
    assert proc.returncode == 0, proc.stderr
    assert b'"subscribed"' in proc.stdout


def test_without_the_new_options_nothing_changes(auth_url: str) -> None:
    # -x with braces and no --template goes out verbatim (and the server says so).
    proc = run_wstool_inprocess("connect", "-x", SUB, "-n", "1", auth_url)
    assert proc.returncode == 0
    assert b"bad token" in proc.stdout


def test_json_pattern_without_jq_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "jq", None)  # import jq -> ImportError
    proc = run_wstool_inprocess("connect", "--expect", "json:.a", "ws://127.0.0.1:1/")
    assert proc.returncode == ExitStatus.USAGE
    assert "pip install 'wstool[jq]'" in proc.stderr
