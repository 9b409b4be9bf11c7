"""Scenario files (``wstool run FILE``, issue 11): TOML in, ``Scenario`` records out.

The edge for scenario files, as ``options.py`` is for flags: every setting is
checked and every pattern and template compiled here, so a mistake is a usage
error (exit 2) naming the scenario and step before anything connects. The TOML
syntax errors come from ``tomllib`` and name the line and column. The format is
documented in README "Scenario files"; ``examples/chat.toml`` is a complete one.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from wstool.cli.options import connect_config
from wstool.config import DEFAULT_MAX_SIZE_BYTES, ConnectConfig, Target
from wstool.errors import UsageError, WstoolError

if TYPE_CHECKING:
    from wstool.client.scenario import Scenario, Step

# [connect] keys -> connect's option names (raw keys of options.connect_config).
_CONNECT_KEYS: dict[str, tuple[str, type | tuple[type, ...]]] = {
    "url": ("url", str),
    "headers": ("headers", list),
    "subprotocols": ("subprotocols", list),
    "origin": ("origin", str),
    "auth": ("auth", str),
    "user_agent": ("user_agent", str),
    "proxy": ("proxy", str),
    "no_proxy": ("no_proxy", bool),
    "compress": ("compress", bool),
    "max_size": ("max_size", int),
    "open_timeout": ("open_timeout", (int, float)),
    "ping_interval": ("ping_interval", (int, float)),
    "ping_timeout": ("ping_timeout", (int, float)),
    "close_timeout": ("close_timeout", (int, float)),
    "location": ("follow_redirects", bool),
    "max_redirects": ("max_redirects", int),
    "cacert": ("cacert", str),
    "cert": ("cert", str),
    "key": ("key", str),
    "insecure": ("insecure", bool),
    "server_name": ("server_name", str),
    "expect_timeout": ("expect_timeout", (int, float)),
}
_D = ConnectConfig(target=Target("ws://localhost/"))
# connect's defaults, from config.py (one default per setting).
_DEFAULTS: dict[str, Any] = {
    "max_size": DEFAULT_MAX_SIZE_BYTES, "open_timeout": _D.open_timeout_s,
    "ping_interval": _D.ping_interval_s, "ping_timeout": _D.ping_timeout_s,
    "close_timeout": _D.close_timeout_s, "compress": _D.compress, "expect_timeout": 10.0,
}
_ACTIONS = ("send", "expect", "capture", "sleep", "ping", "close")


def _seconds(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not (
            0 <= value < float("inf")):
        raise UsageError(f"{where}: expected a number of seconds (0 or more), got {value!r}")
    return float(value)


def _expand(value: Any, where: str, environ: Mapping[str, str]) -> Any:
    from wstool.templates import Renderer, compile_template

    if isinstance(value, list):
        return [_expand(item, where, environ) for item in value]
    if not isinstance(value, str):
        raise UsageError(f"{where}: expected a string, got {value!r}")
    return Renderer().render(compile_template(value, environ=environ, where=where))


def _connect_settings(table: Any, where: str, base: Mapping[str, Any],
                      environ: Mapping[str, str]) -> dict[str, Any]:
    if not isinstance(table, dict):
        raise UsageError(f"{where}: expected a table")
    raw = dict(base)
    for key, value in table.items():
        if key not in _CONNECT_KEYS:
            raise UsageError(f"{where}: unknown setting '{key}' (known: "
                             f"{', '.join(_CONNECT_KEYS)})")
        name, kind = _CONNECT_KEYS[key]
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
            raise UsageError(f"{where}.{key}: wrong type {type(value).__name__}")
        if key.endswith("_timeout") or key == "ping_interval":
            value = _seconds(value, f"{where}.{key}")
        if key in ("url", "headers"):
            # Templates here too (no captures yet): url = "{{env:SERVICE_URL}}" in CI.
            value = _expand(value, f"{where}.{key}", environ)
        raw[name] = tuple(value) if isinstance(value, list) else value
    return raw


def _step(table: Any, where: str, known: list[str], expect_timeout_s: float,
          environ: Mapping[str, str]) -> tuple[str, Step]:
    from wstool.client.expect import Matcher
    from wstool.client.scenario import CloseStep, ExpectStep, PingStep, SendStep, SleepStep
    from wstool.templates import check_capture_name, compile_template

    if not isinstance(table, dict):
        raise UsageError(f"{where}: expected a table")
    actions = [key for key in _ACTIONS if key in table]
    if len(actions) != 1:
        raise UsageError(f"{where}: give exactly one of {', '.join(_ACTIONS)}")
    action = actions[0]
    allowed = {"send": {"send"}, "expect": {"expect", "timeout"},
               "capture": {"capture", "pattern", "timeout"}, "sleep": {"sleep"},
               "ping": {"ping", "max_rtt_ms", "timeout"},
               "close": {"close", "reason", "expect_code", "timeout"}}[action]
    extra = sorted(set(table) - allowed)
    if extra:
        raise UsageError(f"{where}: unknown key '{extra[0]}' for a {action} step "
                         f"(allowed: {', '.join(sorted(allowed))})")
    value = table[action]
    timeout_s = _seconds(table.get("timeout", expect_timeout_s), f"{where}.timeout")
    if action == "send":
        if isinstance(value, str):
            return (f"send {value!r}",
                    SendStep(compile_template(value, captures=known, environ=environ,
                                              where=where)))
        if isinstance(value, dict) and len(value) == 1:
            (kind, text), = value.items()
            data = _binary(kind, text, where)
            return f"send binary {len(data)} bytes ({kind})", SendStep(None, data)
        raise UsageError(f"{where}: send is text, or one of {{ hex = ... }}, "
                         "{ base64 = ... }, { file = ... } for binary")
    if action == "expect":
        if not isinstance(value, str):
            raise UsageError(f"{where}: expect is a pattern (a regex, or json:EXPR)")
        return f"expect {value!r}", ExpectStep(Matcher(value, where), timeout_s)
    if action == "capture":
        pattern = table.get("pattern")
        if not isinstance(value, str) or not isinstance(pattern, str):
            raise UsageError(f"{where}: capture = NAME with pattern = REGEX or json:EXPR")
        name = check_capture_name(value)
        known.append(name)
        return (f"capture {name} {pattern!r}",
                ExpectStep(Matcher(pattern, where), timeout_s, name))
    if action == "sleep":
        seconds = _seconds(value, f"{where}.sleep")
        return f"sleep {seconds:g}s", SleepStep(seconds)
    if action == "ping":
        payload = b"" if value is True else value.encode() if isinstance(value, str) else None
        if payload is None:
            raise UsageError(f"{where}: ping = true, or the payload text")
        max_rtt = table.get("max_rtt_ms")
        max_rtt_s = None if max_rtt is None else _seconds(max_rtt, f"{where}.max_rtt_ms") / 1000
        label = "ping" + (f" (max {max_rtt:g} ms)" if max_rtt is not None else "")
        return label, PingStep(payload, max_rtt_s, timeout_s)
    from wstool.term.commands import MAX_CLOSE_REASON_BYTES, close_code_error

    code = 1000 if value is True else value
    if isinstance(code, bool) or not isinstance(code, int) or close_code_error(code):
        raise UsageError(f"{where}: close = true or a close code, got {value!r}")
    reason = table.get("reason", "")
    if not isinstance(reason, str) or len(reason.encode()) > MAX_CLOSE_REASON_BYTES:
        raise UsageError(f"{where}.reason: text of at most {MAX_CLOSE_REASON_BYTES} bytes")
    expect_code = table.get("expect_code")
    if expect_code is not None and (isinstance(expect_code, bool)
                                    or not isinstance(expect_code, int)):
        raise UsageError(f"{where}.expect_code: a close code")
    label = f"close {code}" + (f" (expect {expect_code})" if expect_code is not None else "")
    return label, CloseStep(code, reason, expect_code, timeout_s)


def _binary(kind: str, text: Any, where: str) -> bytes:
    if not isinstance(text, str):
        raise UsageError(f"{where}: send.{kind} is a string")
    try:
        if kind == "hex":
            return bytes.fromhex(text.replace("0x", "").replace(",", " "))
        if kind == "base64":
            return base64.b64decode(text, validate=True)
        if kind == "file":
            with open(text, "rb") as f:
                return f.read()
    except (ValueError, binascii.Error) as exc:
        raise UsageError(f"{where}: invalid send.{kind}: {exc}") from None
    except OSError as exc:
        raise UsageError(f"{where}: cannot read send.file {text}: {exc.strerror}") from None
    raise UsageError(f"{where}: binary send is hex, base64 or file, not '{kind}'")


def load_scenarios(path: str, environ: Mapping[str, str],
                   only: str | None = None) -> list[Scenario]:
    """Parse the scenario file at PATH (UsageError: what is wrong and where)."""
    import tomllib

    from wstool.client.scenario import Scenario

    try:
        with open(path, "rb") as f:
            doc = tomllib.load(f)
    except OSError as exc:
        # Status 1, as every unreadable file (README "Exit status"); a mistake in it is 2.
        raise WstoolError(f"cannot read {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path}: {exc}") from None  # "... (at line 3, column 7)"
    unknown = sorted(set(doc) - {"connect", "step", "scenario"})
    if unknown:
        raise UsageError(f"{path}: unknown table '{unknown[0]}' (expected [connect], "
                         "[[step]] or [[scenario]])")
    base = _connect_settings(doc.get("connect", {}), f"{path}: [connect]", _DEFAULTS,
                            environ)
    blocks = doc.get("scenario")
    if blocks is None:
        blocks = [{"name": "main", "step": doc.get("step", [])}]
    elif "step" in doc:
        raise UsageError(f"{path}: top-level [[step]] and [[scenario]] blocks: put the "
                         "steps in the scenarios ([[scenario.step]])")
    if not isinstance(blocks, list) or not blocks:
        raise UsageError(f"{path}: no [[scenario]] or [[step]]")
    scenarios: list[Scenario] = []
    names: set[str] = set()
    for number, block in enumerate(blocks, 1):
        if not isinstance(block, dict):
            raise UsageError(f"{path}: scenario {number}: expected a table")
        name = block.get("name", f"scenario {number}")
        where = f"{path}: scenario '{name}'"
        if not isinstance(name, str) or name in names:
            raise UsageError(f"{where}: the name must be a string, different in each block")
        names.add(name)
        unknown = sorted(set(block) - {"name", "connect", "step"})
        if unknown:
            raise UsageError(f"{where}: unknown key '{unknown[0]}' (name, connect, step)")
        raw = _connect_settings(block.get("connect", {}), f"{where} connect", base, environ)
        if "url" not in raw:
            raise UsageError(f"{where}: no url (in [connect] or [scenario.connect])")
        conn = connect_config(raw["url"], raw)
        steps_table = block.get("step", [])
        if not isinstance(steps_table, list) or not steps_table:
            raise UsageError(f"{where}: no steps")
        known: list[str] = []
        steps = tuple(_step(table, f"{where} step {i}", known, float(raw["expect_timeout"]),
                            environ) for i, table in enumerate(steps_table, 1))
        scenarios.append(Scenario(name, conn, steps))
    if only is not None:
        scenarios = [s for s in scenarios if s.name == only]
        if not scenarios:
            raise UsageError(f"--only {only}: no such scenario in {path} "
                             f"(there are: {', '.join(sorted(names))})")
    return scenarios
