"""listen --exec beside websocketd itself (issue 16): the same program, run by each,
sees the same CGI environment, so programs written for websocketd run unchanged.

websocketd is Debian's package (installed by the test when root with apt-get, else
skipped with the reason)."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosedError

from tests.browser import apt_install
from tests.conftest import closed_port, scaled
from tests.servers import ServeEcho

# What the program prints: every CGI variable websocketd sets (its libwebsocketd/env.go)
# and some it does not, as NAME=value or NAME=unset.
VARIABLES = (
    "QUERY_STRING", "PATH_INFO", "REQUEST_URI", "REMOTE_ADDR", "REMOTE_HOST", "SERVER_NAME",
    "SERVER_PROTOCOL", "REQUEST_METHOD", "SCRIPT_NAME", "HTTP_X_TEST", "HTTP_ORIGIN",
    "HTTP_UPGRADE", "HTTP_CONNECTION", "HTTP_SEC_WEBSOCKET_VERSION", "HTTP_PROXY", "HTTPS",
    "AUTH_TYPE", "CONTENT_TYPE", "CONTENT_LENGTH", "REMOTE_IDENT", "REMOTE_USER",
)
# Not compared, where wstool differs on purpose or by construction: SERVER_SOFTWARE
# (its own name), GATEWAY_INTERFACE (plain CGI/1.1, not websocketd-CGI/0.1), HTTP_HOST
# (wstool keeps the Host header; Go's server takes it out), UNIQUE_ID, the ports.


def websocketd() -> str:
    path = shutil.which("websocketd")
    if path is None:
        why_not = apt_install("websocketd")
        if why_not:
            pytest.skip(f"websocketd not available: {why_not}")
        path = shutil.which("websocketd")
        if path is None:
            pytest.skip("websocketd not available: apt-get installed no websocketd")
    return path


def wait_listening(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + scaled(10)
    while time.monotonic() < deadline:
        assert proc.poll() is None, "websocketd exited"
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.02)
    raise AssertionError(f"websocketd not listening on {port}")


async def environment_seen(url: str) -> dict[str, str]:
    lines: list[str] = []
    async with connect(url + "chat/room%201?name=ann&x=1",
                       additional_headers={"X-Test": "t1"}, close_timeout=1) as ws:
        try:
            async for message in ws:
                assert isinstance(message, str)
                lines.append(message)
        except ConnectionClosedError:  # websocketd drops TCP when the program ends
            pass
    return dict(line.split("=", 1) for line in lines)


def test_the_same_program_sees_the_same_cgi_environment(tmp_path: Path) -> None:
    binary = websocketd()
    program = tmp_path / "env.sh"
    program.write_text("#!/bin/sh\nfor v in " + " ".join(VARIABLES) +
                       '; do eval "echo $v=\\${$v-unset}"; done\n')
    program.chmod(0o755)
    port = closed_port()
    theirs = subprocess.Popen([binary, "--address", "127.0.0.1", "--port", str(port),
                               str(program)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    ours = ServeEcho("--exec", str(program), command="listen")
    try:
        wait_listening(port, theirs)
        seen_by_websocketd = asyncio.run(asyncio.wait_for(
            environment_seen(f"ws://127.0.0.1:{port}/"), scaled(20)))
        seen_by_wstool = asyncio.run(asyncio.wait_for(environment_seen(ours.url), scaled(20)))
    finally:
        theirs.terminate()
        theirs.wait(timeout=10)
        ours.close()
    assert set(seen_by_websocketd) == set(VARIABLES)
    assert seen_by_websocketd["QUERY_STRING"] == "name=ann&x=1"  # the program did run
    assert seen_by_wstool == seen_by_websocketd
