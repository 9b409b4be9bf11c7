"""--help as a newcomer reads it, and click's usage errors in wstool's style (issue 13)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest

from tests.conftest import run_wstool, run_wstool_inprocess
from wstool.cli.app import cli
from wstool.server.listen_repl import LISTEN_COMMANDS

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def help_of(*command: str) -> str:
    proc = run_wstool_inprocess(*command, "--help")
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.decode()


def test_command_list_shows_whole_first_lines() -> None:
    text = help_of()
    listing = text.split("\nCommands:\n", 1)[1].split("\n\n", 1)[0]
    entries: dict[str, str] = {}
    name = ""
    for line in listing.splitlines():
        if match := re.match(r"  (\S+)\s+(.*)", line):
            name, entries[match.group(1)] = match.group(1), match.group(2)
        else:
            entries[name] += " " + line.strip()
    assert set(entries) == set(cli.commands)
    for name, shown in entries.items():
        first_line = (cli.commands[name].help or "").strip().split("\n\n")[0].replace("\n", " ")
        assert shown == first_line, name
        assert shown.endswith(".") and "..." not in shown, name


def _connect_examples() -> list[str]:
    lines = help_of("connect").rstrip("\n").splitlines()
    assert lines[-6].strip() == "Examples:"
    return [line.strip() for line in lines[-5:]]


def test_connect_help_ends_with_five_examples_that_parse() -> None:
    examples = _connect_examples()
    assert len(examples) == 5
    connect = cli.commands["connect"]
    for example in examples:
        command = example.split(" # ", 1)[0]
        words = shlex.split(command.split(" | ")[-1])
        # Drop the shell's redirections: what is left is wstool's argv.
        argv = [w for i, w in enumerate(words)
                if w not in ("<", ">") and (i == 0 or words[i - 1] not in ("<", ">"))]
        assert argv[:2] == ["wstool", "connect"], example
        ctx = connect.make_context("connect", argv[2:])  # a usage error raises here
        assert ctx.params["demo"] or ctx.params["url"], example


def _readme_connect_events() -> list[str]:
    section = README.split("### JSON events (`--json`)", 1)[1].split("\n#", 1)[0]
    rows = re.findall(r"^\| `(\w+)`(?:, `(\w+)`)? \|", section, re.M)
    return [kind for row in rows for kind in row if kind and kind != "event"]


def _json_help(*command: str) -> str:
    text = " ".join(help_of(*command).split())
    return text.split("--json ", 1)[1].split(" --", 1)[0]


def test_json_help_names_the_event_kinds() -> None:
    kinds = set(_readme_connect_events())
    assert {"open", "message", "close", "expect", "ping", "pong"} <= kinds
    connect = _json_help("connect")
    for kind in kinds:
        assert re.search(rf"\b{kind}\b", connect), kind
    server_row = re.search(r"^\| `--json` \| events as JSON lines on \*\*stdout\*\*: (.*)$",
                           README, re.M)
    assert server_row is not None
    server_kinds = re.findall(r"`(\w+)`", server_row.group(1).split(", each with")[0])
    listen = _json_help("listen")
    for kind in server_kinds:
        assert re.search(rf"\b{kind}\b", listen), kind
    assert "message" not in _json_help("serve-echo")  # listen's only
    assert "step" in _json_help("run") and "summary" in _json_help("run")
    assert "replay" in _json_help("replay")
    assert "handshake" in _json_help("frame-dump")
    for name in cli.commands:
        assert "schema in README" not in help_of(name), name


def test_listen_help_lists_the_repl_commands() -> None:
    text = help_of("listen")
    for spec in LISTEN_COMMANDS:
        assert re.search(rf"^ +/{spec.name}\b.*{re.escape(spec.summary)}$", text, re.M), spec
    assert "//text" in text


@pytest.mark.parametrize("command", ["frame-dump", "replay"])
def test_key_password_help_promises_no_prompt(command: str) -> None:
    text = " ".join(help_of(command).split())
    key_password = text.split("--key-password TEXT ", 1)[1].split(" -", 1)[0]
    assert "Pass phrase" in key_password
    assert "connect" not in key_password and "asked" not in key_password


def test_connect_key_password_help_says_it_asks() -> None:
    assert "asked for on a terminal" in " ".join(help_of("connect").split())


def test_completion_help_and_readme_agree() -> None:
    text = help_of("completion")
    readme = README.split("\n## Shell completion\n", 1)[1].split("\n## ", 1)[0]
    shown = re.findall(r"^\s+(?:bash|zsh|fish):\s+(.*)$|^\s+\.\.\.(.*)$", text, re.M)
    commands = [a or f"...{b}" for a, b in shown]
    assert len(commands) == 4
    for command in commands:
        assert command.strip() in readme, command
    assert "~/.zfunc/_wstool" in text


USAGE_ERRORS = [
    (["connect", "--no-such-option", "ws://h/"], "no such option '--no-such-option'",
     "wstool connect"),
    (["connect"], "missing URL", "wstool connect"),  # wstool's own usage error
    (["completion"], "missing argument 'SHELL'", "wstool completion"),
    (["completion", "tcsh"], "'tcsh' is not one of", "wstool completion"),
    (["frame-dump", "-v", "x.bin"], "no such option '-v'", "wstool frame-dump"),
    (["nosuch"], "no such command 'nosuch'", "wstool"),
]


@pytest.mark.parametrize(("argv", "message", "command_path"), USAGE_ERRORS)
def test_usage_errors_in_wstool_style(argv: list[str], message: str, command_path: str) -> None:
    proc = run_wstool_inprocess(*argv)
    assert proc.returncode == 2
    assert proc.stdout == b""
    lines = proc.stderr.splitlines()
    assert len(lines) == 2, proc.stderr
    assert lines[0].startswith("wstool: error: ") and message in lines[0], proc.stderr
    assert not lines[0].endswith(".")
    assert lines[1] == f"Try '{command_path} -h' for help."
    assert "Usage:" not in proc.stderr and "Error:" not in proc.stderr


def test_usage_error_style_in_a_real_process() -> None:
    proc = run_wstool("connect", "--bogus")
    assert proc.returncode == 2
    first, hint = proc.stderr.splitlines()
    assert first.startswith("wstool: error: no such option '--bogus'")  # + click's guess
    assert hint == "Try 'wstool connect -h' for help."


def test_the_hint_works() -> None:
    # The hint names a command that exists and -h that is its help.
    proc = run_wstool_inprocess("connect", "-h")
    assert proc.returncode == 0
    assert proc.stdout.decode().startswith("Usage: wstool connect")


def test_bare_wstool_still_shows_the_help() -> None:
    proc = run_wstool_inprocess()
    assert "Commands:" in proc.stderr + proc.stdout.decode()
    assert "wstool: error" not in proc.stderr


def test_help_is_click_help() -> None:
    # Guard: the command classes stay click commands (completion and man pages walk them).
    assert all(isinstance(c, click.Command) for c in cli.commands.values())


@pytest.mark.parametrize("command", sorted(cli.commands))
def test_no_option_help_shows_an_empty_range(command: str) -> None:
    # click describes an unbounded FloatRange as "x<=None"; Seconds options have none.
    text = help_of(command)
    assert "None]" not in text and "None;" not in text
