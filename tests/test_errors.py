"""errors.py: the close-code table and the --reconnect policy."""

from __future__ import annotations

import pytest

from wstool.errors import (
    ClosedAbnormally,
    ConnectFailed,
    HandshakeRejected,
    ProtocolFailure,
    TimedOut,
    UsageError,
    WstoolError,
    describe_close_code,
    is_retryable,
)


@pytest.mark.parametrize(
    ("code", "text"),
    [(1000, "normal closure"), (1009, "message too big"), (3001, "registered"),
     (4001, "private use"), (2999, "unknown")],
)
def test_describe_close_code(code: int, text: str) -> None:
    assert describe_close_code(code) == text


@pytest.mark.parametrize(
    ("error", "retry"),
    [
        (ConnectFailed("refused"), True),
        (TimedOut("slow"), True),
        (ClosedAbnormally("dropped"), True),  # 1006 by default
        (ClosedAbnormally("restart", close_code=1012), True),
        (ClosedAbnormally("policy", close_code=1008), False),
        (ClosedAbnormally("app", close_code=4001), False),
        (HandshakeRejected("403"), False),
        (ProtocolFailure("bad frame"), False),
        (UsageError("bad url"), False),
        (WstoolError("other"), False),
    ],
)
def test_reconnect_policy(error: WstoolError, retry: bool) -> None:
    assert is_retryable(error) is retry


def test_hint_is_part_of_the_message() -> None:
    assert str(ConnectFailed("refused", hint="try --x")) == "refused (try --x)"
