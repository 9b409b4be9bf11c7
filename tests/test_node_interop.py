"""`wstool connect` in pipe mode against Node's `ws` server, an independent implementation.

Skips where node/npm are missing or Node's `ws` cannot be installed (tests/node_peers.py).
"""

from __future__ import annotations

import os

import pytest

from tests.conftest import run_wstool_inprocess
from tests.node_peers import NodeClientResult, NodeWs, NodeWsClient, node_ws_server


@pytest.mark.slow
def test_hundred_lines_round_trip_in_order(node_ws_echo_url: str) -> None:
    lines = [f"line {i:03d} " + "x" * (i % 17) for i in range(100)]
    proc = run_wstool_inprocess("connect", node_ws_echo_url,
                                input=("\n".join(lines) + "\n").encode())
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.decode().splitlines() == lines


@pytest.mark.slow
def test_binary_round_trip_is_byte_identical(node_ws_echo_url: str) -> None:
    # Every byte value, NULs and newlines included, and more than one 64 KiB chunk.
    payload = bytes(range(256)) * 1024 + os.urandom(70_000)
    proc = run_wstool_inprocess("connect", "-b", node_ws_echo_url, input=payload)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == payload


@pytest.mark.slow
def test_our_normal_close_is_shown_on_stderr(node_ws_echo_url: str) -> None:
    proc = run_wstool_inprocess("connect", node_ws_echo_url, input=b"hello\n")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == b"hello\n"
    assert "1000" in proc.stderr


@pytest.mark.slow
def test_server_close_code_and_reason_are_shown_on_stderr(node_ws: NodeWs) -> None:
    with node_ws_server(node_ws, close_after=2, close_code=4001, close_reason="go away") as srv:
        proc = run_wstool_inprocess("connect", "-w", "-1", srv.url, input=b"one\ntwo\nthree\n")
    assert proc.stdout == b"one\ntwo\n"
    assert "4001" in proc.stderr
    assert "go away" in proc.stderr


@pytest.mark.slow
def test_node_client_helper_against_node_server(
    node_ws_echo_url: str, node_ws_client: NodeWsClient
) -> None:
    # The helper itself, so other tests can trust it: text and binary, in order.
    result: NodeClientResult = node_ws_client(node_ws_echo_url, ["a", b"\x00\xff", "c"])
    assert result.errors == []
    assert result.messages == ["a", b"\x00\xff", "c"]
    assert result.close_code == 1000
