"""Locust users over wstool's client session (issue 15: load from several machines).

``pip install 'wstool[locust]'``; in a locustfile::

    from locust import task
    from wstool.locust import WebSocketUser

    class Echo(WebSocketUser):
        @task
        def hello(self) -> None:
            self.request("hello")   # one round trip: request_type "WS", name "text"

Each connect and each round trip is reported to Locust's ``request`` event
(request_type ``"WS"``; name ``"connect"``, the message kind ``"text"`` /
``"binary"``, or the ``name=`` given; response_time in ms; response_length in
payload bytes; ``exception`` on failure), so Locust's web UI, CSV files and its
master/worker distribution work unchanged. A failure is reported once and then
ends the task quietly (``RescheduleTask``): no traceback per failed connection.

The connection is ``wstool.client.session.Session``, opened with a
``ConnectConfig`` built by :func:`connect_config` from the same settings as
``wstool connect``'s flags (URL forms, ``-H`` headers, TLS, proxy, timeouts).

How asyncio meets gevent. Locust runs each user as a gevent greenlet and
monkey-patches the standard library (sockets, ``select``/``selectors``,
``threading``) when it is imported; the session is asyncio. Here one asyncio
event loop per process runs ``run_forever()`` in a greenlet of its own, in the
gevent hub's thread; its selector is the patched one, so when the loop has
nothing to do it waits in gevent's hub and the other greenlets run. A user
greenlet hands a coroutine over with ``asyncio.run_coroutine_threadsafe`` and
waits on a ``gevent.event.Event`` (a cooperative wait). Why not the other
designs Locust users reach for (locustio/locust#1251):

* an asyncio loop in an OS thread of its own: with ``threading`` patched,
  ``threading.Thread`` is a greenlet, gevent's locks and events belong to one
  hub's thread, and the session's resolver thread (``Session._resolve``) would be
  a greenlet of a hub that never runs in that thread: a name lookup would hang.
  Everything here stays in one thread, so no gevent object crosses threads;
* one ``asyncio.run()`` per user or per task: asyncio's running loop is per
  thread, so a second greenlet's loop fails with "another loop is running", and
  a connection could not answer pings between tasks;
* websockets' sync client or websocket-client: not wstool's client (its URL
  rules, headers, TLS and proxy options, its errors).

The loop's greenlet counts as asyncio's running loop for the whole thread: code
of the locustfile must not call ``asyncio.run()`` itself (submit to
:func:`run_in_loop` instead).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import deque
from collections.abc import Coroutine, Iterable, Mapping
from typing import Any, ClassVar, TypeVar

import gevent
import gevent.event
from locust import User
from locust.exception import RescheduleTask

from wstool.client.session import Session, SessionClosed
from wstool.config import (
    DEFAULT_MAX_SIZE_BYTES,
    ConnectConfig,
    TLSConfig,
    handshake_headers,
    parse_header,
    parse_target,
    seconds_or_none,
    split_userinfo,
)
from wstool.errors import ClosedAbnormally, TimedOut, UsageError, WstoolError
from wstool.events import Closed, Event

REQUEST_TYPE = "WS"
CONNECT_NAME = "connect"

T = TypeVar("T")


def connect_config(
    url: str,
    *,
    headers: Iterable[str] = (),
    subprotocols: Iterable[str] = (),
    origin: str | None = None,
    auth: tuple[str, str] | None = None,
    user_agent: str | None = None,
    cacert: str | None = None,
    cert: str | None = None,
    key: str | None = None,
    insecure: bool = False,
    server_name: str | None = None,
    proxy: str | None = None,
    compress: bool = True,
    max_size_bytes: int | None = DEFAULT_MAX_SIZE_BYTES,
    open_timeout_s: float | None = 10.0,
    ping_interval_s: float | None = 20.0,
    ping_timeout_s: float | None = 20.0,
    close_timeout_s: float = 5.0,
    follow_redirects: bool = False,
    max_redirects: int = 10,
) -> ConnectConfig:
    """``wstool connect``'s connection flags as keywords -> the ``ConnectConfig`` it uses.

    The same parsers as the command: URL forms (``host:port``, a bare port, ``ws+unix://``,
    ``user:pass@``), ``headers`` as ``"Name: value"`` (-H; Host, User-Agent and Origin
    replace the defaults), ``proxy=""`` for --no-proxy, ``None`` or 0 timeouts for none.
    Bad input raises :class:`~wstool.errors.UsageError` with the command's message.
    """
    target, url_auth = split_userinfo(parse_target(url))
    if key and not cert:
        raise UsageError("--key needs --cert (the client certificate it belongs to)")
    sorted_headers = handshake_headers(
        tuple(parse_header(h) for h in headers), user_agent=user_agent, origin=origin)
    return ConnectConfig(
        target=target,
        headers=sorted_headers.extra,
        subprotocols=tuple(subprotocols),
        origin=sorted_headers.origin,
        auth=auth or url_auth,
        user_agent=sorted_headers.user_agent,
        host_header=sorted_headers.host,
        tls=TLSConfig(cafile=cacert, certfile=cert, keyfile=key, insecure=insecure,
                      server_name=server_name),
        proxy=proxy,
        compress=compress,
        max_size_bytes=max_size_bytes or None,
        open_timeout_s=seconds_or_none(open_timeout_s),
        ping_interval_s=seconds_or_none(ping_interval_s),
        ping_timeout_s=seconds_or_none(ping_timeout_s),
        close_timeout_s=close_timeout_s,
        follow_redirects=follow_redirects,
        max_redirects=max_redirects,
    )


# The process's loop and the greenlet running it (see the module doc). Locust's
# --processes forks: a child makes its own (the pid tells).
_loop: asyncio.AbstractEventLoop | None = None
_loop_pid = 0


def _the_loop() -> asyncio.AbstractEventLoop:
    global _loop, _loop_pid
    if _loop is None or _loop_pid != os.getpid() or _loop.is_closed():
        _loop = asyncio.new_event_loop()
        _loop_pid = os.getpid()
        gevent.spawn(_loop.run_forever)
    return _loop


def run_in_loop(coro: Coroutine[Any, Any, T]) -> T:
    """Run CORO on the process's asyncio loop; the calling greenlet waits cooperatively.

    If the greenlet is killed meanwhile (Locust stopping a user), the coroutine is
    cancelled."""
    future = asyncio.run_coroutine_threadsafe(coro, _the_loop())
    done = gevent.event.Event()
    future.add_done_callback(lambda _: done.set())
    try:
        done.wait()
    except BaseException:
        future.cancel()
        raise
    return future.result()


def _nothing() -> None:
    pass


def _wake_loop_if_needed(transport: Any) -> None:
    """After a write made from a user's greenlet, outside the loop: what that write
    left for the loop to do waits for the loop's next wake-up, so give it one when
    there is something. A partial write registers a writer with the selector the
    loop is waiting in; a failed one schedules ``connection_lost`` (asyncio's loops
    keep such callbacks in ``_ready``; another loop: always wake)."""
    loop = _the_loop()
    buffered = getattr(transport, "get_write_buffer_size", None)  # not on every transport
    if (buffered is None or buffered() or transport.is_closing()
            or getattr(loop, "_ready", True)):
        loop.call_soon_threadsafe(_nothing)


def _payload_bytes(message: str | bytes) -> int:
    return len(message.encode()) if isinstance(message, str) else len(message)


class _Connection:
    """A session and the reply a user greenlet waits for.

    Opening, closing and ``send()`` run in the loop (coroutines); a round trip runs
    in the user's greenlet: the session's send path is synchronous (``send`` +
    ``flush``: frames built, one ``transport.write``), and the reply comes back to
    a ``gevent.event.AsyncResult`` set from the loop's receive callback. Same
    thread, so both are safe, and a round trip costs no task, no future and no
    wake-up of the loop beyond the socket's own: 2.2x the round trips per CPU-second
    of a coroutine through ``run_coroutine_threadsafe`` each time (bench/README.md,
    "Locust users").
    """

    def __init__(self, config: ConnectConfig, pushed: deque[str | bytes]) -> None:
        self.session = Session(config, self._on_event, on_message=self._on_message,
                               report_sent=False)
        self.pushed = pushed
        # The reply being waited for: (message, perf_counter() when it came).
        self._reply: gevent.event.AsyncResult | None = None
        self.closed: Closed | None = None

    def _on_event(self, event: Event) -> None:
        if isinstance(event, Closed):
            self.closed = event
            reply = self._reply
            if reply is not None and not reply.ready():
                reply.set_exception(self._closed_error(event))

    @staticmethod
    def _closed_error(event: Closed) -> WstoolError:
        reason = f" {event.reason}" if event.reason else ""
        return ClosedAbnormally(f"connection closed before the reply (code {event.code}"
                                f"{reason})")

    def _on_message(self, message: str | bytes) -> None:
        reply = self._reply
        if reply is not None and not reply.ready():
            reply.set((message, time.perf_counter()))
        else:
            self.pushed.append(message)  # nothing asked for it: a server push

    async def open(self) -> float:
        start = time.perf_counter()
        await self.session.open()
        return time.perf_counter() - start

    def round_trip(self, message: str | bytes,
                   timeout_s: float | None) -> tuple[str | bytes, float]:
        """Send MESSAGE, wait for the next message; (reply, seconds between them).
        Runs in the user's greenlet (see the class doc)."""
        session = self.session
        if self.closed is not None:
            raise self._closed_error(self.closed)
        reply = gevent.event.AsyncResult()
        self._reply = reply
        try:
            start = time.perf_counter()
            try:
                session.send(message)
            except SessionClosed:
                raise ClosedAbnormally("connection closed before the request") from None
            session.flush()
            _wake_loop_if_needed(session._require_conn().transport)
            try:
                received, end = reply.get(timeout=timeout_s)
            except gevent.Timeout:
                raise TimedOut(f"no reply within {timeout_s}s") from None
            return received, end - start
        finally:
            self._reply = None

    async def send(self, message: str | bytes) -> None:
        try:
            self.session.send(message)
        except SessionClosed:
            raise ClosedAbnormally("connection closed before the message was sent") from None
        self.session.flush()
        await self.session.drain()

    async def drop(self) -> None:
        """Close at once, without waiting for the server (after a failed round trip)."""
        self.session.close_now(1000, "")

    async def close(self, timeout_s: float) -> None:
        if self.session.opened_at is None:
            return
        try:
            await asyncio.wait_for(self.session.close(), timeout_s)
        except TimeoutError:
            self.session.abort()


class WebSocketUser(User):
    """A Locust user with one WebSocket connection, opened by ``on_start``.

    Class attributes: ``url`` (default: Locust's ``--host``), ``connect_options``
    (keywords of :func:`connect_config`), ``reply_timeout_s``. Methods for tasks:
    :meth:`request` (a round trip, reported), :meth:`send` (not reported),
    :meth:`connect`, :meth:`close`. Messages the server sends unasked go to
    ``self.pushed`` (the last ``pushed_kept`` of them).
    """

    abstract = True
    url: ClassVar[str | None] = None
    connect_options: ClassVar[Mapping[str, Any]] = {}
    reply_timeout_s: ClassVar[float | None] = 10.0
    close_timeout_s: ClassVar[float] = 5.0
    pushed_kept: ClassVar[int] = 100

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pushed: deque[str | bytes] = deque(maxlen=self.pushed_kept)
        self._connection: _Connection | None = None
        self._config: ConnectConfig | None = None

    @property
    def session(self) -> Session | None:
        """The open session (its counters, subprotocol, handshake), if any."""
        return self._connection.session if self._connection is not None else None

    def _fire(self, name: str, seconds: float, length: int,
              exception: BaseException | None) -> None:
        self.environment.events.request.fire(
            request_type=REQUEST_TYPE, name=name, response_time=seconds * 1000.0,
            response_length=length, exception=exception, context=self.context())

    def on_start(self) -> None:
        # Not connect(): an exception here would end the user with a traceback
        # (locust/user/users.py, User.run). A failure is reported all the same, and
        # the first task connects again.
        self._connect()

    def on_stop(self) -> None:
        self.close()

    def connect(self) -> None:
        """Open the connection (closing any previous one), reported as "connect".
        A failure is reported, then ends the task (RescheduleTask)."""
        failure = self._connect()
        if failure is not None:
            raise RescheduleTask() from failure

    def _connect(self) -> WstoolError | None:
        self.close()
        start = time.perf_counter()
        try:
            if self._config is None:
                # A bad URL or option is reported as a failed connect too: one row of
                # Locust's error report with wstool's message, not a traceback per user.
                url = self.url or self.host
                if not url:
                    raise UsageError("no URL: set url on the user class or give --host")
                self._config = connect_config(url, **self.connect_options)
            connection = _Connection(self._config, self.pushed)
            elapsed = run_in_loop(connection.open())
        except WstoolError as exc:
            self._fire(CONNECT_NAME, time.perf_counter() - start, 0, exc)
            return exc
        self._connection = connection
        self._fire(CONNECT_NAME, elapsed, 0, None)
        return None

    def _open_connection(self) -> _Connection:
        connection = self._connection
        if connection is None or not connection.session.is_open:
            # After a failure, or the server's close (a close frame already received
            # counts: the reply to a request sent now could not come): a new one.
            self.connect()
            connection = self._connection
            assert connection is not None
        return connection

    def request(self, message: str | bytes, *, name: str | None = None,
                timeout_s: float | None = None) -> str | bytes:
        """Send MESSAGE and return the next message received: one round trip,
        reported under NAME (default "text" or "binary"). Reconnects first if the
        connection was lost. A failure (closed, no reply within ``timeout_s``,
        default ``reply_timeout_s``) is reported, drops the connection (the next
        request opens a new one), then ends the task."""
        connection = self._open_connection()
        kind = name or ("text" if isinstance(message, str) else "binary")
        timeout = self.reply_timeout_s if timeout_s is None else timeout_s
        start = time.perf_counter()
        try:
            reply, elapsed = connection.round_trip(message, timeout)
        except WstoolError as exc:
            self._fire(kind, time.perf_counter() - start, 0, exc)
            # A late reply must not answer the next request: that one reconnects.
            self._connection = None
            run_in_loop(connection.drop())
            raise RescheduleTask() from exc
        self._fire(kind, elapsed, _payload_bytes(reply), None)
        return reply

    def send(self, message: str | bytes) -> None:
        """Send MESSAGE without waiting for an answer (not reported to Locust)."""
        connection = self._open_connection()
        try:
            run_in_loop(connection.send(message))
        except WstoolError as exc:
            raise RescheduleTask() from exc

    def close(self) -> None:
        """Close the connection with the closing handshake (at most ``close_timeout_s``)."""
        connection, self._connection = self._connection, None
        if connection is not None:
            run_in_loop(connection.close(self.close_timeout_s))
