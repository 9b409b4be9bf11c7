"""``--static DIR`` (issue 16): the pure mapping (server/static.py) on a real directory,
then the servers answering real HTTP requests on 127.0.0.1 (in-process core, and the
serve-echo and listen processes), WebSocket upgrades still working beside the files.
"""

from __future__ import annotations

import asyncio
import http.client
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect

from tests.conftest import ServerThread, run_wstool_inprocess, scaled
from tests.servers import ServeEcho
from wstool.config import EchoConfig, ServerConfig
from wstool.server.static import check_static_dir, static_response


@pytest.fixture
def site(tmp_path: Path) -> Path:
    root = tmp_path / "site"
    (root / "sub").mkdir(parents=True)
    (root / "empty").mkdir()
    (root / "index.html").write_text("<h1>demo</h1>\n")
    (root / "app.js").write_text("console.log(1)\n")
    (root / "data.bin").write_bytes(bytes(range(256)))
    (root / "sub" / "style.css").write_text("body {}\n")
    (root / "sub" / "index.html").write_text("sub index\n")
    (root / "a b.txt").write_text("spaced\n")
    (tmp_path / "secret.txt").write_text("outside\n")
    (root / "out.txt").symlink_to(tmp_path / "secret.txt")
    (root / "outdir").symlink_to(tmp_path)
    (root / "in.txt").symlink_to(root / "app.js")
    os.mkfifo(root / "fifo")
    return root


def answer(root: Path, target: str, method: str = "GET") -> Any:
    result = static_response(check_static_dir(str(root)), method, target)
    assert result is not None
    return result


# The pure mapping


def test_files_with_types_from_mimetypes(site: Path) -> None:
    r = answer(site, "/index.html")
    assert (r.status, r.body) == (200, b"<h1>demo</h1>\n")
    headers = dict(r.headers)
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    assert headers["Content-Length"] == str(len(r.body))
    assert "javascript" in dict(answer(site, "/app.js").headers)["Content-Type"]
    assert dict(answer(site, "/sub/style.css").headers)["Content-Type"].startswith("text/css")
    r = answer(site, "/data.bin")
    assert r.body == bytes(range(256))
    assert dict(r.headers)["Content-Type"] == "application/octet-stream"
    assert answer(site, "/a%20b.txt").body == b"spaced\n"
    assert answer(site, "/index.html?x=1#frag").status == 200


def test_directories_serve_index_html(site: Path) -> None:
    assert answer(site, "/").body == b"<h1>demo</h1>\n"
    assert answer(site, "/sub/").body == b"sub index\n"
    redirect = answer(site, "/sub?a=1")
    assert redirect.status == 301
    assert dict(redirect.headers)["Location"] == "/sub/?a=1"
    assert answer(site, "/empty/").status == 404  # no index.html, no listing


def test_head_has_the_headers_of_get_and_no_body(site: Path) -> None:
    get, head = answer(site, "/index.html"), answer(site, "/index.html", "HEAD")
    assert head.status == 200 and head.body == b""
    assert dict(head.headers)["Content-Length"] == dict(get.headers)["Content-Length"]


@pytest.mark.parametrize("target", [
    "/../secret.txt", "/sub/../../secret.txt", "/%2e%2e/secret.txt", "/%2E%2E/secret.txt",
    "/..%2fsecret.txt", "/sub/%2e%2e/%2e%2e/secret.txt", "/out.txt", "/outdir/secret.txt",
    "/nope.html", "/fifo", "/index.html/x",
])
def test_nothing_outside_dir_or_absent_is_served(site: Path, target: str) -> None:
    r = answer(site, target)
    assert r.status == 404, target
    assert b"outside" not in r.body


@pytest.mark.parametrize("target", ["/%00", "/index.html%00.txt", "http://h/x", "*",
                                    "/%ff"])
def test_nul_bytes_and_non_paths_are_bad_requests(site: Path, target: str) -> None:
    assert answer(site, target).status == 400


def test_absolute_paths_stay_inside_dir(site: Path) -> None:
    # "//etc/passwd" is DIR/etc/passwd, never /etc/passwd.
    secret = site.parent / "secret.txt"
    assert answer(site, f"/{secret}").status == 404
    assert answer(site, f"//{secret}").status == 404
    assert answer(site, "//index.html").status == 200


def test_symlinks_inside_dir_are_followed(site: Path) -> None:
    assert answer(site, "/in.txt").body == b"console.log(1)\n"


def test_other_methods_are_not_static(site: Path) -> None:
    assert static_response(str(site), "POST", "/index.html") is None
    assert static_response(str(site), "PUT", "/") is None


def test_if_modified_since(site: Path) -> None:
    last = dict(answer(site, "/index.html").headers)["Last-Modified"]
    r = static_response(str(site), "GET", "/index.html", (("If-Modified-Since", last),))
    assert r is not None and r.status == 304 and r.body == b""


def test_check_static_dir(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no such directory"):
        check_static_dir(str(tmp_path / "missing"))
    (tmp_path / "f").write_text("x")
    with pytest.raises(ValueError, match="not a directory"):
        check_static_dir(str(tmp_path / "f"))


# The server core answering real requests


def raw_request(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=scaled(5)) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


@pytest.fixture
def static_server(site: Path) -> Iterator[int]:
    from wstool.server.core import run_echo_server

    events: list[Any] = []
    st = ServerThread()
    try:
        config = ServerConfig(port=0, static_dir=str(site))
        server = st.run(run_echo_server(config, EchoConfig(), events.append))
        port = int(server.urls[0].rsplit(":", 1)[1].rstrip("/"))
        yield port
        st.run(server.shutdown())
    finally:
        st.stop()


def test_server_serves_files_and_keeps_websocket_and_health(static_server: int) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", static_server, timeout=scaled(5))
    conn.request("GET", "/")
    resp = conn.getresponse()
    assert resp.status == 200 and resp.read() == b"<h1>demo</h1>\n"
    assert resp.getheader("Content-Type") == "text/html; charset=utf-8"
    assert resp.getheader("Server", "").startswith("wstool/")
    conn.close()

    head = raw_request(static_server, b"HEAD /index.html HTTP/1.1\r\nHost: x\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    assert b"Content-Length: 14\r\n" in head and head.endswith(b"\r\n\r\n")

    health = raw_request(static_server, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    assert health.startswith(b"HTTP/1.1 200 ") and health.endswith(b"ok\n")

    for target in (b"/../secret.txt", b"/%2e%2e/secret.txt", b"/out.txt", b"/%00"):
        reply = raw_request(static_server, b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        assert reply.split(b" ")[1] in (b"404", b"400"), (target, reply)
        assert b"outside" not in reply

    async def echo() -> str:
        async with connect(f"ws://127.0.0.1:{static_server}/") as ws:
            await ws.send("through the socket")
            return str(await asyncio.wait_for(ws.recv(), scaled(5)))

    assert asyncio.run(echo()) == "through the socket"


def test_without_static_the_426_page_stays(site: Path) -> None:
    from wstool.server.core import run_echo_server

    st = ServerThread()
    try:
        server = st.run(run_echo_server(ServerConfig(port=0), EchoConfig(), lambda e: None))
        port = int(server.urls[0].rsplit(":", 1)[1].rstrip("/"))
        reply = raw_request(port, b"GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n")
        assert reply.startswith(b"HTTP/1.1 426 ")
        st.run(server.shutdown())
    finally:
        st.stop()


# The commands


@pytest.mark.parametrize("command", ["serve-echo", "listen"])
def test_commands_serve_static_files(site: Path, command: str) -> None:
    server = ServeEcho("--static", str(site), "-v", command=command)
    try:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=scaled(5))
        conn.request("GET", "/sub/style.css")
        resp = conn.getresponse()
        assert (resp.status, resp.read()) == (200, b"body {}\n")
        server.wait_for("GET /sub/style.css: static 8 bytes")
    finally:
        server.close()


@pytest.mark.parametrize("command", ["serve-echo", "listen"])
def test_a_missing_static_dir_is_a_usage_error(tmp_path: Path, command: str) -> None:
    proc = run_wstool_inprocess(command, "--port", "0", "--static", str(tmp_path / "nope"))
    assert proc.returncode == 2
    assert f"wstool: error: invalid --static: {tmp_path / 'nope'}: no such directory" in (
        proc.stderr)
    assert "Traceback" not in proc.stderr
