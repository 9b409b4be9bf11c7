"""``wstool probe``'s report: aligned text for people, one JSON object for machines.

Remote text (status reasons, bodies, certificate names, SETTINGS are numbers) is
escaped before it reaches a terminal.
"""

from __future__ import annotations

from typing import Any

from wstool.http2.probe import NOT_TRIED, H2Result, ProbeReport, TransportResult, UpgradeResult
from wstool.term.render import escape, milliseconds


def _ms(seconds: float | None) -> str:
    return f" in {milliseconds(seconds)}" if seconds is not None else ""


def _transport_lines(result: TransportResult, secure: bool) -> list[str]:
    if not result.ok:
        return [f"failed: {escape(result.error or '')}"]
    if not secure:
        return [f"TCP connected{_ms(result.elapsed_s)} (no TLS: ws://)"]
    return [
        f"TLS {result.tls_version}, cipher {result.cipher}{_ms(result.elapsed_s)}",
        f"ALPN offered {', '.join(result.alpn_offered)}; chosen "
        f"{escape(result.alpn_chosen or 'none')}",
        f"certificate: {escape(result.certificate or '?')}",
    ]


def _failure(error: str | None, prefix: str) -> str:
    # An attempt skipped (no TCP/TLS) says "not tried: ...", not "failed".
    text = escape(error or "?")
    return text if text.startswith(NOT_TRIED) else f"{prefix}: {text}"


def _upgrade_lines(result: UpgradeResult) -> list[str]:
    if result.ok:
        return [f"{result.status} {escape(result.reason)}{_ms(result.elapsed_s)}; "
                f"subprotocol {escape(result.subprotocol or '-')}; extensions "
                f"{escape(', '.join(result.extensions) or '-')}"]
    if result.status is not None:
        line = f"refused: HTTP {result.status} {escape(result.reason)}".rstrip()
        line += _ms(result.elapsed_s)
        return [line + (f": {escape(result.body)}" if result.body else "")]
    return [_failure(result.error, "failed")]


def _h2_lines(result: H2Result) -> list[str]:
    lines: list[str] = []
    if not result.h2:
        return [_failure(result.error, "not spoken")]
    how = "h2c (prior knowledge)" if result.cleartext else "h2 chosen in ALPN"
    lines.append(f"{how}; SETTINGS " +
                 (" ".join(f"{name}={value}" for name, value in result.settings) or "(none)"))
    lines.append("ENABLE_CONNECT_PROTOCOL " + ("1 (extended CONNECT advertised)"
                 if result.enable_connect_protocol else "not advertised")
                 + "; MAX_CONCURRENT_STREAMS "
                 + (str(result.max_concurrent_streams)
                    if result.max_concurrent_streams is not None else "unlimited"))
    if result.ok:
        lines.append(f"extended CONNECT: :status 200{_ms(result.elapsed_s)}; subprotocol "
                     f"{escape(result.subprotocol or '-')}; extensions "
                     f"{escape(', '.join(result.extensions) or '-')}")
    elif result.status is not None:
        line = f"extended CONNECT refused: :status {result.status} {escape(result.reason)}"
        line = line.rstrip() + _ms(result.elapsed_s)
        lines.append(line + (f": {escape(result.body)}" if result.body else ""))
    elif result.enable_connect_protocol:
        lines.append(f"extended CONNECT failed: {escape(result.error or '?')}")
    return lines


def text_lines(report: ProbeReport) -> list[str]:
    secure = report.url.startswith("wss://")
    rows = [
        ("TCP/TLS" if secure else "TCP", _transport_lines(report.transport, secure)),
        ("HTTP/1.1", _upgrade_lines(report.http11)),
        ("HTTP/2", _h2_lines(report.http2)),
        ("verdict", [escape(line) for line in report.verdict]),
    ]
    lines = [f"probe {escape(report.url)}"]
    for label, values in rows:
        for i, value in enumerate(values):
            lines.append(f"  {label if i == 0 else '':<9} {value}")
    return lines


def _plain(value: Any) -> Any:
    if hasattr(value, "_asdict"):
        return {k: _plain(v) for k, v in value._asdict().items()}
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


def json_object(report: ProbeReport) -> dict[str, Any]:
    data: dict[str, Any] = _plain(report)
    data["http2"]["settings"] = dict(report.http2.settings)
    data["accepted"] = report.accepted
    return data
