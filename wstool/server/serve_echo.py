"""``wstool serve-echo``: run the strict echo server until SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import signal

from wstool.config import EchoConfig, OutputConfig, ServerConfig
from wstool.errors import ExitStatus
from wstool.server.log import ServerLog, prepared_tls
from wstool.term.env import Environment
from wstool.term.signals import handle_signals


async def serve_echo(
    env: Environment,
    server_cfg: ServerConfig,
    echo_cfg: EchoConfig,
    out_cfg: OutputConfig,
) -> ExitStatus:
    """``wstool serve-echo``: run until SIGINT/SIGTERM, then close all with 1001."""
    from wstool.server.core import run_echo_server
    from wstool.server.http2 import http2_setup

    setup = http2_setup(server_cfg)  # before anything starts: h2 missing is a usage error

    log = ServerLog(env, out_cfg)
    stop = asyncio.Event()
    with (
        handle_signals({signal.SIGINT: stop.set, signal.SIGTERM: stop.set}),
        prepared_tls(server_cfg, log) as tls,
    ):
        server = await run_echo_server(
            server_cfg, echo_cfg, log,
            trace=out_cfg.verbose >= 2,
            ssl_context=tls.context,
            setup=setup,
        )
        for notice in tls.trust_notices(server.urls):
            log(notice)
        try:
            await stop.wait()
        finally:
            await server.shutdown(1001, "going away")
            log(server.summary())
    return ExitStatus.OK
