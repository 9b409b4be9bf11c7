"""Node's `ws` package as an independent peer for interop tests.

`ensure_node_ws()` installs `ws` (and nothing else) from the npm registry once into a
cache directory shared by every test run on the machine, `NodeWsServer` runs an echo
server from tests/node/ws_server.js on 127.0.0.1 port 0, and `run_node_ws_client()`
runs tests/node/ws_client.js against a URL and collects what it received.

Where node or npm is missing, or the install fails, `ensure_node_ws()` calls
`pytest.skip` with the reason, so the tests that need Node skip cleanly.

The cache is $WSTOOL_NODE_CACHE, else ~/.cache/wstool-tests/node. Only loopback
addresses are ever used.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

# ws 8.x: the API the scripts use (WebSocketServer, (data, isBinary) message events).
WS_PACKAGE_SPEC = "ws@8"
NODE_SCRIPTS_DIR = Path(__file__).parent / "node"
NPM_INSTALL_TIMEOUT_S = 180.0


def node_cache_dir() -> Path:
    configured = os.environ.get("WSTOOL_NODE_CACHE")
    if configured:
        return Path(configured)
    return Path.home() / ".cache" / "wstool-tests" / "node"


@dataclass(frozen=True)
class NodeWs:
    """A usable node binary and a node_modules directory holding `ws`."""

    node: str
    node_modules: Path

    def env(self) -> dict[str, str]:
        # NODE_PATH lets the scripts in tests/node `require('ws')` from the cache.
        return {**os.environ, "NODE_PATH": str(self.node_modules)}


def _installed(node: str, node_modules: Path) -> bool:
    if not (node_modules / "ws" / "package.json").is_file():
        return False
    probe = subprocess.run(
        [node, "-e", "require('ws').WebSocketServer || process.exit(1)"],
        env={**os.environ, "NODE_PATH": str(node_modules)},
        capture_output=True,
        timeout=30,
    )
    return probe.returncode == 0


def ensure_node_ws(cache_dir: Path | None = None) -> NodeWs:
    """Return node + an installed `ws`, installing it once; pytest.skip when impossible."""
    node = shutil.which("node")
    npm = shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("Node's ws peer needs node and npm on PATH (not found)")
    prefix = cache_dir or node_cache_dir()
    node_modules = prefix / "node_modules"
    try:
        prefix.mkdir(parents=True, exist_ok=True)
        # A file lock, so concurrent test runs install once and never see half an install.
        with open(prefix / ".install.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not _installed(node, node_modules):
                result = subprocess.run(
                    [npm, "install", "--prefix", str(prefix), "--no-save", "--no-audit",
                     "--no-fund", "--no-package-lock", "--loglevel=error", WS_PACKAGE_SPEC],
                    capture_output=True,
                    text=True,
                    timeout=NPM_INSTALL_TIMEOUT_S,
                )
                if result.returncode != 0 or not _installed(node, node_modules):
                    lines = (result.stderr or result.stdout).strip().splitlines()
                    pytest.skip(
                        f"could not install Node's {WS_PACKAGE_SPEC} into {prefix} "
                        f"(npm exit {result.returncode}): {lines[-1] if lines else 'no output'}"
                    )
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"could not install Node's {WS_PACKAGE_SPEC} into {prefix}: {exc}")
    return NodeWs(node, node_modules)


class NodeWsServer:
    """tests/node/ws_server.js: a Node `ws` echo server on 127.0.0.1 port 0.

    close_after: close each connection with close_code/close_reason after echoing
    that many messages (0: never). subprotocol: selected when the client offers it.
    """

    def __init__(
        self,
        node_ws: NodeWs,
        *,
        close_after: int = 0,
        close_code: int = 1000,
        close_reason: str = "",
        subprotocol: str | None = None,
        start_timeout_s: float = 15.0,
    ) -> None:
        args = [
            node_ws.node, str(NODE_SCRIPTS_DIR / "ws_server.js"),
            "--close-after", str(close_after),
            "--close-code", str(close_code),
            "--close-reason", close_reason,
        ]
        if subprotocol is not None:
            args += ["--subprotocol", subprotocol]
        # stdin stays an open pipe: the script exits when it closes.
        self.proc = subprocess.Popen(
            args,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=node_ws.env(),
        )
        assert self.proc.stdout is not None
        try:
            first_line = _readline_with_timeout(self.proc, start_timeout_s)
            port = int(json.loads(first_line)["port"])
        except Exception as exc:
            self.proc.kill()
            _out, err = self.proc.communicate(timeout=10)
            raise RuntimeError(
                f"Node ws server did not start: {exc!r}; stderr: {err.decode(errors='replace')!r}"
            ) from exc
        self.port = port
        self.url = f"ws://127.0.0.1:{port}/"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()


def _readline_with_timeout(proc: subprocess.Popen[bytes], timeout_s: float) -> bytes:
    import selectors

    assert proc.stdout is not None
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        if not sel.select(timeout_s):
            raise TimeoutError(f"no port line within {timeout_s} s")
    line = proc.stdout.readline()
    if not line:
        raise EOFError(f"exited with status {proc.wait(5)} before printing its port")
    return line


@contextlib.contextmanager
def node_ws_server(
    node_ws: NodeWs,
    *,
    close_after: int = 0,
    close_code: int = 1000,
    close_reason: str = "",
    subprotocol: str | None = None,
) -> Iterator[NodeWsServer]:
    """A NodeWsServer for the duration of a `with` block."""
    server = NodeWsServer(
        node_ws, close_after=close_after, close_code=close_code,
        close_reason=close_reason, subprotocol=subprotocol,
    )
    try:
        yield server
    finally:
        server.stop()


@dataclass
class NodeClientResult:
    """What tests/node/ws_client.js saw: received messages in order, and the close."""

    protocol: str | None = None
    messages: list[str | bytes] = field(default_factory=list)
    close_code: int | None = None
    close_reason: str | None = None
    errors: list[str] = field(default_factory=list)
    stderr: str = ""


def run_node_ws_client(
    node_ws: NodeWs,
    url: str,
    messages: Sequence[str | bytes] = (),
    *,
    expect: int | None = None,
    subprotocols: Sequence[str] = (),
    timeout_s: float = 30.0,
) -> NodeClientResult:
    """Send `messages` (str as text, bytes as binary) from a Node `ws` client to `url`.

    The client closes with 1000 after `expect` received messages (default: as many as
    it sent; 0 closes right after sending), else waits for the server to close.
    """
    if expect is None:
        expect = len(messages)
    lines = []
    for message in messages:
        if isinstance(message, bytes):
            lines.append(json.dumps({"binary": base64.b64encode(message).decode()}))
        else:
            lines.append(json.dumps({"text": message}))
    proc = subprocess.run(
        [node_ws.node, str(NODE_SCRIPTS_DIR / "ws_client.js"), url, str(expect),
         *subprotocols],
        input=("\n".join(lines) + "\n").encode(),
        capture_output=True,
        timeout=timeout_s,
        env=node_ws.env(),
    )
    result = NodeClientResult(stderr=proc.stderr.decode(errors="replace"))
    for raw in proc.stdout.decode().splitlines():
        event = json.loads(raw)
        kind = event["event"]
        if kind == "open":
            result.protocol = event["protocol"] or None
        elif kind == "message":
            if "binary" in event:
                result.messages.append(base64.b64decode(event["binary"]))
            else:
                result.messages.append(event["text"])
        elif kind == "close":
            result.close_code = event["code"]
            result.close_reason = event["reason"]
        elif kind == "error":
            result.errors.append(event["message"])
    return result


@dataclass(frozen=True)
class NodeWsClient:
    """run_node_ws_client bound to one NodeWs: `client(url, messages, expect=...)`."""

    node_ws: NodeWs

    def __call__(
        self,
        url: str,
        messages: Sequence[str | bytes] = (),
        *,
        expect: int | None = None,
        subprotocols: Sequence[str] = (),
        timeout_s: float = 30.0,
    ) -> NodeClientResult:
        return run_node_ws_client(
            self.node_ws, url, messages, expect=expect, subprotocols=subprotocols,
            timeout_s=timeout_s,
        )
