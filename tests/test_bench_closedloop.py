"""wstool bench's echo-mode receive path: the C core (wstool/bench/_closedloop.c) and
its pure-Python twin leave the same state after every chunk.

The two receivers are fed the same chunks (echo runs cut anywhere, corrupt bytes),
with the same batches in flight, --refill, pool and send limits, library state and
a transport that may fail; their collaborators (the run's counters, the load, the
transport) are recording stand-ins, the same for both, so every call either path
makes is compared, in order. End to end, against real servers, both paths run the
bench tests that count what serve-echo saw (tests/test_bench.py, ``receiver``).
"""

from __future__ import annotations

import asyncio
import shutil
import sysconfig
import time
from collections import deque
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.protocol import State

from wstool.bench import generator
from wstool.bench.generator import _OPEN, _PyReceiver, _Receiver, _RunSharedPy

try:  # directly: WSTOOL_PURE_PYTHON only stops generator.py from using it
    from wstool.bench import _closedloop as C
except ImportError:
    C = None  # type: ignore[assignment]


def test_the_extension_is_built_where_a_compiler_is() -> None:
    """setup.py builds it optionally: where a C compiler is present (this CI), the
    package must have it, or the bench figures in bench/README.md are not this run's."""
    compiler = (sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(compiler) is None:
        pytest.skip(f"no C compiler ({compiler}): the pure-Python path is the one installed")
    assert C is not None, "wstool.bench._closedloop was not built (see setup.py)"
    if generator._closedloop is not None:  # (not under WSTOOL_PURE_PYTHON)
        receiver: Any = generator._FastReceiver
        assert receiver.data_received is C.ReceiverCore.data_received


class Recorder:
    """The run, the load and the transport of one receiver: counters and calls."""

    def __init__(self, fail_write_at: int | None) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.fail_write_at = fail_write_at
        self.writes = 0
        # the run's counters (sending, round_trips and the latency counts: shared)
        self.shared: Any = None
        self.sent = self.bytes_sent = 0
        self.received = self.bytes_received = self.unmatched = 0

    # the transport
    def write(self, data: bytes) -> None:
        self.writes += 1
        if self.writes == self.fail_write_at:
            raise ConnectionResetError("the transport is gone")
        self.calls.append(("write", bytes(data)))


class Load:
    def __init__(self, calls: list[tuple[Any, ...]]) -> None:
        self.calls = calls
        self.owed = 0
        self.in_flight_echoes = 0

    def received(self, n: int, nbytes: int) -> None:
        self.calls.append(("load.received", n, nbytes))

    def replace(self, n: int, now: float) -> None:
        self.calls.append(("load.replace", n, now))

    def send(self, n: int, now: float) -> None:
        self.calls.append(("load.send", n, now))


class Protocol:
    def __init__(self, writes: bool, state: State) -> None:
        self.writes: list[bytes] = [b"queued"] if writes else []
        self._state = state


def _recording(base: Any) -> Any:
    """BASE with _parse and _write_failed recorded (their real work needs a session)."""

    def _parse(self: Any, data: bytes) -> None:
        self.run.calls.append(("parse", bytes(data), self.buf))
        self.buf = b""

    def _write_failed(self: Any, n: int, exc: Exception) -> None:
        self.run.calls.append(("write_failed", n, type(exc).__name__))
        self._received_only(n)

    return type("Recording", (base,), {"__slots__": (), "_parse": _parse,
                                       "_write_failed": _write_failed})


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        self.now += 0.000_123_4
        return self.now


def _header(size: int, binary: bool) -> bytes:
    first = bytes((0x82 if binary else 0x81,))
    if size < 126:
        return first + bytes((size,))
    return first + bytes((126,)) + size.to_bytes(2, "big")


@st.composite
def scenarios(draw: st.DrawFn) -> dict[str, Any]:
    size = draw(st.sampled_from([1, 5, 32, 125, 126, 300]))
    binary = draw(st.booleans())
    echo = _header(size, binary) + bytes((i * 7) % 256 for i in range(size))
    pool = draw(st.integers(1, 6))
    frame_len = len(_header(size, binary)) + 4 + size  # as a masked frame's
    frames = [bytes(((k + j) % 256) for j in range(frame_len)) for k in range(pool)]
    max_send = draw(st.integers(1, 8))
    stream = echo * draw(st.integers(0, 12))
    # Cut the stream of echoes anywhere; now and then a corrupt or foreign chunk.
    cuts = sorted(draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    chunks = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    for _ in range(draw(st.integers(0, 2))):
        at = draw(st.integers(0, len(chunks)))
        chunks.insert(at, draw(st.sampled_from([b"\x88\x02\x03\xe8", b"\x89\x00",
                                                echo[:-1] + b"!", b"x" * 3])))
    return {
        "echo": echo, "echo_run": echo * 40, "payload": size, "frames": frames,
        "frames_run": b"".join(frames * (-(-(pool + max_send) // pool))),
        "frame_len": frame_len, "pool": pool, "max_send": max_send,
        "refill": draw(st.sampled_from([0, 1, 1, 2, 3, 5])),
        "closed_loop": draw(st.sampled_from([True, True, True, False])),
        "sending": draw(st.sampled_from([True, True, True, False])),
        "writes": draw(st.sampled_from([False, False, False, True])),
        "state": draw(st.sampled_from([_OPEN, _OPEN, _OPEN, State.CLOSING])),
        "in_flight": draw(st.lists(st.tuples(st.floats(90.0, 99.99), st.integers(1, 5)),
                                   max_size=4)),
        "owed": draw(st.integers(0, 4)),
        "frame_index": draw(st.integers(0, pool - 1)),
        "fail_write_at": draw(st.sampled_from([None, None, 1, 2])),
        "chunks": chunks,
    }


def _receiver(base: Any, shared: Any, sc: dict[str, Any]) -> Any:
    rec = Recorder(sc["fail_write_at"])
    rec.shared = shared
    shared.sending = sc["sending"]
    shared.round_trips = 0
    shared.pending = {}
    load = Load(rec.calls)
    load.owed = sc["owed"] if sc["refill"] > 1 else 0
    cls = _recording(base)
    r = cls.__new__(cls)
    r.buf = b""
    r.echo_run = sc["echo_run"]
    r.echo_len = len(sc["echo"])
    r.echo_payload = sc["payload"]
    r.closed_loop = sc["closed_loop"]
    r.refill = sc["refill"]
    r.max_send = sc["max_send"]
    r.pool = sc["pool"]
    r.frame_len = sc["frame_len"]
    r.frames = sc["frames"]
    r.frames_run = sc["frames_run"]
    r.load = load
    r.run = rec
    r.protocol = Protocol(sc["writes"], sc["state"])
    r.conn = None
    r.sent_ts = deque([t, c] for t, c in sc["in_flight"])
    r.shared = shared
    r.frame_index = sc["frame_index"]
    r.set_transport(rec)
    return r


def _c_receiver() -> Any:
    """generator.py's C receiver class, made here too (WSTOOL_PURE_PYTHON skips it)."""
    assert C is not None

    class CReceiver(_Receiver, C.ReceiverCore, asyncio.Protocol):
        __slots__ = ("echo_header", "max_size")

    return CReceiver


def _state(r: Any) -> dict[str, Any]:
    run, load = r.run, r.load
    return {
        "calls": list(run.calls), "buf": r.buf, "sent_ts": [list(b) for b in r.sent_ts],
        "latency": dict(run.shared.pending),
        "run": (run.shared.round_trips, run.sent, run.bytes_sent, run.received,
                run.bytes_received, run.unmatched),
        "load": (load.owed, r.frame_index, load.in_flight_echoes),
    }


@pytest.mark.skipif(C is None, reason="wstool.bench._closedloop is not built here: "
                    "test_the_extension_is_built_where_a_compiler_is says whether it should be")
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_c_and_python_leave_the_same_state(sc: dict[str, Any]) -> None:
    assert C is not None
    c_clock, py_clock = Clock(), Clock()
    module: Any = generator
    saved = module.perf_counter
    C.configure(_OPEN, c_clock)
    module.perf_counter = py_clock  # the Python path's clock (a module global)
    try:
        c_recv = _receiver(_c_receiver(), C.RunShared(), sc)
        py_recv = _receiver(_PyReceiver, _RunSharedPy(), sc)
        assert type(c_recv).data_received is C.ReceiverCore.data_received
        for chunk in sc["chunks"]:
            outcome: list[type[Exception] | None] = []
            for r in (c_recv, py_recv):
                try:
                    r.data_received(chunk)
                    outcome.append(None)
                except Exception as exc:  # both must fail alike, or neither
                    outcome.append(type(exc))
            assert outcome[0] == outcome[1]
            assert _state(c_recv) == _state(py_recv), chunk
        assert c_clock.now == py_clock.now
    finally:
        module.perf_counter = saved
        C.configure(_OPEN, time.perf_counter)


@pytest.mark.slow
def test_without_a_compiler_the_install_goes_on_in_python(tmp_path: Any) -> None:
    """A fresh machine may have Python and no C compiler (the README's quick start):
    the build says the extension failed and installs the rest; bench then runs on the
    pure-Python path and counts every echo."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", "--system-site-packages",
                    str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    env = {**__import__("os").environ, "CC": str(tmp_path / "no-such-cc"),
           "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    env.pop("WSTOOL_PURE_PYTHON", None)
    # pip and setuptools of this interpreter (system site packages); wstool itself
    # from a copy of this checkout's sources (not its built extension).
    import shutil

    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy(root / name, src / name)
    shutil.copytree(root / "wstool", src / "wstool",
                    ignore=shutil.ignore_patterns("*.so", "__pycache__"))
    shutil.copytree(root / "man", src / "man")
    build = subprocess.run(
        [str(python), "-m", "pip", "install", "--no-deps", "--no-build-isolation",
         "--ignore-installed", "--target", str(tmp_path / "site"), str(src)],
        capture_output=True, text=True, timeout=300, env=env)
    assert build.returncode == 0, build.stdout + build.stderr
    site = tmp_path / "site"
    assert (site / "wstool" / "bench" / "generator.py").exists()
    assert not list((site / "wstool" / "bench").glob("_closedloop*.so"))
    from tests.servers import ServeEcho

    server = ServeEcho()
    try:
        run = subprocess.run(
            [str(python), "-c",
             "import sys; sys.path.insert(0, sys.argv[1]); from wstool.bench import generator;"
             "print(generator._FastReceiver.__name__); from wstool.cli import main;"
             "sys.exit(main(sys.argv[2:]))",
             str(site), "bench", "--json", "-c", "2", "--messages", "50", "--window", "3",
             server.url],
            capture_output=True, text=True, timeout=120, env={**env, "PYTHONPATH": ""})
        assert run.returncode == 0, run.stderr
        name, report = run.stdout.split("\n", 1)
        assert name == "_PyReceiver"
        import json

        msgs = json.loads(report)["messages"]
        assert msgs["sent"] == msgs["received"] == 100
    finally:
        server.close()
