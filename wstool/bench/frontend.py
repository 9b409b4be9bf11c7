"""``wstool bench``'s front-end: the live display, the final report, the exit status.

On a terminal (stdout a tty, no ``--json``): a live display (rich, two lines) while the run goes,
then the report as a table. In a pipe: only the report. ``--json``: the report as
one JSON object (README, "wstool bench"). Ctrl-C stops the run and prints what was
measured so far (exit 130); a crossed ``--fail-if`` exits 8.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
from collections.abc import Callable
from typing import Any

from wstool.bench.generator import BenchRun, Snapshot
from wstool.bench.report import (
    build_report,
    check_thresholds,
    histogram_note,
    merge_results,
)
from wstool.bench.stats import Histogram, percentile_of_counts
from wstool.bench.workers import run_workers
from wstool.config import BenchConfig, ConnectConfig
from wstool.errors import ExitStatus, WstoolError, describe_close_code
from wstool.term.env import Environment
from wstool.term.render import escape
from wstool.term.signals import handle_signals


def loop_name() -> str:
    loop = asyncio.get_running_loop()
    return "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"


class _Series:
    """--html: one point per progress tick (rates since the previous tick)."""

    def __init__(self) -> None:
        self.points: list[dict[str, float]] = []
        self.last: Snapshot | None = None

    def add(self, snap: Snapshot) -> None:
        last, self.last = self.last, snap
        if last is None or snap.phase not in ("warmup", "measuring"):
            return
        dt = max(snap.elapsed_s - last.elapsed_s, 1e-9)
        point = {"elapsed_s": snap.elapsed_s,
                 "sent_per_s": max(0, snap.sent - last.sent) / dt,
                 "received_per_s": max(0, snap.received - last.received) / dt,
                 "p50_s": percentile_of_counts(snap.interval, 50) / 1e6,
                 "p99_s": percentile_of_counts(snap.interval, 99) / 1e6,
                 "errors": float(snap.failed + snap.closed_early)}
        self.points.append(point)


def _both(*shows: Callable[[Snapshot], None] | None) -> Callable[[Snapshot], None] | None:
    wanted = [show for show in shows if show is not None]
    if not wanted:
        return None

    def show(snap: Snapshot) -> None:
        for one in wanted:
            one(snap)

    return show


async def run_bench(env: Environment, cfg: BenchConfig, conn_cfg: ConnectConfig, *,
                    json_output: bool, quiet: bool = False,
                    html_path: str | None = None) -> int:
    stop = asyncio.Event()
    signals: list[signal.Signals] = []

    def on_signal(sig: signal.Signals) -> None:
        signals.append(sig)
        stop.set()

    live = env.stdout_isatty and not json_output
    progress: _Progress | None = None
    with handle_signals({signal.SIGINT: lambda: on_signal(signal.SIGINT),
                         signal.SIGTERM: lambda: on_signal(signal.SIGTERM)}):
        series = _Series() if html_path is not None else None
        if live:
            progress = _Progress(env, cfg)
        show = _both(progress.show if progress is not None else None,
                     series.add if series is not None else None)
        try:
            if cfg.procs > 1:
                results = await run_workers(cfg, conn_cfg, stop, show)
            else:
                run = BenchRun(cfg, conn_cfg)
                ticker = None
                if show is not None:
                    ticker = asyncio.ensure_future(_tick(run.snapshot, show, cfg))
                try:
                    await run.run(stop)
                finally:
                    if ticker is not None:
                        ticker.cancel()
                        await asyncio.gather(ticker, return_exceptions=True)
                results = [run.result()]
        finally:  # the live display gives the cursor back, whatever ended the run
            if progress is not None:
                progress.stop()
    merged = merge_results(results)
    interrupted = merged["interrupted"] or bool(signals)
    merged["interrupted"] = interrupted
    report = build_report(merged, cfg, conn_cfg.target.unix_path or conn_cfg.target.url,
                          loop=loop_name())
    checks = check_thresholds(report, cfg.thresholds)
    report["thresholds"] = checks
    if json_output:
        env.stdout.write(json.dumps(report).encode() + b"\n")
        env.stdout.flush()
    else:
        render_report(env, report)
        if live:  # pictures on a terminal only: a pipe gets the table alone
            render_pictures(env, merged["latency"],
                            progress.history if progress is not None else [])
    if html_path is not None:
        from wstool.bench.html import CURVE_PERCENTILES, render_html

        latency: Histogram = merged["latency"]
        curve = ([(p, latency.percentile_us(p) / 1e6) for p in CURVE_PERCENTILES]
                 if latency.count else [])
        page = render_html(report, curve, series.points if series is not None else [])
        try:
            with open(html_path, "w", encoding="utf-8") as file:
                file.write(page)
        except OSError as exc:
            raise WstoolError(f"cannot write --html {html_path}: "
                              f"{exc.strerror or exc}") from exc
    note = histogram_note()
    if note and not quiet and not json_output:
        env.write_stderr_line(f"wstool: note: {note}")
    if report["generator"]["saturated"] and not quiet:
        share = report["generator"]["cpu_share"]
        env.write_stderr_line(
            f"wstool: warning: the generator used {share:.0%} of a CPU: it, not the server, "
            "may be the bottleneck (try --procs N, or fewer connections)")
    lost = merged["lost_workers"]
    if lost:  # the figures above are the other workers' only: said, and a failure
        env.write_stderr_line(
            f"wstool: error: {len(lost)} of {merged['procs']} --procs workers ended without "
            f"a result, their connections are missing from the figures: {'; '.join(lost)}")
    if signals and signals[-1] == signal.SIGTERM:
        return int(ExitStatus.TERMINATED)
    if interrupted:
        return int(ExitStatus.INTERRUPTED)
    if lost:
        return int(ExitStatus.ERROR)
    crossed = [c for c in checks if c["crossed"]]
    for check in crossed:
        value = check["value"]
        env.write_stderr_line(
            f"wstool: error: --fail-if '{check['expr']}' crossed "
            f"(measured: {'nothing' if value is None else _figure(check['expr'], value)})")
    return int(ExitStatus.EXPECTATION_NOT_MET) if crossed else int(ExitStatus.OK)


async def _tick(snapshot: Callable[[], Snapshot], show: Callable[[Snapshot], None],
                cfg: BenchConfig) -> None:
    while True:
        await asyncio.sleep(cfg.progress_interval_s)
        show(snapshot())


class _Progress:
    """The live line on a terminal: elapsed, connections, msgs/s each way, p50/p99."""

    def __init__(self, env: Environment, cfg: BenchConfig) -> None:
        from rich.live import Live

        self.console = env.stdout_console()
        self.live = Live(console=self.console, transient=True, auto_refresh=False)
        self.live.start()
        self.last: Snapshot | None = None
        self.stopped = False
        # (elapsed s, p50 ms, p99 ms) per tick of the measured window: the chart
        self.history: list[tuple[float, float, float]] = []

    def show(self, snap: Snapshot) -> None:
        from rich.text import Text

        last = self.last
        self.last = snap
        dt = snap.elapsed_s - last.elapsed_s if last is not None else snap.elapsed_s
        sent = snap.sent - (last.sent if last is not None and snap.sent >= last.sent else 0)
        received = snap.received - (
            last.received if last is not None and snap.received >= last.received else 0)
        # Two lines, each under 80 columns: on one, a narrow terminal cut off p99.
        line = (f"{snap.elapsed_s:6.1f}s  {snap.phase:<9}  connections {snap.open_now} open, "
                f"{snap.failed} failed\n         sent {sent / max(dt, 1e-9):,.0f}/s  "
                f"received {received / max(dt, 1e-9):,.0f}/s")
        if snap.interval:
            p50 = percentile_of_counts(snap.interval, 50) / 1e3
            p99 = percentile_of_counts(snap.interval, 99) / 1e3
            line += f"  p50 {p50:.3g} ms  p99 {p99:.3g} ms"
            if snap.phase == "measuring":
                self.history.append((snap.elapsed_s, p50, p99))
        self.live.update(Text(line), refresh=True)

    def stop(self) -> None:
        if not self.stopped:
            self.stopped = True
            self.live.stop()


def _ms(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    ms = seconds * 1e3
    return f"{ms:.3g} ms" if ms < 1000 else f"{ms:,.0f} ms"


def _rate(value: float) -> str:
    return f"{value:,.0f}/s"


def _bytes_rate(value: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.3g} {unit}/s"
        value /= 1000
    return ""  # pragma: no cover


def _figure(expr: str, value: float) -> str:
    metric = expr.lower().lstrip().split("<")[0].split(">")[0].split("=")[0].strip()
    if metric == "errors":
        return f"{value:g}"
    if metric == "rate":
        return f"{value:,.0f}/s"
    return _ms(value)


def render_report(env: Environment, report: dict[str, Any]) -> None:
    """The final table (rich; plain text in a pipe)."""
    from rich.table import Table

    console = env.stdout_console()
    conns = report["connections"]
    title = f"wstool bench {report['mode']} {escape(report['url'])}"
    if report["interrupted"]:
        title += " (interrupted: partial)"
    table = Table(title=title, show_header=False, title_justify="left", box=None,
                  pad_edge=False)
    table.add_column("what", style="bold")
    table.add_column("value")
    rows: list[tuple[str, str]] = [
        ("duration", f"{report['duration_s']:.3g} s measured"),
    ]
    if report["mode"] == "connect":
        rows.append(("connections", f"{conns['opened']} opened, {conns['failed']} failed "
                                    f"({conns['requested']} at a time)"))
    else:
        rows.append(("connections", f"{conns['opened']} opened, {conns['failed']} failed "
                                    f"of {conns['requested']}"))
        by_client = (f"{conns['closed_by_client']} closed by wstool (a protocol error), "
                     if conns["closed_by_client"] else "")
        rows.append(("", f"{conns['closed_by_server']} closed by the server, {by_client}"
                         f"{conns['open_at_end']} open at the end"))
    failures = conns["failures"]
    for status, n in failures["http_status"].items():
        rows.append(("  failed", f"{n} x HTTP {status}"))
    for code, n in failures["close_code"].items():
        rows.append(("  closed", f"{n} x close code {code} ({describe_close_code(int(code))})"))
    for error, n in failures["error"].items():
        rows.append(("  error", f"{n} x {escape(error)}"))
    hs = report["handshake"]
    if hs.get("count"):
        rows.append(("handshake", f"p50 {_ms(hs['p50'])}  p90 {_ms(hs['p90'])}  "
                                  f"p99 {_ms(hs['p99'])}  max {_ms(hs['max'])}"))
    if "handshakes" in report:
        hsk = report["handshakes"]
        rows.append(("handshakes", f"{hsk['count']} ({_rate(hsk['per_s'])})"))
        for phase, figures in hsk["phases"].items():
            rows.append((f"  {phase}", f"p50 {_ms(figures['p50'])}  p99 {_ms(figures['p99'])}"
                                       f"  max {_ms(figures['max'])}"))
    msgs = report["messages"]
    if report["mode"] in ("echo", "request"):
        rows.append(("sent", f"{msgs['sent']:,} msgs  {_rate(msgs['sent_per_s'])}  "
                             f"{_bytes_rate(msgs['bytes_sent_per_s'])}"))
        rows.append(("received", f"{msgs['received']:,} msgs  "
                                 f"{_rate(msgs['received_per_s'])}  "
                                 f"{_bytes_rate(msgs['bytes_received_per_s'])}"))
        if msgs["unmatched"]:
            rows.append(("unmatched", f"{msgs['unmatched']:,} (pushed by the server, or no "
                                      "request waiting)"))
        if msgs["lost"]:
            rows.append(("lost", f"{msgs['lost']:,} in flight when their connection closed"))
        lat = report["latency"]
        if lat.get("count"):
            rows.append(("round trip", f"min {_ms(lat['min'])}  p50 {_ms(lat['p50'])}  "
                                       f"p90 {_ms(lat['p90'])}  p99 {_ms(lat['p99'])}"))
            rows.append(("", f"p99.9 {_ms(lat['p99.9'])}  max {_ms(lat['max'])}  "
                             f"({lat['count']:,} samples)"))
    if "slow_readers" in report:
        slow = report["slow_readers"]
        lat = slow["latency"]
        line = f"{slow['connections']} connections, {slow['received']:,} msgs"
        if lat.get("count"):
            line += f"; round trip p50 {_ms(lat['p50'])}  p99 {_ms(lat['p99'])}"
        rows.append(("slow readers", line + " (not in the round trip above)"))
    if "broadcast" in report:
        b = report["broadcast"]
        rows.append(("published", f"{b['published']:,} msgs to {b['subscribers']} "
                                  f"subscribers ({_rate(msgs['sent_per_s'])})"))
        rows.append(("delivered", f"{b['delivered']:,} of {b['expected']:,}; {b['missed']:,} "
                                  f"missed by {b['subscribers_missing']} subscribers (at "
                                  f"most {b['max_missed']:,} each)"))
        lat = report["latency"]
        if lat.get("count"):
            rows.append(("fan-out", f"min {_ms(lat['min'])}  p50 {_ms(lat['p50'])}  "
                                    f"p90 {_ms(lat['p90'])}  p99 {_ms(lat['p99'])}  "
                                    f"max {_ms(lat['max'])}"))
    if "ping" in report and report["ping"].get("count"):
        ping = report["ping"]
        rows.append(("ping rtt", f"p50 {_ms(ping['p50'])}  p99 {_ms(ping['p99'])}  "
                                 f"max {_ms(ping['max'])}  ({ping['count']:,} pongs)"))
    gen = report["generator"]
    rows.append(("errors", str(report["errors"])))
    rows.append(("generator", f"{gen['cpu_s']:.2f} CPU s ({gen['cpu_share']:.0%} of "
                              f"{gen['procs']} process{'es' if gen['procs'] > 1 else ''}), "
                              f"{gen['loop']}"))
    for check in report.get("thresholds", []):
        value = check["value"]
        shown = "nothing" if value is None else _figure(check["expr"], value)
        rows.append(("--fail-if", f"{check['expr']}: {'CROSSED' if check['crossed'] else 'ok'}"
                                  f" ({shown})"))
    for what, value in rows:
        table.add_row(what, value)
    with contextlib.suppress(BrokenPipeError):
        if env.stdout_isatty:
            console.print(table)
        else:  # plain lines for grep and diff: without rich's padding to the width
            with console.capture() as captured:
                console.print(table)
            lines = captured.get().splitlines()
            env.stdout.write("".join(f"{line.rstrip()}\n" for line in lines).encode())
        env.stdout.flush()


_SPARKS = "▁▂▃▄▅▆▇█"
_MAX_ROWS = 14
_BAR_WIDTH = 40


def latency_rows(histogram: Histogram) -> list[tuple[int, int, int]]:
    """(low µs, high µs, count) per power-of-two bucket from min to max, at most
    _MAX_ROWS of them (the lowest merged into the first)."""
    histogram.fold()
    if not histogram.count or histogram.min_us is None:
        return []
    low = 1 << max(0, histogram.min_us.bit_length() - 1)
    edges = [low]
    while edges[-1] <= histogram.max_us:
        edges.append(edges[-1] * 2)
    if len(edges) - 1 > _MAX_ROWS:
        edges = [edges[0], *edges[len(edges) - _MAX_ROWS:]]
    counts = histogram.buckets(edges)  # [below, edges[0]..edges[1], ..., above]
    rows = []
    for i in range(len(edges) - 1):
        n = counts[i + 1] + (counts[0] if i == 0 else 0)
        rows.append((edges[i], edges[i + 1], n))
    rows[-1] = (rows[-1][0], rows[-1][1], rows[-1][2] + counts[-1])
    return rows


def sparkline(values: list[float]) -> str:
    if not values:
        return ""
    top = max(values) or 1.0
    return "".join(_SPARKS[min(len(_SPARKS) - 1, int(v / top * (len(_SPARKS) - 1) + 0.5))]
                   for v in values)


def render_pictures(env: Environment, latency: Histogram,
                    history: list[tuple[float, float, float]]) -> None:
    """On a terminal, after the table: the round-trip latency histogram and p50/p99
    over the measured window, drawn with rich."""
    from rich.table import Table
    from rich.text import Text

    rows = latency_rows(latency)
    if not rows:
        return
    console = env.stdout_console()
    total = sum(n for _, _, n in rows) or 1
    widest = max(n for _, _, n in rows) or 1
    table = Table(title="round-trip latency", title_justify="left", show_header=False,
                  box=None, pad_edge=False)
    table.add_column("range", justify="right")
    table.add_column("bar")
    table.add_column("count", justify="right")
    for low, high, n in rows:
        bar = "█" * max(1 if n else 0, round(n / widest * _BAR_WIDTH))
        table.add_row(f"{low / 1e3:.3g}-{high / 1e3:.3g} ms", Text(bar, style="cyan"),
                      f"{n:,} ({n / total:.1%})")
    with contextlib.suppress(BrokenPipeError):
        console.print(table)
        if len(history) >= 2:
            p50s = [p50 for _, p50, _ in history]
            p99s = [p99 for _, _, p99 in history]
            span = f"{history[0][0]:.3g}-{history[-1][0]:.3g} s"  # 1-1.5 s, not 1-1 s
            console.print(Text(f"p50 over {span}  {sparkline(p50s)}  max {max(p50s):.3g} ms"))
            console.print(Text(f"p99 over {span}  {sparkline(p99s)}  max {max(p99s):.3g} ms"))
        env.stdout.flush()
