"""Shared fixtures: real servers on 127.0.0.1 port 0, and running wstool as a process
or in-process.

Timing-sensitive waits scale through one knob, WSTOOL_TEST_TIME_SCALE (default 1).
Never send traffic anywhere but loopback.
"""

from __future__ import annotations

import _thread
import asyncio
import functools
import io
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trustme

TIME_SCALE = float(os.environ.get("WSTOOL_TEST_TIME_SCALE", "1"))

# The user's own ~/.config/wstool/config.toml ([defaults], profiles: issue 13) must not
# change what the suite's wstool runs do: an empty config home for every test.
os.environ["XDG_CONFIG_HOME"] = tempfile.mkdtemp(prefix="wstool-test-config-")


def scaled(seconds: float) -> float:
    return seconds * TIME_SCALE


@dataclass
class Proc:
    returncode: int
    stdout: bytes
    stderr: str


def run_wstool(
    *args: str, input: bytes | None = b"", timeout: float = 30, env: dict[str, str] | None = None
) -> Proc:
    """Run `python -m wstool ARGS` as a real process (stdin a pipe, never a tty)."""
    full_env = {**os.environ, "NO_COLOR": "1", **(env or {})}
    result = subprocess.run(
        [sys.executable, "-m", "wstool", *args],
        input=input,
        capture_output=True,
        timeout=scaled(timeout),
        env=full_env,
    )
    return Proc(result.returncode, result.stdout, result.stderr.decode(errors="replace"))


def run_wstool_inprocess(
    *args: str, input: bytes | None = b"", timeout: float = 30, env: dict[str, str] | None = None
) -> Proc:
    """Run `wstool ARGS` in this interpreter through `wstool.cli.main(argv, env)`.

    The same Proc as run_wstool, without the ~150 ms of a new interpreter: stdin
    is INPUT (never a tty), stdout and stderr are captured, and ENV is the
    command's environment (os.environ plus NO_COLOR=1, as run_wstool; os.environ
    itself is not touched). For what a process adds nothing to; signals, ttys,
    start-up, a closed stdout, exiting and stdin EOF timing need run_wstool.
    A run past TIMEOUT is interrupted (as Ctrl-C would) and fails the test.
    """
    from wstool.cli import main
    from wstool.term.env import Environment

    stdout, stderr = io.BytesIO(), io.StringIO()
    environ = {**os.environ, "NO_COLOR": "1", **(env or {})}
    wstool_env = Environment(io.BytesIO(input or b""), stdout, stderr, environ=environ)
    timed_out = threading.Event()

    def interrupt() -> None:
        timed_out.set()
        _thread.interrupt_main()

    watchdog = threading.Timer(scaled(timeout), interrupt)
    watchdog.start()
    try:
        status = main(list(args), wstool_env)
    finally:
        watchdog.cancel()
        watchdog.join()
    if timed_out.is_set():
        raise AssertionError(f"wstool {' '.join(args)} still running after "
                             f"{scaled(timeout)} s: {stderr.getvalue()!r}")
    return Proc(status, stdout.getvalue(), stderr.getvalue())


def async_test(fn: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """Run an async test in its own event loop (no pytest-asyncio here), bounded."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        asyncio.run(asyncio.wait_for(fn(*args, **kwargs), scaled(30)))

    return wrapper


def pid_gone(pid: int) -> bool:
    """Dead: no such process, or a zombie nobody reaps (PID 1 here may not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:  # no such file, or the process went while we read it
        return True
    return stat[stat.rfind(")") + 2] == "Z"


async def until(predicate: Callable[[], bool], what: str, timeout: float = 5) -> None:
    """Wait for PREDICATE in a running loop, polling; fail naming WHAT."""
    deadline = time.monotonic() + scaled(timeout)
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_leaf_cert(ca: Any, name: str, directory: Path, *,
                    password: bytes | None = None) -> tuple[Path, Path]:
    """A trustme certificate for NAME in DIRECTORY as (cert.pem, key.pem); the key
    encrypted with PASSWORD when given (PKCS#8, what `openssl pkey -aes256` writes)."""
    leaf = ca.issue_cert(name)
    cert, key = directory / f"{name}.pem", directory / f"{name}.key"
    leaf.cert_chain_pems[0].write_to_path(str(cert))
    if password is None:
        leaf.private_key_pem.write_to_path(str(key))
    else:
        from cryptography.hazmat.primitives import serialization

        private = serialization.load_pem_private_key(leaf.private_key_pem.bytes(),
                                                     password=None)
        key.write_bytes(private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(password)))
    return cert, key


class ServerThread:
    """Runs an asyncio server in a background thread with its own loop."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Any, timeout: float = 10) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(scaled(timeout))

    def stop(self) -> None:
        async def cancel_all() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        try:
            self.run(cancel_all(), timeout=5)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)
            if not self.thread.is_alive():
                self.loop.close()


@pytest.fixture
def server_thread() -> Iterator[ServerThread]:
    st = ServerThread()
    yield st
    st.stop()


def start_websockets_server(st: ServerThread, handler: Any, **kwargs: Any) -> tuple[Any, str]:
    """Start the websockets library's server (an independent peer) on port 0."""
    from websockets.asyncio.server import serve

    async def start() -> Any:
        return await serve(handler, "127.0.0.1", 0, **kwargs)

    server = st.run(start())
    port = next(iter(server.sockets)).getsockname()[1]
    return server, f"ws://127.0.0.1:{port}/"


async def lib_echo(ws: Any) -> None:
    async for message in ws:
        await ws.send(message)


@pytest.fixture
def lib_echo_url(server_thread: ServerThread) -> str:
    """The websockets library's own asyncio echo server."""
    _server, url = start_websockets_server(server_thread, lib_echo, max_size=None)
    return url


# --- Node's `ws` as an independent peer (tests/node_peers.py); skips without node/npm. ---

from tests.node_peers import (  # noqa: E402
    NodeWs,
    NodeWsClient,
    NodeWsServer,
    ensure_node_ws,
)


@pytest.fixture(scope="session")
def node_ws() -> NodeWs:
    """node plus Node's `ws` package, installed once into a cache dir (else skip)."""
    return ensure_node_ws()


@pytest.fixture
def node_ws_echo_url(node_ws: NodeWs) -> Iterator[str]:
    """A Node `ws` echo server on 127.0.0.1 port 0 (text as text, binary as binary)."""
    server = NodeWsServer(node_ws)
    yield server.url
    server.stop()


@pytest.fixture
def node_ws_client(node_ws: NodeWs) -> NodeWsClient:
    """`node_ws_client(url, messages, expect=None, subprotocols=(), timeout_s=30)`.

    Runs a Node `ws` client that sends `messages` (str: text, bytes: binary) and
    returns a NodeClientResult with the messages it received and the close code.
    """
    return NodeWsClient(node_ws)


# A test CA (trustme) per module, and its certificate as a file: TLS tests of the
# client, --http2 and probe.
@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def ca_file(ca: trustme.CA, tmp_path: Path) -> str:
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)
