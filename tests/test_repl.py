"""The REPL (wstool/term/repl.py, wstool/client/repl.py) driven through prompt_toolkit's pipe input.

Keys go in through ``create_pipe_input()``; the prompt renders to a
``DummyOutput`` that also records what the REPL writes above the prompt. The
peer is the websockets library's server on 127.0.0.1 port 0, in the test's
own event loop. Rendering (render_rich.py) is also tested directly.
"""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.key_binding.vi_state import InputMode
from prompt_toolkit.output import DummyOutput
from rich.console import Console
from websockets.asyncio.server import ServerConnection, serve

from tests import servers
from tests.conftest import async_test, closed_port, scaled, until
from wstool.cli.options import SequencePlan, connect_sequence
from wstool.client.repl import SessionTarget, line_expander
from wstool.client.run import RunObserver
from wstool.config import (
    ClientRunConfig,
    ConnectConfig,
    OutputConfig,
    ReplConfig,
    Target,
    default_history_path,
)
from wstool.errors import ClosedAbnormally, ConnectFailed, ExitStatus, HandshakeRejected
from wstool.events import Message
from wstool.term.env import Environment
from wstool.term.render_rich import ViewOptions, message_text
from wstool.term.repl import Repl

ENTER = "\r"
CTRL_C = "\x03"
CTRL_D = "\x04"
ESC_ENTER = "\x1b\r"


class RecordingOutput(DummyOutput):
    """A DummyOutput that keeps the text written to it (no escape sequences:
    the renderer's cursor moves and colours are method calls it ignores)."""

    def __init__(self) -> None:
        self.chunks: list[str] = []

    def write(self, data: str) -> None:
        self.chunks.append(data)

    def write_raw(self, data: str) -> None:
        self.chunks.append(data)

    @property
    def text(self) -> str:
        return "".join(self.chunks)


@dataclass
class Peer:
    """What the server side saw."""

    received: list[str | bytes] = field(default_factory=list)
    close_code: int | None = None
    close_reason: str | None = None
    connections: int = 0



@asynccontextmanager
async def server(handler: Callable[[ServerConnection, Peer], Awaitable[None]],
                 **kwargs: Any) -> AsyncIterator[tuple[str, Peer]]:
    peer = Peer()

    async def wrapped(ws: ServerConnection) -> None:
        peer.connections += 1
        try:
            await handler(ws, peer)
        finally:
            await ws.wait_closed()
            rcvd = ws.protocol.close_rcvd
            if rcvd is not None:
                peer.close_code = rcvd.code
                peer.close_reason = rcvd.reason

    async with serve(wrapped, "127.0.0.1", 0, max_size=None, **kwargs) as srv:
        port = next(iter(srv.sockets)).getsockname()[1]
        yield f"ws://127.0.0.1:{port}/", peer


async def echo(ws: ServerConnection, peer: Peer) -> None:
    async for message in ws:
        peer.received.append(message)
        await ws.send(message)


def make_env(color: bool | None = False, environ: dict[str, str] | None = None,
             isatty: bool = True) -> Environment:
    return Environment(
        stdin=io.BytesIO(),
        stdout=io.BytesIO(),
        stderr=io.StringIO(),
        stdin_isatty=isatty,
        stdout_isatty=isatty,
        environ=environ or {},
        color=color,
    )


class Driver:
    """A REPL running in the background, keys in, recorded output out."""

    def __init__(self, repl: Repl[Any], output: RecordingOutput, send: Callable[[str], None],
                 target: SessionTarget) -> None:
        self.repl = repl
        self.output = output
        self.type = send
        self.target = target
        self.task: asyncio.Task[ExitStatus] = asyncio.ensure_future(repl.run())

    async def see(self, fragment: str, timeout: float = 5) -> None:
        await until(lambda: fragment in self.output.text or self.task.done(),
                    repr(fragment), timeout)
        assert fragment in self.output.text, f"{fragment!r} not in {self.output.text[-2000:]!r}"

    async def open(self) -> None:
        await until(lambda: self.target.state == "open" or self.task.done(), "open")
        assert self.target.state == "open"

    async def result(self) -> ExitStatus:
        return await asyncio.wait_for(self.task, scaled(10))


@asynccontextmanager
async def repl_on(url: str, *, run: ClientRunConfig | None = None,
                  config: ReplConfig | None = None, env: Environment | None = None,
                  output_config: OutputConfig | None = None,
                  sequence: SequencePlan | None = None) -> AsyncIterator[Driver]:
    """SEQUENCE: connect's -x/--expect/--capture/--template, wired as cli/app.py does."""
    with create_pipe_input() as pipe_input:
        output = RecordingOutput()
        observers: list[RunObserver] = []
        expand_line = None
        if sequence is not None:
            observer, _wrap_input = sequence.observer_and_input()
            observers.append(observer)
            typed_lines = sequence.typed_lines(observer)
            expand_line = None if typed_lines is None else line_expander(typed_lines)
            run = sequence.run_config(run or ClientRunConfig())
        target = SessionTarget(
            ConnectConfig(Target(url), ping_interval_s=None),
            run or ClientRunConfig(),
            output_config or OutputConfig(),
            observers=observers,
        )
        repl = Repl(env or make_env(), config or ReplConfig(), target,
                    input=pipe_input, output=output, expand_line=expand_line)
        driver = Driver(repl, output, pipe_input.send_text, target)
        try:
            yield driver
        finally:
            if not driver.task.done():
                driver.task.cancel()
                await asyncio.gather(driver.task, return_exceptions=True)



# End to end through the pipe input, against a real server.


@async_test
async def test_type_message_see_echo_and_ctrl_d_exits_0() -> None:
    async with server(echo) as (url, peer), repl_on(url) as d:
        await d.open()
        d.type("hello" + ENTER)
        await d.see("< hello")
        assert "> hello" in d.output.text
        assert peer.received == ["hello"]
        d.type(CTRL_D)
        assert await d.result() == ExitStatus.OK
        assert "closed by us: 1000 (normal closure)" in d.output.text
    assert peer.close_code == 1000


@async_test
async def test_status_counts_payload_bytes_both_ways() -> None:
    # An echo (compressed or not, text with a 2-byte character and binary) must show the
    # same bytes each way: payload bytes, not the wire's frames and handshake.
    async with server(echo) as (url, _peer), repl_on(url) as d:
        await d.open()
        d.type("héllo" + ENTER)
        await d.see("< héllo")
        d.type("/binary 00ff41" + ENTER)
        await until(lambda: d.target.status().messages_received == 2, "both echoes")
        status = d.target.status()
        assert (status.bytes_sent, status.bytes_received) == (9, 9)
        assert "↑ 2 msg 9 B" in "".join(text for _style, text, *_ in d.repl._toolbar())
        assert "↓ 2 msg 9 B" in "".join(text for _style, text, *_ in d.repl._toolbar())


@async_test
async def test_ping_shows_pong_and_rtt_in_status() -> None:
    async with server(echo) as (url, _peer), repl_on(url) as d:
        await d.open()
        assert d.target.status().last_rtt_s is None
        d.type("/ping hi" + ENTER)
        await d.see("< pong 'hi' in ")
        assert d.target.status().last_rtt_s is not None
        assert "rtt " in "".join(text for _style, text, *_ in d.repl._toolbar())
        d.type("/pong unsolicited" + ENTER)
        await d.see("> pong 'unsolicited'")


@async_test
async def test_close_with_code_and_reason_exits_0_after_handshake() -> None:
    async with server(echo) as (url, peer), repl_on(url) as d:
        await d.open()
        d.type("/close 4000 bye" + ENTER)
        assert await d.result() == ExitStatus.OK
        await d.see("closed by us: 4000 (private use) 'bye'")
    assert (peer.close_code, peer.close_reason) == (4000, "bye")


@async_test
async def test_server_close_is_shown_and_raises_the_exit_error() -> None:
    async def close_1001(ws: ServerConnection, peer: Peer) -> None:
        await ws.recv()
        await ws.close(1001, "going down")

    async with server(close_1001) as (url, _peer), repl_on(url) as d:
        await d.open()
        d.type("bye" + ENTER)
        with pytest.raises(ClosedAbnormally) as info:
            await d.result()
        assert info.value.exit_status == ExitStatus.CLOSED_ABNORMALLY
        assert "closed by the server: 1001 (going away) 'going down'" in d.output.text
        assert info.value.said  # issue 13: cli/app.py does not say it again


@async_test
async def test_bad_input_keeps_the_connection() -> None:
    async with server(echo) as (url, peer), repl_on(url) as d:
        await d.open()
        d.type("/foo" + ENTER)
        await d.see("! unknown command /foo")
        d.type("/close 1005" + ENTER)
        await d.see("must not be sent")
        d.type("/file /nonexistent/file" + ENTER)
        await d.see("! cannot read /nonexistent/file: No such file or directory")
        d.type("/binary 4" + ENTER)
        await d.see("odd number of digits")
        d.type("//foo" + ENTER)
        await d.see("< /foo")
        assert peer.received == ["/foo"]
        assert d.target.state == "open"


@async_test
async def test_binary_file_and_text_file(tmp_path: Path) -> None:
    blob = tmp_path / "blob.bin"
    blob.write_bytes(b"\x00\x01Hi\xff")
    text = tmp_path / "doc.txt"
    text.write_text("é line\n")
    async with server(echo) as (url, peer), repl_on(url) as d:
        await d.open()
        d.type(f"/file {blob}" + ENTER)
        await d.see("|..Hi.|")
        d.type(f"/file --text {text}" + ENTER)
        await d.see("< é line")
        d.type(f"/file --text {blob}" + ENTER)
        await d.see("is not valid UTF-8")
        d.type("/base64 aGk=" + ENTER)
        await until(lambda: len(peer.received) == 3, "3 messages")
    assert peer.received == [b"\x00\x01Hi\xff", "é line\n", b"hi"]


@async_test
async def test_remote_control_characters_are_escaped() -> None:
    evil = "\x1b]0;pwned\x07\x1b[31mred\x1b[2J\r\x08\x9b31m done"

    async def push_evil(ws: ServerConnection, peer: Peer) -> None:
        await ws.send(evil)
        await ws.send(evil.encode())
        await ws.wait_closed()

    env = make_env(color=True)  # colours on: our own sequences, never the server's
    async with server(push_evil, subprotocols=None) as (url, _peer), repl_on(url, env=env) as d:
        await d.open()
        await d.see("done")
        await d.see("|.]0;pwned..[31mr|")  # the binary copy, as a hex dump
        out = d.output.text
        assert "\\e]0;pwned\\x07\\e[31mred\\e[2J\\r\\x08\\x9b31m done" in out
        for raw in ("\x1b]", "\x07", "\x1b[2J", "\x9b", "\x08"):
            assert raw not in out
        # rich's own styling is there (colour is on), built from our markers only.
        assert "\x1b[1;36m<" in out


@async_test
async def test_one_mib_message_is_folded_with_its_size() -> None:
    big = "x" * (1 << 20)

    async def push_big(ws: ServerConnection, peer: Peer) -> None:
        await ws.send(big)
        await ws.send(b"\xab" * (1 << 20))
        await ws.wait_closed()

    async with server(push_big) as (url, _peer), repl_on(url) as d:
        await d.open()
        await d.see("1048576 bytes), showing the first 480 bytes")
        out = d.output.text
        # DummyOutput is 80 columns; "#1 < " takes 5: 30 rows of 75 characters, and the
        # fold says how to see it all.
        assert "folded (/show 1 prints it whole): 1.0 MiB (1048576 bytes), showing the " in out
        assert " first 2250 characters (1 line)" in out
        assert "folded (/show 2 prints it whole): 1.0 MiB (1048576 bytes), showing the " in out
        assert len(out) < 20_000
        assert d.target.status().messages_received == 2


@async_test
async def test_json_pretty_toggle_and_timestamps() -> None:
    async with server(echo) as (url, _peer), repl_on(url) as d:
        await d.open()
        # Compact by default: one line when it fits (80 columns here).
        d.type('{"a": [1, {"b": null}]}' + ENTER)
        await d.see('#2 < {"a": [1, {"b": null}]}\n')
        d.type("/json pretty" + ENTER)
        await d.see("JSON messages: pretty-printed")
        d.type('{"a": [1, {"b": null}]}' + ENTER)
        await d.see('#4 < {\n       "a": [\n         1,')
        d.type("/json off" + ENTER)
        await d.see("JSON messages: as received")
        d.type('{"c": 2}' + ENTER)
        await d.see('#6 < {"c": 2}')
        d.type("/timestamps on" + ENTER)
        await d.see("timestamps on")
        d.type("tick" + ENTER)
        await d.see("< tick")
        line = next(ln for ln in d.output.text.splitlines() if ln.endswith("< tick"))
        assert len(line.split()[0]) == len("12:34:56.789")


@async_test
async def test_multiline_input_and_bracketed_paste_are_one_message() -> None:
    async with server(echo) as (url, peer), repl_on(url) as d:
        await d.open()
        d.type("line one" + ESC_ENTER + "line two" + ENTER)
        await until(lambda: len(peer.received) == 1, "one message")
        d.type("\x1b[200~{\n  \"pasted\": true\n}\x1b[201~" + ENTER)
        await until(lambda: len(peer.received) == 2, "two messages")
    assert peer.received == ["line one\nline two", '{\n  "pasted": true\n}']


@async_test
async def test_vi_mode_esc_enter_sends_and_o_opens_a_line() -> None:
    # A terminal sends Alt-Enter as Esc Enter: in Vi mode that must be "leave insert
    # mode, then send", even typed fast, not the Emacs-mode newline.
    async with server(echo) as (url, peer), repl_on(url, config=ReplConfig(vi=True)) as d:
        await d.open()
        d.type("fast" + ESC_ENTER)
        await until(lambda: len(peer.received) == 1, "the first message")
        d.type("one\x1b")  # Esc, then `o` in normal mode opens a line below
        # A lone Esc once prompt_toolkit's Esc timeout has passed: normal mode.
        await until(lambda: d.repl.prompt.app.vi_state.input_mode == InputMode.NAVIGATION,
                    "normal mode after a lone Esc")
        d.type("otwo" + ENTER)
        await until(lambda: len(peer.received) == 2, "the second message")
    assert peer.received == ["fast", "one\ntwo"]


@async_test
async def test_ctrl_c_clears_the_line() -> None:
    async with server(echo) as (url, peer), repl_on(url) as d:
        await d.open()
        d.type("discarded" + CTRL_C + "kept" + ENTER)
        await d.see("< kept")
        d.type(CTRL_C)
        await d.see("Ctrl-D or /quit to close and exit")
        assert peer.received == ["kept"]
        assert d.target.state == "open"


@async_test
async def test_tab_completes_commands() -> None:
    async with server(echo) as (url, _peer), repl_on(url) as d:
        await d.open()
        buffer = d.repl.prompt.default_buffer
        d.type("/sta")
        # Completion while typing runs asynchronously; a person sees the menu first.
        await until(lambda: buffer.complete_state is not None, "the menu")
        d.type("\t")
        await until(lambda: buffer.text == "/stats", "completion")
        d.type(ENTER)
        await d.see("sent:     0 messages")
        await d.see("rtt:      no pong yet")


@async_test
async def test_tab_typed_fast_completes_a_single_match() -> None:
    # Tab in the same burst as the text: before the menu exists (the Tab's own completion
    # used to be dropped while the complete-while-typing one ran).
    async with server(echo) as (url, _peer), repl_on(url) as d:
        await d.open()
        buffer = d.repl.prompt.default_buffer
        d.type("/pi\t")
        await until(lambda: buffer.text == "/ping", "completion")
        d.type(" hello" + ENTER)
        await d.see("< pong 'hello' in ")
        d.type("/t\t")  # two matches: the menu, and a second Tab picks the first
        await until(lambda: buffer.complete_state is not None, "the menu")
        d.type("\t")
        await until(lambda: buffer.text == "/text", "the first match")


@async_test
async def test_history_file_and_no_history(tmp_path: Path) -> None:
    history = default_history_path({"XDG_STATE_HOME": str(tmp_path / "state")})
    assert history == tmp_path / "state" / "wstool" / "history"
    async with server(echo) as (url, _peer):
        async with repl_on(url, config=ReplConfig(history_path=history)) as d:
            await d.open()
            d.type("remember me" + ENTER)
            await d.see("< remember me")
            d.type(CTRL_D)
            await d.result()
        assert "+remember me" in history.read_text()
        # A second run offers it: Up recalls the last entry.
        async with repl_on(url, config=ReplConfig(history_path=history)) as d:
            await d.open()
            d.type("\x1b[A" + ENTER)
            await d.see("< remember me")
        # --no-history: nothing written.
        async with repl_on(url, config=ReplConfig(history_path=None)) as d:
            await d.open()
            d.type("secret" + ENTER)
            await d.see("< secret")
    assert "secret" not in history.read_text()


def test_default_history_path_falls_back_to_home(tmp_path: Path) -> None:
    expected = tmp_path / ".local" / "state" / "wstool" / "history"
    assert default_history_path({"HOME": str(tmp_path)}) == expected
    # A relative XDG_STATE_HOME is ignored (XDG Base Directory spec).
    assert default_history_path({"HOME": str(tmp_path), "XDG_STATE_HOME": "rel"}) == expected


@async_test
async def test_headers_stats_and_save(tmp_path: Path) -> None:
    out_file = tmp_path / "t.jsonl"
    async with server(echo) as (url, _peer), repl_on(url) as d:
        await d.open()
        d.type("/headers" + ENTER)
        await d.see("< HTTP/1.1 101 Switching Protocols")
        assert "> GET / HTTP/1.1" in d.output.text
        d.type("one" + ENTER + "/binary 00ff" + ENTER)
        await d.see("< binary, 2 bytes")
        d.type(f"/save {out_file}" + ENTER)
        await d.see("saved 5 events to")
        d.type(f"/save {tmp_path}/no/such/dir/x" + ENTER)
        await d.see("! cannot write")
    events = [json.loads(line) for line in out_file.read_text().splitlines()]
    assert [e["event"] for e in events] == ["open", "message", "message", "message", "message"]
    assert events[1] == {**events[1], "direction": "sent", "type": "text", "text": "one"}
    assert events[4] == {**events[4], "direction": "received", "type": "binary",
                         "base64": "AP8="}


@async_test
async def test_execute_and_echo_options() -> None:
    async def greet_then_record(ws: ServerConnection, peer: Peer) -> None:
        await ws.send("welcome")
        async for message in ws:
            peer.received.append(message)

    run_cfg = ClientRunConfig(execute=("first",), echo=True)
    async with server(greet_then_record) as (url, peer), repl_on(url, run=run_cfg) as d:
        await d.open()
        await until(lambda: len(peer.received) == 2, "-x and the echo")
    # The echo may come first: "welcome" can arrive with the handshake response.
    assert sorted(peer.received, key=str) == ["first", "welcome"]


@async_test
async def test_reconnect_shows_attempts_and_prompt_stays_usable() -> None:
    async def flaky(ws: ServerConnection, peer: Peer) -> None:
        if peer.connections == 1:
            await ws.close(1011, "oops")
            return
        await echo(ws, peer)

    run_cfg = ClientRunConfig(reconnect=True, reconnect_max_delay_s=0.2)
    async with server(flaky) as (url, peer), repl_on(url, run=run_cfg) as d:
        await d.see("closed by the server: 1011 (internal error) 'oops'")
        await d.see("reconnecting in ")
        await until(lambda: peer.connections == 2 and d.target.state == "open", "reconnect")
        d.type("again" + ENTER)
        await d.see("< again")
        d.type("/quit" + ENTER)
        assert await d.result() == ExitStatus.OK


@async_test
async def test_send_before_open_says_why() -> None:
    # Nothing listens on this port (bound, then closed): the connect fails.
    port = closed_port()
    run_cfg = ClientRunConfig(reconnect=True, reconnect_max_delay_s=0.2)
    async with repl_on(f"ws://127.0.0.1:{port}/", run=run_cfg) as d:
        await d.see("reconnecting in ")
        await until(lambda: d.target.status().state.startswith("reconnecting (attempt "),
                    "the status bar's reconnecting state")
        d.type("early" + ENTER)
        # Issue 13: with --reconnect it waits for the connection, and says so.
        await d.see("= queued (1 waiting), sent once the connection is back (/discard drops the "
                    "queue): early")
        assert d.target.status().queued == 1
        assert "1 queued" in "".join(text for _style, text, *_ in d.repl._toolbar())
        d.type(CTRL_D)
        assert await d.result() == ExitStatus.OK
        await d.see("warning: 1 queued message not sent: the connection did not come back")


@async_test
async def test_discard_drops_the_queue_and_help_lists_it() -> None:
    port = closed_port()
    run_cfg = ClientRunConfig(reconnect=True, reconnect_max_delay_s=0.2)
    async with repl_on(f"ws://127.0.0.1:{port}/", run=run_cfg) as d:
        await d.see("reconnecting in ")
        d.type("/discard" + ENTER)
        await d.see("= nothing queued")
        for line in ("a", "b"):
            d.type(line + ENTER)
        await d.see("queued (2 waiting)")
        d.type("/discard now" + ENTER)
        await d.see("! /discard takes no argument")
        d.type("/discard" + ENTER)
        await d.see("= discarded 2 queued messages: not sent")
        assert d.target.status().queued == 0
        assert "queued" not in "".join(text for _style, text, *_ in d.repl._toolbar())
        d.type("/help" + ENTER)
        await d.see("/discard")
        d.type(CTRL_D)
        assert await d.result() == ExitStatus.OK
        assert "not sent: the connection" not in d.output.text


@async_test
async def test_show_ping_pong_and_the_server_pings_age_in_the_status_bar() -> None:
    async def quiet(ws: ServerConnection, peer: Peer) -> None:
        await ws.wait_closed()

    ping_pong = OutputConfig(show_ping_pong=True)
    async with server(quiet, ping_interval=0.1) as (url, _peer), repl_on(
            url, output_config=ping_pong, config=ReplConfig(show_ping_pong=True)) as d:
        await d.open()
        assert "server ping -" in "".join(text for _style, text, *_ in d.repl._toolbar())
        await d.see("< ping ")
        await d.see("> pong ")
        assert "server ping 0s ago" in "".join(text for _style, text, *_ in d.repl._toolbar())
        assert d.repl.prompt.refresh_interval == 1.0  # the age ticks
        d.type("/ping hi" + ENTER)
        await d.see("< pong 'hi' in ")
        d.type(CTRL_D)
        assert await d.result() == ExitStatus.OK
        assert "> ping 'hi'" in d.output.text
        assert d.output.text.count("< pong 'hi'") == 1  # not again as /ping's result


@async_test
async def test_verbose_ping_shows_its_pong_once() -> None:
    """-v shows every pong received (with its RTT): /ping does not add a second line."""
    async with server(echo) as (url, _peer), repl_on(
            url, output_config=OutputConfig(verbose=1), config=ReplConfig(verbose=1)) as d:
        await d.open()
        d.type("/ping hi" + ENTER)
        await d.see("< pong 'hi' in ")
        d.type(CTRL_D)
        assert await d.result() == ExitStatus.OK
        assert d.output.text.count("< pong 'hi'") == 1


@async_test
async def test_reconnect_limit_gives_up() -> None:
    port = closed_port()
    run_cfg = ClientRunConfig(reconnect=True, reconnect_max_delay_s=0.2, reconnect_limit=2)
    async with repl_on(f"ws://127.0.0.1:{port}/", run=run_cfg) as d:
        await d.see("giving up after 2 reconnect attempts in a row (--reconnect-limit)")
        with pytest.raises(ConnectFailed, match="connection refused"):
            await d.result()
        assert "(attempt 3)" not in d.output.text


def test_no_color_env_and_flag() -> None:
    assert make_env(color=None, environ={"NO_COLOR": "1"}).color_for(True) is False
    with create_pipe_input() as pipe_input:
        target = SessionTarget(ConnectConfig(Target("ws://127.0.0.1:9/")), ClientRunConfig(),
                               OutputConfig())
        env = make_env(color=None, environ={"NO_COLOR": "1"})
        repl = Repl(env, ReplConfig(), target, input=pipe_input, output=DummyOutput())
        assert repl.color is False
        assert "\x1b" not in repl._render(message_text(Message("received", "hi"), repl.view))


# Rendering, directly.


def render(event: Message, view: ViewOptions | None = None, color: bool = False) -> str:
    console = Console(file=io.StringIO(), force_terminal=color, no_color=not color,
                      color_system="standard" if color else None, markup=False,
                      highlight=False, soft_wrap=True)
    with console.capture() as capture:
        console.print(message_text(event, view or ViewOptions()))
    return capture.get()


def test_render_text_json_and_binary() -> None:
    assert render(Message("sent", "hi")) == "> hi\n"
    assert render(Message("received", "")) == "< (empty text message)\n"
    assert render(Message("received", '[1,{"a":"\\u001b"}]')) == (
        '< [\n    1,\n    {\n      "a": "\\u001b"\n    }\n  ]\n'
    )
    assert render(Message("received", '{"a":1}'), ViewOptions(pretty_json=False)) == (
        '< {"a":1}\n'
    )
    assert render(Message("received", "{not json")) == "< {not json\n"
    assert render(Message("received", b"Hello, world!\x00\xff")) == (
        "< binary, 15 bytes\n"
        "  00000000  48 65 6c 6c 6f 2c 20 77  6f 72 6c 64 21 00 ff     |Hello, world!..|\n"
    )
    assert render(Message("received", b"hello"), ViewOptions(base64=True)) == (
        "< binary, 5 bytes\n  aGVsbG8=\n"
    )


def test_render_json_escapes_del_and_c1() -> None:
    # json.dumps(ensure_ascii=False) leaves DEL and C1 as they are: still escaped.
    out = render(Message("received", '{"k": "\x7f\x9b"}'))
    assert "\\x7f\\x9b" in out and "\x9b" not in out


def test_render_multiline_text_keeps_lines_escapes_the_rest() -> None:
    assert render(Message("received", "a\nb\r\x1b")) == "< a\n  b\\r\\e\n"


def test_render_folds_long_and_many_line_messages() -> None:
    view = ViewOptions(max_lines=3, max_chars=100)
    out = render(Message("received", "\n".join(str(i) for i in range(10))), view)
    assert out.splitlines()[:3] == ["< 0", "  1", "  2"]
    assert "(19 bytes), showing the first 5 characters (3 lines)" in out
    out = render(Message("received", "y" * 1000), view)
    assert "y" * 100 + "\n" in out and "y" * 101 not in out
    assert "(1000 bytes), showing the first 100 characters (1 line)" in out
    # Rows, not lines: at 40 columns a 100-character line takes 3 rows.
    narrow = ViewOptions(max_lines=2, max_chars=1000, width=40)
    out = render(Message("received", "z" * 100), narrow)
    assert out.splitlines()[0] == "< " + "z" * 76
    assert "showing the first 76 characters" in out
    out = render(Message("received", b"\x01" * 1000), view)
    assert len(out.splitlines()) == 1 + 3 + 1
    assert "showing the first 48 bytes" in out


def test_render_one_mib_is_bounded() -> None:
    out = render(Message("received", "\x1b" * (1 << 20)))
    assert len(out) < 20_000
    assert "\x1b" not in out and "(1048576 bytes)" in out


def test_render_colour_marks_direction() -> None:
    assert render(Message("sent", "x"), color=True).startswith("\x1b[1;32m>")
    assert render(Message("received", "x"), color=True).startswith("\x1b[1;36m<")


@async_test
async def test_count_verbose_and_trace() -> None:
    async def push_three(ws: ServerConnection, peer: Peer) -> None:
        for i in range(3):
            await ws.send(f"push {i}")
        await ws.wait_closed()

    out_cfg = OutputConfig(verbose=1, trace=True)
    run_cfg = ClientRunConfig(message_count=2)
    config = ReplConfig(verbose=1)
    async with server(push_three) as (url, peer), repl_on(
        url, run=run_cfg, config=config, output_config=out_cfg
    ) as d:
        assert await d.result() == ExitStatus.OK  # -n 2: two messages, then a clean close
        out = d.output.text
        assert "> GET / HTTP/1.1" in out  # -v: the handshake
        assert "< HTTP/1.1 101 Switching Protocols" in out
        assert '< TEXT fin 6 B "push 0"' in out  # --trace: frame-dump's vocabulary
        assert "< push 1" in out
        assert "< push 2" not in out
        assert "closed by us: 1000" in out
        assert d.target.status().state == "closed"
    assert peer.close_code == 1000


def test_show_event_with_a_label_outside_the_loop() -> None:
    # What `wstool listen` needs: events of several clients told apart.
    with create_pipe_input() as pipe_input:
        target = SessionTarget(ConnectConfig(Target("ws://127.0.0.1:9/")), ClientRunConfig(),
                               OutputConfig())
        output = RecordingOutput()
        repl = Repl(make_env(), ReplConfig(prompt="listen> "), target, input=pipe_input,
                    output=output)
        repl.show_event(Message("received", "hi\x1b[2J"), label="[3]")
        repl.show_error("bad \\x00")
        assert output.text == "[3] #1 < hi\\e[2J\n! bad \\x00\n"


@async_test
async def test_tls_headers_and_subprotocol_through_the_same_core(tmp_path: Path) -> None:
    import ssl

    import trustme

    from wstool.config import TLSConfig

    ca = trustme.CA()
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)

    async def reflect(ws: ServerConnection, peer: Peer) -> None:
        assert ws.request is not None
        await ws.send(f"x-token={ws.request.headers.get('X-Token')}")
        await ws.wait_closed()

    async with server(reflect, ssl=context, subprotocols=["chat.v1"]) as (url, _peer):
        config = ConnectConfig(
            Target(url.replace("ws://", "wss://")),
            headers=(("X-Token", "abc"),),
            subprotocols=("chat.v1",),
            tls=TLSConfig(cafile=str(ca_file)),
            ping_interval_s=None,
        )
        with create_pipe_input() as pipe_input:
            output = RecordingOutput()
            target = SessionTarget(config, ClientRunConfig(), OutputConfig())
            repl = Repl(make_env(), ReplConfig(), target, input=pipe_input, output=output)
            d = Driver(repl, output, pipe_input.send_text, target)
            await d.see("< x-token=abc")
            status = target.status()
            assert (status.state, status.subprotocol) == ("open", "chat.v1")
            assert status.url.startswith("wss://127.0.0.1:")
            toolbar = "".join(text for _style, text, *_ in repl._toolbar())
            assert "│ open │ chat.v1 │ deflate │" in toolbar
            d.type(CTRL_D)
            assert await d.result() == ExitStatus.OK


@async_test
async def test_binary_option_sends_typed_lines_as_binary() -> None:
    async with server(echo) as (url, peer), repl_on(
        url, config=ReplConfig(lines_as_binary=True)
    ) as d:
        await d.open()
        d.type("raw" + ENTER + "/text still text" + ENTER)
        await until(lambda: len(peer.received) == 2, "two messages")
    assert peer.received == [b"raw", "still text"]


def test_render_escapes_bidirectional_overrides() -> None:
    # "Trojan Source": U+202E would show "exe.png" for what was sent as "gnp.exe".
    out = render(Message("received", "file \u202egnp.exe \u2067x\u2069"))
    assert out == "< file \\u202egnp.exe \\u2067x\\u2069\n"
    # Right-to-left text itself, and the marks (U+200E/U+200F), are shown as they are.
    assert render(Message("received", "שלום \u200f!")) == "< שלום \u200f!\n"


@async_test
async def test_verbose_shows_connection_steps_in_the_repl() -> None:
    out_cfg = OutputConfig(verbose=1)
    async with server(echo) as (url, _peer), repl_on(
        url, config=ReplConfig(verbose=1), output_config=out_cfg
    ) as d:
        await d.open()
        await d.see("< HTTP/1.1 101 Switching Protocols")
        out = d.output.text
        port = url.rsplit(":", 1)[1].strip("/")
        assert f"* connecting to 127.0.0.1 port {port}" in out
        assert f"* connected to 127.0.0.1 port {port} (TCP " in out
        assert "* upgraded in " in out
        assert out.index("* connecting to") < out.index("> GET / HTTP/1.1")
        d.type(CTRL_D)
        assert await d.result() == ExitStatus.OK


@async_test
async def test_no_connection_steps_in_the_repl_without_verbose() -> None:
    async with server(echo) as (url, _peer), repl_on(url) as d:
        await d.open()
        await d.see("connected to")
        assert "* connect" not in d.output.text
        d.type(CTRL_D)
        assert await d.result() == ExitStatus.OK


@async_test
async def test_verbose_shows_a_rejected_http10_handshake_in_the_repl() -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.0 404 Not Found\r\nServer: raw\r\n\r\nno such page\x1b[2J\n")
        await writer.drain()
        writer.close()

    srv = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    try:
        async with repl_on(f"ws://127.0.0.1:{port}/", config=ReplConfig(verbose=1),
                           output_config=OutputConfig(verbose=1)) as d:
            with pytest.raises(HandshakeRejected, match=r"HTTP/1\.0 404 Not Found"):
                await d.result()
            out = d.output.text
            assert "> GET / HTTP/1.1" in out
            assert "< HTTP/1.0 404 Not Found" in out
            assert "< no such page\\e[2J" in out
            assert "\x1b[2J" not in out
    finally:
        srv.close()


@async_test
async def test_template_typed_lines_use_a_capture_from_the_servers_reply() -> None:
    # connect --template -x AUTH --capture token=json:.token --capture chan=...: the
    # subscribe typed at the prompt carries the token the server sent (it answers
    # "bad token" otherwise); a line that cannot be expanded is one error line, not sent.
    sequence = connect_sequence(
        {"template": True, "execute": ('{"op":"auth","user":"ann"}',),
         "capture": ("token=^.*\"token\": \"([^\"]+)\"",
                     "chan=^.*\"subscribed\", \"channel\": \"([^\"]+)\"")},
        ["execute", "capture", "capture"], {"WSTOOL_CHANNEL": "ticks"})
    assert sequence is not None
    async with server(lambda ws, _peer: servers.auth_then_subscribe(ws)) as (url, _peer), \
            repl_on(url, sequence=sequence, config=ReplConfig(pretty_json=False)) as d:
        await d.see("= captured token from message 1")
        d.type('{"op":"sub","channel":"{{chan}}"}' + ENTER)
        await d.see("! {{chan}} is not captured yet")
        d.type("{{x}}" + ENTER)
        await d.see("! unknown placeholder {{x}} (known: uuid, seq, now_ms, now_iso, "
                    "env:NAME, file:PATH, random:N, chan, token)")
        d.type('{"op":"sub","token":"{{token}}","channel":"{{env:WSTOOL_CHANNEL}}"}' + ENTER)
        await d.see('< {"type": "subscribed", "channel": "ticks"}')
        await d.see("= captured chan from message 2")
        d.type('/text {"c":"{{chan}}"}' + ENTER)  # a /command: sent as typed
        await d.see('> {"c":"{{chan}}"}')
        d.type('{"c":"{{chan}}","seq":{{seq}}}' + ENTER)  # the auth -x was 1, the sub 2
        await d.see('> {"c":"ticks","seq":3}')
        assert d.target.status().messages_sent == 4  # the refused lines were not sent
        d.type(CTRL_D)
        assert await d.result() == ExitStatus.OK


@async_test
async def test_without_template_typed_braces_are_sent_as_typed() -> None:
    sequence = connect_sequence({"expect": ("{{seq}}",), "execute": ()}, None, {})
    async with server(echo) as (url, peer), repl_on(url, sequence=sequence) as d:
        await d.open()
        d.type("{{seq}}" + ENTER)
        assert await d.result() == ExitStatus.OK  # --expect met: closed with 1000
        await d.see("= expected '{{seq}}': message 1")
    assert peer.received == ["{{seq}}"]
    assert peer.close_code == 1000
