"""Debian's headless Chromium as an independent WebSocket peer (tests/test_browser.py).

- `ensure_chromium()` finds the browser, installing Debian's `chromium` package once when
  running as root with apt-get; otherwise it calls `pytest.skip` with the reason.
  $WSTOOL_TEST_CHROMIUM names the browser binary to use instead (no install is tried then;
  a path that is not an executable skips, which is how the skip path is tested).
- `PageServer` serves one HTML page from 127.0.0.1 port 0 (`http.server` in a thread).
- `Chromium` runs the browser headless with DevTools on 127.0.0.1 port 0 and drives it
  over the DevTools protocol with the websockets library's sync client.
- `ServeEchoProcess` runs `python -m wstool serve-echo --port 0` and parses its stderr.
- `spki_sha256_base64()` turns a PEM certificate into the value that Chromium's
  `--ignore-certificate-errors-spki-list` wants, so a `--self-signed` server is trusted
  by its key alone.

Only loopback addresses are ever used.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import http.server
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from websockets.sync.client import ClientConnection, connect

from tests.conftest import scaled
from tests.servers import ServeEcho

CHROMIUM_ENV = "WSTOOL_TEST_CHROMIUM"
DEBIAN_CHROMIUM = "/usr/bin/chromium"
APT_TIMEOUT_S = 300.0

# What this machine needs to run headless Chromium as root in a container, without it
# phoning home (the network is loopback only) or waiting on a first-run dialog.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-dev-shm-usage",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
)


def _usable(path: str) -> str | None:
    """None when `path --version` runs, else why not."""
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        return f"{path} is not an executable file"
    try:
        probe = subprocess.run(
            [path, "--headless", "--no-sandbox", "--version"],
            capture_output=True, text=True, timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{path} --version failed: {exc}"
    if probe.returncode != 0 or "Chromium" not in probe.stdout:
        return f"{path} --version exited {probe.returncode}: {probe.stderr.strip()[-200:]!r}"
    return None


def _apt_install_chromium() -> str | None:
    """Install Debian's chromium; None on success, else why not."""
    return apt_install("chromium")


def apt_install(package: str) -> str | None:
    """Install a Debian package for a test peer; None on success, else why not."""
    apt_get = shutil.which("apt-get")
    if apt_get is None:
        return "not installed, and there is no apt-get to install it"
    if os.geteuid() != 0:
        return f"not installed, and installing it needs root (apt-get install {package})"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    deadline = time.monotonic() + APT_TIMEOUT_S
    for args in (
        [apt_get, "update", "-qq"],
        [apt_get, "install", "-y", "-qq", "-o", "DPkg::Lock::Timeout=60", package],
    ):
        remaining = deadline - time.monotonic()
        try:
            result = subprocess.run(
                args, capture_output=True, text=True, env=env, timeout=max(remaining, 1.0)
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"{' '.join(args[1:])} failed: {exc}"
        if result.returncode != 0:
            lines = (result.stderr or result.stdout).strip().splitlines()
            return (
                f"apt-get {' '.join(args[1:])} exited {result.returncode}: "
                f"{lines[-1] if lines else 'no output'}"
            )
    return None


def ensure_chromium() -> str:
    """The path of a working Chromium binary; installs Debian's package or skips."""
    configured = os.environ.get(CHROMIUM_ENV)
    if configured:
        why_not = _usable(configured)
        if why_not:
            pytest.skip(f"chromium not available: {CHROMIUM_ENV}={configured}: {why_not}")
        return configured
    path = shutil.which("chromium") or DEBIAN_CHROMIUM
    if not os.path.exists(path):
        why_not = _apt_install_chromium()
        if why_not:
            pytest.skip(f"chromium not available: {why_not}")
        path = DEBIAN_CHROMIUM
    why_not = _usable(path)
    if why_not:
        pytest.skip(f"chromium not available: {why_not}")
    return path


def spki_sha256_base64(cert_pem: bytes) -> str:
    """base64(SHA-256(SubjectPublicKeyInfo DER)): one entry of
    --ignore-certificate-errors-spki-list."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    cert = x509.load_pem_x509_certificate(cert_pem)
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(hashlib.sha256(spki).digest()).decode("ascii")


class PageServer:
    """Serves `html` at http://127.0.0.1:PORT/ (and 404 elsewhere) from a thread."""

    def __init__(self, html: str) -> None:
        body = html.encode()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path != "/":
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.origin = self.url.rstrip("/")
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


class Chromium:
    """Headless Chromium with a fresh profile, driven over the DevTools protocol.

    `open_page(url)` opens a tab and waits for its load event; `evaluate(js)` runs an
    expression there, awaiting a promise it returns, and gives back its JSON value.
    """

    def __init__(self, binary: str, extra_flags: Sequence[str] = ()) -> None:
        self.profile = tempfile.mkdtemp(prefix="wstool-chromium-")
        self.proc = subprocess.Popen(
            [binary, *CHROMIUM_FLAGS, f"--user-data-dir={self.profile}", *extra_flags,
             "about:blank"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        self.stderr_lines: list[str] = []
        self.events: list[dict[str, Any]] = []
        self._next_id = 0
        self._session_id: str | None = None
        self._devtools_url: str | None = None
        # The DevTools connection is entered as a context manager, as websockets >= 17.1
        # wants; close() leaves it.
        self._exit_stack = contextlib.ExitStack()
        self._ws: ClientConnection | None = None
        self._ready = threading.Event()
        threading.Thread(target=self._read_stderr, daemon=True).start()
        if not self._ready.wait(scaled(30)) or self._devtools_url is None:
            self.close()
            raise RuntimeError(f"chromium did not start DevTools: {self.stderr}")
        try:
            self._ws = self._exit_stack.enter_context(
                connect(self._devtools_url, max_size=None, open_timeout=scaled(10))
            )
        except Exception:
            self.close()
            raise

    @property
    def ws(self) -> ClientConnection:
        assert self._ws is not None, "chromium is closed"
        return self._ws

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            line = raw.decode(errors="replace").rstrip("\n")
            self.stderr_lines.append(line)
            match = re.search(r"DevTools listening on (ws://127\.0\.0\.1:\d+/\S+)", line)
            if match:
                self._devtools_url = match.group(1)
                self._ready.set()
        self._ready.set()

    @property
    def stderr(self) -> str:
        return "\n".join(self.stderr_lines[-40:])

    def call(self, method: str, params: dict[str, Any] | None = None,
             timeout_s: float = 20.0) -> dict[str, Any]:
        """Send one DevTools command (to the open page, if any) and return its result."""
        self._next_id += 1
        command_id = self._next_id
        message: dict[str, Any] = {"id": command_id, "method": method, "params": params or {}}
        if self._session_id is not None and not method.startswith("Target."):
            message["sessionId"] = self._session_id
        self.ws.send(json.dumps(message))
        deadline = time.monotonic() + scaled(timeout_s)
        while True:
            reply = self._receive(deadline, f"{method} reply")
            if reply.get("id") == command_id:
                if "error" in reply:
                    raise RuntimeError(f"{method} failed: {reply['error']}")
                result: dict[str, Any] = reply.get("result", {})
                return result

    def wait_event(self, method: str, timeout_s: float = 20.0) -> dict[str, Any]:
        for event in self._page_events():
            if event.get("method") == method:
                return event
        deadline = time.monotonic() + scaled(timeout_s)
        while True:
            event = self._receive(deadline, method)
            if event.get("method") == method and event.get("sessionId") == self._session_id:
                return event

    def _page_events(self) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("sessionId") == self._session_id]

    def _receive(self, deadline: float, waiting_for: str) -> dict[str, Any]:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"no {waiting_for} from chromium; stderr:\n{self.stderr}")
        try:
            message: dict[str, Any] = json.loads(self.ws.recv(timeout=remaining))
        except TimeoutError:
            raise TimeoutError(
                f"no {waiting_for} from chromium; stderr:\n{self.stderr}"
            ) from None
        if "method" in message:
            self.events.append(message)
        return message

    def open_page(self, url: str) -> None:
        target = self.call("Target.createTarget", {"url": "about:blank"})
        attached = self.call(
            "Target.attachToTarget", {"targetId": target["targetId"], "flatten": True}
        )
        self._session_id = attached["sessionId"]
        self.call("Page.enable")
        self.call("Runtime.enable")
        navigated = self.call("Page.navigate", {"url": url})
        if "errorText" in navigated:
            raise RuntimeError(f"could not load {url}: {navigated['errorText']}")
        self.wait_event("Page.loadEventFired")

    def evaluate(self, expression: str, timeout_s: float = 20.0) -> Any:
        result = self.call(
            "Runtime.evaluate",
            {"expression": expression, "awaitPromise": True, "returnByValue": True},
            timeout_s=timeout_s,
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"page script failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    def console(self) -> list[str]:
        """What the page logged (console API calls and uncaught exceptions), for messages."""
        lines = []
        for event in self._page_events():
            params = event.get("params", {})
            if event.get("method") == "Runtime.consoleAPICalled":
                args = [str(a.get("value", a.get("description", ""))) for a in params["args"]]
                lines.append(f"console.{params.get('type')}: {' '.join(args)}")
            elif event.get("method") == "Runtime.exceptionThrown":
                lines.append(f"exception: {params['exceptionDetails'].get('text')}")
        return lines

    def close(self) -> None:
        if self._ws is not None:
            with contextlib.suppress(Exception):
                self._ws.send(json.dumps({"id": 0, "method": "Browser.close"}))
            self._ws = None
        with contextlib.suppress(Exception):
            self._exit_stack.close()
        try:
            self.proc.wait(scaled(10))
        except subprocess.TimeoutExpired:
            # The launcher script execs the browser, which starts helpers in its session.
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        shutil.rmtree(self.profile, ignore_errors=True)


class ServeEchoProcess(ServeEcho):
    """`python -m wstool serve-echo --port 0 ARGS` (tests.servers.ServeEcho), plus the
    scheme and the --self-signed certificate's path parsed from its stderr."""

    def __init__(self, *args: str) -> None:
        super().__init__(*args)
        match = re.search(r"listening on (wss?)://", self.wait_for("listening on "))
        assert match
        self.scheme = match.group(1)
        cert = re.search(r"certificate .* in (\S+\.pem)", self.stderr)
        self.cert_path = Path(cert.group(1)) if cert else None

    def url_for(self, host: str = "127.0.0.1") -> str:
        return f"{self.scheme}://{host}:{self.port}/"

