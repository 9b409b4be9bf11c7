"""`connect --record` and `wstool replay` (issue 11), against real servers on loopback.

The pure parts (--ignore paths, the comparison, reading recordings) are tested on
values; the commands in-process against the websockets library's server in a
background loop (tests/conftest.py ServerThread), whose behaviour each test can
change between the recording and the replay.
"""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection

from tests.conftest import ServerThread, run_wstool_inprocess, start_websockets_server
from wstool.client.recording import load_recording
from wstool.client.replay import ReplayConfig, compare, delete_path, parse_ignore
from wstool.errors import ExitStatus, UsageError, WstoolError

DATA = Path(__file__).parent / "data"


# --ignore paths


@pytest.mark.parametrize(("text", "path"), [
    ("json:.ts", ("ts",)),
    ("json:.a.b", ("a", "b")),
    ("json:.items[].id", ("items", None, "id")),
    ("json:.items[0]", ("items", 0)),
    ("json:.[1]", (1,)),
    ('json:."odd key".x', ("odd key", "x")),
    ('json:.a["b c"]', ("a", "b c")),
    ("json:.snake_case-and-dash", ("snake_case-and-dash",)),
])
def test_parse_ignore(text: str, path: tuple[Any, ...]) -> None:
    assert parse_ignore(text) == path


@pytest.mark.parametrize("text", [".ts", "jq:.ts", "json:ts", "json:.", "json:.a[",
                                  'json:."a', "json:.a[x]", "json:.a b"])
def test_parse_ignore_refuses(text: str) -> None:
    with pytest.raises(UsageError, match="invalid --ignore"):
        parse_ignore(text)


def test_delete_path_as_jq_del() -> None:
    value = {"ts": 1, "a": {"b": 2, "c": 3}, "items": [{"id": 1, "v": "x"}, {"id": 2}],
             "list": [0, 1, 2]}
    for text in ("json:.ts", "json:.a.b", "json:.items[].id", "json:.list[-1]",
                 "json:.missing.deep", "json:.a.c.not_an_object", "json:.list[9]"):
        delete_path(value, parse_ignore(text))
    assert value == {"a": {"c": 3}, "items": [{"v": "x"}, {}], "list": [0, 1]}


# The comparison


def test_compare_exact_by_default() -> None:
    assert compare(["a", b"\x00"], ["a", b"\x00"], ReplayConfig()).matched
    # A JSON message with other spacing is another message without --ignore.
    assert not compare(['{"a": 1}'], ['{"a":1}'], ReplayConfig()).matched
    # Text and binary with the same bytes differ.
    assert not compare(["a"], [b"a"], ReplayConfig()).matched


def test_compare_with_ignore_compares_json_values() -> None:
    cfg = ReplayConfig(ignore=(parse_ignore("json:.ts"),))
    assert compare(['{"a": 1, "ts": 5}', "not json"], ['{"ts": 9,"a":1}', "not json"],
                   cfg).matched
    verdict = compare(['{"a": 1, "ts": 5}'], ['{"a": 2, "ts": 5}'], cfg)
    assert not verdict.matched
    assert '- {"a":1}' in verdict.lines and '+ {"a":2}' in verdict.lines


def test_diff_shows_the_divergence_with_context_escaped_and_bounded() -> None:
    expected = [f"m{i}" for i in range(10)]
    received = [*expected[:5], "evil\x1b[2J", *expected[6:]]
    verdict = compare(expected, received, ReplayConfig())
    assert not verdict.matched and (verdict.expected, verdict.received) == (10, 10)
    assert verdict.lines == ("@@ recorded #5-7, received #5-7 @@", "  m4", "- m5",
                             "+ evil\\e[2J", "  m6")
    long = compare(["x" * 5000], ["y" * 5000], ReplayConfig())
    assert all(len(line) < 300 for line in long.lines)
    assert "(5000 chars)" in long.lines[1]


def test_diff_of_missing_and_extra_messages() -> None:
    verdict = compare(["a", "b", "c"], ["a"], ReplayConfig())
    assert verdict.lines == ("@@ recorded #1-3, received #1-1 @@", "  a", "- b", "- c")
    many = compare([str(i) for i in range(100)], [], ReplayConfig())
    assert len(many.lines) == 21 and many.lines[-1].endswith("more lines")


def test_compare_unordered() -> None:
    cfg = ReplayConfig(unordered=True)
    assert compare(["a", "b", "b"], ["b", "a", "b"], cfg).matched
    verdict = compare(["a", "b", "b"], ["b", "c"], cfg)
    assert set(verdict.lines) == {"- a", "- b", "+ c"}


# Reading recordings


def write_events(path: Path, events: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    return path


def msg(direction: str, data: str | bytes, mono: float) -> dict[str, Any]:
    if isinstance(data, bytes):
        return {"event": "message", "direction": direction, "type": "binary",
                "size": len(data), "base64": base64.b64encode(data).decode(), "mono": mono}
    return {"event": "message", "direction": direction, "type": "text",
            "size": len(data.encode()), "text": data, "mono": mono}


def test_event_log_first_connection_only(tmp_path: Path) -> None:
    log = write_events(tmp_path / "r.jsonl", [
        {"event": "open", "url": "ws://127.0.0.1:9/x", "subprotocol": "chat", "mono": 100.0},
        msg("sent", "a", 100.5), msg("received", b"\x01\x02", 101.0),
        {"event": "close", "code": 4000, "reason": "", "initiated_by": "server",
         "mono": 102.0},
        {"event": "open", "url": "ws://127.0.0.1:9/x", "subprotocol": "chat", "mono": 110.0},
        msg("sent", "later", 111.0),
    ])
    recording, notices = load_recording(str(log))
    assert recording.url == "ws://127.0.0.1:9/x" and recording.subprotocol == "chat"
    assert [(s.direction, s.data, s.at_s) for s in recording.steps] == [
        ("sent", "a", 0.5), ("received", b"\x01\x02", 1.0)]
    assert (recording.close_code, recording.close_initiated_by) == (4000, "server")
    assert notices == [f"{log} has 2 connections (reconnects); replaying the first"]


@pytest.mark.parametrize(("content", "fragment"), [
    ("", "no messages recorded"),
    ("hello\n", "line 1: not JSON"),
    ('{"event": "open", "url": "ws://h/"}\n[1]\n', "line 2: not a wstool event"),
    ('{"event": "message", "direction": "sent", "mono": 1}\n', "without text or base64"),
    ('{"log": {"entries": [{"request": {"url": "https://h/"}}]}}', "no WebSocket"),
    ('{"log": {}}', "not a HAR file"),
])
def test_bad_recordings(tmp_path: Path, content: str, fragment: str) -> None:
    path = tmp_path / "bad"
    path.write_text(content)
    with pytest.raises(WstoolError, match=fragment):
        load_recording(str(path))


def test_har_with_two_sockets() -> None:
    # Hand-built (HAR 1.2 + Chrome's _webSocketMessages); the Chromium-made one is
    # tests/test_replay_browser.py's.
    har = str(DATA / "two-sockets.har")
    first, notices = load_recording(har)
    assert first.kind == "har" and first.url == "ws://127.0.0.1:9/first"
    assert "using the first" in notices[0]
    assert [(s.direction, s.data) for s in first.steps] == [
        ("sent", "hello"), ("received", "hello"), ("sent", b"\x00\xffbin"),
        ("received", b"\x00\xffbin")]
    assert first.steps[2].at_s == pytest.approx(0.25)
    second, notices = load_recording(har, socket_number=2)
    assert second.url == "ws://127.0.0.1:9/second?room=1" and notices == []
    by_path, notices = load_recording(har, url="ws://127.0.0.1:4242/second?room=1")
    assert by_path.url == second.url and "socket 2 of 2 matches" in notices[0]
    with pytest.raises(UsageError, match=r"--socket 3: .* has 2 WebSockets"):
        load_recording(har, socket_number=3)


# The commands, against real servers


class Service:
    """A server that greets, then answers each text message with a JSON reply
    carrying a time stamp (which changes run to run, as real ones do)."""

    def __init__(self) -> None:
        self.changed = False  # answers differ (the regression a replay finds)
        self.swap_pairs = False  # answers "pair" with y then x (an interleaving server)
        self.arrivals: list[float] = []

    async def handler(self, ws: ServerConnection) -> None:
        await ws.send(json.dumps({"type": "welcome", "ts": time.time()}))
        async for message in ws:
            self.arrivals.append(time.monotonic())
            if isinstance(message, bytes):
                await ws.send(message)
            elif message == "pair":
                for part in ("y", "x") if self.swap_pairs else ("x", "y"):
                    await ws.send(part)
            else:
                echo = message.upper() if self.changed else message
                await ws.send(json.dumps({"type": "reply", "echo": echo, "ts": time.time()}))


@pytest.fixture
def service(server_thread: ServerThread) -> tuple[Service, str]:
    svc = Service()
    _server, url = start_websockets_server(server_thread, svc.handler)
    return svc, url


def record(tmp_path: Path, url: str, lines: bytes, replies: int) -> Path:
    path = tmp_path / "session.jsonl"
    proc = run_wstool_inprocess("connect", "--record", str(path), "-n", str(replies), url,
                                input=lines)
    assert proc.returncode == 0, proc.stderr
    return path


def test_record_keeps_stdout_and_writes_the_json_schema(
    service: tuple[Service, str], tmp_path: Path
) -> None:
    _svc, url = service
    path = tmp_path / "r.jsonl"
    proc = run_wstool_inprocess("connect", "--record", str(path), "-n", "2", url,
                                input=b"hi\n")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.decode().splitlines()  # stdout as without --record
    assert [json.loads(line)["type"] for line in lines] == ["welcome", "reply"]
    events = [json.loads(line) for line in path.read_text().splitlines()]
    kinds = [e["event"] if e["event"] != "message" else e["direction"] for e in events]
    # The greeting may come in the handshake's chunk, and then shows before "open"
    # (as with --json: the session's order, reported in issue 11's notes).
    assert sorted(kinds) == ["close", "open", "received", "received", "sent"]
    assert kinds.index("open") < kinds.index("sent") < kinds.index("close")
    assert all({"ts", "mono"} <= e.keys() for e in events)
    sent = [e for e in events if e["event"] == "message" and e["direction"] == "sent"]
    assert sent == [{**sent[0], "type": "text", "size": 2, "text": "hi"}]
    received = [e["text"] for e in events if e.get("direction") == "received"]
    assert received == lines


def test_record_to_an_unwritable_file(tmp_path: Path) -> None:
    proc = run_wstool_inprocess("connect", "--record", str(tmp_path / "no" / "f"),
                                "ws://127.0.0.1:9/")
    assert proc.returncode == ExitStatus.ERROR
    assert "cannot write --record" in proc.stderr


def test_replay_matches_the_same_server_and_fails_on_a_changed_one(
    service: tuple[Service, str], tmp_path: Path
) -> None:
    svc, url = service
    path = record(tmp_path, url, b"one\ntwo\n", replies=3)
    ok = run_wstool_inprocess("replay", "--ignore", "json:.ts", str(path))
    assert ok.returncode == 0, ok.stderr
    assert "replay matched: 2 sent, 3 received as recorded" in ok.stderr
    assert ok.stdout == b""
    # Exact by default: the time stamps differ from the recording's.
    exact = run_wstool_inprocess("replay", str(path), url)
    assert exact.returncode == ExitStatus.EXPECTATION_NOT_MET, exact.stderr
    assert "received messages differ" in exact.stderr
    svc.changed = True
    changed = run_wstool_inprocess("replay", "--ignore", "json:.ts", "--speed", "max",
                                   str(path))
    assert changed.returncode == ExitStatus.EXPECTATION_NOT_MET, changed.stderr
    diff = changed.stdout.decode().splitlines()
    assert '- {"echo":"one","type":"reply"}' in diff
    assert '+ {"echo":"ONE","type":"reply"}' in diff
    assert '  {"type":"welcome"}' in diff
    errors = [line for line in changed.stderr.splitlines() if "error" in line]
    assert errors == [f"wstool: error: replay of {path}: received messages differ from "
                      "the recording (3 received, 3 recorded; ignoring json:.ts)"]


def test_replay_unordered(service: tuple[Service, str], tmp_path: Path) -> None:
    svc, url = service
    path = record(tmp_path, url, b"pair\n", replies=3)
    svc.swap_pairs = True
    ordered = run_wstool_inprocess("replay", "--ignore", "json:.ts", str(path))
    assert ordered.returncode == ExitStatus.EXPECTATION_NOT_MET, ordered.stderr
    unordered = run_wstool_inprocess("replay", "--ignore", "json:.ts", "--unordered",
                                     str(path))
    assert unordered.returncode == 0, unordered.stdout


def test_replay_waits_only_so_long_for_missing_replies(
    server_thread: ServerThread, tmp_path: Path
) -> None:
    async def silent(ws: ServerConnection) -> None:
        async for _message in ws:
            pass

    _server, url = start_websockets_server(server_thread, silent)
    log = write_events(tmp_path / "r.jsonl", [
        {"event": "open", "url": url, "subprotocol": None, "mono": 0.0},
        msg("sent", "q", 0.0), msg("received", "answer", 0.1)])
    proc = run_wstool_inprocess("replay", "-w", "0.2", str(log), timeout=20)
    assert proc.returncode == ExitStatus.EXPECTATION_NOT_MET
    assert proc.stdout.decode().splitlines()[-1] == "- answer"


def test_replay_keeps_the_recorded_spacing(
    service: tuple[Service, str], tmp_path: Path
) -> None:
    svc, url = service
    welcome_reply = json.dumps({"type": "welcome"})
    events = [{"event": "open", "url": url, "subprotocol": None, "mono": 10.0},
              msg("received", welcome_reply, 10.0),
              msg("sent", "a", 10.0), msg("received", "ra", 10.01),
              msg("sent", "b", 10.6), msg("received", "rb", 10.61)]
    log = write_events(tmp_path / "r.jsonl", events)
    # Lower bounds only (no speed assertion): the spacing is kept, or halved.
    for speed, least_gap_s in (("1", 0.6), ("2", 0.3)):
        svc.arrivals.clear()
        proc = run_wstool_inprocess("replay", "--speed", speed, str(log))
        assert proc.returncode == ExitStatus.EXPECTATION_NOT_MET  # replies differ: fine
        assert len(svc.arrivals) == 2
        assert svc.arrivals[1] - svc.arrivals[0] >= least_gap_s * 0.95
    svc.arrivals.clear()
    fast = run_wstool_inprocess("replay", "--speed", "max", "--ignore", "json:.ts",
                                str(log))
    assert len(svc.arrivals) == 2 and fast.returncode == ExitStatus.EXPECTATION_NOT_MET


def test_replay_binary_and_the_url_argument(
    service: tuple[Service, str], tmp_path: Path
) -> None:
    _svc, url = service
    log = write_events(tmp_path / "r.jsonl", [
        {"event": "open", "url": "ws://127.0.0.1:9/elsewhere", "subprotocol": None,
         "mono": 0.0},
        msg("received", '{"type": "welcome"}', 0.0),
        msg("sent", b"\x00\x01\xfe", 0.0), msg("received", b"\x00\x01\xfe", 0.0)])
    proc = run_wstool_inprocess("replay", "--ignore", "json:.ts", str(log), url)
    assert proc.returncode == 0, proc.stdout + proc.stderr.encode()


def test_replay_server_close_as_recorded(server_thread: ServerThread, tmp_path: Path) -> None:
    async def answer_then_close(ws: ServerConnection) -> None:
        await ws.recv()
        await ws.send("bye")
        await ws.close(4000, "done")

    _server, url = start_websockets_server(server_thread, answer_then_close)
    path = tmp_path / "r.jsonl"
    # -w -1: wait for the server's close (else our close after the reply races it).
    rec = run_wstool_inprocess("connect", "--record", str(path), "-w", "-1", url,
                               input=b"hi\n")
    assert rec.returncode == ExitStatus.CLOSED_ABNORMALLY
    # The recording ends with the server's 4000: the replay waits for that close, and
    # the same close is a match, not an error.
    assert run_wstool_inprocess("replay", str(path)).returncode == 0


def test_replay_expects_the_recorded_server_close(
    server_thread: ServerThread, tmp_path: Path
) -> None:
    async def answer(ws: ServerConnection) -> None:
        async for _message in ws:
            await ws.send("bye")

    _server, url = start_websockets_server(server_thread, answer)
    log = write_events(tmp_path / "r.jsonl", [
        {"event": "open", "url": url, "subprotocol": None, "mono": 0.0},
        msg("sent", "hi", 0.0), msg("received", "bye", 0.0),
        {"event": "close", "code": 4000, "reason": "done", "initiated_by": "server",
         "mono": 0.1}])
    proc = run_wstool_inprocess("replay", "-w", "0.3", str(log))
    assert proc.returncode == ExitStatus.EXPECTATION_NOT_MET, proc.stderr
    assert proc.stdout.decode().splitlines()[-2:] == [
        "- closed by the server: 4000", "+ no close from the server"]


@pytest.mark.parametrize(("args", "fragment"), [
    (["--speed", "0"], "invalid --speed '0'"),
    (["--speed", "fast"], "invalid --speed 'fast'"),
    (["--ignore", ".ts"], "invalid --ignore '.ts'"),
    (["--socket", "1"], "--socket is for HAR files"),
])
def test_replay_usage_errors(tmp_path: Path, args: list[str], fragment: str) -> None:
    log = write_events(tmp_path / "r.jsonl", [msg("sent", "a", 0.0)])
    proc = run_wstool_inprocess("replay", *args, str(log), "ws://127.0.0.1:9/")
    assert proc.returncode == ExitStatus.USAGE
    assert fragment in proc.stderr


def test_replay_without_a_url_anywhere(tmp_path: Path) -> None:
    log = write_events(tmp_path / "r.jsonl", [msg("sent", "a", 0.0)])
    proc = run_wstool_inprocess("replay", str(log))
    assert proc.returncode == ExitStatus.USAGE and "records no URL" in proc.stderr


def test_replay_of_a_missing_file() -> None:
    proc = run_wstool_inprocess("replay", "/nonexistent/r.jsonl")
    assert proc.returncode == ExitStatus.ERROR and "no such file" in proc.stderr


def test_replay_of_a_har_saved_from_chromium(lib_echo_url: str) -> None:
    # tests/data/chromium-echo.har: made by tests/test_replay_browser.py's session
    # (headless Chromium against serve-echo; the port then replaced by 9), kept so
    # that a real browser's HAR is replayed where Chromium is not installed.
    proc = run_wstool_inprocess("replay", str(DATA / "chromium-echo.har"), lib_echo_url)
    assert proc.returncode == 0, proc.stdout + proc.stderr.encode()
    assert "replay matched: 3 sent, 3 received as recorded" in proc.stderr


def test_a_killed_recording_keeps_what_it_saw(lib_echo_url: str, tmp_path: Path) -> None:
    """Flushed per received chunk: SIGKILL (no clean-up at all) loses nothing received."""
    import os
    import signal
    import subprocess
    import sys

    from tests.conftest import scaled

    path = tmp_path / "r.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-m", "wstool", "connect", "--record", str(path), lib_echo_url],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        env={**os.environ, "NO_COLOR": "1"})
    try:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(b"kept\n")
        proc.stdin.flush()
        assert proc.stdout.readline() == b"kept\n"  # received (and flushed) by now
        deadline = time.monotonic() + scaled(5)
        while '"received"' not in path.read_text() and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    events = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(e.get("direction"), e.get("text")) for e in events if e["event"] == "message"
            ] == [("sent", "kept"), ("received", "kept")]


def test_replay_json_events_and_verdict(lib_echo_url: str, tmp_path: Path) -> None:
    log = write_events(tmp_path / "r.jsonl", [
        {"event": "open", "url": lib_echo_url, "subprotocol": None, "mono": 0.0},
        msg("sent", "a", 0.0), msg("received", "b", 0.0)])
    proc = run_wstool_inprocess("replay", "--json", str(log))
    assert proc.returncode == ExitStatus.EXPECTATION_NOT_MET
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    assert events[-1] == {"event": "replay", "matched": False, "sent": 1, "recorded": 1,
                          "received": 1, "diff": ["@@ recorded #1-1, received #1-1 @@",
                                                  "- b", "+ a"]}
    # The events before it are a recording too: replaying them matches.
    again = tmp_path / "again.jsonl"
    again.write_bytes(proc.stdout)
    assert run_wstool_inprocess("replay", str(again)).returncode == 0
