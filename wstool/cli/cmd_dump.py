"""``wstool frame-dump``: decode captured bytes, or relay and print the frames."""

from __future__ import annotations

from typing import Any

import click

from wstool.cli.app import _Command, _environment, fail, run_async
from wstool.cli.options import (
    SECONDS,
    dump_output_options,
    frame_dump_plan,
    max_buffer_option,
    upstream_tls_options,
)
from wstool.errors import FRAME_DUMP_EXIT_STATUS_HELP, WstoolError


@click.command(name="frame-dump", cls=_Command, epilog=FRAME_DUMP_EXIT_STATUS_HELP)
@click.argument("source", required=False, metavar="[FILE|-|URL]")
@click.option("--hex", "hex_input", is_flag=True,
              help="FILE holds hex text (whitespace and 0x prefixes ignored).")
@click.option("--from", "from_side", type=click.Choice(["client", "server"]),
              help="Who sent the bytes (default: per frame, from the MASK bit); "
                   "frames that break the masking rule are flagged.")
@max_buffer_option
@click.option("--payload", "payload_limit", type=click.IntRange(0), default=64,
              show_default=True, metavar="N", help="Payload bytes previewed per frame; 0 = all.")
@click.option("-x", "--hexdump", is_flag=True,
              help="Add an offset/hex/ASCII dump of each header and (unmasked) payload.")
@click.option("--listen", metavar="HOST:PORT",
              help="Relay mode: accept clients on HOST:PORT, connect each to URL, print "
                   "both directions.")
@click.option("--pcap", metavar="FILE", help="Read a pcap/pcapng capture of TCP traffic.")
@click.option("--no-fail", is_flag=True,
              help="Exit 0 even when frames break the protocol (default: exit 6, "
                   "for CI); the output is the same.")
@click.option("-H", "--header", "headers", multiple=True, metavar="'NAME: VALUE'",
              help="Relay: extra header added to each upgrade request (repeatable).")
@click.option("--open-timeout", type=SECONDS, default=10.0, show_default=True, metavar="SECONDS",
              help="Relay: deadline for connecting to URL (TCP + TLS); 0 = none.")
@upstream_tls_options
@dump_output_options
def frame_dump_cmd(source: str | None, **raw: Any) -> None:
    """Show every frame: decode captured bytes, or relay and print both directions.

    \b
    wstool frame-dump capture.bin          one direction of a stream, raw bytes
    wstool frame-dump --hex - <<< '81 05 48 65 6c 6c 6f'
    wstool frame-dump --listen 127.0.0.1:9000 ws://127.0.0.1:8000/
    wstool frame-dump --pcap capture.pcapng
    """
    debug = raw["debug"]
    try:
        plan = frame_dump_plan(source, raw)
    except WstoolError as exc:
        fail(exc)
    env = _environment(color=raw["color"])

    async def main() -> int:
        return await plan.run(env)

    run_async(main, debug=debug, env=env)
