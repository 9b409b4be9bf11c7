"""Where wstool's start-up goes: `python -X importtime`, best of N runs, biggest first.

Run: ``python bench/profile_startup.py`` (``--version`` path) or
``python bench/profile_startup.py --connect ws://127.0.0.1:PORT/`` (one-shot path:
``echo hi | wstool connect -n 1 URL``). Prints each module's cumulative and own import
time in ms, the minimum over --runs runs (the least disturbed by other load).
"""

from __future__ import annotations

import argparse
import collections
import re
import subprocess
import sys

_LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--connect", metavar="URL", help="profile a one-shot round trip")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args()

    if args.connect:
        argv = [sys.executable, "-X", "importtime", "-m", "wstool", "connect", "-n", "1",
                args.connect]
        stdin = b"hi\n"
    else:
        argv = [sys.executable, "-X", "importtime", "-m", "wstool", "--version"]
        stdin = b""
    own: dict[str, list[int]] = collections.defaultdict(list)
    cumulative: dict[str, list[int]] = collections.defaultdict(list)
    for _ in range(args.runs):
        proc = subprocess.run(argv, input=stdin, capture_output=True, check=False)
        for line in proc.stderr.decode(errors="replace").splitlines():
            match = _LINE.match(line)
            if match:
                own[match[4]].append(int(match[1]))
                cumulative[match[4]].append(int(match[2]))
    rows = sorted(((min(cumulative[m]), min(own[m]), m) for m in cumulative), reverse=True)
    print(f"{'cumulative ms':>13} {'own ms':>7}  module   ({' '.join(argv[3:])})")
    for cum_us, own_us, module in rows[: args.top]:
        print(f"{cum_us / 1000:13.1f} {own_us / 1000:7.1f}  {module}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
