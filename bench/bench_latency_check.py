"""wstool bench's round-trip latency vs an independent measurement (issue 15).

Usage:  python bench/bench_latency_check.py [--messages 3000] [--rounds 3]

Against one wstool serve-echo (uvloop when installed), interleaved round by round:

* ``wstool bench -c 1 --window 1 --messages N --json``: its p50/p90/p99;
* an independent client: a blocking socket (no event loop, no thread, no
  parser), the handshake by hand, then one masked 32-byte text frame out and its
  echo in, timed with perf_counter: the least a client can add.

Both measure the same quantity (one connection, request/response); the table
shows both and the difference. Loopback only.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

import bench_echo_server as project  # noqa: E402

PAYLOAD = "x" * 32


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)

    def at(p: float) -> float:
        return ordered[max(0, int(-(-len(ordered) * p // 100)) - 1)]

    return {"p50": at(50), "p90": at(90), "p99": at(99)}


def independent(port: int, messages: int) -> dict[str, float]:
    """A blocking socket, no event loop, no thread: the handshake by hand, then one
    pre-built masked frame out and its 34-byte echo in, timed with perf_counter.
    The least any client can add, so a lower bound for wstool bench's figures."""
    frame = project.masked_text_frame(PAYLOAD.encode())
    samples = []
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(project.handshake_request(port))
        head = b""
        while b"\r\n\r\n" not in head:
            head += sock.recv(4096)
        assert head.startswith(b"HTTP/1.1 101"), head[:80]
        echo_len = 2 + len(PAYLOAD)
        for _ in range(messages):
            start = time.perf_counter()
            sock.sendall(frame)
            got = 0
            while got < echo_len:
                got += len(sock.recv(echo_len - got))
            samples.append(time.perf_counter() - start)
    return percentiles(samples)


def wstool_bench(port: int, messages: int) -> dict[str, float]:
    argv = [sys.executable, "-m", "wstool", "bench", "--json", "--no-compress",
            "--ping-interval", "0", "-c", "1", "--messages", str(messages),
            f"ws://127.0.0.1:{port}/"]
    result = subprocess.run(argv, capture_output=True, timeout=300, check=True)
    latency = json.loads(result.stdout)["latency"]
    return {k: latency[k] for k in ("p50", "p90", "p99")}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    found = project.servers(["serve-echo"])
    server = next((s for s in found if "uvloop" in s.name), found[0])
    runs: dict[str, list[dict[str, float]]] = {"wstool bench": [], "independent": []}
    proc, port = project.start(server)
    try:
        for _ in range(args.rounds):
            runs["wstool bench"].append(wstool_bench(port, args.messages))
            runs["independent"].append(independent(port, args.messages))
    finally:
        project.stop(proc)
    print(f"server: {server.name}; {args.messages} round trips x {args.rounds} rounds, "
          "medians of the rounds (ms)")
    print("| client | p50 | p90 | p99 |")
    print("|---|---:|---:|---:|")
    medians = {}
    for name, results in runs.items():
        medians[name] = {k: statistics.median(r[k] for r in results) * 1e3
                         for k in ("p50", "p90", "p99")}
        m = medians[name]
        print(f"| {name} | {m['p50']:.3f} | {m['p90']:.3f} | {m['p99']:.3f} |")
    diff = {k: medians["wstool bench"][k] - medians["independent"][k]
            for k in ("p50", "p90", "p99")}
    print(f"| difference | {diff['p50']:+.3f} | {diff['p90']:+.3f} | {diff['p99']:+.3f} |")


if __name__ == "__main__":
    main()
