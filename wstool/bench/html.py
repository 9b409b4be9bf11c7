"""``--html FILE``: the report as one self-contained page (inline SVG, no scripts, no
network fetches), for a CI job to keep as an artifact.

Pure: the report object, the percentile curve and the per-tick series in, a string
out. Every text that came from outside (the URL, error messages) is escaped.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from typing import Any

from wstool.errors import describe_close_code

# The percentile curve's points (HdrHistogram's usual plot: x = 1/(1-p), log scale).
CURVE_PERCENTILES = (0.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.5, 99.9, 99.95, 99.99, 100.0)

_W, _H, _PAD = 640, 220, 48


def _esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1e3:.3g} ms"


def _line_chart(title: str, series: Sequence[tuple[str, Sequence[tuple[float, float]]]],
                *, x_label: str, y_label: str, log_x: bool = False) -> str:
    """One SVG chart: each series a polyline of (x, y) points."""
    points = [p for _, pts in series for p in pts]
    if not points:
        return f"<h2>{_esc(title)}</h2><p>nothing measured</p>"

    def fx(x: float) -> float:
        return math.log10(x) if log_x else x

    xs = [fx(x) for x, _ in points]
    x0, x1 = min(xs), max(xs)
    y1 = max(y for _, y in points) or 1.0
    span = (x1 - x0) or 1.0
    colours = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e")
    out = [f'<h2>{_esc(title)}</h2><svg width="{_W}" height="{_H}" role="img" '
           f'aria-label="{_esc(title)}">',
           f'<rect x="{_PAD}" y="8" width="{_W - _PAD - 8}" height="{_H - _PAD - 8}" '
           'fill="none" stroke="#999"/>',
           f'<text x="{_PAD}" y="{_H - 8}" font-size="11">{_esc(x_label)}</text>',
           f'<text x="4" y="16" font-size="11">{_esc(y_label)}</text>',
           f'<text x="4" y="{_H - _PAD}" font-size="10">0</text>',
           f'<text x="4" y="28" font-size="10">{y1:.3g}</text>']
    for i, (name, pts) in enumerate(series):
        colour = colours[i % len(colours)]
        coords = " ".join(
            f"{_PAD + (fx(x) - x0) / span * (_W - _PAD - 8):.1f},"
            f"{_H - _PAD - y / y1 * (_H - _PAD - 16):.1f}" for x, y in pts)
        out.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" '
                   f'points="{coords}"/>')
        out.append(f'<text x="{_W - 120}" y="{24 + 14 * i}" font-size="11" '
                   f'fill="{colour}">{_esc(name)}</text>')
    out.append("</svg>")
    return "".join(out)


def render_html(report: dict[str, Any], curve: Sequence[tuple[float, float]],
                series: Sequence[dict[str, float]]) -> str:
    """CURVE: (percentile, latency s); SERIES: per tick, elapsed_s, sent_per_s,
    received_per_s, p50_s, p99_s, errors."""
    conns = report["connections"]
    lat = report["latency"]
    msgs = report["messages"]
    rows = [
        ("mode", report["mode"]), ("url", report["url"]),
        ("measured", f"{report['duration_s']:.3g} s"
         + (" (interrupted: partial)" if report["interrupted"] else "")),
        ("connections", f"{conns['opened']} opened, {conns['failed']} failed of "
                        f"{conns['requested']}; {conns['closed_by_server']} closed by the "
                        "server" + (f", {conns['closed_by_client']} by wstool (a protocol "
                                    "error)" if conns["closed_by_client"] else "")),
        ("handshake", "  ".join(f"{k} {_ms(report['handshake'].get(k))}" for k in
                                ("p50", "p90", "p99", "max"))),
    ]
    # What the terminal's table shows for each mode (wstool/bench/frontend.py).
    if "handshakes" in report:
        hsk = report["handshakes"]
        rows.append(("handshakes", f"{hsk['count']:,} ({hsk['per_s']:,.0f}/s)"))
        for phase, figures in hsk["phases"].items():
            rows.append((phase, "  ".join(f"{k} {_ms(figures.get(k))}"
                                          for k in ("p50", "p99", "max"))))
    if report["mode"] in ("echo", "request", "broadcast"):
        rows.append(("sent", f"{msgs['sent']:,} ({msgs['sent_per_s']:,.0f}/s)"))
        rows.append(("received", f"{msgs['received']:,} ({msgs['received_per_s']:,.0f}/s)"))
    if "broadcast" in report:
        b = report["broadcast"]
        rows.append(("delivered", f"{b['delivered']:,} of {b['expected']:,}; {b['missed']:,} "
                                  f"missed by {b['subscribers_missing']} subscribers"))
    if lat.get("count"):
        rows.append(("fan-out" if report["mode"] == "broadcast" else "round trip",
                     "  ".join(f"{k} {_ms(lat.get(k))}" for k in
                               ("min", "p50", "p90", "p99", "p99.9", "max"))))
    if "slow_readers" in report and report["slow_readers"]["latency"].get("count"):
        slow = report["slow_readers"]
        rows.append(("slow readers", f"{slow['connections']} connections: "
                     + "  ".join(f"{k} {_ms(slow['latency'].get(k))}"
                                 for k in ("p50", "p99", "max"))))
    if report.get("ping", {}).get("count"):
        rows.append(("ping rtt", "  ".join(f"{k} {_ms(report['ping'].get(k))}"
                                           for k in ("p50", "p99", "max"))))
    rows += [
        ("errors", report["errors"]),
        ("generator", f"{report['generator']['cpu_s']:.2f} CPU s, "
                      f"{report['generator']['cpu_share']:.0%} of "
                      f"{report['generator']['procs']} process(es)"),
    ]
    failures = conns["failures"]
    for status, n in failures["http_status"].items():
        rows.append(("failed", f"{n} x HTTP {status}"))
    for code, n in failures["close_code"].items():
        rows.append(("closed", f"{n} x close code {code} ({describe_close_code(int(code))})"))
    for error, n in failures["error"].items():
        rows.append(("error", f"{n} x {error}"))
    for check in report.get("thresholds", []):
        rows.append(("--fail-if", f"{check['expr']}: "
                                  f"{'CROSSED' if check['crossed'] else 'ok'}"))
    table = "".join(f"<tr><th>{_esc(k)}</th><td>{_esc(v)}</td></tr>" for k, v in rows)
    curve_pts = [(1 / (1 - p / 100) if p < 100 else 1e6, v * 1e3) for p, v in curve]
    charts = [
        _line_chart("Round-trip latency by percentile",
                    [("latency (ms)", curve_pts)], log_x=True,
                    x_label="percentile: 0, 90, 99, 99.9, 99.99 (log scale of 1/(1-p))",
                    y_label="ms"),
        _line_chart("Latency over time",
                    [("p50", [(s["elapsed_s"], s["p50_s"] * 1e3) for s in series]),
                     ("p99", [(s["elapsed_s"], s["p99_s"] * 1e3) for s in series])],
                    x_label="elapsed s", y_label="ms"),
        _line_chart("Throughput over time",
                    [("sent/s", [(s["elapsed_s"], s["sent_per_s"]) for s in series]),
                     ("received/s", [(s["elapsed_s"], s["received_per_s"]) for s in series])],
                    x_label="elapsed s", y_label="msgs/s"),
        _line_chart("Errors over time (failed + closed by the server, cumulative)",
                    [("errors", [(s["elapsed_s"], s["errors"]) for s in series])],
                    x_label="elapsed s", y_label="count"),
    ]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>wstool bench {_esc(report['mode'])} {_esc(report['url'])}</title>"
            "<style>body{font-family:sans-serif;margin:2em}th{text-align:left;"
            "padding-right:1em;vertical-align:top}td{font-family:monospace}</style>"
            f"</head><body><h1>wstool bench</h1><table>{table}</table>"
            + "".join(charts) + "</body></html>\n")
