"""Server core: serve-echo, listen, and the in-process echo behind ``connect --demo``.

Placeholder until the servers issue lands: only ``demo_echo_server`` exists, a
minimal echo on the websockets library's asyncio server. The real server core
(sans-I/O echo engine, TLS, limits, logging, shutdown) replaces it.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from websockets.asyncio.server import ServerConnection, serve


async def _echo(connection: ServerConnection) -> None:
    async for message in connection:
        await connection.send(message)


@contextlib.asynccontextmanager
async def demo_echo_server() -> AsyncIterator[str]:
    """Run an echo server on a free loopback port; yields its ws:// URL."""
    async with serve(_echo, "127.0.0.1", 0, max_size=None) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        yield f"ws://127.0.0.1:{port}/"
