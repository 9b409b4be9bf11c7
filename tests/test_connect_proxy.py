"""Proxies: HTTP CONNECT and SOCKS5 (tiny real proxies on loopback), env vars, --no-proxy."""

from __future__ import annotations

import pytest

from tests import servers
from tests.conftest import ServerThread, closed_port, run_wstool

# urllib prefers the lower-case variables and ignores empty ones, so setting
# both spellings to "" clears any proxy of the machine running the tests.
NO_PROXY_ENV = {"HTTP_PROXY": "", "HTTPS_PROXY": "", "ALL_PROXY": "", "NO_PROXY": "",
                "http_proxy": "", "https_proxy": "", "all_proxy": "", "no_proxy": ""}


@pytest.fixture
def http_proxy(server_thread: ServerThread) -> tuple[str, servers.ProxyLog]:
    log = servers.ProxyLog()
    _server, port = server_thread.run(servers.start_http_proxy(log))
    return f"http://127.0.0.1:{port}", log


@pytest.fixture
def socks_proxy(server_thread: ServerThread) -> tuple[str, servers.ProxyLog]:
    log = servers.ProxyLog()
    _server, port = server_thread.run(servers.start_socks5_proxy(log))
    return f"socks5://127.0.0.1:{port}", log


def _authority(url: str) -> str:
    return url.split("://", 1)[1].rstrip("/")


def test_http_connect_proxy_option(
    lib_echo_url: str, http_proxy: tuple[str, servers.ProxyLog]
) -> None:
    proxy, log = http_proxy
    proc = run_wstool("connect", "--proxy", proxy, lib_echo_url, input=b"via proxy\n",
                      env=NO_PROXY_ENV)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == b"via proxy\n"
    assert log.requests == [f"CONNECT {_authority(lib_echo_url)} HTTP/1.1"]


def test_socks5_proxy_option(
    lib_echo_url: str, socks_proxy: tuple[str, servers.ProxyLog]
) -> None:
    proxy, log = socks_proxy
    proc = run_wstool("connect", "--proxy", proxy, lib_echo_url, input=b"via socks\n",
                      env=NO_PROXY_ENV)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == b"via socks\n"
    assert log.requests == [f"CONNECT {_authority(lib_echo_url)}"]


@pytest.mark.parametrize("variable", ["http_proxy", "all_proxy"])
def test_proxy_from_environment_and_bypasses(
    lib_echo_url: str, http_proxy: tuple[str, servers.ProxyLog], variable: str
) -> None:
    proxy, log = http_proxy
    env = {**NO_PROXY_ENV, variable: proxy}
    assert run_wstool("connect", lib_echo_url, input=b"a\n", env=env).stdout == b"a\n"
    assert len(log.requests) == 1
    assert run_wstool("connect", "--no-proxy", lib_echo_url, input=b"b\n", env=env).stdout == (
        b"b\n"
    )
    bypass = {**env, "no_proxy": "127.0.0.1"}
    assert run_wstool("connect", lib_echo_url, input=b"c\n", env=bypass).stdout == b"c\n"
    assert len(log.requests) == 1


def test_proxy_refusing_the_tunnel(http_proxy: tuple[str, servers.ProxyLog]) -> None:
    # Our proxy refuses anything but loopback; the name is never resolved.
    proxy, log = http_proxy
    proc = run_wstool("connect", "--proxy", proxy, "ws://blocked.test/", env=NO_PROXY_ENV)
    assert proc.returncode == 3, proc.stderr
    assert "proxy refused the tunnel: HTTP 403" in proc.stderr
    assert log.requests == ["CONNECT blocked.test:80 HTTP/1.1"]


def test_unreachable_proxy(lib_echo_url: str) -> None:
    port = closed_port()
    proc = run_wstool("connect", "--proxy", f"http://127.0.0.1:{port}", lib_echo_url,
                      env=NO_PROXY_ENV)
    assert proc.returncode == 3, proc.stderr
    assert f"cannot reach proxy http://127.0.0.1:{port}" in proc.stderr
    assert "Traceback" not in proc.stderr
