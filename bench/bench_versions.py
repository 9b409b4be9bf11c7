"""Two installs of wstool side by side: did a change make the client slower?

Run: ``python bench/bench_versions.py OLD/bin/wstool NEW/bin/wstool`` (each a ``wstool``
console script, e.g. from ``python3 -m venv /tmp/old && /tmp/old/bin/pip install
git+file://...@COMMIT`` or ``pip install .`` of a checkout). Prints a Markdown table.

Measured, runs interleaved (A, B, A, B, ...) so that a burst of other load slows both
alike, against one echo server (bench/echo_server.py: the websockets library's, no
compression) started by this script:

1. start-up: wall time of ``wstool --version`` (median of --runs);
2. one-shot: ``echo hi | wstool connect -n 1 URL`` (median of --runs; replies counted);
3. pipe: 100 000 lines of 32 bytes piped in at once, messages/s from process start to
   exit (median of --pipe-runs; every run must get every line back, in order).

The ratio column is B/A of the medians (below 1: B is faster for times, above 1 for
rates). Figures only: nothing here asserts speed. bench/README.md says where its
results are written down.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent


def _timed(argv: list[str], stdin: bytes) -> tuple[float, bytes]:
    start = time.perf_counter()
    proc = subprocess.run(argv, input=stdin, capture_output=True, timeout=300)
    return time.perf_counter() - start, proc.stdout


def _median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a", help="the baseline wstool console script")
    parser.add_argument("b", help="the wstool console script to compare")
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--pipe-runs", type=int, default=7)
    parser.add_argument("--lines", type=int, default=100_000)
    args = parser.parse_args()
    tools = {"A": args.a, "B": args.b}

    server = subprocess.Popen([sys.executable, str(BENCH_DIR / "echo_server.py")],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert server.stdout is not None
    url = server.stdout.readline().decode().strip()
    env_note = f"load average {os.getloadavg()[0]:.1f} at the start"
    lines = b"".join(b"%031d\n" % i for i in range(args.lines))
    startup: dict[str, list[float]] = {"A": [], "B": []}
    oneshot: dict[str, list[float]] = {"A": [], "B": []}
    replies = {"A": 0, "B": 0}
    rates: dict[str, list[float]] = {"A": [], "B": []}
    lost = {"A": 0, "B": 0}
    try:
        for _ in range(args.runs):
            for key, tool in tools.items():
                startup[key].append(_timed([tool, "--version"], b"")[0])
                seconds, out = _timed([tool, "connect", "-n", "1", url], b"hi\n")
                oneshot[key].append(seconds)
                replies[key] += out == b"hi\n"
        for _ in range(args.pipe_runs):
            for key, tool in tools.items():
                seconds, out = _timed([tool, "connect", url], lines)
                if out != lines:
                    lost[key] += 1
                rates[key].append(args.lines / seconds)
    finally:
        server.stdin.close()  # type: ignore[union-attr]
        server.wait(10)

    def row(name: str, a: float, b: float, unit: str, note: str = "") -> str:
        return f"| {name} | {a:,.1f} {unit} | {b:,.1f} {unit} | {b / a:.3f} | {note} |"

    print(f"A = `{args.a}`, B = `{args.b}`; echo server {url}; {env_note}\n")
    print("| measure | A | B | B/A | notes |\n|---|---:|---:|---:|---|")
    print(row("`--version`, median", _median_ms(startup["A"]), _median_ms(startup["B"]), "ms"))
    print(row("one-shot `echo hi \\| wstool connect -n 1 URL`, median",
              _median_ms(oneshot["A"]), _median_ms(oneshot["B"]), "ms",
              f"replies {replies['A']}/{args.runs} and {replies['B']}/{args.runs}"))
    print(row(f"pipe, {args.lines} lines of 32 B, median msg/s",
              statistics.median(rates["A"]), statistics.median(rates["B"]), "msg/s",
              f"runs with a line missing or out of order: {lost['A']} and {lost['B']}"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
