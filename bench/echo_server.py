"""The benchmarks' echo server: the websockets library's asyncio server on 127.0.0.1 port 0.

Run as a process (`python bench/echo_server.py`): prints `ws://127.0.0.1:PORT/` on its
first stdout line, then serves until stdin closes or it is terminated. Text is echoed
as text and binary as binary. permessage-deflate is off so every client does the same
work (websocat cannot negotiate it; wstool and wscat would).
"""

from __future__ import annotations

import asyncio
import sys

from websockets.asyncio.server import ServerConnection, serve


async def echo(ws: ServerConnection) -> None:
    async for message in ws:
        await ws.send(message)


async def main() -> None:
    async with serve(echo, "127.0.0.1", 0, max_size=None, compression=None) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        sys.stdout.write(f"ws://127.0.0.1:{port}/\n")
        sys.stdout.flush()
        loop = asyncio.get_running_loop()
        # Serve until our parent closes our stdin (or kills us).
        await loop.run_in_executor(None, sys.stdin.buffer.read)


if __name__ == "__main__":
    asyncio.run(main())
