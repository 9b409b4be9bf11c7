"""The CLI edge (cli/options.py): click values in, frozen records out (issue 9, item 2).

Raw option dicts come from click itself (``Command.make_context``), so these run
the real option declarations, in-process, without starting a command.
"""

from __future__ import annotations

import asyncio
import io
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from wstool.cli.app import cli
from wstool.cli.cmd_connect import connect
from wstool.cli.cmd_dump import frame_dump_cmd
from wstool.cli.cmd_servers import listen_cmd, serve_echo_cmd
from wstool.cli.options import connect_config, frame_dump_plan, repl_config, server_config
from wstool.config import (
    DEFAULT_MAX_BUFFER_BYTES,
    DEFAULT_MAX_SIZE_BYTES,
    ConnectConfig,
    OutputConfig,
    ReplConfig,
    ServerConfig,
    Target,
)
from wstool.dump.frontend import DumpConfig, DumpPlan, OfflineSource
from wstool.dump.relay import RelayConfig
from wstool.errors import ExitStatus, UsageError
from wstool.protocol.frames import FrameDecoder
from wstool.term.env import Environment

WSTOOL = Path(__file__).resolve().parent.parent / "wstool"


def raw_options(command: click.Command, *args: str) -> dict[str, Any]:
    """What click hands the command function for ARGS."""
    with command.make_context(command.name or "wstool", list(args)) as ctx:
        return dict(ctx.params)


# -- one default per setting


def test_max_size_default_is_one_constant() -> None:
    assert DEFAULT_MAX_SIZE_BYTES == 16 * 1024 * 1024
    for command in (connect, listen_cmd, serve_echo_cmd):
        assert raw_options(command)["max_size"] == DEFAULT_MAX_SIZE_BYTES, command.name
    assert ConnectConfig(Target("ws://h/")).max_size_bytes == DEFAULT_MAX_SIZE_BYTES
    assert ServerConfig().max_size_bytes == DEFAULT_MAX_SIZE_BYTES
    assert connect_config("ws://h/", raw_options(connect)).max_size_bytes == DEFAULT_MAX_SIZE_BYTES
    assert server_config(raw_options(listen_cmd)).max_size_bytes == DEFAULT_MAX_SIZE_BYTES


def test_frame_dump_max_size_is_a_buffering_bound_of_its_own() -> None:
    raw = raw_options(frame_dump_cmd, "-")
    assert "max_size" not in raw
    assert raw["max_buffer"] == DEFAULT_MAX_BUFFER_BYTES
    assert DumpConfig().max_buffer_bytes == DEFAULT_MAX_BUFFER_BYTES
    assert FrameDecoder().max_buffer == DEFAULT_MAX_BUFFER_BYTES
    plan = frame_dump_plan(raw.pop("source"), raw)
    assert plan.cfg.max_buffer_bytes == DEFAULT_MAX_BUFFER_BYTES
    raw = raw_options(frame_dump_cmd, "--max-size", "0", "--listen", ":0", "ws://127.0.0.1:1/")
    plan = frame_dump_plan(raw.pop("source"), raw)
    assert plan.relay is not None and plan.relay.max_buffer_bytes is None


def test_16_mib_is_written_once() -> None:
    spelled = [
        f"{path.relative_to(WSTOOL)}:{n}"
        for path in sorted(WSTOOL.rglob("*.py"))
        if path.name != "connect_table.py"  # generated from the click options (issue 14)
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if "16 * 1024 * 1024" in line or "16777216" in line or "1 << 24" in line
    ]
    assert len(spelled) == 1 and spelled[0].startswith("config.py:"), spelled


# -- nothing below the edge sees click


# (That no module below cli/ imports click or wstool.cli is the import contract's
# job: tests/test_architecture.py.)


def test_dump_package_runs_on_records_alone() -> None:
    """No click value: a plan built by hand decodes RFC 6455 §5.7's first example."""
    stdout = io.BytesIO()
    env = Environment(stdin=io.BytesIO(b"81 05 48 65 6c 6c 6f"), stdout=stdout,
                      stderr=io.StringIO())
    plan = DumpPlan(DumpConfig(json=True), source=OfflineSource("-", hex_input=True))
    assert asyncio.run(plan.run(env)) == ExitStatus.OK
    assert b'"opcode": "TEXT"' in stdout.getvalue() and b'"text": "Hello"' in stdout.getvalue()


# -- frame-dump: options -> DumpConfig, RelayConfig, OfflineSource


def plan_for(*args: str) -> DumpPlan:
    raw = raw_options(frame_dump_cmd, *args)
    return frame_dump_plan(raw.pop("source"), raw)


def test_offline_plan() -> None:
    plan = plan_for("--hex", "--from", "client", "--max-size", "100", "--payload", "0", "-x",
                    "capture.hex")
    assert plan == DumpPlan(
        DumpConfig(direction="client", max_buffer_bytes=100, payload_limit=None, hexdump=True,
                   json=False, show_secrets=True),
        source=OfflineSource("capture.hex", hex_input=True),
    )


def test_pcap_plan() -> None:
    assert plan_for("--pcap", "c.pcapng", "--json") == DumpPlan(
        DumpConfig(json=True), pcap_path="c.pcapng")


def test_relay_plan() -> None:
    plan = plan_for("--listen", "[::1]:0", "wss://u:p@example.test:8443/chat?x=1",
                    "-H", "X-A: 1", "--open-timeout", "0", "--cacert", "ca.pem",
                    "--server-name", "other.test")
    assert plan.source is None and plan.pcap_path is None
    assert plan.cfg.show_secrets is False  # a relay masks credentials unless asked
    relay = plan.relay
    assert relay is not None
    assert (relay.listen_host, relay.listen_port) == ("::1", 0)
    upstream = relay.upstream
    assert upstream.target == Target("wss://example.test:8443/chat?x=1")
    assert upstream.auth == ("u", "p")
    assert upstream.headers == (("X-A", "1"),)
    assert upstream.tls.cafile == "ca.pem" and upstream.tls.server_name == "other.test"
    assert upstream.open_timeout_s is None
    assert upstream.proxy == ""
    assert (upstream.ping_interval_s, upstream.ping_timeout_s) == (None, None)
    assert plan_for("--listen", ":9", "ws://h/", "--show-secrets").cfg.show_secrets is True
    assert plan_for("--listen", ":9", "ws://h/").relay == RelayConfig(
        "127.0.0.1", 9, ConnectConfig(Target("ws://h/"), proxy="", ping_interval_s=None,
                                      ping_timeout_s=None))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--max-size", "-1", "f"], "invalid --max-size -1: must be 0 (no limit) or more"),
        (["--listen", ":0", "--pcap", "c", "ws://h/"], "give --listen or --pcap, not both"),
        (["--listen", ":0"], "--listen needs the URL to relay to (ws:// or wss://)"),
        (["--listen", ":0", "--hex", "ws://h/"],
         "--hex reads a file; it does not apply to --listen"),
        (["--listen", "nope", "ws://h/"],
         "invalid --listen 'nope': expected HOST:PORT (port 0-65535)"),
        (["--listen", ":70000", "ws://h/"],
         "invalid --listen ':70000': expected HOST:PORT (port 0-65535)"),
        (["--listen", ":0", "ftp://h/"],
         "invalid URL 'ftp://h/': scheme must be ws://, wss:// or ws+unix://"),
        (["--listen", ":0", "--key", "k.pem", "ws://h/"],
         "--key needs --cert (the client certificate it belongs to)"),
        (["--listen", ":0", "--open-timeout", "-1", "ws://h/"],
         "invalid --open-timeout: must be 0 (none) or more"),
        (["--listen", ":0", "-H", "bad", "ws://h/"],
         "invalid header 'bad': expected \"Name: value\""),
        (["--listen", ":0", "ws+unix:///tmp/s.sock"],
         "--listen relays to ws:// or wss:// URLs, not ws+unix://"),
        (["--pcap", "c", "extra"], "unexpected argument 'extra' with --pcap FILE"),
        ([], "missing FILE (or - for stdin, --listen HOST:PORT URL, --pcap FILE)"),
        (["-H", "X: 1", "f"], "-H and TLS options apply to --listen only"),
        (["-k", "f"], "-H and TLS options apply to --listen only"),
    ],
)
def test_frame_dump_usage_errors(args: list[str], message: str) -> None:
    with pytest.raises(UsageError) as info:
        plan_for(*args)
    assert str(info.value) == message


def test_frame_dump_usage_error_is_one_line_and_the_hint_exit_2() -> None:
    result = CliRunner().invoke(cli, ["frame-dump", "--max-size", "-1", "f"], prog_name="wstool")
    assert result.exit_code == ExitStatus.USAGE
    assert result.stderr == ("wstool: error: invalid --max-size -1: must be 0 (no limit) or more\n"
                             "Try 'wstool frame-dump -h' for help.\n")
    assert result.stdout == ""


# -- the REPL's record


def test_repl_config_from_connect_options() -> None:
    raw = raw_options(connect, "--vi", "--timestamps", "--no-pretty", "--base64", "-b", "u")
    cfg = repl_config(raw, {"XDG_STATE_HOME": "/state"}, OutputConfig(verbose=2,
                                                                       show_secrets=True))
    assert cfg == ReplConfig(vi=True, history_path=Path("/state/wstool/history"),
                             timestamps=True, pretty_json=False, base64=True, verbose=2,
                             show_secrets=True, prompt="ws> ", lines_as_binary=True)


def test_repl_config_from_listen_options() -> None:
    raw = raw_options(listen_cmd, "--no-history")
    cfg = repl_config(raw, {"HOME": "/home/u"}, OutputConfig(), prompt="listen> ")
    assert cfg == ReplConfig(history_path=None, prompt="listen> ")
    raw = raw_options(listen_cmd)
    cfg = repl_config(raw, {"HOME": "/home/u", "XDG_STATE_HOME": "relative"}, OutputConfig())
    assert cfg.history_path == Path("/home/u/.local/state/wstool/history")
