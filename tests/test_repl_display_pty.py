"""The REPL's display (issue 13) in a real pseudo-terminal (pexpect): compact colour
lines, /json, /show, /pager, /filter, /find, /pause and /resume, --timestamps;
against the websockets library's server on 127.0.0.1.

The status bar is not drawn here (prompt_toolkit draws it once the terminal answers
a cursor-position request, which PROMPT_TOOLKIT_NO_CPR turns off): its counts are
checked in tests/test_message_view.py through the pipe-input harness."""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path
from typing import Any

import pexpect
import pytest

from tests.conftest import ServerThread, scaled, start_websockets_server

pytestmark = pytest.mark.slow

# Terminal control sequences (CSI ... final byte), to read the screen's text.
_CSI_RE = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b[()][0-9A-B]|[\x08]")
SGR_KEY = "\x1b[1;34m"  # rich's json.key: bold blue
SGR_MATCH = "\x1b[1;30;43m"  # /find's match: bold black on yellow

# "big": a JSON object of 100 keys, pretty-printed to 102 lines (folded at 30 rows).
BIG = json.dumps({f"k{i:03d}": i for i in range(100)})


async def handler(ws: Any) -> None:
    """Echo; "big" answers BIG."""
    async for message in ws:
        await ws.send(BIG if message == "big" else message)


def plain(text: str) -> str:
    return _CSI_RE.sub("", text)


def spawn(url: str, home: Path, *args: str, color: bool = True,
          **environ: str) -> pexpect.spawn:
    env = {
        **os.environ,
        "HOME": str(home),
        "XDG_STATE_HOME": str(home / "state"),
        "PROMPT_TOOLKIT_NO_CPR": "1",
        "TERM": "xterm-256color",
        "COLUMNS": "100",
        "LINES": "30",
        **environ,
    }
    env.pop("NO_COLOR", None)
    if not color:
        env["NO_COLOR"] = "1"
    child = pexpect.spawn(
        sys.executable,
        ["-m", "wstool", "connect", url, "--ping-interval", "0", "--no-history", *args],
        env=env, dimensions=(30, 100), encoding="utf-8", timeout=scaled(10),
    )
    child.expect("connected to ")
    return child


def quit_repl(child: pexpect.spawn) -> None:
    child.sendcontrol("d")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


def line_of(child: pexpect.spawn, start: str) -> str:
    """Wait for a message line starting with START (plain text, e.g. '#2 <'); the raw
    text of that line (colour codes included) up to its end."""
    child.expect(re.escape(start) + r"[^\r\n]*\r\n")
    return str(child.after)


@pytest.fixture
def url(server_thread: ServerThread) -> str:
    return start_websockets_server(server_thread, handler)[1]


def test_compact_colour_lines_and_json_modes(url: str, tmp_path: Path) -> None:
    child = spawn(url, tmp_path)
    child.send('{"a": 1, "b": [true, null]}\r')
    # One line, JSON colours kept, numbered: '#2 < {...}' (the echo).
    child.expect(r"#2 \x1b\[0m\x1b\[1;36m< ")
    line = line_of(child, "")
    assert SGR_KEY + '"a"' in line
    assert plain(line) == '{"a": 1, "b": [true, null]}\r\n'
    # Wider than the 100 columns: pretty-printed, still coloured.
    wide = json.dumps({"long": "x" * 100, "n": 2})
    child.send(wide + "\r")
    child.expect(r"#4 \x1b\[0m\x1b\[1;36m< ")
    child.expect(r"\r\n +\x1b\[1;34m\"n\"")
    # /json pretty: a small message on several lines too.
    child.send("/json pretty\r")
    child.expect("JSON messages: pretty-printed")
    child.send('{"c": 3}\r')
    child.expect(r"#6 \x1b\[0m\x1b\[1;36m< \x1b\[0m\x1b\[1m\{\x1b\[0m\r\n       " +
                 re.escape(SGR_KEY) + '"c"')
    # /json off: as received, no colour inside the message.
    child.send("/json off\r")
    child.expect("JSON messages: as received")
    child.send('{"d": 4}\r')
    child.expect(r"#8 \x1b\[0m\x1b\[1;36m< \x1b\[0m")
    assert line_of(child, "") == '{"d": 4}\r\n'
    child.send("/json\r")
    child.expect(r"JSON messages: off \(/json compact\|pretty\|off\)")
    quit_repl(child)


def test_no_pretty_is_json_off(url: str, tmp_path: Path) -> None:
    child = spawn(url, tmp_path, "--no-pretty")
    child.send(json.dumps({"long": "x" * 100}) + "\r")
    child.expect(r"#2 \x1b\[0m\x1b\[1;36m< \x1b\[0m")
    assert plain(line_of(child, "")) == json.dumps({"long": "x" * 100}) + "\r\n"
    quit_repl(child)


def test_show_and_pager(url: str, tmp_path: Path) -> None:
    child = spawn(url, tmp_path, PAGER="cat")
    child.send("big\r")
    child.expect(r"folded \(/show 2 prints it whole\)")
    assert "k099" not in child.before
    child.send("/show\r")  # the last received: #2
    child.expect("#2 ")
    child.expect(r"\x1b\[1;36m99\x1b\[0m\r\n")  # the last value, coloured: whole
    assert "k050" in plain(child.before)
    child.send("/show 1\r")
    child.expect(r"#1 \x1b\[0m\x1b\[1;32m> \x1b\[0mbig\r\n")
    child.send("/show 7\r")
    child.expect(r"no message #7 \(#1-#2 are kept\)")
    # /pager: the same text through $PAGER (cat here), colours kept.
    child.send("/pager 2\r")
    child.expect(re.escape(SGR_KEY) + '"k099"')
    child.send("/pager x\r")
    child.expect(r"usage: /pager \[N\]")
    quit_repl(child)


def test_pager_missing(url: str, tmp_path: Path) -> None:
    child = spawn(url, tmp_path, PAGER=str(tmp_path / "no-such-pager") + " -R")
    child.send("hello\r")
    child.expect("#2 ")
    child.send("/pager\r")
    child.expect(r"cannot run \$PAGER '[^']*no-such-pager -R': No such file or directory "
                 r"\(set PAGER\)")
    child.send("still\r")  # the REPL carries on
    child.expect(r"< \x1b\[0mstill")
    quit_repl(child)


def test_filter_regex_and_json(url: str, tmp_path: Path) -> None:
    child = spawn(url, tmp_path, color=False)
    child.send("/filter ^keep\r")
    child.expect("filter '\\^keep': only matching incoming messages are shown")
    for text in ("keep 1", "drop 1", "keep 2"):
        child.send(text + "\r")
    child.expect("#6 < keep 2")
    screen = plain(child.before)
    assert "#2 < keep 1" in screen
    assert "#3 > drop 1" in screen  # what is sent always shows
    assert "< drop 1" not in screen
    child.send("/filter\r")
    child.expect("filter '\\^keep': 1 hidden so far")
    child.send('/filter json:.type == "a"\r')
    child.expect("filter 'json:.type == \"a\"'")
    child.send('{"type": "b"}\r')
    child.send('{"type": "a"}\r')
    child.expect('#10 < {"type": "a"}')
    assert '#8 < {"type": "b"}' not in plain(child.before)
    child.send("/filter json:.[\r")
    child.expect("! /filter 'json:.\\[': invalid jq expression")
    child.send("/filter off\r")
    child.expect(r"filter off \(1 hidden while it was on")
    child.send("back\r")
    child.expect("#12 < back")
    quit_repl(child)


def test_find_highlights_earlier_messages(url: str, tmp_path: Path) -> None:
    child = spawn(url, tmp_path)
    for text in ("apple pie", "banana", "Green APPLE"):
        child.send(text + "\r")
        child.expect("< " + re.escape("\x1b[0m") + text)
    child.send("/find apple\r")
    child.expect("4 of 6 kept messages contain 'apple'")
    found = child.before
    lines = [plain(ln) for ln in found.split("\r\n") if "#" in plain(ln)]
    assert [ln.split()[0] for ln in lines[-4:]] == ["#1", "#2", "#5", "#6"]
    assert SGR_MATCH + "apple" in found
    assert SGR_MATCH + "APPLE" in found
    child.send("/find kiwi\r")
    child.expect("no kept message contains 'kiwi'")
    quit_repl(child)


def test_pause_and_resume(url: str, tmp_path: Path) -> None:
    child = spawn(url, tmp_path, color=False)
    child.send("/pause\r")
    child.expect("display paused")
    child.send("one\r")
    child.expect("#1 > one")
    child.send("two\r")
    child.expect("#3 > two")
    child.send("/show\r")  # kept while paused, and /show prints it
    child.expect("#4 < two\r\n")
    assert "< one" not in plain(child.before)
    child.send("/resume\r")
    child.expect("#2 < one\r\n")
    child.expect("#4 < two\r\n")
    child.expect("display resumed: 2 messages arrived while paused")
    child.send("three\r")
    child.expect("#6 < three")
    child.send("/resume\r")
    child.expect("= not paused")
    quit_repl(child)


def test_timestamps_in_compact_and_pretty(url: str, tmp_path: Path) -> None:
    child = spawn(url, tmp_path, "--timestamps", color=False)
    child.send('{"a": 1}\r')
    child.expect(r"\d\d:\d\d:\d\d\.\d{3} #2 < \{\"a\": 1\}\r\n")
    child.send("/json pretty\r")
    child.expect("pretty-printed")
    child.send('{"a": 1}\r')
    # The continuation lines are indented past the timestamp and the number.
    child.expect(r"\d\d:\d\d:\d\d\.\d{3} #4 < \{\r\n {20}\"a\": 1\r\n {18}\}\r\n")
    quit_repl(child)


def test_listen_filter_with_json(tmp_path: Path) -> None:
    """listen's REPL numbers messages too, and its /filter takes json:EXPR (the CLI
    hands it connect's matcher)."""
    pytest.importorskip("jq", reason="json: patterns need the jq extra")
    import asyncio

    from websockets.asyncio.client import connect

    env = {**os.environ, "NO_COLOR": "1", "TERM": "xterm", "HOME": str(tmp_path),
           "PROMPT_TOOLKIT_NO_CPR": "1"}
    child = pexpect.spawn(sys.executable, ["-m", "wstool", "listen", "--port", "0",
                                           "--no-history", "--ping-interval", "0"],
                          env=env, encoding="utf-8", timeout=scaled(15), dimensions=(24, 100))
    try:
        child.expect(r"listening on (ws://127\.0\.0\.1:\d+/)")
        url = child.match.group(1)
        child.send('/filter json:.t == 2\r')
        child.expect("filter 'json:.t == 2'")

        async def client() -> None:
            async with connect(url) as ws:
                await ws.send('{"t": 1}')
                await ws.send('{"t": 2}')
                child.expect(r'\[1\] #2 < \{"t": 2\}')
                assert '{"t": 1}' not in plain(child.before)
                child.send("/show 1\r")
                child.expect(r'\[1\] #1 < \{\r\n')

        asyncio.run(asyncio.wait_for(client(), scaled(20)))
        child.sendcontrol("d")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert child.exitstatus == 0, child.before
