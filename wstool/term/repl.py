"""The interactive REPL: ``wstool connect`` on a terminal (issue 3).

A prompt_toolkit input line with a status bar, over a *target* that does the
networking. Incoming messages are printed above the input line as they
arrive (coalesced per event-loop turn and written by ``_write_above``, which
erases and redraws the prompt as ``run_in_terminal`` does but keeps the terminal
in raw mode, so the line being typed, and the keys typed meanwhile, survive any
burst); everything remote is rendered
by ``render_rich.py``, escaped.

The target interface
--------------------

The REPL never touches a ``Session``; it drives a :class:`ReplTarget`:

``commands``
    the :class:`~wstool.term.commands.CommandTable` to parse input with
    (``CONNECT_COMMANDS``, or that table ``.extend()``-ed).
``async run(sink) -> ExitStatus``
    connect (and reconnect), report every event to ``sink``, return when the
    connection is over for good; raise a ``WstoolError`` to exit with it.
``status() -> TargetStatus``
    what the status bar shows (polled on every redraw: keep it cheap).
``async send(data)``, ``async ping(data) -> rtt_s``, ``pong(data)``
    raise :class:`TargetUnavailable` (one line for the user) when they cannot.
``async close(code, reason)``
    close for good: no reconnect; ``run()`` then returns.
``headers_lines()``, ``stats_lines()``
    the text of ``/headers`` and ``/stats``.
``async execute(command, ui) -> bool``
    records the REPL does not know (``wstool listen``: ``/clients``, ``/to ID
    MESSAGE``, ``/kick ID [code [reason]]``), typed: a target whose table was
    ``extend()``-ed with specs parsing to ``ListenCommand`` is a
    ``ReplTarget[ListenCommand]`` and its ``execute()`` takes exactly those
    (the core records never reach it); ``ui`` is the :class:`Repl`
    (``show_state``, ``show_error``, ``show_info``, ``show_event(event,
    label)``; a label such as a client id prefixes the event). Return False
    for "not mine either".

The REPL's ``expand_line`` hook (``connect --template``) turns each typed message
line (not a ``/command``) into the text sent, or raises :class:`LineRejected`: one
error line, nothing sent, the prompt stays.

``wstool.client.repl.SessionTarget`` is the target of ``connect``;
``wstool.server.listen_repl.ListenTarget`` the one of ``listen``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import shlex
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, Protocol, assert_never

from prompt_toolkit import PromptSession
from prompt_toolkit.application import Application, run_in_terminal
from prompt_toolkit.auto_suggest import AutoSuggestFromHistory
from prompt_toolkit.completion import CompleteEvent, Completer, Completion, PathCompleter
from prompt_toolkit.document import Document
from prompt_toolkit.filters import emacs_mode
from prompt_toolkit.formatted_text import StyleAndTextTuples
from prompt_toolkit.history import FileHistory, History, InMemoryHistory
from prompt_toolkit.input import Input
from prompt_toolkit.key_binding import KeyBindings, KeyPressEvent
from prompt_toolkit.output import ColorDepth, Output
from prompt_toolkit.styles import Style
from rich.console import Console
from rich.text import Text

from wstool.config import ReplConfig
from wstool.errors import ExitStatus
from wstool.events import (
    Closed,
    Event,
    EventSink,
    Failed,
    Message,
    Opened,
    Ping,
    Pong,
    Reconnecting,
)
from wstool.term.commands import (
    CLOSE_CODE_COMPLETIONS,
    CloseCommand,
    CommandError,
    CommandTable,
    CoreCommand,
    ExtraT,
    FilterMessages,
    FindText,
    JsonView,
    Parsed,
    PauseDisplay,
    PingCommand,
    PongCommand,
    Quit,
    SaveTranscript,
    SendBinary,
    SendFile,
    SendText,
    ShowHeaders,
    ShowHelp,
    ShowMessage,
    ShowStats,
    Toggle,
)
from wstool.term.env import Environment
from wstool.term.jsonl import write_json_line
from wstool.term.message_view import MessageFilter, MessageMatch, MessageView, regex_filter
from wstool.term.render import escape, event_json, handshake_lines, human_size
from wstool.term.render_rich import (
    ViewOptions,
    error_text,
    event_text,
    info_text,
    rtt_text,
    state_text,
)

_TRANSCRIPT_EVENTS = (Opened, Message, Ping, Pong, Closed, Failed, Reconnecting)

# /save keeps the most recent events only.
TRANSCRIPT_MAX_EVENTS = 100_000

# History entries larger than this (a pasted document) are not kept on disk.
HISTORY_MAX_ENTRY_CHARS = 64 * 1024


class TargetUnavailable(Exception):
    """A send/ping/pong the target cannot do now; the message is one line."""


class LineRejected(Exception):
    """A typed message line the ``expand_line`` hook refuses (not sent); the message
    is one line, already escaped."""


@dataclass(frozen=True)
class TargetStatus:
    """What the status bar shows."""

    url: str
    state: str  # connecting / open / closing / closed / reconnecting (or the target's own)
    subprotocol: str | None = None
    compression: str | None = None
    messages_sent: int = 0
    messages_received: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    last_rtt_s: float | None = None
    extra: str | None = None  # e.g. "3 clients" for listen
    # connect (issue 13): lines typed while --reconnect brings the connection back,
    # waiting to be sent; and, with -P, e.g. "server ping 3s ago".
    queued: int = 0
    server_ping: str | None = None


class ReplUI(Protocol):
    def show_event(self, event: Event, label: str | None = None) -> None: ...
    def show_state(self, line: str) -> None: ...
    def show_error(self, line: str) -> None: ...
    def show_info(self, lines: list[str]) -> None: ...


class ReplTarget(Protocol[ExtraT]):
    """What the REPL drives; ``ExtraT`` is the union of the target's own records
    (``Never`` for ``connect``: its table has the core commands only)."""

    commands: CommandTable[ExtraT]

    async def run(self, sink: EventSink) -> ExitStatus: ...
    def status(self) -> TargetStatus: ...
    async def send(self, data: str | bytes) -> None: ...
    # The pong's round-trip time, or None when the target showed the result itself.
    async def ping(self, data: bytes | None) -> float | None: ...
    def pong(self, data: bytes) -> None: ...
    async def close(self, code: int, reason: str) -> None: ...
    def headers_lines(self) -> list[str]: ...
    def stats_lines(self) -> list[str]: ...
    async def execute(self, command: ExtraT, ui: ReplUI) -> bool: ...


class _BoundedFileHistory(FileHistory):
    """A ``FileHistory`` that skips huge entries (a pasted 1 MiB document)."""

    def store_string(self, string: str) -> None:
        if len(string) <= HISTORY_MAX_ENTRY_CHARS:
            super().store_string(string)


def open_history(path: Path | None) -> tuple[History, str | None]:
    """The history store, and a warning if the file cannot be used."""
    if path is None:
        return InMemoryHistory(), None
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        path.touch(mode=0o600, exist_ok=True)
    except OSError as exc:
        return InMemoryHistory(), f"history not saved: cannot write {path}: {exc.strerror}"
    return _BoundedFileHistory(str(path)), None


class SlashCompleter(Completer):
    """Tab completion from a command table's metadata."""

    def __init__(self, table: CommandTable[object]) -> None:
        self.table = table
        self.paths = PathCompleter(expanduser=True)

    def get_completions(
        self, document: Document, complete_event: CompleteEvent
    ) -> Iterable[Completion]:
        text = document.text_before_cursor
        if not text.startswith("/") or text.startswith("//") or "\n" in text:
            return
        name, sep, arg = text[1:].partition(" ")
        if not sep:
            for spec in self.table.complete(name):
                yield Completion(
                    "/" + spec.name,
                    start_position=-len(text),
                    display=spec.synopsis,
                    display_meta=spec.summary,
                )
            return
        found = self.table.lookup(name)
        if found is None:
            return
        spec = found
        if spec.arg_kind == "path":
            if arg.startswith("--text "):
                arg = arg[len("--text ") :]
            elif "--text".startswith(arg) and arg.startswith("-"):
                yield Completion("--text", start_position=-len(arg))
                return
            yield from self.paths.get_completions(Document(arg, len(arg)), complete_event)
        elif spec.arg_kind == "close_code" and " " not in arg:
            for code, meaning in CLOSE_CODE_COMPLETIONS:
                if str(code).startswith(arg):
                    yield Completion(str(code), start_position=-len(arg), display_meta=meaning)
        elif spec.arg_kind == "toggle":
            for word in ("on", "off"):
                if word.startswith(arg):
                    yield Completion(word, start_position=-len(arg))
        elif spec.arg_kind == "json_mode":
            for word in ("compact", "pretty", "off"):
                if word.startswith(arg):
                    yield Completion(word, start_position=-len(arg))
        elif spec.arg_kind == "command":
            for other in self.table.complete(arg.lstrip("/")):
                yield Completion(other.name, start_position=-len(arg),
                                 display_meta=other.summary)


_STYLE = Style.from_dict({
    "prompt": "bold",
    "bottom-toolbar": "noreverse bg:#303030 #d0d0d0",
    "bottom-toolbar.state-open": "bold #5fd75f",
    "bottom-toolbar.state-other": "bold #ffd75f",
    "bottom-toolbar.sep": "#808080",
})


def _format_rtt(rtt_s: float | None) -> str:
    return "rtt -" if rtt_s is None else f"rtt {rtt_s * 1000:.1f} ms"


class Repl(Generic[ExtraT]):
    """The prompt loop over a :class:`ReplTarget` (see the module docstring)."""

    def __init__(
        self,
        env: Environment,
        config: ReplConfig,
        target: ReplTarget[ExtraT],
        *,
        input: Input | None = None,
        output: Output | None = None,
        expand_line: Callable[[str], str] | None = None,
        compile_filter: Callable[[str], MessageMatch] = regex_filter,
    ) -> None:
        self.env = env
        self.config = config
        self.target = target
        # connect --template: a typed message line (not a /command) -> the text sent;
        # LineRejected: not sent, one error line, the prompt stays.
        self.expand_line = expand_line
        self.view = ViewOptions(
            timestamps=config.timestamps,
            pretty_json=config.pretty_json,
            base64=config.base64,
            verbose=config.verbose,
        )
        # Numbered, kept, filtered messages (/show, /find, /filter, /pause): issue 13.
        # --no-pretty is /json off. COMPILE_FILTER turns a /filter pattern into a
        # matcher (raises ValueError, one line): connect's knows json:EXPR.
        self.messages = MessageView(self.view, "compact" if config.pretty_json else "off")
        self.compile_filter = compile_filter
        self.view.ping_pong = config.show_ping_pong
        self.color = env.color_for(env.stdout_isatty)
        # The environment's console renders to strings here (capture); the
        # REPL writes them above the prompt itself.
        self.console: Console = env.stdout_console()
        # For /save; the oldest events go first past the cap (a flood must
        # not grow memory without bound).
        self.transcript: collections.deque[Event] = collections.deque(
            maxlen=TRANSCRIPT_MAX_EVENTS
        )
        self.transcript_dropped = 0
        self._pending: list[str] = []
        self._flush_handle: asyncio.Handle | None = None
        self._last_write: Awaitable[None] | None = None
        self._quitting = False
        self._tasks: set[asyncio.Task[None]] = set()
        history, warning = open_history(config.history_path)
        self._history_warning = warning
        self.prompt: PromptSession[str] = PromptSession(
            [("class:prompt", config.prompt)],
            vi_mode=config.vi,
            history=history,
            auto_suggest=AutoSuggestFromHistory(),
            completer=SlashCompleter(target.commands),
            complete_while_typing=True,
            key_bindings=self._key_bindings(),
            bottom_toolbar=self._toolbar,
            prompt_continuation=lambda width, line_no, wrap: "." * (width - 1) + " ",
            style=_STYLE,
            color_depth=None if self.color else ColorDepth.DEPTH_1_BIT,
            erase_when_done=True,
            input=input,
            output=output,
        )
        # Bursts of incoming messages: redraw the status bar at most 20x/s.
        self.prompt.app.min_redraw_interval = 0.05
        if config.show_ping_pong:
            self.prompt.refresh_interval = 1.0  # -P: the server ping's age ticks

    # Keys

    def _key_bindings(self) -> KeyBindings:
        kb = KeyBindings()

        # Emacs mode only: a terminal sends Alt-Enter as Esc Enter, and in Vi mode Esc
        # then Enter (typed fast) must leave insert mode and send, as Vi users expect.
        @kb.add("escape", "enter", filter=emacs_mode)
        def _newline(event: KeyPressEvent) -> None:
            """Alt-Enter / Esc Enter: a newline in the message, not send."""
            event.current_buffer.insert_text("\n")

        @kb.add("tab")
        def _complete(event: KeyPressEvent) -> None:
            """Tab: the default, except that one match is inserted even while the
            complete-while-typing run is still in flight (prompt_toolkit runs one
            completion at a time and dropped the Tab's, so a fast '/pi<Tab>' did nothing).
            """
            buffer = event.current_buffer
            if buffer.complete_state is None and buffer.completer is not None:
                matches = list(buffer.completer.get_completions(
                    buffer.document, CompleteEvent(completion_requested=True)))
                if len(matches) == 1:
                    buffer.apply_completion(matches[0])
                    return
            if buffer.complete_state is not None:
                buffer.complete_next()
            else:
                buffer.start_completion(insert_common_part=True)

        @kb.add("c-c")
        def _clear(event: KeyPressEvent) -> None:
            """Ctrl-C clears the line (Ctrl-D or /quit exits)."""
            buffer = event.current_buffer
            if not buffer.text:
                self.show_state("Ctrl-D or /quit to close and exit")
            buffer.reset()

        return kb

    # Status bar

    def _toolbar(self) -> StyleAndTextTuples:
        st = self.target.status()
        sep = ("class:bottom-toolbar.sep", " │ ")
        state_style = (
            "class:bottom-toolbar.state-open" if st.state == "open"
            else "class:bottom-toolbar.state-other"
        )
        parts: StyleAndTextTuples = [
            ("", " " + escape(st.url)),
            sep,
            (state_style, st.state),
        ]
        if st.extra:
            parts += [sep, ("", escape(st.extra))]
        if st.subprotocol:
            parts += [sep, ("", escape(st.subprotocol))]
        if st.compression:
            parts += [sep, ("", escape(st.compression))]
        parts += [
            sep,
            ("", f"↑ {st.messages_sent} msg {human_size(st.bytes_sent)}"),
            sep,
            ("", f"↓ {st.messages_received} msg {human_size(st.bytes_received)}"),
            sep,
            ("", _format_rtt(st.last_rtt_s) + " "),
        ]
        if st.queued:
            parts += [sep, ("class:bottom-toolbar.state-other", f"{st.queued} queued ")]
        if st.server_ping:
            parts += [sep, ("", escape(st.server_ping) + " ")]
        segments = self.messages.status_segments()  # /filter's hidden count, /pause's
        if segments:
            style, text, *_ = parts[-1]
            parts[-1] = (style, text.rstrip())
            for segment in segments:
                parts += [sep, ("class:bottom-toolbar.state-other", segment)]
            parts.append(("", " "))
        return parts

    # Output above the prompt

    def _render(self, renderable: Text) -> str:
        with self.console.capture() as capture:
            self.console.print(renderable)
        return capture.get()

    def _write(self, text: str) -> None:
        """Queue text for the terminal; one write per event-loop turn."""
        self._pending.append(text)
        if self._flush_handle is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                self._flush_now()
                return
            self._flush_handle = loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_handle = None
        if not self._pending:
            return
        text = "".join(self._pending)
        self._pending.clear()
        output = self.prompt.app.output

        def write() -> None:
            output.write_raw(text)
            output.flush()

        # Erases the prompt and status bar, writes, redraws them below; the
        # buffer being edited is untouched. Calls are chained, so in order.
        self._last_write = asyncio.ensure_future(_write_above(self.prompt.app, write))

    def _flush_now(self) -> None:
        text = "".join(self._pending)
        self._pending.clear()
        output = self.prompt.app.output
        output.write_raw(text)
        output.flush()

    async def _drain_output(self) -> None:
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush()
        if self._last_write is not None:
            with contextlib.suppress(Exception):
                await self._last_write

    def show_event(self, event: Event, label: str | None = None) -> None:
        """Print an event above the prompt; ``label`` (e.g. a client id) goes first."""
        self.view.width = self.prompt.app.output.get_size().columns
        if isinstance(event, Message):
            shown = self.messages.add(event, label)
            if shown is not None:
                self._write(self._render(shown))
            return
        text = event_text(event, self.view)
        if text is not None:
            if label:
                text = Text(label + " ", style="bold").append_text(text)
            self._write(self._render(text))

    def show_state(self, line: str) -> None:
        self._write(self._render(state_text(line)))

    def show_error(self, line: str) -> None:
        self._write(self._render(error_text(line)))

    def show_info(self, lines: list[str]) -> None:
        self._write(self._render(info_text(lines)))

    def on_event(self, event: Event) -> None:
        """The sink the target reports to."""
        if isinstance(event, _TRANSCRIPT_EVENTS):  # what --json reports, for /save
            if len(self.transcript) == self.transcript.maxlen:
                self.transcript_dropped += 1
            self.transcript.append(event)
        if isinstance(event, Opened) and self.config.verbose:
            self.show_info(handshake_lines(event.handshake,
                                           show_secrets=self.config.show_secrets))
        self.show_event(event)
        self.prompt.app.invalidate()  # the status bar

    # The loop

    async def run(self) -> ExitStatus:
        """Prompt until the target ends or the user quits; the target's status."""
        if self._history_warning:
            self.show_state(self._history_warning)
        self.show_state("type a message and Enter to send; /help for commands, Ctrl-D to quit")
        target_task = asyncio.ensure_future(self.target.run(self.on_event))
        target_task.add_done_callback(lambda _t: self._stop_prompt())
        # The terminal stays in raw mode between two prompts too (prompt_toolkit
        # restores cooked mode when each prompt ends): a key typed while a line is
        # handled waits for the next prompt, not for the line discipline, where
        # Ctrl-D (VEOF) vanished, Ctrl-C (ISIG) was a SIGINT and keys were echoed.
        with self.prompt.app.input.raw_mode():
            try:
                while not target_task.done() and not self._quitting:
                    try:
                        line = await self.prompt.prompt_async(pre_run=self._pre_run)
                    except EOFError:  # Ctrl-D on an empty line
                        await self._quit(1000, "")
                        break
                    except _TargetEnded:
                        break
                    try:
                        await self.handle_line(line)
                    except Exception as exc:  # a bug: say so, keep the connection
                        self.show_error(f"internal error: {type(exc).__name__}: "
                                        f"{escape(str(exc))}")
                await asyncio.wait({target_task})
            finally:
                for task in list(self._tasks):
                    task.cancel()
                if not target_task.done():
                    target_task.cancel()
                    with contextlib.suppress(BaseException):
                        await target_task
                await self._drain_output()
        return target_task.result()

    def _pre_run(self) -> None:
        # The target may have ended between two prompts.
        if self._quitting:
            self.prompt.app.exit(exception=_TargetEnded())

    def _stop_prompt(self) -> None:
        self._quitting = True
        app = self.prompt.app
        if app.is_running and app.future is not None and not app.future.done():
            app.exit(exception=_TargetEnded())

    async def _quit(self, code: int, reason: str) -> None:
        self._quitting = True
        await self.target.close(code, reason)

    def _spawn(self, awaitable: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(awaitable)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def handle_line(self, line: str) -> None:
        """Parse one line of input and do it."""
        command = self.target.commands.parse(line)
        if command is None:
            return
        typed = isinstance(command, SendText) and (line[:1] != "/" or line[:2] == "//")
        if typed and self.expand_line is not None:
            assert isinstance(command, SendText)
            try:
                command = SendText(self.expand_line(command.text))
            except LineRejected as exc:
                self.show_error(str(exc))
                return
        if self.config.lines_as_binary and isinstance(command, SendText) and line[:1] != "/":
            command = SendBinary(command.text.encode())
        await self.execute(command)

    async def execute(self, command: Parsed[ExtraT]) -> None:
        """Do a parsed line: the core records here, the target's own in its ``execute()``."""
        if isinstance(command, CommandError):
            self.show_error(command.message)
        elif isinstance(command, CoreCommand):
            await self._execute_core(command)
        elif not await self.target.execute(command, self):
            self.show_error(f"command not available here: {command!r}")

    async def _execute_core(self, command: CoreCommand) -> None:
        match command:
            case SendText(text=text):
                await self._send(text)
            case SendBinary(data=data):
                await self._send(data)
            case SendFile():
                payload = self._read_file(command)
                if payload is not None:
                    await self._send(payload)
            case PingCommand(data=ping_data):
                self._spawn(self._ping(ping_data))
            case PongCommand(data=pong_data):
                try:
                    self.target.pong(pong_data)
                except TargetUnavailable as exc:
                    self.show_error(f"pong not sent: {exc}")
            case CloseCommand(code=code, reason=reason):
                await self._quit(code, reason)
            case Quit():
                await self._quit(1000, "")
            case Toggle():
                self._toggle(command)
            case ShowHeaders():
                self.show_info(self.target.headers_lines())
            case ShowStats():
                self.show_info(self.target.stats_lines())
            case SaveTranscript(path=path):
                self._save(path)
            case ShowHelp(topic=topic):
                self._help(topic)
            case JsonView() | ShowMessage() | FindText() | FilterMessages() | PauseDisplay():
                await self._display(command)
            case _:
                # mypy fails here when a record of CoreCommand has no case above.
                assert_never(command)

    async def _send(self, data: str | bytes) -> None:
        try:
            await self.target.send(data)
        except TargetUnavailable as exc:
            self.show_error(f"not sent: {exc}")

    async def _ping(self, data: bytes | None) -> None:
        try:
            rtt_s = await self.target.ping(data)
        except TargetUnavailable as exc:
            self.show_error(f"ping not sent: {exc}")
            return
        if rtt_s is not None:
            shown = data if data is not None else b""
            self._write(self._render(rtt_text(shown, rtt_s, time.monotonic(), self.view)))
        self.prompt.app.invalidate()

    def _read_file(self, command: SendFile) -> str | bytes | None:
        path = Path(command.path).expanduser()
        try:
            raw = path.read_bytes()
        except OSError as exc:
            self.show_error(f"cannot read {escape(command.path)}: {exc.strerror or exc}")
            return None
        if not command.as_text:
            return raw
        try:
            return raw.decode()
        except UnicodeDecodeError as exc:
            self.show_error(
                f"{escape(command.path)} is not valid UTF-8 (byte {exc.start}); "
                "send it as binary with /file PATH"
            )
            return None

    def _toggle(self, command: Toggle) -> None:
        if command.setting == "json":  # /json parses to JsonView now; the old record's meaning
            value = self.messages.mode == "off" if command.value is None else command.value
            self.messages.mode = "pretty" if value else "off"
            self.show_state(f"JSON pretty-printing {'on' if value else 'off'}")
        else:
            value = not self.view.timestamps if command.value is None else command.value
            self.view.timestamps = value
            self.show_state(f"timestamps {'on' if value else 'off'}")

    def _save(self, path_text: str) -> None:
        path = Path(path_text).expanduser()
        count = 0
        try:
            with path.open("w", encoding="utf-8") as f:
                for event in self.transcript:
                    obj = event_json(event)
                    if obj is not None:
                        write_json_line(f, obj)
                        count += 1
        except OSError as exc:
            self.show_error(f"cannot write {escape(path_text)}: {exc.strerror or exc}")
            return
        note = ""
        if self.transcript_dropped:
            note = f" (the {self.transcript_dropped} oldest were not kept)"
        self.show_state(f"saved {count} events to {escape(str(path))}{note}")

    def _help(self, topic: str | None) -> None:
        table = self.target.commands
        if topic:
            spec = table.lookup(topic)
            if spec is None:
                self.show_error(f"unknown command /{escape(topic)} (try /help)")
                return
            self.show_info([f"{spec.synopsis}  {spec.summary}"])
            return
        self.show_info([
            *table.help_lines(),
            "",
            "keys: Enter send · Alt-Enter/Esc Enter newline · Tab complete · Ctrl-R search "
            "history · Ctrl-C clear line · Ctrl-D quit",
        ])


    # The display (issue 13): message_view.py holds the state and the rendering.

    async def _display(
        self, command: JsonView | ShowMessage | FindText | FilterMessages | PauseDisplay
    ) -> None:
        view = self.messages
        self.view.width = self.prompt.app.output.get_size().columns
        match command:
            case JsonView(mode=None):
                self.show_state(f"JSON messages: {view.mode} (/json compact|pretty|off)")
            case JsonView(mode=mode):
                assert mode is not None
                view.mode = mode
                self.show_state({
                    "compact": "JSON messages: one line when they fit the width",
                    "pretty": "JSON messages: pretty-printed",
                    "off": "JSON messages: as received, no highlighting",
                }[mode])
            case ShowMessage(number=number, pager=pager):
                kept = view.lookup(number)
                if isinstance(kept, str):
                    self.show_error(kept)
                elif pager:
                    await self._page(self._render(view.whole(kept)))
                else:
                    self._write(self._render(view.whole(kept)))
            case FindText(text=needle):
                lines, summary = view.find(needle)
                for line in lines:
                    self._write(self._render(line))
                self.show_state(summary)
            case FilterMessages(pattern=None, clear=False):
                if view.filter is None:
                    self.show_state("no filter: every message is shown (/filter REGEX|json:EXPR)")
                else:
                    self.show_state(f"filter {escape(view.filter.source)!r}: {view.hidden} "
                                    "hidden so far (/filter off shows all)")
            case FilterMessages(pattern=None):
                hidden = view.hidden
                view.set_filter(None)
                self.show_state(f"filter off ({hidden} hidden while it was on; /find or "
                                "/show N prints them)")
            case FilterMessages(pattern=pattern):
                assert pattern is not None
                try:
                    match = self.compile_filter(pattern)
                except ValueError as exc:
                    self.show_error(escape(str(exc)))
                    return
                view.set_filter(MessageFilter(pattern, match))
                self.show_state(f"filter {escape(pattern)!r}: only matching incoming messages "
                                "are shown (sent ones always; /filter off)")
            case PauseDisplay(resume=False):
                if view.pause():
                    self.show_state("display paused: messages are still received and kept "
                                    "(/resume)")
                else:
                    self.show_state("already paused (/resume)")
            case PauseDisplay():
                resumed = view.resume()
                if resumed is None:
                    self.show_state("not paused")
                    return
                texts, summary = resumed
                for text in texts:
                    self._write(self._render(text))
                self.show_state(summary)
        self.prompt.app.invalidate()  # the status bar

    async def _page(self, text: str) -> None:
        """Open TEXT (rendered, ANSI colours kept) in $PAGER (default ``less -R``)."""
        environ = dict(self.env.environ)
        pager = environ.get("PAGER", "").strip() or "less -R"
        environ.setdefault("LESS", "R")  # colours, as git and man set it when unset
        try:
            argv = shlex.split(pager)
        except ValueError as exc:
            self.show_error(f"cannot run $PAGER {escape(pager)!r}: {exc}")
            return
        if not argv:
            argv = ["less", "-R"]
        await self._drain_output()
        data = text.encode("utf-8", "replace")

        def page() -> str | None:
            try:
                subprocess.run(argv, input=data, env=environ, check=False)
            except OSError as exc:
                return f"cannot run $PAGER {escape(pager)!r}: {exc.strerror or exc} (set PAGER)"
            return None

        # The prompt is erased while the pager runs, and redrawn after; the loop
        # keeps receiving (in_executor: the pager runs in a thread).
        error = await run_in_terminal(page, in_executor=True)
        if error is not None:
            self.show_error(error)


class _TargetEnded(Exception):
    """Ends the pending prompt when the target is over."""


async def _write_above(app: Application[str], write: Callable[[], None]) -> None:
    """Run WRITE (output only) above APP's prompt: ``prompt_toolkit``'s ``in_terminal``
    (erase the prompt, write, redraw it; chained with other ``run_in_terminal`` calls,
    e.g. /pager's) without detaching the input or switching the terminal to cooked
    mode around the write. In cooked mode a key typed during the write belonged to
    the line discipline: Ctrl-D was taken as end-of-file and lost (the REPL did not
    quit), Ctrl-C was a SIGINT that killed it (exit 130)."""
    if not app.is_running:
        write()
        return
    previous = app._running_in_terminal_f
    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    app._running_in_terminal_f = done
    try:
        if previous is not None:
            await previous
        if app.output.responds_to_cpr:
            await app.renderer.wait_for_cpr_responses()
        app.renderer.erase()
        app._running_in_terminal = True
        try:
            write()
        finally:
            app._running_in_terminal = False
            app.renderer.reset()
            app._request_absolute_cursor_position()
            app._redraw()
    finally:
        if not done.done():
            done.set_result(None)
