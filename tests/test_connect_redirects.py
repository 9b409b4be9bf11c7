"""Issue 10, redirects: a 3xx answer to the upgrade is reported (exit 4) unless -L
follows it; with -L each hop is shown (-v, --json), TLS options apply to a wss://
hop, --max-redirects bounds them, and traffic flows on the final connection.

The redirecting servers are the websockets library's own (process_request answers
the upgrade with a 3xx), all on 127.0.0.1 / localhost.
"""

from __future__ import annotations

import json
import ssl
from pathlib import Path
from typing import Any

import pytest
import trustme
from websockets.asyncio.server import ServerConnection
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from tests.conftest import ServerThread, lib_echo, run_wstool_inprocess, start_websockets_server
from wstool.errors import ExitStatus


def _redirecting(server_thread: ServerThread, location: str, status: int = 302,
                 reason: str = "Found") -> str:
    def redirect(_ws: ServerConnection, _request: Request) -> Response:
        return Response(status, reason, Headers({"Location": location,
                                                 "Content-Length": "0"}), b"")

    _s, url = start_websockets_server(server_thread, lib_echo, process_request=redirect)
    return url


def test_a_redirect_is_reported_not_followed_by_default(
    server_thread: ServerThread, lib_echo_url: str
) -> None:
    url = _redirecting(server_thread, lib_echo_url + "final")
    proc = run_wstool_inprocess("connect", url, input=b"hello\n")
    assert proc.returncode == ExitStatus.HANDSHAKE_REJECTED
    assert proc.stderr == (f"wstool: error: HTTP 302 Found -> {lib_echo_url}final "
                           "(use -L to follow)\n")
    assert proc.stdout == b""


def test_location_follows_and_names_the_final_url(
    server_thread: ServerThread, lib_echo_url: str
) -> None:
    url = _redirecting(server_thread, lib_echo_url + "final")
    proc = run_wstool_inprocess("connect", "-L", "-v", url, input=b"hello\n")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == b"hello\n"
    lines = proc.stderr.splitlines()
    hop = lines.index(f"wstool: redirected: HTTP 302 Found -> {lib_echo_url}final")
    assert "< HTTP/1.1 302 Found" in lines[:hop]  # -v shows the hop's response
    assert any(line.startswith(f"wstool: connected to {lib_echo_url}final;")
               for line in lines[hop + 1:])
    assert "1006" not in proc.stderr


def test_json_has_a_redirect_event_and_messages_before_the_close(
    server_thread: ServerThread, lib_echo_url: str
) -> None:
    url = _redirecting(server_thread, lib_echo_url)
    proc = run_wstool_inprocess("connect", "-L", "--json", url, input=b"one\n")
    assert proc.returncode == 0, proc.stderr
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [e["event"] for e in events] == ["redirect", "open", "message", "message", "close"]
    assert events[0] == {**events[0], "status": 302, "from": url, "to": lib_echo_url}
    assert events[1]["url"] == lib_echo_url
    assert events[4]["code"] == 1000


def test_http_locations_become_ws_urls(
    server_thread: ServerThread, lib_echo_url: str
) -> None:
    port = lib_echo_url.rsplit(":", 1)[1].strip("/")
    # http:// (a web server's generic rule) means ws://
    first = _redirecting(server_thread, f"http://127.0.0.1:{port}/via-http", status=301,
                         reason="Moved Permanently")
    proc = run_wstool_inprocess("connect", "-L", "-v", first, input=b"x\n")
    assert proc.returncode == 0, proc.stderr
    assert f"-> ws://127.0.0.1:{port}/via-http" in proc.stderr


def test_max_redirects_bounds_the_hops(server_thread: ServerThread, lib_echo_url: str) -> None:
    second = _redirecting(server_thread, lib_echo_url)
    first = _redirecting(server_thread, second)
    ok = run_wstool_inprocess("connect", "-L", "--max-redirects", "2", first, input=b"x\n")
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout == b"x\n"
    proc = run_wstool_inprocess("connect", "-L", "--max-redirects", "1", first, input=b"x\n")
    assert proc.returncode == ExitStatus.HANDSHAKE_REJECTED
    assert proc.stderr == (f"wstool: error: more than --max-redirects 1 redirects "
                           f"(the last to {lib_echo_url})\n")


def test_more_hops_than_the_librarys_default_of_ten(
    server_thread: ServerThread, lib_echo_url: str
) -> None:
    url = lib_echo_url
    for _ in range(11):
        url = _redirecting(server_thread, url)
    proc = run_wstool_inprocess("connect", "-L", "--max-redirects", "11", url, input=b"x\n")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == b"x\n"


@pytest.fixture
def tls_echo(server_thread: ServerThread, tmp_path: Path) -> tuple[str, str]:
    """A wss:// echo on localhost with a trustme certificate; (url, CA file)."""
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(context)
    _s, url = start_websockets_server(server_thread, lib_echo, ssl=context)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    port = url.rsplit(":", 1)[1].strip("/")
    return f"wss://localhost:{port}/", str(ca_file)


def test_ws_to_wss_cross_host_redirect_uses_the_tls_options(
    server_thread: ServerThread, tls_echo: tuple[str, str]
) -> None:
    wss_url, ca_file = tls_echo
    url = _redirecting(server_thread, wss_url)  # ws://127.0.0.1 -> wss://localhost
    proc = run_wstool_inprocess("connect", "-L", "--cacert", ca_file, "-v", url, input=b"secure\n")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == b"secure\n"
    assert f"wstool: connected to {wss_url}" in proc.stderr
    # Without the CA, the final host's certificate is checked (and refused).
    untrusted = run_wstool_inprocess("connect", "-L", url, input=b"x\n")
    assert untrusted.returncode == ExitStatus.CONNECT_FAILED
    assert "not trusted" in untrusted.stderr


def test_a_downgrade_from_wss_to_ws_is_refused(
    server_thread: ServerThread, tmp_path: Path, lib_echo_url: str
) -> None:
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)

    def redirect(_ws: Any, _request: Request) -> Response:
        return Response(302, "Found", Headers({"Location": lib_echo_url,
                                               "Content-Length": "0"}), b"")

    _s, url = start_websockets_server(server_thread, lib_echo, ssl=context,
                                      process_request=redirect)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    proc = run_wstool_inprocess("connect", "-L", "--cacert", str(ca_file),
                      url.replace("ws://", "wss://"), input=b"x\n")
    assert proc.returncode == ExitStatus.HANDSHAKE_REJECTED
    assert "non-secure" in proc.stderr
    assert len(proc.stderr.splitlines()) == 1
