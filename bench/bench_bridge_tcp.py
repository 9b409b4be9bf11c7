"""TCP bridge throughput: ``wstool listen --to-tcp`` vs websockify (issue 16).

Usage:  python bench/bench_bridge_tcp.py [--duration 3] [--rounds 3] [--websockify PATH]
                                         [--markdown]

The chain: load generator -> WebSocket -> bridge -> TCP -> echo service, and back.
The echo service is a plain asyncio protocol in its own process (uvloop when
installed) that writes back what it reads, with backpressure. The load generator
is a sans-I/O client in this process: pre-built masked binary frames written by an
asyncio protocol, received frames counted by a minimal header parser (the bridge
re-frames what the echo returns, so payload bytes are counted, not frames).

Two loads, each for --duration seconds on one connection, per bridge:

* 64 KiB: binary messages of 64 KiB, 4 MiB kept in flight; MB/s of payload echoed;
* small: binary messages of 32 bytes, 100 kept in flight; messages/s echoed
  (payload bytes back / 32).

Each figure is the median of --rounds runs, the bridges interleaved (a, b, a, b...),
each run against a fresh bridge process. Beside wall-clock rates, the bridge's CPU
time (utime+stime, children included: websockify forks a process per connection)
per MB or per message: on a 2-core machine shared with the generator and the echo
service, that is the fairer figure.

Bridges: wstool listen --to-tcp with --loop asyncio and, when uvloop is installed,
--loop uvloop (both with --ping-interval 0: websockify sends no pings); websockify
(PATH given, on PATH, or installed with pip into ~/.cache/wstool-bench/websockify).

Loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import platform
import re
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

CLK_TCK = os.sysconf("SC_CLK_TCK")
BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
WEBSOCKIFY_VENV = Path.home() / ".cache" / "wstool-bench" / "websockify"

ECHO_SERVICE = r"""
import asyncio, sys
try:
    import uvloop
    uvloop.install()
except ImportError:
    pass

class Echo(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport
    def data_received(self, data):
        self.transport.write(data)
    def pause_writing(self):
        self.transport.pause_reading()
    def resume_writing(self):
        self.transport.resume_reading()

async def main():
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Echo, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def masked_binary_frame(payload: bytes) -> bytes:
    key = os.urandom(4)
    n = len(payload)
    if n < 126:
        header = bytes([0x82, 0x80 | n])
    elif n < 65536:
        header = struct.pack("!BBH", 0x82, 0xFE, n)
    else:
        header = struct.pack("!BBQ", 0x82, 0xFF, n)
    mask = (key * (n // 4 + 1))[:n]
    masked = (int.from_bytes(payload, "big") ^ int.from_bytes(mask, "big")).to_bytes(n, "big")
    return header + key + masked


def cpu_seconds(pid: int) -> float:
    """utime+stime+cutime+cstime: the process and its reaped children."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(f) for f in fields[11:15]) / CLK_TCK


def tree_cpu_seconds(pid: int) -> float:
    """cpu_seconds of PID and of its live children (websockify's per-connection ones)."""
    total = cpu_seconds(pid)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(stat[1]) == pid:
            total += sum(int(f) for f in stat[11:13]) / CLK_TCK
    return total


class Load(asyncio.Protocol):
    """One WebSocket client: keeps WINDOW payload bytes in flight, counts what comes back."""

    def __init__(self, port: int, frame: bytes, payload_len: int, window: int,
                 done: asyncio.Future[None]) -> None:
        self.port = port
        self.frame = frame
        self.payload_len = payload_len
        self.window = window
        self.sent = 0
        self.received = 0
        self.buffer = b""
        self.skip = 0  # payload bytes of the current frame still to come
        self.handshaken = False
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.done = done
        self.counting = True
        self.paused = False

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        key = base64.b64encode(os.urandom(16)).decode()
        transport.write((
            f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Protocol: binary\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        self.fill()

    def fill(self) -> None:
        if not self.counting:
            return
        frames = []
        while self.sent - self.received < self.window:
            frames.append(self.frame)
            self.sent += self.payload_len
        if frames:
            self.transport.write(b"".join(frames))

    def data_received(self, data: bytes) -> None:
        if not self.handshaken:
            self.buffer += data
            head, sep, rest = self.buffer.partition(b"\r\n\r\n")
            if not sep:
                return
            if not head.startswith(b"HTTP/1.1 101"):
                raise SystemExit(f"handshake refused: {head[:80]!r}")
            self.handshaken = True
            self.buffer = b""
            self.opened.set_result(None)
            self.fill()
            data = rest
            if not data:
                return
        self._count(data)
        if not self.paused:
            self.fill()

    def _count(self, data: bytes) -> None:
        view = memoryview(data)
        pos = 0
        end = len(data)
        if self.skip:
            take = min(self.skip, end)
            self.skip -= take
            self.received += take
            pos = take
        if self.buffer:
            data = self.buffer + bytes(view[pos:])
            view = memoryview(data)
            pos, end = 0, len(data)
            self.buffer = b""
        while pos < end:
            if end - pos < 2:
                self.buffer = bytes(view[pos:])
                return
            length = view[pos + 1] & 0x7F
            header = 2
            if length == 126:
                header = 4
            elif length == 127:
                header = 10
            if end - pos < header:
                self.buffer = bytes(view[pos:])
                return
            if length == 126:
                length = struct.unpack_from("!H", view, pos + 2)[0]
            elif length == 127:
                length = struct.unpack_from("!Q", view, pos + 2)[0]
            pos += header
            take = min(length, end - pos)
            self.received += take
            self.skip = length - take
            pos += take

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_result(None)


async def measure(port: int, payload_len: int, window: int, duration_s: float,
                  bridge_pid: int) -> tuple[float, float]:
    """(payload bytes echoed per second, bridge CPU seconds per echoed byte)."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()
    frame = masked_binary_frame(os.urandom(payload_len))
    _transport, load = await loop.create_connection(
        lambda: Load(port, frame, payload_len, window, done), "127.0.0.1", port)
    await asyncio.wait_for(load.opened, 10)
    await asyncio.sleep(0.3)  # warm-up
    start_bytes, start = load.received, time.perf_counter()
    start_cpu = tree_cpu_seconds(bridge_pid)
    await asyncio.sleep(duration_s)
    got, elapsed = load.received - start_bytes, time.perf_counter() - start
    cpu = tree_cpu_seconds(bridge_pid) - start_cpu
    load.counting = False
    load.transport.abort()
    return got / elapsed, cpu / max(got, 1)


def start_echo_service() -> tuple[subprocess.Popen[bytes], int]:
    proc = subprocess.Popen([sys.executable, "-c", ECHO_SERVICE], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    return proc, int(proc.stdout.readline())


def wait_listening(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"bridge exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listening on {port}")


def wstool_command(loop_name: str) -> Any:
    def command(port: int, target: int) -> list[str]:
        return [sys.executable, "-m", "wstool", "listen", "--port", str(port),
                "--to-tcp", f"127.0.0.1:{target}", "--ping-interval", "0",
                "--max-size", "0", "--loop", loop_name]
    return command


def websockify_path(given: str | None) -> str | None:
    if given:
        return given
    found = shutil.which("websockify")
    if found:
        return found
    candidate = WEBSOCKIFY_VENV / "bin" / "websockify"
    if not candidate.exists():
        print("installing websockify into", WEBSOCKIFY_VENV, file=sys.stderr)
        try:
            subprocess.run([sys.executable, "-m", "venv", str(WEBSOCKIFY_VENV)], check=True)
            subprocess.run([str(WEBSOCKIFY_VENV / "bin" / "pip"), "install", "-q",
                            "websockify"], check=True)
        except (OSError, subprocess.CalledProcessError) as exc:
            print(f"websockify unavailable: {exc}", file=sys.stderr)
            return None
    return str(candidate)


def websockify_command(path: str) -> Any:
    def command(port: int, target: int) -> list[str]:
        return [path, f"127.0.0.1:{port}", f"127.0.0.1:{target}"]
    return command


def version_of(path: str) -> str:
    out = subprocess.run([path, "--help"], capture_output=True, text=True).stdout
    pip = Path(path).parent / "pip"
    if pip.exists():
        show = subprocess.run([str(pip), "show", "websockify"], capture_output=True,
                              text=True).stdout
        match = re.search(r"^Version: (\S+)", show, re.M)
        if match:
            return match.group(1)
    return "?" if not out else "installed"


LOADS = {"64k": (65536, 4 * 1024 * 1024), "small": (32, 32 * 100)}


def run_one(command: Any, echo_port: int, load: str, duration_s: float) -> tuple[float, float]:
    port = free_port()
    proc = subprocess.Popen(command(port, echo_port), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, cwd=REPO)
    try:
        wait_listening(port, proc)
        time.sleep(0.2)  # websockify answers its own probe connection first
        payload_len, window = LOADS[load]
        return asyncio.run(measure(port, payload_len, window, duration_s, proc.pid))
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--websockify", metavar="PATH")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()

    bridges: dict[str, Any] = {"wstool listen --to-tcp (asyncio)": wstool_command("asyncio")}
    try:
        import uvloop  # noqa: F401

        bridges["wstool listen --to-tcp (uvloop)"] = wstool_command("uvloop")
    except ImportError:
        print("uvloop not installed: wstool runs on asyncio only", file=sys.stderr)
    path = websockify_path(args.websockify)
    if path is not None:
        bridges[f"websockify {version_of(path)}"] = websockify_command(path)

    echo, echo_port = start_echo_service()
    results: dict[tuple[str, str], list[tuple[float, float]]] = {}
    try:
        for _round in range(args.rounds):
            for load in LOADS:
                for name, command in bridges.items():
                    results.setdefault((name, load), []).append(
                        run_one(command, echo_port, load, args.duration))
    finally:
        echo.terminate()
        echo.wait()

    def median(name: str, load: str, index: int) -> float:
        return statistics.median(r[index] for r in results[(name, load)])

    cpu = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {cpu} "
          f"({os.cpu_count()} cores), Linux {platform.release()}, "
          f"Python {platform.python_version()}; medians of {args.rounds} x "
          f"{args.duration:g} s")
    header = ["bridge", "64 KiB MB/s", "64 KiB bridge CPU-s/GB", "small msg/s",
              "small bridge CPU-us/msg"]
    rows = []
    for name in bridges:
        rows.append([
            name,
            f"{median(name, '64k', 0) / 1e6:,.0f}",
            f"{median(name, '64k', 1) * 1e9:.2f}",
            f"{median(name, 'small', 0) / 32:,.0f}",
            f"{median(name, 'small', 1) * 32 * 1e6:.1f}",
        ])
    if args.markdown:
        print("| " + " | ".join(header) + " |")
        print("|" + "---|" * len(header))
        for row in rows:
            print("| " + " | ".join(row) + " |")
    else:
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
        for row in [header, *rows]:
            print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))


if __name__ == "__main__":
    main()
