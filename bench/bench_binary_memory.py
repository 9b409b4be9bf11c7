"""Backpressure check at scale: a large `--binary` stream through an echo server.

Run: ``python bench/bench_binary_memory.py [--mib 1024] [--server serve-echo|lib]``.

Streams MIB mebibytes of pseudo-random bytes (generated on the fly, never held
in memory) into ``wstool connect -b URL``, reads everything it writes back,
and prints: bytes in and out, whether the SHA-256 digests match, the wall
time and throughput, and wstool's peak resident memory (VmHWM sampled from
/proc while it runs). Issue 2 asks for 1 GiB to come back byte-identical with
wstool under 100 MB resident. Figures only: nothing here asserts.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import random
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent


def tool(name: str) -> str:
    """The console script next to the Python running this script."""
    candidate = Path(sys.executable).with_name(name)
    return str(candidate) if candidate.exists() else name


def start_server(kind: str) -> tuple[subprocess.Popen[bytes], str]:
    if kind == "lib":
        proc = subprocess.Popen(
            [sys.executable, str(BENCH_DIR / "echo_server.py")],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        )
        assert proc.stdout is not None
        line = proc.stdout.readline().decode()
    else:
        proc = subprocess.Popen(
            [tool("wstool"), "serve-echo", "--port", "0", "--max-size", "0"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        assert proc.stderr is not None
        line = proc.stderr.readline().decode()
    match = re.search(r"(ws://\S+)", line)
    if not match:
        proc.kill()
        raise SystemExit(f"could not start the {kind} echo server: {line!r}")
    return proc, match.group(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mib", type=int, default=1024, help="stream size in MiB")
    parser.add_argument("--server", choices=["serve-echo", "lib"], default="serve-echo")
    parser.add_argument("--compress", action="store_true",
                        help="leave permessage-deflate on (default: --no-compress)")
    args = parser.parse_args()

    server, url = start_server(args.server)
    command = [tool("wstool"), "connect", "-b", url]
    if not args.compress:
        command.insert(3, "--no-compress")
    total = args.mib << 20
    sent_digest, received_digest = hashlib.sha256(), hashlib.sha256()
    received = 0
    peak_kib = 0
    started = time.perf_counter()
    proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    assert proc.stdin is not None and proc.stdout is not None

    def feed() -> None:
        assert proc.stdin is not None
        rng = random.Random(1)
        left = total
        while left:
            block = rng.randbytes(min(1 << 20, left))
            sent_digest.update(block)
            proc.stdin.write(block)
            left -= len(block)
        proc.stdin.close()

    def sample() -> None:
        nonlocal peak_kib
        status = Path(f"/proc/{proc.pid}/status")
        while proc.poll() is None:
            with contextlib.suppress(OSError, ValueError, IndexError):
                peak_kib = max(peak_kib, int(status.read_text().split("VmHWM:")[1].split()[0]))
            time.sleep(0.05)

    threads = [threading.Thread(target=feed), threading.Thread(target=sample)]
    for thread in threads:
        thread.start()
    while chunk := proc.stdout.read(1 << 20):
        received += len(chunk)
        received_digest.update(chunk)
    status = proc.wait()
    elapsed = time.perf_counter() - started
    for thread in threads:
        thread.join()
    server.terminate()
    server.wait(10)
    assert proc.stderr is not None
    print(f"server: {args.server}; wstool: {' '.join(command[1:])}")
    print(f"exit status {status}; stderr: {proc.stderr.read().decode().strip()!r}")
    print(f"sent {total:,} B, received {received:,} B, "
          f"identical: {sent_digest.digest() == received_digest.digest()}")
    print(f"{elapsed:.1f} s, {total / elapsed / 1e6:.0f} MB/s each way; "
          f"wstool peak RSS {peak_kib / 1024:.1f} MiB")
    print(f"machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}")


if __name__ == "__main__":
    main()
