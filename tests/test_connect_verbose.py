"""Issue 10, "-v that helps exactly when things fail": a failed handshake shows the
request and whatever came back (any status, HTTP/1.0 too, bodies bounded and
escaped); curl-style ``*`` lines for each connection step with timings (resolve,
TCP, TLS, the server certificate, the upgrade); ``--keylog`` for Wireshark.

Peers: the websockets library's server (process_request answering with a status),
raw asyncio responders writing HTTP/1.0 or non-HTTP bytes, a trustme TLS server,
the tests' HTTP CONNECT proxy, a Unix socket; all on 127.0.0.1 / localhost.
"""

from __future__ import annotations

import asyncio
import re
import ssl
import time
from pathlib import Path
from typing import Any

import pytest
import trustme
from websockets.asyncio.server import ServerConnection
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from tests import servers
from tests.conftest import (
    ServerThread,
    closed_port,
    lib_echo,
    run_wstool,
    scaled,
    start_websockets_server,
)
from wstool.errors import ExitStatus
from wstool.events import ConnectPhase, Handshake
from wstool.term.render import body_lines, connect_phase_line, handshake_lines

NO_PROXY_ENV = {"HTTP_PROXY": "", "HTTPS_PROXY": "", "ALL_PROXY": "", "NO_PROXY": "",
                "http_proxy": "", "https_proxy": "", "all_proxy": "", "no_proxy": ""}


async def _never(ws: ServerConnection) -> None:
    raise AssertionError("the handshake should have been rejected")


def _raw_responder(server_thread: ServerThread, answer: bytes, *,
                   keep_open: bool = False) -> str:
    """A bare TCP server: reads the request head, writes ANSWER, closes (or not)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(answer)
        await writer.drain()
        if keep_open:
            await reader.read()  # a keep-alive server: the client must not wait for us
        writer.close()

    async def start() -> asyncio.Server:
        return await asyncio.start_server(handle, "127.0.0.1", 0)

    server = server_thread.run(start())
    return f"ws://127.0.0.1:{servers.port_of(server)}/"


HTTP10_404 = (b"HTTP/1.0 404 Not Found\r\nContent-Type: text/plain\r\nServer: raw\r\n\r\n"
              b"no such page\nsecond line\n")


# A rejected handshake: the error, and what -v shows of it


def test_http10_status_is_the_error_not_an_invalid_response(
    server_thread: ServerThread,
) -> None:
    url = _raw_responder(server_thread, HTTP10_404)
    proc = run_wstool("connect", url, input=b"x\n")
    assert proc.returncode == ExitStatus.HANDSHAKE_REJECTED
    assert proc.stderr == ("wstool: error: server rejected the WebSocket handshake: "
                           "HTTP/1.0 404 Not Found: no such page\n")


def test_verbose_shows_the_http10_response(server_thread: ServerThread) -> None:
    url = _raw_responder(server_thread, HTTP10_404)
    proc = run_wstool("connect", "-v", url, input=b"x\n")
    assert proc.returncode == ExitStatus.HANDSHAKE_REJECTED
    lines = proc.stderr.splitlines()
    request = lines.index("> GET / HTTP/1.1")
    status = lines.index("< HTTP/1.0 404 Not Found")
    assert request < status
    assert lines[status + 1 : status + 6] == [
        "< Content-Type: text/plain", "< Server: raw", "<", "< no such page",
        "< second line"]
    assert re.fullmatch(r"\* answered in [\d.]+ ms", lines[status + 6])
    assert lines[-1].startswith("wstool: error: server rejected the WebSocket handshake: "
                                "HTTP/1.0 404 Not Found")


def test_http10_response_with_length_does_not_wait_for_the_close(
    server_thread: ServerThread,
) -> None:
    body = b"gone\n"
    url = _raw_responder(server_thread, b"HTTP/1.0 410 Gone\r\nContent-Length: 5\r\n"
                                        b"Connection: keep-alive\r\n\r\n" + body,
                         keep_open=True)
    start = time.monotonic()
    proc = run_wstool("connect", "--open-timeout", "60", url, timeout=20)
    assert proc.returncode == ExitStatus.HANDSHAKE_REJECTED
    assert "HTTP/1.0 410 Gone: gone" in proc.stderr
    assert time.monotonic() - start < scaled(15)  # not the open timeout


def test_http10_switching_protocols_names_the_version(server_thread: ServerThread) -> None:
    url = _raw_responder(server_thread, b"HTTP/1.0 101 Switching Protocols\r\n"
                                        b"Upgrade: websocket\r\n\r\n")
    proc = run_wstool("connect", url)
    assert proc.returncode == ExitStatus.HANDSHAKE_REJECTED
    assert "HTTP/1.0 101 Switching Protocols (WebSocket needs HTTP/1.1" in proc.stderr


def test_verbose_shows_bytes_that_are_not_http(server_thread: ServerThread) -> None:
    url = _raw_responder(server_thread, b"SSH-2.0-OpenSSH_9.6\r\n\x1b[2J\r\n")
    proc = run_wstool("connect", "-v", url)
    assert proc.returncode == ExitStatus.HANDSHAKE_REJECTED
    assert "* received, not an HTTP response:\n< SSH-2.0-OpenSSH_9.6\n< \\e[2J\n" \
        in proc.stderr
    assert "\x1b" not in proc.stderr
    assert "did not receive a valid HTTP response" in proc.stderr  # the library's words


@pytest.mark.parametrize(("status", "reason"), [(403, "Forbidden"), (404, "Not Found"),
                                                (500, "Internal Server Error")])
def test_verbose_shows_any_rejection_with_its_body(
    server_thread: ServerThread, status: int, reason: str
) -> None:
    def reject(ws: ServerConnection, request: Request) -> Response:
        return ws.respond(status, f"{reason} here\nmore detail\n")

    _s, url = start_websockets_server(server_thread, _never, process_request=reject)
    proc = run_wstool("connect", "-v", "-H", "Authorization: Bearer sekrit", url)
    assert proc.returncode == ExitStatus.HANDSHAKE_REJECTED
    lines = proc.stderr.splitlines()
    at = lines.index(f"< HTTP/1.1 {status} {reason}")
    assert "> Authorization: Bearer ***" in lines[:at]  # secrets stay masked
    blank = lines.index("<", at)
    assert lines[blank + 1 : blank + 3] == [f"< {reason} here", "< more detail"]
    assert lines[-1] == (f"wstool: error: server rejected the WebSocket handshake: "
                         f"HTTP {status} {reason}: {reason} here")


def test_verbose_rejection_without_a_body(server_thread: ServerThread) -> None:
    def reject(ws: ServerConnection, request: Request) -> Response:
        return Response(403, "Forbidden", Headers({"Content-Length": "0"}), b"")

    _s, url = start_websockets_server(server_thread, _never, process_request=reject)
    proc = run_wstool("connect", "-v", url)
    assert proc.returncode == ExitStatus.HANDSHAKE_REJECTED
    lines = proc.stderr.splitlines()
    blank = lines.index("<", lines.index("< HTTP/1.1 403 Forbidden"))
    assert lines[blank + 1].startswith("* answered in ")


def test_verbose_bounds_and_escapes_a_huge_or_binary_body(server_thread: ServerThread) -> None:
    text_body = "".join(f"line {i} \x1b]0;pwned\x07\n" for i in range(5000)).encode()
    binary_body = b"\x89PNG\r\n\x1a\n\x00\x00" + bytes(range(256)) * 100

    def reject(ws: ServerConnection, request: Request) -> Response:
        body = binary_body if request.path == "/bin" else text_body
        return Response(500, "Oops", Headers({"Content-Length": str(len(body))}), body)

    _s, url = start_websockets_server(server_thread, _never, process_request=reject)
    proc = run_wstool("connect", "-v", url)
    assert proc.returncode == ExitStatus.HANDSHAKE_REJECTED
    assert "\x1b" not in proc.stderr and "\x07" not in proc.stderr
    body = [line for line in proc.stderr.splitlines() if line.startswith("< line ")]
    assert body[0] == "< line 0 \\e]0;pwned\\x07"
    assert len(body) == 10
    assert f"< [... {len(text_body)} bytes in all]" in proc.stderr
    proc = run_wstool("connect", "-v", url + "bin")
    assert (f"< [binary body, {len(binary_body)} bytes: 89 50 4e 47 0d 0a 1a 0a 00 00 00 01 "
            "02 03 04 05 ...]") in proc.stderr.splitlines()


def test_verbose_shows_the_request_when_no_response_came(server_thread: ServerThread) -> None:
    url = _raw_responder(server_thread, b"")  # reads the request, closes
    proc = run_wstool("connect", "-v", url)
    assert proc.returncode == ExitStatus.HANDSHAKE_REJECTED
    assert "> GET / HTTP/1.1" in proc.stderr
    assert "* no response\n" in proc.stderr


# Connection steps


def _star_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("* ")]


def test_verbose_connection_lines_in_order(lib_echo_url: str) -> None:
    port = lib_echo_url.rsplit(":", 1)[1].strip("/")
    proc = run_wstool("connect", "-v", lib_echo_url, input=b"hi\n", env=NO_PROXY_ENV)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == b"hi\n"
    lines = proc.stderr.splitlines()
    assert lines[0] == f"* connecting to 127.0.0.1 port {port}"
    assert re.fullmatch(rf"\* connected to 127\.0\.0\.1 port {port} \(TCP [\d.]+ ms\)",
                        lines[1])
    assert lines[2] == "> GET / HTTP/1.1"
    upgraded = next(i for i, line in enumerate(lines) if line.startswith("* upgraded in "))
    assert lines[upgraded - 1] == "<"
    assert lines[upgraded + 1].startswith(f"wstool: connected to {lib_echo_url}")


def test_no_connection_lines_without_verbose(lib_echo_url: str) -> None:
    proc = run_wstool("connect", lib_echo_url, input=b"hi\n", env=NO_PROXY_ENV)
    assert proc.returncode == 0
    assert _star_lines(proc.stderr) == []


def test_verbose_resolves_a_name(lib_echo_url: str) -> None:
    url = lib_echo_url.replace("127.0.0.1", "localhost")
    proc = run_wstool("connect", "-v", url, input=b"hi\n", env=NO_PROXY_ENV)
    assert proc.returncode == 0, proc.stderr
    stars = _star_lines(proc.stderr)
    assert re.fullmatch(r"\* resolved localhost to [0-9a-f:., ]+ \([\d.]+ ms\)", stars[0])
    assert "127.0.0.1" in stars[0]
    assert any(line.startswith("* connected to 127.0.0.1 port ") for line in stars)


def test_verbose_shows_each_failed_address() -> None:
    port = closed_port()
    proc = run_wstool("connect", "-v", f"ws://127.0.0.1:{port}/", env=NO_PROXY_ENV)
    assert proc.returncode == ExitStatus.CONNECT_FAILED
    stars = _star_lines(proc.stderr)
    assert stars[0] == f"* connecting to 127.0.0.1 port {port}"
    assert re.fullmatch(rf"\* connect to 127\.0\.0\.1 port {port} failed: Connection "
                        r"refused \([\d.]+ ms\)", stars[1])
    assert proc.stderr.endswith(f"wstool: error: connection refused by ws://127.0.0.1:{port}/\n")


@pytest.fixture
def tls_server(server_thread: ServerThread, tmp_path: Path) -> tuple[str, Path]:
    ca = trustme.CA()
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(context)
    _s, url = start_websockets_server(server_thread, lib_echo, ssl=context)
    return url.replace("ws://127.0.0.1", "wss://localhost"), ca_file


def test_verbose_tls_lines(tls_server: tuple[str, Path]) -> None:
    url, ca_file = tls_server
    proc = run_wstool("connect", "-v", "--cacert", str(ca_file), url, input=b"tls\n",
                      env=NO_PROXY_ENV)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == b"tls\n"
    stars = _star_lines(proc.stderr)
    tls = next(line for line in stars if line.startswith("* TLS "))
    assert re.fullmatch(r"\* TLS TLSv1\.[23], cipher \S+, ALPN none \([\d.]+ ms\)", tls)
    cert = stars[stars.index(tls) + 1]
    assert re.fullmatch(r"\* server certificate: subject O=trustme[^;]*; issuer O=trustme"
                        r"[^;]*; SAN DNS:localhost, IP:127\.0\.0\.1; expires \d{4}-\d\d-\d\d "
                        r"\d\d:\d\d:\d\d UTC", cert)
    assert proc.stderr.index(cert) < proc.stderr.index("> GET / HTTP/1.1")


def test_verbose_tls_insecure_gives_the_fingerprint(tls_server: tuple[str, Path]) -> None:
    url, _ca_file = tls_server
    proc = run_wstool("connect", "-v", "-k", url, input=b"tls\n", env=NO_PROXY_ENV)
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"^\* server certificate: not verified \(-k/--insecure\); SHA-256 "
                     r"([0-9A-F]{2}:){31}[0-9A-F]{2}$", proc.stderr, re.M)


def test_keylog_writes_tls_secrets(tls_server: tuple[str, Path], tmp_path: Path) -> None:
    url, ca_file = tls_server
    keylog = tmp_path / "keys.log"
    proc = run_wstool("connect", "--cacert", str(ca_file), "--keylog", str(keylog), url,
                      input=b"k\n", env=NO_PROXY_ENV)
    assert proc.returncode == 0, proc.stderr
    text = keylog.read_text()
    assert re.search(r"^(CLIENT_TRAFFIC_SECRET_0|CLIENT_RANDOM) [0-9a-f]{64} [0-9a-f]+$",
                     text, re.M), text


def test_keylog_in_a_missing_directory_is_one_line(
    tls_server: tuple[str, Path], tmp_path: Path
) -> None:
    url, ca_file = tls_server
    proc = run_wstool("connect", "--cacert", str(ca_file), "--keylog",
                      str(tmp_path / "no" / "keys.log"), url, env=NO_PROXY_ENV)
    assert proc.returncode == ExitStatus.ERROR
    assert proc.stderr.startswith("wstool: error: cannot write --keylog ")


def test_verbose_through_a_proxy_hides_its_credentials(
    server_thread: ServerThread, lib_echo_url: str
) -> None:
    log = servers.ProxyLog()
    _server, port = server_thread.run(servers.start_http_proxy(log))
    proc = run_wstool("connect", "-v", "--proxy", f"http://user:secret@127.0.0.1:{port}",
                      lib_echo_url, input=b"p\n", env=NO_PROXY_ENV)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == b"p\n"
    stars = _star_lines(proc.stderr)
    assert stars[0].endswith(f"through proxy http://127.0.0.1:{port}")
    assert "secret" not in proc.stderr
    assert re.fullmatch(r"\* connected to .* through proxy \S+ \([\d.]+ ms\)", stars[1])


def test_verbose_over_a_unix_socket(server_thread: ServerThread, tmp_path: Path) -> None:
    from websockets.asyncio.server import unix_serve

    path = str(tmp_path / "ws.sock")

    async def start() -> Any:
        return await unix_serve(lib_echo, path)

    server_thread.run(start())
    proc = run_wstool("connect", "-v", f"ws+unix://{path}", input=b"u\n")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == b"u\n"
    assert f"* connecting to Unix socket {path}\n" in proc.stderr


def test_verbose_lines_for_each_redirect_hop(
    server_thread: ServerThread, lib_echo_url: str
) -> None:
    def redirect(_ws: ServerConnection, _request: Request) -> Response:
        return Response(302, "Found", Headers({"Location": lib_echo_url,
                                               "Content-Length": "0"}), b"")

    _s, url = start_websockets_server(server_thread, lib_echo, process_request=redirect)
    proc = run_wstool("connect", "-L", "-v", url, input=b"r\n", env=NO_PROXY_ENV)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == b"r\n"
    connecting = [line for line in _star_lines(proc.stderr) if line.startswith("* connecting")]
    first, final = (u.rsplit(":", 1)[1].strip("/") for u in (url, lib_echo_url))
    assert connecting == [f"* connecting to 127.0.0.1 port {first}",
                          f"* connecting to 127.0.0.1 port {final}"]


# The renderers, on records


def test_body_lines_bounds_lines_and_characters() -> None:
    assert body_lines(b"") == []
    assert body_lines(b"one\r\ntwo") == ["< one", "< two"]
    assert body_lines(b"x" * 1000) == ["< " + "x" * 200 + "..."]
    many = body_lines(b"".join(b"%d\n" % i for i in range(20)))
    assert many == [f"< {i}" for i in range(10)] + ["< [... 50 bytes in all]"]
    assert body_lines(b"\xff\xfe ok\n") == ["< \\xff\\xfe ok"]
    assert body_lines("\u202eevil\n".encode()) == ["< \\u202eevil"]


def test_connect_phase_line_escapes_remote_text() -> None:
    event = ConnectPhase("certificate", "server certificate: subject CN=a\x1b[2Jb")
    assert connect_phase_line(event) == "* server certificate: subject CN=a\\e[2Jb"
    assert connect_phase_line(ConnectPhase("connected", "connected to x port 1", 0.00042)) \
        == "* connected to x port 1 (TCP 0.4 ms)"
    assert connect_phase_line(ConnectPhase("tls", "TLS TLSv1.3", 0.0123)) \
        == "* TLS TLSv1.3 (12.3 ms)"


def test_handshake_lines_show_the_version_and_the_body() -> None:
    handshake = Handshake("GET / HTTP/1.1", (("Host", "h"),), 404, "Not Found",
                          (("Server", "raw"),), b"nope\n", http_version="HTTP/1.0",
                          elapsed_s=0.002)
    assert handshake_lines(handshake) == [
        "> GET / HTTP/1.1", "> Host: h", ">", "< HTTP/1.0 404 Not Found", "< Server: raw",
        "<", "< nope", "* answered in 2.0 ms"]
