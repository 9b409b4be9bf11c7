"""Round trips per Locust CPU-second: wstool.locust's WebSocketUser beside a Locust
user over websocket-client (the synchronous client community Locust WebSocket users
are built on; Locust installs it), against one ``wstool serve-echo``.

    python bench/bench_locust.py [--users 10] [--seconds 5] [--runs 3]

Each run is one headless Locust process (no workers) whose users send "hello" and wait
for the echo, with no wait between tasks; its CPU time (user+sys, from wait4) and its
request count give round trips per CPU-second, the generator's own efficiency on a
shared machine. The two users run interleaved, medians printed. Everything runs in a
loopback-only network namespace (``unshare -n``) when one can be made.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

USERS = {
    "wstool.locust": """
from locust import constant, task
from wstool.locust import WebSocketUser

class Echo(WebSocketUser):
    wait_time = constant(0)

    @task
    def echo(self):
        self.request("hello")
""",
    "websocket-client": """
import time
import websocket
from locust import User, constant, task

class Echo(User):
    wait_time = constant(0)

    def on_start(self):
        self.ws = websocket.create_connection(self.host)

    @task
    def echo(self):
        start = time.perf_counter()
        self.ws.send("hello")
        reply = self.ws.recv()
        self.environment.events.request.fire(
            request_type="WS", name="text", response_time=(time.perf_counter() - start) * 1000,
            response_length=len(reply), exception=None, context={})

    def on_stop(self):
        self.ws.close()
""",
}


def _prefix() -> list[str]:
    if shutil.which("unshare") and shutil.which("ip"):
        probe = subprocess.run(["unshare", "--net", "--", "ip", "link", "set", "lo", "up"],
                               capture_output=True)
        if probe.returncode == 0:
            return ["unshare", "--net", "--", "sh", "-c", 'ip link set lo up && exec "$@"', "sh"]
    print("note: no network namespace; running on the host's loopback", file=sys.stderr)
    return []


SCRIPT = """
import json, os, re, subprocess, sys, time
server = subprocess.Popen([sys.executable, "-m", "wstool", "serve-echo", "--port", "0"],
                          stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)
line = server.stderr.readline().decode()
url = re.search(r"listening on (\\S+)", line).group(1)
locust = subprocess.Popen([sys.executable, "-m", "locust", "-f", sys.argv[1], "--headless",
                           "--host", url, "-u", sys.argv[2], "-r", sys.argv[2], "-t",
                           sys.argv[3] + "s", "--stop-timeout", "5", "--json-file", sys.argv[4]],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
_, status, usage = os.wait4(locust.pid, 0)
server.terminate()
summary = server.stderr.read().decode()
print(json.dumps({"cpu_s": usage.ru_utime + usage.ru_stime, "server": summary[-300:]}))
"""


def run_once(prefix: list[str], locustfile: Path, users: int, seconds: int,
             tmp: Path) -> tuple[int, float, float]:
    stats = tmp / "stats"
    out = subprocess.run([*prefix, sys.executable, "-c", SCRIPT, str(locustfile), str(users),
                          str(seconds), str(stats)],
                         capture_output=True, text=True, check=True, cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    result = json.loads(out.stdout.strip().splitlines()[-1])
    entries = json.loads(Path(f"{stats}.json").read_text())
    text = next(e for e in entries if e["name"] == "text")
    match = re.search(r"messages (\d+) in", result["server"])
    assert match and int(match.group(1)) == text["num_requests"], result["server"]
    p50 = text["response_times"]
    total = sum(int(v) for v in p50.values())
    median_ms, seen = 0.0, 0
    for rt in sorted(p50, key=float):
        seen += int(p50[rt])
        if seen * 2 >= total:
            median_ms = float(rt)
            break
    return text["num_requests"], result["cpu_s"], median_ms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=10)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    prefix = _prefix()
    results: dict[str, list[tuple[int, float, float]]] = {name: [] for name in USERS}
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        files = {}
        for i, (name, source) in enumerate(USERS.items()):
            files[name] = tmp / f"user{i}.py"
            files[name].write_text(source)
        for _ in range(args.runs):
            for name in USERS:
                start = time.monotonic()
                results[name].append(run_once(prefix, files[name], args.users, args.seconds,
                                              tmp))
                print(f"{name}: {results[name][-1]} ({time.monotonic() - start:.1f} s)",
                      file=sys.stderr)
    print(f"| Locust user ({args.users} users, {args.seconds} s, median of {args.runs}) "
          "| round trips | Locust CPU s | round trips/CPU-s | median RTT ms |")
    print("|---|---|---|---|---|")
    for name, runs in results.items():
        rate = statistics.median(n / cpu for n, cpu, _ in runs)
        print(f"| {name} | {statistics.median(n for n, _, _ in runs):,.0f} "
              f"| {statistics.median(c for _, c, _ in runs):.2f} | {rate:,.0f} "
              f"| {statistics.median(m for _, _, m in runs):g} |")


if __name__ == "__main__":
    main()
