"""The report of a bench run: generators' results merged, the figures, the thresholds.

Pure: dicts in, dicts out. ``build_report`` gives the object ``--json`` writes (its
schema is in README, "wstool bench"); every time in it is in seconds.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from wstool.bench.stats import Histogram, hdr_available
from wstool.config import BenchConfig, Threshold

LATENCY_PERCENTILES = (50, 90, 99, 99.9)
HANDSHAKE_PERCENTILES = (50, 90, 99)
# Warn when the generator used this share of the CPU time it had (per process):
# past it, the figures measure the generator as much as the server.
SATURATED_CPU_SHARE = 0.9
# ... over a measured window at least this long (a run of a few ms says nothing of it).
SATURATED_MIN_WINDOW_S = 0.2

_COUNTS = ("requested", "opened", "failed", "closed_early", "closed_by_client", "kept", "sent",
           "received", "bytes_sent", "bytes_received", "unmatched", "lost", "handshakes",
           "workers_lost")


def merge_results(results: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Several generators' results (``--procs``) as one: counts added, histograms merged
    exactly, the window the longest, CPU time added."""
    merged: dict[str, Any] = {key: sum(r[key] for r in results) for key in _COUNTS}
    merged["wall_s"] = max(r["wall_s"] for r in results)
    merged["cpu_s"] = sum(r["cpu_s"] for r in results)
    merged["interrupted"] = any(r["interrupted"] for r in results)
    merged["procs"] = len(results)
    merged["lost_workers"] = [text for r in results for text in r["lost_workers"]]
    failures: dict[str, dict[str, int]] = {"http_status": {}, "close_code": {}, "error": {}}
    for r in results:
        for group, counts in r["failures"].items():
            for key, n in counts.items():
                failures[group][key] = failures[group].get(key, 0) + n
    merged["failures"] = failures
    for name in ("latency", "handshake", "ping"):
        merged[name] = _merged([r[name] for r in results])
    merged["broadcast"] = {
        "published": max(r["broadcast"]["published"] for r in results),
        "missed": sum(r["broadcast"]["missed"] for r in results),
        "subscribers_missing": sum(r["broadcast"]["subscribers_missing"] for r in results),
        "max_missed": max(r["broadcast"]["max_missed"] for r in results),
    }
    merged["slow_readers"] = {
        "connections": sum(r["slow_readers"]["connections"] for r in results),
        "received": sum(r["slow_readers"]["received"] for r in results),
        "latency": _merged([r["slow_readers"]["latency"] for r in results]),
    }
    merged["phases"] = {
        phase: _merged([r["phases"][phase] for r in results]) for phase in results[0]["phases"]}
    return merged


def _merged(encoded: Sequence[str]) -> Histogram:
    histogram = Histogram()
    for item in encoded:
        histogram.merge(item)
    return histogram


def build_report(result: dict[str, Any], cfg: BenchConfig, url: str,
                 *, loop: str) -> dict[str, Any]:
    """The report object (README: "wstool bench", the --json schema)."""
    wall = result["wall_s"]
    latency: Histogram = result["latency"]
    handshake: Histogram = result["handshake"]
    ping: Histogram = result["ping"]
    cpu = result["cpu_s"]
    procs = result.get("procs", 1)
    cpu_share = cpu / wall / procs if wall else 0.0
    failures = result["failures"]
    errors = result["failed"] + sum(
        n for code, n in failures["close_code"].items() if int(code) not in (1000, 1001))
    report: dict[str, Any] = {
        "mode": cfg.mode,
        "url": url,
        "interrupted": result["interrupted"],
        "duration_s": wall,
        "connections": {
            "requested": result["requested"],
            "opened": result["opened"],
            "failed": result["failed"],
            "closed_by_server": result["closed_early"] - result["closed_by_client"],
            "closed_by_client": result["closed_by_client"],
            "open_at_end": result["kept"],
            "failures": failures,
        },
        "handshake": handshake.summary_s(HANDSHAKE_PERCENTILES),
        "messages": {
            "sent": result["sent"],
            "received": result["received"],
            "sent_per_s": result["sent"] / wall,
            "received_per_s": result["received"] / wall,
            "bytes_sent": result["bytes_sent"],
            "bytes_received": result["bytes_received"],
            "bytes_sent_per_s": result["bytes_sent"] / wall,
            "bytes_received_per_s": result["bytes_received"] / wall,
            "unmatched": result["unmatched"],
            "lost": result["lost"],
        },
        "latency": latency.summary_s(LATENCY_PERCENTILES),
        "errors": errors,
        "generator": {
            "procs": procs,
            "loop": loop,
            "cpu_s": cpu,
            "cpu_share": cpu_share,
            "messages_per_cpu_s": (result["received"] / cpu) if cpu else None,
            "saturated": cpu_share >= SATURATED_CPU_SHARE and wall >= SATURATED_MIN_WINDOW_S,
            "histogram": latency.kind,
            "workers_lost": result["workers_lost"],
        },
        "latency_hdr": latency.hdr_base64(),
    }
    if cfg.mode == "connect":
        phases = result["phases"]
        report["handshakes"] = {
            "count": result["handshakes"],
            "per_s": result["handshakes"] / wall,
            "phases": {name: h.summary_s(HANDSHAKE_PERCENTILES)
                       for name, h in phases.items() if h.count},
        }
    if cfg.slow_readers_percent:
        slow = result["slow_readers"]
        report["slow_readers"] = {
            "connections": slow["connections"], "received": slow["received"],
            "latency": slow["latency"].summary_s(LATENCY_PERCENTILES)}
    if cfg.mode == "broadcast":
        b = result["broadcast"]
        report["broadcast"] = {
            "subscribers": result["opened"], "published": b["published"],
            "expected": b["published"] * result["opened"],
            "delivered": result["received"], "missed": b["missed"],
            "subscribers_missing": b["subscribers_missing"], "max_missed": b["max_missed"],
        }
    if cfg.mode == "idle" or ping.count:
        report["ping"] = ping.summary_s(LATENCY_PERCENTILES)
    return report


def measured(report: dict[str, Any], metric: str) -> float | None:
    """The figure a --fail-if METRIC is checked against (None: not measured)."""
    if metric == "errors":
        return float(report["errors"])
    if metric == "rate":
        return float(report["messages"]["received_per_s"] if report["mode"] != "connect"
                     else report["handshakes"]["per_s"])
    source = report["latency"]
    if report["mode"] == "connect":
        source = report["handshake"]
    elif report["mode"] == "idle":
        source = report.get("ping", {})
    value = source.get(metric)
    return None if value is None else float(value)


def check_thresholds(report: dict[str, Any],
                     thresholds: Sequence[Threshold]) -> list[dict[str, Any]]:
    """One entry per --fail-if: its text, the figure measured, whether it was crossed.
    A latency threshold with no latency measured (nothing came back) is crossed."""
    out = []
    for threshold in thresholds:
        value = measured(report, threshold.metric)
        crossed = True if value is None else threshold.crossed(value)
        out.append({"expr": threshold.source, "value": value, "crossed": crossed})
    return out


def histogram_note() -> str | None:
    """Said once in the report when the HDR histogram is not installed."""
    if hdr_available():
        return None
    return ("latency percentiles from exact microsecond counts (hdrhistogram not installed: "
            "pip install 'wstool[bench]')")
