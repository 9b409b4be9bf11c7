"""Issue 10, "Headers and URLs": a -H never duplicates a header the handshake sends,
a bare port means localhost, and a URL that can only be a typo never reaches DNS.

Network tests use real servers on 127.0.0.1; URLs that would be resolved elsewhere
are tested on the parser only (tests/test_config.py) or fail as usage errors here
before anything is looked up.
"""

from __future__ import annotations

import json

import pytest
from websockets.asyncio.server import ServerConnection

from tests.conftest import ServerThread, run_wstool_inprocess, start_websockets_server
from wstool.config import parse_target
from wstool.errors import ExitStatus, UsageError


async def _raw_headers(ws: ServerConnection) -> None:
    """First message: the request's header lines in order, duplicates kept."""
    assert ws.request is not None
    await ws.send(json.dumps([[k.lower(), v] for k, v in ws.request.headers.raw_items()]))


def _sent_headers(server_thread: ServerThread, *args: str) -> list[list[str]]:
    _s, url = start_websockets_server(server_thread, _raw_headers)
    proc = run_wstool_inprocess("connect", "-n", "1", *args, url, input=None)
    assert proc.returncode == 0, proc.stderr
    headers: list[list[str]] = json.loads(proc.stdout)
    return headers


def test_host_header_replaces_the_default_and_comes_first(server_thread: ServerThread) -> None:
    headers = _sent_headers(server_thread, "-H", "Host: example.test")
    hosts = [value for name, value in headers if name == "host"]
    assert hosts == ["example.test"]
    assert headers[0] == ["host", "example.test"]


def test_user_agent_header_replaces_the_default(server_thread: ServerThread) -> None:
    headers = _sent_headers(server_thread, "-H", "User-Agent: curl/8.5")
    assert [value for name, value in headers if name == "user-agent"] == ["curl/8.5"]


def test_origin_header_is_sent_once(server_thread: ServerThread) -> None:
    headers = _sent_headers(server_thread, "-H", "Origin: https://app.test")
    assert [value for name, value in headers if name == "origin"] == ["https://app.test"]


@pytest.mark.parametrize(
    ("header", "fragment"),
    [
        ("Upgrade: websocket", "the WebSocket handshake sets Upgrade itself"),
        ("connection: Upgrade", "sets connection itself"),
        ("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "sets Sec-WebSocket-Key itself"),
        ("Sec-WebSocket-Version: 13", "sets Sec-WebSocket-Version itself"),
        ("Sec-WebSocket-Protocol: chat", "use -s/--subprotocol NAME instead"),
        ("Sec-WebSocket-Extensions: permessage-deflate", "use --compress/--no-compress"),
    ],
)
def test_headers_the_handshake_makes_are_usage_errors(header: str, fragment: str) -> None:
    proc = run_wstool_inprocess("connect", "-H", header, "ws://127.0.0.1:1/")
    assert proc.returncode == ExitStatus.USAGE
    assert fragment in proc.stderr
    # One error line, then where the help is (issue 13).
    assert proc.stderr.strip().splitlines()[1:] == ["Try 'wstool connect -h' for help."]


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--user-agent", "a", "-H", "User-Agent: b"], "give the User-Agent once"),
        (["-o", "https://a.test", "-H", "Origin: https://b.test"], "give the Origin once"),
        (["-H", "Host: a", "-H", "Host: b"], "-H 'Host' given twice"),
    ],
)
def test_a_header_given_two_ways_is_a_usage_error(args: list[str], fragment: str) -> None:
    proc = run_wstool_inprocess("connect", *args, "ws://127.0.0.1:1/")
    assert proc.returncode == ExitStatus.USAGE
    assert fragment in proc.stderr


@pytest.mark.parametrize("form", ["{port}", ":{port}"])
def test_a_bare_port_connects_to_localhost(server_thread: ServerThread, form: str) -> None:
    async def echo(ws: ServerConnection) -> None:
        async for message in ws:
            await ws.send(message)

    # Bound on 127.0.0.1 only: if "localhost" gives ::1 first, that attempt is refused
    # and the client goes on to 127.0.0.1 (asyncio tries every address).
    server, _url = start_websockets_server(server_thread, echo)
    port = next(iter(server.sockets)).getsockname()[1]
    # Loopback guard: were this parsed as a host, the process would dial 0.0.x.x.
    assert parse_target(form.format(port=port)).url == f"ws://localhost:{port}/"
    proc = run_wstool_inprocess("connect", "-v", form.format(port=port), input=b"hi\n")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == b"hi\n"
    assert f"ws://localhost:{port}/" in proc.stderr


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("ws//127.0.0.1:1/", "did you mean ws://127.0.0.1:1/?"),
        ("ws://local host/", "contains a space"),
        ("ws://9100/", "the host '9100' is a number"),
    ],
)
def test_malformed_urls_are_usage_errors_before_any_lookup(url: str, fragment: str) -> None:
    # Loopback guard: the parser must refuse it before a process could look it up.
    with pytest.raises(UsageError, match=fragment.replace("?", "\\?")):
        parse_target(url)
    proc = run_wstool_inprocess("connect", url)
    assert proc.returncode == ExitStatus.USAGE
    assert fragment in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_url_where_the_subcommand_belongs_suggests_connect() -> None:
    proc = run_wstool_inprocess("ws://127.0.0.1:1/", "-n", "1")
    assert proc.returncode == ExitStatus.USAGE
    assert "did you mean: wstool connect ws://127.0.0.1:1/ -n 1" in proc.stderr
    other = run_wstool_inprocess("bogus")
    assert other.returncode == ExitStatus.USAGE
    assert "did you mean" not in other.stderr
