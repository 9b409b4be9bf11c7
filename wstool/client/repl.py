"""``connect`` on a terminal: the REPL's target over the client session.

The prompt loop itself is :class:`wstool.term.repl.Repl`; this module is what it
drives for ``connect`` (see the target interface in ``wstool/term/repl.py``):
a renderer over the client run (``wstool/client/run.py``), which owns ``-x``,
``-n``, ``--echo`` and ``--reconnect``; the REPL is its push-style input.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from wstool.client.run import ClientFrontEnd, ClientRun, NotOpen, RunObserver
from wstool.client.session import Session
from wstool.config import ClientRunConfig, ConnectConfig, OutputConfig, ReplConfig
from wstool.errors import ClosedAbnormally, ExitStatus, UsageError, WstoolError
from wstool.events import Closed, Event, EventSink, Handshake, Message, Notice, Opened, Ping
from wstool.term.commands import CONNECT_COMMANDS, CommandError, CommandSpec, CommandTable
from wstool.term.env import Environment
from wstool.term.render import escape, handshake_lines, human_size
from wstool.term.repl import LineRejected, Repl, ReplUI, TargetStatus, TargetUnavailable

if TYPE_CHECKING:
    from wstool.client.expect import TypedLines  # only with --template: not imported here


def _format_duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m {seconds % 60:02d}s"
    return f"{seconds // 3600}h {seconds // 60 % 60:02d}m"


@dataclass(frozen=True, slots=True)
class DiscardQueued:
    """``/discard``: drop the lines queued while reconnecting (issue 13)."""


def parse_discard(rest: str) -> DiscardQueued | CommandError:
    if rest.strip():
        return CommandError("/discard takes no argument")
    return DiscardQueued()


# connect's own commands, past the core ones (listen has no queue).
SESSION_COMMANDS: CommandTable[DiscardQueued] = CONNECT_COMMANDS.extend([
    CommandSpec("discard", "", "drop the messages queued while --reconnect reconnects "
                "(they are not sent)", parse_discard),
])

# How much of a queued message its "pending" line shows.
QUEUED_PREVIEW_CHARS = 60


def queued_preview(data: str | bytes) -> str:
    """A queued message on its pending line: its first characters (escaped where the
    line is rendered), or its size for a binary one."""
    if isinstance(data, bytes):
        return f"binary, {len(data)} bytes"
    if len(data) > QUEUED_PREVIEW_CHARS:
        return data[:QUEUED_PREVIEW_CHARS] + "…"
    return data


class SessionTarget(ClientFrontEnd):
    """``connect`` as a REPL target: a front-end over one :class:`ClientRun`.

    The run (wstool/client/run.py) owns the connection policy; this class turns
    its events into the REPL's, and the REPL's commands into the run's calls."""

    report_sent = True  # the REPL shows what it sends
    echo_as_sent = True  # --echo: the mirrored message shows as sent

    def __init__(
        self,
        connect_config: ConnectConfig,
        run_config: ClientRunConfig,
        output_config: OutputConfig,
        *,
        observers: Sequence[RunObserver] = (),
    ) -> None:
        self.config = connect_config
        self.output_config = output_config
        self.report_phases = bool(output_config.verbose)  # -v's "* ..." lines
        self.report_pings = output_config.show_ping_pong  # -P: ours and the auto pongs
        self.commands: CommandTable[DiscardQueued] = SESSION_COMMANDS
        # SIGTERM closes with 1001 (exit 143). Not SIGINT: in a prompt_toolkit
        # terminal Ctrl-C is a key (it clears the line), not a signal.
        self.client_run = ClientRun(connect_config, run_config, observers=observers,
                                    trace=output_config.trace, close_on_sigterm=True)
        self._sink: EventSink = lambda _event: None
        self._close_shown: Closed | None = None  # the REPL shows every close line
        self._server_ping_at: float | None = None  # -P: this connection's last one

    @property
    def session(self) -> Session | None:
        return self.client_run.session

    @property
    def state(self) -> str:
        return self.client_run.state

    # ClientFrontEnd: the run's events, to the REPL

    def on_event(self, event: Event) -> None:
        if isinstance(event, Closed):
            self._close_shown = event
        elif isinstance(event, Ping) and event.direction == "received":
            self._server_ping_at = event.ts
        elif isinstance(event, Opened):
            self._server_ping_at = None
        self._sink(event)

    def on_message(self, data: str | bytes) -> None:
        self._sink(Message("received", data, ts=time.monotonic()))

    def on_end(self, error: WstoolError | None) -> None:
        # The REPL showed the server's close (= closed by the server: 4001 ...): the
        # exit says nothing more (issue 13); its status is unchanged.
        shown = self._close_shown
        if (
            shown is not None
            and isinstance(error, ClosedAbnormally)
            and error.server_close
            and error.close_code == shown.code
        ):
            error.said = True

    def on_open_failed(self, handshake: Handshake) -> None:
        if self.output_config.verbose:
            # -v: the rejected handshake, as pipe mode shows it on stderr.
            for line in handshake_lines(handshake, show_secrets=self.output_config.show_secrets):
                self._sink(Notice(line, ts=time.monotonic()))

    # ReplTarget

    async def run(self, sink: EventSink) -> ExitStatus:
        self._sink = sink
        return await self.client_run.run(self)

    async def send(self, data: str | bytes) -> None:
        try:
            # --reconnect: typed while it reconnects, the line waits (issue 13).
            queued = await self.client_run.send_or_queue(data)
        except NotOpen as exc:
            raise TargetUnavailable(str(exc)) from None
        if queued:
            self._sink(Notice(
                f"queued ({queued} waiting), sent once the connection is back (/discard drops "
                f"the queue): {queued_preview(data)}", ts=time.monotonic()))

    async def ping(self, data: bytes | None) -> float | None:
        try:
            rtt_s = await self.client_run.ping(data)
        except NotOpen as exc:
            raise TargetUnavailable(str(exc)) from None
        # -P and -v show every pong received, with its RTT: said already.
        return None if self.report_pings or self.output_config.verbose else rtt_s

    def pong(self, data: bytes) -> None:
        try:
            self.client_run.pong(data)
        except NotOpen as exc:
            raise TargetUnavailable(str(exc)) from None

    async def close(self, code: int, reason: str) -> None:
        await self.client_run.close(code, reason)

    def _state_text(self, session: Session | None) -> str:
        state = self.client_run.state
        if state == "open" and session is not None and not session.is_open:
            return "closing"  # a close frame is in flight (either side's)
        if state == "reconnecting":
            return f"reconnecting (attempt {self.client_run.reconnect_attempt})"
        return state

    def status(self) -> TargetStatus:
        session = self.session
        totals = self.client_run.totals()
        compression = None
        if session is not None and session.extensions:
            # "deflate", not "permessage-deflate": the status bar must fit 100 columns
            # with -P's segment (/headers shows the negotiated extension in full).
            compression = ", ".join(name.removeprefix("permessage-") for name in session.extensions)
        return TargetStatus(
            url=self.config.target.unix_path or self.config.target.url,
            state=self._state_text(session),
            subprotocol=session.subprotocol if session else None,
            compression=compression,
            messages_sent=totals.messages_sent,
            messages_received=totals.messages_received,
            bytes_sent=totals.bytes_sent,
            bytes_received=totals.bytes_received,
            last_rtt_s=totals.last_rtt_s,
            queued=self.client_run.queued,
            server_ping=self._server_ping_text(),
        )

    def _server_ping_text(self) -> str | None:
        """-P: the age of the server's last ping on this connection."""
        if not self.report_pings:
            return None
        if self._server_ping_at is None:
            return "server ping -"
        return f"server ping {_format_duration(time.monotonic() - self._server_ping_at)} ago"

    def headers_lines(self) -> list[str]:
        session = self.session
        if session is None or session.handshake is None:
            return ["no handshake yet"]
        return handshake_lines(session.handshake, show_secrets=self.output_config.show_secrets)

    def stats_lines(self) -> list[str]:
        st = self.status()
        session = self.session
        totals = self.client_run.totals()
        rtts = self.client_run.rtts_s()
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
                         f" connected, {_format_duration(time.monotonic() - totals.started_at)}"
                         " since start")
        if totals.reconnects:
            lines.append(f"reconnects: {totals.reconnects}")
        return lines

    async def execute(self, command: DiscardQueued, ui: ReplUI) -> bool:
        match command:
            case DiscardQueued():
                count = self.client_run.discard_queued()
                ui.show_state(f"discarded {count} queued message{'' if count == 1 else 's'}"
                              ": not sent" if count else "nothing queued")
        return True


async def run_connect_repl(
    env: Environment,
    connect_config: ConnectConfig,
    run_config: ClientRunConfig,
    output_config: OutputConfig,
    repl_config: ReplConfig,
    *,
    observers: Sequence[RunObserver] = (),
    typed_lines: TypedLines | None = None,
) -> ExitStatus:
    """``connect`` on a terminal: the entry point ``cli/app.py`` calls.

    OBSERVERS plug later capabilities (``--expect``, ``--capture``) into the run;
    TYPED_LINES (``--template``) expands the message lines typed at the prompt."""
    target = SessionTarget(connect_config, run_config, output_config, observers=observers)
    expand = None if typed_lines is None else line_expander(typed_lines)
    return await Repl(env, repl_config, target, expand_line=expand,
                      compile_filter=filter_matcher).run()


def line_expander(typed_lines: TypedLines) -> Callable[[str], str]:
    """The REPL's ``expand_line`` hook over ``--template``'s typed lines."""

    def expand(text: str) -> str:
        try:
            return typed_lines.expand(text)
        except UsageError as exc:  # one line; the user's own text, escaped all the same
            raise LineRejected(escape(str(exc))) from None

    return expand


def filter_matcher(source: str) -> Callable[[str | bytes], bool]:
    """``/filter REGEX|json:EXPR``: the pattern as ``--expect`` reads it (one matcher
    for both; expect.py is imported on the first /filter only). ValueError: one line."""
    from wstool.client.expect import Matcher

    try:
        matcher = Matcher(source, "/filter")
    except UsageError as exc:
        raise ValueError(str(exc)) from None
    return lambda data: matcher.match(data) is not None
