"""`wstool serve-echo` as a real process on 127.0.0.1 port 0, against independent clients:
the websockets library's client, Node's `ws` client, curl-like raw HTTP.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.conftest import scaled
from tests.node_peers import NodeWsClient, ensure_node_ws
from tests.servers import ServeEcho


@pytest.fixture
def serve_echo() -> Iterator[Any]:
    servers: list[ServeEcho] = []

    def start(*args: str) -> ServeEcho:
        s = ServeEcho(*args)
        servers.append(s)
        return s

    yield start
    for s in servers:
        s.close()


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, scaled(20)))


async def echo_round(url: str, messages: list[str | bytes], **kwargs: Any) -> list[Any]:
    async with connect(url, **kwargs) as ws:
        for m in messages:
            await ws.send(m)
        return [await ws.recv() for _ in messages]


def test_echo_with_websockets_client_keeps_types(serve_echo: Any) -> None:
    s = serve_echo()
    messages: list[str | bytes] = ["hello", b"\x00\x01\xff", "ünïcode ✓", "", b"x" * 70000]
    assert run(echo_round(s.url, messages)) == messages
    assert run(echo_round(s.url, messages, compression=None)) == messages


def test_fragmented_message_is_echoed_whole(serve_echo: Any) -> None:
    s = serve_echo()

    async def go() -> Any:
        async with connect(s.url) as ws:
            await ws.send(["ab", "cd", "ef"])
            return await ws.recv()

    assert run(go()) == "abcdef"


def test_subprotocols_first_offered_or_preference_order(serve_echo: Any) -> None:
    s = serve_echo()

    async def chosen(url: str, offered: list[str]) -> Any:
        async with connect(url, subprotocols=offered) as ws:  # type: ignore[arg-type]
            return ws.subprotocol

    assert run(chosen(s.url, ["b", "a"])) == "b"
    s2 = serve_echo("-s", "a", "-s", "b")
    assert run(chosen(s2.url, ["b", "a"])) == "a"
    with pytest.raises(InvalidStatus) as info:
        run(chosen(s2.url, ["c"]))
    assert info.value.response.status_code == 400


def test_origin_allow_list(serve_echo: Any) -> None:
    s = serve_echo("--origin", "https://*.example.com", "--origin", "http://localhost:3000")
    assert run(echo_round(s.url, ["x"], origin="https://app.example.com")) == ["x"]
    assert run(echo_round(s.url, ["x"], origin="http://localhost:3000")) == ["x"]
    with pytest.raises(InvalidStatus) as info:
        run(echo_round(s.url, ["x"], origin="https://evil.test"))
    assert info.value.response.status_code == 403
    with pytest.raises(InvalidStatus) as info:
        run(echo_round(s.url, ["x"]))  # no Origin header at all
    assert info.value.response.status_code == 403


def test_basic_auth_and_token(serve_echo: Any) -> None:
    s = serve_echo("--auth", "user:pw", "--token", "s3cret")
    port = s.port
    for url in (f"ws://127.0.0.1:{port}/", f"ws://user:bad@127.0.0.1:{port}/",
                f"ws://127.0.0.1:{port}/?token=nope"):
        with pytest.raises(InvalidStatus) as info:
            run(echo_round(url, ["x"]))
        assert info.value.response.status_code == 401
    assert run(echo_round(f"ws://user:pw@127.0.0.1:{port}/", ["a"])) == ["a"]
    assert run(echo_round(f"ws://127.0.0.1:{port}/?token=s3cret", ["b"])) == ["b"]
    headers = {"Authorization": "Bearer s3cret"}
    assert run(echo_round(s.url, ["c"], additional_headers=headers)) == ["c"]


def raw_http(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=scaled(5)) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
        return data


def test_plain_http_gets_426_health_gets_200_and_garbage_is_survived(serve_echo: Any) -> None:
    s = serve_echo("-v")
    page = raw_http(s.port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert page.startswith(b"HTTP/1.1 426 Upgrade Required\r\n")
    assert b"\r\nUpgrade: websocket\r\n" in page
    health = raw_http(s.port, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    assert health.startswith(b"HTTP/1.1 200 OK\r\n") and health.endswith(b"ok\n")
    assert raw_http(s.port, b"\x16\x03\x01\x00\xff garbage\r\n\r\n") == b""
    # A half handshake, then an abrupt disconnect.
    with socket.create_connection(("127.0.0.1", s.port)) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nUpgrade: websocket\r\n")
    s.wait_for("dropped")
    assert run(echo_round(s.url, ["still alive"])) == ["still alive"]
    assert s.stop() == 0
    assert "HTTP 426" in s.stderr and "HTTP 200" in s.stderr


def test_the_426_page_names_the_url_the_browser_asked_for(serve_echo: Any) -> None:
    """Issue 10: the page said `wstool connect ws://HOST:PORT/` whatever was asked."""
    s = serve_echo()
    page = raw_http(s.port, f"GET /chat?room=1 HTTP/1.1\r\nHost: 127.0.0.1:{s.port}\r\n\r\n"
                    .encode())
    assert page.endswith(f"  wstool connect ws://127.0.0.1:{s.port}/chat?room=1\n".encode())
    # A Host header that is not a host name is not echoed back.
    odd = raw_http(s.port, b"GET / HTTP/1.1\r\nHost: <script>\r\n\r\n")
    assert odd.endswith(b"  wstool connect ws://HOST:PORT/\n")
    assert b"<script>" not in odd


def test_max_connections_503(serve_echo: Any) -> None:
    s = serve_echo("--max-connections", "1")

    async def go() -> int:
        async with connect(s.url) as first:
            await first.send("hi")
            assert await first.recv() == "hi"
            try:
                async with connect(s.url):
                    return 101
            except InvalidStatus as exc:
                return exc.response.status_code

    assert run(go()) == 503
    assert run(echo_round(s.url, ["after"])) == ["after"]


def test_max_size_closes_1009(serve_echo: Any) -> None:
    s = serve_echo("--max-size", "1000")

    async def go() -> Any:
        async with connect(s.url, max_size=None) as ws:
            await ws.send("ok")
            assert await ws.recv() == "ok"
            await ws.send("x" * 1001)
            with pytest.raises(ConnectionClosed) as info:
                await ws.recv()
            return info.value.rcvd.code if info.value.rcvd else None

    assert run(go()) == 1009


def test_open_timeout_drops_a_silent_client(serve_echo: Any) -> None:
    s = serve_echo("-v", "--open-timeout", "0.3")
    with socket.create_connection(("127.0.0.1", s.port), timeout=scaled(10)) as sock:
        assert sock.recv(100) == b""  # closed by the server, not by our timeout
    s.wait_for("--open-timeout")


def test_sigterm_closes_clients_with_1001_and_prints_a_summary(serve_echo: Any) -> None:
    s = serve_echo()

    async def go() -> Any:
        async with connect(s.url) as ws:
            await ws.send("one")
            assert await ws.recv() == "one"
            s.proc.send_signal(signal.SIGTERM)
            with pytest.raises(ConnectionClosed) as info:
                await ws.recv()
            return info.value.rcvd.code if info.value.rcvd else None

    assert run(go()) == 1001
    assert s.proc.wait(scaled(15)) == 0  # the one SIGTERM is enough
    s.wait_for_eof()
    assert "summary: 1 connection; messages 1 in, 1 out; bytes 3 in, 3 out" in s.stderr


def test_sigint_exits_0(serve_echo: Any) -> None:
    s = serve_echo()
    assert s.stop(signal.SIGINT) == 0
    assert "summary: 0 connections" in s.stderr


def test_knobs_greeting_close_after(serve_echo: Any) -> None:
    s = serve_echo("--greeting", "welcome", "--close-after", "2", "--close-code", "4001",
                   "--close-reason", "enough")

    async def go() -> Any:
        async with connect(s.url) as ws:
            got = [await ws.recv()]
            for m in ("a", "b", "c"):
                await ws.send(m)
            with pytest.raises(ConnectionClosed) as info:
                while True:
                    got.append(await ws.recv())
            rcvd = info.value.rcvd
            return got, (rcvd.code, rcvd.reason) if rcvd else None

    assert run(go()) == (["welcome", "a", "b"], (4001, "enough"))


def test_drop_after_closes_abruptly(serve_echo: Any) -> None:
    s = serve_echo("--drop-after", "1")

    async def go() -> Any:
        async with connect(s.url) as ws:
            await ws.send("a")
            assert await ws.recv() == "a"
            with pytest.raises(ConnectionClosed) as info:
                await ws.recv()
            return info.value.rcvd

    assert run(go()) is None  # no close frame: 1006 on the client


def test_delay_keeps_order_and_loses_nothing_at_close(serve_echo: Any) -> None:
    from tests.test_echo_strict import CLOSE, TEXT, RawClient, close_payload, frame

    s = serve_echo("--delay", "0.05", "--no-compress")
    c = RawClient(s.port)
    # The Close comes right after the messages: every delayed echo goes first.
    c.send(b"".join(frame(TEXT, str(i).encode()) for i in range(5))
           + frame(CLOSE, close_payload(1000)))
    frames = c.read_until_closed()
    c.close()
    assert [f.payload for f in frames] == [b"0", b"1", b"2", b"3", b"4", close_payload(1000)]


def test_broadcast(serve_echo: Any) -> None:
    s = serve_echo("--broadcast")

    async def go() -> Any:
        async with connect(s.url) as a, connect(s.url) as b:
            await a.send("from a")
            return await a.recv(), await b.recv()

    assert run(go()) == ("from a", "from a")


def test_ping_every(serve_echo: Any) -> None:
    s = serve_echo("--ping-every", "0.1", "-vv")
    from tests.test_echo_strict import PING, RawClient

    c = RawClient(s.port)
    frames = c.read_frames(1)
    c.close()
    assert frames[0].opcode == PING


def test_verbose_logs_connections_and_frames(serve_echo: Any) -> None:
    s = serve_echo("-vv")
    assert run(echo_round(s.url, ["hello\x1b[31m"])) == ["hello\x1b[31m"]
    s.wait_for("closed by the client: 1000")
    assert s.stop() == 0
    assert "[1] connected from 127.0.0.1:" in s.stderr
    assert '[1] < TEXT fin 10 B "hello\\e[31m"' in s.stderr  # escaped, never raw
    assert '[1] > TEXT fin 10 B "hello\\e[31m"' in s.stderr
    assert "[1] < CLOSE fin 2 B 1000 (normal closure)" in s.stderr
    assert "\x1b" not in s.stderr


def test_json_events_on_stdout(serve_echo: Any) -> None:
    import json
    import time

    before = time.time()
    s = serve_echo("--json")
    run(echo_round(s.url, ["x"]))
    s.wait_for("listening")
    assert s.stop() == 0
    events = [json.loads(line) for line in s.stdout.decode().splitlines()]
    # issue 10: wall-clock `ts` (Unix epoch), the monotonic clock under `mono`
    assert all(before - 0.01 <= e["ts"] <= time.time() and "mono" in e for e in events)
    kinds = [e["event"] for e in events]
    assert kinds[0] == "listening" and "connect" in kinds and "disconnect" in kinds
    assert kinds[-1] == "summary" and events[-1]["messages_in"] == 1


def test_self_signed_wss(serve_echo: Any) -> None:
    pytest.importorskip("cryptography")
    import ssl

    s = serve_echo("--self-signed")
    assert s.url.startswith("wss://")
    certfile = re.search(r"in (\S+cert\.pem)", s.wait_for("self-signed certificate")).group(1)  # type: ignore[union-attr]
    assert re.search(r"SHA-256 fingerprint ([0-9A-F]{2}:){31}[0-9A-F]{2}", s.stderr)
    context = ssl.create_default_context(cafile=certfile)
    url = f"wss://localhost:{s.port}/"
    assert run(echo_round(url, ["secure"], ssl=context)) == ["secure"]
    # And wstool's own client, trusting it with --cacert.
    proc = subprocess.run(
        [sys.executable, "-m", "wstool", "connect", "--cacert", certfile, url],
        input=b"via wstool\n", capture_output=True, timeout=scaled(20),
    )
    assert proc.stdout == b"via wstool\n", proc.stderr
    assert s.stop() == 0
    assert not Path(certfile).exists()  # removed at exit


def test_self_signed_prints_a_connect_line_that_works_as_pasted(serve_echo: Any) -> None:
    """Issue 10: the ready-to-paste line said wss://localhost:PORT/ (literally PORT)."""
    pytest.importorskip("cryptography")
    import shlex

    s = serve_echo("--self-signed")  # -p 0: the port is only known once listening
    line = s.wait_for("trust it with:")
    command = shlex.split(line.split("trust it with: ", 1)[1].splitlines()[0])
    assert command[:3] == ["wstool", "connect", "--cacert"]
    assert command[-1] == f"wss://localhost:{s.port}/"
    proc = subprocess.run([sys.executable, "-m", "wstool", *command[1:]],
                          input=b"pasted\n", capture_output=True, timeout=scaled(20))
    assert proc.stdout == b"pasted\n", proc.stderr
    assert s.stop() == 0


def test_encrypted_server_key(tmp_path: Path) -> None:
    import ssl

    import trustme

    from tests.conftest import write_leaf_cert

    ca = trustme.CA()
    cert, key = write_leaf_cert(ca, "127.0.0.1", tmp_path, password=b"s3cret")
    args = [sys.executable, "-m", "wstool", "serve-echo", "--port", "0", "--cert", str(cert),
            "--key", str(key)]

    refused = subprocess.run(args, capture_output=True, timeout=scaled(20),
                             stdin=subprocess.DEVNULL,
                             env={**os.environ, "WSTOOL_KEY_PASSWORD": ""})
    assert refused.returncode == 2
    assert refused.stderr.decode() == (
        f"wstool: error: --key {key} is encrypted: give its pass phrase in "
        "WSTOOL_KEY_PASSWORD or with --key-password\n")

    s = ServeEcho("--cert", str(cert), "--key", str(key), env={"WSTOOL_KEY_PASSWORD": "s3cret"})
    try:
        context = ssl.create_default_context()
        ca.configure_trust(context)
        assert run(echo_round(f"wss://127.0.0.1:{s.port}/", ["locked"], ssl=context)) == ["locked"]
    finally:
        s.close()


def test_unix_socket(serve_echo: Any, tmp_path: Path) -> None:
    path = str(tmp_path / "echo.sock")
    s = serve_echo("--unix", path)
    assert s.url == f"ws+unix://{path}"
    from websockets.asyncio.client import unix_connect

    async def go() -> Any:
        async with unix_connect(path, "ws://localhost/") as ws:
            await ws.send("over unix")
            return await ws.recv()

    assert run(go()) == "over unix"


def test_500_messages_with_close_via_websockets_sans_io_client(serve_echo: Any) -> None:
    # The no-echo-lost check, through an independent client stack.
    from tests.test_echo_strict import CLOSE, TEXT, RawClient, close_payload, frame

    s = serve_echo("--no-compress")
    c = RawClient(s.port)
    c.send(b"".join(frame(TEXT, b"m%d" % i) for i in range(500))
           + frame(CLOSE, close_payload(1000)))
    frames = c.read_until_closed()
    c.close()
    assert [f.payload for f in frames[:500]] == [b"m%d" % i for i in range(500)]
    assert frames[500].opcode == CLOSE and len(frames) == 501


@pytest.mark.slow
def test_node_ws_client_interop(serve_echo: Any) -> None:
    client = NodeWsClient(ensure_node_ws())
    s = serve_echo()
    result = client(s.url, ["hello", b"\x00\x01", "ünï"], subprotocols=["chat", "v2"])
    assert result.errors == [], result.stderr
    assert result.protocol == "chat"  # first offered, accepted
    assert result.messages == ["hello", b"\x00\x01", "ünï"]
    assert result.close_code == 1000
    s2 = serve_echo("--close-after", "1", "--close-code", "4000", "--close-reason", "bye")
    result = client(s2.url, ["a", "b"], expect=5)
    assert result.messages == ["a"] and (result.close_code, result.close_reason) == (4000, "bye")


def test_keepalive_fails_a_silent_client_with_1011(serve_echo: Any) -> None:
    from tests.test_echo_strict import CLOSE, PING, RawClient

    s = serve_echo("--ping-interval", "0.2", "--ping-timeout", "0.2", "-v")
    c = RawClient(s.port)  # never answers pings
    frames = c.read_until_closed()
    c.close()
    assert frames[0].opcode == PING
    assert frames[-1].opcode == CLOSE and frames[-1].close_code == 1011
    s.wait_for("keepalive ping timeout")


def test_extra_pings_do_not_hide_a_silent_client(serve_echo: Any) -> None:
    # --ping-every pings more often than the keepalive checks; a client that answers
    # none of them must still be failed --ping-timeout after the first one.
    from tests.test_echo_strict import CLOSE, RawClient, parse_server_frames

    s = serve_echo("--ping-every", "0.05", "--ping-interval", "0.2", "--ping-timeout", "0.3",
                   "-v")
    c = RawClient(s.port)  # never answers pings
    data, deadline = c.extra, time.monotonic() + scaled(3)
    while time.monotonic() < deadline:  # pings keep coming: bound the wait ourselves
        chunk = c.sock.recv(65536)
        if not chunk:
            break
        data += chunk
    c.close()
    frames = parse_server_frames(data)
    assert frames and frames[-1].opcode == CLOSE and frames[-1].close_code == 1011
    s.wait_for("keepalive ping timeout")


def test_keepalive_keeps_an_answering_client(serve_echo: Any) -> None:
    s = serve_echo("-vv", "--ping-interval", "0.1", "--ping-timeout", "1")

    async def go() -> Any:
        async with connect(s.url, ping_interval=None) as ws:
            # The library's client answers pings by itself; wait for the server
            # to log a pong, then check the connection still echoes.
            await asyncio.to_thread(s.wait_for, "pong in")
            await ws.send("still here")
            return await ws.recv()

    assert run(go()) == "still here"


@pytest.mark.slow
def test_node_ws_client_over_wss_self_signed(serve_echo: Any) -> None:
    pytest.importorskip("cryptography")
    from dataclasses import dataclass

    from tests.node_peers import NodeWs, run_node_ws_client

    node_ws = ensure_node_ws()
    s = serve_echo("--self-signed")
    certfile = re.search(r"in (\S+cert\.pem)", s.wait_for("self-signed certificate"))
    assert certfile is not None

    @dataclass(frozen=True)
    class TrustingNodeWs(NodeWs):
        cafile: str = ""

        def env(self) -> dict[str, str]:
            # Node reads extra trusted CAs from this file at start-up.
            return {**super().env(), "NODE_EXTRA_CA_CERTS": self.cafile}

    trusting = TrustingNodeWs(node_ws.node, node_ws.node_modules, certfile.group(1))
    result = run_node_ws_client(trusting, f"wss://localhost:{s.port}/", ["secure hello"])
    assert result.errors == [], result.stderr
    assert result.messages == ["secure hello"]
    assert result.close_code == 1000


def test_shutdown_does_not_wait_past_close_timeout_for_a_silent_client(
    serve_echo: Any,
) -> None:
    import time

    from tests.test_echo_strict import CLOSE, RawClient

    s = serve_echo("--close-timeout", "0.5")
    c = RawClient(s.port)  # reads, but never answers the server's Close
    s.proc.send_signal(signal.SIGTERM)
    started = time.monotonic()
    frames = c.read_until_closed()  # ends when the server drops the TCP connection
    assert frames[-1].opcode == CLOSE and frames[-1].close_code == 1001
    assert s.proc.wait(scaled(15)) == 0
    # --close-timeout 0.5, not the default 5 s (generous bound for slow machines).
    assert time.monotonic() - started < scaled(4)
    c.close()


def test_vv_shows_the_handshake_from_the_servers_side(serve_echo: Any) -> None:
    s = serve_echo("-vv")
    assert run(echo_round(s.url, ["x"], additional_headers={"Authorization": "Bearer t0p"})) \
        == ["x"]
    s.wait_for("closed by the client")
    assert s.stop() == 0
    assert "[1] < GET / HTTP/1.1" in s.stderr  # received
    assert "[1] > HTTP/1.1 101 Switching Protocols" in s.stderr  # sent
    assert "[1] < Authorization: Bearer ***" in s.stderr  # masked without --show-secrets
    assert "t0p" not in s.stderr


def test_short_echoes_go_uncompressed_long_ones_compressed(serve_echo: Any) -> None:
    # RFC 7692 §6.1: the sender picks per message; under 1024 bytes deflate
    # costs more than it saves (Node's ws threshold). RSV1 (0x40) marks it.
    import socket

    from websockets.client import ClientProtocol
    from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory
    from websockets.uri import parse_uri

    s = serve_echo()
    protocol = ClientProtocol(parse_uri(s.url), extensions=[ClientPerMessageDeflateFactory()])
    with socket.create_connection(("127.0.0.1", s.port), timeout=scaled(10)) as sock:
        protocol.send_request(protocol.connect())
        sock.sendall(b"".join(protocol.data_to_send()))
        response = b""
        while b"\r\n\r\n" not in response:
            response += sock.recv(4096)
        assert b"permessage-deflate" in response
        head, _, rest = response.partition(b"\r\n\r\n")
        protocol.receive_data(head + b"\r\n\r\n")
        for size, first_byte in ((1023, 0x81), (1024, 0xC1)):
            protocol.send_text(b"a" * size)
            sock.sendall(b"".join(protocol.data_to_send()))
            while len(rest) < 1:
                rest += sock.recv(65536)
            assert rest[0] == first_byte, (size, hex(rest[0]))
            protocol.receive_data(rest)
            rest = b""
            echoed = [e for e in protocol.events_received() if getattr(e, "data", None)]
            while not echoed:
                protocol.receive_data(sock.recv(65536))
                echoed = [e for e in protocol.events_received() if getattr(e, "data", None)]
            assert getattr(echoed[0], "data", None) == b"a" * size
