"""A HAR file made by a real headless Chromium session, replayed (issue 11).

A page served from 127.0.0.1 opens a WebSocket to `wstool serve-echo`, sends text,
JSON and binary messages, waits for their echoes and closes with 1000. The test
watches the socket with the DevTools protocol's Network domain
(`Network.webSocketWillSendHandshakeRequest`, `webSocketFrameSent/Received`: what
DevTools' own "Save all as HAR" is built from) and writes the HAR entry as Chrome
does: HAR 1.2 plus `_resourceType: "websocket"` and `_webSocketMessages` (`type`
send/receive, `time` in Unix seconds, `opcode`, `data`; binary as base64).
`wstool replay` of that file against the same server must match, and `connect
--har` must take its URL and headers. Browser set-up, skips and loopback-only
rules: tests/browser.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser import APT_TIMEOUT_S, Chromium, PageServer, ServeEchoProcess, ensure_chromium
from tests.conftest import run_wstool

pytestmark = [pytest.mark.slow, pytest.mark.timeout(APT_TIMEOUT_S + 120)]

PAGE = """<!doctype html><html><head><meta charset="utf-8"></head><body><script>
"use strict";
window.runSocket = (url) => new Promise((resolve) => {
  const ws = new WebSocket(url);
  ws.binaryType = "arraybuffer";
  const sent = ["hello", JSON.stringify({op: "sub", ts: 1}), new Uint8Array([0, 1, 255])];
  let echoes = 0;
  ws.onopen = () => { for (const m of sent) ws.send(m); };
  ws.onmessage = () => { if (++echoes === sent.length) ws.close(1000); };
  ws.onclose = (e) => resolve({code: e.code, echoes});
  ws.onerror = () => resolve({error: true, echoes});
  setTimeout(() => resolve({timeout: true, echoes}), 15000);
});
</script></body></html>"""


@pytest.fixture
def chromium() -> Iterator[Chromium]:
    browser = Chromium(ensure_chromium())
    yield browser
    browser.close()


@pytest.fixture
def serve_echo() -> Iterator[ServeEchoProcess]:
    server = ServeEchoProcess()
    yield server
    server.close()


def har_from_devtools(events: list[dict[str, Any]], page_url: str) -> dict[str, Any]:
    """Chrome's HAR for the page's WebSockets, from the Network domain's events."""
    sockets: dict[str, dict[str, Any]] = {}
    for event in events:
        method, params = event.get("method", ""), event.get("params", {})
        if not method.startswith("Network.webSocket"):
            continue
        socket = sockets.setdefault(params["requestId"], {"messages": []})
        if method == "Network.webSocketCreated":
            socket["url"] = params["url"]
        elif method == "Network.webSocketWillSendHandshakeRequest":
            socket["wall_s"], socket["mono_s"] = params["wallTime"], params["timestamp"]
            socket["request_headers"] = params["request"]["headers"]
        elif method == "Network.webSocketHandshakeResponseReceived":
            response = params["response"]
            socket["status"] = response["status"]
            socket["response_headers"] = response["headers"]
            # The headers as sent (the will-send event's can be partial).
            socket["request_headers"] = response.get("requestHeaders") or \
                socket["request_headers"]
        elif method in ("Network.webSocketFrameSent", "Network.webSocketFrameReceived"):
            frame = params["response"]
            socket["messages"].append({
                "type": "send" if method.endswith("Sent") else "receive",
                "time": params["timestamp"],  # monotonic for now; wall time below
                "opcode": frame["opcode"],
                "data": frame["payloadData"],
            })

    def headers(raw: dict[str, str]) -> list[dict[str, str]]:
        return [{"name": k, "value": v} for k, v in raw.items()]

    entries = []
    for socket in sockets.values():
        for message in socket["messages"]:
            message["time"] = socket["wall_s"] + (message["time"] - socket["mono_s"])
        entries.append({
            "startedDateTime": "1970-01-01T00:00:00.000Z",
            "time": 0,
            "request": {"method": "GET", "url": socket["url"], "httpVersion": "HTTP/1.1",
                        "headers": headers(socket["request_headers"]), "queryString": [],
                        "cookies": [], "headersSize": -1, "bodySize": 0},
            "response": {"status": socket["status"], "statusText": "Switching Protocols",
                         "httpVersion": "HTTP/1.1",
                         "headers": headers(socket["response_headers"]), "cookies": [],
                         "content": {"size": 0, "mimeType": "x-unknown"},
                         "redirectURL": "", "headersSize": -1, "bodySize": 0},
            "cache": {},
            "timings": {"send": 0, "wait": 0, "receive": 0},
            "_resourceType": "websocket",
            "_webSocketMessages": socket["messages"],
        })
    return {"log": {"version": "1.2", "creator": {"name": "WebInspector", "version": "537.36"},
                    "pages": [{"id": "page_1", "title": page_url,
                               "startedDateTime": "1970-01-01T00:00:00.000Z",
                               "pageTimings": {}}],
                    "entries": entries}}


def test_replay_of_a_chromium_har(chromium: Chromium, serve_echo: ServeEchoProcess,
                                  tmp_path: Path) -> None:
    page = PageServer(PAGE)
    try:
        chromium.open_page(page.url)
        chromium.call("Network.enable")
        result = chromium.evaluate(f"runSocket({json.dumps(serve_echo.url_for())})")
    finally:
        page.stop()
    assert result == {"code": 1000, "echoes": 3}, (result, chromium.console())
    har = har_from_devtools(chromium.events, page.url)
    messages = har["log"]["entries"][0]["_webSocketMessages"]
    assert [(m["type"], m["opcode"]) for m in messages] == [
        ("send", 1), ("send", 1), ("send", 2), ("receive", 1), ("receive", 1), ("receive", 2)]
    path = tmp_path / "chromium.har"
    path.write_text(json.dumps(har))

    replay = run_wstool("replay", str(path))
    assert replay.returncode == 0, replay.stdout + replay.stderr.encode()
    assert "replay matched: 3 sent, 3 received as recorded" in replay.stderr

    # connect --har: the browser's URL and headers (its Origin and User-Agent).
    connect = run_wstool("connect", "--har", str(path), input=b"from the har\n")
    assert connect.returncode == 0, connect.stderr
    assert connect.stdout == b"from the har\n"
    assert "Sec-WebSocket-Key" in connect.stderr and "--har: dropped" in connect.stderr
