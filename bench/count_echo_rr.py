"""Instructions per request/response round trip of an echo server (issue 14).

Usage:  python bench/count_echo_rr.py [--rounds 20000] [--tree LABEL=DIR ...]
                                      [--loop asyncio] [--websocat] [--connections 1]

Wall-clock and even CPU-time figures swing by 2x on this shared 2-core machine;
instruction counts do not. Each server runs under ``valgrind --tool=callgrind``
(``--callgrind-out-file=/dev/null``) twice: once for a connection that does
nothing but the handshake, once for one that does ROUNDS round trips of a
32-byte masked text message (the next sent when the echo is back). The
difference over ROUNDS is the server's instructions per round trip -- the event
loop's read, the echo engine and the write together, start-up and handshake
cancelled out.

With ``--connections N`` (N > 1) the client opens N connections and, each
round, sends one message on every connection before reading the N echoes: the
server then finds several connections ready per event-loop iteration, as under
bench_echo_server.py's 50-connection load, and the figure is per message
(ROUNDS x N of them), the loop's per-iteration cost shared out.

Servers: this checkout's ``wstool serve-echo --ping-interval 0 --open-timeout 0
--max-size 0 --loop LOOP``, the same from each ``--tree`` checkout (run from DIR,
e.g. ``git archive BASE wstool | tar -x -C DIR``), and with ``--websocat``
``websocat -E -t ws-l:127.0.0.1:PORT mirror:`` (first on PATH).

Loopback only.
"""

from __future__ import annotations

import argparse
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_echo_server import (  # a sibling script, not a package
    PAYLOAD,
    free_port,
    handshake_request,
    masked_text_frame,
    wait_port,
)

REPO = Path(__file__).resolve().parent.parent
ECHO_LEN = 2 + len(PAYLOAD)


def _open(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(handshake_request(port))
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        if not chunk:
            raise RuntimeError("closed during the handshake")
        head += chunk
    assert head.startswith(b"HTTP/1.1 101"), head[:80]
    return sock


def client(port: int, rounds: int, connections: int = 1) -> None:
    socks = [_open(port) for _ in range(connections)]
    try:
        frame = masked_text_frame(PAYLOAD)
        for _ in range(rounds):
            for sock in socks:
                sock.sendall(frame)
            for sock in socks:
                got = 0
                while got < ECHO_LEN:
                    chunk = sock.recv(4096)
                    if not chunk:
                        raise RuntimeError("closed mid-run")
                    got += len(chunk)
    finally:
        for sock in socks:
            sock.close()


def instructions(argv: list[str], cwd: str | None, rounds: int, connections: int = 1) -> int:
    port = free_port()
    full = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
            *[a.replace("PORT", str(port)) for a in argv]]
    proc = subprocess.Popen(full, cwd=cwd, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        wait_port(port, proc, timeout_s=120)  # type: ignore[arg-type]
        time.sleep(0.5)
        client(port, rounds, connections)
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=120)
    found = re.findall(r"Collected : (\d+)", err)
    if not found:
        raise RuntimeError(f"no instruction count in valgrind's output: {err[-500:]}")
    return int(found[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20000)
    parser.add_argument("--loop", default="asyncio", choices=["asyncio", "uvloop"])
    parser.add_argument("--tree", action="append", default=[], metavar="LABEL=DIR")
    parser.add_argument("--websocat", action="store_true")
    parser.add_argument("--connections", type=int, default=1,
                        help="connections, one message in flight each (default 1)")
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        sys.exit("valgrind not found")
    wstool = [sys.executable, "-m", "wstool", "serve-echo", "--ping-interval", "0",
              "--open-timeout", "0", "--max-size", "0", "--loop", args.loop, "--port", "PORT"]
    servers: list[tuple[str, list[str], str | None]] = [("wstool (this)", wstool, str(REPO))]
    for tree in args.tree:
        label, path = tree.split("=", 1)
        servers.append((f"wstool {label}", wstool, path))
    if args.websocat:
        websocat = shutil.which("websocat")
        if websocat is None:
            sys.exit("websocat not found on PATH")
        servers.append(("websocat mirror",
                        [websocat, "-E", "-t", "ws-l:127.0.0.1:PORT", "mirror:"], None))
    n = args.connections
    print(f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; loop {args.loop}; "
          f"{args.rounds} round trips of a 32-byte text message, {n} connection(s)")
    print("| server | instructions, handshake only | with round trips | per round trip |")
    print("|---|---:|---:|---:|")
    for name, argv, cwd in servers:
        base = instructions(argv, cwd, 0, n)
        full = instructions(argv, cwd, args.rounds, n)
        per = (full - base) / (args.rounds * n)
        print(f"| {name} | {base:,} | {full:,} | {per:,.0f} |", flush=True)


if __name__ == "__main__":
    main()
