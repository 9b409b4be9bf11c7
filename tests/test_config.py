"""Pure parsers of config.py, on strings."""

from __future__ import annotations

import pytest

from wstool.config import (
    Target,
    parse_auth,
    parse_header,
    parse_target,
    seconds_or_none,
    size_or_none,
    split_userinfo,
)
from wstool.errors import UsageError


@pytest.mark.parametrize(
    ("text", "url"),
    [
        ("ws://example.test/chat", "ws://example.test/chat"),
        ("wss://example.test", "wss://example.test/"),
        ("example.test:8080", "ws://example.test:8080/"),
        ("localhost", "ws://localhost/"),
        ("http://h:1/p?q=1", "ws://h:1/p?q=1"),
        ("HTTPS://h/", "wss://h/"),
        ("[::1]:9000", "ws://[::1]:9000/"),
    ],
)
def test_parse_target_normalises(text: str, url: str) -> None:
    assert parse_target(text) == Target(url=url)


def test_parse_target_unix() -> None:
    assert parse_target("ws+unix:///tmp/x.sock") == Target("ws://localhost/", "/tmp/x.sock")
    with pytest.raises(UsageError, match="absolute"):
        parse_target("ws+unix://relative.sock")


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "empty URL"),
        ("ftp://h/", "scheme must be"),
        ("ws://", "no host"),
        ("ws://h:99999/", "out of range"),
        ("ws://h:0/", "port 0"),
        ("ws://h/#frag", "fragment"),
        ("ws://h:abc/", "invalid URL"),
    ],
)
def test_parse_target_rejects(text: str, fragment: str) -> None:
    with pytest.raises(UsageError, match=fragment):
        parse_target(text)


def test_split_userinfo_moves_credentials_out_of_the_url() -> None:
    target, auth = split_userinfo(parse_target("ws://al%40ice:s3cr%3At@h:1/p"))
    assert target.url == "ws://h:1/p"
    assert auth == ("al@ice", "s3cr:t")
    assert split_userinfo(parse_target("ws://h/")) == (Target("ws://h/"), None)


def test_parse_header() -> None:
    assert parse_header("X-Token:  abc def ") == ("X-Token", "abc def")
    assert parse_header("Empty:") == ("Empty", "")
    for bad in ("NoColon", ": value", "Bad Name: v", "X-A: a\r\nX-B: b"):
        with pytest.raises(UsageError):
            parse_header(bad)


def test_parse_auth() -> None:
    assert parse_auth("u:p:q") == ("u", "p:q")
    with pytest.raises(UsageError, match="user:password"):
        parse_auth("nopassword")


def test_zero_disables() -> None:
    assert seconds_or_none(0) is None
    assert seconds_or_none(-1) is None
    assert seconds_or_none(2.5) == 2.5
    assert size_or_none(0) is None
    assert size_or_none(10) == 10
    with pytest.raises(UsageError, match="max-size"):
        size_or_none(-5)
