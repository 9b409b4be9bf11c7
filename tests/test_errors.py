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


def test_reconnect_schedule_limit_and_start_over() -> None:
    from wstool.client.run import Reconnects

    limited = Reconnects(max_delay_s=4.0, limit=3)
    delays = [limited.next_delay() for _ in range(3)]
    assert all(d is not None and 0 < d <= 4.0 for d in delays)
    assert limited.next_delay() is None  # the fourth in a row: give up
    assert limited.giving_up() == (
        "giving up after 3 reconnect attempts in a row (--reconnect-limit)")
    limited.opened()  # a connection opened: start over
    assert limited.next_delay() is not None

    unlimited = Reconnects(max_delay_s=2.0)
    delays = [unlimited.next_delay() for _ in range(200)]
    assert None not in delays
    assert max(d for d in delays if d is not None) <= 2.0  # capped
