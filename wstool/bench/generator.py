"""The load generator of ``wstool bench`` (issue 15): connections, load, counts.

Every connection is the client's own :class:`~wstool.client.session.Session`, so
every option of ``connect`` applies (URL forms, TLS, headers, subprotocols,
compression, proxies, timeouts); what changes is the load on top of it:

* sends are pre-built: each payload is framed and masked once, with a pool of
  masking keys (``FRAME_POOL`` frames, cycled), and a batch of N messages is one
  slice of that pool's frames joined back to back (one payload size) or one
  ``b"".join`` of them, and one ``transport.write`` (``Session.send_prebuilt``, or
  echo mode's receiver itself in the closed loop). Where permessage-deflate was negotiated and a
  payload is at least ``COMPRESS_THRESHOLD_BYTES``, the session's own
  ``send_many`` compresses it instead, as ``connect`` would;
* receives go through the session's fast path with a no-op ``on_message``; the
  generator reads the session's counters once per received chunk (``on_batch``)
  and takes one timestamp for the whole chunk. There is no coroutine per message,
  and none per connection once it is open: the window mode is driven by the
  receive callbacks, the rate mode by one ticker for all connections.

Latency (echo mode) is the time from a message's send to its echo, matched in
order (an echo server answers in order). In window mode (closed loop) the send
time is when it was written; in rate mode (open loop) it is when the message was
*due*, so a server that stalls is charged for every message that waited behind it
(no coordinated omission: Gil Tene's "How NOT to measure latency").

Never prints; raises :class:`~wstool.errors.WstoolError` when the first
connection cannot be opened (one clear error rather than N), and otherwise counts
failures by HTTP status, close code and error kind.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import resource
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from time import perf_counter
from typing import TYPE_CHECKING, Any, NamedTuple

from wstool.bench.stats import Histogram
from wstool.client.session import Session, SessionClosed
from wstool.config import COMPRESS_THRESHOLD_BYTES, BenchConfig, ConnectConfig
from wstool.errors import HandshakeRejected, UsageError, WstoolError
from wstool.events import Closed, ConnectPhase, Pong
from wstool.protocol import internals
from wstool.templates import Renderer, Template, compile_template

try:  # the websockets library's C mask (a dependency); pure Python otherwise
    from websockets.speedups import apply_mask
except ImportError:  # pragma: no cover
    from websockets.utils import apply_mask
from websockets.protocol import State

_OPEN = State.OPEN  # (State.OPEN itself is ~0.1 us an access: an enum's class attribute)

# echo mode's receive path in C (wstool/bench/_closedloop.c), built with the package
# where a C compiler is present (optional: without one the same path runs in Python).
# WSTOOL_PURE_PYTHON=1 forces the Python path (tests, bench/bench_generator.py).
_closedloop: Any
try:
    if os.environ.get("WSTOOL_PURE_PYTHON"):
        raise ImportError("WSTOOL_PURE_PYTHON is set")
    from wstool.bench import _closedloop
except ImportError:
    _closedloop = None
else:
    _closedloop.configure(_OPEN, perf_counter)

FRAME_POOL = 64  # masking keys per payload: frames are cycled through this pool
# Rate mode: do not queue more while this much is still unwritten (the kernel's
# buffer is full): those messages stay due, and their latency counts from then.
MAX_WRITE_BUFFER_BYTES = 1 << 20
# After the end (--messages, or --duration's end in request mode), how long to wait
# for the replies still in flight.
DRAIN_S = 5.0
SLOW_READ_INTERVAL_S = 0.1  # --slow-readers: one read this often
# --rate and broadcast mode: the sender wakes when the next message is due, at most
# this often (the event loop's timers have 1 ms steps: epoll's, libuv's).
RATE_TICK_S = 0.001
RATE_EPSILON_S = 1e-6
# echo mode: a chunk of up to this many bytes of echoes is recognised at once.
RUNS_MAX_BYTES = 1 << 20
# echo mode: the pre-built frames joined back to back, sliced per send (at most this).
PREJOINED_MAX_BYTES = 4 << 20


def masked_frame(payload: bytes, binary: bool, key: bytes) -> bytes:
    """One whole client data frame (RFC 6455 §5.2: FIN, opcode, MASK, length, key)."""
    first = 0x82 if binary else 0x81
    length = len(payload)
    if length < 126:
        header = bytes((first, 0x80 | length))
    elif length < 65536:
        header = bytes((first, 0xFE)) + length.to_bytes(2, "big")
    else:
        header = bytes((first, 0xFF)) + length.to_bytes(8, "big")
    return header + key + apply_mask(payload, key)


def frame_pool(payloads: Sequence[bytes], binary: bool) -> list[bytes]:
    """Pre-built frames: the payloads in order, repeated to at least FRAME_POOL frames,
    each with its own masking key."""
    rounds = max(1, -(-FRAME_POOL // len(payloads)))
    keys = os.urandom(4 * rounds * len(payloads))
    frames = []
    for i in range(rounds * len(payloads)):
        frames.append(masked_frame(payloads[i % len(payloads)], binary, keys[4 * i: 4 * i + 4]))
    return frames


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _ignore(_data: str | bytes) -> None:
    """The sessions' on_message: the counters are read once per chunk instead."""


def json_path(spec: str) -> Callable[[str | bytes], object]:
    """``json:.id`` / ``json:.params.requestId``: the value at a dotted path of a JSON
    message (a missing key or a message that is not JSON gives None)."""
    if not spec.startswith("json:.") or spec == "json:.":
        raise UsageError(f"invalid --match-id '{spec}': use json:.FIELD (e.g. json:.id, "
                         "json:.result.id)")
    keys = spec[len("json:."):].split(".")
    if not all(keys):
        raise UsageError(f"invalid --match-id '{spec}': an empty field name")

    def extract(message: str | bytes) -> object:
        try:
            value: Any = json.loads(message)
        except ValueError:
            return None
        for key in keys:
            if not isinstance(value, dict) or key not in value:
                return None
            value = value[key]
        return value if isinstance(value, (str, int, float, bool)) else json.dumps(value)

    return extract


class Failures:
    """Connections that failed or ended early, grouped the three ways the report shows."""

    def __init__(self) -> None:
        self.http_status: Counter[int] = Counter()
        self.close_code: Counter[int] = Counter()
        self.error: Counter[str] = Counter()

    def add_open_error(self, session: Session, exc: WstoolError) -> None:
        status = session.handshake.status_code if session.handshake is not None else None
        if isinstance(exc, HandshakeRejected) and status is not None:
            self.http_status[status] += 1
        else:
            self.error[exc.message] += 1

    def as_dict(self) -> dict[str, dict[str, int]]:
        return {
            "http_status": {str(k): v for k, v in sorted(self.http_status.items())},
            "close_code": {str(k): v for k, v in sorted(self.close_code.items())},
            "error": dict(self.error.most_common()),
        }


class Snapshot(NamedTuple):
    """What the live display shows, every progress tick."""

    elapsed_s: float
    phase: str  # "opening", "warmup", "measuring", "draining", "done"
    opened: int
    failed: int
    open_now: int
    sent: int
    received: int
    interval: dict[int, int]  # latencies (µs) since the previous snapshot
    closed_early: int = 0  # closed by the server so far


class _RunSharedPy:
    """The pure-Python twin of ``_closedloop.RunShared``: what every receiver of a
    run reads and counts per round trip (BenchRun.sending, .round_trips and
    .latency.pending are these)."""

    __slots__ = ("pending", "round_trips", "sending")

    def __init__(self) -> None:
        self.pending: dict[int, int] = {}
        self.round_trips = 0
        self.sending = False


class BenchRun:
    """One generator (one process): CONNECTIONS connections to the URL, the load of
    ``cfg.mode``, the counts. ``--procs`` runs one per worker process and merges."""

    def __init__(self, cfg: BenchConfig, conn_cfg: ConnectConfig, *,
                 connections: int | None = None, probe: bool = True) -> None:
        self.cfg = cfg
        self.conn_cfg = conn_cfg
        # C where the receivers are (a C receiver reads its fields directly)
        self.shared: Any = (_closedloop.RunShared() if _closedloop is not None
                            else _RunSharedPy())
        self.connections = cfg.connections if connections is None else connections
        self.probe = probe  # open the first connection alone: its error is the run's
        self.binary = cfg.binary
        self.frames = frame_pool(cfg.payloads, cfg.binary)
        self.frames2 = self.frames * 2  # a slice of up to len(frames) never wraps
        self.rate_mode = bool(cfg.rate_per_s)
        sizes = [len(cfg.payloads[i % len(cfg.payloads)]) for i in range(len(self.frames))]
        self.sizes2 = sizes * 2
        # (templated: each message rendered, of any size)
        self.uniform_size = sizes[0] if len(set(sizes)) == 1 and not cfg.templated else None
        self.echo_run: bytes | None = None  # echo mode's expected echoes (_FastReceiver)
        self.echo_payload = self.uniform_size or 0
        # One payload size: every frame is as long, so COUNT frames from pool index I
        # are one slice of the pool's frames joined back to back (no join per send),
        # for up to ``prejoined_max`` frames at once (echo mode's window refills).
        self.frame_len = len(self.frames[0]) if self.uniform_size is not None else 0
        self.prejoined_max = 0
        self.frames_run = b""
        pool = len(self.frames)
        room = PREJOINED_MAX_BYTES // self.frame_len - pool if self.frame_len else 0
        if room >= pool:  # small frames only: at most PREJOINED_MAX_BYTES + 2 pools
            self.prejoined_max = min(max(cfg.window, pool), room)
            self.frames_run = b"".join(self.frames * -(-(pool + self.prejoined_max) // pool))
        self.messages: list[str | bytes] = [
            p if cfg.binary else p.decode("utf-8", "replace") for p in cfg.payloads]
        # What is counted (messages and latency: the measured window only; the
        # connections: the whole run).
        self.latency = Histogram()
        self.slow_latency = Histogram()  # --slow-readers' own round trips
        self.slow_received = 0
        # The first connections are the slow readers (at least one when asked for).
        self.slow_count = (max(1, round(self.connections * cfg.slow_readers_percent / 100))
                           if cfg.slow_readers_percent else 0)
        self.handshake = Histogram()
        self.phases = {name: Histogram() for name in ("tcp", "tls", "upgrade")}
        self.ping = Histogram()
        self.failures = Failures()
        self.opened = 0
        self.failed = 0
        self.open_now = 0
        self.closed_early = 0  # not at our request (the next one included)
        self.closed_by_client = 0  # ... but by this side's library (a protocol error)
        self.handshakes = 0  # connect mode: completed handshakes in the window
        self.sent = self.received = self.bytes_sent = self.bytes_received = 0
        # echo mode's inline closed loop counts one echo received and its replacement
        # sent as one round trip; added to the four counts above when they are read.
        self.round_trips = 0
        self.unmatched = 0  # replies with no request waiting (pushed, or not an echo)
        self.lost = 0  # in flight when their connection closed
        self.phase = "opening"
        self.sending = False
        self.counting = True  # False once the measured window is over
        self.started = time.perf_counter()
        self.measure_start = self.measure_end = 0.0
        self.cpu_start = self.cpu_end = 0.0
        self.interrupted = False
        self.generator_cpu_s = 0.0
        self._loads: list[_Load] = []
        self._done = asyncio.Event()
        self.kept = 0  # connections still open at the end (idle mode: what the server kept)
        self._renderer: Renderer | None = None
        # broadcast mode
        self.broadcast_first_seq = 0
        self.broadcast_published = 0
        self.broadcast_missed = 0
        self.broadcast_missing = 0  # subscribers that missed at least one
        self.broadcast_max_missed = 0
        self._templates: list[Template] = []

    # The three the receivers share (self.shared), read and set by name elsewhere.

    @property
    def latency(self) -> Histogram:
        return self._latency

    @latency.setter
    def latency(self, histogram: Histogram) -> None:
        self._latency = histogram
        self.shared.pending = histogram.pending  # (a Histogram keeps its dict)

    @property
    def sending(self) -> bool:
        return bool(self.shared.sending)

    @sending.setter
    def sending(self, value: bool) -> None:
        self.shared.sending = value

    @property
    def round_trips(self) -> int:
        return int(self.shared.round_trips)

    @round_trips.setter
    def round_trips(self, value: int) -> None:
        self.shared.round_trips = value

    def request_renderer(self) -> tuple[Renderer, list[Template]]:
        """request mode: the messages as templates, one renderer ({{seq}}) per run."""
        if self._renderer is None:
            self._templates = [compile_template(p.decode("utf-8", "replace"),
                                                where="--message")
                               for p in self.cfg.payloads]
            self._renderer = Renderer()
        return self._renderer, self._templates

    def _fold_round_trips(self) -> None:
        n = self.round_trips
        if n:
            self.round_trips = 0
            self.sent += n
            self.received += n
            self.bytes_sent += n * self.echo_payload
            self.bytes_received += n * self.echo_payload

    def result(self) -> dict[str, Any]:
        """The raw counts of this generator, histograms encoded (merged by --procs)."""
        self._fold_round_trips()
        wall, cpu = self.window()
        return {
            "wall_s": wall, "cpu_s": cpu, "requested": self.connections,
            "opened": self.opened, "failed": self.failed, "closed_early": self.closed_early,
            "closed_by_client": self.closed_by_client,
            "kept": self.kept, "failures": self.failures.as_dict(),
            "sent": self.sent, "received": self.received, "bytes_sent": self.bytes_sent,
            "bytes_received": self.bytes_received, "unmatched": self.unmatched,
            "lost": self.lost, "handshakes": self.handshakes,
            "workers_lost": 0, "lost_workers": [],  # (--procs: a worker gone without one)
            "interrupted": self.interrupted,
            "latency": self.latency.encode(), "handshake": self.handshake.encode(),
            "phases": {name: h.encode() for name, h in self.phases.items()},
            "ping": self.ping.encode(),
            "slow_readers": {"connections": min(self.slow_count, self.opened),
                             "received": self.slow_received,
                             "latency": self.slow_latency.encode()},
            "broadcast": {"published": self.broadcast_published,
                          "missed": self.broadcast_missed,
                          "subscribers_missing": self.broadcast_missing,
                          "max_missed": self.broadcast_max_missed},
        }

    # Counting

    def _reset_counts(self) -> None:
        """The end of the warm-up: what came before is not measured."""
        self.latency = Histogram()
        self.slow_latency = Histogram()
        self.slow_received = 0
        self.ping = Histogram()
        self.sent = self.received = self.bytes_sent = self.bytes_received = 0
        self.round_trips = 0
        self.unmatched = self.lost = self.handshakes = 0
        self.measure_start = time.perf_counter()
        self.cpu_start = cpu_s()

    def snapshot(self) -> Snapshot:
        self._fold_round_trips()
        return Snapshot(time.perf_counter() - self.started, self.phase, self.opened,
                        self.failed, self.open_now, self.sent, self.received,
                        self.latency.fold(), self.closed_early)

    def connection_closed(self, load: _Load, closed: Closed) -> None:
        self.open_now -= 1
        if not load.closing:  # not at our request: the server ended it, or the library
            if self.counting:
                self.lost += load.in_flight()
            self.closed_early += 1
            if closed.initiated_by == "client":  # e.g. 1009 over --max-size, 1002
                self.closed_by_client += 1
            self.failures.close_code[closed.code] += 1
        if self.open_now <= 0 and self.sending:
            self._done.set()

    def load_finished(self) -> None:
        if all(load.finished for load in self._loads):
            self._done.set()

    # The run

    async def run(self, stop: asyncio.Event) -> None:
        """Open, load, close; returns at the end or when STOP is set (Ctrl-C)."""
        mode = self.cfg.mode
        if mode == "connect":
            await self._run_connect(stop)
            return
        await self._open_all(stop)
        if stop.is_set():
            self.interrupted = True
        elif self.open_now and mode == "broadcast":
            await self._run_broadcast(stop)
        elif self.open_now:
            await self._load(stop)
        self.phase = "done"
        self.kept = self.open_now
        self._close_all()

    async def _open_one(self, index: int) -> _Load | None:
        load = _Load(self, index)
        start = time.perf_counter()
        try:
            await load.session.open()
        except WstoolError as exc:
            self.failed += 1
            self.failures.add_open_error(load.session, exc)
            if index == 0 and self.probe:
                raise
            return None
        self.handshake.record(int((time.perf_counter() - start) * 1e6))
        self.opened += 1
        self.open_now += 1
        load.after_open()
        return load

    async def _open_all(self, stop: asyncio.Event) -> None:
        count = self.connections
        first = 0
        if self.probe and count:
            load = await self._open_one(0)  # raises: the run's one error
            if load is not None:
                self._loads.append(load)
            first = 1
        ramp = self.cfg.ramp_per_s
        tasks: list[asyncio.Task[_Load | None]] = []
        # At most this many handshakes at once without --ramp (a listen backlog
        # is often 128; more only queue in the kernel).
        limit = asyncio.Semaphore(100)

        async def open_limited(index: int) -> _Load | None:
            async with limit:
                return await self._open_one(index)

        start = time.perf_counter()
        for index in range(first, count):
            if stop.is_set():
                break
            if ramp:
                due = start + (index - first) / ramp
                delay = due - time.perf_counter()
                if delay > 0:
                    await _sleep_or_stop(delay, stop)
            tasks.append(asyncio.ensure_future(open_limited(index)))
        if tasks:
            done: asyncio.Future[Any] = asyncio.ensure_future(
                asyncio.gather(*tasks, return_exceptions=True))
            waiter: asyncio.Future[Any] = asyncio.ensure_future(stop.wait())
            await asyncio.wait({done, waiter}, return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
            if not done.done():
                for task in tasks:
                    task.cancel()
                await asyncio.gather(done, return_exceptions=True)
            for task in tasks:
                if task.done() and not task.cancelled() and task.exception() is None:
                    result = task.result()
                    if result is not None:
                        self._loads.append(result)

    async def _load(self, stop: asyncio.Event) -> None:
        cfg = self.cfg
        self.sending = True
        self.phase = "warmup" if cfg.warmup_s else "measuring"
        self.measure_start = time.perf_counter()
        self.cpu_start = cpu_s()
        ticker: asyncio.Task[None] | None = None
        if cfg.mode in ("echo", "request"):
            if cfg.rate_per_s:
                ticker = asyncio.ensure_future(self._tick_rate(cfg.rate_per_s))
            else:
                now = time.perf_counter()
                for load in self._loads:
                    load.send(cfg.window, now)
        deadline = None if cfg.duration_s is None else self.measure_start + cfg.duration_s
        try:
            if cfg.warmup_s:
                if await self._wait(stop, self.measure_start + cfg.warmup_s):
                    return
                self._reset_counts()
                self.phase = "measuring"
            stopped = await self._wait(stop, deadline)
            self.sending = False
            self.measure_end = time.perf_counter()
            self.cpu_end = cpu_s()
            if stopped:
                self.counting = False
                return
            if cfg.messages is None:
                self.counting = False  # what arrives after --duration is not counted
            if cfg.messages is not None:
                # --messages: every reply counts; the window ends with the last one.
                self.phase = "draining"
                self._done.clear()
                for load in self._loads:
                    load.check_finished()
                self.load_finished()
                await self._wait(stop, time.perf_counter() + DRAIN_S)
                self.measure_end = time.perf_counter()
                self.cpu_end = cpu_s()
        finally:
            self.sending = False
            self.counting = False
            if not self.measure_end:
                self.measure_end = time.perf_counter()
                self.cpu_end = cpu_s()
            if ticker is not None:
                ticker.cancel()
                await asyncio.gather(ticker, return_exceptions=True)

    async def _wait(self, stop: asyncio.Event, deadline: float | None) -> bool:
        """Until DEADLINE, every load finished or every connection closed; True if
        STOP (Ctrl-C) ended the wait."""
        waits = {asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._done.wait())}
        timeout = None if deadline is None else max(0.0, deadline - time.perf_counter())
        await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        for waiter in waits:
            waiter.cancel()
        if stop.is_set():
            self.interrupted = True
            return True
        return False

    async def _tick_rate(self, rate: float) -> None:
        """Open loop: every connection sends what is due since the start, each message
        timestamped with when it was due (see the module doc).

        A message's latency counts from when it was due, so whatever the generator is
        late is charged to the server: the ticker wakes when the next message is due
        (connection I's K-th at start + (I + K * N) * spread: one grid of due times),
        at most every RATE_TICK_S, and visits only the connections due since the last
        wake (all of them once a whole round is due)."""
        loads = self._loads
        count = max(1, len(loads))
        start = time.perf_counter()
        spread = 1 / rate / count  # connections out of phase
        for i, load in enumerate(loads):
            load.rate_start = start + i * spread
        step = max(spread, RATE_TICK_S)
        visited = 0  # messages of the grid due so far (all connections)
        while self.sending:
            now = time.perf_counter()
            # RATE_EPSILON_S: a connection visited at its due time sees it as due,
            # whatever the rounding of the two computations.
            due = math.floor((now - RATE_EPSILON_S - start) / spread) + 1
            if due - visited >= len(loads):
                for load in loads:
                    load.send_due(rate, now)
            else:
                for g in range(visited, due):
                    loads[g % count].send_due(rate, now)
            visited = max(visited, due)
            wake = start + (math.floor((now - start) / step) + 1) * step + 2 * RATE_EPSILON_S
            await asyncio.sleep(max(0.0, wake - time.perf_counter()))

    def _close_all(self) -> None:
        for load in self._loads:
            load.close()

    def window(self) -> tuple[float, float]:
        """The measured window's wall and CPU seconds."""
        end = self.measure_end or time.perf_counter()
        cpu_end = self.cpu_end or cpu_s()
        return max(end - self.measure_start, 1e-9), max(cpu_end - self.cpu_start, 0.0)

    # broadcast mode

    async def _run_broadcast(self, stop: asyncio.Event) -> None:
        """One publisher sends timestamped messages at --rate; every subscriber should
        receive each of them (serve-echo --broadcast, a chat room, a pub/sub topic).
        Fan-out latency: from the publisher's send to a subscriber's receive (one
        clock: the same process). Missed: published in the window, never received."""
        cfg = self.cfg
        publisher = Session(cfg.publish or self.conn_cfg, lambda _event: None,
                            on_message=_ignore, report_sent=False)
        try:
            await publisher.open()
        except WstoolError as exc:
            self.failures.add_open_error(publisher, exc)
            raise
        rate = cfg.rate_per_s or 10.0
        size = max(len(cfg.payloads[0]), 32)
        self.sending = True
        self.phase = "warmup" if cfg.warmup_s else "measuring"
        self.measure_start = time.perf_counter()
        self.cpu_start = cpu_s()
        start = self.measure_start
        first_seq = 0
        published = 0
        deadline = None if cfg.duration_s is None else start + cfg.duration_s
        total = cfg.messages
        try:
            while not stop.is_set() and publisher.is_open:
                now = time.perf_counter()
                if self.phase == "warmup" and now >= start + cfg.warmup_s:
                    self._reset_counts()
                    self.phase = "measuring"
                    first_seq = published
                    self.broadcast_first_seq = first_seq
                if (deadline is not None and now >= deadline) or (
                        total is not None and published >= total):
                    break
                due = math.floor((now - start) * rate) + 1
                if total is not None:
                    due = min(due, total)
                batch: list[str | bytes] = []
                for seq in range(published, due):
                    head = f"wstool-bench {seq} {start + seq / rate:.9f} "
                    batch.append(head + "x" * max(0, size - len(head)))
                if batch:
                    publisher.send_many(batch)
                    publisher.flush()
                    self.sent += len(batch)
                    self.bytes_sent += sum(len(m) for m in batch)
                    published = due
                # Until the next one is due (its timestamp: a late send would count
                # as fan-out latency), the warm-up's end or the deadline.
                wake = start + published / rate + 2 * RATE_EPSILON_S
                if self.phase == "warmup":
                    wake = min(wake, start + cfg.warmup_s)
                if deadline is not None:
                    wake = min(wake, deadline)
                await _sleep_or_stop(max(0.0, wake - time.perf_counter()), stop)
            self.broadcast_published = published - first_seq
            self.measure_end = time.perf_counter()
            self.cpu_end = cpu_s()
            if not stop.is_set():  # the last ones are still on their way
                self.phase = "draining"
                expected = self.broadcast_published
                drain_until = time.perf_counter() + min(DRAIN_S, 1.0 + 10 / rate)
                while time.perf_counter() < drain_until and any(
                        load.broadcast_received < expected and load.session.is_open
                        for load in self._loads):
                    await _sleep_or_stop(0.01, stop)
            if stop.is_set():
                self.interrupted = True
        finally:
            self.sending = False
            self.counting = False
            publisher.close_now(1000)
        expected = self.broadcast_published
        missed = [max(0, expected - load.broadcast_received) for load in self._loads]
        self.broadcast_missed = sum(missed)
        self.broadcast_missing = sum(1 for m in missed if m)
        self.broadcast_max_missed = max(missed, default=0)

    # connect mode

    async def _run_connect(self, stop: asyncio.Event) -> None:
        """-c loops opening and closing connections back to back, or new ones at
        --connect-rate (at most -c at once); until --duration or --messages each."""
        cfg = self.cfg
        if self.probe:
            await self._connect_once(probe=True)  # raises: the run's one error
            self.handshakes = 0  # counted in the connections, not in the window
        self.sending = True
        self.phase = "warmup" if cfg.warmup_s else "measuring"
        self.measure_start = time.perf_counter()
        self.cpu_start = cpu_s()
        slots = asyncio.Semaphore(self.connections)
        tasks: set[asyncio.Task[None]] = set()
        deadline = None if cfg.duration_s is None else self.measure_start + cfg.duration_s
        warm_until = self.measure_start + cfg.warmup_s if cfg.warmup_s else None
        total = None if cfg.messages is None else cfg.messages * self.connections
        started = 0

        async def one() -> None:
            try:
                await self._connect_once()
            finally:
                slots.release()

        rate = cfg.connect_rate_per_s
        try:
            while not stop.is_set():
                now = time.perf_counter()
                if warm_until is not None and now >= warm_until:
                    warm_until = None
                    self._reset_counts()
                    self.phase = "measuring"
                if (deadline is not None and now >= deadline) or (
                        total is not None and started >= total):
                    break
                if rate:
                    due = self.measure_start + started / rate
                    if due > now:
                        await _sleep_or_stop(min(due - now, 0.05), stop)
                        continue
                await slots.acquire()
                task = asyncio.ensure_future(one())
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                started += 1
            if total is not None:  # --messages: every handshake started counts
                drain_until = time.perf_counter() + DRAIN_S + (
                    self.conn_cfg.open_timeout_s or 10.0)
                while tasks and not stop.is_set() and time.perf_counter() < drain_until:
                    waiter = asyncio.ensure_future(stop.wait())
                    await asyncio.wait({*tasks, waiter}, timeout=drain_until
                                       - time.perf_counter(),
                                       return_when=asyncio.FIRST_COMPLETED)
                    waiter.cancel()
        finally:
            if stop.is_set():
                self.interrupted = True
            self.sending = False
            self.measure_end = time.perf_counter()
            self.cpu_end = cpu_s()
            for task in list(tasks):
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self.phase = "done"

    async def _connect_once(self, *, probe: bool = False) -> None:
        phases: dict[str, float] = {}

        def sink(event: Any) -> None:
            if isinstance(event, ConnectPhase) and event.elapsed_s is not None:
                if event.phase in ("connected", "connected-proxy", "connected-unix"):
                    phases["tcp"] = event.elapsed_s
                elif event.phase == "tls":
                    phases["tls"] = event.elapsed_s

        session = Session(self.conn_cfg, sink, on_message=_ignore, report_sent=False,
                          report_phases=True)
        start = time.perf_counter()
        try:
            await session.open()
        except WstoolError as exc:
            self.failed += 1
            self.failures.add_open_error(session, exc)
            if probe:
                raise
            return
        self.handshake.record(int((time.perf_counter() - start) * 1e6))
        handshake = session.handshake
        if handshake is not None and handshake.elapsed_s is not None:
            phases["upgrade"] = handshake.elapsed_s
        for name, seconds in phases.items():
            self.phases[name].record(int(seconds * 1e6))
        self.opened += 1
        self.handshakes += 1
        session.close_now(1000)


def _record_batches(sent_ts: deque[list[Any]], counts: dict[int, int], n: int,
                    now: float) -> int:
    """N echoes, in order, against the batches of sends in flight (``[sent time,
    count]``, oldest first): one latency count per batch they finish or cut into,
    the batches taken; returns how many echoes matched nothing in flight."""
    left = n
    while left and sent_ts:
        batch = sent_ts[0]
        take = batch[1] if batch[1] <= left else left
        us = int((now - batch[0]) * 1e6)
        counts[us] = counts.get(us, 0) + take
        left -= take
        if take == batch[1]:
            sent_ts.popleft()
        else:
            batch[1] -= take
    return left


class _Load:
    """One connection's load: its session, the send times of what is in flight."""

    def __init__(self, run: BenchRun, index: int) -> None:
        self.run = run
        self.index = index
        self.session = Session(run.conn_cfg, self._on_event, on_batch=self._on_batch,
                               on_message=_ignore, report_sent=False)
        # echo mode: what is in flight, as [send time, count] per batch written
        self.sent_ts: deque[list[Any]] = deque()
        self.in_flight_echoes = 0
        self.seen_msgs = 0
        self.seen_bytes = 0
        self._frame_index = 0
        self.receiver: _Receiver | None = None  # echo mode's, once open
        self.owed = 0  # --refill: replies received, their replacements not sent yet
        self.remaining = run.cfg.messages  # None: until --duration ends
        self.rate_start = 0.0
        self.scheduled = 0  # rate mode: messages due so far
        self.closing = False
        self.finished = False
        self.library_send = False
        self.prebuilt = False  # echo mode, one payload size, not compressed: send()'s short way
        # request mode: request id -> send time, and how ids are read
        self.match: Callable[[str | bytes], object] | None = None
        self.pending: dict[object, float] = {}

    @property
    def frame_index(self) -> int:
        """The next pre-built frame (or message) of the pool: the receiver's once it
        is there (its closed loop sends too)."""
        receiver = self.receiver
        return self._frame_index if receiver is None else receiver.frame_index

    @frame_index.setter
    def frame_index(self, value: int) -> None:
        receiver = self.receiver
        if receiver is None:
            self._frame_index = value
        else:
            receiver.frame_index = value

    def after_open(self) -> None:
        run = self.run
        session = self.session
        if session.extensions and any(len(p) >= COMPRESS_THRESHOLD_BYTES
                                      for p in run.cfg.payloads):
            self.library_send = True  # compress as connect does
        self.prebuilt = (run.cfg.mode == "echo" and not self.library_send
                         and run.uniform_size is not None)
        if run.cfg.mode == "request":
            assert run.cfg.match_id is not None
            self.match = json_path(run.cfg.match_id)
            session.on_message = self._on_reply
            session.on_batch = None
        if run.cfg.mode == "idle":
            session.on_batch = None
        if run.cfg.mode == "broadcast":
            session.on_message = self._on_broadcast
            session.on_batch = None
        slow = run.cfg.mode == "echo" and self.index < run.slow_count
        if slow:
            self.slow = True
        if run.cfg.mode == "echo" and all(name == "permessage-deflate"
                                          for name in session.extensions):
            self.receiver = _FastReceiver(self)
        if slow:
            self._slow_tick()

    # --slow-readers: read one chunk every SLOW_READ_INTERVAL_S, like a slow link
    slow = False
    _slow_timer: asyncio.TimerHandle | None = None

    def _slow_tick(self) -> None:
        if self.closing or not self.session.is_open:
            return
        transport = self.session.connection.transport
        transport.resume_reading()
        loop = asyncio.get_running_loop()
        loop.call_later(0.002, self._slow_pause)
        self._slow_timer = loop.call_later(SLOW_READ_INTERVAL_S, self._slow_tick)

    def _slow_pause(self) -> None:
        if not self.closing and self.session.is_open:
            self.session.connection.transport.pause_reading()

    def in_flight(self) -> int:
        return self.in_flight_echoes + len(self.pending)

    def _on_event(self, event: Any) -> None:
        if isinstance(event, Closed):
            self.run.connection_closed(self, event)
            self.finished = True
            self.run.load_finished()
        elif isinstance(event, Pong) and event.direction == "received" and (
                event.rtt_s is not None):  # 0.0 on a coarse loop clock (uvloop: 1 ms)
            self.run.ping.record(int(event.rtt_s * 1e6))

    def _on_batch(self) -> None:
        session = self.session
        n = session.messages_received - self.seen_msgs
        if not n:
            return
        self.seen_msgs += n
        nbytes = session.bytes_received - self.seen_bytes
        self.seen_bytes = session.bytes_received
        self.received(n, nbytes)

    def received(self, n: int, nbytes: int) -> None:
        """N whole replies of NBYTES payload bytes arrived in one chunk (echo mode)."""
        run = self.run
        if not run.counting:
            return
        run.received += n
        run.bytes_received += nbytes
        now = perf_counter()
        if self.slow:
            run.slow_received += n
            counts = run.slow_latency.pending
        else:
            counts = run.latency.pending
        # Echoes come back in order: take them from the oldest batch of sends on (one
        # latency per batch: its messages were written together).
        sent_ts = self.sent_ts
        if sent_ts and sent_ts[0][1] == n:  # one batch's echoes (--window 1: always)
            batch = sent_ts.popleft()
            us = int((now - batch[0]) * 1e6)
            counts[us] = counts.get(us, 0) + n
            self.in_flight_echoes -= n
        else:
            left = _record_batches(sent_ts, counts, n, now)
            self.in_flight_echoes -= n - left
            if left:
                run.unmatched += left
        if run.sending and not run.rate_mode:
            self.replace(n, now)
        elif self.remaining is not None or not run.sending:
            self.check_finished()

    def _on_reply(self, message: str | bytes) -> None:
        """request mode: one reply, matched to its request by --match-id."""
        run = self.run
        if not run.counting:
            return
        now = time.perf_counter()
        run.received += 1
        run.bytes_received += len(message)
        assert self.match is not None
        sent = self.pending.pop(self.match(message), None)
        if sent is None:
            run.unmatched += 1  # pushed by the server unasked (or a late duplicate)
            return
        us = int((now - sent) * 1e6)
        counts = run.latency.pending
        counts[us] = counts.get(us, 0) + 1
        if run.sending and not run.cfg.rate_per_s:
            self.replace(1, now)
        else:
            self.check_finished()

    broadcast_received = 0

    def _on_broadcast(self, message: str | bytes) -> None:
        """broadcast mode: one published message reached this subscriber."""
        run = self.run
        if not run.counting or not isinstance(message, str) or not message.startswith(
                "wstool-bench "):
            if run.counting:
                run.unmatched += 1
            return
        now = time.perf_counter()
        _tag, seq, sent, _rest = message.split(" ", 3)
        if int(seq) < run.broadcast_first_seq:
            return  # published during the warm-up
        self.broadcast_received += 1
        run.received += 1
        run.bytes_received += len(message)
        us = int((now - float(sent)) * 1e6)
        counts = run.latency.pending
        counts[us] = counts.get(us, 0) + 1

    def check_finished(self) -> None:
        if not self.finished and not self.sent_ts and not self.pending and (
                self.remaining == 0 or not self.run.sending):
            self.finished = True
            self.run.load_finished()

    def replace(self, count: int, now: float) -> None:
        """The closed loop: COUNT replies came, so COUNT more may go; with --refill N
        they go once N are owed (fewer at the end of --messages), N or more at once."""
        owed = self.owed + count
        want = self.run.cfg.refill
        if self.remaining is not None and self.remaining < want:
            want = max(1, self.remaining)
        if owed < want:
            self.owed = owed
            self.check_finished()
            return
        self.owed = 0
        self.send(owed, now)

    def send(self, count: int, now: float, times: Sequence[float] | None = None) -> None:
        if self.remaining is not None:
            count = min(count, self.remaining)
            self.remaining -= count
            if count <= 0:
                self.check_finished()
                return
        session = self.session
        run = self.run
        if self.prebuilt and times is None and (count <= run.prejoined_max
                                                 or count <= len(run.frames)):
            # Echo mode's window (closed loop): COUNT pre-built frames, one write.
            i = self.frame_index
            if count == 1:
                frames = run.frames[i]
            elif count <= run.prejoined_max:
                flen = run.frame_len
                frames = run.frames_run[i * flen:(i + count) * flen]
            else:
                frames = b"".join(run.frames2[i:i + count])
            payload = run.echo_payload * count
            try:
                session.send_prebuilt(frames, count, payload)
            except SessionClosed:
                return
            self.frame_index = (i + count) % len(run.frames)
            self.sent_ts.append([now, count])
            self.in_flight_echoes += count
            run.sent += count
            run.bytes_sent += payload
            return
        try:
            if run.cfg.mode == "request":
                self._send_requests(count, now, times)
                return
            if run.cfg.templated:  # echo mode's templates: rendered for each send
                renderer, templates = run.request_renderer()
                texts = [renderer.render(templates[(self.frame_index + k) % len(templates)])
                         for k in range(count)]
                self.frame_index = (self.frame_index + count) % len(templates)
                encoded = [text.encode() for text in texts]
                session.send_many(encoded if run.binary else texts)
                session.flush()
                payload = sum(len(m) for m in encoded)
            elif self.library_send:
                messages = run.messages
                batch = [messages[(self.frame_index + k) % len(messages)]
                         for k in range(count)]
                self.frame_index = (self.frame_index + count) % len(messages)
                session.send_many(batch)
                session.flush()
                payload = sum(len(m) if isinstance(m, bytes) else len(m.encode())
                              for m in batch)
            else:
                pool = len(run.frames)
                i = self.frame_index
                left = count
                payload = 0
                parts: list[bytes] = []
                while left:
                    take = min(left, pool)
                    parts.extend(run.frames2[i:i + take])
                    payload += (run.uniform_size * take if run.uniform_size is not None
                                else sum(run.sizes2[i:i + take]))
                    i = (i + take) % pool
                    left -= take
                self.frame_index = i
                session.send_prebuilt(b"".join(parts), count, payload)
        except SessionClosed:
            return
        if times is None:
            self.sent_ts.append([now, count])
        else:
            self.sent_ts.extend([t, 1] for t in times)
        self.in_flight_echoes += count
        run.sent += count
        run.bytes_sent += payload

    def _send_requests(self, count: int, now: float, times: Sequence[float] | None) -> None:
        """request mode: each message rendered from its template ({{seq}}, {{uuid}}...),
        its id read back with --match-id, so replies can be matched in any order."""
        run = self.run
        renderer, templates = run.request_renderer()
        assert self.match is not None
        batch: list[str | bytes] = []
        for k in range(count):
            template = templates[(self.frame_index + k) % len(templates)]
            text = renderer.render(template)
            request_id = self.match(text)
            self.pending[request_id] = now if times is None else times[k]
            batch.append(text.encode() if run.binary else text)
        self.frame_index = (self.frame_index + count) % len(templates)
        self.session.send_many(batch)
        self.session.flush()
        run.sent += count
        run.bytes_sent += sum(len(m) if isinstance(m, bytes) else len(m.encode())
                              for m in batch)

    def send_due(self, rate: float, now: float) -> None:
        # Message k is due at rate_start + k / rate (floor: rate_start may be ahead).
        due = math.floor((now - self.rate_start) * rate) + 1 - self.scheduled
        if due <= 0 or self.closing or self.finished:
            return
        if self.session.write_buffer_bytes > MAX_WRITE_BUFFER_BYTES:
            return  # still due: their latency counts from when they were due
        start, first = self.rate_start, self.scheduled
        if self.remaining is not None:
            due = min(due, self.remaining)
        times = [start + (first + k) / rate for k in range(due)]
        self.scheduled += due
        self.send(due, now, times)

    def close(self) -> None:
        self.closing = True
        if self._slow_timer is not None:
            self._slow_timer.cancel()
            with contextlib.suppress(Exception):
                self.session.connection.transport.resume_reading()
        if self.session.is_open:
            self.session.close_now(1000)


async def _sleep_or_stop(delay_s: float, stop: asyncio.Event) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), delay_s)


class _ReceiverFields:
    """The echo-mode receiver's fields: the pure-Python twin of the C extension's
    ``ReceiverCore`` (wstool/bench/_closedloop.c), which holds the same ones as C
    members."""

    __slots__ = ("buf", "closed_loop", "conn", "echo_len", "echo_payload", "echo_run",
                 "frame_index", "frame_len", "frames", "frames_run", "load", "max_send",
                 "pool", "protocol", "refill", "run", "sent_ts", "shared", "transport")

    buf: bytes
    closed_loop: bool
    conn: Any
    echo_len: int
    echo_payload: int
    echo_run: bytes | None
    frame_index: int
    frame_len: int
    frames: list[bytes]
    frames_run: bytes
    load: Any
    max_send: int
    pool: int
    protocol: Any
    refill: int
    run: Any
    sent_ts: deque[list[Any]]
    shared: Any
    transport: Any

    def set_transport(self, transport: Any) -> None:
        self.transport = transport


if TYPE_CHECKING:  # what _Receiver's methods see; at run time a mixin of methods only
    class _ReceiverBase(_ReceiverFields, asyncio.Protocol):
        __slots__ = ("echo_header", "max_size")
        echo_header: bytes | None
        max_size: int | None
else:
    _ReceiverBase = object


class _Receiver(_ReceiverBase):
    """echo mode's receive path: in front of the session's connection on the transport.

    Whole, unmasked, unfragmented text/binary frames with RSV bits clear (every echo
    under permessage-deflate's threshold too) are counted here, one call per received
    chunk, without the session's layers (its fast path, per-message delivery, UTF-8
    decoding: a reply's text is not validated). Any other frame (ping, pong, close, a
    fragment, a compressed message) is handed to the connection once whole, as the
    library would have received it: the session delivers it (counted through
    ``on_batch``) and the library sits at a frame boundary again. A frame the library
    must refuse (masked, over --max-size), a close frame, or the connection no longer
    open: every byte from there goes to the connection, the transport given back.

    ``data_received`` is C (``_closedloop.ReceiverCore``, built with the package where
    a C compiler is present) or, without it, :meth:`_data_received_py`: the same steps,
    calling the same methods below for everything but the common case
    (tests/test_bench_closedloop.py checks that both leave the same state).
    The methods are here; the fields are ``_ReceiverFields``' or the C core's.
    """

    __slots__ = ()

    def __init__(self, load: _Load) -> None:
        self.load = load
        self.conn = load.session.connection
        self.set_transport(self.conn.transport)
        self.max_size = self.conn.protocol.max_message_size
        self.buf = b""
        # Every echo of a fixed-size payload is the same header + SIZE bytes: a run of
        # them is recognised by checking each header byte at every frame's offset in
        # one bytes.count() (C speed), not frame by frame. The first frame that is
        # not such an echo starts at a multiple of the frame length (all before it
        # were that long), so its header fails the check and the loop below takes over.
        run = load.run
        size = run.uniform_size
        self.echo_header: bytes | None = None
        self.echo_len = 0
        if size is not None and (self.max_size is None or size <= self.max_size):
            self.echo_header = bytes((0x82 if run.binary else 0x81,)) + (
                bytes((size,)) if size < 126 else
                bytes((126,)) + size.to_bytes(2, "big") if size < 65536 else
                bytes((127,)) + size.to_bytes(8, "big"))
            self.echo_len = len(self.echo_header) + size
        # One payload (the common case): echoes back to back, up to RUNS_MAX_BYTES
        # (built once per run, shared by its connections).
        self.echo_run: bytes | None = None
        self.echo_payload = size or 0
        if self.echo_header is not None and len(run.cfg.payloads) == 1:
            if run.echo_run is None:
                echo = self.echo_header + run.cfg.payloads[0]
                run.echo_run = echo * max(1, RUNS_MAX_BYTES // len(echo))
            self.echo_run = run.echo_run
        # --window (closed loop) with pre-built frames of the one payload:
        # data_received's inline path (the rest: load.received).
        self.protocol = self.conn.protocol
        self.run = run
        self.shared = run.shared
        self.frame_index = load.frame_index  # (then the load's is this)
        self.sent_ts = load.sent_ts
        # (0: --messages, whose count down is the generic replace()'s)
        self.refill = run.cfg.refill if load.remaining is None else 0
        self.frames = run.frames
        self.frames_run = run.frames_run
        self.frame_len = run.frame_len
        self.max_send = run.prejoined_max
        self.pool = len(run.frames)
        self.closed_loop = (self.echo_run is not None and load.prebuilt and not load.slow
                            and not run.rate_mode)
        self.transport.set_protocol(self)

    def _give_back(self, rest: bytes) -> None:
        self.transport.set_protocol(self.conn)
        if rest:
            self.conn.data_received(rest)

    def _data_received_py(self, data: bytes) -> None:
        """data_received, in Python: the C core's twin, step for step."""
        run_bytes = self.echo_run
        if run_bytes is None:
            self._parse(data)
            return
        if self.buf:  # the start of an echo, left by the previous chunk
            data = self.buf + data
            self.buf = b""
        if not run_bytes.startswith(data):
            self._parse(data)
            return
        # One payload: every echo is the same bytes, so a chunk of N whole echoes (and
        # the start of one more) is a prefix of N + 1 of them: one memcmp, which
        # checks the echoes' content too.
        size = len(data)
        echo_len = self.echo_len
        if size == echo_len:  # request/response: one echo per chunk
            n = 1
        else:
            n = size // echo_len
            tail = size - n * echo_len
            if tail:
                self.buf = data[-tail:]
            if not n:
                return
        if not self.closed_loop:
            self.load.received(n, n * self.echo_payload)
            return
        # --window's closed loop, inline: request/response is one chunk per round
        # trip, and what the generator costs per round trip is mostly this method
        # (bench/README.md). N echoes' latencies from their batches' send times, then
        # N more pre-built frames in one write; one counter for both ways.
        run = self.run
        shared = self.shared
        if not shared.sending:  # the end (in the closed loop, also the end of counting)
            self.load.received(n, n * self.echo_payload)
            return
        now = perf_counter()
        sent_ts = self.sent_ts
        batch = sent_ts.popleft() if sent_ts else None
        if batch is not None and batch[1] == n:  # one batch's echoes (--window 1: always)
            us = int((now - batch[0]) * 1e6)
            counts = shared.pending
            counts[us] = counts.get(us, 0) + n
        else:
            if batch is not None:
                sent_ts.appendleft(batch)
                batch = None
            n = self._match_batches(n, now)
            if not n:
                return
        send = n
        refill = self.refill
        if refill != 1:
            if not refill:  # --messages: replace() counts them down
                self._received_only(n)
                self.load.replace(n, now)
                return
            send += self.load.owed  # --refill: N more once N are owed
            if send < refill:
                self.load.owed = send
                self._received_only(n)
                return
            self.load.owed = 0
        protocol = self.protocol
        if send > self.max_send or protocol.writes or protocol._state is not _OPEN:
            self._received_only(n)
            self.load.send(send, now)  # the library's queue first, or SessionClosed
            return
        i = self.frame_index
        try:
            self.transport.write(self.frames[i] if send == 1 else
                                 self.frames_run[i * self.frame_len:(i + send) * self.frame_len])
        except Exception as exc:  # the transport is gone; connection_lost follows
            self._write_failed(n, exc)
            return
        i += send
        self.frame_index = i if i < self.pool else i % self.pool
        if batch is None:
            sent_ts.append([now, send])
        else:  # reused: no allocation per round trip
            batch[0] = now
            batch[1] = send
            sent_ts.append(batch)
        shared.round_trips += n
        if send > n:  # the owed ones: sent, in flight again
            run.sent += send - n
            run.bytes_sent += (send - n) * self.echo_payload
            self.load.in_flight_echoes += send - n

    def _match_batches(self, n: int, now: float) -> int:
        """N echoes that are not one whole batch: their latencies, oldest batch first;
        returns how many matched something in flight (the rest are ``unmatched``)."""
        run = self.run
        left = _record_batches(self.sent_ts, self.shared.pending, n, now)
        if left:  # echoes of nothing in flight: counted, not replaced
            run.received += left
            run.bytes_received += left * self.echo_payload
            run.unmatched += left
        return n - left

    def _write_failed(self, n: int, exc: Exception) -> None:
        self._received_only(n)
        internals.set_connection_error(self.conn, exc)

    def _received_only(self, n: int) -> None:
        """N matched echoes that the inline path does not replace now (--refill owes
        them, or send() takes them): counted one way, out of flight."""
        run = self.run
        run.received += n
        run.bytes_received += n * self.echo_payload
        self.load.in_flight_echoes -= n

    def _parse(self, data: bytes) -> None:
        buf = self.buf + data if self.buf else data
        self.buf = b""
        size = len(buf)
        pos = 0
        count = 0
        payload_bytes = 0
        max_size = self.max_size
        header_bytes = self.echo_header
        if header_bytes is not None:
            frame_len = self.echo_len
            n = size // frame_len
            if n:
                end = n * frame_len
                if all(buf[j:end:frame_len].count(byte) == n
                       for j, byte in enumerate(header_bytes)):
                    count = n
                    payload_bytes = n * (frame_len - len(header_bytes))
                    pos = end
        while size - pos >= 2:
            first = buf[pos]
            second = buf[pos + 1]
            length = second & 0x7F
            header = 2
            if length == 126:
                if size - pos < 4:
                    break
                length = (buf[pos + 2] << 8) | buf[pos + 3]
                header = 4
            elif length == 127:
                if size - pos < 10:
                    break
                length = int.from_bytes(buf[pos + 2: pos + 10], "big")
                header = 10
            if second & 0x80:
                header += 4  # masked: the library fails it (RFC 6455 §5.1)
            end = pos + header + length
            # FIN set, RSV1-3 clear, TEXT or BINARY, not masked, within --max-size.
            fast = (first & 0xF0 == 0x80 and not second & 0x80 and 1 <= first & 0x0F <= 2
                    and (max_size is None or length <= max_size))
            if not fast and (second & 0x80 or (max_size is not None and length > max_size)
                             or (first & 0x08 and length > 125)):
                # Masked, too big, an over-long control frame: the library fails the
                # connection; it gets everything from here on.
                self._count(count, payload_bytes)
                self._give_back(buf[pos:])
                return
            if end > size:
                break
            if fast:
                count += 1
                payload_bytes += length
                pos = end
                continue
            self._count(count, payload_bytes)  # in wire order
            count = payload_bytes = 0
            self.conn.data_received(buf[pos:end])
            pos = end
            if not self.load.session.is_open:
                self._give_back(buf[pos:])
                return
        self.buf = buf[pos:]
        self._count(count, payload_bytes)

    def _count(self, count: int, payload_bytes: int) -> None:
        if count:
            session = self.load.session
            session.messages_received += count
            session.bytes_received += payload_bytes
            self.load.seen_msgs += count
            self.load.seen_bytes += payload_bytes
            self.load.received(count, payload_bytes)

    def eof_received(self) -> bool | None:
        self._give_back(self.buf)
        return bool(self.conn.eof_received())

    def connection_lost(self, exc: Exception | None) -> None:
        self.conn.connection_lost(exc)

    def pause_writing(self) -> None:
        self.conn.pause_writing()

    def resume_writing(self) -> None:
        self.conn.resume_writing()


class _PyReceiver(_Receiver, _ReceiverFields, asyncio.Protocol):
    __slots__ = ("echo_header", "max_size")
    data_received = _Receiver._data_received_py


_FastReceiver: type[_Receiver] = _PyReceiver
if not TYPE_CHECKING and _closedloop is not None:
    class _CReceiver(_Receiver, _closedloop.ReceiverCore, asyncio.Protocol):
        __slots__ = ("echo_header", "max_size")

    _FastReceiver = _CReceiver
