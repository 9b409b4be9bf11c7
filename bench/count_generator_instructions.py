"""User-space instructions per round trip: wstool bench vs the project's generator.

Usage:  python bench/count_generator_instructions.py [--only uvloop node] [--connections 10]

CPU time on a shared virtual machine moves with the host's steal time (bench/README.md,
"Issue 15, session 6"); instruction counts do not. Each generator runs under
``valgrind --tool=callgrind`` twice, for a short and a long load, against the same
server (not under valgrind), request/response (one message in flight per connection,
32-byte text): the difference of the two counts over the difference of the round
trips is what one round trip costs in user space, start-up and connecting cancelled
out. Both make one ``read`` and one ``write`` system call per round trip, so the
kernel's share is the same and is not counted here.

* ``project``: bench/bench_echo_server.py's ``LoadConnection`` (rr mode) until N
  echoes have come back (``--project-worker``, below);
* ``wstool bench``: ``python -m wstool bench --window 1 --duration S`` (its own count
  of round trips in the measured window; ``--warmup 0``);
* ``wstool bench (Python)``: the same with ``WSTOOL_PURE_PYTHON=1``.

Needs valgrind. Loopback only. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

import bench_echo_server as project  # noqa: E402

SHORT_LONG_ECHOES = (3_000, 15_000)  # the project generator's two loads
SHORT_LONG_S = (3.0, 10.0)  # wstool bench's (it runs slower under valgrind)


def project_worker(port: int, connections: int, echoes: int) -> None:
    """Run the project generator until ECHOES echoes came back; print how many."""
    project._install_fast_loop()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        protos, waiters = [], []
        for _ in range(connections):
            opened: asyncio.Future[None] = loop.create_future()
            _t, proto = await loop.create_connection(
                functools.partial(project.LoadConnection, port, "rr", opened), "127.0.0.1", port)
            protos.append(proto)
            waiters.append(opened)
        await asyncio.gather(*waiters)
        for c in protos:
            c.counting = True
            c.start()
        while sum(c.received for c in protos) < echoes:
            await asyncio.sleep(0.05)
        for c in protos:
            assert c.transport is not None
            c.transport.abort()
        print(sum(c.received for c in protos))

    asyncio.run(main())


def callgrind(argv: list[str], env: dict[str, str] | None = None) -> tuple[int, str]:
    """(instructions, stdout) of ARGV under callgrind."""
    result = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
                             *argv], capture_output=True, text=True, timeout=600, env=env)
    match = re.search(r"Collected : (\d+)", result.stderr)
    if result.returncode != 0 or match is None:
        raise RuntimeError(result.stderr[-2000:])
    return int(match.group(1)), result.stdout


def per_round_trip(runs: list[tuple[int, int]]) -> float:
    (i1, n1), (i2, n2) = runs
    print(f"# {i1:,} instructions for {n1:,} round trips, {i2:,} for {n2:,}", file=sys.stderr,
          flush=True)
    return (i2 - i1) / (n2 - n1)


def measure(port: int, connections: int) -> dict[str, float]:
    figures: dict[str, float] = {}
    runs = []
    for echoes in SHORT_LONG_ECHOES:
        instructions, out = callgrind([sys.executable, __file__, "--project-worker", str(port),
                                       str(connections), str(echoes)])
        runs.append((instructions, int(out.split()[-1])))
    figures["project"] = per_round_trip(runs)
    for name, pure in (("wstool bench", False), ("wstool bench (Python)", True)):
        env = {k: v for k, v in os.environ.items() if k != "WSTOOL_PURE_PYTHON"}
        if pure:
            env["WSTOOL_PURE_PYTHON"] = "1"
        runs = []
        for seconds in SHORT_LONG_S:
            instructions, out = callgrind(
                [sys.executable, "-m", "wstool", "bench", "--json", "--no-compress",
                 "--ping-interval", "0", "--warmup", "0", "-c", str(connections), "--window",
                 "1", "--duration", str(seconds), f"ws://127.0.0.1:{port}/"], env)
            runs.append((instructions, json.loads(out)["messages"]["received"]))
        figures[name] = per_round_trip(runs)
    return figures


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--project-worker":
        project_worker(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", nargs="*", default=["uvloop", "node"])
    parser.add_argument("--connections", type=int, default=10)
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        print("skipped: valgrind not found")
        return
    servers = [s for s in project.servers(args.only) if "asyncio" not in s.name]
    print("| server | project generator | wstool bench | ratio | Python path | ratio |")
    print("|---|---:|---:|---:|---:|---:|")
    for server in servers:
        proc, port = project.start(server)
        try:
            f = measure(port, args.connections)
        finally:
            project.stop(proc)
        base = f["project"]
        print(f"| {server.name} | {base:,.0f} | {f['wstool bench']:,.0f} | "
              f"{f['wstool bench'] / base:.2f}x | {f['wstool bench (Python)']:,.0f} | "
              f"{f['wstool bench (Python)'] / base:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
