"""wstool/http2/stream.py on its own (issue 12): several WebSockets multiplexed on one
HTTP/2 connection, each the websockets library's stock asyncio ClientConnection over an
H2StreamTransport, against Hypercorn (an independent RFC 8441 server) on loopback.

The shared adapter the server side reuses must carry independent streams with their
own flow control; the CLI opens one stream per connection, so this is tested here.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.conftest import ServerThread, async_test, until
from tests.h2_peers import start_hypercorn


@pytest.fixture
def h2c_port(server_thread: ServerThread) -> int:
    return start_hypercorn(server_thread)


@pytest.mark.slow
def test_three_websockets_on_one_h2_connection(h2c_port: int) -> None:
    from websockets.asyncio.client import ClientConnection
    from websockets.client import ClientProtocol
    from websockets.uri import parse_uri

    from wstool.http2.client import open_endpoint, websocket_handshake

    url = f"ws://127.0.0.1:{h2c_port}/"

    @async_test
    async def main() -> None:
        endpoint = await open_endpoint("127.0.0.1", h2c_port, ssl_context=None)
        conns: list[ClientConnection] = []
        for _ in range(3):
            stream = endpoint.open_stream()
            conn = ClientConnection(ClientProtocol(parse_uri(url), max_size=None),
                                    close_timeout=0.2)
            stream.set_protocol(conn)
            conn.connection_made(stream)
            await websocket_handshake(conn, stream, scheme="http", authority=None,
                                      additional_headers=None, user_agent_header="test",
                                      exchange_ready=lambda _exchange: None)
            conns.append(conn)
        assert sorted(endpoint.streams) == [1, 3, 5]  # one connection, three streams

        async def talk(index: int, conn: ClientConnection) -> None:
            big = bytes([index]) * (3 << 20)  # beyond every initial window (64 KiB)
            for i in range(20):
                await conn.send(f"{index}:{i}")
                assert await conn.recv() == f"{index}:{i}"
            await conn.send(big)
            assert await conn.recv() == big

        await asyncio.gather(*(talk(i, c) for i, c in enumerate(conns)))
        # Closing one leaves the others working. (Hypercorn never ends its half of a
        # WebSocket stream, so the stock client, which waits for that as for a TCP
        # close, gives up after close_timeout and resets the stream: RST_STREAM.)
        first, *others = conns
        await first.close()
        assert first.close_code == 1000
        for index, conn in enumerate(others):
            await conn.send(f"still {index}")
            assert await conn.recv() == f"still {index}"
        await asyncio.gather(*(conn.close() for conn in others))
        assert [conn.close_code for conn in others] == [1000, 1000]
        await asyncio.wait_for(endpoint.lost, 5)  # last stream gone: GOAWAY and close

    main()


def test_pause_reading_keeps_data_unread_until_resumed(h2c_port: int) -> None:
    """As a socket's: while paused, the protocol gets nothing (the DATA waits in the
    transport, unacknowledged); resumed, it gets it all, in order (the bridges'
    backpressure over a stream)."""
    from websockets.asyncio.client import ClientConnection
    from websockets.client import ClientProtocol
    from websockets.uri import parse_uri

    from wstool.http2.client import open_endpoint, websocket_handshake

    @async_test
    async def main() -> None:
        endpoint = await open_endpoint("127.0.0.1", h2c_port, ssl_context=None)
        stream = endpoint.open_stream()
        conn = ClientConnection(ClientProtocol(parse_uri(f"ws://127.0.0.1:{h2c_port}/")),
                                close_timeout=0.2)
        stream.set_protocol(conn)
        conn.connection_made(stream)
        await websocket_handshake(conn, stream, scheme="http", authority=None,
                                  additional_headers=None, user_agent_header="test",
                                  exchange_ready=lambda _exchange: None)
        stream.pause_reading()
        assert not stream.is_reading()
        for i in range(3):
            await conn.send(f"m{i}")
        # Three echoes of 4 bytes each (2 of header): all kept, none handed over.
        await until(lambda: stream.get_read_buffer_size() == 12, "the echoes kept")
        stream.resume_reading()
        assert [await conn.recv() for _ in range(3)] == ["m0", "m1", "m2"]
        assert stream.get_read_buffer_size() == 0
        await conn.close()

    main()
