"""The raw option values of ``connect`` -> the frozen records of ``config.py``, without click.

The builders ``cli/options.py`` re-exports (its option factories need click; these do
not), so that the click-free start of a plain ``connect`` (``cli/fast.py``, issue 14)
builds its records with exactly the code the click command uses. Each raises
``UsageError`` with a one-line message on bad input.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from wstool.config import (
    ClientRunConfig,
    ConnectConfig,
    OutputConfig,
    StreamConfig,
    TLSConfig,
    handshake_headers,
    parse_auth,
    parse_header,
    parse_target,
    seconds_or_none,
    size_or_none,
    split_userinfo,
)
from wstool.errors import UsageError


def stream_config(raw: dict[str, Any]) -> StreamConfig:
    """The values of @stream_options as a record (connect and listen)."""
    if raw["binary"] and raw["null_separated"]:
        # -b sends stdin as it arrives and writes payloads raw: nothing is separated.
        raise UsageError("-0/--null separates text messages; -b/--binary has no "
                         "separator: give one of them")
    return StreamConfig(
        null_separated=raw["null_separated"],
        binary=raw["binary"],
        base64=raw["use_base64"],
        chunk_size_bytes=raw["chunk_size"],
    )


def tls_config(raw: Mapping[str, Any]) -> TLSConfig:
    """``tls_options`` -> ``TLSConfig`` (connect, and frame-dump's relay upstream)."""
    if raw.get("key") and not raw.get("cert"):
        raise UsageError("--key needs --cert (the client certificate it belongs to)")
    return TLSConfig(
        cafile=raw.get("cacert"),
        certfile=raw.get("cert"),
        keyfile=raw.get("key"),
        key_password=raw.get("key_password"),
        insecure=bool(raw.get("insecure")),
        server_name=raw.get("server_name"),
        keylog_file=raw.get("keylog"),
    )


def _open_timeout_s(value: float) -> float | None:
    if value < 0:
        raise UsageError("invalid --open-timeout: must be 0 (none) or more")
    return seconds_or_none(value)


def connect_config(url: str, raw: Mapping[str, Any]) -> ConnectConfig:
    target, url_auth = split_userinfo(parse_target(url))
    auth = parse_auth(raw["auth"]) if raw.get("auth") else url_auth
    tls = tls_config(raw)
    open_timeout_s = _open_timeout_s(raw["open_timeout"])
    close_timeout = raw.get("close_timeout", 5.0)
    if close_timeout < 0:
        raise UsageError("invalid --close-timeout: must be 0 (do not wait) or more")
    proxy = "" if raw.get("no_proxy") else raw.get("proxy")
    if proxy and proxy.split("://", 1)[0] not in ("http", "https", "socks5", "socks5h",
                                                   "socks4", "socks4a"):
        raise UsageError(f"invalid --proxy '{proxy}': use http://, https:// or socks5://")
    headers = handshake_headers(
        tuple(parse_header(h) for h in raw.get("headers", ())),
        user_agent=raw.get("user_agent"), origin=raw.get("origin"),
    )
    return ConnectConfig(
        target=target,
        headers=headers.extra,
        subprotocols=tuple(raw.get("subprotocols", ())),
        origin=headers.origin,
        auth=auth,
        user_agent=headers.user_agent,
        host_header=headers.host,
        tls=tls,
        proxy=proxy,
        compress=raw.get("compress", True),
        max_size_bytes=size_or_none(raw["max_size"]),
        open_timeout_s=open_timeout_s,
        ping_interval_s=seconds_or_none(raw["ping_interval"]),
        ping_timeout_s=seconds_or_none(raw["ping_timeout"]),
        close_timeout_s=close_timeout,
        follow_redirects=bool(raw.get("follow_redirects")),
        max_redirects=raw.get("max_redirects", 10),
        # connect --http2[=only], --trace-h2 (issue 12)
        http2="only" if raw.get("http2_only") else "fallback" if raw.get("http2") else None,
        trace_h2=bool(raw.get("trace_h2")),
    )


def output_config(raw: Mapping[str, Any], *, trace: bool = False) -> OutputConfig:
    if raw.get("quiet") and raw.get("verbose"):
        raise UsageError("give -q/--quiet or -v/--verbose, not both")
    return OutputConfig(
        quiet=bool(raw.get("quiet")),
        verbose=raw.get("verbose", 0),
        show_secrets=raw.get("show_secrets", False),
        json=raw.get("json_output", False),
        color=raw.get("color"),
        debug=raw.get("debug", False),
        trace=trace,
        show_ping_pong=bool(raw.get("show_ping_pong")),
    )




def client_run_config(raw: Mapping[str, Any]) -> ClientRunConfig:
    """``connect``'s run options (-x, -n, -w, --max-time, --echo, --reconnect...)."""
    if raw["wait"] < 0 and raw["wait"] != -1:
        raise UsageError("invalid --wait: seconds, or -1 to wait for the server to close")
    max_time = raw["max_time"]
    if max_time is not None and not 0 < max_time < float("inf"):
        raise UsageError("invalid --max-time: seconds, more than 0")
    if raw["trace_h2"] and not (raw["http2"] or raw["http2_only"]):
        raise UsageError("--trace-h2 shows HTTP/2 frames: give it with --http2")
    if raw["echo"] and raw["binary"]:
        raise UsageError("--echo already mirrors binary as binary; drop -b/--binary")
    return ClientRunConfig(
        execute=tuple(raw["execute"]),
        message_count=raw["count"],
        wait_s=None if raw["wait"] == -1 else raw["wait"],
        echo=raw["echo"],
        reconnect=raw["reconnect"] or raw["reconnect_limit"] > 0,
        reconnect_limit=raw["reconnect_limit"],
        max_time_s=max_time,
    )
