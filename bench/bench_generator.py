"""wstool bench's generator vs bench_echo_server.py's own (issue 15).

Usage:  python bench/bench_generator.py [--duration 5] [--rounds 3] [--only NAME...]
        [--modes rr pipe pipe/2]

The figure is messages per second of *generator* CPU time (user+sys of the
generator's process over the load window): on a 2-core machine the generator and
the server share the CPUs, so wall-clock rates say little about the generator.

Generators, each one process, 50 connections, 32-byte text messages, against the
same fresh server per measurement, interleaved round by round (median of rounds):

* ``project``: bench/bench_echo_server.py's ``load_worker`` (pre-built frames, a
  plain asyncio protocol that counts echoed bytes without parsing them and
  measures no latency);
* ``wstool bench``: ``python -m wstool bench --json`` (full sessions, every frame
  parsed, every round trip timed into the histogram); its own report gives the
  CPU seconds and the messages of its measured window. Echo mode's receive path is
  the C extension (wstool/bench/_closedloop.c) when it is built;
* ``wstool bench (Python)``: the same with ``WSTOOL_PURE_PYTHON=1``, the path a
  machine without a C compiler installs (with ``--no-python``: not run).

Modes: ``rr`` (request/response: --window 1), ``pipe`` (--window 100: every echo
replaced at once, 100 always in flight) and ``pipe/2`` (--window 100 --refill 50: the
project generator's own load, which writes 100 at first and then 50 each time 50
echoes are owed; the project generator runs the same in ``pipe`` and ``pipe/2``).
Servers: wstool serve-echo (uvloop when installed) and Node's ws echo
(bench/node_ws_echo.js).

Loopback only. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

import bench_echo_server as project  # noqa: E402

CONNECTIONS = project.CONNECTIONS
WINDOWS = {"rr": 1, "pipe": project.WINDOW, "pipe/2": project.WINDOW}
REFILLS = {"rr": 1, "pipe": 1, "pipe/2": project.WINDOW // 2}
PROJECT_MODES = {"rr": "rr", "pipe": "pipe", "pipe/2": "pipe"}


def run_project(port: int, mode: str, duration_s: float) -> tuple[int, float]:
    """(messages, generator CPU s) of the project's generator in one process."""
    ctx = mp.get_context("fork")
    go = ctx.Event()
    ready = ctx.Queue()
    out = ctx.Queue()
    proc = ctx.Process(target=project.load_worker,
                       args=(port, CONNECTIONS, mode, duration_s, go, ready, out))
    proc.start()
    ready.get(timeout=120)
    assert proc.pid is not None
    cpu0 = project.cpu_seconds(proc.pid)
    go.set()
    total = int(out.get(timeout=duration_s + 60))
    cpu1 = project.cpu_seconds(proc.pid)  # a zombie until joined: /proc still has it
    proc.join(30)
    return total, cpu1 - cpu0


def run_wstool(port: int, mode: str, duration_s: float,
               pure: bool = False) -> tuple[int, float, dict[str, float]]:
    argv = [sys.executable, "-m", "wstool", "bench", "--json", "--no-compress",
            "--ping-interval", "0", "-c", str(CONNECTIONS), "--window", str(WINDOWS[mode]),
            "--refill", str(REFILLS[mode]),
            "--duration", str(duration_s), f"ws://127.0.0.1:{port}/"]
    env = {k: v for k, v in os.environ.items() if k != "WSTOOL_PURE_PYTHON"}
    if pure:
        env["WSTOOL_PURE_PYTHON"] = "1"
    result = subprocess.run(argv, capture_output=True, timeout=duration_s + 120, env=env)
    if result.returncode != 0:
        raise RuntimeError(result.stderr.decode())
    report = json.loads(result.stdout)
    latency = report["latency"]
    return (report["messages"]["received"], report["generator"]["cpu_s"],
            {k: latency[k] for k in ("p50", "p99")})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", nargs="*", default=[])
    parser.add_argument("--modes", nargs="*", default=list(WINDOWS), choices=list(WINDOWS))
    parser.add_argument("--no-python", action="store_true",
                        help="do not run wstool bench's pure-Python path")
    args = parser.parse_args()
    names = ["project", "wstool bench"] + ([] if args.no_python else ["wstool bench (Python)"])
    servers = [s for s in project.servers(args.only or ["uvloop", "node"])
               if "asyncio" not in s.name]
    rows = []
    for server in servers:
        for mode in args.modes:
            figures: dict[str, list[float]] = {name: [] for name in names}
            latencies: list[dict[str, float]] = []
            for _ in range(args.rounds):
                for name in names:
                    proc, port = project.start(server)
                    try:
                        if name == "project":
                            total, cpu = run_project(port, PROJECT_MODES[mode], args.duration)
                        else:
                            pure = name != "wstool bench"
                            total, cpu, latency = run_wstool(port, mode, args.duration, pure)
                            if not pure:
                                latencies.append(latency)
                    finally:
                        project.stop(proc)
                    figures[name].append(total / max(cpu, 1e-9))
                    time.sleep(0.2)
            med = {name: statistics.median(v) for name, v in figures.items()}
            p50 = statistics.median(x["p50"] for x in latencies) * 1e3
            p99 = statistics.median(x["p99"] for x in latencies) * 1e3
            rows.append((server.name, mode, med["project"], med["wstool bench"],
                         med.get("wstool bench (Python)"), p50, p99))
            rounds = {name: [f"{v:,.0f}" for v in values] for name, values in figures.items()}
            print(f"# {server.name} {mode}: medians {med}; rounds {rounds}", file=sys.stderr,
                  flush=True)
    print("| server | mode | project generator msgs/CPU-s | wstool bench msgs/CPU-s | ratio "
          "| Python path msgs/CPU-s | ratio | wstool bench p50 / p99 |")
    print("|---|---|---:|---:|---:|---:|---:|---|")
    for name, mode, proj, ours, py_rate, p50, p99 in rows:
        py = f"{py_rate:,.0f} | {py_rate / proj:.2f}x" if py_rate is not None else "- | -"
        print(f"| {name} | {mode} | {proj:,.0f} | {ours:,.0f} | {ours / proj:.2f}x | {py} "
              f"| {p50:.3g} / {p99:.3g} ms |")


if __name__ == "__main__":
    main()
