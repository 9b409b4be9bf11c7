"""``wstool probe URL`` (issue 12): how a server answers every way to open a WebSocket."""

from __future__ import annotations

from typing import Any

import click

from wstool.cli.app import _Command, _environment, fail, run_async
from wstool.cli.options import SECONDS, connect_config, tls_options
from wstool.errors import ExitStatus, UsageError, WstoolError

PROBE_HELP_EPILOG = """\
Exit status: 0 the server accepts at least one way (HTTP/1.1 upgrade or HTTP/2
extended CONNECT), 2 usage (or the h2 package missing: pip install
'wstool[http2]'), 3 could not connect at all (TCP/TLS), 4 no way works.

\b
Examples:
  wstool probe wss://example.test/socket          # TLS, ALPN, HTTP/1.1, HTTP/2
  wstool probe --json ws://localhost:8765/ | jq .verdict"""


@click.command(cls=_Command, name="probe", epilog=PROBE_HELP_EPILOG)
@click.argument("url")
@click.option("-H", "--header", "headers", multiple=True, metavar="'NAME: VALUE'",
              help="Extra HTTP header for both handshakes (repeatable).")
@click.option("-s", "--subprotocol", "subprotocols", multiple=True, metavar="NAME",
              help="Offer this subprotocol (repeatable).")
@click.option("-o", "--origin", metavar="ORIGIN", help="Origin header (a browser sends one).")
@click.option("--open-timeout", type=SECONDS, default=10.0, show_default=True,
              metavar="SECONDS", help="Bound on each attempt.")
@tls_options
@click.option("--json", "json_output", is_flag=True,
              help="Write the report as one JSON object on stdout (keys in README).")
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
def probe_cmd(url: str, **raw: Any) -> None:
    """Report how a server answers each way to open a WebSocket (HTTP/1.1, HTTP/2).

    TCP/TLS (ALPN offered and chosen, certificate), the HTTP/1.1 upgrade, HTTP/2
    (SETTINGS, RFC 8441 extended CONNECT), and a verdict in plain words. URL is
    ws:// or wss:// (host:port means ws://). Each way is tried on a connection of
    its own, as a browser does.
    """
    try:
        if url.startswith("ws+unix://"):
            raise UsageError("probe needs a TCP URL: ws:// or wss://")
        config = connect_config(url, {**raw, "max_size": 1 << 20, "ping_interval": 0,
                                      "ping_timeout": 0})
        try:
            from wstool.http2 import probe as probe_mod
            from wstool.http2.probe_report import json_object, text_lines
        except ImportError:
            raise UsageError("probe needs the h2 package: pip install 'wstool[http2]'") \
                from None
    except WstoolError as exc:
        fail(exc)
    env = _environment(color=None)

    async def main() -> int:
        report = await probe_mod.probe(config)
        if raw["json_output"]:
            import json

            env.stdout.write(json.dumps(json_object(report)).encode() + b"\n")
        else:
            env.stdout.write(("\n".join(text_lines(report)) + "\n").encode())
        env.stdout.flush()
        if not report.reachable:
            return int(ExitStatus.CONNECT_FAILED)
        return int(ExitStatus.OK if report.accepted else ExitStatus.HANDSHAKE_REJECTED)

    run_async(main, debug=raw["debug"], env=env)
