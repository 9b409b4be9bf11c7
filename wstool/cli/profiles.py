"""The user's config file (issue 13): ``[defaults]`` for any option, ``[profile.NAME]``.

``$XDG_CONFIG_HOME/wstool/config.toml`` (``~/.config/wstool/config.toml``). Its values
become click's ``default_map`` of the command being run, so that the precedence is
click's own: command line > environment variable (``WSTOOL_KEY_PASSWORD``) >
profile > ``[defaults.COMMAND]`` > ``[defaults]`` > built-in default. One exception:
``-H`` headers are merged by name across the levels (a ``-H`` replaces the profile's
header of the same name and keeps the others), since a profile's Authorization should
survive a ``-H X-Debug: 1``; every other repeatable option given on the command line
replaces the configured list, as click does.

Start-up: a missing file costs one ``os.stat``; ``tomllib`` is imported only when the
file exists, and ``wstool --version`` never gets here.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

import click

from wstool.config import config_path
from wstool.errors import UsageError

# Headers whose literal value in a world-readable file gets a warning.
_SECRET_HEADERS = ("authorization", "proxy-authorization", "cookie")
# Options whose literal value is a secret too.
_SECRET_OPTIONS = ("auth", "key_password")
_ENV_REF = re.compile(r"\$\{env:([^}]*)\}")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


class ConfigFile(NamedTuple):
    """The file as read and checked: keys as written (option names without dashes)."""

    path: str
    defaults: dict[str, Any]  # [defaults]: keys that apply to every command with the option
    per_command: dict[str, dict[str, Any]]  # [defaults.COMMAND]
    profiles: dict[str, dict[str, Any]]  # [profile.NAME], "url" included
    warnings: tuple[str, ...]


def option_keys(command: click.Command) -> dict[str, click.Option]:
    """The config keys of COMMAND's options: each long name without ``--``
    (``ping-interval``, ``compress``, ``header``), and for a repeatable option its
    plural parameter name too (``headers``, ``subprotocols``)."""
    keys: dict[str, click.Option] = {}
    for param in command.params:
        if not isinstance(param, click.Option) or not param.expose_value or param.hidden:
            continue
        for opt in param.opts:
            if opt.startswith("--"):
                keys[opt[2:]] = param
        if param.multiple and param.name:
            keys.setdefault(param.name.replace("_", "-"), param)
    return keys


def load_config(environ: Mapping[str, str], group: click.Group) -> ConfigFile | None:
    """The checked config file, or None when there is none (one os.stat).

    Every key of every table is checked against GROUP's commands (unknown key, wrong
    type: a UsageError naming the path); ``${env:NAME}`` references are resolved later,
    only in the values a run uses."""
    path = config_path(environ)
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        raise UsageError(f"{path}: {exc.strerror}") from None
    import tomllib

    try:
        with open(path, "rb") as f:
            doc = tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path}: {exc}") from None  # "... (at line 3, column 7)"
    except OSError as exc:
        raise UsageError(f"{path}: {exc.strerror}") from None
    commands = {name: group.commands[name] for name in group.commands}
    for key in doc:
        if key not in ("defaults", "profile"):
            raise UsageError(f"{path}: unknown key '{key}' (expected [defaults] or "
                             "[profile.NAME] tables)")
    defaults = _table(path, doc, "defaults")
    general: dict[str, Any] = {}
    per_command: dict[str, dict[str, Any]] = {}
    for key, value in defaults.items():
        if isinstance(value, dict):
            if key not in commands:
                raise UsageError(f"{path}: [defaults.{key}]: no such command (commands: "
                                 f"{', '.join(sorted(commands))})")
            keys = option_keys(commands[key])
            for sub_key, sub_value in value.items():
                where = f"defaults.{key}.{sub_key}"
                if sub_key not in keys:
                    raise UsageError(f"{path}: {where}: wstool {key} has no --{sub_key}")
                _check(path, where, keys[sub_key], sub_value)
            per_command[key] = value
            continue
        where = f"defaults.{key}"
        params = [keys[key] for keys in map(option_keys, commands.values()) if key in keys]
        if not params:
            raise UsageError(f"{path}: {where}: no wstool command has --{key}")
        for param in params:
            _check(path, where, param, value)
        general[key] = value
    profiles: dict[str, dict[str, Any]] = {}
    connect_keys = option_keys(commands["connect"])
    for name, profile in _table(path, doc, "profile").items():
        if not isinstance(profile, dict):
            raise UsageError(f"{path}: profile.{name}: expected a table [profile.{name}]")
        for key, value in profile.items():
            where = f"profile.{name}.{key}"
            if key == "url":
                if not isinstance(value, str):
                    raise UsageError(f"{path}: {where}: expected a string")
            elif key not in connect_keys:
                raise UsageError(f"{path}: {where}: wstool connect has no --{key}")
            else:
                _check(path, where, connect_keys[key], value)
        profiles[name] = profile
    warnings: tuple[str, ...] = ()
    if st.st_mode & 0o004:
        secret = _literal_secret(defaults, profiles)
        if secret is not None:
            warnings = (f"warning: {path} is readable by every user and holds a literal "
                        f"{secret}; chmod 600 it, or write \"${{env:NAME}}\" instead",)
    return ConfigFile(path, general, per_command, profiles, warnings)


def _table(path: str, doc: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = doc.get(key, {})
    if not isinstance(value, dict):
        raise UsageError(f"{path}: {key}: expected a table [{key}]")
    return value


def _kind(param: click.Option) -> str:
    if param.is_flag:
        return "true or false"
    if isinstance(param.type, (click.types.StringParamType, click.Path)):
        return "a string"
    return f"{param.type.name}"


def _check(path: str, where: str, param: click.Option, value: Any) -> None:
    """A wrong type is named here, with the key, rather than by click later."""
    if param.multiple:
        if param.name == "headers" and isinstance(value, dict):
            value = list(value.values())
        if not isinstance(value, list):
            raise UsageError(f"{path}: {where}: expected a list of strings")
        for item in value:
            if not isinstance(item, str):
                raise UsageError(f"{path}: {where}: expected a list of strings")
            _check_one(path, where, param, item)
        return
    _check_one(path, where, param, value)


def _check_one(path: str, where: str, param: click.Option, value: Any) -> None:
    if param.is_flag:
        if not isinstance(value, bool):
            raise UsageError(f"{path}: {where}: expected true or false")
        return
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise UsageError(f"{path}: {where}: expected {_kind(param)}")
    if isinstance(param.type, (click.types.StringParamType, click.Path)):
        if not isinstance(value, str):
            raise UsageError(f"{path}: {where}: expected a string")
        return
    if isinstance(value, str) and _ENV_REF.search(value):
        return  # converted by click once resolved
    try:
        param.type.convert(value, param, None)
    except click.BadParameter as exc:
        raise UsageError(f"{path}: {where}: {exc.message}") from None


def _literal_secret(defaults: Mapping[str, Any],
                    profiles: Mapping[str, Mapping[str, Any]]) -> str | None:
    tables: list[tuple[str, Mapping[str, Any]]] = [("defaults", defaults)]
    tables += [(f"defaults.{k}", v) for k, v in defaults.items() if isinstance(v, dict)]
    tables += [(f"profile.{k}", v) for k, v in profiles.items()]
    for where, table in tables:
        for key, value in table.items():
            if key in ("header", "headers"):
                for header in _header_list(value):
                    name, _sep, text = header.partition(":")
                    if name.strip().lower() in _SECRET_HEADERS and text.strip() \
                            and not _ENV_REF.search(text):
                        return f"{name.strip()} header value ({where}.{key})"
            elif key.replace("-", "_") in _SECRET_OPTIONS and isinstance(value, str) \
                    and not _ENV_REF.search(value):
                return f"--{key} value ({where}.{key})"
    return None


def _header_list(value: Any) -> list[str]:
    """``header = ["Name: value"]`` or a table ``[profile.x.headers] Name = "value"``."""
    if isinstance(value, dict):
        return [f"{name}: {text}" for name, text in value.items()]
    return list(value) if isinstance(value, list) else []


def expand_env(text: str, environ: Mapping[str, str], path: str, where: str) -> str:
    """``"Bearer ${env:TOKEN}"`` -> the value of TOKEN; an unset one is a UsageError."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if not _ENV_NAME.match(name):
            raise UsageError(f"{path}: {where}: invalid reference ${{env:{name}}}")
        if name not in environ:
            raise UsageError(f"{path}: {where}: environment variable {name} is not set "
                             f"(for ${{env:{name}}})")
        return environ[name]

    return _ENV_REF.sub(value, text)


def _resolved(value: Any, param: click.Option, environ: Mapping[str, str], path: str,
              where: str) -> Any:
    if param.multiple:
        items = _header_list(value) if param.name == "headers" else list(value)
        return [_resolved_one(v, param, environ, path, where) for v in items]
    return _resolved_one(value, param, environ, path, where)


def _resolved_one(value: Any, param: click.Option, environ: Mapping[str, str], path: str,
                  where: str) -> Any:
    if not isinstance(value, str):
        return value
    value = expand_env(value, environ, path, where)
    if isinstance(param.type, click.Path):
        value = os.path.expanduser(value)  # "~/certs/ca.pem" in a file means what it says
    return value


def merge_headers(lower: Iterable[str], upper: Iterable[str]) -> list[str]:
    """UPPER's headers replace LOWER's of the same name (case-insensitive); the rest stay."""
    upper = list(upper)
    names = {h.partition(":")[0].strip().lower() for h in upper}
    return [h for h in lower if h.partition(":")[0].strip().lower() not in names] + upper


def default_map(config: ConfigFile, command_name: str, command: click.Command,
                environ: Mapping[str, str], profile: str | None = None) -> dict[str, Any]:
    """click's ``default_map`` for COMMAND: [defaults], [defaults.COMMAND], then PROFILE."""
    keys = option_keys(command)
    result: dict[str, Any] = {}
    levels: list[tuple[str, Mapping[str, Any]]] = [
        ("defaults", config.defaults),
        (f"defaults.{command_name}", config.per_command.get(command_name, {})),
    ]
    if profile is not None:
        levels.append((f"profile.{profile}",
                       {k: v for k, v in config.profiles[profile].items() if k != "url"}))
    for table_name, table in levels:
        for key, value in table.items():
            if key not in keys:
                continue  # [defaults] holds options of other commands too
            param = keys[key]
            assert param.name is not None
            resolved = _resolved(value, param, environ, config.path, f"{table_name}.{key}")
            if param.name == "headers" and "headers" in result:
                resolved = merge_headers(result["headers"], resolved)
            result[param.name] = resolved
    return result


def profile_url(config: ConfigFile, name: str, environ: Mapping[str, str]) -> str:
    profile = config.profiles[name]
    if "url" not in profile:
        raise UsageError(f"{config.path}: profile.{name}: no url")
    return expand_env(profile["url"], environ, config.path, f"profile.{name}.url")


def unknown_profile(config: ConfigFile | None, name: str, path: str) -> UsageError:
    if config is None:
        return UsageError(f"unknown profile '@{name}': no config file at {path}")
    known = ", ".join(f"@{n}" for n in config.profiles) or "none"
    return UsageError(f"{config.path}: unknown profile '@{name}' (profiles: {known})")
