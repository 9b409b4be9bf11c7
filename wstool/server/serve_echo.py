"""``wstool serve-echo``: run the strict echo server until SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio

from wstool.config import EchoConfig, OutputConfig, ServerConfig
from wstool.errors import ExitStatus
from wstool.server.log import ServerLog, install_stop_signals, prepared_tls
from wstool.term.env import Environment


async def serve_echo(
    env: Environment,
    server_cfg: ServerConfig,
    echo_cfg: EchoConfig,
    out_cfg: OutputConfig,
) -> ExitStatus:
    """``wstool serve-echo``: run until SIGINT/SIGTERM, then close all with 1001."""
    from wstool.server.core import run_echo_server

    log = ServerLog(env, out_cfg)
    stop = asyncio.Event()
    remove_signals = install_stop_signals(stop)
    try:
        with prepared_tls(server_cfg, log) as tls:
            server = await run_echo_server(
                server_cfg, echo_cfg, log,
                trace=out_cfg.verbose >= 2,
                ssl_context=tls.context,
            )
            for notice in tls.trust_notices(server.urls):
                log(notice)
            try:
                await stop.wait()
            finally:
                await server.shutdown(1001, "going away")
                log(server.summary())
    finally:
        remove_signals()
    return ExitStatus.OK
