"""connect over HTTP/2 (RFC 8441) vs HTTP/1.1, same server, same run (issue 12).

Run: ``python bench/bench_http2.py [--runs N] [--lines N]``. Prints a Markdown table.

The server is Hypercorn (``bench/asgi_echo.py``, one process, h2c with prior
knowledge and HTTP/1.1 upgrades on one cleartext port; permessage-deflate off on
the client side with --no-compress so both ways do the same work). Each run starts
``wstool connect`` once per way, interleaved (h1, h2, h1, h2 ...), and reports
medians of:

* pipe: LINES lines of 32 bytes written to stdin at once and closed; wall time and the
  client's CPU time (user+sys, from wait4), and messages/s = lines / wall time;
* one-shot: ``echo hi | wstool connect -n 1``: wall time and client CPU.

Ratio = h2 / HTTP/1.1 throughput (pipe) or h2 / HTTP/1.1 time (one-shot). Figures only.

``--server serve-echo`` measures against ``wstool serve-echo --http2`` instead (one
process on cleartext: h2c prior knowledge and HTTP/1.1 upgrades on one port; with
``--tls`` a second one with a trustme certificate, ALPN h2 / http/1.1), the server's
CPU time per run read from /proc/PID/stat; ``--tls both`` runs cleartext and TLS
side by side in the same loop. ``--url ws://127.0.0.1:PORT/`` measures against a
server already running instead.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def tls_files(directory: Path) -> tuple[str, str, str]:
    """A trustme CA and a 127.0.0.1 certificate: (cafile, certfile, keyfile)."""
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    paths = [str(directory / name) for name in ("ca.pem", "cert.pem", "key.pem")]
    ca.cert_pem.write_to_path(paths[0])
    cert.cert_chain_pems[0].write_to_path(paths[1])
    cert.private_key_pem.write_to_path(paths[2])
    return paths[0], paths[1], paths[2]


def start_hypercorn(tls: tuple[str, str] | None = None) -> tuple[subprocess.Popen[bytes], int]:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    port = sock.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "hypercorn", "--bind", f"fd://{sock.fileno()}",
         "--log-level", "warning",
         *(["--certfile", tls[0], "--keyfile", tls[1]] if tls else []),
         "bench.asgi_echo:app"],
        # Hypercorn 0.18 logs a KeyError per h2 WebSocket the client ends with
        # END_STREAM after the closing handshake (RFC 8441 §5): its bug, not counted.
        cwd=ROOT, pass_fds=[sock.fileno()], stderr=subprocess.DEVNULL)
    sock.close()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:  # wait until it answers
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            time.sleep(0.1)
    return proc, port


CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int | None) -> float:
    """utime + stime of a running process (0 for none)."""
    if pid is None:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def start_serve_echo(tls: tuple[str, str] | None = None) -> tuple[subprocess.Popen[bytes], int]:
    """`wstool serve-echo --http2` on 127.0.0.1, a free port; keepalive pings off."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "wstool", "serve-echo", "--http2", "--port", "0",
         "--ping-interval", "0", "--no-compress",
         *(["--cert", tls[0], "--key", tls[1]] if tls else [])],
        cwd=ROOT, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    line = proc.stderr.readline().decode()
    match = re.search(r":(\d+)/", line)
    assert match, line
    proc.stderr.close()  # nothing else is written without -v
    return proc, int(match.group(1))


def _timed(args: list[str], data: bytes) -> tuple[float, float, int]:
    # Popen.communicate reaps the child itself: read its rusage with a wait4 of our own.
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "wstool", "connect", *args],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL)
    assert proc.stdin is not None and proc.stdout is not None
    chunks: list[bytes] = []
    stdout = proc.stdout
    reader = threading.Thread(target=lambda: chunks.append(stdout.read()))
    reader.start()
    proc.stdin.write(data)
    proc.stdin.close()
    _pid, _status, usage = os.wait4(proc.pid, 0)
    proc.returncode = 0
    wall = time.perf_counter() - start
    reader.join()
    return wall, usage.ru_utime + usage.ru_stime, len(b"".join(chunks))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--url", help="a running server that speaks both (e.g. "
                        "`wstool serve-echo --http2`) instead of Hypercorn; loopback only")
    parser.add_argument("--tls", nargs="?", const="only", choices=["only", "both"],
                        help="wss:// with a trustme certificate (ALPN h2 or http/1.1), as "
                        "browsers connect; `both`: cleartext and TLS in the same run")
    parser.add_argument("--server", choices=["hypercorn", "serve-echo"], default="hypercorn")
    opts = parser.parse_args()
    if opts.server == "serve-echo" and not opts.url:
        serve_echo(opts)
        return
    server = None
    tmp = tempfile.TemporaryDirectory()
    client_tls: list[str] = []
    if opts.url:
        url = opts.url
        host = url.split("://", 1)[-1].split("/", 1)[0].rsplit(":", 1)[0].strip("[]")
        if not (host.startswith("127.") or host in ("::1", "localhost")):
            parser.error("--url must be a loopback address (127.0.0.0/8, ::1, localhost)")
        server_name = url
    else:
        if opts.tls:
            cafile, certfile, keyfile = tls_files(Path(tmp.name))
            server, port = start_hypercorn((certfile, keyfile))
            url = f"wss://127.0.0.1:{port}/"
            client_tls = ["--cacert", cafile]
            server_name = "Hypercorn over TLS (ALPN h2 / http/1.1) on one port"
        else:
            server, port = start_hypercorn()
            url = f"ws://127.0.0.1:{port}/"
            server_name = "Hypercorn h2c + HTTP/1.1 on one port"
    lines = b"".join(b"%031d\n" % i for i in range(opts.lines))
    ways: dict[str, list[str]] = {"HTTP/1.1": client_tls,
                                  "HTTP/2": ["--http2=only", *client_tls]}
    pipe: dict[str, list[tuple[float, float]]] = {w: [] for w in ways}
    oneshot: dict[str, list[tuple[float, float]]] = {w: [] for w in ways}
    try:
        for _ in range(opts.runs):
            for way, extra in ways.items():
                wall, cpu, size = _timed([*extra, "--no-compress", url], lines)
                if size != len(lines):
                    print(f"warning: {way} pipe returned {size} of {len(lines)} bytes",
                          file=sys.stderr)
                pipe[way].append((wall, cpu))
                wall, cpu, size = _timed([*extra, "--no-compress", "-n", "1", url], b"hi\n")
                oneshot[way].append((wall, cpu))
    finally:
        if server is not None:
            server.terminate()
            server.wait(10)

    def med(values: list[tuple[float, float]], i: int) -> float:
        return statistics.median(v[i] for v in values)

    print(f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.node()}, "
          f"{os.cpu_count()} cores, Python {platform.python_version()}, "
          f"{opts.runs} runs interleaved, {server_name}\n")
    print("| way | pipe wall s | pipe msg/s | pipe client CPU s | one-shot wall ms | "
          "one-shot client CPU ms |")
    print("|---|---|---|---|---|---|")
    for way in ways:
        wall = med(pipe[way], 0)
        print(f"| {way} | {wall:.2f} | {opts.lines / wall:,.0f} | {med(pipe[way], 1):.2f} | "
              f"{med(oneshot[way], 0) * 1000:.0f} | {med(oneshot[way], 1) * 1000:.0f} |")
    h1, h2 = pipe["HTTP/1.1"], pipe["HTTP/2"]
    print(f"\nh2 / HTTP/1.1: pipe throughput {med(h1, 0) / med(h2, 0):.2f}x, "
          f"pipe client CPU {med(h2, 1) / med(h1, 1):.2f}x, one-shot wall "
          f"{med(oneshot['HTTP/2'], 0) / med(oneshot['HTTP/1.1'], 0):.2f}x")


def serve_echo(opts: argparse.Namespace) -> None:
    """The same measures against `wstool serve-echo --http2`, with its CPU time."""
    tmp = tempfile.TemporaryDirectory()
    servers: dict[str, tuple[subprocess.Popen[bytes], str, list[str]]] = {}
    if opts.tls != "only":
        proc, port = start_serve_echo()
        servers["ws"] = (proc, f"ws://127.0.0.1:{port}/", [])
    if opts.tls:
        cafile, certfile, keyfile = tls_files(Path(tmp.name))
        proc, port = start_serve_echo((certfile, keyfile))
        servers["wss"] = (proc, f"wss://127.0.0.1:{port}/", ["--cacert", cafile])
    ways: dict[str, tuple[int | None, str, list[str]]] = {}
    for scheme, (proc, url, tls_args) in servers.items():
        label = "h2c" if scheme == "ws" else "h2 (TLS)"
        ways[f"HTTP/1.1 {scheme}://"] = (proc.pid, url, tls_args)
        ways[f"HTTP/2 {label}"] = (proc.pid, url, ["--http2=only", *tls_args])
    lines = b"".join(b"%031d\n" % i for i in range(opts.lines))
    pipe: dict[str, list[tuple[float, float, float]]] = {w: [] for w in ways}
    oneshot: dict[str, list[tuple[float, float, float]]] = {w: [] for w in ways}
    try:
        for _ in range(opts.runs):
            for way, (pid, url, extra) in ways.items():
                before = cpu_seconds(pid)
                wall, cpu, size = _timed([*extra, "--no-compress", url], lines)
                server_cpu = cpu_seconds(pid) - before
                if size != len(lines):
                    print(f"warning: {way} pipe returned {size} of {len(lines)} bytes",
                          file=sys.stderr)
                pipe[way].append((wall, cpu, server_cpu))
                # (the server's CPU for one message is below /proc's 10 ms tick)
                wall, cpu, size = _timed([*extra, "--no-compress", "-n", "1", url], b"hi\n")
                oneshot[way].append((wall, cpu, 0.0))
    finally:
        for proc, _url, _tls in servers.values():
            proc.terminate()
            proc.wait(10)

    def med(values: list[tuple[float, float, float]], i: int) -> float:
        return statistics.median(v[i] for v in values)

    print(f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.node()}, "
          f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}, Python "
          f"{platform.python_version()}, {opts.runs} runs interleaved, {opts.lines} lines, "
          "wstool serve-echo --http2\n")
    print("| way | pipe wall s | pipe msg/s | pipe client CPU s | pipe server CPU s | "
          "one-shot wall ms | one-shot client CPU ms |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for way in ways:
        wall = med(pipe[way], 0)
        print(f"| {way} | {wall:.2f} | {opts.lines / wall:,.0f} | {med(pipe[way], 1):.2f} | "
              f"{med(pipe[way], 2):.2f} | {med(oneshot[way], 0) * 1000:.0f} | "
              f"{med(oneshot[way], 1) * 1000:.0f} |")
    print()
    for scheme in servers:
        h1_name = f"HTTP/1.1 {scheme}://"
        h2_name = next(w for w in ways if w.startswith("HTTP/2") and
                       (scheme == "ws") == ("h2c" in w))
        h1, h2 = pipe[h1_name], pipe[h2_name]
        print(f"{h2_name} / {h1_name}: pipe throughput {med(h1, 0) / med(h2, 0):.2f}x, "
              f"pipe client CPU {med(h2, 1) / med(h1, 1):.2f}x, pipe server CPU "
              f"{med(h2, 2) / max(med(h1, 2), 0.01):.2f}x, one-shot wall "
              f"{med(oneshot[h2_name], 0) / med(oneshot[h1_name], 0):.2f}x, one-shot client "
              f"CPU {med(oneshot[h2_name], 1) / med(oneshot[h1_name], 1):.2f}x")


if __name__ == "__main__":
    main()
