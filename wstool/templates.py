"""Message templates (issue 11): ``{{uuid}}``, ``{{seq}}``, captures... in messages.

Pure code: no I/O but reading ``{{file:PATH}}`` once, when the template is
compiled. ``connect --template`` applies them to ``-x`` messages and input
lines; scenario files always do. Every placeholder is checked when the
template is compiled (:func:`compile_template`), so a typo is a usage error
before anything connects:

=================  ==========================================================
``{{uuid}}``       a random UUID (version 4), new for each message
``{{seq}}``        1, 2, 3...: the number of the message, counting every templated one
``{{now_ms}}``     Unix time in milliseconds
``{{now_iso}}``    UTC time, ISO 8601 with milliseconds (``2025-01-31T12:00:00.123Z``)
``{{env:NAME}}``   the environment variable NAME (unset: a usage error)
``{{file:PATH}}``  the UTF-8 contents of PATH, one trailing newline dropped
``{{random:N}}``   N random letters and digits (1 <= N <= 4096)
``{{NAME}}``       the value captured by ``--capture NAME=...`` (or a scenario step)
=================  ==========================================================

Whitespace inside the braces is allowed (``{{ seq }}``). Text outside
placeholders is sent as it is; there is no escape for a literal ``{{``, which
is why templates are opt-in on the command line.
"""

from __future__ import annotations

import os
import random
import re
import time
from collections.abc import Collection, Mapping
from typing import NamedTuple

from wstool.errors import UsageError

_PLACEHOLDER_RE = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
# A capture's name: what --capture NAME=... accepts (and a scenario's capture step).
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
BUILTIN_NAMES = frozenset({"uuid", "seq", "now_ms", "now_iso"})
MAX_RANDOM_CHARS = 4096
_RANDOM_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


def check_capture_name(name: str) -> str:
    """A capture's NAME: an identifier that is not a built-in placeholder."""
    if not _NAME_RE.match(name):
        raise UsageError(f"invalid capture name '{name}': letters, digits and _ "
                         "(not starting with a digit)")
    if name in BUILTIN_NAMES:
        raise UsageError(f"invalid capture name '{name}': {{{{{name}}}}} is a built-in "
                         "placeholder")
    return name


class Placeholder(NamedTuple):
    kind: str  # "uuid", "seq", "now_ms", "now_iso", "random", "capture"
    arg: str = ""  # random: the length; capture: the name


# A compiled template: literal text and placeholders, in order. env: and file:
# are resolved at compile time and become literal text.
Part = str | Placeholder


class Template(NamedTuple):
    source: str
    parts: tuple[Part, ...]

    @property
    def is_literal(self) -> bool:
        return all(isinstance(part, str) for part in self.parts)

    def captures(self) -> frozenset[str]:
        return frozenset(p.arg for p in self.parts
                         if isinstance(p, Placeholder) and p.kind == "capture")


def compile_template(
    text: str,
    *,
    captures: Collection[str] = (),
    environ: Mapping[str, str] | None = None,
    where: str = "template",
) -> Template:
    """Parse TEXT's placeholders; a UsageError naming WHERE for an unknown one.

    CAPTURES are the names that may be used (declared before this message);
    ENVIRON is where ``{{env:NAME}}`` looks (default: ``os.environ``). An empty
    WHERE: the message does not name the template (a line typed in the REPL)."""
    env = os.environ if environ is None else environ
    parts: list[Part] = []
    pos = 0
    for match in _PLACEHOLDER_RE.finditer(text):
        if match.start() > pos:
            parts.append(text[pos:match.start()])
        pos = match.end()
        spec = match.group(1)
        kind, colon, arg = spec.partition(":")
        if not colon and spec in BUILTIN_NAMES:
            parts.append(Placeholder(spec))
        elif colon and kind == "env":
            if arg not in env:
                raise UsageError(f"{_prefix(where)}{{{{{spec}}}}}: the environment variable "
                                 f"{arg or '(empty name)'} is not set")
            parts.append(env[arg])
        elif colon and kind == "file":
            parts.append(_read_file(arg, spec, where))
        elif colon and kind == "random":
            if not arg.isdigit() or not 1 <= int(arg) <= MAX_RANDOM_CHARS:
                raise UsageError(f"{_prefix(where)}{{{{{spec}}}}}: N must be 1 to "
                                 f"{MAX_RANDOM_CHARS} (the number of characters)")
            parts.append(Placeholder("random", str(int(arg))))
        elif not colon and spec in captures:
            parts.append(Placeholder("capture", spec))
        else:
            known = "uuid, seq, now_ms, now_iso, env:NAME, file:PATH, random:N"
            if captures:
                known += ", " + ", ".join(sorted(captures))
            elif _NAME_RE.match(spec):
                known += ", or a name captured before this message (--capture NAME=...)"
            raise UsageError(f"{_prefix(where)}unknown placeholder {{{{{spec}}}}} (known: {known})")
    if pos < len(text):
        parts.append(text[pos:])
    # Adjacent literal parts (from env:/file:) are joined: rendering is one join.
    merged: list[Part] = []
    for part in parts:
        if isinstance(part, str) and merged and isinstance(merged[-1], str):
            merged[-1] += part
        else:
            merged.append(part)
    return Template(text, tuple(merged))


def _prefix(where: str) -> str:
    return f"{where}: " if where else ""


def _read_file(path: str, spec: str, where: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            content = f.read()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise UsageError(f"{_prefix(where)}{{{{{spec}}}}}: cannot read {path}: {reason}") from None
    # As the shell's $(cat PATH): a file's final newline is not part of the value.
    return content[:-1] if content.endswith("\n") else content


class Renderer:
    """Renders templates: owns ``{{seq}}`` and the captured values of one run."""

    def __init__(self, *, rng: random.Random | None = None) -> None:
        self.seq = 0
        self.captured: dict[str, str] = {}
        self._rng = rng or random.SystemRandom()

    def missing(self, template: Template) -> frozenset[str]:
        """The captures TEMPLATE needs that are not captured yet."""
        return frozenset(name for name in template.captures() if name not in self.captured)

    def render(self, template: Template) -> str:
        """TEMPLATE's text now; every placeholder of one message shares one ``seq``.

        A capture not yet captured is a KeyError (callers wait for it first)."""
        self.seq += 1
        out: list[str] = []
        for part in template.parts:
            if isinstance(part, str):
                out.append(part)
            elif part.kind == "capture":
                out.append(self.captured[part.arg])
            elif part.kind == "seq":
                out.append(str(self.seq))
            elif part.kind == "uuid":
                import uuid  # only where a template uses it (start-up)

                out.append(str(uuid.uuid4()))
            elif part.kind == "now_ms":
                out.append(str(time.time_ns() // 1_000_000))
            elif part.kind == "now_iso":
                out.append(now_iso(time.time_ns()))
            elif part.kind == "random":
                out.append("".join(self._rng.choices(_RANDOM_ALPHABET, k=int(part.arg))))
        return "".join(out)


def now_iso(time_ns: int) -> str:
    """``{{now_iso}}``: UTC, ISO 8601, milliseconds, ``Z``."""
    seconds, ns = divmod(time_ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{ns // 1_000_000:03d}Z"
