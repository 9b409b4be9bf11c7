"""wstool.locust (issue 15): Locust users over wstool's client session.

A real Locust — headless master and two worker processes — runs
examples/locustfile.py against a real ``wstool serve-echo``; what Locust counts
(its --csv statistics, aggregated over the workers) must equal what the server saw.

Loopback only, enforced: every process of these tests runs in a network namespace
of its own (``unshare -n``, joined with ``nsenter``) where only ``lo`` exists, so
neither Locust nor anything it imports can reach another machine (Locust 2.x has no
update check or telemetry of its own; OpenTelemetry is off unless --otel). Where a
namespace cannot be made (not root, no unshare), the tests skip, saying why.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import scaled
from tests.servers import ServeEcho

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
LOCUSTFILE = ROOT / "examples" / "locustfile.py"
MASTER_PORT = 5557  # Locust's default; the namespace is empty, so it is free


def _need_locust() -> None:
    # Looked up, not imported: importing locust monkey-patches this test process.
    if importlib.util.find_spec("locust") is None:
        pytest.skip("locust not installed: pip install -e '.[test]' (or 'wstool[locust]')")


@pytest.fixture
def netns() -> Iterator[tuple[str, ...]]:
    """A loopback-only network namespace; yields the command prefix that runs in it."""
    _need_locust()
    if not (shutil.which("unshare") and shutil.which("nsenter") and shutil.which("ip")):
        pytest.skip("no loopback-only network namespace: unshare, nsenter or ip missing")
    holder = subprocess.Popen(
        ["unshare", "--net", "--", "sh", "-c", "ip link set lo up && echo up && exec sleep 600"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    try:
        assert holder.stdout is not None
        if holder.stdout.readline().strip() != b"up":
            holder.wait(scaled(10))
            assert holder.stderr is not None
            pytest.skip("no loopback-only network namespace: unshare --net failed: "
                        f"{holder.stderr.read().decode(errors='replace').strip()[-200:]}")
        yield ("nsenter", f"--net=/proc/{holder.pid}/ns/net", "--")
    finally:
        if holder.poll() is None:
            holder.kill()
        holder.wait(scaled(10))


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOCUST_", "OTEL_"))}
    env.update(NO_COLOR="1", HOME=str(tmp_path), OTEL_SDK_DISABLED="true",
               PYTHONPATH=str(ROOT))
    return env


def _locust(prefix: tuple[str, ...], *args: str) -> list[str]:
    return [*prefix, sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless",
            "--only-summary", *args]


def _stats(json_prefix: Path) -> dict[str, dict[str, Any]]:
    """Locust's final statistics (--json-file PREFIX, written at exit, after the
    workers' last reports; the --csv files are rewritten only once a second): the
    entries of request type WS by name."""
    entries = json.loads(Path(f"{json_prefix}.json").read_text())
    return {entry["name"]: entry for entry in entries if entry["method"] == "WS"}


def _summary(server: ServeEcho) -> tuple[int, int, int]:
    """serve-echo's summary line at exit: connections, messages in, messages out."""
    line = server.wait_for("summary: ")
    match = re.search(r"summary: (\d+) connections?; messages (\d+) in, (\d+) out", line)
    assert match, line
    connections, messages_in, messages_out = map(int, match.groups())
    return connections, messages_in, messages_out


def test_master_and_two_workers_count_what_the_server_saw(
        netns: tuple[str, ...], tmp_path: Path) -> None:
    server = ServeEcho(prefix=netns)
    env = _env(tmp_path)
    json_prefix = tmp_path / "stats"
    try:
        master = subprocess.Popen(
            _locust(netns, "--master", "--master-bind-host", "127.0.0.1",
                    "--master-bind-port", str(MASTER_PORT), "--expect-workers", "2",
                    "--host", server.url, "-u", "6", "-r", "6", "-t", "3s",
                    "--stop-timeout", "10", "--json-file", str(json_prefix)),
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        workers = [
            subprocess.Popen(
                _locust(netns, "--worker", "--master-host", "127.0.0.1",
                        "--master-port", str(MASTER_PORT)),
                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                stdin=subprocess.DEVNULL)
            for _ in range(2)
        ]
        try:
            _out, err = master.communicate(timeout=scaled(90))
            worker_errs = [w.communicate(timeout=scaled(30))[1] for w in workers]
        finally:
            for proc in (master, *workers):
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
        master_log = err.decode(errors="replace")
        assert master.returncode == 0, master_log
        for worker_err in worker_errs:
            assert b"Traceback" not in worker_err, worker_err.decode(errors="replace")
        assert "Traceback" not in master_log, master_log
        assert server.stop() == 0
        connections, messages_in, messages_out = _summary(server)
    finally:
        server.close()

    stats = _stats(json_prefix)
    assert set(stats) == {"connect", "text", "subscribe"}, stats
    assert all(entry["num_failures"] == 0 for entry in stats.values()), stats
    # Every user connected once (on_start), on one of the two workers.
    assert stats["connect"]["num_requests"] == connections == 6
    round_trips = stats["text"]["num_requests"] + stats["subscribe"]["num_requests"]
    assert round_trips > 0
    # Each round trip is one message to the server and its echo; none lost, none
    # counted twice, over both workers (the master's aggregate).
    assert round_trips == messages_in == messages_out
    assert stats["text"]["total_content_length"] == len("hello") * stats["text"]["num_requests"]


def test_unreachable_url_counts_failures_without_tracebacks(
        netns: tuple[str, ...], tmp_path: Path) -> None:
    result = subprocess.run(
        _locust(netns, "--host", "ws://127.0.0.1:9/", "-u", "2", "-r", "2", "-t", "1s",
                "--stop-timeout", "2"),
        env=_env(tmp_path), capture_output=True, timeout=scaled(60), stdin=subprocess.DEVNULL)
    # Locust's log and its final tables (on stderr or stdout, by version).
    report = (result.stderr + result.stdout).decode(errors="replace")
    assert result.returncode == 1, report  # Locust's exit status when requests failed
    assert "Traceback" not in report, report
    # The final table: connect attempts, all failed; no round trip without a connection.
    rows = re.findall(r"^WS +(\S+) +(\d+) +(\d+)\(", report, re.MULTILINE)
    assert {name for name, _, _ in rows} == {"connect"}, report
    attempts, failures = (int(n) for n in rows[0][1:])
    assert attempts == failures >= 2, report
    # The error report: one cause, counted, not a line per failure.
    errors = re.findall(r"^(\d+) +WS connect: (.*?)\s*$", report, re.MULTILINE)
    assert len(errors) == 1, report
    assert int(errors[0][0]) == failures
    assert "connection refused by ws://127.0.0.1:9/" in errors[0][1]


SLOW_LOCUSTFILE = """
from locust import constant, task
from wstool.locust import WebSocketUser

class Impatient(WebSocketUser):
    reply_timeout_s = 0.2
    wait_time = constant(0)

    @task
    def echo(self):
        self.request("late")
"""


def test_a_reply_too_late_fails_and_the_next_request_reconnects(
        netns: tuple[str, ...], tmp_path: Path) -> None:
    """serve-echo --delay 1 answers after the 0.2 s reply timeout: each request is one
    failure, and the late echo must not answer the next one (a new connection)."""
    locustfile = tmp_path / "impatient.py"
    locustfile.write_text(SLOW_LOCUSTFILE)
    server = ServeEcho("--delay", "1", prefix=netns)
    json_prefix = tmp_path / "stats"
    try:
        # -t counts from Locust's start, not from the users': under load (5-9 on this
        # 2-core machine) spawning took the whole of a 2 s run and no request was made.
        command = _locust(netns, "--host", server.url, "-u", "2", "-r", "2", "-t", "4s",
                          "--stop-timeout", "5", "--json-file", str(json_prefix))
        command[command.index(str(LOCUSTFILE))] = str(locustfile)
        result = subprocess.run(command, env=_env(tmp_path), capture_output=True,
                                timeout=scaled(60), stdin=subprocess.DEVNULL)
        report = (result.stderr + result.stdout).decode(errors="replace")
        assert result.returncode == 1, report
        assert "Traceback" not in report, report
        assert server.stop() == 0
        connections, messages_in, _out = _summary(server)
    finally:
        server.close()
    stats = _stats(json_prefix)
    text, connect = stats["text"], stats["connect"]
    assert text["num_failures"] == text["num_requests"] >= 4, stats
    assert connect["num_failures"] == 0, stats
    # One connection per request (on_start's, then one after each failure), and
    # every request reached the server.
    assert connect["num_requests"] == text["num_requests"] == connections == messages_in


CONFIG_CHECK = """
from wstool.errors import UsageError
from wstool.locust import connect_config

cfg = connect_config("user:pw@127.0.0.1:9001/chat", headers=["Host: svc.test", "X-A: 1"],
                     subprotocols=["chat"], proxy="", open_timeout_s=0, max_size_bytes=0)
print(cfg.target.url, cfg.auth, cfg.host_header, cfg.headers, cfg.subprotocols,
      repr(cfg.proxy), cfg.open_timeout_s, cfg.max_size_bytes)
for bad in ({"url": "9100 x"}, {"url": "ws://h/", "key": "k.pem"},
            {"url": "ws://h/", "headers": ["Upgrade: x"]}):
    try:
        connect_config(**bad)
    except UsageError as exc:
        print("error:", exc)
"""


def test_connect_config_takes_the_connect_flags_with_their_rules(tmp_path: Path) -> None:
    """connect_config() parses as ``wstool connect`` does (in a process of its own:
    importing locust monkey-patches the standard library)."""
    _need_locust()
    result = subprocess.run([sys.executable, "-c", CONFIG_CHECK], env=_env(tmp_path),
                            capture_output=True, text=True, timeout=scaled(60))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "ws://127.0.0.1:9001/chat ('user', 'pw') svc.test (('X-A', '1'),) ('chat',) '' "
        "None None",
        "error: invalid URL '9100 x': it contains a space or a control character "
        "(percent-encode it, e.g. %20)",
        "error: --key needs --cert (the client certificate it belongs to)",
        "error: -H 'Upgrade': the WebSocket handshake sets Upgrade itself",
    ]


TLS_LOCUSTFILE = """
from locust import constant, task
from wstool.locust import WebSocketUser

class Binary(WebSocketUser):
    connect_options = {"insecure": True}  # serve-echo --self-signed
    wait_time = constant(0.01)

    @task
    def echo(self):
        assert self.request(b"\\x00\\xffbin") == b"\\x00\\xffbin"
"""


def test_wss_by_name_over_forked_processes(netns: tuple[str, ...], tmp_path: Path) -> None:
    """What gevent's monkey-patching touches and asyncio uses: ssl (wss://), the name
    lookup (localhost: the session's resolver thread is a greenlet here) and
    Locust's --processes (forked after import: each child makes its own loop)."""
    locustfile = tmp_path / "tls.py"
    locustfile.write_text(TLS_LOCUSTFILE)
    server = ServeEcho("--self-signed", prefix=netns)
    json_prefix = tmp_path / "stats"
    try:
        url = server.url.replace("127.0.0.1", "localhost")
        assert url.startswith("wss://localhost:"), url
        command = _locust(netns, "--host", url, "-u", "4", "-r", "4", "-t", "2s",
                          "--processes", "2", "--stop-timeout", "5",
                          "--json-file", str(json_prefix))
        command[command.index(str(LOCUSTFILE))] = str(locustfile)
        result = subprocess.run(command, env=_env(tmp_path), capture_output=True,
                                timeout=scaled(60), stdin=subprocess.DEVNULL)
        report = (result.stderr + result.stdout).decode(errors="replace")
        assert result.returncode == 0, report
        assert "Traceback" not in report, report
        assert server.stop() == 0
        connections, messages_in, messages_out = _summary(server)
    finally:
        server.close()
    stats = _stats(json_prefix)
    assert set(stats) == {"connect", "binary"}, stats
    assert all(entry["num_failures"] == 0 for entry in stats.values()), stats
    assert stats["connect"]["num_requests"] == connections == 4
    assert stats["binary"]["num_requests"] == messages_in == messages_out > 0
