"""Slash-command parsing (wstool/term/commands.py), on strings."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wstool.term.commands import (
    CONNECT_COMMANDS,
    MAX_CLOSE_REASON_BYTES,
    CloseCommand,
    CommandError,
    CommandSpec,
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
    close_code_error,
)

parse = CONNECT_COMMANDS.parse


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("hello", SendText("hello")),
        ("  spaced  ", SendText("  spaced  ")),
        ("two\nlines", SendText("two\nlines")),
        ("//text", SendText("/text")),
        ("//", SendText("/")),
        ("/text /not a command", SendText("/not a command")),
        ("/text", SendText("")),
        ("/text  two leading", SendText(" two leading")),
        ("/text\nline 1\nline 2", SendText("line 1\nline 2")),
        ("/ping", PingCommand(None)),
        ("/ping hello there", PingCommand(b"hello there")),
        ("/pong", PongCommand(b"")),
        ("/pong é", PongCommand("é".encode())),
        ("/close", CloseCommand(1000, "")),
        ("/close 4000 bye", CloseCommand(4000, "bye")),
        ("/close 1001 going  away now", CloseCommand(1001, "going  away now")),
        ("/close\t3000\tx", CloseCommand(3000, "x")),
        ("/CLOSE 1000", CloseCommand(1000, "")),
        ("/binary 48 65 6c 6c 6f", SendBinary(b"Hello")),
        ("/binary 48656C6C6F", SendBinary(b"Hello")),
        ("/binary 0x0001ff", SendBinary(b"\x00\x01\xff")),
        ("/binary de:ad:be:ef", SendBinary(b"\xde\xad\xbe\xef")),
        ("/base64 aGVsbG8=", SendBinary(b"hello")),
        ("/base64 aGVsbG8", SendBinary(b"hello")),
        ("/base64 -_8=", SendBinary(b"\xfb\xff")),
        ("/file data.bin", SendFile("data.bin", as_text=False)),
        ("/file --text notes.txt", SendFile("notes.txt", as_text=True)),
        ("/file my file.json", SendFile("my file.json")),
        ("/json", JsonView(None)),
        ("/json off", JsonView("off")),
        ("/json compact", JsonView("compact")),
        ("/json PRETTY", JsonView("pretty")),
        ("/json on", JsonView("pretty")),  # what /json on meant before issue 13
        ("/show", ShowMessage(None)),
        ("/show 12", ShowMessage(12)),
        ("/show #12", ShowMessage(12)),
        ("/pager", ShowMessage(None, pager=True)),
        ("/pager 3", ShowMessage(3, pager=True)),
        ("/find Price", FindText("Price")),
        ("/find  two words ", FindText("two words")),
        ("/filter", FilterMessages(None)),
        ("/filter off", FilterMessages(None, clear=True)),
        ("/filter ^tick [0-9]+$", FilterMessages("^tick [0-9]+$")),
        ("/filter json:.type == \"trade\"", FilterMessages('json:.type == "trade"')),
        ("/pause", PauseDisplay()),
        ("/resume", PauseDisplay(resume=True)),
        ("/timestamps on", Toggle("timestamps", True)),
        ("/headers", ShowHeaders()),
        ("/stats", ShowStats()),
        ("/save out.jsonl", SaveTranscript("out.jsonl")),
        ("/help", ShowHelp(None)),
        ("/help /close", ShowHelp("close")),
        ("/quit", Quit()),
        ("/exit", Quit()),
    ],
)
def test_parse(line: str, expected: object) -> None:
    assert parse(line) == expected


def test_empty_line_is_nothing() -> None:
    assert parse("") is None


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        ("/", "missing command"),
        ("/foo", "unknown command /foo"),
        ("/foo bar", "//foo"),
        ("/close abc", "invalid close code 'abc'"),
        ("/close 999", "invalid close code 999"),
        ("/close 1004", "1004 is reserved"),
        ("/close 1005", "must not be sent"),
        ("/close 1006", "must not be sent"),
        ("/close 1015", "must not be sent"),
        ("/close 2999", "invalid close code 2999"),
        ("/close 5000", "invalid close code 5000"),
        ("/close 1000 " + "x" * (MAX_CLOSE_REASON_BYTES + 1), "exceeds 123"),
        ("/ping " + "x" * 126, "exceeds 125"),
        ("/pong " + "é" * 63, "126 bytes exceeds 125"),
        ("/binary", "usage: /binary"),
        ("/binary 4", "odd number of digits"),
        ("/binary zz", "'z' is not a hex digit"),
        ("/base64", "usage: /base64"),
        ("/base64 a$b=", "invalid base64"),
        ("/file", "usage: /file"),
        ("/file --text", "usage: /file"),
        ("/save", "usage: /save"),
        ("/json maybe", "usage: /json compact|pretty|off"),
        ("/show x", "usage: /show [N]"),
        ("/show -1", "usage: /show [N]"),
        ("/pager last", "usage: /pager [N]"),
        ("/find", "usage: /find TEXT"),
        ("/find   ", "usage: /find TEXT"),
        ("/pause now", "/pause takes no argument"),
        ("/resume 3", "/resume takes no argument"),
        ("/stats now", "/stats takes no argument"),
        ("/quit please", "/quit takes no argument"),
    ],
)
def test_errors(line: str, fragment: str) -> None:
    result = parse(line)
    assert isinstance(result, CommandError)
    assert fragment in result.message
    assert "\n" not in result.message


def test_close_reason_at_the_limit() -> None:
    reason = "r" * MAX_CLOSE_REASON_BYTES
    assert parse(f"/close 4000 {reason}") == CloseCommand(4000, reason)


@pytest.mark.parametrize("code", [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011,
                                  1012, 1013, 1014, 3000, 3999, 4000, 4999])
def test_sendable_close_codes(code: int) -> None:
    assert close_code_error(code) is None
    assert parse(f"/close {code}") == CloseCommand(code, "")


@given(st.integers(min_value=0, max_value=70000))
def test_close_code_rule(code: int) -> None:
    # RFC 6455 §7.4: exactly these may be sent by an endpoint.
    sendable = code in {1000, 1001, 1002, 1003} | set(range(1007, 1015)) or 3000 <= code <= 4999
    assert (close_code_error(code) is None) == sendable


@given(st.text())
def test_never_raises_and_plain_text_is_sent_verbatim(line: str) -> None:
    result = parse(line)
    if line == "":
        assert result is None
    elif not line.startswith("/"):
        assert result == SendText(line)
    elif line.startswith("//"):
        assert result == SendText(line[1:])


@given(st.binary(max_size=64))
def test_binary_round_trip(data: bytes) -> None:
    result = parse("/binary " + data.hex(" "))
    if data:
        assert result == SendBinary(data)
    else:
        assert isinstance(result, CommandError)


def test_table_is_extensible() -> None:
    # What `wstool listen` does: its own records and commands on top.
    def parse_clients(rest: str) -> object:
        return ("clients", rest)

    table = CONNECT_COMMANDS.extend([
        CommandSpec("clients", "", "list connected clients", parse_clients),
        CommandSpec("ping", "ID [data]", "ping one client", lambda rest: ("ping", rest)),
    ])
    assert table.parse("/clients") == ("clients", "")
    assert table.parse("/ping 3 hi") == ("ping", "3 hi")  # replaced
    assert table.parse("/close 4000") == CloseCommand(4000, "")  # kept
    assert [s.name for s in table.complete("cl")] == ["close", "clients"]
    assert CONNECT_COMMANDS.parse("/clients") == CommandError(
        "unknown command /clients (try /help; send it as text with //clients)"
    )


def test_completion_metadata() -> None:
    assert [s.name for s in CONNECT_COMMANDS.complete("t")] == ["text", "timestamps"]
    assert [s.name for s in CONNECT_COMMANDS.complete("")][:3] == ["ping", "pong", "close"]
    file_spec = CONNECT_COMMANDS.lookup("file")
    assert file_spec is not None and file_spec.arg_kind == "path"
    assert file_spec.synopsis == "/file [--text] PATH"
    help_text = "\n".join(CONNECT_COMMANDS.help_lines())
    for spec in CONNECT_COMMANDS:
        assert spec.synopsis in help_text
    assert "//text" in help_text
