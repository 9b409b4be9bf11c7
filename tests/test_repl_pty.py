"""The REPL in a real pseudo-terminal (pexpect), against the websockets library's
server on 127.0.0.1; and pipe mode, which must not load prompt_toolkit or rich."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pexpect
import pytest

from tests.conftest import ServerThread, run_wstool, scaled, start_websockets_server

pytestmark = pytest.mark.slow

# Terminal control sequences (CSI ... final byte), to read the screen's text.
_CSI_RE = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b[()][0-9A-B]|[\x08]")


@dataclass
class Record:
    received: list[Any] = field(default_factory=list)
    closes: list[tuple[int, str]] = field(default_factory=list)
    ticks: int = 0


def recording_handler(record: Record, push_every_s: float | None = None) -> Any:
    """Echo and record; optionally push "tick N" every push_every_s seconds."""

    async def handler(ws: Any) -> None:
        async def pusher() -> None:
            n = 0
            while True:
                await asyncio.sleep(push_every_s or 1)
                n += 1
                await ws.send(f"tick {n}")
                record.ticks = n

        task = asyncio.ensure_future(pusher()) if push_every_s else None
        try:
            async for message in ws:
                record.received.append(message)
                await ws.send(message)
        finally:
            if task is not None:
                task.cancel()
            rcvd = ws.protocol.close_rcvd
            if rcvd is not None:
                record.closes.append((rcvd.code, rcvd.reason))

    return handler


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path


def spawn_repl(url: str, home: Path, *args: str) -> pexpect.spawn:
    env = {
        **os.environ,
        "HOME": str(home),
        "XDG_STATE_HOME": str(home / "state"),
        "PROMPT_TOOLKIT_NO_CPR": "1",  # no cursor-position requests to answer
        "TERM": "xterm",
        "NO_COLOR": "1",
        "COLUMNS": "100",
        "LINES": "30",
    }
    child = pexpect.spawn(
        sys.executable,
        ["-m", "wstool", "connect", url, "--ping-interval", "0", *args],
        env=env,
        dimensions=(30, 100),
        encoding="utf-8",
        timeout=scaled(10),
        # Without a window pexpect searches all it has read since the last match on
        # every read: under the flood tests' MBs that is quadratic, and pexpect, not
        # the REPL, was what fell behind (a Ctrl-C's hint seconds late, and later).
        searchwindowsize=10_000,
    )
    child.expect("connected to ")
    return child


def wait_exit(child: pexpect.spawn) -> int:
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus is not None
    return int(child.exitstatus)


def test_echo_ping_close_and_history(server_thread: ServerThread, home: Path) -> None:
    record = Record()
    _server, url = start_websockets_server(server_thread, recording_handler(record))
    child = spawn_repl(url, home)
    child.send("hello\r")
    child.expect("< hello")
    child.send("/ping\r")
    child.expect(r"< pong in [0-9.]+ ms")
    child.send("/nope\r")
    child.expect(r"! unknown command /nope")
    child.send("/close 4000 bye\r")
    child.expect("closed by us: 4000 \\(private use\\) 'bye'")
    assert wait_exit(child) == 0
    assert record.received == ["hello"]
    deadline = time.monotonic() + scaled(5)
    while not record.closes and time.monotonic() < deadline:
        time.sleep(0.01)
    assert record.closes == [(4000, "bye")]
    history = (home / "state" / "wstool" / "history").read_text()
    assert "\n+hello\n" in history
    assert "\n+/close 4000 bye\n" in history


def test_typing_survives_incoming_messages(server_thread: ServerThread, home: Path) -> None:
    record = Record()
    _server, url = start_websockets_server(server_thread, recording_handler(record, 0.1))
    child = spawn_repl(url, home, "--no-history")
    child.expect("< tick 1")
    word = "interleaved"
    for char in word:
        # A person types; pushes arrive between the keys (one every 100 ms).
        child.send(char)
        time.sleep(scaled(0.04))
    sent_while_typing = record.ticks
    # The next push redraws the input line below it: the word must be intact.
    child.expect(f"< tick {sent_while_typing + 1}\r\n")
    # Pushes were printed above the line while the word was half typed...
    assert len(re.findall(r"< tick \d+", child.before)) >= 2
    child.expect(word)
    assert "ws> " + word in _CSI_RE.sub("", child.before + child.after)
    child.send("\r")
    child.expect(f"< {word}\r\n")
    # ...and the word went out whole.
    assert record.received == [word]
    child.sendcontrol("d")
    assert wait_exit(child) == 0
    assert not (home / "state" / "wstool" / "history").exists()


def test_multiline_paste_and_ctrl_c_in_a_terminal(
    server_thread: ServerThread, home: Path
) -> None:
    record = Record()
    _server, url = start_websockets_server(server_thread, recording_handler(record))
    child = spawn_repl(url, home, "--no-pretty")
    child.send("zzz")
    child.sendcontrol("c")  # clears the line; nothing is sent
    child.send("first")
    child.send("\x1b\r")  # Alt-Enter: a newline, not send
    child.send("second\r")
    child.expect("#2 < first\r\n     second")  # continued under the text
    child.send("\x1b[200~{\r\n  \"k\": 1\r\n}\x1b[201~")  # a bracketed paste
    child.send("\r")
    child.expect('#4 < {\r\n       "k": 1\r\n     }')
    child.sendcontrol("d")
    assert wait_exit(child) == 0
    assert record.received == ["first\nsecond", '{\n  "k": 1\n}']


def test_sigterm_closes_with_1001_and_exits_143_while_ctrl_c_still_clears_the_line(
    server_thread: ServerThread, home: Path
) -> None:
    import signal

    record = Record()
    _server, url = start_websockets_server(server_thread, recording_handler(record))
    child = spawn_repl(url, home, "--no-history")
    child.send("zzz")
    child.sendcontrol("c")  # a key in the terminal, not a signal: clears the line
    child.send("hello\r")
    child.expect("< hello")
    child.kill(signal.SIGTERM)  # as `timeout`, systemd or `docker stop` would
    child.expect("terminated \\(SIGTERM\\): closing with 1001")
    child.expect("closed by us: 1001 \\(going away\\)")
    assert wait_exit(child) == 143  # ExitStatus.TERMINATED
    assert record.received == ["hello"]  # not "zzzhello"
    deadline = time.monotonic() + scaled(5)
    while not record.closes and time.monotonic() < deadline:
        time.sleep(0.01)
    assert record.closes == [(1001, "")]


def flood_handler(record: Record) -> Any:
    """Push 20 KB messages back to back until the client goes, counting them."""

    async def handler(ws: Any) -> None:
        with contextlib.suppress(Exception):
            while True:
                await ws.send(f"tick {record.ticks + 1} " + "x" * 20_000)
                record.ticks += 1
                await asyncio.sleep(0.002)

    return handler


def test_ctrl_c_and_ctrl_d_are_keys_while_messages_are_printed(
    server_thread: ServerThread, home: Path
) -> None:
    """The terminal stays in raw mode while a message is written above the prompt:
    in cooked mode (prompt_toolkit's run_in_terminal) Ctrl-C typed then was a SIGINT
    that killed the REPL (exit 130) and Ctrl-D was the line discipline's end-of-file,
    lost (the REPL did not quit)."""
    record = Record()
    _server, url = start_websockets_server(server_thread, flood_handler(record))
    child = spawn_repl(url, home, "--no-history")

    def while_printing() -> None:
        # Read nothing until 100 more messages (~280 KB shown) are sent: the pty fills
        # and the REPL is blocked writing one when the key comes.
        child.expect(r"< tick \d+ x")
        target = record.ticks + 100
        deadline = time.monotonic() + scaled(10)
        while record.ticks < target and time.monotonic() < deadline:
            time.sleep(0.01)

    for _ in range(3):
        while_printing()
        child.sendcontrol("c")
        child.expect("Ctrl-D or /quit to close and exit")  # Ctrl-C on an empty line
    while_printing()
    child.sendcontrol("d")
    assert wait_exit(child) == 0


def test_server_close_exits_with_documented_status(
    server_thread: ServerThread, home: Path
) -> None:
    async def close_4001(ws: Any) -> None:
        await ws.recv()
        await ws.close(4001, "custom reason")

    _server, url = start_websockets_server(server_thread, close_4001)
    child = spawn_repl(url, home)
    child.send("bye\r")
    child.expect("closed by the server: 4001 \\(private use\\) 'custom reason'")
    assert wait_exit(child) == 5  # ExitStatus.CLOSED_ABNORMALLY
    assert "wstool: error" not in child.before  # issue 13: said once


_REPORT_MODULES = """
import sys
if sys.argv[1] == "control":
    import importlib.metadata, urllib.request  # noqa: E401  (proves the check sees them)
    import wstool.client.repl  # noqa: F401
from wstool.cli.app import cli  # not main(): it leaves with os._exit
try:
    cli(["connect", sys.argv[2]], prog_name="wstool")
except SystemExit as exc:
    status = exc.code
watched = {"prompt_toolkit", "rich", "importlib.metadata", "urllib.request"}
loaded = sorted(m for m in sys.modules if m in watched or m.split(".")[0] in watched)
loaded = sorted({m if m in watched else m.split(".")[0] for m in loaded})
print(f"STATUS={status} LOADED={','.join(loaded) or '-'}", file=sys.stderr)
"""


@pytest.fixture
def lib_echo(server_thread: ServerThread) -> Iterator[str]:
    async def echo(ws: Any) -> None:
        async for message in ws:
            await ws.send(message)

    _server, url = start_websockets_server(server_thread, echo)
    yield url


@pytest.mark.parametrize(
    ("mode", "expected"),
    [("pipe", "LOADED=-"),
     ("control", "LOADED=importlib.metadata,prompt_toolkit,rich,urllib.request")])
def test_pipe_mode_loads_only_what_it_uses(lib_echo: str, mode: str, expected: str) -> None:
    """Start-up (issue 2): a pipe run loads neither the terminal libraries nor the two
    modules websockets imports and a direct connection never uses (wstool/lazyimport.py)."""
    env = {name: value for name, value in os.environ.items()
           if not name.lower().endswith("_proxy")}
    result = subprocess.run(
        [sys.executable, "-c", _REPORT_MODULES, mode, lib_echo],
        input=b"one\ntwo\n",
        capture_output=True,
        timeout=scaled(30),
        env={**env, "NO_COLOR": "1"},
    )
    assert result.stdout == b"one\ntwo\n"
    assert f"STATUS=0 {expected}" in result.stderr.decode()


def test_pipe_input_to_a_terminal_escapes_remote_text(lib_echo: str, tmp_path: Path) -> None:
    """stdin a pipe, stdout a terminal: pipe mode, but what reaches the screen is escaped:
    C0/C1 controls and the bidirectional overrides that reorder what is shown."""
    evil = "\x1b]0;pwned\x07\x1b[2J \u202egnp.exe\u2066x\u2069 done"
    (tmp_path / "in.txt").write_text(evil + "\n", encoding="utf-8")
    child = pexpect.spawn(
        "/bin/sh",
        ["-c", f'"{sys.executable}" -m wstool connect -n 1 {lib_echo} < in.txt'],
        cwd=str(tmp_path),
        env={**os.environ, "TERM": "xterm", "NO_COLOR": "1"},
        encoding="utf-8",
        timeout=scaled(10),
    )
    child.expect("done")
    shown = child.before + "done"
    assert wait_exit(child) == 0
    assert "\\e]0;pwned\\x07\\e[2J \\u202egnp.exe\\u2066x\\u2069 done" in shown
    for raw in ("\x1b]", "\x07", "\x1b[2J", "\u202e", "\u2066", "\u2069"):
        assert raw not in shown


def test_repl_asks_for_the_pass_phrase_of_an_encrypted_key(
    server_thread: ServerThread, home: Path
) -> None:
    import ssl

    import trustme

    from tests.conftest import write_leaf_cert

    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    context.verify_mode = ssl.CERT_REQUIRED  # the server insists on our certificate
    ca.configure_trust(context)
    _server, url = start_websockets_server(server_thread, recording_handler(Record()),
                                           ssl=context)
    ca.cert_pem.write_to_path(str(home / "ca.pem"))
    write_leaf_cert(ca, "client", home, password=b"s3cret")  # client.pem, client.key

    def spawn() -> pexpect.spawn:
        env = {name: value for name, value in os.environ.items()
               if name != "WSTOOL_KEY_PASSWORD"}
        return pexpect.spawn(
            sys.executable,
            ["-m", "wstool", "connect", "--cacert", "ca.pem", "--cert", "client.pem",
             "--key", "client.key", "--ping-interval", "0", url.replace("ws://", "wss://")],
            cwd=str(home),
            env={**env, "HOME": str(home), "XDG_STATE_HOME": str(home / "state"),
                 "PROMPT_TOOLKIT_NO_CPR": "1", "TERM": "xterm", "NO_COLOR": "1"},
            dimensions=(30, 100), encoding="utf-8", timeout=scaled(10),
        )

    child = spawn()
    child.expect("pass phrase for client.key: ")
    child.sendline("guess")
    child.expect(pexpect.EOF)
    assert "wrong pass phrase" in child.before and "s3cret" not in child.before
    child.close()
    assert child.exitstatus == 1

    child = spawn()
    child.expect("pass phrase for client.key: ")
    child.sendline("s3cret")  # not echoed: hide_input
    child.expect("connected to ")
    assert "s3cret" not in child.before
    child.send("mutual\r")
    child.expect("< mutual")
    child.send("/quit\r")
    assert wait_exit(child) == 0


def test_repl_record_then_replay(lib_echo: str, home: Path) -> None:
    """connect --record in the REPL (issue 11): the screen as usual, the file replayable."""
    path = home / "session.jsonl"
    child = spawn_repl(lib_echo, home, "--record", str(path))
    child.send("hello\r")
    child.expect("< hello")
    child.send("/quit\r")
    assert wait_exit(child) == 0
    events = [json.loads(line) for line in path.read_text().splitlines()]
    messages = [(e["direction"], e["text"]) for e in events if e["event"] == "message"]
    assert messages == [("sent", "hello"), ("received", "hello")]
    replay = run_wstool("replay", str(path))
    assert replay.returncode == 0, replay.stdout + replay.stderr.encode()


def test_repl_expect_met_closes_with_1000_and_exits_0(lib_echo: str, home: Path) -> None:
    """--expect in the REPL (issue 11): the result is a state line; all met -> exit 0."""
    child = spawn_repl(lib_echo, home, "--no-history", "--expect", "^hel+o$")
    child.send("hello\r")
    child.expect("< hello")
    child.expect(r"= expected '\^hel\+o\$': message 1 \([0-9.]+ ms\)")
    child.expect(r"closed by us: 1000 \(normal closure\)")
    assert wait_exit(child) == 0


def test_repl_expect_not_met_exits_8(lib_echo: str, home: Path) -> None:
    child = spawn_repl(lib_echo, home, "--no-history", "--expect", "never",
                       "--expect-timeout", "0.5")
    child.send("hello\r")
    child.expect("< hello")
    child.expect(r"wstool: error: expectation not met: --expect 'never' within "
                 r"--expect-timeout 0.5s \(1 message received\); the last one:")
    child.expect("  < hello")
    assert wait_exit(child) == 8


def test_repl_template_typed_lines(lib_echo: str, home: Path) -> None:
    """--template in the REPL: typed lines are expanded with the -x messages' captures;
    a bad placeholder is one error line and the session goes on; /commands are not."""
    child = spawn_repl(lib_echo, home, "--no-history", "--template",
                       "-x", "id-{{random:8}}", "--capture", "id=^id-(.+)$")
    child.expect(r"< id-([A-Za-z0-9]{8})\r\n")
    value = child.match.group(1)
    child.expect(r"= captured id from message 1")
    child.send("got {{id}} #{{seq}}\r")
    child.expect(f"< got {value} #2\r\n")
    child.send("{{nope}}\r")
    child.expect(r"! unknown placeholder \{\{nope\}\} \(known: ")
    child.send("/text {{id}}\r")
    child.expect(r"< \{\{id\}\}\r\n")
    child.send("/quit\r")
    assert wait_exit(child) == 0
