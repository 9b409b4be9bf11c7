"""Pure parsers of config.py, on strings."""

from __future__ import annotations

import pytest

from wstool.config import (
    HandshakeHeaders,
    Target,
    handshake_headers,
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
        # issue 10: a bare port is a local port, never the IPv4 address 0.0.35.140
        ("9100", "ws://localhost:9100/"),
        (":9100", "ws://localhost:9100/"),
        ("ws:8080", "ws://ws:8080/"),  # a host named "ws" (docker-compose), not a typo
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
        # issue 10: typos are usage errors before any DNS lookup
        ("ws//host/x", "did you mean ws://host/x?"),
        ("ws:/host", "did you mean ws://host?"),
        ("wss:host", "did you mean wss://host?"),
        ("ws://local host/", "contains a space"),
        ("ws://h/a\tb", "control character"),
        ("ws://h,x/", "'h,x' is not a host name"),
        ("ws://9100/", "the host '9100' is a number"),
        ("ws://u:p@9100:1/", "the host '9100' is a number"),
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


def test_handshake_headers_sorts_replacements_from_extras() -> None:
    parsed = handshake_headers(
        (("Host", "a.test"), ("X-One", "1"), ("user-agent", "ua/1"), ("Origin", "o")),
        user_agent=None, origin=None)
    assert parsed == HandshakeHeaders(extra=(("X-One", "1"),), host="a.test",
                                      user_agent="ua/1", origin="o")
    assert handshake_headers((), user_agent="x", origin=None).user_agent == "x"
    for bad in ("Upgrade", "Connection", "Sec-WebSocket-Key", "Sec-WebSocket-Version",
                "Sec-WebSocket-Accept", "Sec-WebSocket-Protocol", "Sec-WebSocket-Extensions"):
        with pytest.raises(UsageError, match=bad):
            handshake_headers(((bad, "v"),), user_agent=None, origin=None)


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
