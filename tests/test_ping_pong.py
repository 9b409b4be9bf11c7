"""connect -P/--show-ping-pong (issue 13): pings and pongs both ways, in wire order.

The renderer on records; pipe mode (stderr lines, never stdout; --json events)
against the websockets library's server with a short ping_interval, run in
process. The REPL's side is in tests/test_repl_session_pty.py (a real terminal)
and tests/test_repl.py.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

from tests.conftest import ServerThread, run_wstool_inprocess, start_websockets_server
from wstool.events import Ping, Pong
from wstool.term.render import control_payload_repr, ping_pong_line

# The server pings every 0.1 s, we ping every 0.15 s; the run lasts ~0.8 s.
SERVER_PING_S = 0.1
CLIENT_PING = ("--ping-interval", "0.15")


def test_ping_pong_lines() -> None:
    assert ping_pong_line(Ping("received", b"\x8a\x01\x02\xff")) == "< ping 0x8a0102ff"
    assert ping_pong_line(Pong("sent", b"\x8a\x01\x02\xff")) == "> pong 0x8a0102ff"
    assert ping_pong_line(Ping("sent", b"hi")) == "> ping 'hi'"
    assert ping_pong_line(Pong("received", b"hi", rtt_s=0.00042)) == "< pong 'hi' in 0.42 ms"
    assert ping_pong_line(Pong("received", b"")) == "< pong"  # unsolicited: no RTT
    # Control characters: hex, never raw, never a doubly escaped repr.
    assert control_payload_repr(b"\x1b[2J") == " 0x1b5b324a"
    assert control_payload_repr(b"A\x1dm\x11") == " 0x411d6d11"


async def echo_then_close_later(ws: Any) -> None:
    """Echo one message, let pings flow for a while, then a last message and 1000."""
    message = await ws.recv()
    await ws.send(message)
    await asyncio.sleep(0.8)
    await ws.send("bye")
    await ws.close()


def _check_wire_order(lines: list[str]) -> None:
    """Each server ping is followed at once by our pong with its payload; each of our
    pings comes before its pong, which carries the RTT."""
    # A payload is hex, or quoted text when its random bytes happen to be printable
    # (the websockets library's pings: 4 random bytes; "'fx k'" was seen).
    pings = [line for line in lines
             if re.fullmatch(r"[<>] p[io]ng (0x[0-9a-f]+|'.*'|\S+)( in [0-9.]+ ms)?", line)]
    assert pings == lines, lines  # nothing else on these lines
    server_pings = [i for i, line in enumerate(lines) if line.startswith("< ping ")]
    ours = [i for i, line in enumerate(lines) if line.startswith("> ping ")]
    assert len(server_pings) >= 2 and len(ours) >= 2, lines
    for i in server_pings:
        assert lines[i + 1] == "> pong " + lines[i].removeprefix("< ping "), lines
    for i in ours:
        payload = lines[i].removeprefix("> ping ")
        answer = [j for j, line in enumerate(lines) if line.startswith(f"< pong {payload} in ")]
        assert answer and answer[0] > i, (payload, lines)


def test_pipe_mode_prints_pings_and_pongs_on_stderr_in_wire_order(
    server_thread: ServerThread,
) -> None:
    _s, url = start_websockets_server(server_thread, echo_then_close_later,
                                      ping_interval=SERVER_PING_S)
    proc = run_wstool_inprocess("connect", "-P", *CLIENT_PING, "-w", "-1", url, input=b"hi\n")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == b"hi\nbye\n"  # diagnostics never on stdout
    lines = [line.removeprefix("wstool: ") for line in proc.stderr.splitlines()]
    assert lines[-1] == "closed by the server: 1000 (normal closure)"
    _check_wire_order(lines[:-1])
    # Without -P: none of them.
    plain = run_wstool_inprocess("connect", *CLIENT_PING, "-w", "-1", url, input=b"hi\n")
    assert plain.stderr == "wstool: closed by the server: 1000 (normal closure)\n"


def test_json_gets_the_sent_pings_and_the_automatic_pongs_too(
    server_thread: ServerThread,
) -> None:
    """--json always had the pings and pongs received; -P adds ours and the automatic
    pongs to the stream (and prints no stderr line for them)."""
    _s, url = start_websockets_server(server_thread, echo_then_close_later,
                                      ping_interval=SERVER_PING_S)

    def kinds(*args: str) -> tuple[list[tuple[str, str]], str]:
        proc = run_wstool_inprocess("connect", "--json", *args, *CLIENT_PING, "-w", "-1", url,
                                    input=b"hi\n")
        assert proc.returncode == 0, proc.stderr
        events = [json.loads(line) for line in proc.stdout.splitlines()]
        return [(e["event"], e["direction"]) for e in events
                if e["event"] in ("ping", "pong")], proc.stderr

    without, _ = kinds()
    assert set(without) == {("ping", "received"), ("pong", "received")}
    with_p, stderr = kinds("-P")
    assert set(with_p) == {("ping", "received"), ("pong", "sent"),
                           ("ping", "sent"), ("pong", "received")}
    for i, kind in enumerate(with_p):
        if kind == ("ping", "received"):
            assert with_p[i + 1] == ("pong", "sent")
    assert "ping" not in stderr
