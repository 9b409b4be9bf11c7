"""wstool probe (issue 12): TCP/TLS, HTTP/1.1 upgrade, HTTP/2, and the verdicts.

Against Hypercorn (accepts both ways), raw h2 servers that advertise extended
CONNECT and answer 404 or do not advertise it (tests/h2_peers.py; they accept the
HTTP/1.1 upgrade on the same port), and the websockets library's server (HTTP/1.1
only; refusing). TLS from trustme. Loopback only.
"""

from __future__ import annotations

import json
import ssl
from pathlib import Path

import trustme

from tests.conftest import (
    ServerThread,
    closed_port,
    lib_echo,
    run_wstool_inprocess,
    start_websockets_server,
)
from tests.h2_peers import RawH2Server, start_hypercorn


def _server_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    return context


def _probe_json(*args: str) -> tuple[int, dict[str, object]]:
    proc = run_wstool_inprocess("probe", "--json", *args)
    assert proc.stderr == "", proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def test_hypercorn_over_tls_accepts_both_ways(
    server_thread: ServerThread, ca: trustme.CA, ca_file: str, tmp_path: Path
) -> None:
    cert = ca.issue_cert("127.0.0.1")
    certfile, keyfile = tmp_path / "c.pem", tmp_path / "k.pem"
    cert.cert_chain_pems[0].write_to_path(str(certfile))
    cert.private_key_pem.write_to_path(str(keyfile))
    port = start_hypercorn(server_thread, certfile=str(certfile), keyfile=str(keyfile))
    proc = run_wstool_inprocess("probe", "--cacert", ca_file, f"wss://127.0.0.1:{port}/")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.decode()
    assert "ALPN offered h2, http/1.1; chosen h2" in out
    assert "HTTP/1.1  101 Switching Protocols" in out
    assert "ENABLE_CONNECT_PROTOCOL 1" in out and "MAX_CONCURRENT_STREAMS 100" in out
    assert "extended CONNECT: :status 200" in out
    assert "accepts WebSockets over HTTP/1.1 and over HTTP/2" in out
    assert "certificate:" in out


def test_advertises_extended_connect_but_answers_404(
    server_thread: ServerThread, ca: trustme.CA, ca_file: str
) -> None:
    raw = RawH2Server(server_thread, "404", ssl_context=_server_context(ca))
    status, report = _probe_json("--cacert", ca_file, f"wss://127.0.0.1:{raw.port}/chat")
    assert status == 0  # the HTTP/1.1 upgrade works
    http2 = report["http2"]
    assert isinstance(http2, dict)
    assert http2["enable_connect_protocol"] is True and http2["status"] == 404
    assert http2["max_concurrent_streams"] == 7
    assert http2["settings"]["ENABLE_CONNECT_PROTOCOL"] == 1
    assert http2["body"] == "no WebSocket here"
    assert report["http11"]["ok"] is True  # type: ignore[index]
    assert report["verdict"][0] == (  # type: ignore[index]
        "advertises extended CONNECT but answers 404 on it: Chrome will fail where "
        "wscat works")
    assert (":path", "/chat") in raw.requests[0]


def test_serves_h2_without_extended_connect(
    server_thread: ServerThread, ca: trustme.CA, ca_file: str
) -> None:
    raw = RawH2Server(server_thread, "no-setting", ssl_context=_server_context(ca))
    status, report = _probe_json("--cacert", ca_file, f"wss://127.0.0.1:{raw.port}/")
    assert status == 0
    assert report["transport"]["alpn_chosen"] == "h2"  # type: ignore[index]
    assert report["http2"]["h2"] is True  # type: ignore[index]
    assert report["http2"]["enable_connect_protocol"] is False  # type: ignore[index]
    assert report["verdict"][0] == (  # type: ignore[index]
        "serves h2 but does not advertise extended CONNECT: browsers will use HTTP/1.1 "
        "on a separate connection")
    assert raw.requests == []


def test_http11_only_server_over_tls(
    server_thread: ServerThread, ca: trustme.CA, ca_file: str
) -> None:
    _s, url = start_websockets_server(server_thread, lib_echo, ssl=_server_context(ca))
    proc = run_wstool_inprocess("probe", "--cacert", ca_file, url.replace("ws://", "wss://"))
    assert proc.returncode == 0, proc.stderr
    assert "does not serve HTTP/2 (ALPN chose nothing)" in proc.stdout.decode()


def test_no_way_works_is_exit_4(server_thread: ServerThread) -> None:
    from websockets.datastructures import Headers
    from websockets.http11 import Response

    def refuse(_ws: object, _request: object) -> Response:
        return Response(403, "Forbidden", Headers({"Content-Length": "8"}), b"go away\n")

    _s, url = start_websockets_server(server_thread, lib_echo, process_request=refuse)
    status, report = _probe_json(url)
    assert status == 4
    assert report["accepted"] is False
    assert report["http11"]["status"] == 403  # type: ignore[index]
    assert report["http11"]["body"] == "go away"  # type: ignore[index]
    assert report["verdict"][-1] == "no way to open a WebSocket here works"  # type: ignore[index]


def test_h2c_404_and_cleartext_verdict(server_thread: ServerThread) -> None:
    raw = RawH2Server(server_thread, "404")
    proc = run_wstool_inprocess("probe", f"ws://127.0.0.1:{raw.port}/")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.decode()
    assert "h2c (prior knowledge)" in out and ":status 404 Not Found" in out
    assert "browsers never use HTTP/2 over ws://" in out


def test_cannot_connect_is_exit_3() -> None:
    proc = run_wstool_inprocess("probe", f"ws://127.0.0.1:{closed_port()}/")
    assert proc.returncode == 3
    out = proc.stdout.decode()
    assert "cannot connect: connection refused" in out
    # The attempts not made say so, not "failed" or "not spoken".
    assert "HTTP/1.1  not tried: connection refused" in out
    assert "HTTP/2    not tried: connection refused" in out


def test_untrusted_certificate_is_reported(server_thread: ServerThread, ca: trustme.CA) -> None:
    raw = RawH2Server(server_thread, "404", ssl_context=_server_context(ca))
    status, report = _probe_json(f"wss://127.0.0.1:{raw.port}/")
    assert status == 3
    assert "TLS certificate not trusted" in report["transport"]["error"]  # type: ignore[index]
    assert "--cacert FILE" in report["verdict"][-1]  # type: ignore[index]


def test_unix_url_is_a_usage_error() -> None:
    proc = run_wstool_inprocess("probe", "ws+unix:///tmp/x.sock")
    assert proc.returncode == 2 and "ws:// or wss://" in proc.stderr
