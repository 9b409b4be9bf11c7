"""REPL input: slash commands parsed into typed records (pure; stdlib only).

A line that does not start with ``/`` is a text message. ``//text`` sends the
text message ``/text``. Anything else starting with ``/`` is looked up in a
:class:`CommandTable`; its parser turns the rest of the line into a record
(``PingCommand``, ``CloseCommand``...) or a :class:`CommandError` carrying one
line for the user. Nothing is raised for bad input, nothing is sent or read
here: ``repl.py`` executes the records.

The parser returns ``Parsed[ExtraT]``: one of the :data:`CoreCommand` records
(which ``repl.Repl`` executes with one ``match``), a :class:`CommandError`, or
a front-end's own record. The table is data, so front-ends can extend it:
``wstool listen`` adds ``/clients``, ``/to`` and ``/kick`` with
``CONNECT_COMMANDS.extend(...)``, getting a ``CommandTable[ListenCommand]``
whose ``ListenCommand`` union its REPL target executes. Each
:class:`CommandSpec` also carries what completion needs (usage, a one-line
summary, what kind of argument follows).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Generic, Literal, TypeAlias

# RFC 6455 §5.5: control frame payloads are at most 125 bytes; a close
# payload is a 2-byte code plus the reason.
MAX_CONTROL_PAYLOAD_BYTES = 125
MAX_CLOSE_REASON_BYTES = MAX_CONTROL_PAYLOAD_BYTES - 2

# What the user may send in a close frame (RFC 6455 §7.4.1, §7.4.2 and the
# IANA registry): 1004 is reserved, 1005/1006/1015 "MUST NOT be set as a
# status code in a Close control frame by an endpoint", 1016-2999 are for
# future RFCs, 3000-3999 registered, 4000-4999 private use.
SENDABLE_CLOSE_CODES = frozenset(range(1000, 1004)) | frozenset(range(1007, 1015))


def close_code_error(code: int) -> str | None:
    """Why ``code`` may not be sent in a close frame, or None if it may."""
    if code in SENDABLE_CLOSE_CODES or 3000 <= code <= 4999:
        return None
    if code in (1005, 1006, 1015):
        return f"close code {code} is reserved for reporting and must not be sent (RFC 6455 §7.4.1)"
    if code == 1004:
        return "close code 1004 is reserved (RFC 6455 §7.4.1)"
    return (
        f"invalid close code {code}: use 1000-1003, 1007-1014, 3000-3999 (registered) "
        "or 4000-4999 (private use)"
    )


# The records. Frozen, comparable, printable: tests compare them directly.


@dataclass(frozen=True, slots=True)
class SendText:
    text: str


@dataclass(frozen=True, slots=True)
class SendBinary:
    data: bytes


@dataclass(frozen=True, slots=True)
class SendFile:
    path: str
    as_text: bool = False


@dataclass(frozen=True, slots=True)
class PingCommand:
    data: bytes | None = None  # None: a random payload (so pongs can be matched)


@dataclass(frozen=True, slots=True)
class PongCommand:
    data: bytes = b""


@dataclass(frozen=True, slots=True)
class CloseCommand:
    code: int = 1000
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Toggle:
    """``/json`` or ``/timestamps``: None flips, True/False sets."""

    setting: Literal["json", "timestamps"]
    value: bool | None = None


@dataclass(frozen=True, slots=True)
class ShowHeaders:
    pass


@dataclass(frozen=True, slots=True)
class ShowStats:
    pass


@dataclass(frozen=True, slots=True)
class SaveTranscript:
    path: str


@dataclass(frozen=True, slots=True)
class ShowHelp:
    topic: str | None = None


@dataclass(frozen=True, slots=True)
class Quit:
    pass


# The display (issue 13; executed with wstool/term/message_view.py).

# /show, /pager and /find see the last KEPT_MESSAGES messages (both directions);
# /resume prints at most RESUME_SHOW_MAX of those that arrived while paused.
KEPT_MESSAGES = 10_000
RESUME_SHOW_MAX = 100


@dataclass(frozen=True, slots=True)
class JsonView:
    """``/json compact|pretty|off``; None: say which mode is on."""

    mode: Literal["compact", "pretty", "off"] | None = None


@dataclass(frozen=True, slots=True)
class ShowMessage:
    """``/show [N]`` (``pager``: ``/pager [N]``); None: the last received message."""

    number: int | None = None
    pager: bool = False


@dataclass(frozen=True, slots=True)
class FindText:
    text: str


@dataclass(frozen=True, slots=True)
class FilterMessages:
    """``/filter REGEX|json:EXPR``; ``/filter off`` clears; no pattern: say which is on."""

    pattern: str | None = None
    clear: bool = False


@dataclass(frozen=True, slots=True)
class PauseDisplay:
    resume: bool = False  # /resume


@dataclass(frozen=True, slots=True)
class CommandError:
    """Bad input: one line to show the user; nothing is sent."""

    message: str


# What the REPL itself executes (``repl.Repl.execute`` matches on it, and mypy
# checks that every record has its case).
CoreCommand: TypeAlias = (
    SendText
    | SendBinary
    | SendFile
    | PingCommand
    | PongCommand
    | CloseCommand
    | Toggle
    | ShowHeaders
    | ShowStats
    | SaveTranscript
    | ShowHelp
    | Quit
    | JsonView
    | ShowMessage
    | FindText
    | FilterMessages
    | PauseDisplay
)

# A front-end's own records (``wstool listen``'s ``ListClients``, ``SendTo``,
# ``Kick``): a table that was ``extend()``-ed with them parses to
# ``CoreCommand | CommandError | ExtraT``, and the REPL hands them to the
# target's ``execute()``, typed with the same ``ExtraT``.
# Both default to ``Never`` (PEP 696; in ``typing`` from 3.13 only, so for mypy
# only: nothing reads the default at run time): a bare ``CommandTable`` is a
# table of the core commands, a bare ``repl.Repl`` one over such a table.
# ``ExtraT_co`` is covariant: specs and tables are frozen, and a table of
# ``ListClients`` specs is also a table of "some extra records".
if TYPE_CHECKING:
    from typing import Never

    from typing_extensions import TypeVar

    ExtraT_co = TypeVar("ExtraT_co", covariant=True, default=Never)
    ExtraT = TypeVar("ExtraT", default=Never)
else:
    from typing import TypeVar

    ExtraT_co = TypeVar("ExtraT_co", covariant=True)
    ExtraT = TypeVar("ExtraT")
OtherT = TypeVar("OtherT")

Parsed: TypeAlias = CoreCommand | CommandError | ExtraT
Parser: TypeAlias = Callable[[str], Parsed[ExtraT]]

ArgKind = Literal["none", "text", "path", "close_code", "hex", "base64", "command", "toggle",
                  "json_mode"]


@dataclass(frozen=True)
class CommandSpec(Generic[ExtraT_co]):
    """One slash command: its name, how to parse it, and what completion shows."""

    name: str  # without the slash
    usage: str  # the arguments, e.g. "[code [reason]]"
    summary: str
    parse: Parser[ExtraT_co]
    arg_kind: ArgKind = "none"
    aliases: tuple[str, ...] = ()

    @property
    def synopsis(self) -> str:
        return f"/{self.name} {self.usage}".rstrip()


@dataclass(frozen=True)
class CommandTable(Generic[ExtraT_co]):
    specs: tuple[CommandSpec[ExtraT_co], ...]
    _by_name: dict[str, CommandSpec[ExtraT_co]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_name: dict[str, CommandSpec[ExtraT_co]] = {}
        for spec in self.specs:
            for name in (spec.name, *spec.aliases):
                by_name[name] = spec
        object.__setattr__(self, "_by_name", by_name)

    def extend(self, specs: Iterable[CommandSpec[OtherT]]) -> CommandTable[ExtraT_co | OtherT]:
        """A new table with more commands (a spec with a known name replaces it)."""
        new = list(specs)
        replaced = {s.name for s in new}
        return CommandTable((*(s for s in self.specs if s.name not in replaced), *new))

    def lookup(self, name: str) -> CommandSpec[ExtraT_co] | None:
        return self._by_name.get(name.lower())

    def __iter__(self) -> Iterator[CommandSpec[ExtraT_co]]:
        return iter(self.specs)

    def complete(self, prefix: str) -> list[CommandSpec[ExtraT_co]]:
        """Specs whose name starts with ``prefix`` (no slash), in table order."""
        prefix = prefix.lower()
        return [s for s in self.specs if s.name.startswith(prefix)]

    def help_lines(self) -> list[str]:
        width = max(len(s.synopsis) for s in self.specs)
        lines = [f"{s.synopsis:<{width}}  {s.summary}" for s in self.specs]
        lines.append(f"{'//text':<{width}}  send a text message that starts with /")
        return lines

    def parse(self, line: str) -> Parsed[ExtraT_co] | None:
        """A line of input -> a record, a :class:`CommandError`, or None (empty line)."""
        if line == "":
            return None
        if not line.startswith("/"):
            return SendText(line)
        if line.startswith("//"):
            return SendText(line[1:])
        match = _NAME_RE.match(line)
        assert match is not None  # the pattern accepts an empty name
        name = match.group(1)
        if not name:
            return CommandError("missing command after / (try /help; send '/' itself with //)")
        spec = self.lookup(name)
        if spec is None:
            return CommandError(
                f"unknown command /{name} (try /help; send it as text with //{name})"
            )
        # One separator after the name is syntax; the rest is the argument,
        # kept verbatim (a /text argument may have leading spaces or newlines).
        rest = line[match.end() :]
        if rest[:1] in (" ", "\t", "\n"):
            rest = rest[1:]
        return spec.parse(rest)


_NAME_RE = re.compile(r"/([^\s/]*)")


# Parsers: the rest of the line (after the name and one separator) -> a record.


def _no_args(record: CoreCommand, name: str) -> Parser[Never]:
    def parse(rest: str) -> CoreCommand | CommandError:
        if rest.strip():
            return CommandError(f"/{name} takes no argument")
        return record

    return parse


def _control_payload(rest: str, what: str) -> bytes | CommandError:
    data = rest.encode()
    if len(data) > MAX_CONTROL_PAYLOAD_BYTES:
        return CommandError(
            f"{what} data of {len(data)} bytes exceeds {MAX_CONTROL_PAYLOAD_BYTES} "
            "(RFC 6455 §5.5 control frame limit)"
        )
    return data


def parse_ping(rest: str) -> PingCommand | CommandError:
    if rest == "":
        return PingCommand(None)
    data = _control_payload(rest, "ping")
    return data if isinstance(data, CommandError) else PingCommand(data)


def parse_pong(rest: str) -> PongCommand | CommandError:
    data = _control_payload(rest, "pong")
    return data if isinstance(data, CommandError) else PongCommand(data)


def parse_close(rest: str) -> CloseCommand | CommandError:
    rest = rest.strip()
    if not rest:
        return CloseCommand(1000, "")
    code_text, *more = rest.split(None, 1)
    reason = more[0].strip() if more else ""
    try:
        code = int(code_text, 10)
    except ValueError:
        return CommandError(f"invalid close code '{code_text}': expected a number, e.g. 1000")
    error = close_code_error(code)
    if error is not None:
        return CommandError(error)
    size = len(reason.encode())
    if size > MAX_CLOSE_REASON_BYTES:
        return CommandError(
            f"close reason of {size} bytes exceeds {MAX_CLOSE_REASON_BYTES} "
            "(RFC 6455 §5.5: 125-byte control frames)"
        )
    return CloseCommand(code, reason)


def parse_binary(rest: str) -> SendBinary | CommandError:
    digits = re.sub(r"[\s:]", "", rest)
    if digits[:2].lower() == "0x":
        digits = digits[2:]
    if not digits:
        return CommandError("usage: /binary HEX… (e.g. /binary 48 65 6c 6c 6f)")
    bad = re.search(r"[^0-9a-fA-F]", digits)
    if bad is not None:
        return CommandError(f"invalid hex: '{bad.group()}' is not a hex digit")
    if len(digits) % 2:
        return CommandError(f"invalid hex: odd number of digits ({len(digits)})")
    return SendBinary(bytes.fromhex(digits))


def parse_base64(rest: str) -> SendBinary | CommandError:
    text = re.sub(r"\s", "", rest)
    if not text:
        return CommandError("usage: /base64 DATA (e.g. /base64 aGVsbG8=)")
    altchars = b"-_" if ("-" in text or "_" in text) else None
    padded = text.rstrip("=")
    padded += "=" * (-len(padded) % 4)
    try:
        return SendBinary(base64.b64decode(padded, altchars=altchars, validate=True))
    except (binascii.Error, ValueError) as exc:
        return CommandError(f"invalid base64: {exc}")


def parse_text(rest: str) -> SendText:
    return SendText(rest)


def parse_file(rest: str) -> SendFile | CommandError:
    as_text = False
    stripped = rest.strip()
    if stripped == "--text" or stripped.startswith("--text "):
        as_text = True
        stripped = stripped[len("--text") :].strip()
    if not stripped:
        return CommandError("usage: /file [--text] PATH")
    return SendFile(stripped, as_text)


def _toggle(setting: Literal["json", "timestamps"]) -> Parser[Never]:
    def parse(rest: str) -> Toggle | CommandError:
        value = rest.strip().lower()
        if value == "":
            return Toggle(setting, None)
        if value in ("on", "yes", "true", "1"):
            return Toggle(setting, True)
        if value in ("off", "no", "false", "0"):
            return Toggle(setting, False)
        return CommandError(f"usage: /{setting} [on|off]")

    return parse


def parse_json_view(rest: str) -> JsonView | CommandError:
    value = rest.strip().lower()
    if value == "":
        return JsonView(None)
    if value == "on":  # what /json on meant before compact lines (issue 13)
        return JsonView("pretty")
    for mode in ("compact", "pretty", "off"):
        if value == mode:
            return JsonView(mode)
    return CommandError("usage: /json compact|pretty|off")


def _message_number(rest: str, name: str) -> int | CommandError | None:
    text = rest.strip().lstrip("#")
    if not text:
        return None
    if not text.isdigit():
        return CommandError(f"usage: /{name} [N] (N: a message number as shown, e.g. 12 for #12)")
    return int(text)


def parse_show(rest: str) -> ShowMessage | CommandError:
    number = _message_number(rest, "show")
    return number if isinstance(number, CommandError) else ShowMessage(number)


def parse_pager(rest: str) -> ShowMessage | CommandError:
    number = _message_number(rest, "pager")
    return number if isinstance(number, CommandError) else ShowMessage(number, pager=True)


def parse_find(rest: str) -> FindText | CommandError:
    if not rest.strip():
        return CommandError("usage: /find TEXT (case-insensitive, in the kept messages)")
    return FindText(rest.strip())


def parse_filter(rest: str) -> FilterMessages:
    pattern = rest.strip()
    if pattern == "":
        return FilterMessages(None)
    if pattern.lower() == "off":
        return FilterMessages(None, clear=True)
    return FilterMessages(pattern)


def parse_save(rest: str) -> SaveTranscript | CommandError:
    path = rest.strip()
    if not path:
        return CommandError("usage: /save PATH (writes the transcript as JSON lines)")
    return SaveTranscript(path)


def parse_help(rest: str) -> ShowHelp:
    topic = rest.strip().lstrip("/")
    return ShowHelp(topic or None)


CONNECT_COMMANDS: CommandTable = CommandTable((
    CommandSpec("ping", "[data]", "send a ping; shows the pong and its round-trip time",
                parse_ping, "text"),
    CommandSpec("pong", "[data]", "send an unsolicited pong", parse_pong, "text"),
    CommandSpec("close", "[code [reason]]", "close the connection (default 1000) and exit",
                parse_close, "close_code"),
    CommandSpec("text", "TEXT", "send TEXT as a text message (verbatim)", parse_text, "text"),
    CommandSpec("binary", "HEX…", "send a binary message given in hex", parse_binary, "hex"),
    CommandSpec("base64", "DATA", "send a binary message given in base64", parse_base64,
                "base64"),
    CommandSpec("file", "[--text] PATH", "send a file's contents (binary, or text with --text)",
                parse_file, "path"),
    CommandSpec("json", "compact|pretty|off",
                "JSON: one coloured line if it fits, pretty-printed, or as received",
                parse_json_view, "json_mode"),
    CommandSpec("timestamps", "[on|off]", "toggle timestamps on messages",
                _toggle("timestamps"), "toggle"),
    CommandSpec("show", "[N]", f"print message #N whole (default: last received; "
                f"{KEPT_MESSAGES} kept)", parse_show),
    CommandSpec("pager", "[N]", "open message #N in $PAGER (default: less -R)", parse_pager),
    CommandSpec("find", "TEXT", "print kept messages containing TEXT, matches highlighted",
                parse_find, "text"),
    CommandSpec("filter", "REGEX|json:EXPR|off", "show only matching incoming messages "
                "(hidden ones counted)", parse_filter, "text"),
    CommandSpec("pause", "", "stop showing incoming messages (still received and kept)",
                _no_args(PauseDisplay(), "pause")),
    CommandSpec("resume", "", f"print those that came while paused (last {RESUME_SHOW_MAX}), "
                "go on", _no_args(PauseDisplay(resume=True), "resume")),
    CommandSpec("headers", "", "show the handshake request and response headers",
                _no_args(ShowHeaders(), "headers")),
    CommandSpec("stats", "", "show message and byte counts, RTT min/avg/max, uptime",
                _no_args(ShowStats(), "stats")),
    CommandSpec("save", "PATH", "write the transcript so far as JSON lines (--json schema)",
                parse_save, "path"),
    CommandSpec("help", "[command]", "show this help", parse_help, "command"),
    CommandSpec("quit", "", "close with 1000 and exit (also Ctrl-D)", _no_args(Quit(), "quit"),
                aliases=("exit",)),
))

# Close codes offered by completion after "/close ".
CLOSE_CODE_COMPLETIONS: tuple[tuple[int, str], ...] = (
    (1000, "normal closure"),
    (1001, "going away"),
    (1002, "protocol error"),
    (1003, "unsupported data"),
    (1007, "invalid frame payload data"),
    (1008, "policy violation"),
    (1009, "message too big"),
    (1011, "internal error"),
    (4000, "private use"),
)
