"""Headless Chromium against `wstool listen --static DIR --exec CMD` (issue 16): one
command serves a page and, behind its WebSocket, a process per socket.

The page (DIR/index.html, its script DIR/app.js) opens two sockets to the origin it
came from, one after the other:

1. `?name=chromium`: the program greets with its CGI environment (QUERY_STRING,
   PATH_INFO, the browser's Origin header as HTTP_ORIGIN), answers every line the
   page sends with its number and the line in capitals, and exits 0 on `quit`:
   the browser sees close 1000, cleanly;
2. `fail`: the program exits with status 3, and the browser's close event carries
   1011 and the reason `exited with status 3`.

The page writes what it got into its DOM; the test reads it back over the DevTools
protocol (tests/browser.py) and checks the server's log for both processes' ends
and that no process is left. The browser: tests/browser.py's (Debian's chromium,
installed once when missing; skipped with the reason otherwise). Loopback only.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest

from tests.browser import APT_TIMEOUT_S, Chromium, ensure_chromium
from tests.conftest import pid_gone, scaled
from tests.servers import ServeEcho

pytestmark = [pytest.mark.slow, pytest.mark.timeout(APT_TIMEOUT_S + 120)]

# A websocketd-style line program: a greeting from its environment, then one answer
# per line; `quit` ends it with 0, `fail` with 3.
PROGRAM = r"""#!/bin/sh
echo "hello $QUERY_STRING on $PATH_INFO from $HTTP_ORIGIN"
n=0
while IFS= read -r line; do
  n=$((n + 1))
  case "$line" in
    quit) echo "bye after $n"; exit 0 ;;
    fail) echo "failing"; exit 3 ;;
  esac
  printf '%s: %s\n' "$n" "$(printf '%s' "$line" | tr a-z A-Z)"
done
"""

INDEX = """<!doctype html>
<html><head><meta charset="utf-8"><title>wstool exec demo</title></head>
<body><ol id="log"></ol><script src="app.js"></script></body></html>
"""

APP_JS = """"use strict";
const log = document.getElementById("log");
function talk(path, lines) {
  return new Promise(resolve => {
    const got = [];
    const ws = new WebSocket(`ws://${location.host}${path}`);
    const timer = setTimeout(() => resolve({got, code: "timeout"}), TIMEOUT_MS);
    ws.onopen = () => { for (const line of lines) ws.send(line); };
    ws.onmessage = event => {
      got.push(event.data);
      const li = document.createElement("li");
      li.textContent = event.data;  // the process's answers, shown on the page
      log.appendChild(li);
    };
    ws.onclose = event => {
      clearTimeout(timer);
      resolve({got, code: event.code, reason: event.reason, clean: event.wasClean});
    };
  });
}
window.result = (async () => ({
  dialogue: await talk("/chat?name=chromium", ["hello", "h\\u00e9llo w\\u00f6rld \\u2713", "quit"]),
  failure: await talk("/chat", ["fail"]),
  shown: null,
}))().then(r => { r.shown = Array.from(log.children, li => li.textContent); return r; });
"""


@pytest.fixture
def site(tmp_path: Path) -> Path:
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text(INDEX, encoding="utf-8")
    timeout_ms = int(scaled(15) * 1000)
    (site / "app.js").write_text(APP_JS.replace("TIMEOUT_MS", str(timeout_ms)),
                                 encoding="utf-8")
    program = tmp_path / "answer.sh"
    program.write_text(PROGRAM)
    program.chmod(0o755)
    return tmp_path


def _process_pids(stderr: str) -> list[int]:
    return [int(pid) for pid in re.findall(r"process (\d+) started", stderr)]


def test_a_static_page_talks_to_an_exec_backend(site: Path) -> None:
    binary = ensure_chromium()
    server = ServeEcho("--static", str(site / "site"), "-v",
                       "--exec", str(site / "answer.sh"), command="listen")
    try:
        _talk(binary, server)
    finally:
        server.close()


def _talk(binary: str, server: ServeEcho) -> None:
    chromium = None
    try:
        chromium = Chromium(binary)
        page_url = f"http://127.0.0.1:{server.port}/"
        chromium.open_page(page_url)
        result: Any = chromium.evaluate("window.result", timeout_s=40)
        why = f"page: {result}\nconsole: {chromium.console()}\nserver:\n{server.stderr}"
        origin = page_url.rstrip("/")
        dialogue = result["dialogue"]
        assert dialogue["got"] == [
            f"hello name=chromium on /chat from {origin}",
            "1: HELLO",
            "2: H\u00e9LLO W\u00f6RLD \u2713",  # tr leaves the non-ASCII bytes alone
            "bye after 3",
        ], why
        assert (dialogue["code"], dialogue["clean"]) == (1000, True), why
        failure = result["failure"]
        assert failure["got"] == [f"hello  on /chat from {origin}", "failing"], why
        assert (failure["code"], failure["reason"]) == (1011, "exited with status 3"), why
        # What the page showed is what the processes said.
        assert result["shown"] == dialogue["got"] + failure["got"], why
    finally:
        if chromium is not None:
            chromium.close()
    server.wait_for("GET /app.js: static")
    server.wait_for("exited with status 3")
    pids = _process_pids(server.stderr)
    assert len(pids) == 2, server.stderr
    deadline = time.monotonic() + scaled(10)
    while not all(pid_gone(pid) for pid in pids):
        assert time.monotonic() < deadline, f"processes {pids} left: {server.stderr}"
        time.sleep(0.05)
    assert server.stop() == 0, server.stderr
