"""The README's "try it on this machine" lines for ``connect --http2`` and ``probe``,
run as written through ``bash -c`` against a real ``serve-echo --http2 --self-signed``.

One change a shared machine needs: the server listens on a free port (``--port 0``)
instead of 8443, and the clients are pointed at the port it printed. A line added
to those blocks without a check here fails the test.
"""

from __future__ import annotations

import re
import selectors
import time
from pathlib import Path

import pytest

from tests.conftest import scaled
from tests.test_readme_next_steps import (  # noqa: F401  (fixtures)
    Background,
    _run,
    background,
    shell_env,
)

ROOT = Path(__file__).resolve().parent.parent

SERVER = "wstool serve-echo --http2 --self-signed --port 8443"
CONNECT = "echo hi | wstool connect --http2=only -v -k wss://localhost:8443/"
PROBE = "wstool probe -k wss://localhost:8443/"


def try_it_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## WebSockets over HTTP/2: `connect --http2` and `probe`\n",
                           1)[1].split("\n## ", 1)[0]
    tail = section.split("To try it on this machine", 1)[1].split("`wstool probe URL`", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", tail, re.S)
    return [line for block in blocks for line in block.splitlines() if line.strip()]


def _tls_port(server: Background) -> int:
    assert server.proc.stderr is not None
    selector = selectors.DefaultSelector()
    selector.register(server.proc.stderr, selectors.EVENT_READ)
    deadline = time.monotonic() + scaled(20)
    while time.monotonic() < deadline:
        if not selector.select(timeout=0.1):
            continue
        line = server.proc.stderr.readline().decode()
        if not line:
            break
        server.stderr_lines.append(line)
        if match := re.search(r"listening on wss://127\.0\.0\.1:(\d+)/", line):
            return int(match.group(1))
    raise AssertionError(f"no port printed: {server.stderr_lines}")


@pytest.mark.slow
def test_try_it_lines_run_as_written(shell_env: dict[str, str], tmp_path: Path,  # noqa: F811
                                     background: list[Background]) -> None:  # noqa: F811
    pytest.importorskip("h2", reason="the h2 package (wstool[http2]) is not installed")
    assert try_it_commands() == [SERVER, CONNECT, PROBE]

    server = Background(SERVER.replace("8443", "0"), shell_env, tmp_path)
    background.append(server)
    port = str(_tls_port(server))

    connected = _run(CONNECT.replace("8443", port), shell_env, tmp_path)
    err = connected.stderr.decode()
    assert connected.returncode == 0, err
    assert connected.stdout == b"hi\n"
    assert "ALPN: server chose h2" in err and "ENABLE_CONNECT_PROTOCOL=1" in err
    assert "over HTTP/2 (RFC 8441)" in err

    probed = _run(PROBE.replace("8443", port), shell_env, tmp_path)
    out = probed.stdout.decode()
    assert probed.returncode == 0, probed.stderr
    assert "accepts WebSockets over HTTP/1.1 and over HTTP/2 (RFC 8441)" in out
    assert "extended CONNECT: :status 200" in out

    status, _out, log = server.interrupt()
    assert status == 0, log
