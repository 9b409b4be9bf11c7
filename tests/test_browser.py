"""A real browser page against `wstool serve-echo`: Debian's headless Chromium (issue 4).

Each test starts `python -m wstool serve-echo --port 0` and headless Chromium with a
fresh profile, serves a page from a loopback HTTP server (127.0.0.1 port 0) that opens
`new WebSocket(url)`, sends text, binary (ArrayBuffer) and Blob messages all at once,
writes every echo into the DOM (with whether the browser saw it as text or as binary),
closes with 1000 once all have come back, and records the close. The test reads the DOM
back over the DevTools protocol (tests/browser.py) and asserts the exact echoes, their
types, and a clean 1000 close; a missing echo fails on the page's own time limit.

wss:// uses `serve-echo --self-signed`, trusted with Chromium's
`--ignore-certificate-errors-spki-list=<base64 SHA-256 of the certificate's SPKI>`,
computed from the PEM the server writes (not the blanket `--ignore-certificate-errors`).
A browser without that flag must refuse the same server, so the trust is the flag's.

The browser: $WSTOOL_TEST_CHROMIUM if set (no install is tried then), else Debian's
/usr/bin/chromium, installed with apt-get when missing and running as root (at most
300 s). Where it cannot be had the tests skip with "chromium not available: REASON";
`WSTOOL_TEST_CHROMIUM=/nonexistent python -m pytest tests/test_browser.py` shows the skip.
Only loopback addresses are used.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.browser import (
    APT_TIMEOUT_S,
    Chromium,
    PageServer,
    ServeEchoProcess,
    ensure_chromium,
    spki_sha256_base64,
)
from tests.conftest import scaled

# The first test's setup may install the browser (apt-get, at most APT_TIMEOUT_S), which
# pytest-timeout counts against that test: leave room for it beyond the usual 120 s.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(APT_TIMEOUT_S + 120)]

PAGE_TEMPLATE = """<!doctype html>
<html><head><meta charset="utf-8"><title>wstool browser echo</title></head>
<body>
<p id="status" data-state="running">running</p>
<ol id="echoes"></ol>
<script id="config" type="application/json">CONFIG_JSON</script>
<script>
"use strict";
const config = JSON.parse(document.getElementById("config").textContent);
const status = document.getElementById("status");
const echoes = document.getElementById("echoes");

function toHex(buffer) {
  return Array.from(new Uint8Array(buffer), b => b.toString(16).padStart(2, "0")).join("");
}
function fromHex(hex) {
  const bytes = new Uint8Array(hex.length / 2);
  for (let i = 0; i < bytes.length; i++) bytes[i] = parseInt(hex.substr(2 * i, 2), 16);
  return bytes;
}

window.echoDone = new Promise(resolve => {
  const finish = (state, detail) => {
    status.dataset.state = state;
    status.textContent = detail;
    resolve(state);
  };
  const timer = setTimeout(
    () => finish("timeout", `${echoes.children.length} of ${config.messages.length} echoes`),
    config.timeoutMs);
  let ws;
  try {
    ws = new WebSocket(config.url);
  } catch (error) {
    clearTimeout(timer);
    finish("error", String(error));
    return;
  }
  ws.binaryType = "arraybuffer";
  ws.onopen = () => {
    status.dataset.opened = "true";
    status.dataset.extensions = ws.extensions;
    for (const m of config.messages) {
      if (m.kind === "text") ws.send(m.data);
      else if (m.kind === "binary") ws.send(fromHex(m.data).buffer);
      else ws.send(new Blob([fromHex(m.data)]));
    }
  };
  ws.onmessage = event => {
    const li = document.createElement("li");
    if (typeof event.data === "string") {
      li.dataset.kind = "text";
      li.textContent = event.data;
    } else if (event.data instanceof ArrayBuffer) {
      li.dataset.kind = "binary";
      li.textContent = toHex(event.data);
    } else {
      li.dataset.kind = Object.prototype.toString.call(event.data);
    }
    echoes.appendChild(li);
    if (echoes.children.length === config.messages.length) ws.close(1000, "done");
  };
  ws.onerror = () => { status.dataset.errorEvent = "true"; };
  ws.onclose = event => {
    clearTimeout(timer);
    status.dataset.closeCode = String(event.code);
    status.dataset.closeReason = event.reason;
    status.dataset.wasClean = String(event.wasClean);
    finish("closed", `closed ${event.code} after ${echoes.children.length} echoes`);
  };
});
</script>
</body></html>
"""

# What the page reads back from its own DOM once echoDone settles.
READ_DOM = """window.echoDone.then(() => ({
  status: {...document.getElementById("status").dataset,
           text: document.getElementById("status").textContent},
  echoes: Array.from(document.querySelectorAll("#echoes li"),
                     li => [li.dataset.kind, li.textContent]),
}))"""


@dataclass(frozen=True)
class Sent:
    """One message the page sends: kind "text", "binary" (ArrayBuffer) or "blob"."""

    kind: str
    payload: str | bytes

    def config(self) -> dict[str, str]:
        data = self.payload if isinstance(self.payload, str) else self.payload.hex()
        return {"kind": self.kind, "data": data}

    def expected_echo(self) -> list[str]:
        # A Blob goes out as a binary frame, so it comes back as binary (an ArrayBuffer).
        if isinstance(self.payload, str):
            return ["text", self.payload]
        return ["binary", self.payload.hex()]


MESSAGES = [
    Sent("text", "hello from chromium"),
    Sent("text", "h\u00e9llo w\u00f6rld \u2713 \U0001f30d"),  # 2-, 3- and 4-byte UTF-8
    Sent("text", ""),
    Sent("binary", bytes(range(256))),
    Sent("binary", b""),
    Sent("blob", b"\x00\xffblob\x80"),
    # Over 65535 bytes: a 64-bit payload length (RFC 6455 §5.2), and several TCP reads.
    Sent("text", "0123456789abcdef" * 5000),
    Sent("binary", bytes((i * 7919) % 251 for i in range(100_000))),
    Sent("text", "last"),
]


@dataclass
class PageResult:
    status: dict[str, str]
    echoes: list[list[str]]
    console: list[str]


def page_html(url: str, messages: list[Sent]) -> str:
    config = {
        "url": url,
        "messages": [m.config() for m in messages],
        "timeoutMs": int(scaled(15) * 1000),
    }
    # "</" inside the JSON would end the <script> element early.
    return PAGE_TEMPLATE.replace("CONFIG_JSON", json.dumps(config).replace("</", "<\\/"))


def run_page(chromium: Chromium, url: str, messages: list[Sent]) -> PageResult:
    page = PageServer(page_html(url, messages))
    try:
        chromium.open_page(page.url)
        value = chromium.evaluate(READ_DOM, timeout_s=30)
    finally:
        page.stop()
    return PageResult(value["status"], value["echoes"], chromium.console())


def explain(result: PageResult, server: ServeEchoProcess, chromium: Chromium) -> str:
    return (
        f"page status: {result.status}\npage console: {result.console}\n"
        f"serve-echo stderr:\n{server.stderr}\nchromium stderr:\n{chromium.stderr}"
    )


def assert_all_echoed(result: PageResult, server: ServeEchoProcess, chromium: Chromium) -> None:
    why = explain(result, server, chromium)
    assert result.status["state"] == "closed", why
    assert [kind for kind, _ in result.echoes] == [m.expected_echo()[0] for m in MESSAGES], why
    assert result.echoes == [m.expected_echo() for m in MESSAGES], why
    assert result.status["closeCode"] == "1000", why
    assert result.status["wasClean"] == "true", why
    assert "errorEvent" not in result.status, why


@pytest.fixture(scope="session")
def chromium_binary() -> str:
    return ensure_chromium()


@pytest.fixture
def serve_echo() -> Iterator[Any]:
    servers: list[ServeEchoProcess] = []

    def start(*args: str) -> ServeEchoProcess:
        server = ServeEchoProcess(*args)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


@pytest.fixture
def browser(chromium_binary: str) -> Iterator[Any]:
    browsers: list[Chromium] = []

    def start(*flags: str) -> Chromium:
        chromium = Chromium(chromium_binary, flags)
        browsers.append(chromium)
        return chromium

    yield start
    for chromium in browsers:
        chromium.close()


@pytest.mark.parametrize("compress", ["--compress", "--no-compress"])
def test_browser_page_gets_its_echoes_over_ws(
    serve_echo: Any, browser: Any, compress: str
) -> None:
    server = serve_echo("-v", compress)
    assert server.scheme == "ws"
    chromium = browser()
    result = run_page(chromium, server.url_for(), MESSAGES)
    assert_all_echoed(result, server, chromium)
    # Chromium always offers permessage-deflate; serve-echo accepts it unless told not to.
    negotiated = "permessage-deflate" in result.status["extensions"]
    assert negotiated == (compress == "--compress"), explain(result, server, chromium)
    assert server.stop() == 0, server.stderr


def test_browser_page_gets_its_echoes_over_wss_self_signed(
    serve_echo: Any, browser: Any
) -> None:
    pytest.importorskip("cryptography")
    server = serve_echo("-v", "--self-signed")
    assert server.scheme == "wss" and server.cert_path is not None, server.stderr
    spki = spki_sha256_base64(server.cert_path.read_bytes())

    trusting = browser(f"--ignore-certificate-errors-spki-list={spki}")
    result = run_page(trusting, server.url_for(), MESSAGES)
    assert_all_echoed(result, server, trusting)

    # The same server without the flag: the browser refuses the certificate and the
    # page never opens, which shows the trust above came from the SPKI flag.
    distrusting = browser()
    refused = run_page(distrusting, server.url_for(), MESSAGES[:1])
    why = explain(refused, server, distrusting)
    assert refused.status["state"] == "closed", why
    assert refused.status["closeCode"] == "1006", why
    assert "opened" not in refused.status and refused.echoes == [], why
    assert server.stop() == 0, server.stderr


def test_browser_origin_allowlist(serve_echo: Any, browser: Any) -> None:
    """A browser always sends Origin: --origin lets the page's origin in, and only it."""
    chromium = browser()
    page_origin = "http://127.0.0.1:*"
    allowed = serve_echo("--origin", page_origin)
    result = run_page(chromium, allowed.url_for(), MESSAGES[:2])
    why = explain(result, allowed, chromium)
    assert result.echoes == [m.expected_echo() for m in MESSAGES[:2]], why
    assert result.status["closeCode"] == "1000", why

    # Another origin only: serve-echo answers 403 and the browser fails the connection.
    other = serve_echo("-v", "--origin", "https://example.invalid")
    refused = run_page(chromium, other.url_for(), MESSAGES[:1])
    why = explain(refused, other, chromium)
    assert refused.status["closeCode"] == "1006", why
    assert "opened" not in refused.status and refused.echoes == [], why
    assert "403" in other.stderr, other.stderr
    assert allowed.stop() == 0 and other.stop() == 0
