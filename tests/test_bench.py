"""wstool bench (issue 15): against real servers on loopback, and its pure parts."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import re
import signal
import subprocess
import sys
import time
from typing import Any

import pytest

from tests.conftest import (
    Proc,
    ServerThread,
    closed_port,
    run_wstool_inprocess,
    scaled,
    start_websockets_server,
    until,
)
from tests.servers import ServeEcho
from wstool.bench import stats
from wstool.bench.stats import Histogram, percentile_of_counts
from wstool.config import parse_threshold
from wstool.errors import UsageError


def bench_json(*args: str) -> tuple[Proc, dict[str, Any]]:
    proc = run_wstool_inprocess("bench", "--json", "--no-compress", *args, timeout=60)
    assert proc.stdout.count(b"\n") == 1, (proc.stdout, proc.stderr)
    return proc, json.loads(proc.stdout)


def bench_in_a_pty(*args: str) -> Any:
    """`wstool bench ARGS` on a 100 x 40 terminal (pexpect)."""
    import os

    import pexpect

    return pexpect.spawn(
        sys.executable, ["-m", "wstool", "bench", *args],
        env={**os.environ, "TERM": "xterm", "COLUMNS": "100", "LINES": "40"},
        dimensions=(40, 100), encoding="utf-8", timeout=scaled(20))


def server_summary(server: ServeEcho) -> tuple[int, int]:
    """(connections, messages in) from serve-echo's summary line after SIGTERM."""
    server.stop()
    line = server.wait_for("summary: ")
    match = re.search(r"summary: (\d+) connections?; messages (\d+) in", line)
    assert match, line
    return int(match.group(1)), int(match.group(2))


@pytest.fixture(params=["c", "python"])
def receiver(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """echo mode's receive path: the C core, then its pure-Python twin (both must count
    what the server saw; tests/test_bench_closedloop.py compares them chunk by chunk)."""
    from wstool.bench import generator

    if request.param == "python":
        monkeypatch.setattr(generator, "_FastReceiver", generator._PyReceiver)
    elif generator._closedloop is None:
        pytest.skip("wstool.bench._closedloop is not built here (test_bench_closedloop.py "
                    "says whether it should be)")
    return str(request.param)


# Against serve-echo and Node's ws: the counts the server saw.


@pytest.mark.slow
def test_echo_counts_match_what_serve_echo_saw(receiver: str) -> None:
    server = ServeEcho()
    try:
        proc, report = bench_json("-c", "4", "--messages", "250", "--window", "5", server.url)
        assert proc.returncode == 0, proc.stderr
        msgs = report["messages"]
        assert msgs["sent"] == msgs["received"] == 1000
        assert msgs["bytes_received"] == 1000 * 32
        assert report["latency"]["count"] == 1000
        assert report["connections"]["opened"] == 4
        assert report["errors"] == 0
        lat = report["latency"]
        assert 0 < lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
        connections, messages_in = server_summary(server)
        assert (connections, messages_in) == (4, 1000)
    finally:
        server.close()


@pytest.mark.slow
def test_duration_and_warmup_against_node_ws(node_ws_echo_url: str, receiver: str) -> None:
    proc, report = bench_json("-c", "3", "--duration", "1.5", "--warmup", "0.5",
                              "--window", "4", "-b", "--size", "100", node_ws_echo_url)
    assert proc.returncode == 0, proc.stderr
    msgs = report["messages"]
    assert msgs["received"] > 0
    assert msgs["bytes_received"] == msgs["received"] * 100
    # The measured window is the duration less the warm-up.
    assert 0.9 < report["duration_s"] < 1.3
    assert msgs["sent"] - msgs["received"] <= 3 * 4 + 12  # in flight at the end
    assert report["generator"]["histogram"] == "hdr"
    assert report["latency_hdr"]


# Servers that misbehave: counted by HTTP status, by close code; latency reflects a
# slow server.


def test_rejected_handshakes_are_counted_by_status(server_thread: ServerThread) -> None:
    from websockets.asyncio.server import ServerConnection
    from websockets.http11 import Request, Response

    seen = [0]

    def every_other_503(ws: ServerConnection, request: Request) -> Response | None:
        seen[0] += 1
        return ws.respond(503, "busy\n") if seen[0] % 2 == 0 else None

    async def echo(ws: ServerConnection) -> None:
        async for message in ws:
            await ws.send(message)

    _server, url = start_websockets_server(server_thread, echo,
                                           process_request=every_other_503)
    proc, report = bench_json("-c", "6", "--messages", "10", url)
    assert proc.returncode == 0, proc.stderr
    conns = report["connections"]
    assert conns["opened"] == 3 and conns["failed"] == 3
    assert conns["failures"]["http_status"] == {"503": 3}
    assert report["messages"]["received"] == 30
    assert report["errors"] == 3


def test_closes_are_counted_by_code(server_thread: ServerThread) -> None:
    from websockets.asyncio.server import ServerConnection

    count = [0]

    async def echo_or_1011(ws: ServerConnection) -> None:
        count[0] += 1
        mine = count[0]
        async for message in ws:
            if mine % 2 == 0:
                await ws.close(1011, "overloaded")
                return
            await ws.send(message)

    _server, url = start_websockets_server(server_thread, echo_or_1011)
    proc, report = bench_json("-c", "4", "--messages", "20", url)
    assert proc.returncode == 0, proc.stderr
    conns = report["connections"]
    assert conns["opened"] == 4
    assert conns["closed_by_server"] == 2
    assert conns["failures"]["close_code"] == {"1011": 2}
    assert report["messages"]["received"] == 40  # the two that echo
    assert report["messages"]["lost"] == 2  # one in flight on each closed connection
    assert report["errors"] == 2
    proc2 = run_wstool_inprocess("bench", "-c", "4", "--messages", "5", "--fail-if",
                                 "errors>0", url, timeout=60)
    assert proc2.returncode == 8, proc2.stderr
    assert "--fail-if 'errors>0' crossed (measured: 2)" in proc2.stderr
    assert b"2 x close code 1011 (internal error)" in proc2.stdout, proc2.stdout


def test_latency_reflects_a_slow_server(server_thread: ServerThread) -> None:
    """The independent measure: the server waits 50 ms (asyncio's timer, never early)
    before each echo, so no round trip can be shorter."""
    from websockets.asyncio.server import ServerConnection

    async def echo_after_50ms(ws: ServerConnection) -> None:
        async for message in ws:
            await asyncio.sleep(0.05)
            await ws.send(message)

    _server, url = start_websockets_server(server_thread, echo_after_50ms)
    proc, report = bench_json("-c", "2", "--messages", "10", url)
    assert proc.returncode == 0, proc.stderr
    lat = report["latency"]
    assert lat["count"] == 20
    assert lat["min"] >= 0.05
    assert lat["p50"] < 0.05 + scaled(0.05)


# Thresholds and the exit status.


def test_fail_if_crossed_and_not() -> None:
    server = ServeEcho()
    try:
        ok = run_wstool_inprocess("bench", "--messages", "20", "--fail-if", "errors>0",
                                  "--fail-if", "p99>10s", server.url, timeout=60)
        assert ok.returncode == 0, ok.stderr
        assert re.search(rb"--fail-if +errors>0: ok \(0\)", ok.stdout), ok.stdout
        crossed = run_wstool_inprocess("bench", "--messages", "20", "--fail-if",
                                       "rate<1000000000", server.url, timeout=60)
        assert crossed.returncode == 8
        assert "wstool: error: --fail-if 'rate<1000000000' crossed" in crossed.stderr
        _proc, report = bench_json("--messages", "5", "--fail-if", "p50>1us", server.url)
        assert report["thresholds"][0]["crossed"] is True
    finally:
        server.close()


# Bad input: one clear line, a documented status.


def test_unreachable_url_is_one_error() -> None:
    url = f"ws://127.0.0.1:{closed_port()}/"
    proc = run_wstool_inprocess("bench", "-c", "50", "--duration", "1", url)
    assert proc.returncode == 3
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("wstool: error: connection refused"), lines
    assert proc.stdout == b""


@pytest.mark.parametrize(("args", "message"), [
    (["-c", "0"], "invalid --connections 0: at least 1"),
    (["--fail-if", "p99>>5"], "invalid --fail-if 'p99>>5'"),
    (["--fail-if", "latency>5ms"], "invalid --fail-if 'latency>5ms'"),
    (["--fail-if", "p99>5parsecs"], "unit 'parsecs'"),
    (["--duration", "1", "--warmup", "2"], "--duration 1s is not longer than --warmup 2s"),
    (["--window", "4", "--rate", "10"], "not both"),
    (["--window", "4", "--refill", "5"], "invalid --refill 5: at most --window (4)"),
    (["--rate", "10", "--refill", "2"], "--refill is for --window (closed loop)"),
    (["--mode", "request"], "request mode needs --match-id"),
    (["--mode", "request", "--match-id", "id"], "invalid --match-id 'id'"),
    (["--mode", "request", "--match-id", "json:.id", "--message", '{"id":1}'],
     "must make a new id each time"),
    (["--size", "3", "--message", "x"], "give one of --size, --message"),
    (["--publish-url", "ws://127.0.0.1:2/"], "--publish-url is for --mode broadcast"),
    (["--mode", "broadcast", "--procs", "2"], "one publisher"),
    (["--mode", "idle", "--slow-readers", "10"], "--slow-readers is for --mode echo"),
    (["--mode", "idle", "--messages", "10"], "drop --messages"),
    (["--duration", "2", "--messages", "10"], "give --duration or --messages, not both"),
    (["--mode", "idle", "--window", "5"], "--window: not for --mode idle"),
    (["--mode", "connect", "--window", "3", "--refill", "2"],
     "--window, --refill: not for --mode connect"),
    (["--mode", "connect", "--rate", "5"], "--rate: not for --mode connect"),
    (["--mode", "broadcast", "--window", "2"], "--window: not for --mode broadcast"),
])
def test_bad_input_is_a_usage_error(args: list[str], message: str) -> None:
    proc = run_wstool_inprocess("bench", *args, "ws://127.0.0.1:1/")
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("wstool: error: ")
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.slow
def test_ctrl_c_prints_the_partial_report() -> None:
    server = ServeEcho("-v")
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "wstool", "bench", "-c", "2", "--duration", "60", "--json",
             server.url], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        server.wait_for("connect")
        time.sleep(0.3)  # let it measure something: what a person waits before Ctrl-C
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=scaled(20))
        assert proc.returncode == 130, err
        report = json.loads(out)
        assert report["interrupted"] is True
        assert report["messages"]["received"] > 0
        assert report["duration_s"] < 30
    finally:
        server.close()


# The other modes.


def test_request_mode_matches_replies_by_id(server_thread: ServerThread) -> None:
    """A JSON-RPC-like server: replies out of order, and pushes a notice unasked."""
    from websockets.asyncio.server import ServerConnection

    async def rpc(ws: ServerConnection) -> None:
        held: list[Any] = []
        async for message in ws:
            held.append(json.loads(message))
            if len(held) == 2:  # answer pairs in reverse order
                for request in reversed(held):
                    await ws.send(json.dumps({"result": "ok", "id": request["id"]}))
                await ws.send(json.dumps({"method": "notice"}))
                held = []

    _server, url = start_websockets_server(server_thread, rpc)
    proc, report = bench_json("--mode", "request", "--match-id", "json:.id", "--message",
                              '{"id": {{seq}}, "method": "ping"}', "--window", "2",
                              "--messages", "20", url)
    assert proc.returncode == 0, proc.stderr
    msgs = report["messages"]
    assert msgs["sent"] == 20
    assert report["latency"]["count"] == 20
    # One notice per pair; the last may come after the last reply ended the run.
    assert msgs["unmatched"] in (9, 10)
    assert msgs["received"] == 20 + msgs["unmatched"]


def test_connect_mode_counts_handshakes() -> None:
    server = ServeEcho()
    try:
        proc, report = bench_json("--mode", "connect", "-c", "2", "--messages", "5",
                                  server.url)
        assert proc.returncode == 0, proc.stderr
        assert report["handshakes"]["count"] == 10
        assert set(report["handshakes"]["phases"]) == {"tcp", "upgrade"}
        assert report["connections"]["opened"] == 11  # and the first, alone
        connections, _ = server_summary(server)
        assert connections == 11
    finally:
        server.close()


@pytest.mark.slow
def test_idle_mode_counts_kept_and_dropped(server_thread: ServerThread) -> None:
    from websockets.asyncio.server import ServerConnection

    count = [0]

    async def hold_or_drop(ws: ServerConnection) -> None:
        count[0] += 1
        if count[0] % 2 == 0:
            await asyncio.sleep(0.2)
            await ws.close(1011, "shedding load")
            return
        await ws.wait_closed()

    _server, url = start_websockets_server(server_thread, hold_or_drop)
    proc, report = bench_json("--mode", "idle", "-c", "4", "--duration", "1.5",
                              "--ping-interval", "0.2", url)
    assert proc.returncode == 0, proc.stderr
    conns = report["connections"]
    assert conns["open_at_end"] == 2
    assert conns["failures"]["close_code"] == {"1011": 2}
    assert report["ping"]["count"] >= 4


@pytest.mark.slow
def test_procs_merge_exactly() -> None:
    server = ServeEcho()
    try:
        proc, report = bench_json("-c", "4", "--procs", "2", "--messages", "100",
                                  "--window", "3", server.url)
        assert proc.returncode == 0, proc.stderr
        assert report["generator"]["procs"] == 2
        assert report["messages"]["received"] == 400
        assert report["latency"]["count"] == 400
        connections, messages_in = server_summary(server)
        assert (connections, messages_in) == (5, 400)  # the parent's probe, then 4
    finally:
        server.close()


# The pure parts.


def test_thresholds_parse() -> None:
    assert parse_threshold("p99>50ms")[1:3] == ("p99", ">")
    assert parse_threshold("p99>50ms").value == pytest.approx(0.05)
    assert parse_threshold("P99.9 <= 200us")[1:3] == ("p99.9", "<=")
    assert parse_threshold("P99.9 <= 200us").value == pytest.approx(2e-4)
    assert parse_threshold("errors>0")[1:] == ("errors", ">", 0.0)
    assert parse_threshold("rate<10k")[1:] == ("rate", "<", 10000.0)
    assert parse_threshold("max>2")[3] == pytest.approx(0.002)  # bare: milliseconds
    assert parse_threshold("p50>1s").crossed(1.5) and not parse_threshold("p50>1s").crossed(1)
    with pytest.raises(UsageError):
        parse_threshold("errors>3ms")


@pytest.mark.parametrize("use_hdr", [True, False])
def test_histogram_percentiles_and_exact_merge(use_hdr: bool) -> None:
    if use_hdr and not stats.hdr_available():
        pytest.skip("hdrhistogram is not installed")
    values = [(i * 7919) % 5000 + 1 for i in range(10_000)]
    whole, parts = Histogram(use_hdr=use_hdr), [Histogram(use_hdr=use_hdr) for _ in range(3)]
    for i, value in enumerate(values):
        whole.record(value)
        parts[i % 3].record(value)
    merged = Histogram(use_hdr=use_hdr)
    for part in parts:
        merged.merge(part.encode())
    for p in (50, 90, 99, 99.9, 100):
        assert merged.percentile_us(p) == whole.percentile_us(p)
    exact = sorted(values)
    assert merged.count == 10_000 and merged.min_us == exact[0] and merged.max_us == exact[-1]
    p99 = whole.percentile_us(99)
    assert abs(p99 - exact[9899]) <= exact[9899] * 0.001 + 1  # 3 significant digits
    assert whole.kind == ("hdr" if use_hdr else "exact-us")


def test_percentile_of_counts() -> None:
    assert percentile_of_counts({}, 50) == 0
    assert percentile_of_counts({1: 1, 2: 1, 3: 1, 4: 1}, 50) == 2
    assert percentile_of_counts({1: 99, 1000: 1}, 99) == 1
    assert percentile_of_counts({1: 99, 1000: 1}, 99.9) == 1000


def test_masked_frames_decode_to_the_payload() -> None:
    from websockets.frames import Frame
    from websockets.streams import StreamReader

    from wstool.bench.generator import frame_pool

    for size in (0, 5, 125, 126, 70000):
        payload = bytes(range(256)) * (size // 256) + bytes(size % 256)
        frames = frame_pool([payload], binary=True)
        assert len(frames) >= 64 and len({f[2:14] for f in frames}) > 1
        reader = StreamReader()
        reader.feed_data(frames[0])
        parser = Frame.parse(reader.read_exact, mask=True)
        try:
            next(parser)
        except StopIteration as done:
            frame = done.value
        assert frame.data == payload and frame.fin



# Every connection option of connect applies: TLS, headers, subprotocols.


def test_tls_options_apply(server_thread: ServerThread, tmp_path: Any) -> None:
    import ssl

    import trustme

    from tests.conftest import lib_echo

    ca = trustme.CA()
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    _server, url = start_websockets_server(server_thread, lib_echo, ssl=context)
    url = url.replace("ws://", "wss://")
    untrusted = run_wstool_inprocess("bench", "-c", "5", "--messages", "3", url)
    assert untrusted.returncode == 3
    assert untrusted.stderr.count("wstool: error:") == 1
    assert "not trusted" in untrusted.stderr and "--cacert" in untrusted.stderr
    proc, report = bench_json("--cacert", str(ca_file), "--mode", "connect", "-c", "2",
                              "--messages", "3", url)
    assert proc.returncode == 0, proc.stderr
    assert report["handshakes"]["count"] == 6
    assert set(report["handshakes"]["phases"]) == {"tcp", "tls", "upgrade"}
    proc, report = bench_json("--cacert", str(ca_file), "-c", "2", "--messages", "5", url)
    assert report["messages"]["received"] == 10


def test_headers_and_subprotocols_apply(server_thread: ServerThread) -> None:
    from websockets.asyncio.server import ServerConnection
    from websockets.http11 import Request, Response

    def need_token(ws: ServerConnection, request: Request) -> Response | None:
        if request.headers.get("Authorization") != "Bearer t0k3n":
            return ws.respond(401, "who are you?\n")
        return None

    async def echo_if_chat(ws: ServerConnection) -> None:
        if ws.subprotocol != "chat":
            await ws.close(1002, "no subprotocol")
            return
        async for message in ws:
            await ws.send(message)

    _server, url = start_websockets_server(server_thread, echo_if_chat,
                                           process_request=need_token,
                                           subprotocols=["chat"])
    rejected = run_wstool_inprocess("bench", "-c", "3", "--messages", "2", url)
    assert rejected.returncode == 4
    assert rejected.stderr.strip().splitlines() == [
        "wstool: error: server rejected the WebSocket handshake: HTTP 401 Unauthorized: "
        "who are you?"]
    proc, report = bench_json("-H", "Authorization: Bearer t0k3n", "-s", "chat", "-c", "3",
                              "--messages", "4", url)
    assert proc.returncode == 0, proc.stderr
    assert report["messages"]["received"] == 12
    assert report["connections"]["failures"]["close_code"] == {}


@pytest.mark.parametrize(("refill", "sent", "echoed"), [(1, 14, 4), (3, 13, 4), (5, 10, 3)])
def test_refill_sends_once_n_replies_are_owed(server_thread: ServerThread, refill: int,
                                              sent: int, echoed: int, receiver: str) -> None:
    """--window 10 against a server that echoes the first 3 messages, a 4th echo once
    the 11th message came, and nothing else: by default each echo is replaced at once
    (14 sent); --refill 3 sends 3 after the third echo and holds the 4th (13);
    --refill 5 sends nothing more (10). Never more than --window in flight."""
    from websockets.asyncio.server import ServerConnection

    received: list[int] = []

    async def echo_three_then_hold(ws: ServerConnection) -> None:
        n = 0
        try:
            async for message in ws:
                n += 1
                if n <= 3 or n == 11:
                    await ws.send(message)
        finally:
            received.append(n)

    _server, url = start_websockets_server(server_thread, echo_three_then_hold)
    proc, report = bench_json("-c", "1", "--window", "10", "--refill", str(refill),
                              "--duration", "1", url)
    assert proc.returncode == 0, proc.stderr
    server_thread.run(until(lambda: bool(received), "the server's count"))
    assert received == [sent]
    msgs = report["messages"]
    assert (msgs["sent"], msgs["received"]) == (sent, echoed)
    assert report["latency"]["count"] == echoed


@pytest.mark.slow
def test_refill_with_messages_sends_every_one(receiver: str) -> None:
    """--messages with --refill: the last ones go even when fewer than N are left."""
    server = ServeEcho()
    try:
        proc, report = bench_json("-c", "2", "--messages", "23", "--window", "10",
                                  "--refill", "4", server.url)
        assert proc.returncode == 0, proc.stderr
        msgs = report["messages"]
        assert msgs["sent"] == msgs["received"] == 46
        assert msgs["bytes_sent"] == msgs["bytes_received"] == 46 * 32
        assert report["latency"]["count"] == 46
        assert server_summary(server) == (2, 46)
    finally:
        server.close()


def test_pings_and_fragments_between_echoes(server_thread: ServerThread,
                                         receiver: str) -> None:
    """echo mode's own receive path hands every other frame to the library: the
    server's pings are answered (it waits for each pong before echoing) and a
    fragmented echo still counts as one message."""
    from websockets.asyncio.server import ServerConnection

    async def ping_then_echo(ws: ServerConnection) -> None:
        n = 0
        async for message in ws:
            n += 1
            pong = await ws.ping()
            await asyncio.wait_for(pong, 5)
            if n % 3 == 0:
                text = str(message)
                await ws.send([text[:10], text[10:]])  # two fragments
            else:
                await ws.send(message)

    _server, url = start_websockets_server(server_thread, ping_then_echo)
    proc, report = bench_json("-c", "2", "--messages", "30", "--window", "2", url)
    assert proc.returncode == 0, proc.stderr
    msgs = report["messages"]
    assert msgs["received"] == 60 and msgs["bytes_received"] == 60 * 32
    assert report["latency"]["count"] == 60
    assert report["errors"] == 0


# On a terminal: the live line, then the table and the pictures.


@pytest.mark.slow
def test_terminal_shows_live_progress_then_table_and_pictures() -> None:

    import pexpect

    server = ServeEcho()
    try:
        child = bench_in_a_pty("-c", "2", "--duration", "2", "--no-compress", server.url)
        # Every figure of the live display fits in 100 columns (p99 was cut off).
        child.expect(r"measuring +connections 2 open, 0 failed")
        child.expect(r"sent [\d,]+/s +received [\d,]+/s +p50 [\d.]+ ms +p99 [\d.]+ ms")
        child.expect("wstool bench echo")
        child.expect(r"round trip[ \x1b\[0-9;m]*min")  # bold on a terminal
        child.expect("round-trip latency")
        child.expect(r"p99 over [\d.]+-[\d.]+ s")
        child.expect(pexpect.EOF)
        child.close()
        assert child.exitstatus == 0
    finally:
        server.close()


def test_pipe_gets_the_table_only() -> None:
    server = ServeEcho()
    try:
        proc = run_wstool_inprocess("bench", "--messages", "50", server.url, timeout=60)
        assert proc.returncode == 0, proc.stderr
        out = proc.stdout.decode()
        assert out.startswith("wstool bench echo ")
        assert "round trip" in out and "round-trip latency" not in out
        assert "\x1b[" not in out and "measuring" not in out
        # Plain lines for grep and diff: no padding to the table's width.
        assert all(line == line.rstrip() for line in out.splitlines()), out
    finally:
        server.close()


def test_latency_rows_and_sparkline() -> None:
    from wstool.bench.frontend import latency_rows, sparkline

    histogram = Histogram(use_hdr=False)
    for value, n in ((100, 5), (300, 3), (5000, 2)):
        histogram.record(value, n)
    rows = latency_rows(histogram)
    assert rows[0] == (64, 128, 5)
    assert (256, 512, 3) in rows
    assert rows[-1] == (4096, 8192, 2)
    assert sum(n for *_, n in rows) == 10
    wide = Histogram(use_hdr=False)
    wide.record(1)
    wide.record(3_000_000_000)
    rows = latency_rows(wide)
    assert len(rows) == 14 and sum(n for *_, n in rows) == 2
    assert sparkline([0.0, 2.0, 4.0, 8.0]) == "▁▃▅█"
    assert sparkline([]) == ""


# broadcast mode: against serve-echo --broadcast, and a server that forgets one.


@pytest.mark.slow
def test_broadcast_against_serve_echo() -> None:
    server = ServeEcho("--broadcast")
    try:
        proc, report = bench_json("--mode", "broadcast", "-c", "5", "--rate", "50",
                                  "--messages", "20", server.url)
        assert proc.returncode == 0, proc.stderr
        b = report["broadcast"]
        assert b["published"] == 20 and b["subscribers"] == 5
        assert b["delivered"] == b["expected"] == 100 and b["missed"] == 0
        assert report["latency"]["count"] == 100
        _connections, messages_in = server_summary(server)
        assert messages_in == 20
    finally:
        server.close()


def test_broadcast_counts_what_a_subscriber_missed(server_thread: ServerThread) -> None:
    from websockets.asyncio.server import ServerConnection

    clients: list[ServerConnection] = []

    async def forgetful_hub(ws: ServerConnection) -> None:
        clients.append(ws)
        async for message in ws:
            for i, other in enumerate(list(clients)):
                if i != 1:  # the second subscriber never gets anything
                    await other.send(message)

    _server, url = start_websockets_server(server_thread, forgetful_hub)
    proc, report = bench_json("--mode", "broadcast", "-c", "3", "--rate", "100",
                              "--messages", "10", url)
    assert proc.returncode == 0, proc.stderr
    b = report["broadcast"]
    assert b["published"] == 10
    assert b["delivered"] == 20 and b["missed"] == 10
    assert b["subscribers_missing"] == 1 and b["max_missed"] == 10


@pytest.mark.slow
def test_slow_readers_are_reported_apart() -> None:
    server = ServeEcho()
    try:
        proc, report = bench_json("-c", "4", "--slow-readers", "25", "--window", "4",
                                  "--duration", "1.5", server.url)
        assert proc.returncode == 0, proc.stderr
        slow = report["slow_readers"]
        assert slow["connections"] == 1 and slow["received"] > 0
        # One read every 0.1 s: an echo waits for the next read.
        assert slow["latency"]["p50"] > report["latency"]["p50"]
        assert slow["latency"]["max"] >= 0.05
        assert report["latency"]["count"] + slow["latency"]["count"] == (
            report["messages"]["received"])
    finally:
        server.close()


def test_html_report_is_self_contained(tmp_path: Any) -> None:
    server = ServeEcho()
    try:
        page_path = tmp_path / "report.html"
        proc, report = bench_json("-c", "2", "--duration", "1.2", "--window", "2",
                                  "--html", str(page_path), server.url)
        assert proc.returncode == 0, proc.stderr
        page = page_path.read_text()
        assert page.startswith("<!DOCTYPE html>") and page.count("<svg") == 4
        for fetch in ("<script", "src=", "href=", "http://", "https://", "@import"):
            assert fetch not in page, fetch
        assert f"{report['messages']['received']:,}" in page
        assert "Round-trip latency by percentile" in page and "<polyline" in page
        tags = _Tags(page)  # valid: every tag closed, in order
        assert tags.stack == [] and tags.wrong == [], (tags.stack, tags.wrong)
        unwritable = run_wstool_inprocess("bench", "--messages", "3", "--html",
                                          str(tmp_path / "no" / "such" / "dir.html"),
                                          server.url, timeout=60)
        assert unwritable.returncode == 1
        assert "wstool: error: cannot write --html" in unwritable.stderr
    finally:
        server.close()


def test_html_escapes_what_came_from_outside() -> None:
    from wstool.bench.html import render_html

    report = {
        "mode": "echo", "url": "ws://h/<b>", "interrupted": False, "duration_s": 1.0,
        "connections": {"requested": 1, "opened": 0, "failed": 1, "closed_by_server": 0,
                        "closed_by_client": 0,
                        "failures": {"http_status": {}, "close_code": {},
                                     "error": {"<script>alert(1)</script>": 1}}},
        "messages": {"sent": 0, "received": 0, "sent_per_s": 0.0, "received_per_s": 0.0},
        "latency": {"count": 0}, "handshake": {"count": 0}, "errors": 1,
        "generator": {"cpu_s": 0.1, "cpu_share": 0.1, "procs": 1}, "thresholds": [],
    }
    page = render_html(report, [], [])
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "ws://h/&lt;b&gt;" in page
    assert "nothing measured" in page


@pytest.mark.parametrize("size", [100, 5000])
def test_compression_applies(size: int) -> None:
    """permessage-deflate negotiated (connect's default): serve-echo compresses echoes of
    1024 bytes and more; both kinds are counted, with their payload sizes."""
    server = ServeEcho()
    try:
        proc = run_wstool_inprocess("bench", "--json", "-c", "2", "--messages", "20",
                                    "--window", "3", "--size", str(size), server.url,
                                    timeout=60)
        assert proc.returncode == 0, proc.stderr
        msgs = json.loads(proc.stdout)["messages"]
        assert msgs["received"] == 40 and msgs["bytes_received"] == 40 * size
        _connections, messages_in = server_summary(server)
        assert messages_in == 40
    finally:
        server.close()


def test_procs_unreachable_url_is_one_error() -> None:
    url = f"ws://127.0.0.1:{closed_port()}/"
    proc = run_wstool_inprocess("bench", "-c", "4", "--procs", "2", "--duration", "1", url)
    assert proc.returncode == 3
    assert proc.stderr.strip().splitlines() == [f"wstool: error: connection refused by {url}"]


def procs_bench_running(server: ServeEcho, duration: str,
                        new_session: bool = False) -> subprocess.Popen[bytes]:
    """`wstool bench -c 4 --procs 2 --json` against SERVER (serve-echo -v), once its
    four connections are open (NEW_SESSION: its own process group, for killpg)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "wstool", "bench", "-c", "4", "--procs", "2",
         "--duration", duration, "--json", server.url],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=new_session)
    for n in range(2, 6):  # the probe, then the workers' four
        server.wait_for(f"[{n}]")
    return proc


@pytest.mark.slow
def test_procs_ctrl_c_merges_the_partial_results() -> None:
    server = ServeEcho("-v")
    try:
        proc = procs_bench_running(server, "60")
        time.sleep(0.5)  # let them measure something
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=scaled(30))
        assert proc.returncode == 130, err
        report = json.loads(out)
        assert report["interrupted"] is True and report["generator"]["procs"] == 2
        assert report["messages"]["received"] > 0
        assert report["latency"]["count"] == report["messages"]["received"]
    finally:
        server.close()


@pytest.mark.slow
def test_procs_a_worker_killed_is_an_error_not_a_smaller_run() -> None:
    """A worker gone without its result (here SIGKILL): the report still comes, with
    the other worker's figures and the lost one's connections requested, not opened,
    and one error line says which worker and how; exit 1."""
    from pathlib import Path

    server = ServeEcho("-v")
    try:
        proc = procs_bench_running(server, "4")

        def workers() -> list[int]:
            children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
            return [int(pid) for pid in children
                    if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()]

        found: list[int] = []

        def two_workers() -> bool:
            found[:] = workers()
            return len(found) == 2

        asyncio.run(until(two_workers, "the two workers"))
        os.kill(found[1], signal.SIGKILL)
        out, err = proc.communicate(timeout=scaled(30))
        assert proc.returncode == 1, err
        lines = err.decode().strip().splitlines()
        assert lines == [
            "wstool: error: 1 of 2 --procs workers ended without a result, their "
            "connections are missing from the figures: worker 2 (2 connections) was "
            "killed by SIGKILL"], lines
        report = json.loads(out)
        assert report["generator"]["workers_lost"] == 1
        assert report["connections"]["requested"] == 4
        assert report["connections"]["opened"] == 2
        assert report["messages"]["received"] > 0
    finally:
        server.close()


def test_a_close_by_wstools_side_is_not_the_servers() -> None:
    """--max-size under the echo's size: wstool's library closes with 1009; the
    report says so (closed_by_client), not 'closed by the server'."""
    server = ServeEcho()
    try:
        _proc, report = bench_json("-c", "2", "--messages", "3", "--max-size", "10",
                                   server.url)
        conns = report["connections"]
        assert conns["failures"]["close_code"] == {"1009": 2}, report
        assert (conns["closed_by_client"], conns["closed_by_server"]) == (2, 0)
        table = run_wstool_inprocess("bench", "--no-compress", "-c", "2", "--messages", "3",
                                     "--max-size", "10", server.url)
        assert ("0 closed by the server, 2 closed by wstool (a protocol error)"
                in table.stdout.decode())
    finally:
        server.close()


# Found trying it end to end (i15-review).


def test_connect_mode_counts_rejections_without_a_traceback(server_thread: ServerThread) -> None:
    """The probe is accepted, then every other handshake is refused: each refusal is
    counted by status, and none escapes as an unretrieved task exception (the first
    task of the loop used to re-raise as if it were the probe)."""
    from websockets.asyncio.server import ServerConnection
    from websockets.http11 import Request, Response

    from tests.conftest import lib_echo, run_wstool

    seen = [0]

    def every_other_503(ws: ServerConnection, request: Request) -> Response | None:
        seen[0] += 1
        return ws.respond(503, "busy\n") if seen[0] % 2 == 0 else None

    _server, url = start_websockets_server(server_thread, lib_echo,
                                           process_request=every_other_503)
    proc = run_wstool("bench", "--json", "--mode", "connect", "-c", "1", "--messages", "6",
                      url, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr and "never retrieved" not in proc.stderr, proc.stderr
    report = json.loads(proc.stdout)
    assert report["connections"]["failures"]["http_status"] == {"503": 3}
    assert report["handshakes"]["count"] == 3


@pytest.mark.slow
def test_procs_ctrl_c_on_a_terminal_keeps_every_worker() -> None:
    """A terminal's Ctrl-C reaches the whole process group, the workers too, and the
    parent passes it on again: no worker may die of that second SIGINT (it did, with a
    KeyboardInterrupt traceback, and its share was missing from the report)."""
    import os

    server = ServeEcho("-v")
    try:
        proc = procs_bench_running(server, "60", new_session=True)
        time.sleep(0.5)  # let them measure something
        os.killpg(proc.pid, signal.SIGINT)  # what a terminal does
        out, err = proc.communicate(timeout=scaled(30))
        assert proc.returncode == 130, err
        assert b"Traceback" not in err and b"KeyboardInterrupt" not in err, err
        report = json.loads(out)
        assert report["connections"]["requested"] == report["connections"]["opened"] == 4, (
            report, err)
        assert report["generator"]["procs"] == 2
    finally:
        server.close()


@pytest.mark.slow
def test_procs_live_figures_are_one_merge_per_tick() -> None:
    """The live line (and --html's series) gets one merged snapshot per progress tick
    of all the workers, not one per worker's snapshot: rates taken between two merges
    a few ms apart showed millions of msgs/s."""
    from wstool.bench.generator import Snapshot
    from wstool.bench.workers import run_workers
    from wstool.cli.cmd_bench import bench_cmd, bench_config
    from wstool.cli.options import connect_config

    server = ServeEcho()
    try:
        ctx = bench_cmd.make_context("bench", ["-c", "2", "--procs", "2", "--duration",
                                               "2.2", "--no-compress", server.url])
        raw = dict(ctx.params)
        url = raw.pop("url")
        cfg, conn_cfg = bench_config(raw), connect_config(url, raw)
        shown: list[Snapshot] = []

        async def main() -> list[dict[str, Any]]:
            return await run_workers(cfg, conn_cfg, asyncio.Event(), shown.append)

        results = asyncio.run(main())
        assert len(results) == 2
        measuring = [snap for snap in shown if snap.phase == "measuring"]
        assert len(measuring) >= 2, shown
        assert all(snap.open_now == 2 for snap in measuring), shown
        gaps = [b.elapsed_s - a.elapsed_s for a, b in itertools.pairwise(shown)]
        assert min(gaps) > cfg.progress_interval_s / 2, gaps
    finally:
        server.close()


def test_terminal_cursor_comes_back_when_the_first_connection_fails() -> None:
    """On a terminal the live display hides the cursor; an unreachable URL (with
    --procs too: the parent's probe) must show it again with the one error line."""

    import pexpect

    url = f"ws://127.0.0.1:{closed_port()}/"
    for procs in ("1", "2"):
        child = bench_in_a_pty("-c", "4", "--procs", procs, url)
        child.expect(pexpect.EOF)
        child.close()
        out = child.before
        assert child.exitstatus == 3, out
        assert out.count("wstool: error: connection refused") == 1, out
        assert out.rfind("\x1b[?25l") < out.rfind("\x1b[?25h"), (procs, out)


def test_open_loop_latency_is_the_servers_not_the_tickers(server_thread: ServerThread) -> None:
    """--rate: a message's latency counts from when it was due, so the generator must
    send it then; against a server that waits 20 ms before each echo, the round trip
    is 20 ms and a little, not 20 ms plus up to one tick of the sender (it was 50 ms
    ticks at --rate 20: p50 near 45 ms)."""
    from websockets.asyncio.server import ServerConnection

    async def echo_after_20ms(ws: ServerConnection) -> None:
        async for message in ws:
            await asyncio.sleep(0.02)
            await ws.send(message)

    _server, url = start_websockets_server(server_thread, echo_after_20ms)
    proc, report = bench_json("-c", "2", "--rate", "20", "--duration", "1.5", url)
    assert proc.returncode == 0, proc.stderr
    lat = report["latency"]
    assert lat["count"] >= 40
    assert lat["min"] >= 0.02
    assert lat["p50"] < 0.02 + scaled(0.01), lat


@pytest.mark.slow
def test_broadcast_fan_out_latency_is_not_the_publishers_tick() -> None:
    """The publisher sends each message when it is due (its timestamp): fan-out on
    loopback is well under a tick of the old 50 ms publish loop (p50 was ~25 ms)."""
    server = ServeEcho("--broadcast")
    try:
        proc, report = bench_json("--mode", "broadcast", "-c", "2", "--rate", "20",
                                  "--duration", "1.5", server.url)
        assert proc.returncode == 0, proc.stderr
        assert report["latency"]["count"] >= 40
        assert report["latency"]["p50"] < scaled(0.01), report["latency"]
    finally:
        server.close()


def _keys(value: Any, prefix: str = "") -> set[str]:
    """Every key of a report, dotted; not those of the failure groups (data)."""
    if not isinstance(value, dict):
        return set()
    out = set()
    for key, child in value.items():
        out.add(key)
        if key not in ("http_status", "close_code", "error"):
            out |= _keys(child)
    if isinstance(value.get("thresholds"), list):
        for check in value["thresholds"]:
            out |= _keys(check)
    return out


@pytest.mark.slow
def test_json_report_keys_are_the_ones_the_readme_documents(lib_echo_url: str) -> None:
    """README's --json schema (the block and the keys the modes add, in the prose
    after it) against real reports of every mode, both ways."""
    from pathlib import Path

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme[readme.index("`--json` (one object"):readme.index("Exit status: 0 done")]
    block = section[section.index("```"):section.index("```", section.index("```") + 3)]
    in_block = set(re.findall(r'"([A-Za-z_][\w.]*)":', block))
    documented = set(re.findall(r'"([A-Za-z_][\w.]*)"', section))
    slow_readers = readme[readme.index("`--slow-readers P` (echo mode)"):]
    documented |= set(re.findall(r'"([A-Za-z_][\w.]*)"', slow_readers[:600]))
    seen: set[str] = set()
    _proc, echo = bench_json("-c", "2", "--messages", "20", "--slow-readers", "50",
                             "--fail-if", "p99>1s", lib_echo_url)
    seen |= _keys(echo)
    assert in_block <= _keys(echo), in_block - _keys(echo)
    for args in (["--mode", "connect", "-c", "1", "--messages", "3"],
                 ["--mode", "idle", "-c", "2", "--duration", "0.6", "--ping-interval", "0.2"]):
        proc, report = bench_json(*args, lib_echo_url)
        assert proc.returncode == 0, proc.stderr
        seen |= _keys(report)
    server = ServeEcho("--broadcast")
    try:
        proc, report = bench_json("--mode", "broadcast", "-c", "2", "--rate", "50",
                                  "--messages", "5", server.url)
        assert proc.returncode == 0, proc.stderr
        seen |= _keys(report)
    finally:
        server.close()
    assert seen <= documented, f"not in README: {sorted(seen - documented)}"
    assert {"handshakes", "phases", "ping", "broadcast", "slow_readers",
            "subscribers_missing"} <= seen


class _Tags:
    """html.parser over a page: the tags left open or closed out of order."""

    VOID = frozenset({"meta", "br", "hr", "img", "input", "link"})

    def __init__(self, page: str) -> None:
        from html.parser import HTMLParser

        self.stack: list[str] = []
        self.wrong: list[str] = []
        tags = self

        class Parser(HTMLParser):
            def handle_starttag(self, tag: str, attrs: Any) -> None:
                if tag not in tags.VOID:
                    tags.stack.append(tag)

            def handle_endtag(self, tag: str) -> None:
                if tags.stack and tags.stack[-1] == tag:
                    tags.stack.pop()
                else:
                    tags.wrong.append(tag)

        parser = Parser()
        parser.feed(page)
        parser.close()


@pytest.mark.slow
def test_html_report_has_each_modes_figures(lib_echo_url: str, tmp_path: Any) -> None:
    """--html is valid HTML (html.parser: every tag closed, in order) and shows what
    the terminal's table shows for connect, idle and broadcast mode too (it had the
    echo rows only: a connect run's page had no handshakes per second)."""
    pages = {}
    for mode, args in (("connect", ["-c", "1", "--messages", "3"]),
                       ("idle", ["-c", "2", "--duration", "0.6", "--ping-interval", "0.2"])):
        path = tmp_path / f"{mode}.html"
        proc, _report = bench_json("--mode", mode, *args, "--html", str(path), lib_echo_url)
        assert proc.returncode == 0, proc.stderr
        pages[mode] = path.read_text()
    server = ServeEcho("--broadcast")
    try:
        path = tmp_path / "broadcast.html"
        proc, _report = bench_json("--mode", "broadcast", "-c", "2", "--rate", "50",
                                   "--messages", "5", "--html", str(path), server.url)
        assert proc.returncode == 0, proc.stderr
        pages["broadcast"] = path.read_text()
    finally:
        server.close()
    for mode, page in pages.items():
        tags = _Tags(page)
        assert tags.stack == [] and tags.wrong == [], (mode, tags.stack, tags.wrong)
    assert re.search(r"<th>handshakes</th><td>3 \([\d,]+/s\)</td>", pages["connect"])
    assert "<th>tcp</th>" in pages["connect"] and "<th>round trip</th>" not in pages["connect"]
    assert re.search(r"<th>ping rtt</th><td>p50 [\d.]+ ms", pages["idle"])
    assert "<th>delivered</th><td>10 of 10; 0 missed" in pages["broadcast"]
    assert "<th>fan-out</th>" in pages["broadcast"]


# Every part of the issue, tried as a user would (i15-review): pacing, the publisher's
# URL, messages from a file, a proxy, failures by error kind, remote text escaped.


def test_ramp_paces_the_connections(server_thread: ServerThread) -> None:
    from websockets.asyncio.server import ServerConnection

    arrivals: list[float] = []

    async def hold(ws: ServerConnection) -> None:
        arrivals.append(time.perf_counter())
        await ws.wait_closed()

    _server, url = start_websockets_server(server_thread, hold)
    proc, report = bench_json("--mode", "idle", "-c", "4", "--ramp", "10", "--duration",
                              "0.3", url)
    assert proc.returncode == 0, proc.stderr
    assert report["connections"]["open_at_end"] == 4
    # The first alone (its error would be the run's), then 10 per second: 0, 0.1, 0.2 s.
    assert len(arrivals) == 4
    assert arrivals[3] - arrivals[1] >= 0.18, arrivals


def test_connect_rate_paces_the_handshakes(lib_echo_url: str) -> None:
    """--connect-rate 20 for 0.5 s: about 10 handshakes, where -c 5 back to back
    makes hundreds on loopback."""
    proc, report = bench_json("--mode", "connect", "-c", "5", "--connect-rate", "20",
                              "--duration", "0.5", lib_echo_url)
    assert proc.returncode == 0, proc.stderr
    assert 5 <= report["handshakes"]["count"] <= 11, report["handshakes"]
    assert report["handshakes"]["per_s"] <= 22


def test_broadcast_publish_url_is_where_the_publisher_goes(server_thread: ServerThread) -> None:
    """A hub that sends what /pub gets to every /sub connection."""
    from websockets.asyncio.server import ServerConnection

    subscribers: list[ServerConnection] = []
    published: list[str] = []

    async def hub(ws: ServerConnection) -> None:
        assert ws.request is not None
        if ws.request.path == "/sub":
            subscribers.append(ws)
            await ws.wait_closed()
            return
        async for message in ws:
            published.append(ws.request.path)
            for sub in list(subscribers):
                await sub.send(message)

    _server, url = start_websockets_server(server_thread, hub)
    proc, report = bench_json("--mode", "broadcast", "-c", "3", "--rate", "50",
                              "--messages", "8", "--publish-url", url + "pub", url + "sub")
    assert proc.returncode == 0, proc.stderr
    b = report["broadcast"]
    assert (b["published"], b["subscribers"], b["delivered"], b["missed"]) == (8, 3, 24, 0)
    assert published == ["/pub"] * 8


def test_messages_file_lines_are_sent_cycled(lib_echo_url: str, tmp_path: Any) -> None:
    path = tmp_path / "messages.txt"
    path.write_bytes(b"short\r\n\nsomething longer\n")  # the blank line is skipped
    proc, report = bench_json("--messages", "4", "--messages-file", str(path), lib_echo_url)
    assert proc.returncode == 0, proc.stderr
    msgs = report["messages"]
    assert msgs["sent"] == msgs["received"] == 4
    assert msgs["bytes_sent"] == msgs["bytes_received"] == 2 * (5 + 16)
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    proc = run_wstool_inprocess("bench", "--messages-file", str(empty), lib_echo_url)
    assert proc.returncode == 2 and "has no non-empty line" in proc.stderr
    missing = run_wstool_inprocess("bench", "--messages-file", str(tmp_path / "nope"),
                                   lib_echo_url)
    assert missing.returncode == 1
    assert missing.stderr.startswith("wstool: error: cannot read --messages-file")


def test_proxy_option_applies(server_thread: ServerThread, lib_echo_url: str) -> None:
    from tests.servers import ProxyLog, start_http_proxy

    log = ProxyLog()
    _proxy, port = server_thread.run(start_http_proxy(log))
    proc, report = bench_json("-c", "3", "--messages", "5", "--proxy",
                              f"http://127.0.0.1:{port}", lib_echo_url)
    assert proc.returncode == 0, proc.stderr
    assert report["messages"]["received"] == 15
    authority = lib_echo_url.split("://", 1)[1].rstrip("/")
    assert log.requests == [f"CONNECT {authority} HTTP/1.1"] * 3


def test_failures_by_error_kind(server_thread: ServerThread, lib_echo_url: str) -> None:
    """The first connection is passed to an echo server; every later one gets a 101
    with a garbled Upgrade header: counted by error kind, in the table too."""
    from tests.servers import _pipe

    port = int(lib_echo_url.rsplit(":", 1)[1].rstrip("/"))
    count = [0]

    async def first_real_then_bad(reader: asyncio.StreamReader,
                                  writer: asyncio.StreamWriter) -> None:
        count[0] += 1
        if count[0] == 1:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", port)
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
            return
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
                     b"Upgrade: \x1b]0;pwned\x07\x1b[31mweb\r\n\r\n")
        await writer.drain()
        writer.close()

    async def start() -> int:
        server = await asyncio.start_server(first_real_then_bad, "127.0.0.1", 0)
        return int(server.sockets[0].getsockname()[1])

    url = f"ws://127.0.0.1:{server_thread.run(start())}/"
    proc, report = bench_json("-c", "4", "--messages", "3", url)
    assert proc.returncode == 0, proc.stderr
    conns = report["connections"]
    assert (conns["opened"], conns["failed"]) == (1, 3)
    [(error, n)] = conns["failures"]["error"].items()
    assert n == 3 and report["errors"] == 3 and "invalid handshake response" in error
    count[0] = 0
    table = run_wstool_inprocess("bench", "-c", "4", "--messages", "3", url, timeout=60)
    assert table.returncode == 0, table.stderr
    out = table.stdout.decode()
    assert re.search(r"\n +error +3 x invalid handshake response", out), out
    assert "\x1b" not in out and "\x07" not in out


def test_remote_text_in_the_one_error_is_escaped(server_thread: ServerThread) -> None:
    """A rejection body with terminal escapes (OSC title, CSI, C1): the one error line
    shows them escaped, on a terminal or not."""
    from websockets.asyncio.server import ServerConnection
    from websockets.http11 import Request, Response

    from tests.conftest import lib_echo

    def hostile(ws: ServerConnection, request: Request) -> Response:
        return ws.respond(503, "busy \x1b]0;pwned\x07\x1b[31mRED \x9b2J\n")

    _server, url = start_websockets_server(server_thread, lib_echo, process_request=hostile)
    proc = run_wstool_inprocess("bench", "-c", "5", "--messages", "3", url)
    assert proc.returncode == 4
    [line] = proc.stderr.splitlines()
    assert line.startswith("wstool: error: server rejected the WebSocket handshake: HTTP 503")
    assert "\x1b" not in line and "\x07" not in line and "\x9b" not in line, repr(line)
    assert "\\e]0;pwned" in line, line


def test_open_loop_keeps_sending_through_a_stall(server_thread: ServerThread) -> None:
    """--rate is open loop: while the server sits on the first 0.5 s of messages the
    generator still sends 20/s, and every message that waited is charged the wait
    (no coordinated omission); --window 1 would have sent one."""
    from websockets.asyncio.server import ServerConnection

    async def stall_then_echo(ws: ServerConnection) -> None:
        start = time.perf_counter()
        held: list[Any] = []
        async for message in ws:
            if time.perf_counter() - start < 0.5:
                held.append(message)
                continue
            for old in held:
                await ws.send(old)
            held = []
            await ws.send(message)

    _server, url = start_websockets_server(server_thread, stall_then_echo)
    proc, report = bench_json("-c", "1", "--rate", "20", "--duration", "1.2", url)
    assert proc.returncode == 0, proc.stderr
    msgs, lat = report["messages"], report["latency"]
    assert 20 <= msgs["sent"] <= 26, msgs
    assert lat["count"] >= msgs["sent"] - 2
    assert lat["max"] >= 0.4  # the first, due at the start, echoed after 0.5 s
    assert lat["p90"] >= 0.1  # the stall is in the distribution, not once


def test_saturated_generator_is_reported() -> None:
    """generator.saturated (and the warning it brings) from the CPU share of the
    measured window, per process."""
    from wstool.bench.report import build_report, merge_results
    from wstool.config import BenchConfig

    def result(cpu_s: float, wall_s: float = 2.0) -> dict[str, Any]:
        empty = Histogram().encode()
        return {"wall_s": wall_s, "cpu_s": cpu_s, "requested": 1, "opened": 1, "failed": 0,
                "closed_early": 0, "closed_by_client": 0, "kept": 1,
                "failures": {"http_status": {}, "close_code": {}, "error": {}},
                "sent": 10, "received": 10, "bytes_sent": 0, "bytes_received": 0,
                "unmatched": 0, "lost": 0, "handshakes": 0, "interrupted": False,
                "workers_lost": 0, "lost_workers": [],
                "latency": empty, "handshake": empty, "ping": empty,
                "phases": {"tcp": empty, "tls": empty, "upgrade": empty},
                "slow_readers": {"connections": 0, "received": 0, "latency": empty},
                "broadcast": {"published": 0, "missed": 0, "subscribers_missing": 0,
                              "max_missed": 0}}

    def generator(*cpus: float) -> dict[str, Any]:
        merged = merge_results([result(cpu) for cpu in cpus])
        report = build_report(merged, BenchConfig(), "ws://x/", loop="asyncio")
        return dict(report["generator"])

    assert generator(1.9)["saturated"] and generator(1.9)["cpu_share"] == pytest.approx(0.95)
    assert not generator(1.0)["saturated"]
    assert not generator(1.9, 1.0)["saturated"]  # two processes: 2.9 of 4 CPU s
    assert generator(1.9, 1.9)["saturated"]
    assert generator(1.0)["messages_per_cpu_s"] == pytest.approx(10)
    # A run of a few ms (--messages 5) is no measure of it: no warning on every short run.
    merged = merge_results([result(0.0019, wall_s=0.002)])
    report = build_report(merged, BenchConfig(), "ws://x/", loop="asyncio")
    assert report["generator"]["cpu_share"] == pytest.approx(0.95)
    assert not report["generator"]["saturated"]


def test_echo_mode_messages_are_templates(server_thread: ServerThread, tmp_path: Any) -> None:
    """--message and --messages-file are templates in echo mode too (issue 11's): one
    that changes is rendered for each send; {{file:PATH}} is read once (it was sent
    as the literal text '{{seq}}')."""
    from websockets.asyncio.server import ServerConnection

    got: list[str | bytes] = []

    async def recording_echo(ws: ServerConnection) -> None:
        async for message in ws:
            got.append(message)
            await ws.send(message)

    _server, url = start_websockets_server(server_thread, recording_echo)
    proc, report = bench_json("--messages", "4", "--window", "2", "--message", "n={{seq}}",
                              url)
    assert proc.returncode == 0, proc.stderr
    assert got == ["n=1", "n=2", "n=3", "n=4"]
    msgs = report["messages"]
    assert msgs["received"] == report["latency"]["count"] == 4
    assert msgs["bytes_sent"] == msgs["bytes_received"] == 12
    body = tmp_path / "body.json"
    body.write_text('{"op": "ping"}\n')
    got.clear()
    proc, report = bench_json("--messages", "3", "-b", "--message", f"{{{{file:{body}}}}}",
                              url)
    assert proc.returncode == 0, proc.stderr
    assert got == [b'{"op": "ping"}'] * 3
    assert report["messages"]["bytes_received"] == 3 * 14
    bad = run_wstool_inprocess("bench", "--message", "{{nope}}", url)
    assert bad.returncode == 2 and "unknown placeholder {{nope}}" in bad.stderr


@pytest.mark.slow
def test_ctrl_c_on_a_terminal_prints_the_partial_table() -> None:

    import pexpect

    server = ServeEcho()
    try:
        child = bench_in_a_pty("-c", "2", "--duration", "60", "--no-compress", server.url)
        child.expect(r"p99 [\d.]+ ms")  # measuring: the live display has figures
        child.sendintr()
        child.expect(r"wstool bench echo \S+ \(interrupted: partial\)")
        child.expect(r"round trip[ \x1b\[0-9;m]*min")
        child.expect("round-trip latency")
        child.expect(pexpect.EOF)
        child.close()
        assert child.exitstatus == 130
        assert "Traceback" not in child.before
    finally:
        server.close()
