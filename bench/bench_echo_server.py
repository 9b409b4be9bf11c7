"""serve-echo vs Node's `ws` echo and websocat's echo (issue 4).

Usage:  python bench/bench_echo_server.py [--duration 3] [--quick] [--only NAME...]

One load generator for every server: pre-built masked text frames written by a
plain asyncio protocol (uvloop when installed), spread over several processes,
counting echoed bytes rather than parsing them (every echo of a 32-byte text
message is a 34-byte frame). Measurements, each against a fresh server process:

* pipelined: 50 connections, each keeping 100 messages in flight;
* request/response: 50 connections, each sending its next message when the
  previous echo has arrived;
* for both, messages per second of wall time and per second of *server* CPU time
  (utime+stime from /proc/PID/stat) -- on a 2-core machine the generator competes
  with the server, so the CPU-normalised figure is the fair comparison;
* resident memory per idle connection: server RSS after N handshakes minus RSS
  before, over N, for N = 1000 and 10000.

Servers: wstool serve-echo (asyncio loop, and uvloop when installed), Node's `ws`
(from the test cache or $WSTOOL_NODE_CACHE; installed with npm when missing) and
websocat (`websocat -E -t ws-l:127.0.0.1:PORT mirror:`). Keepalive pings are off
for wstool (--ping-interval 0) because the others send none.

Loopback only. Prints a table; --markdown prints it as a Markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import functools
import multiprocessing as mp
import os
import platform
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from statistics import median
from typing import Any

PAYLOAD = b"0123456789abcdef0123456789abcdef"  # 32 bytes
ECHO_FRAME_LEN = 2 + len(PAYLOAD)  # server frames are unmasked
CONNECTIONS = 50
WINDOW = 100
CLK_TCK = os.sysconf("SC_CLK_TCK")
BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent


def masked_text_frame(payload: bytes) -> bytes:
    key = os.urandom(4)
    masked = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return bytes([0x81, 0x80 | len(payload)]) + key + masked


def handshake_request(port: int) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n"
    ).encode()


# The load generator (runs in worker processes).


class LoadConnection(asyncio.Protocol):
    def __init__(self, port: int, mode: str, opened: asyncio.Future[None]) -> None:
        self.port = port
        self.mode = mode
        self.opened = opened
        self.handshaken = False
        self.head = b""
        self.pending = 0  # bytes of an incomplete echo frame
        self.received = 0
        self.counting = False
        self.frame = masked_text_frame(PAYLOAD)
        self.batch = self.frame * (WINDOW // 2)
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.write(handshake_request(self.port))  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        if not self.handshaken:
            self.head += data
            end = self.head.find(b"\r\n\r\n")
            if end < 0:
                return
            assert self.head.startswith(b"HTTP/1.1 101"), self.head[:80]
            self.handshaken = True
            data = self.head[end + 4 :]
            if not self.opened.done():
                self.opened.set_result(None)
            if not data:
                return
        total = self.pending + len(data)
        echoes, self.pending = divmod(total, ECHO_FRAME_LEN)
        if self.counting:
            self.received += echoes
        if not echoes or self.transport is None:
            return
        if self.mode == "rr":
            self.transport.write(self.frame * echoes)
        else:
            # Keep the window full: half a window at a time.
            self.credit += echoes
            while self.credit >= WINDOW // 2:
                self.credit -= WINDOW // 2
                self.transport.write(self.batch)

    credit = 0

    def start(self) -> None:
        assert self.transport is not None
        if self.mode == "rr":
            self.transport.write(self.frame)
        elif self.mode == "pipe":
            self.transport.write(self.frame * WINDOW)


def _install_fast_loop() -> None:
    try:
        import uvloop
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def load_worker(port: int, n_conns: int, mode: str, duration_s: float,
                go: Any, ready: Any, out: Any) -> None:
    _install_fast_loop()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        conns: list[LoadConnection] = []
        waiters = []
        for _ in range(n_conns):
            opened: asyncio.Future[None] = loop.create_future()
            _t, proto = await loop.create_connection(
                functools.partial(LoadConnection, port, mode, opened), "127.0.0.1", port
            )
            conns.append(proto)
            waiters.append(opened)
        await asyncio.wait_for(asyncio.gather(*waiters), 120)
        ready.put(n_conns)
        while not go.is_set():
            await asyncio.sleep(0.01)
        if mode == "idle":
            # Hold the connections until told to stop (go cleared is not
            # observable; wait for the stop flag in `out`'s sibling).
            out.put(0)
            while go.is_set():
                await asyncio.sleep(0.05)
            return
        for c in conns:
            c.counting = True
            c.start()
        await asyncio.sleep(duration_s)
        out.put(sum(c.received for c in conns))
        for c in conns:
            c.counting = False
            if c.transport is not None:
                c.transport.abort()

    asyncio.run(main())


def run_load(port: int, total_conns: int, mode: str, duration_s: float,
             workers: int, on_ready: Callable[[], Any] | None = None,
             on_done: Callable[[], Any] | None = None) -> tuple[int, float, Any, Any]:
    ctx = mp.get_context("fork")
    go = ctx.Event()
    ready: Any = ctx.Queue()
    out: Any = ctx.Queue()
    per = [total_conns // workers + (1 if i < total_conns % workers else 0)
           for i in range(workers)]
    procs = [ctx.Process(target=load_worker, args=(port, n, mode, duration_s, go, ready, out))
             for n in per if n]
    for p in procs:
        p.start()
    for _ in procs:
        ready.get(timeout=300)
    before = on_ready() if on_ready else None
    t0 = time.perf_counter()
    go.set()
    if mode == "idle":
        for _ in procs:
            out.get(timeout=60)
        after = on_done() if on_done else None
        go.clear()
        for p in procs:
            p.join(30)
        return 0, 0.0, before, after
    total = sum(out.get(timeout=duration_s + 60) for _ in procs)
    wall = time.perf_counter() - t0
    after = on_done() if on_done else None
    for p in procs:
        p.join(30)
    return total, wall, before, after


# Servers.


def cpu_split(pid: int) -> tuple[float, float]:
    """User and system CPU seconds of PID (utime, stime from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK


def cpu_seconds(pid: int) -> float:
    return sum(cpu_split(pid))


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("server did not start")


@dataclass
class Server:
    name: str
    argv: Callable[[int], list[str]]
    env: dict[str, str] | None = None
    cwd: str | None = None


def node_ws_modules() -> Path | None:
    cache = Path(os.environ.get("WSTOOL_NODE_CACHE",
                                Path.home() / ".cache" / "wstool-tests" / "node"))
    modules = cache / "node_modules"
    if (modules / "ws" / "package.json").is_file():
        return modules
    npm = shutil.which("npm")
    if npm is None:
        return None
    cache.mkdir(parents=True, exist_ok=True)
    result = subprocess.run([npm, "install", "--prefix", str(cache), "--no-save", "--no-audit",
                             "--no-fund", "--no-package-lock", "--loglevel=error", "ws@8"],
                            capture_output=True, timeout=300)
    return modules if result.returncode == 0 else None


def servers(only: list[str], trees: Sequence[tuple[str, str]] = ()) -> list[Server]:
    wstool = [sys.executable, "-m", "wstool", "serve-echo", "--ping-interval", "0",
              "--max-size", "0", "--open-timeout", "0"]
    found = [
        Server("wstool serve-echo (asyncio)", lambda p: [*wstool, "--loop", "asyncio",
                                                        "--port", str(p)]),
    ]
    try:
        import uvloop  # noqa: F401

        found.append(Server("wstool serve-echo (uvloop)",
                            lambda p: [*wstool, "--loop", "uvloop", "--port", str(p)]))
    except ImportError:
        print("(uvloop not installed: skipping serve-echo on uvloop)", file=sys.stderr)
    modules = node_ws_modules()
    node = shutil.which("node")
    if modules is not None and node is not None:
        found.append(Server("node ws echo", lambda p: [node, str(BENCH_DIR / "node_ws_echo.js"),
                                                       str(p)],
                            env={**os.environ, "NODE_PATH": str(modules)}))
    else:
        print("(node or npm ws unavailable: skipping Node's ws)", file=sys.stderr)
    websocat = shutil.which("websocat")
    if websocat is not None:
        found.append(Server("websocat mirror", lambda p: [websocat, "-E", "-t",
                                                          f"ws-l:127.0.0.1:{p}", "mirror:"]))
    else:
        print("(websocat not found: skipping)", file=sys.stderr)
    for label, tree in trees:
        # Another checkout of wstool (e.g. `git archive BASE wstool | tar -x -C DIR`),
        # for A/B runs interleaved with this one (run from DIR: `-m` puts the
        # working directory first on sys.path).
        env = {**os.environ, "PYTHONPATH": tree}
        for loop in ("asyncio", "uvloop"):
            found.append(Server(f"wstool {label} ({loop})",
                                functools.partial(_tree_argv, wstool, loop), env=env,
                                cwd=tree))
    if only:
        found = [s for s in found if any(o.lower() in s.name.lower() for o in only)]
    return found


def _tree_argv(wstool: list[str], loop: str, port: int) -> list[str]:
    return [*wstool, "--loop", loop, "--port", str(port)]


def start(server: Server) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    proc = subprocess.Popen(server.argv(port), stdin=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=server.env, cwd=server.cwd)
    wait_port(port, proc)
    return proc, port


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@dataclass
class Run:
    msg_per_s: float  # wall clock
    msg_per_cpu_s: float  # per second of server CPU time (user + sys)
    user_us: float  # server user CPU microseconds per message
    sys_us: float  # server system CPU microseconds per message


def measure_throughput(server: Server, mode: str, duration_s: float) -> Run:
    proc, port = start(server)
    try:
        pid = proc.pid
        total, wall, cpu0, cpu1 = run_load(
            port, CONNECTIONS, mode, duration_s, workers=2,
            on_ready=lambda: cpu_split(pid), on_done=lambda: cpu_split(pid),
        )
    finally:
        stop(proc)
    user, system = cpu1[0] - cpu0[0], cpu1[1] - cpu0[1]
    cpu = max(user + system, 1e-9)
    total = max(total, 1)
    return Run(total / wall, total / cpu, user / total * 1e6, system / total * 1e6)


def idle_memory_per_connection(server: Server, n: int) -> float:
    proc, port = start(server)
    try:
        pid = proc.pid
        run_load(port, 20, "idle", 0, workers=1)
        time.sleep(0.3)
        base = rss_bytes(pid)
        _total, _wall, _b, after = run_load(port, n, "idle", 0, workers=4,
                                           on_done=lambda: _settled_rss(pid))
    finally:
        stop(proc)
    return float(after - base) / n


def median_run(server: Server, mode: str, duration_s: float, repeat: int) -> Run:
    """The run with the median messages per server CPU-second (runs vary on 2 cores)."""
    runs = sorted((measure_throughput(server, mode, duration_s) for _ in range(repeat)),
                  key=lambda r: r.msg_per_cpu_s)
    return runs[len(runs) // 2]


def _settled_rss(pid: int) -> int:
    # Give the server a moment to finish processing the last handshakes.
    last = rss_bytes(pid)
    for _ in range(20):
        time.sleep(0.1)
        now = rss_bytes(pid)
        if abs(now - last) < 64 * 1024:
            return now
        last = now
    return last


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{cpu}, {os.cpu_count()} cores, Linux {platform.release()}, "
            f"Python {platform.python_version()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--quick", action="store_true", help="skip the 10000-connection run")
    parser.add_argument("--only", nargs="*", default=[])
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--memory-only", action="store_true", help="skip the throughput runs")
    parser.add_argument("--repeat", type=int, default=3,
                        help="throughput runs per server and mode; the median is shown")
    parser.add_argument("--modes", nargs="*", default=["pipe", "rr"], choices=["pipe", "rr"],
                        help="throughput modes to run (default both)")
    parser.add_argument("--tree", action="append", default=[], metavar="LABEL=DIR",
                        help="also run wstool from another checkout DIR, labelled LABEL")
    parser.add_argument("--no-memory", action="store_true", help="skip the RSS runs")
    parser.add_argument("--cpu-split", action="store_true",
                        help="add columns: median user and sys CPU microseconds per message")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    rows: list[tuple[str, list[str]]] = []
    sizes = [] if args.no_memory else [1000] if args.quick else [1000, 10000]
    trees = [tuple(t.split("=", 1)) for t in args.tree]
    chosen = servers(args.only, trees)
    # Throughput runs interleaved: round after round over every server, so that
    # the machine's load drifts over all of them alike; the median run is shown.
    runs: dict[tuple[str, str], list[Run]] = {}
    if not args.memory_only:
        for i in range(args.repeat):
            for server in chosen:
                for mode in args.modes:
                    print(f"... {server.name} {mode} run {i + 1}", file=sys.stderr)
                    runs.setdefault((server.name, mode), []).append(
                        measure_throughput(server, mode, args.duration))
    nan = Run(*[float("nan")] * 4)
    for server in chosen:
        medians = {"pipe": nan, "rr": nan}
        for mode in args.modes if not args.memory_only else []:
            measured = sorted(runs[(server.name, mode)], key=lambda r: r.msg_per_cpu_s)
            print(f"# {server.name} {mode} msg/CPU-s runs: "
                  + ", ".join(f"{r.msg_per_cpu_s:,.0f} (user {r.user_us:.2f} + sys "
                              f"{r.sys_us:.2f} us/msg)" for r in measured), file=sys.stderr)
            medians[mode] = measured[len(measured) // 2]
        mems = [idle_memory_per_connection(server, n) for n in sizes]
        pipe, rr = medians["pipe"], medians["rr"]
        split = [f"{median(r.user_us for r in runs.get((server.name, m), [nan])):.2f} / "
                 f"{median(r.sys_us for r in runs.get((server.name, m), [nan])):.2f}"
                 for m in ("pipe", "rr")] if args.cpu_split else []
        rows.append((server.name, [
            f"{pipe.msg_per_cpu_s:,.0f}", f"{pipe.msg_per_s:,.0f}",
            f"{rr.msg_per_cpu_s:,.0f}", f"{rr.msg_per_s:,.0f}", *split,
            *[f"{m / 1024:.1f} KB" for m in mems],
        ]))
    header = ["server", "pipelined msg/CPU-s", "pipelined msg/s", "req/resp msg/CPU-s",
              "req/resp msg/s",
              *(["pipelined user/sys us/msg", "req/resp user/sys us/msg"]
                if args.cpu_split else []),
              *[f"RSS/idle conn @{n}" for n in sizes]]
    print(f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {machine()}")
    print(f"# {CONNECTIONS} connections, 32-byte text messages, window {WINDOW} (pipelined), "
          f"{args.duration:g} s per run, median of {args.repeat}")
    if args.markdown:
        print("| " + " | ".join(header) + " |")
        print("|" + "|".join("---" for _ in header) + "|")
        for name, cells in rows:
            print("| " + " | ".join([name, *cells]) + " |")
    else:
        widths = [max(len(h), *(len(r[1][i - 1]) if i else len(r[0]) for r in rows))
                  for i, h in enumerate(header)]
        print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
        for name, cells in rows:
            print("  ".join(c.ljust(w) for c, w in zip([name, *cells], widths, strict=True)))


if __name__ == "__main__":
    main()
