"""``connect`` on a terminal: the REPL's target over the client session.

The prompt loop itself is :class:`wstool.term.repl.Repl`; this module is what it
drives for ``connect`` (see the target interface in ``wstool/term/repl.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field

from wstool.client.session import Reconnects, Session, SessionClosed
from wstool.config import ConnectConfig, OutputConfig, PipeConfig
from wstool.errors import ExitStatus, WstoolError, is_retryable
from wstool.events import Closed, Event, EventSink, Message, Notice, Opened, Reconnecting
from wstool.term.commands import CONNECT_COMMANDS, CommandTable
from wstool.term.env import Environment
from wstool.term.render import handshake_lines, human_size
from wstool.term.repl import Repl, ReplConfig, ReplUI, TargetStatus, TargetUnavailable


def _format_duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m {seconds % 60:02d}s"
    return f"{seconds // 3600}h {seconds // 60 % 60:02d}m"


@dataclass
class _Totals:
    messages_sent: int = 0
    messages_received: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    rtts_s: list[float] = field(default_factory=list)


class SessionTarget:
    """``connect``: one ``Session`` at a time, reconnecting with ``--reconnect``."""

    def __init__(
        self,
        connect_config: ConnectConfig,
        pipe_config: PipeConfig,
        output_config: OutputConfig,
    ) -> None:
        self.config = connect_config
        self.pipe_config = pipe_config
        self.output_config = output_config
        self.commands: CommandTable = CONNECT_COMMANDS
        self.session: Session | None = None
        self.state = "connecting"
        self.started_at = time.monotonic()
        self.reconnects = 0
        self._past = _Totals()  # sessions before the current one
        self._stop = asyncio.Event()
        self._sink: EventSink = lambda _event: None
        self._received_total = 0

    # ReplTarget

    async def run(self, sink: EventSink) -> ExitStatus:
        self._sink = sink
        reconnects = Reconnects(self.pipe_config.reconnect_max_delay_s,
                                self.pipe_config.reconnect_limit)
        attempt = 0
        while True:
            attempt += 1
            error = await self._run_session()
            if self._stop.is_set() or error is None or not self.pipe_config.reconnect:
                break
            if not is_retryable(error):
                break
            if self.session is not None and self.session.opened_at is not None:
                reconnects.opened()  # it worked for a while: start over
            delay = reconnects.next_delay()
            if delay is None:
                sink(Notice(reconnects.giving_up(), ts=time.monotonic()))
                break
            self.state = "reconnecting"
            self.reconnects += 1
            sink(Reconnecting(attempt, delay, str(error), ts=time.monotonic()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), delay)
            if self._stop.is_set():
                error = None  # the user quit while we waited: their choice
                break
        self.state = "closed"
        if error is not None:
            raise error
        return ExitStatus.OK

    async def _run_session(self) -> WstoolError | None:
        session = Session(
            self.config,
            self._on_event,
            on_batch=self._on_batch,
            trace=self.output_config.trace,
            report_sent=True,
        )
        session.echo_engine = self.pipe_config.echo  # issue 4: --echo by serve-echo's engine
        if self.session is not None:
            self._add_to_past(self.session)
        self.session = session
        self.state = "connecting"
        opening = asyncio.ensure_future(session.open())
        stopping = asyncio.ensure_future(self._stop.wait())
        try:
            await asyncio.wait({opening, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
        if not opening.done():
            opening.cancel()
            with contextlib.suppress(BaseException):
                await opening
            return None
        exc = opening.exception()
        if exc is not None:
            if self.output_config.verbose and session.handshake is not None:
                # -v: the rejected handshake, as pipe mode shows it on stderr.
                for line in handshake_lines(session.handshake,
                                            show_secrets=self.output_config.show_secrets):
                    self._sink(Notice(line, ts=time.monotonic()))
            if isinstance(exc, WstoolError):
                return exc
            raise exc
        self.state = "open"
        if self._stop.is_set():
            await session.close(1000)
            return None
        try:
            for message in self.pipe_config.execute:  # -x, on every (re)connect
                session.send_text(message)
            session.flush()
        except SessionClosed:
            pass
        await session.wait_closed()
        self.state = "closed"
        return session.outcome()

    def _on_event(self, event: Event) -> None:
        # The status bar redraws on this event: the state must be current.
        if isinstance(event, Opened):
            self.state = "open"
        elif isinstance(event, Closed):
            self.state = "closed"
        count = self.pipe_config.message_count
        if isinstance(event, Message) and event.direction == "received":
            if count is not None and self._received_total >= count:
                return  # past -n: the user asked for exactly N, as in pipe mode
            self._received_total += 1
            session = self.session
            if self.pipe_config.echo and session is not None:
                if session.echo_engine:  # issue 4: echo.py has echoed it already; show it
                    self._sink(Message("sent", event.data, ts=event.ts))
                else:
                    with contextlib.suppress(SessionClosed):
                        session.send(event.data)
        self._sink(event)
        if (
            count is not None
            and isinstance(event, Message)
            and event.direction == "received"
            and self._received_total == count
        ):
            # -n: N messages received, then a clean close.
            asyncio.get_running_loop().create_task(self.close(1000, ""))

    def _on_batch(self) -> None:
        if self.pipe_config.echo and self.session is not None and self.session.is_open:
            self.session.flush()

    def _add_to_past(self, session: Session) -> None:
        past = self._past
        past.messages_sent += session.messages_sent
        past.messages_received += session.messages_received
        past.bytes_sent += session.bytes_sent
        past.bytes_received += session.bytes_received
        past.rtts_s.extend(session.rtts_s)

    def _open_session(self) -> Session:
        session = self.session
        if session is None or not session.is_open:
            raise TargetUnavailable(f"the connection is {self.state}")
        return session

    async def send(self, data: str | bytes) -> None:
        session = self._open_session()
        try:
            session.send(data)
        except SessionClosed:
            raise TargetUnavailable("the connection is closed") from None
        session.flush()
        await session.drain()

    async def ping(self, data: bytes | None) -> float:
        session = self._open_session()
        try:
            return await session.ping(data)
        except SessionClosed:
            raise TargetUnavailable("the connection is closed") from None
        except Exception as exc:  # closed while waiting, or a duplicate payload
            raise TargetUnavailable(str(exc) or type(exc).__name__) from None

    def pong(self, data: bytes) -> None:
        session = self._open_session()
        try:
            session.pong(data)
        except SessionClosed:
            raise TargetUnavailable("the connection is closed") from None

    async def close(self, code: int, reason: str) -> None:
        self._stop.set()
        session = self.session
        if session is not None and session.is_open:
            self.state = "closing"
            await session.close(code, reason)

    def _state_text(self, session: Session | None) -> str:
        if self.state == "open" and session is not None and not session.is_open:
            return "closing"  # a close frame is in flight (either side's)
        if self.state == "reconnecting":
            return f"reconnecting (attempt {self.reconnects})"
        return self.state

    def status(self) -> TargetStatus:
        session = self.session
        past = self._past
        now_sent = session.messages_sent if session else 0
        rtts = session.rtts_s if session and session.rtts_s else past.rtts_s
        compression = None
        if session is not None and session.extensions:
            compression = ", ".join(session.extensions)
        return TargetStatus(
            url=self.config.target.unix_path or self.config.target.url,
            state=self._state_text(session),
            subprotocol=session.subprotocol if session else None,
            compression=compression,
            messages_sent=past.messages_sent + now_sent,
            messages_received=past.messages_received
            + (session.messages_received if session else 0),
            bytes_sent=past.bytes_sent + (session.bytes_sent if session else 0),
            bytes_received=past.bytes_received + (session.bytes_received if session else 0),
            last_rtt_s=rtts[-1] if rtts else None,
        )

    def headers_lines(self) -> list[str]:
        session = self.session
        if session is None or session.handshake is None:
            return ["no handshake yet"]
        return handshake_lines(session.handshake, show_secrets=self.output_config.show_secrets)

    def stats_lines(self) -> list[str]:
        st = self.status()
        session = self.session
        rtts = list(self._past.rtts_s) + (list(session.rtts_s) if session else [])
        lines = [
            f"sent:     {st.messages_sent} messages, {human_size(st.bytes_sent)} "
            "(payload bytes)",
            f"received: {st.messages_received} messages, {human_size(st.bytes_received)} "
            "(payload bytes)",
        ]
        if rtts:
            avg = sum(rtts) / len(rtts)
            lines.append(
                f"rtt:      min {min(rtts) * 1000:.2f} / avg {avg * 1000:.2f} / "
                f"max {max(rtts) * 1000:.2f} ms over {len(rtts)} pings"
            )
        else:
            lines.append("rtt:      no pong yet (/ping)")
        if session is not None and session.opened_at is not None:
            lines.append(f"uptime:   {_format_duration(time.monotonic() - session.opened_at)}"
                         f" connected, {_format_duration(time.monotonic() - self.started_at)}"
                         " since start")
        if self.reconnects:
            lines.append(f"reconnects: {self.reconnects}")
        return lines

    async def execute(self, command: object, ui: ReplUI) -> bool:
        return False


async def run_connect_repl(
    env: Environment,
    connect_config: ConnectConfig,
    pipe_config: PipeConfig,
    output_config: OutputConfig,
    repl_config: ReplConfig,
) -> ExitStatus:
    """``connect`` on a terminal: the entry point ``cli.py`` calls."""
    target = SessionTarget(connect_config, pipe_config, output_config)
    return await Repl(env, repl_config, target).run()
