"""Headless Chromium against `serve-echo --http2`: a page loaded over HTTPS/h2 (--static)
opens its WebSocket over the same HTTP/2 connection (RFC 8441 extended CONNECT).

Chromium (tests/browser.py: Debian's package, installed once, skipped with the reason
otherwise) trusts the --self-signed certificate by its SPKI hash, or with the blanket
--ignore-certificate-errors: with either, Chromium 156 chose h2 by ALPN, saw
SETTINGS_ENABLE_CONNECT_PROTOCOL and sent the socket as a CONNECT stream, which the
server's log shows, from the same TCP peer as the page's GET.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser import Chromium, ServeEchoProcess, ensure_chromium, spki_sha256_base64

pytest.importorskip("h2", reason="h2 (pip install 'wstool[http2]') is not installed")
pytest.importorskip("cryptography", reason="--self-signed needs cryptography")

PAGE = """<!doctype html>
<meta charset="utf-8"><title>wstool h2</title>
<script>
window.result = new Promise((resolve) => {
  const echoes = [];
  const ws = new WebSocket(`wss://${location.host}/over-h2`);
  ws.binaryType = "arraybuffer";
  ws.onopen = () => {
    ws.send("hello over h2 ✓");
    ws.send(new Uint8Array([0, 1, 255]));
    ws.send("x".repeat(200000));
  };
  ws.onmessage = (event) => {
    echoes.push(typeof event.data === "string"
      ? (event.data.length > 100 ? `text of ${event.data.length}` : event.data)
      : Array.from(new Uint8Array(event.data)).join(","));
    if (echoes.length === 3) ws.close(1000, "done");
  };
  ws.onerror = () => echoes.push("error");
  ws.onclose = (event) => resolve({echoes, code: event.code, clean: event.wasClean,
                                   extensions: ws.extensions});
});
</script>
"""


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServeEchoProcess]:
    (tmp_path / "index.html").write_text(PAGE, encoding="utf-8")
    s = ServeEchoProcess("--http2", "-v", "--self-signed", "--static", str(tmp_path))
    yield s
    s.close()


@pytest.mark.slow
@pytest.mark.parametrize("trust", ["spki", "ignore-certificate-errors"])
def test_browser_page_and_its_websocket_share_one_h2_connection(
    server: ServeEchoProcess, trust: str
) -> None:
    binary = ensure_chromium()
    assert server.cert_path is not None, server.stderr
    flag = (f"--ignore-certificate-errors-spki-list="
            f"{spki_sha256_base64(server.cert_path.read_bytes())}"
            if trust == "spki" else "--ignore-certificate-errors")
    chromium = Chromium(binary, [flag])
    try:
        chromium.open_page(f"https://localhost:{server.port}/")
        result: Any = chromium.evaluate("window.result", timeout_s=30)
        why = f"page: {result}\nconsole: {chromium.console()}\nserver:\n{server.stderr}"
        assert result["echoes"] == ["hello over h2 ✓", "0,1,255", "text of 200000"], why
        assert (result["code"], result["clean"]) == (1000, True), why
        assert result["extensions"].startswith("permessage-deflate"), why
    finally:
        chromium.close()
    # The log proves it: the WebSocket is an extended CONNECT stream of the HTTP/2
    # connection that served the page.
    page = server.wait_for("GET /: static")
    opened = server.wait_for("opened: CONNECT /over-h2 (:protocol websocket)")
    connected = server.wait_for("connected from")
    client_id = re.match(r"wstool: \[(\d+)\]", opened)
    assert client_id and connected.startswith(f"wstool: [{client_id.group(1)}]"), opened
    page_peer = re.search(r"for (\S+): GET /", page)
    ws_peer = re.search(r"connected from (\S+) to /over-h2", connected)
    assert page_peer and ws_peer and page_peer.group(1) == ws_peer.group(1), server.stderr
    assert f"HTTP/2 connection from {ws_peer.group(1)} (TLS, ALPN h2)" in server.stderr
    server.wait_for("closed by the client: 1000")
