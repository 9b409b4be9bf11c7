"""serve-echo over HTTP/2 (RFC 8441, --http2) vs over HTTP/1.1, in the same run (issue 12).

Usage:  python bench/bench_h2_server.py [--duration 3] [--rounds 3] [--markdown]

One `wstool serve-echo --http2 --port 0 --ping-interval 0` process serves both
protocols on one port. A small load generator (an asyncio protocol; HTTP/2 through
python-hyper's h2, the WebSocket frames pre-built and masked) sends 32-byte text
messages and counts echoed bytes (every echo is a 34-byte frame):

* pipelined: every socket keeps WINDOW messages in flight;
* request/response: every socket sends its next message when the echo is back;
* over one TCP connection: h1 is one socket; h2 is one stream, and 10 streams;
* for comparison, h1 over 10 TCP connections.

Figures are messages per second of *server* CPU time (utime+stime from
/proc/PID/stat: on a shared 2-core machine the generator competes with the
server, so this is the fair figure) and per second of wall time. Runs are
interleaved (h1, h2, h1, h2...) for --rounds rounds; medians are printed.
Loopback only.

``--instructions [--vs DIR] [--echoes N]`` counts instead the server's instructions
per echo under callgrind (valgrind): a fixed number of echoes a run, a run with none
subtracted; with ``--vs``, the wstool of checkout DIR too, runs interleaved (this,
DIR, this, DIR...). Deterministic where CPU seconds on a shared machine are not.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import h2.config
import h2.connection
import h2.events
import h2.settings

PAYLOAD = b"0123456789abcdef0123456789abcdef"
ECHO_LEN = 2 + len(PAYLOAD)
WINDOW = 100
CLK_TCK = os.sysconf("SC_CLK_TCK")
REPO = Path(__file__).resolve().parent.parent


def masked_frame() -> bytes:
    key = os.urandom(4)
    return bytes([0x81, 0x80 | len(PAYLOAD)]) + key + bytes(
        b ^ key[i % 4] for i, b in enumerate(PAYLOAD))


FRAME = masked_frame()


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


class Sockets:
    """What every load protocol shares: counts, and how to refill a socket."""

    def __init__(self, window: int) -> None:
        self.window = window
        self.echoes = 0
        self.ready = asyncio.get_running_loop().create_future()

    def refill(self, received_bytes: int, leftover: int) -> tuple[int, int]:
        """(echoes completed, new leftover) for a socket that got RECEIVED_BYTES."""
        total = leftover + received_bytes
        done, rest = divmod(total, ECHO_LEN)
        self.echoes += done
        return done, rest


class H1Load(asyncio.Protocol):
    def __init__(self, shared: Sockets, port: int) -> None:
        self.shared = shared
        self.port = port
        self.buf = b""
        self.open = False
        self.leftover = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(
            f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode())

    def data_received(self, data: bytes) -> None:
        if not self.open:
            self.buf += data
            head, sep, rest = self.buf.partition(b"\r\n\r\n")
            if not sep:
                return
            assert head.startswith(b"HTTP/1.1 101"), head
            self.open = True
            self.transport.write(FRAME * self.shared.window)
            if not self.shared.ready.done():
                self.shared.ready.set_result(None)
            data = rest
            if not data:
                return
        done, self.leftover = self.shared.refill(len(data), self.leftover)
        if done:
            self.transport.write(FRAME * done)


class H2Load(asyncio.Protocol):
    def __init__(self, shared: Sockets, port: int, streams: int) -> None:
        self.shared = shared
        self.port = port
        self.stream_count = streams
        self.conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding=None))
        self.conn.local_settings = h2.settings.Settings(
            client=True, initial_values={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 1 << 24})
        self.leftover: dict[int, int] = {}
        self.opened = 0
        self.started = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.conn.initiate_connection()
        self.conn.increment_flow_control_window(1 << 30)
        self.transport.write(self.conn.data_to_send())

    def data_received(self, data: bytes) -> None:
        conn = self.conn
        sends: dict[int, int] = {}
        for event in conn.receive_data(data):
            if isinstance(event, h2.events.RemoteSettingsChanged) and not self.started:
                self.started = True
                for _ in range(self.stream_count):
                    sid = conn.get_next_available_stream_id()
                    conn.send_headers(sid, [
                        (":method", "CONNECT"), (":protocol", "websocket"),
                        (":scheme", "http"), (":path", "/"),
                        (":authority", f"127.0.0.1:{self.port}"),
                        ("sec-websocket-version", "13")])
                    self.leftover[sid] = 0
            elif isinstance(event, h2.events.ResponseReceived):
                assert dict(event.headers or [])[b":status"] == b"200"
                self.opened += 1
                sends[event.stream_id] = self.shared.window
                if self.opened == self.stream_count and not self.shared.ready.done():
                    self.shared.ready.set_result(None)
            elif isinstance(event, h2.events.DataReceived):
                sid = event.stream_id
                if event.flow_controlled_length:
                    conn.acknowledge_received_data(event.flow_controlled_length, sid)
                done, self.leftover[sid] = self.shared.refill(
                    len(event.data or b""), self.leftover[sid])
                if done:
                    sends[sid] = sends.get(sid, 0) + done
        for sid, count in sends.items():
            conn.send_data(sid, FRAME * count)
        out = conn.data_to_send()
        if out:
            self.transport.write(out)


def _same(protocol: asyncio.Protocol) -> asyncio.Protocol:
    return protocol


@dataclass
class Result:
    name: str
    per_cpu_s: float
    per_wall_s: float


async def measure(name: str, port: int, pid: int, duration_s: float,
                  make: Callable[[Sockets], list[asyncio.Protocol]], window: int) -> Result:
    loop = asyncio.get_running_loop()
    shared = Sockets(window)
    transports = []
    for protocol in make(shared):
        transport, _ = await loop.create_connection(functools.partial(_same, protocol),
                                                    "127.0.0.1", port)
        transports.append(transport)
    await asyncio.wait_for(shared.ready, 10)
    await asyncio.sleep(0.3)  # all sockets up and running
    echoes0, cpu0, t0 = shared.echoes, cpu_seconds(pid), time.perf_counter()
    await asyncio.sleep(duration_s)
    echoes1, cpu1, t1 = shared.echoes, cpu_seconds(pid), time.perf_counter()
    for transport in transports:
        transport.abort()
    await asyncio.sleep(0.3)
    count = echoes1 - echoes0
    return Result(name, count / max(cpu1 - cpu0, 1e-9), count / (t1 - t0))


def scenarios(port: int) -> list[tuple[str, int, Callable[[Sockets], list[asyncio.Protocol]]]]:
    def h1(n: int) -> Callable[[Sockets], list[asyncio.Protocol]]:
        return lambda s: [H1Load(s, port) for _ in range(n)]

    def h2c(streams: int) -> Callable[[Sockets], list[asyncio.Protocol]]:
        return lambda s: [H2Load(s, port, streams)]

    out = []
    for mode, window in (("pipelined", WINDOW), ("request/response", 1)):
        out += [
            (f"{mode}, h1, 1 connection", window, h1(1)),
            (f"{mode}, h2, 1 connection, 1 stream", window, h2c(1)),
            (f"{mode}, h1, 10 connections", max(window // 10, 1), h1(10)),
            (f"{mode}, h2, 1 connection, 10 streams", max(window // 10, 1), h2c(10)),
        ]
    return out


async def run(args: argparse.Namespace) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "wstool", "serve-echo", "--http2", "--port", "0",
         "--ping-interval", "0", "--loop", args.loop],
        stderr=subprocess.PIPE, cwd=REPO)
    assert proc.stderr is not None
    line = proc.stderr.readline().decode()
    match = re.search(r":(\d+)/", line)
    assert match, line
    port = int(match.group(1))
    results: dict[str, list[Result]] = {}
    try:
        for _ in range(args.rounds):
            for name, window, make in scenarios(port):
                result = await measure(name, port, proc.pid, args.duration, make, window)
                results.setdefault(name, []).append(result)
    finally:
        proc.terminate()
        proc.wait(10)
    rows = []
    for name, runs in results.items():
        cpu = statistics.median(r.per_cpu_s for r in runs)
        wall = statistics.median(r.per_wall_s for r in runs)
        rows.append((name, cpu, wall))
    print(f"# {platform.node()} {platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}, h2 {h2.__version__}, loop {args.loop}, "
          f"{args.rounds} rounds x {args.duration}s, median")
    if args.markdown:
        print("| scenario | msg/s per server CPU-s | msg/s wall | h2/h1 (CPU) |")
        print("|---|---:|---:|---:|")
    base: dict[str, float] = {}
    for name, cpu, wall in rows:
        mode = name.split(",")[0]
        key = (mode, name.endswith("10 connections") or name.endswith("10 streams"))
        ratio = ""
        if ", h1," in name:
            base[str(key)] = cpu
        elif str(key) in base:
            ratio = f"{cpu / base[str(key)]:.2f}x"
        if args.markdown:
            print(f"| {name} | {cpu:,.0f} | {wall:,.0f} | {ratio} |")
        else:
            print(f"{name:45} {cpu:>12,.0f} /cpu-s {wall:>12,.0f} /s {ratio}")


# --instructions: the server under callgrind, a fixed number of echoes per run.


async def collected_instructions(repo: Path, proto: str, sockets: int, window: int,
                                 echoes: int) -> int:
    """Instructions the server (REPO's wstool) executes in a run that ends once
    ECHOES echoes are back (0: open the sockets, then close them): h2, one
    connection with SOCKETS streams, or h1, SOCKETS connections."""
    proc = await asyncio.create_subprocess_exec(
        "valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
        sys.executable, "-m", "wstool", "serve-echo", "--http2", "--port", "0",
        "--ping-interval", "0", "--loop", "asyncio",
        stderr=subprocess.PIPE, cwd=repo)
    assert proc.stderr is not None
    port = 0
    while not port:
        line = (await proc.stderr.readline()).decode()
        assert line, "the server exited before listening"
        match = re.search(r"listening on \S+:(\d+)/", line)
        port = int(match.group(1)) if match else 0
    loop = asyncio.get_running_loop()
    shared = Sockets(window)
    protocols: list[asyncio.Protocol] = (
        [H2Load(shared, port, sockets)] if proto == "h2"
        else [H1Load(shared, port) for _ in range(sockets)])
    transports = []
    for protocol in protocols:
        transport, _ = await loop.create_connection(functools.partial(_same, protocol),
                                                    "127.0.0.1", port)
        transports.append(transport)
    await asyncio.wait_for(shared.ready, 120)
    while shared.echoes < echoes:
        await asyncio.sleep(0.01)
    for transport in transports:
        transport.abort()
    await asyncio.sleep(0.5)
    proc.terminate()
    rest = (await proc.stderr.read()).decode()
    await proc.wait()
    match = re.search(r"Collected : (\d+)", rest)
    assert match, rest[-2000:]
    return int(match.group(1))


async def instructions(args: argparse.Namespace) -> None:
    """Instructions per echo: this checkout's server, and --vs DIR's interleaved."""
    sides = [("this", REPO)] + ([("vs", Path(args.vs).resolve())] if args.vs else [])
    print(f"# {platform.node()} {platform.machine()}, Python {platform.python_version()}, "
          f"h2 {h2.__version__}, {args.echoes} echoes a run; server instructions per echo "
          f"(callgrind; a run of 0 echoes subtracted), median of {args.rounds}")
    for mode, proto, sockets in (("pipelined", "h2", 1), ("pipelined", "h2", 10),
                                 ("request/response", "h2", 1), ("pipelined", "h1", 1)):
        window = max((WINDOW if mode == "pipelined" else 1) // sockets, 1)
        figures: dict[str, list[float]] = {name: [] for name, _ in sides}
        for _ in range(args.rounds):
            for name, repo in sides:
                empty = await collected_instructions(repo, proto, sockets, window, 0)
                full = await collected_instructions(repo, proto, sockets, window, args.echoes)
                figures[name].append((full - empty) / args.echoes)
        medians = {name: statistics.median(values) for name, values in figures.items()}
        cells = "  ".join(f"{name} {value:,.0f}" for name, value in medians.items())
        ratio = f"  this/vs {medians['this'] / medians['vs']:.3f}" if args.vs else ""
        what = "stream" if proto == "h2" else "connection"
        print(f"{mode}, {proto}, {sockets} {what}{'s' if sockets > 1 else ''}: "
              f"{cells}{ratio}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--loop", choices=["auto", "asyncio", "uvloop"], default="asyncio")
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--instructions", action="store_true",
                        help="count the server's instructions per echo under callgrind")
    parser.add_argument("--echoes", type=int, default=20000,
                        help="--instructions: echoes per run")
    parser.add_argument("--vs", metavar="DIR",
                        help="--instructions: also the wstool of this checkout, interleaved")
    args = parser.parse_args()
    asyncio.run(instructions(args) if args.instructions else run(args))


if __name__ == "__main__":
    main()
