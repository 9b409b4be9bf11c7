"""The config file (issue 13): [defaults], [profile.NAME], `connect @NAME`, `profiles`.

Each test writes its own $XDG_CONFIG_HOME/wstool/config.toml in a temporary directory
and connects to a header-reflecting server on 127.0.0.1 (tests/servers.py), so what
the file changed is what the server saw.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import (
    ServerThread,
    run_wstool,
    run_wstool_inprocess,
    scaled,
    start_websockets_server,
)
from tests.servers import ServeEcho, reflect_headers


@pytest.fixture
def reflect_url(server_thread: ServerThread) -> str:
    # The client's first choice, or none when none is offered.
    _server, url = start_websockets_server(
        server_thread, reflect_headers,
        select_subprotocol=lambda _ws, offered: offered[0] if offered else None)
    return url


def write_config(home: Path, text: str, mode: int = 0o600) -> Path:
    path = home / "wstool" / "config.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)
    return path


def seen(home: Path, *args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    """What the reflecting server saw on `wstool connect ARGS -n 1`."""
    result = run_wstool_inprocess("connect", *args, "-n", "1",
                                  env={"XDG_CONFIG_HOME": str(home), **(env or {})})
    assert result.returncode == 0, result.stderr
    reflected: dict[str, Any] = json.loads(result.stdout.decode().splitlines()[0])
    return reflected


def test_precedence_builtin_defaults_profile_command_line(tmp_path: Path,
                                                          reflect_url: str) -> None:
    builtin = seen(tmp_path, reflect_url)  # no file yet: the built-in defaults
    assert builtin["headers"]["user-agent"].startswith("wstool/")
    assert "permessage-deflate" in builtin["headers"]["sec-websocket-extensions"]

    write_config(tmp_path, f"""
[defaults]
compress = false
user-agent = "from-defaults"
header = ["X-Level: defaults", "X-Defaults: 1"]

[profile.local]
url = "{reflect_url}path?q=1"
user-agent = "from-profile"
subprotocol = ["v2"]
headers = ["X-Level: profile", "X-Profile: 1"]
""")
    defaults = seen(tmp_path, reflect_url)  # a URL, not @local: [defaults] only
    assert defaults["headers"]["user-agent"] == "from-defaults"
    assert "sec-websocket-extensions" not in defaults["headers"]
    assert defaults["headers"]["x-level"] == "defaults"
    assert defaults["subprotocol"] is None

    profile = seen(tmp_path, "@local")
    assert profile["path"] == "/path?q=1"
    assert profile["headers"]["user-agent"] == "from-profile"
    assert profile["subprotocol"] == "v2"
    # Headers merge by name: the profile's X-Level replaces the defaults' one.
    assert profile["headers"]["x-level"] == "profile"
    assert profile["headers"]["x-defaults"] == "1"
    assert profile["headers"]["x-profile"] == "1"
    assert "sec-websocket-extensions" not in profile["headers"]  # still [defaults]

    given = seen(tmp_path, "@local", "--user-agent", "from-cli", "-s", "chat",
                 "-H", "X-Level: cli", "--compress")
    assert given["headers"]["user-agent"] == "from-cli"
    assert given["subprotocol"] == "chat"
    assert given["headers"]["x-level"] == "cli"
    assert given["headers"]["x-profile"] == "1"  # a -H keeps the other headers
    assert "permessage-deflate" in given["headers"]["sec-websocket-extensions"]


def test_per_command_defaults_and_profile_messages(tmp_path: Path, reflect_url: str) -> None:
    write_config(tmp_path, f"""
[defaults]
user-agent = "general"

[defaults.connect]
user-agent = "connect-only"

[profile.chat]
url = "{reflect_url}"
execute = ["hello", "again"]
""")
    result = run_wstool_inprocess("connect", "@chat", "-n", "3",
                                  env={"XDG_CONFIG_HOME": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    first, *echoes = result.stdout.decode().splitlines()
    assert json.loads(first)["headers"]["user-agent"] == "connect-only"
    assert echoes == ["hello", "again"]
    # -x on the command line replaces the profile's messages.
    result = run_wstool_inprocess("connect", "@chat", "-x", "mine", "-n", "2",
                                  env={"XDG_CONFIG_HOME": str(tmp_path)})
    assert result.stdout.decode().splitlines()[1:] == ["mine"]


def test_env_reference_in_a_header(tmp_path: Path, reflect_url: str) -> None:
    path = write_config(tmp_path, f"""
[profile.api]
url = "{reflect_url}"
headers = ["Authorization: Bearer ${{env:WSTOOL_TEST_TOKEN}}"]
""", mode=0o644)  # world-readable, but no literal secret: no warning
    env = {"XDG_CONFIG_HOME": str(tmp_path), "WSTOOL_TEST_TOKEN": "s3cret"}
    result = run_wstool("connect", "@api", "-n", "1", env=env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["headers"]["authorization"] == "Bearer s3cret"
    assert "warning" not in result.stderr

    del env["WSTOOL_TEST_TOKEN"]
    result = run_wstool("connect", "@api", "-n", "1",
                        env={**env, "WSTOOL_TEST_TOKEN": ""})  # set but empty: allowed
    assert result.returncode == 0, result.stderr
    environ = {k: v for k, v in os.environ.items() if k != "WSTOOL_TEST_TOKEN"}
    unset = subprocess.run([sys.executable, "-m", "wstool", "connect", "@api"],
                           env={**environ, **env}, capture_output=True, text=True,
                           timeout=scaled(30))
    assert unset.returncode == 2
    assert unset.stderr == (f"wstool: error: {path}: profile.api.headers: environment "
                            "variable WSTOOL_TEST_TOKEN is not set (for "
                            "${env:WSTOOL_TEST_TOKEN})\n")


@pytest.mark.parametrize("mode, warned", [(0o644, True), (0o600, False)])
def test_world_readable_literal_authorization_warns(tmp_path: Path, reflect_url: str,
                                                    mode: int, warned: bool) -> None:
    path = write_config(tmp_path, f"""
[profile.api]
url = "{reflect_url}"
headers = ["Authorization: Bearer literal"]
""", mode=mode)
    result = run_wstool_inprocess("connect", "@api", "-n", "1",
                                  env={"XDG_CONFIG_HOME": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    warning = (f"wstool: warning: {path} is readable by every user and holds a literal "
               "Authorization header value (profile.api.headers); chmod 600 it, or write "
               "\"${env:NAME}\" instead\n")
    assert (warning in result.stderr) is warned
    assert result.stderr.count("warning") == int(warned)


@pytest.mark.parametrize("text, message", [
    ("[defaults]\ncompress = \n", "Invalid value (at line 2, column 12)"),
    ("[defaults]\nno-such-option = 1\n",
     "defaults.no-such-option: no wstool command has --no-such-option"),
    ("[defaults]\nping-interval = \"fast\"\n", "defaults.ping-interval: 'fast' is not a valid"),
    ("[defaults]\ncompress = \"no\"\n", "defaults.compress: expected true or false"),
    ("[defaults.connect]\nbroadcast = true\n",
     "defaults.connect.broadcast: wstool connect has no --broadcast"),
    ("[defaults.nope]\ncolor = true\n", "[defaults.nope]: no such command"),
    ("[profile.x]\nurl = 5\n", "profile.x.url: expected a string"),
    ("[profile.x]\nheaders = \"A: b\"\n", "profile.x.headers: expected a list of strings"),
    ("[profiles.x]\n", "unknown key 'profiles'"),
])
def test_bad_file_is_one_line_naming_the_path(tmp_path: Path, text: str,
                                              message: str) -> None:
    path = write_config(tmp_path, text)
    result = run_wstool_inprocess("connect", "--demo", "-x", "hi", "-n", "1",
                                  env={"XDG_CONFIG_HOME": str(tmp_path)})
    assert result.returncode == 2
    assert result.stderr.startswith(f"wstool: error: {path}: {message}")
    assert result.stderr.count("\n") == 1
    assert result.stdout == b""


def test_unknown_profile(tmp_path: Path) -> None:
    result = run_wstool_inprocess("connect", "@nope", env={"XDG_CONFIG_HOME": str(tmp_path)})
    assert result.returncode == 2
    assert result.stderr == (f"wstool: error: unknown profile '@nope': no config file at "
                             f"{tmp_path / 'wstool' / 'config.toml'}\n")
    path = write_config(tmp_path, '[profile.a]\nurl = "ws://127.0.0.1:1/"\n'
                                  '[profile.b]\nurl = "ws://127.0.0.1:2/"\n')
    result = run_wstool_inprocess("connect", "@nope", env={"XDG_CONFIG_HOME": str(tmp_path)})
    assert result.returncode == 2
    assert result.stderr == (f"wstool: error: {path}: unknown profile '@nope' "
                             "(profiles: @a, @b)\n")


def test_profiles_lists_names_and_urls(tmp_path: Path) -> None:
    env = {"XDG_CONFIG_HOME": str(tmp_path)}
    result = run_wstool_inprocess("profiles", env=env)
    assert (result.returncode, result.stdout) == (0, b"")
    assert "no config file at" in result.stderr
    write_config(tmp_path, '[profile.staging]\nurl = "wss://staging.example/ws?t=${env:T}"\n'
                           '[profile.local]\nurl = "ws://127.0.0.1:8765/"\n')
    result = run_wstool_inprocess("profiles", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode() == ("@staging  wss://staging.example/ws?t=${env:T}\n"
                                      "@local    ws://127.0.0.1:8765/\n")


def test_verbose_names_the_file_and_the_profile(tmp_path: Path, reflect_url: str) -> None:
    path = write_config(tmp_path, f'[profile.local]\nurl = "{reflect_url}"\n')
    env = {"XDG_CONFIG_HOME": str(tmp_path)}
    result = run_wstool_inprocess("connect", "@local", "-n", "1", "-v", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines()[0] == f"* config {path}, profile local"
    result = run_wstool_inprocess("connect", reflect_url, "-n", "1", "-v", env=env)
    assert result.stderr.splitlines()[0] == f"* config {path}"
    result = run_wstool_inprocess("connect", reflect_url, "-n", "1", env=env)
    assert "* config" not in result.stderr


def test_defaults_of_a_server_command(tmp_path: Path) -> None:
    """[defaults.serve-echo] reaches serve-echo (a real process), and [defaults] keys
    apply to every command that has the option (ping-interval: connect and servers)."""
    write_config(tmp_path, '[defaults]\nping-interval = 5\n'
                           '[defaults.serve-echo]\ngreeting = "configured hello"\n')
    env = {"XDG_CONFIG_HOME": str(tmp_path)}
    server = ServeEcho(env=env)
    try:
        result = run_wstool_inprocess("connect", server.url, "-x", "hi", "-n", "2", env=env)
        assert result.returncode == 0, result.stderr
        assert result.stdout == b"configured hello\nhi\n"
    finally:
        server.close()


def test_version_does_not_read_the_file(tmp_path: Path) -> None:
    write_config(tmp_path, "this is not toml\n")
    result = subprocess.run([sys.executable, "-X", "importtime", "-m", "wstool", "--version"],
                            env={**os.environ, "XDG_CONFIG_HOME": str(tmp_path)},
                            capture_output=True, text=True, timeout=scaled(30))
    assert result.returncode == 0, result.stderr
    assert "tomllib" not in result.stderr
    # ...while a command does read it (so the check above could fail).
    result = subprocess.run([sys.executable, "-X", "importtime", "-m", "wstool", "profiles"],
                            env={**os.environ, "XDG_CONFIG_HOME": str(tmp_path)},
                            capture_output=True, text=True, timeout=scaled(30))
    assert result.returncode == 2
    assert "tomllib" in result.stderr


def test_readme_example_file_is_valid(tmp_path: Path) -> None:
    """README "Profiles and defaults": its example loads and means what it says."""
    from wstool.cli.app import cli
    from wstool.cli.profiles import default_map, load_config

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme.split("## Profiles and defaults", 1)[1].split("\n## ", 1)[0]
    example = section.split("```toml\n", 1)[1].split("```", 1)[0]
    write_config(tmp_path, example)
    environ = {"XDG_CONFIG_HOME": str(tmp_path), "HOME": "/home/u", "STAGING_TOKEN": "t"}
    config = load_config(environ, cli)
    assert config is not None and config.warnings == ()
    connect = default_map(config, "connect", cli.commands["connect"], environ, "staging")
    assert connect["headers"] == ["Authorization: Bearer t", "X-Client: wstool"]
    assert connect["compress"] is False and connect["max_size"] == 0
    assert connect["cacert"] == os.path.expanduser("~/certs/staging-ca.pem")
    dump = default_map(config, "frame-dump", cli.commands["frame-dump"], environ)
    assert "max_buffer" not in dump and dump["color"] is False
    local = default_map(config, "connect", cli.commands["connect"], environ, "local")
    assert local["headers"] == ["X-Debug: 1"]
