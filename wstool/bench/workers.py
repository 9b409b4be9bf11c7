"""``--procs N``: N generator processes, their results merged exactly.

Each worker (a ``spawn``ed process: no fork of a running event loop) runs a
:class:`~wstool.bench.generator.BenchRun` over its share of the connections and
sends back, through one queue, a snapshot every progress tick and its result at
the end (counts, and histograms in their encoded form, so the parent's merge is
exact: ``report.merge_results``). Before any worker starts, the parent opens one
connection itself, so an unreachable URL is one clear error, not N.
Ctrl-C (or SIGTERM) in the parent is passed on to the workers as SIGTERM, once: each
stops, and what it measured is in the partial report. A worker ignores SIGINT for its
whole life: a terminal's Ctrl-C reaches the whole process group, and a SIGINT that
came while asyncio was handing the signal back to KeyboardInterrupt killed a worker
before it sent its result.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import queue as queue_module
import signal
import threading
from collections.abc import Callable
from typing import Any

from wstool.bench.generator import BenchRun, Snapshot
from wstool.client.session import Session
from wstool.config import BenchConfig, ConnectConfig

WORKER_START_TIMEOUT_S = 30.0


def shares(total: int, procs: int) -> list[int]:
    """TOTAL connections over PROCS workers, as even as can be (none with 0)."""
    procs = max(1, min(procs, total))
    base, extra = divmod(total, procs)
    return [base + (1 if i < extra else 0) for i in range(procs)]


async def probe(conn_cfg: ConnectConfig) -> None:
    """Open one connection and close it: raises the WstoolError of a URL that fails."""
    session = Session(conn_cfg, lambda _event: None, on_message=lambda _m: None,
                      report_sent=False)
    await session.open()
    session.close_now(1000)


async def run_workers(cfg: BenchConfig, conn_cfg: ConnectConfig, stop: asyncio.Event,
                      show: Callable[[Snapshot], None] | None) -> list[dict[str, Any]]:
    await probe(conn_cfg)
    ctx = multiprocessing.get_context("spawn")
    results_queue: Any = ctx.Queue()
    use_uvloop = type(asyncio.get_running_loop()).__module__.startswith("uvloop")
    procs = []
    for index, count in enumerate(shares(cfg.connections, cfg.procs)):
        proc = ctx.Process(target=_worker_main, daemon=True,
                           args=(cfg._replace(procs=1, connections=count), conn_cfg,
                                 count, index, results_queue, use_uvloop))
        proc.start()
        procs.append(proc)
    loop = asyncio.get_running_loop()
    results: dict[int, dict[str, Any]] = {}
    snapshots: dict[int, Snapshot] = {}
    fresh: set[int] = set()  # workers whose snapshot of this tick has come
    forwarded = False
    try:
        while len(results) < len(procs):
            if stop.is_set() and not forwarded:
                forwarded = True
                for proc in procs:
                    if proc.pid is not None and proc.is_alive():
                        with contextlib.suppress(OSError):
                            os.kill(proc.pid, signal.SIGTERM)
            try:
                kind, index, payload = await loop.run_in_executor(
                    None, results_queue.get, True, 0.2)
            except queue_module.Empty:
                if all(not p.is_alive() for p in procs) and results_queue.empty():
                    break  # a worker died without a result
                continue
            if kind == "result":
                results[index] = payload
                fresh.discard(index)
            elif kind == "snapshot" and show is not None:
                snapshots[index] = payload
                fresh.add(index)
                # One merge per tick, once every worker still running has sent its
                # snapshot of it: rates between two merges a few ms apart are noise.
                if fresh >= set(range(len(procs))) - results.keys():
                    fresh.clear()
                    show(_merge_snapshots(list(snapshots.values())))
    finally:
        for proc in procs:
            proc.join(5)
            if proc.is_alive():
                proc.kill()
                proc.join()
    if not results:
        from wstool.errors import WstoolError

        raise WstoolError("every --procs worker ended without a result")
    counts = shares(cfg.connections, cfg.procs)
    for index, proc in enumerate(procs):
        if index not in results:  # its connections count as requested, nothing else
            lost = BenchRun(cfg._replace(procs=1, connections=counts[index]), conn_cfg,
                            probe=False).result()
            lost["workers_lost"] = 1
            lost["lost_workers"] = [f"worker {index + 1} ({counts[index]} connections) "
                                    f"{_how_it_ended(proc.exitcode)}"]
            results[index] = lost
    return [results[i] for i in sorted(results)]


def _how_it_ended(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            return f"was killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"was killed by signal {-exitcode}"
    return f"exited with status {exitcode}"


def _merge_snapshots(snaps: list[Snapshot]) -> Snapshot:
    interval: dict[int, int] = {}
    for snap in snaps:
        for value, n in snap.interval.items():
            interval[value] = interval.get(value, 0) + n
    return Snapshot(
        max(s.elapsed_s for s in snaps), snaps[0].phase, sum(s.opened for s in snaps),
        sum(s.failed for s in snaps), sum(s.open_now for s in snaps),
        sum(s.sent for s in snaps), sum(s.received for s in snaps), interval,
        sum(s.closed_early for s in snaps))


def _worker_main(cfg: BenchConfig, conn_cfg: ConnectConfig, connections: int, index: int,
                 results_queue: Any, use_uvloop: bool) -> None:
    """A worker process: run the generator, report snapshots and the result."""
    # The parent handles the terminal's Ctrl-C and passes it on as SIGTERM: the
    # SIGINT the terminal sends the whole process group is ignored, for good (the
    # loop's handlers never take SIGINT, so nothing gives it back to KeyboardInterrupt).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if use_uvloop:
        with contextlib.suppress(ImportError):
            import uvloop

            asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())

    async def main() -> None:
        from wstool.term.signals import handle_signals

        stop = asyncio.Event()
        run = BenchRun(cfg, conn_cfg, connections=connections, probe=False)
        done = threading.Event()

        async def tick() -> None:
            while not done.is_set():
                await asyncio.sleep(cfg.progress_interval_s)
                results_queue.put(("snapshot", index, run.snapshot()))

        with handle_signals({signal.SIGTERM: stop.set}):
            ticker = asyncio.ensure_future(tick())
            try:
                await run.run(stop)
            finally:
                done.set()
                ticker.cancel()
                await asyncio.gather(ticker, return_exceptions=True)
        # The parent forwards one SIGTERM; one that comes after the run's end (Ctrl-C
        # just then) must not kill the worker before its result is sent.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        results_queue.put(("result", index, run.result()))

    asyncio.run(main())
