"""Issue 10, "Signals": Ctrl-C during a DNS lookup that never ends exits at once (130).

A lookup needs a resolver, and any resolver but a local one would send the query off
this machine. So the test runs inside a network namespace that has only loopback
(`unshare -n`) and its own mount namespace (`-m`) whose /etc/resolv.conf points at a
UDP "resolver" on 127.0.0.1:53 that swallows every query. Skipped where namespaces
cannot be made (not root, no unshare).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import scaled

SCRIPT = r"""
set -e
ip link set lo up
printf 'nameserver 127.0.0.1\noptions timeout:5 attempts:2\n' > "$WORK/resolv.conf"
mount --bind "$WORK/resolv.conf" /etc/resolv.conf
"$PYTHON" -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 53))
print("ready", flush=True)
while True:
    s.recvfrom(2048)
' > "$WORK/resolver.out" &
resolver=$!
while [ ! -s "$WORK/resolver.out" ]; do sleep 0.05; done
"$PYTHON" - <<'PY'
import os, signal, subprocess, sys, time
env = {**os.environ, "NO_COLOR": "1"}
proc = subprocess.Popen([os.environ["PYTHON"], "-m", "wstool", "connect", "-v",
                         "ws://lookup-never-answers.test:9/"],
                        stdin=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
deadline = time.monotonic() + 20
while time.monotonic() < deadline:  # wait until the lookup is under way
    with open("/proc/net/udp") as f:  # the resolver's socket, then the client's to it
        if sum("0100007F:0035" in line for line in f.readlines()[1:]) >= 2:
            break
    time.sleep(0.02)
time.sleep(0.2)
start = time.monotonic()
proc.send_signal(signal.SIGINT)
try:
    proc.wait(30)
finally:
    proc.kill()
print(f"status={proc.returncode} seconds={time.monotonic() - start:.2f}")
sys.stdout.write(proc.stderr.read().decode())
PY
kill $resolver
"""


def _namespaces_work() -> bool:
    if os.geteuid() != 0 or shutil.which("unshare") is None or shutil.which("ip") is None:
        return False
    probe = subprocess.run(["unshare", "-nm", "true"], capture_output=True, timeout=10)
    return probe.returncode == 0


@pytest.mark.slow
@pytest.mark.skipif(not _namespaces_work(),
                    reason="needs root and unshare -nm (a loopback-only network namespace)")
def test_ctrl_c_during_a_lookup_that_never_ends_exits_at_once(tmp_path: Path) -> None:
    proc = subprocess.run(
        ["unshare", "-nm", "sh", "-c", SCRIPT],
        env={**os.environ, "WORK": str(tmp_path), "PYTHON": sys.executable},
        capture_output=True, timeout=scaled(60),
    )
    out = proc.stdout.decode()
    assert proc.returncode == 0, (out, proc.stderr.decode())
    first, _, stderr = out.partition("\n")
    status, seconds = (part.split("=")[1] for part in first.split())
    assert int(status) == 130, out
    # The resolver's own timeouts would be 2 x 5 s: not waited for.
    assert float(seconds) < scaled(2), out
    assert "wstool: interrupted" in stderr
    assert "Traceback" not in stderr
