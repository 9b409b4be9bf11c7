"""The client run loop (wstool/client/run.py) with a recording front-end.

Peers are the websockets library's server on 127.0.0.1 port 0 in the test's own
event loop; every connection's messages are kept apart, so a reconnect shows.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, NamedTuple

import pytest
from websockets.asyncio.server import ServerConnection, serve

from tests.conftest import async_test, scaled, until
from tests.servers import start_silent_tcp
from wstool.client.run import (
    ClientFrontEnd,
    ClientRun,
    InputSource,
    NotOpen,
    RunObserver,
)
from wstool.config import ClientRunConfig, ConnectConfig, Target
from wstool.errors import ExitStatus, WstoolError
from wstool.events import Closed, Event, Message, Notice, Opened, Reconnecting

FAST_RECONNECT = ClientRunConfig(reconnect=True, reconnect_max_delay_s=0.05)


class Received(NamedTuple):
    """What the recorder logs for on_message (events are NamedTuples too)."""

    data: str | bytes




class Peer:
    """What the server saw, one list of received messages per connection."""

    def __init__(self) -> None:
        self.connections: list[list[str | bytes]] = []
        self.close_codes: list[int | None] = []


Handler = Callable[[ServerConnection, int, list[str | bytes]], Awaitable[None]]


@asynccontextmanager
async def server(handler: Handler) -> AsyncIterator[tuple[ConnectConfig, Peer]]:
    peer = Peer()

    async def wrapped(ws: ServerConnection) -> None:
        received: list[str | bytes] = []
        peer.connections.append(received)
        try:
            await handler(ws, len(peer.connections), received)
        finally:
            await ws.wait_closed()
            rcvd = ws.protocol.close_rcvd
            peer.close_codes.append(rcvd.code if rcvd is not None else None)

    async with serve(wrapped, "127.0.0.1", 0, max_size=None) as srv:
        port = next(iter(srv.sockets)).getsockname()[1]
        yield ConnectConfig(Target(f"ws://127.0.0.1:{port}/"), ping_interval_s=None), peer


class Recorder(ClientFrontEnd):
    """A front-end that keeps everything, in order."""

    def __init__(self, *, report_sent: bool = False, echo_as_sent: bool = False) -> None:
        self.report_sent = report_sent
        self.echo_as_sent = echo_as_sent
        self.log: list[Event | Received] = []
        self.batches = 0

    def on_event(self, event: Event) -> None:
        self.log.append(event)

    def on_message(self, data: str | bytes) -> None:
        self.log.append(Received(data))

    def on_batch(self) -> None:
        self.batches += 1

    @property
    def received(self) -> list[str | bytes]:
        return [item.data for item in self.log if isinstance(item, Received)]

    def of_type(self, kind: type[Any]) -> list[Any]:
        return [item for item in self.log if isinstance(item, kind)]


class ListInput(InputSource):
    """An input source of fixed messages; BAD (optional) fails after them."""

    def __init__(self, messages: list[str | bytes], bad: WstoolError | None = None) -> None:
        self.messages = messages
        self.bad = bad
        self.reads = 0

    async def read_into(self, out: collections.deque[str | bytes]) -> bool:
        self.reads += 1
        if self.reads > 1:
            return False
        out.extend(self.messages)
        if self.bad is not None:
            raise self.bad
        return True


async def record_then_close(ws: ServerConnection, n: int, received: list[str | bytes],
                            *, count: int, codes: tuple[int, ...]) -> None:
    """Keep COUNT messages, then close with codes[connection - 1] (the last one after)."""
    async for message in ws:
        received.append(message)
        if len(received) == count:
            await ws.close(codes[min(n, len(codes)) - 1])
            return


@async_test
async def test_the_attempt_number_starts_over_after_a_connection_opened() -> None:
    """Issue 10: it counted every attempt of the run, while --reconnect-limit (and the
    README) count attempts in a row: each connection here opens, then closes with 1011."""
    handler = functools.partial(record_then_close, count=1, codes=(1011, 1011, 1011, 1000))
    async with server(handler) as (config, peer):
        run = ClientRun(config, FAST_RECONNECT._replace(execute=("x",)))
        front = Recorder()
        assert await run.run(front) == ExitStatus.OK
    assert len(peer.connections) == 4
    assert [e.attempt for e in front.of_type(Reconnecting)] == [1, 1, 1]
    assert run.totals().reconnects == 3


async def echo(ws: ServerConnection, n: int, received: list[str | bytes]) -> None:
    async for message in ws:
        received.append(message)
        await ws.send(message)


@async_test
async def test_execute_goes_first_again_after_a_reconnect_and_totals_add_up() -> None:
    handler = functools.partial(record_then_close, count=2, codes=(1011, 1000))
    async with server(handler) as (config, peer):
        run = ClientRun(config, FAST_RECONNECT._replace(execute=("hello", "wörld")))
        front = Recorder()
        assert await run.run(front) == ExitStatus.OK  # the second connection closed with 1000
    assert peer.connections == [["hello", "wörld"], ["hello", "wörld"]]
    assert [e.attempt for e in front.of_type(Reconnecting)] == [1]
    assert [e.code for e in front.of_type(Closed)] == [1011, 1000]
    totals = run.totals()
    assert (totals.messages_sent, totals.bytes_sent) == (4, 2 * (5 + 6))
    assert (totals.reconnects, totals.messages_received) == (1, 0)
    assert totals.started_at <= time.monotonic()
    assert run.state == "closed"


@async_test
async def test_count_spans_reconnects_and_ignores_past_n() -> None:
    async def push(ws: ServerConnection, n: int, received: list[str | bytes]) -> None:
        if n == 1:
            await ws.send("c1-0")
            await ws.send("c1-1")
            await ws.close(1011)
            return
        for i in range(3):  # one more than -n 3 leaves room for
            await ws.send(f"c2-{i}")
        await ws.wait_closed()

    async with server(push) as (config, peer):
        run = ClientRun(config, FAST_RECONNECT._replace(message_count=3))
        front = Recorder()
        assert await run.run(front) == ExitStatus.OK
    assert front.received == ["c1-0", "c1-1", "c2-0"]
    assert run.received_total == 3
    assert peer.close_codes[-1] == 1000  # -n reached: we closed cleanly


@async_test
async def test_totals_and_rtts_across_reconnects() -> None:
    async def echo_until_bye(ws: ServerConnection, n: int, received: list[str | bytes]) -> None:
        async for message in ws:
            received.append(message)
            await ws.send(message)
            if message == "bye":
                await ws.close(1011 if n == 1 else 1000)

    async with server(echo_until_bye) as (config, peer):
        run = ClientRun(config, FAST_RECONNECT)
        front = Recorder()
        task = asyncio.ensure_future(run.run(front))
        for connection in (1, 2):
            await until(functools.partial(lambda n: len(peer.connections) == n
                                          and run.state == "open", connection),
                        f"connection {connection} open")
            await run.ping(b"p")
            await run.send(b"\x00\x01")  # binary counts its bytes
            await run.send("bye")
        assert await task == ExitStatus.OK
    assert peer.connections == [[b"\x00\x01", "bye"]] * 2
    totals = run.totals()
    assert (totals.messages_sent, totals.messages_received) == (4, 4)
    assert (totals.bytes_sent, totals.bytes_received) == (10, 10)
    assert len(run.rtts_s()) == 2 and totals.last_rtt_s == run.rtts_s()[-1]
    assert totals.reconnects == 1
    with pytest.raises(NotOpen, match="the connection is closed"):
        await run.send("late")


@async_test
async def test_replies_to_everything_sent_end_the_run_after_eof() -> None:
    async with server(echo) as (config, peer):
        # --wait 30: only "every message sent has had a reply" can end it this soon.
        run = ClientRun(config, ClientRunConfig(execute=("x",), wait_s=30),
                        input_source=ListInput(["a", "b"]))
        front = Recorder()
        started = time.monotonic()
        assert await run.run(front) == ExitStatus.OK
        assert time.monotonic() - started < scaled(10)
    assert peer.connections == [["x", "a", "b"]]
    assert front.received == ["x", "a", "b"]
    assert peer.close_codes == [1000]
    assert front.batches >= 1


@async_test
async def test_bad_input_ends_the_input_then_fails_the_run() -> None:
    bad = WstoolError("input line 3 is not valid UTF-8")
    async with server(echo) as (config, peer):
        run = ClientRun(config, ClientRunConfig(), input_source=ListInput(["a", "b"], bad))
        front = Recorder()
        with pytest.raises(WstoolError, match="input line 3"):
            await run.run(front)
    assert peer.connections == [["a", "b"]]
    assert front.received == ["a", "b"]  # their replies still came
    assert peer.close_codes == [1000]


@async_test
async def test_echo_mirrors_and_shows_as_sent_before_the_received_one() -> None:
    async def greet(ws: ServerConnection, n: int, received: list[str | bytes]) -> None:
        await ws.send("mirror me")
        received.append(await ws.recv())
        await ws.close(1000)

    async with server(greet) as (config, peer):
        run = ClientRun(config, ClientRunConfig(echo=True))
        front = Recorder(report_sent=True, echo_as_sent=True)
        assert await run.run(front) == ExitStatus.OK
    assert peer.connections == [["mirror me"]]
    at = front.log.index(Received("mirror me"))
    shown = front.log[at - 1]
    assert isinstance(shown, Message) and shown[:2] == ("sent", "mirror me")


class StopOnFirst(RunObserver):
    """What --expect will be: an observer that ends the run with its verdict."""

    def __init__(self, run: ClientRun) -> None:
        self.run = run
        self.seen: list[str | bytes] = []
        self.events: list[Event] = []

    def on_message(self, data: str | bytes) -> None:
        self.seen.append(data)
        self.run.stop(error=WstoolError(f"expectation not met: got {data!r}"))

    def on_event(self, event: Event) -> None:
        self.events.append(event)


@async_test
async def test_an_observer_sees_the_run_and_can_end_it_with_an_error() -> None:
    async def push(ws: ServerConnection, n: int, received: list[str | bytes]) -> None:
        await ws.send("one")
        await ws.send("two")
        await ws.wait_closed()

    async with server(push) as (config, peer):
        run = ClientRun(config, FAST_RECONNECT)
        observer = StopOnFirst(run)
        run.observers = (observer,)
        front = Recorder()
        with pytest.raises(WstoolError, match="expectation not met: got 'one'"):
            await run.run(front)
    assert observer.seen[0] == "one"
    assert front.received[:len(observer.seen)] == observer.seen  # the front-end first
    assert isinstance(observer.events[0], Opened) and isinstance(observer.events[-1], Closed)
    assert peer.close_codes == [1000] and len(peer.connections) == 1  # no reconnect


@async_test
async def test_stop_while_connecting_ends_the_run_at_once() -> None:
    silent, port = await start_silent_tcp()
    async with silent:
        config = ConnectConfig(Target(f"ws://127.0.0.1:{port}/"), open_timeout_s=30)
        run = ClientRun(config, ClientRunConfig())
        task = asyncio.ensure_future(run.run(Recorder()))
        await until(lambda: run.session is not None, "the session")
        await asyncio.sleep(0.05)
        started = time.monotonic()
        run.stop()
        assert await task == ExitStatus.OK
        assert time.monotonic() - started < scaled(5)  # not --open-timeout's 30 s


@async_test
async def test_reconnect_limit_gives_up_with_the_last_error() -> None:
    from tests.conftest import closed_port

    config = ConnectConfig(Target(f"ws://127.0.0.1:{closed_port()}/"))
    run = ClientRun(config, FAST_RECONNECT._replace(reconnect_limit=2))
    front = Recorder()
    with pytest.raises(WstoolError, match="connection refused"):
        await run.run(front)
    assert [e.attempt for e in front.of_type(Reconnecting)] == [1, 2]
    assert [e.text for e in front.of_type(Notice)] == [
        "giving up after 2 reconnect attempts in a row (--reconnect-limit)"]
    assert run.totals().reconnects == 2


# Issue 13: what the REPL pushes while --reconnect brings the connection back.


@async_test
async def test_messages_queued_while_down_go_in_order_after_x_once_a_server_is_back() -> None:
    """Nothing listens on the port at first; the run retries; the messages pushed
    meanwhile wait, then go after -x, in order, once a server listens there."""
    from tests.conftest import closed_port

    port = closed_port()
    config = ConnectConfig(Target(f"ws://127.0.0.1:{port}/"), ping_interval_s=None)
    run = ClientRun(config, FAST_RECONNECT._replace(execute=("x-first",)))
    front = Recorder(report_sent=True)
    task = asyncio.ensure_future(run.run(front))
    await until(lambda: bool(front.of_type(Reconnecting)), "a retry")
    assert await run.send_or_queue("one") == 1
    assert await run.send_or_queue(b"\x00two") == 2
    assert run.queued == 2
    received: list[str | bytes] = []

    async def keep(ws: ServerConnection) -> None:
        async for message in ws:
            received.append(message)

    async with serve(keep, "127.0.0.1", port):
        await until(lambda: len(received) == 3, "-x and the two queued messages")
        assert received == ["x-first", "one", b"\x00two"]
        assert run.queued == 0
        assert "sending the 2 queued messages" in [e.text for e in front.of_type(Notice)]
        sent = [e.data for e in front.of_type(Message) if e.direction == "sent"]
        assert sent == ["x-first", "one", b"\x00two"]
        assert await run.send_or_queue("three") == 0  # open: sent at once
        await until(lambda: len(received) == 4, "the message sent at once")
        await run.close()
        assert await task == ExitStatus.OK
    assert not any("not sent" in e.text for e in front.of_type(Notice))


@async_test
async def test_the_queue_is_bounded_and_discard_drops_it(monkeypatch: Any) -> None:
    from tests.conftest import closed_port
    from wstool.client import run as run_module
    from wstool.client.run import QueueFull

    monkeypatch.setattr(run_module, "QUEUE_MAX_MESSAGES", 2)
    config = ConnectConfig(Target(f"ws://127.0.0.1:{closed_port()}/"))
    run = ClientRun(config, FAST_RECONNECT)
    front = Recorder()
    task = asyncio.ensure_future(run.run(front))
    await until(lambda: bool(front.of_type(Reconnecting)), "a retry")
    assert [await run.send_or_queue(m) for m in ("a", "b")] == [1, 2]
    with pytest.raises(QueueFull, match=r"the queue is full \(2 messages, 2 bytes .* "
                       r"it holds 2 messages and 16 MiB at most; /discard drops them\)"):
        await run.send_or_queue("c")
    assert run.queued == 2
    assert run.discard_queued() == 2
    assert run.queued == 0
    monkeypatch.setattr(run_module, "QUEUE_MAX_BYTES", 3)
    with pytest.raises(QueueFull):
        await run.send_or_queue("four")  # 4 bytes: more than the queue holds
    await run.close()
    assert await task == ExitStatus.OK
    assert not any("not sent" in e.text for e in front.of_type(Notice))


@async_test
async def test_queued_messages_are_counted_as_not_sent_when_reconnecting_gives_up() -> None:
    from tests.conftest import closed_port

    config = ConnectConfig(Target(f"ws://127.0.0.1:{closed_port()}/"))
    run = ClientRun(config, FAST_RECONNECT._replace(reconnect_limit=2))
    front = Recorder()
    task = asyncio.ensure_future(run.run(front))
    await until(lambda: bool(front.of_type(Reconnecting)), "a retry")
    await run.send_or_queue("lost")
    with pytest.raises(WstoolError, match="connection refused"):
        await task
    assert [e.text for e in front.of_type(Notice)][-1] == (
        "warning: 1 queued message not sent: the connection did not come back before the end")


@async_test
async def test_without_reconnect_nothing_is_queued() -> None:
    from tests.conftest import closed_port

    config = ConnectConfig(Target(f"ws://127.0.0.1:{closed_port()}/"))
    run = ClientRun(config, ClientRunConfig())
    with pytest.raises(NotOpen, match="the connection is connecting"):
        await run.send_or_queue("early")
    assert run.queued == 0


class SaysCloses(Recorder):
    def on_end(self, error: WstoolError | None) -> None:
        self.log.append(Notice(f"end: {error!r}"))
        if error is not None:
            error.said = True


@async_test
async def test_the_front_end_hears_the_end_and_may_say_the_error_itself() -> None:
    """Issue 13: on_end(error) comes last, before the error is raised; a front-end
    that said it (the REPL's close line) marks it, and it keeps its exit status."""
    from wstool.errors import ClosedAbnormally

    async def close_4001(ws: ServerConnection, n: int, received: list[str | bytes]) -> None:
        await ws.close(4001, "custom reason")

    front = SaysCloses()
    async with server(close_4001) as (config, _peer):
        with pytest.raises(ClosedAbnormally) as info:
            await ClientRun(config, ClientRunConfig()).run(front)
    assert info.value.exit_status == ExitStatus.CLOSED_ABNORMALLY
    assert info.value.said and info.value.server_close and info.value.close_code == 4001
    assert isinstance(front.log[-2], Closed)
    assert front.log[-1] == Notice(f"end: {info.value!r}")


class BatchRecorder(Recorder):
    """A front-end that takes received text a chunk at a time (pipe mode's hot path)."""

    text_batches = True

    def __init__(self) -> None:
        super().__init__()
        self.text_batch_sizes: list[int] = []

    def on_text_batch(self, payloads: list[bytes]) -> None:
        self.text_batch_sizes.append(len(payloads))
        self.log.extend(Received(payload.decode()) for payload in payloads)


@async_test
async def test_text_batches_keep_count_and_the_end_of_input_rules() -> None:
    async def burst(ws: ServerConnection, n: int, received: list[str | bytes]) -> None:
        async for message in ws:
            received.append(message)
            if message == "go":  # five at once: the client reads them in one chunk or more
                ws.protocol.send_text(b"a")
                for i in range(4):
                    ws.protocol.send_text(f"m{i}".encode())
                ws.send_data()
        await ws.wait_closed()

    async with server(burst) as (config, peer):
        # No permessage-deflate: the library's server compresses even one byte, and
        # compressed frames are the library's to parse.
        run = ClientRun(config._replace(compress=False),
                        ClientRunConfig(execute=("go",), message_count=3))
        front = BatchRecorder()
        assert await run.run(front) == ExitStatus.OK
    assert front.received == ["a", "m0", "m1"]  # -n 3: exactly three, from a batch
    assert front.text_batch_sizes and sum(front.text_batch_sizes) == 3
    assert peer.close_codes == [1000]

    async with server(echo) as (config, peer):
        run = ClientRun(config._replace(compress=False), ClientRunConfig(wait_s=30),
                        input_source=ListInput([f"line {i}" for i in range(500)]))
        front = BatchRecorder()
        started = time.monotonic()
        assert await run.run(front) == ExitStatus.OK  # every reply in: ends long before -w
        assert time.monotonic() - started < scaled(10)
    assert front.received == [f"line {i}" for i in range(500)]
    assert sum(front.text_batch_sizes) == 500


@async_test
async def test_the_front_end_decides_whether_the_session_paces_its_reads() -> None:
    # Pipe mode paces (issue 14: session._Connection._pace); the default does not.
    from wstool.client.pipe import PipeFrontEnd

    assert PipeFrontEnd.pace_reads and not ClientFrontEnd.pace_reads
    for pace_reads in (True, False):
        async with server(echo) as (config, _peer):
            run = ClientRun(config, ClientRunConfig(execute=("x",), wait_s=30),
                            input_source=ListInput(["a"]))
            front = Recorder()
            front.pace_reads = pace_reads
            assert await run.run(front) == ExitStatus.OK
            assert front.received == ["x", "a"]
            assert run.session is not None
            assert run.session.pace_reads is pace_reads
            assert (run.session.connection.pace_s > 0) is pace_reads
