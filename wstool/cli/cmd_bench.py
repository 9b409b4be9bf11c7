"""``wstool bench``: load, latency and capacity of a WebSocket server (issue 15)."""

from __future__ import annotations

from typing import Any

import click
from click.core import ParameterSource

from wstool.cli.app import _Command, _environment, fail, run_async
from wstool.cli.options import SECONDS, Seconds, connect_config, connect_options, tls_options
from wstool.config import BENCH_MODES, BenchConfig, parse_threshold
from wstool.errors import UsageError, WstoolError

BENCH_EXIT_STATUS_HELP = """\
Exit status: 0 the run completed and no --fail-if threshold was crossed; 8 a threshold
was crossed; 2 usage; 3 could not connect, 4 handshake rejected (the first connection:
one error, not N); 1 --messages-file cannot be read, or a --procs worker ended without
its result (the others' report is printed); 130 interrupted (Ctrl-C: the partial
report is printed); 143 terminated (SIGTERM)."""

BENCH_EXAMPLES = """\
\b
Examples:
  wstool bench -c 50 --duration 10 ws://127.0.0.1:8765/       # 50 connections, ping-pong
  wstool bench -c 50 --window 100 --warmup 2 ws://127.0.0.1:8765/   # pipelined
  wstool bench -c 10 --rate 1000 ws://127.0.0.1:8765/          # open loop, 10 000 msgs/s
  wstool bench --fail-if 'p99>50ms' --fail-if 'errors>0' --json ws://127.0.0.1:8765/
  wstool bench --mode connect -c 20 --connect-rate 500 ws://127.0.0.1:8765/
  wstool bench --mode idle -c 5000 --ramp 500 --ping-interval 5 ws://127.0.0.1:8765/
  wstool bench --mode broadcast -c 100 --rate 50 ws://127.0.0.1:8765/  # serve-echo --broadcast"""


@click.command(cls=_Command, name="bench", epilog=f"{BENCH_EXIT_STATUS_HELP}\n\n{BENCH_EXAMPLES}")
@click.argument("url")
@click.option("--mode", type=click.Choice(BENCH_MODES), default="echo", show_default=True,
              help="echo: round trips to an echo server; request: replies matched by "
                   "--match-id; connect: handshakes per second; idle: how many "
                   "connections the server keeps, with pings; broadcast: -c subscribers, "
                   "one publisher, fan-out latency and messages missed.")
@click.option("-c", "--connections", type=int, default=1, show_default=True, metavar="N",
              help="Connections (connect mode: handshakes in progress at once).")
@click.option("--duration", type=SECONDS, default=10.0, show_default=True, metavar="SECONDS",
              help="How long the load runs, --warmup included (not the connecting).")
@click.option("--messages", type=click.IntRange(1), metavar="N",
              help="Instead of --duration: N messages per connection (connect mode: N "
                   "handshakes per -c slot); the report counts every reply.")
@click.option("--warmup", type=Seconds(0), default=0.0, show_default=True, metavar="SECONDS",
              help="Load without measuring first (JIT, caches, TCP windows).")
@click.option("--size", type=click.IntRange(0), metavar="BYTES",
              help="Message of BYTES bytes (default: 32).")
@click.option("--message", "message_texts", multiple=True, metavar="TEXT",
              help="Send TEXT (repeatable: cycled): a template ({{seq}}, {{uuid}}, "
                   "{{now_ms}}, {{file:PATH}}...); request mode: with an id that "
                   "--match-id finds in the reply.")
@click.option("--messages-file", type=click.Path(dir_okay=False), metavar="FILE",
              help="Send the lines of FILE, cycled (templates, as --message).")
@click.option("-b", "--binary", is_flag=True, help="Send binary messages (default: text).")
@click.option("--window", type=click.IntRange(1), default=1, show_default=True, metavar="W",
              help="Closed loop: W messages in flight per connection (1 = request/response, "
                   "more = pipelined): measures throughput and latency under that load.")
@click.option("--refill", type=click.IntRange(1), default=1, show_default=True, metavar="N",
              help="Closed loop: send the replacements once N replies are owed, all in one "
                   "write (1: each reply is replaced at once, W always in flight; more: "
                   "between W-N+1 and W in flight, fewer writes). At most --window.")
@click.option("--rate", type=click.FloatRange(0, min_open=True), metavar="R",
              help="Open loop: R messages per second per connection, whatever the server "
                   "does; latency counts from when a message was due (no coordinated "
                   "omission).")
@click.option("--match-id", metavar="json:.FIELD",
              help="request mode: the JSON field naming the request in both the message "
                   "and its reply (e.g. json:.id).")
@click.option("--publish-url", metavar="URL",
              help="broadcast mode: where the publisher connects (default: URL); it sends "
                   "--rate messages per second (default 10) that every subscriber should get.")
@click.option("--slow-readers", type=click.FloatRange(0, 100), default=0.0, metavar="P",
              help="echo mode: P % of the connections read one chunk every 0.1 s (a slow "
                   "link: the server's backpressure); their round trips are reported apart.")
@click.option("--connect-rate", type=click.FloatRange(0, min_open=True), metavar="R",
              help="connect mode: start R handshakes per second (at most -c at once).")
@click.option("--ramp", type=click.FloatRange(0, min_open=True), metavar="R",
              help="Open R connections per second (default: as fast as they open).")
@click.option("--procs", type=click.IntRange(1), default=1, show_default=True, metavar="N",
              help="Generator processes (connections are shared out; figures merged exactly).")
@click.option("--fail-if", "fail_if", multiple=True, metavar="'METRIC OP VALUE'",
              help="Exit 8 when e.g. 'p99>50ms', 'errors>0', 'rate<10000' holds "
                   "(repeatable; metrics: min p50 p90 p99 p99.9 max mean errors rate).")
@click.option("--loop", "loop_name", type=click.Choice(["auto", "asyncio", "uvloop"]),
              default="auto", show_default=True,
              help="Event loop: uvloop when installed (wstool[fast]) with auto.")
@connect_options
@tls_options
@click.option("-q", "--quiet", is_flag=True, help="No warnings or notes on stderr.")
@click.option("--json", "json_output", is_flag=True,
              help="Write the report as one JSON object on stdout: mode, connections, "
                   "handshake, messages, latency, errors, generator, thresholds (keys in "
                   "README).")
@click.option("--color/--no-color", default=None,
              help="Force colour on or off (default: on for a terminal, off with NO_COLOR).")
@click.option("--html", "html_path", type=click.Path(dir_okay=False), metavar="FILE",
              help="Also write the report to FILE as one self-contained page (inline SVG "
                   "charts: percentiles, latency, throughput and errors over time).")
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
def bench_cmd(url: str, **raw: Any) -> None:
    """Load a WebSocket server and report throughput, latency and failures.

    Every connection option of `connect` applies (TLS, headers, subprotocols,
    compression, proxies). On a terminal a live line shows the run, then a table;
    in a pipe only the report; --json the report as one JSON object (keys in README).
    """
    try:
        source = click.get_current_context().get_parameter_source("duration")
        if raw["messages"] is not None and source in (ParameterSource.COMMANDLINE,
                                                      ParameterSource.ENVIRONMENT):
            raise UsageError("give --duration or --messages, not both (--messages N "
                             "replaces the duration: it waits for every reply)")
        cfg = bench_config(raw)
        conn_cfg = connect_config(url, raw)
        if raw["publish_url"] is not None:
            cfg = cfg._replace(publish=connect_config(raw["publish_url"], raw))
    except WstoolError as exc:
        fail(exc)
    from wstool.cli.cmd_servers import _use_loop

    _use_loop(raw["loop_name"])
    env = _environment(color=raw["color"])

    async def main() -> int:
        from wstool.bench.frontend import run_bench

        return await run_bench(env, cfg, conn_cfg, json_output=raw["json_output"],
                               quiet=raw["quiet"], html_path=raw["html_path"])

    run_async(main, debug=raw["debug"], env=env)


def bench_config(raw: dict[str, Any]) -> BenchConfig:
    mode = raw["mode"]
    connections = raw["connections"]
    if connections < 1:
        raise UsageError(f"invalid --connections {connections}: at least 1")
    duration = raw["duration"]
    warmup = raw["warmup"]
    messages = raw["messages"]
    if duration <= 0:
        raise UsageError(f"invalid --duration {duration:g}: more than 0 seconds")
    if messages is None and warmup and duration <= warmup:
        raise UsageError(f"--duration {duration:g}s is not longer than --warmup {warmup:g}s "
                         "(the duration includes the warm-up)")
    if messages is not None and mode == "idle":
        raise UsageError("--mode idle holds the connections for --duration (it sends no "
                         "messages): drop --messages")
    if messages is not None and warmup:
        raise UsageError("--warmup needs --duration (with --messages every reply counts)")
    sources = [name for name, given in (("--size", raw["size"] is not None),
                                        ("--message", bool(raw["message_texts"])),
                                        ("--messages-file", raw["messages_file"] is not None))
               if given]
    if len(sources) > 1:
        raise UsageError(f"give one of {', '.join(sources)}")
    if raw["rate"] is not None and raw["window"] != 1:
        raise UsageError("give --window (closed loop) or --rate (open loop), not both")
    if raw["rate"] is not None and raw["refill"] != 1:
        raise UsageError("--refill is for --window (closed loop), not --rate")
    if mode in ("connect", "idle", "broadcast"):  # they send no replies to wait for
        given = [name for name, value in (("--window", raw["window"]),
                                          ("--refill", raw["refill"])) if value != 1]
        if mode != "broadcast" and raw["rate"] is not None:  # (broadcast: the publisher's)
            given.append("--rate")
        if given:
            raise UsageError(f"{', '.join(given)}: not for --mode {mode} (echo and "
                             "request modes)")
    if raw["refill"] > raw["window"]:
        raise UsageError(f"invalid --refill {raw['refill']}: at most --window "
                         f"({raw['window']})")
    payloads: tuple[bytes, ...] = (b"x" * 32,)
    if raw["size"] is not None:
        payloads = (b"x" * raw["size"],)
    elif raw["message_texts"]:
        payloads = tuple(text.encode() for text in raw["message_texts"])
    elif raw["messages_file"] is not None:
        path = raw["messages_file"]
        try:
            with open(path, "rb") as file:
                lines = [line.rstrip(b"\r\n") for line in file]
        except OSError as exc:
            raise WstoolError(f"cannot read --messages-file {path}: "
                              f"{exc.strerror or exc}") from exc
        payloads = tuple(line for line in lines if line)
        if not payloads:
            raise UsageError(f"--messages-file {path} has no non-empty line")
    if not raw["binary"]:
        for payload in payloads:
            try:
                payload.decode()
            except UnicodeDecodeError as exc:
                raise UsageError("a text message is not UTF-8 (use -b/--binary)") from exc
    templated = False
    if mode == "echo" and any(b"{{" in payload for payload in payloads):
        # Templates (issue 11), as in request mode: literal ones ({{file:PATH}},
        # {{env:NAME}}) are resolved once and stay pre-built; one that changes is
        # rendered for each message.
        from wstool.templates import compile_template

        resolved = []
        for payload in payloads:
            try:
                text = payload.decode()
            except UnicodeDecodeError:  # a binary line: not a template
                resolved.append(payload)
                continue
            template = compile_template(text, where="--message")
            if template.is_literal:
                resolved.append("".join(str(part) for part in template.parts).encode())
            else:
                templated = True
                resolved.append(payload)
        payloads = tuple(resolved)
    match_id = raw["match_id"]
    if mode == "request":
        if match_id is None:
            raise UsageError("request mode needs --match-id json:.FIELD (e.g. json:.id)")
        from wstool.bench.generator import json_path
        from wstool.templates import compile_template

        json_path(match_id)  # checks its form
        for payload in payloads:
            template = compile_template(payload.decode("utf-8", "replace"), where="--message")
            if template.is_literal:
                raise UsageError(f"request mode: --message must make a new id each time, "
                                 f"e.g. '{{\"id\":{{{{seq}}}}}}' (found no placeholder in "
                                 f"{payload.decode('utf-8', 'replace')!r})")
    elif match_id is not None:
        raise UsageError("--match-id is for --mode request")
    if raw["publish_url"] is not None and mode != "broadcast":
        raise UsageError("--publish-url is for --mode broadcast")
    if mode == "broadcast" and raw["procs"] > 1:
        raise UsageError("--mode broadcast has one publisher: give no --procs")
    if raw["slow_readers"] and mode != "echo":
        raise UsageError("--slow-readers is for --mode echo")
    if raw["connect_rate"] is not None and mode != "connect":
        raise UsageError("--connect-rate is for --mode connect")
    thresholds = tuple(parse_threshold(text) for text in raw["fail_if"])
    return BenchConfig(
        mode=mode,
        connections=connections,
        duration_s=None if messages is not None else duration,
        messages=messages,
        warmup_s=warmup,
        payloads=payloads,
        binary=raw["binary"],
        window=raw["window"],
        refill=raw["refill"],
        rate_per_s=raw["rate"],
        match_id=match_id,
        connect_rate_per_s=raw["connect_rate"],
        ramp_per_s=raw["ramp"],
        procs=raw["procs"],
        thresholds=thresholds,
        slow_readers_percent=raw["slow_readers"],
        templated=templated,
    )
