"""wstool run FILE: scenario files against real servers on 127.0.0.1 (issue 11)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import servers
from tests.conftest import ServerThread, run_wstool_inprocess, start_websockets_server
from tests.servers import ServeEcho
from wstool.errors import ExitStatus

EXAMPLE = Path(__file__).parent.parent / "examples" / "chat.toml"


@pytest.fixture
def serve_echo() -> Iterator[ServeEcho]:
    server = ServeEcho()
    yield server
    server.close()


def test_the_shipped_example_passes_against_serve_echo(serve_echo: ServeEcho,
                                                       tmp_path: Path) -> None:
    junit = tmp_path / "junit.xml"
    proc = run_wstool_inprocess("run", str(EXAMPLE), "--junit", str(junit),
                                env={"WSTOOL_URL": serve_echo.url})
    assert proc.returncode == 0, proc.stdout + proc.stderr.encode()
    out = proc.stdout.decode().splitlines()
    assert out[0] == f"scenario login and chat ({serve_echo.url})"
    assert sum(line.startswith("  ok ") for line in out) == 11
    assert out[-1].startswith("2 scenarios passed: 11 of 11 steps ok")
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None and suite.get("tests") == "2" and suite.get("failures") == "0"
    only = run_wstool_inprocess("run", str(EXAMPLE), "--only", "binary", "--json",
                                env={"WSTOOL_URL": serve_echo.url})
    events = [json.loads(line) for line in only.stdout.splitlines()]
    assert {e["scenario"] for e in events if e["event"] == "step"} == {"binary"}
    assert events[-1]["event"] == "summary" and events[-1]["steps_failed"] == 0


def _write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "s.toml"
    path.write_text(text)
    return str(path)


def test_binary_steps_arrive_as_binary(server_thread: ServerThread, tmp_path: Path) -> None:
    _s, url = start_websockets_server(server_thread, servers.describe_binary)
    (tmp_path / "blob").write_bytes(b"\xde\xad")
    path = _write(tmp_path, f"""
[connect]
url = "{url}"
[[step]]
send = {{ hex = "00 01 ff" }}
[[step]]
expect = "^binary:0001ff$"
[[step]]
send = {{ base64 = "AAE=" }}
[[step]]
expect = "^binary:0001$"
[[step]]
send = {{ file = "{tmp_path / 'blob'}" }}
[[step]]
expect = "^binary:dead$"
""")
    proc = run_wstool_inprocess("run", path)
    assert proc.returncode == 0, proc.stdout


def test_a_failed_step_exits_8_and_shows_in_junit(server_thread: ServerThread,
                                                  tmp_path: Path) -> None:
    _s, url = start_websockets_server(server_thread, servers.never_answers)
    path = _write(tmp_path, f"""
[connect]
url = "{url}"
[[scenario]]
name = "silent"
  [[scenario.step]]
  send = "hi"
  [[scenario.step]]
  expect = "pong"
  timeout = 0.3
  [[scenario.step]]
  send = "never sent"
""")
    junit = tmp_path / "j.xml"
    proc = run_wstool_inprocess("run", path, "--junit", str(junit), timeout=20)
    assert proc.returncode == ExitStatus.EXPECTATION_NOT_MET
    out = proc.stdout.decode()
    assert "  FAIL expect 'pong'" in out and "never sent" not in out
    assert "within timeout 0.3s (0 messages received)" in out
    assert "1 failed: 1 of 2 steps ok" in out.splitlines()[-1]
    case = ET.parse(junit).getroot().find("testsuite/testcase")
    assert case is not None and case.find("failure") is not None


def test_close_mid_scenario_and_close_codes(server_thread: ServerThread, tmp_path: Path) -> None:
    _s, url = start_websockets_server(server_thread, servers.close_after_first)
    path = _write(tmp_path, f"""
[connect]
url = "{url}"
[[step]]
send = "x"
[[step]]
expect = "first"
[[step]]
expect = "second"
""")
    proc = run_wstool_inprocess("run", path)
    assert proc.returncode == ExitStatus.EXPECTATION_NOT_MET
    assert b"the connection closed first (closed by the server: 1000" in proc.stdout
    _s, echo = start_websockets_server(server_thread, servers.lib_echo_like)
    path = _write(tmp_path, f"""
[connect]
url = "{echo}"
[[step]]
close = 4000
expect_code = 1000
""")
    proc = run_wstool_inprocess("run", path)
    assert proc.returncode == ExitStatus.EXPECTATION_NOT_MET
    assert b"expected close code 1000, got" in proc.stdout


def test_auth_then_subscribe_scenario(server_thread: ServerThread, tmp_path: Path) -> None:
    _s, url = start_websockets_server(server_thread, servers.auth_then_subscribe)
    path = _write(tmp_path, f"""
[connect]
url = "{url}"
[[step]]
send = '{{"op":"auth","user":"ann"}}'
[[step]]
capture = "token"
pattern = "json:.token"
[[step]]
send = '{{"op":"sub","token":"{{{{token}}}}","channel":"c"}}'
[[step]]
expect = 'json:.type == "tick" and .n == 2'
[[step]]
ping = true
max_rtt_ms = 5000
""")
    proc = run_wstool_inprocess("run", path)
    assert proc.returncode == 0, proc.stdout


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("[connect]\nurl = \n", "at line 2"),
        ("[[step]]\nsend = 'x'\n", "no url"),
        ("[connect]\nurl='ws://127.0.0.1:1/'\n[[step]]\nsend='{{x}}'\n",
         "unknown placeholder {{x}}"),
        ("[connect]\nurl='ws://127.0.0.1:1/'\n[[step]]\nexpect='('\n",
         "invalid regular expression"),
        ("[connect]\nurl='ws://127.0.0.1:1/'\n[[step]]\nsend='a'\nexpect='b'\n",
         "exactly one of"),
        ("[connect]\nurl='ws://127.0.0.1:1/'\nbogus=1\n[[step]]\nsend='a'\n",
         "unknown setting 'bogus'"),
        ("[connect]\nurl='ws://127.0.0.1:1/'\n[[step]]\nsend={hex='zz'}\n", "invalid send.hex"),
    ],
)
def test_mistakes_in_the_file_are_usage_errors(tmp_path: Path, text: str, fragment: str) -> None:
    proc = run_wstool_inprocess("run", _write(tmp_path, text))
    assert proc.returncode == ExitStatus.USAGE, proc.stderr
    assert fragment in proc.stderr


def test_only_names_an_existing_scenario(tmp_path: Path) -> None:
    proc = run_wstool_inprocess("run", str(EXAMPLE), "--only", "nope",
                                env={"WSTOOL_URL": "ws://127.0.0.1:1/"})
    assert proc.returncode == ExitStatus.USAGE
    assert "there are: binary, login and chat" in proc.stderr


def test_an_unreadable_scenario_file_is_status_1_like_any_unreadable_file(
        tmp_path: Path) -> None:
    proc = run_wstool_inprocess("run", str(tmp_path / "none.toml"))
    assert proc.returncode == ExitStatus.ERROR
    assert proc.stderr.splitlines()[0].startswith(
        f"wstool: error: cannot read {tmp_path / 'none.toml'}: No such file")
