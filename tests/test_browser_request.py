"""`connect --curl` and `connect --har` (issue 11): a browser's request, reused.

The parser is tested on the shape Chrome's "Copy as cURL" gives for a WebSocket
(with a non-loopback URL: parser only); the commands run in-process against the
websockets library's header-reflecting server on 127.0.0.1 (tests/servers.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests import servers
from tests.conftest import ServerThread, run_wstool_inprocess, start_websockets_server
from wstool.client.browser import har_request, parse_curl
from wstool.errors import ExitStatus, UsageError

DATA = Path(__file__).parent / "data"

# What Chrome's "Copy as cURL (bash)" gives for a WebSocket request (DevTools,
# Network, right-click the socket): the URL first, one -H per header with line
# continuations, Cookie as a header, and --compressed at the end.
CHROME_CURL = r"""curl 'wss://chat.example.com/socket?room=1' \
  -H 'Upgrade: websocket' \
  -H 'Origin: https://chat.example.com' \
  -H 'Cache-Control: no-cache' \
  -H 'Accept-Language: en-US,en;q=0.9' \
  -H 'Pragma: no-cache' \
  -H 'Cookie: session=abc123; theme=dark' \
  -H 'Connection: Upgrade' \
  -H 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==' \
  -H 'User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/131.0.0.0' \
  -H 'Sec-WebSocket-Version: 13' \
  -H 'Sec-WebSocket-Protocol: chat, superchat' \
  -H 'Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits' \
  --compressed"""


def test_chrome_copy_as_curl() -> None:
    request = parse_curl(CHROME_CURL)
    assert request.url == "wss://chat.example.com/socket?room=1"
    assert request.headers == (
        ("Origin", "https://chat.example.com"),
        ("Cache-Control", "no-cache"),
        ("Accept-Language", "en-US,en;q=0.9"),
        ("Pragma", "no-cache"),
        ("Cookie", "session=abc123; theme=dark"),
        ("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/131.0.0.0"),
    )
    assert request.subprotocols == ("chat", "superchat")
    assert request.dropped == ("Upgrade", "Connection", "Sec-WebSocket-Key",
                               "Sec-WebSocket-Version", "Sec-WebSocket-Extensions")


def test_curl_quoting_cookies_and_host() -> None:
    # $'…' (Chrome quotes so when a value holds ' or a control character), -b,
    # --header=, CRLF continuations, a Host equal to the URL's (dropped) and not.
    request = parse_curl("curl $'ws://h:8080/a' -H $'X-Quote: it\\'s \\x41\\u00e9' \r\n"
                         " -b 'a=1; b=2' --header='X-Two: 2' -H 'Host: h:8080'")
    assert request.url == "ws://h:8080/a"
    assert request.headers == (("X-Quote", "it's A\u00e9"), ("Cookie", "a=1; b=2"),
                               ("X-Two", "2"))
    assert request.dropped == ("Host",)
    other_host = parse_curl("curl https://h/ -H 'Host: other.example' -H ':authority: h'")
    assert other_host.headers == (("Host", "other.example"),)
    assert other_host.dropped == (":authority",)
    assert parse_curl("curl https://h:443/ -H 'Host: h'").dropped == ("Host",)


@pytest.mark.parametrize(("text", "fragment"), [
    ("wget https://h/", "not a curl command"),
    ("", "not a curl command"),
    ("curl -H 'X: y'", "no URL"),
    ("curl 'wss://h/", "cannot parse"),
    ("curl wss://h/ -X POST", "curl option -X is not supported"),
    ("curl wss://h/ -H NoColon", "invalid header 'NoColon'"),
    ("curl wss://h/ -b cookies.txt", "a cookie file is not read"),
    ("curl wss://a/ wss://b/", "two URLs"),
    ("curl wss://h/ -H", "-H needs a value"),
])
def test_curl_refuses(text: str, fragment: str) -> None:
    with pytest.raises(UsageError, match=fragment):
        parse_curl(text)


def test_har_request_headers() -> None:
    request, notices = har_request(str(DATA / "two-sockets.har"), socket_number=None)
    assert request.url == "ws://127.0.0.1:9/first"
    assert ("Origin", "http://127.0.0.1:8000") in request.headers
    assert ("Cookie", "session=abc123") in request.headers
    assert "Host" in request.dropped and "Sec-WebSocket-Key" in request.dropped
    assert request.subprotocols == ("chat", "superchat")
    assert "using the first" in notices[0]


@pytest.fixture
def reflect_url(server_thread: ServerThread) -> str:
    _server, url = start_websockets_server(server_thread, servers.reflect_headers,
                                           subprotocols=["superchat"])
    return url


def reflected(stdout: bytes) -> dict[str, object]:
    first: dict[str, object] = json.loads(stdout.splitlines()[0])
    return first


def test_connect_curl_sends_the_browser_headers(reflect_url: str) -> None:
    text = CHROME_CURL.replace("wss://chat.example.com/socket?room=1", reflect_url + "x")
    proc = run_wstool_inprocess("connect", "-n", "1", "--curl", text)
    assert proc.returncode == 0, proc.stderr
    seen = reflected(proc.stdout)
    headers = seen["headers"]
    assert isinstance(headers, dict)
    assert headers["origin"] == "https://chat.example.com"
    assert headers["cookie"] == "session=abc123; theme=dark"
    assert headers["user-agent"].startswith("Mozilla/5.0")
    assert headers["sec-websocket-protocol"] == "chat, superchat"
    assert seen["subprotocol"] == "superchat" and seen["path"] == "/x"
    assert ("wstool: --curl: dropped Upgrade, Connection, Sec-WebSocket-Key, "
            "Sec-WebSocket-Version, Sec-WebSocket-Extensions (the WebSocket handshake "
            "sends its own)") in proc.stderr
    assert "wstool: --curl: Sec-WebSocket-Protocol -> -s chat -s superchat" in proc.stderr


def test_connect_curl_from_stdin_and_options_override(reflect_url: str) -> None:
    text = f"curl '{reflect_url}' -H 'Origin: http://a' -H 'X-Keep: 1' -H 'X-Mine: old'"
    proc = run_wstool_inprocess("connect", "-n", "1", "--curl", "-", "-o", "http://b",
                                "-H", "X-Mine: new", "-s", "superchat", input=text.encode())
    assert proc.returncode == 0, proc.stderr
    headers = reflected(proc.stdout)["headers"]
    assert isinstance(headers, dict)
    assert (headers["origin"], headers["x-keep"], headers["x-mine"]) == ("http://b", "1", "new")


def test_connect_har_with_a_url(reflect_url: str) -> None:
    # The HAR's socket is ws://127.0.0.1:9/first; the URL argument sends it here instead.
    proc = run_wstool_inprocess("connect", "-n", "1", "--har", str(DATA / "two-sockets.har"),
                                "--socket", "1", reflect_url)
    assert proc.returncode == 0, proc.stderr
    headers = reflected(proc.stdout)["headers"]
    assert isinstance(headers, dict)
    assert headers["origin"] == "http://127.0.0.1:8000"
    assert headers["cookie"] == "session=abc123"
    assert "--har: dropped Host, Connection, Upgrade" in proc.stderr


@pytest.mark.parametrize(("args", "fragment"), [
    (["--curl", "wget https://h/"], "--curl: not a curl command"),
    (["--curl", "curl -H 'X: y'"], "--curl: no URL"),
    (["--curl", "curl ws://127.0.0.1:9/", "--har", "x.har"], "give --curl or --har"),
    (["--socket", "2", "ws://127.0.0.1:9/"], "--socket picks a WebSocket of --har"),
    (["--har", str(DATA / "two-sockets.har"), "--socket", "5"], "--socket 5:"),
    (["--demo", "--curl", "curl ws://127.0.0.1:9/"], "--demo or --curl/--har"),
])
def test_connect_browser_usage_errors(args: list[str], fragment: str) -> None:
    proc = run_wstool_inprocess("connect", *args)
    assert proc.returncode == ExitStatus.USAGE, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("wstool: error:")]
    assert len(errors) == 1 and fragment in errors[0], proc.stderr
