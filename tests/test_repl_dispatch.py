"""The REPL's one ``match`` over the core commands: every record of
``commands.CoreCommand`` is executed, through tests/test_repl.py's pipe-input harness
against a real server on 127.0.0.1 (mypy checks the match is exhaustive; this checks
each case does its job)."""

from __future__ import annotations

from pathlib import Path
from typing import get_args

from tests.conftest import async_test
from tests.test_repl import echo, repl_on, server
from wstool.errors import ExitStatus
from wstool.term.commands import (
    CloseCommand,
    CoreCommand,
    FilterMessages,
    FindText,
    JsonView,
    PauseDisplay,
    PingCommand,
    PongCommand,
    Quit,
    SaveTranscript,
    SendBinary,
    SendFile,
    SendText,
    ShowHeaders,
    ShowHelp,
    ShowMessage,
    ShowStats,
    Toggle,
)


@async_test
async def test_every_core_command_goes_through_the_dispatch(tmp_path: Path) -> None:
    (tmp_path / "note.txt").write_text("from a file")
    saved = tmp_path / "saved.jsonl"
    # Record -> what shows after it (the closing ones are run at the end).
    shows: list[tuple[CoreCommand, str]] = [
        (SendText("typed"), "< typed"),
        (SendBinary(b"\x00\xff"), "binary, 2 bytes"),
        (SendFile(str(tmp_path / "note.txt"), as_text=True), "< from a file"),
        (PingCommand(b"pp"), "< pong 'pp' in "),
        (PongCommand(b"po"), "> pong 'po'"),
        (Toggle("json", False), "JSON pretty-printing off"),
        (ShowHeaders(), "Sec-WebSocket-Accept"),
        (ShowStats(), "sent:     3 messages"),
        (SaveTranscript(str(saved)), "saved "),
        (ShowHelp("ping"), "/ping [data]"),
        (JsonView("pretty"), "JSON messages: pretty-printed"),
        (ShowMessage(1), "#1 > typed"),
        (FindText("FROM A"), "2 of 6 kept messages contain 'FROM A'"),
        (FilterMessages("^x"), "filter '^x'"),
        (PauseDisplay(), "display paused"),
        (PauseDisplay(resume=True), "display resumed: 0 messages"),
    ]
    closing: list[CoreCommand] = [CloseCommand(4001, "done"), Quit()]
    # A record added to CoreCommand needs a line here as well.
    assert {type(c) for c, _ in shows} | {type(c) for c in closing} == set(get_args(CoreCommand))

    async with server(echo) as (url, peer), repl_on(url) as d:
        await d.open()
        for command, fragment in shows:
            await d.repl.execute(command)
            await d.see(fragment)
        await d.repl.execute(closing[0])
        assert await d.result() == ExitStatus.OK
    assert (peer.close_code, peer.close_reason) == (4001, "done")
    assert peer.received[:3] == ["typed", b"\x00\xff", "from a file"]
    assert '"text": "typed"' in saved.read_text()

    async with server(echo) as (url, peer), repl_on(url) as d:
        await d.open()
        await d.repl.execute(closing[1])
        assert await d.result() == ExitStatus.OK
    assert peer.close_code == 1000
    for text in ("command not available here", "internal error"):
        assert text not in d.output.text
