"""Exit statuses and the errors that map onto them.

The tree::

    WstoolError                 1  anything else that went wrong
    ├── UsageError              2  bad option, URL, header, file argument
    ├── ConnectFailed           3  DNS, TCP, proxy or TLS failure
    ├── HandshakeRejected       4  the server answered the upgrade with a non-101
    ├── ClosedAbnormally        5  the peer closed with a code other than 1000/1005,
    │                              or the TCP connection dropped without a close
    ├── ProtocolFailure         6  a protocol or decode error (ours or the peer's),
    │                              including a message over --max-size
    ├── TimedOut                7  --open-timeout, --max-time or another deadline expired
    └── ExpectationNotMet       8  --expect/--capture or a `run` step not met

Messages are lower-case fragments that name the culprit, the limit and the flag
that changes it; ``cli.py`` prefixes them with ``wstool: error:``. The mapping of
errors to exit statuses lives here, the mapping to ``sys.exit`` only in ``cli.py``.
"""

from __future__ import annotations

from enum import IntEnum


class ExitStatus(IntEnum):
    """Documented exit statuses (README "Exit status", ``wstool --help``)."""

    OK = 0
    ERROR = 1
    USAGE = 2
    CONNECT_FAILED = 3
    HANDSHAKE_REJECTED = 4
    CLOSED_ABNORMALLY = 5
    PROTOCOL_ERROR = 6
    TIMEOUT = 7
    EXPECTATION_NOT_MET = 8
    HUNG_UP = 129  # SIGHUP (128 + 1), connect --exec only: closed with 1001
    INTERRUPTED = 130
    TERMINATED = 143  # SIGTERM (128 + 15, the shell's figure): closed with 1001


EXIT_STATUS_HELP = """\
Exit status: 0 ok, 1 error, 2 usage, 3 could not connect (DNS/TCP/proxy/TLS),
4 handshake rejected, 5 closed abnormally, 6 protocol or decode error (incl.
--max-size), 7 timeout (incl. --max-time), 8 expectation not met, 129 hung up
(SIGHUP, --exec only: closed with 1001), 130 interrupted (Ctrl-C), 143 terminated
(SIGTERM: closed with 1001)."""


# The servers' own table: they never connect out, so 3/4/7 cannot happen.
SERVE_ECHO_EXIT_STATUS_HELP = """\
Exit status: 0 stopped by SIGINT/SIGTERM (clients closed with 1001), 1 cannot listen
(port taken) or read --cert/--key, 2 usage (also a --static DIR that is not a
directory)."""

LISTEN_EXIT_STATUS_HELP = """\
Exit status: 0 stopped by SIGINT/SIGTERM (--exec: SIGHUP too) or /quit, or with --once
the client closed with 1000/1001/1005; 1 cannot listen or read --cert/--key, or an
invalid UTF-8 input line, or (--once --exec) the process exited with another status
than 0, was killed by a signal wstool did not send, or could not start; 2 usage (also
an --exec CMD that cannot be found, a --static DIR that is not a directory, a bad
--to-tcp HOST:PORT); with --once, 5 the client closed with another code or dropped
(1006), 6 it broke the protocol. --exec and --to-tcp: what happens to each client (a
process that fails, a TCP port that refuses: close 1011) is logged, not an exit status."""

# connect's bridges (issue 16), after EXIT_STATUS_HELP in connect --help.
CONNECT_BRIDGES_EXIT_STATUS_HELP = """\
--exec: 1 also when the process exited with another status than 0 or was killed by a
signal wstool did not send, 2 for a CMD that cannot be found. --from-tcp (a listener):
0 after SIGINT/SIGTERM, 1 cannot listen on its port, 2 usage; what happens to each
bridged connection is logged, not an exit status."""

REPLAY_EXIT_STATUS_HELP = """\
Exit status: 0 the replies matched the recording; 8 they differ (the diff is on
stdout); 1 cannot read FILE, or it is not a recording; 2 usage; 3 could not connect;
4 handshake rejected; 5 the server closed abnormally (and not as recorded); 6 protocol
error; 7 timeout; 130 interrupted."""


# frame-dump's own: it decodes, so 6 is what it finds, not what a server did.
FRAME_DUMP_EXIT_STATUS_HELP = """\
Exit status: 0 no protocol problem found (--listen: stopped by SIGTERM); 1 cannot read
FILE, cannot listen, cannot read --cacert/--cert; 2 usage; 6 protocol problems found in
the frames (not with --no-fail), input ending inside a frame, bytes missing from a
capture, invalid --hex text, not a pcap/pcapng; 130 --listen stopped by SIGINT (6 if it
saw problems)."""


class WstoolError(Exception):
    """Base class: a one-line message and an exit status."""

    exit_status: ExitStatus = ExitStatus.ERROR
    # A front-end has already shown what this error says (issue 13: the REPL's and
    # pipe mode's "closed by the server: 4001 ..." line): exit with its status, and
    # cli/app.py prints no second "wstool: error: ..." line.
    said: bool = False

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message} ({self.hint})"
        return self.message


class UsageError(WstoolError):
    exit_status = ExitStatus.USAGE


class ConnectFailed(WstoolError):
    exit_status = ExitStatus.CONNECT_FAILED


class HandshakeRejected(WstoolError):
    exit_status = ExitStatus.HANDSHAKE_REJECTED


class ClosedAbnormally(WstoolError):
    exit_status = ExitStatus.CLOSED_ABNORMALLY

    def __init__(self, message: str, *, close_code: int = 1006, hint: str | None = None,
                 server_close: bool = False) -> None:
        super().__init__(message, hint=hint)
        self.close_code = close_code
        # The server's close frame is all this error says: the close line of the
        # Closed event says the same (Session.outcome, ClientRun.run).
        self.server_close = server_close


class ProtocolFailure(WstoolError):
    exit_status = ExitStatus.PROTOCOL_ERROR


class TimedOut(WstoolError):
    exit_status = ExitStatus.TIMEOUT


class ExpectationNotMet(WstoolError):
    exit_status = ExitStatus.EXPECTATION_NOT_MET


# RFC 6455 §7.4.1 and the IANA registry; used by every renderer of close frames.
CLOSE_CODE_NAMES: dict[int, str] = {
    1000: "normal closure",
    1001: "going away",
    1002: "protocol error",
    1003: "unsupported data",
    1005: "no status received",
    1006: "abnormal closure",
    1007: "invalid frame payload data",
    1008: "policy violation",
    1009: "message too big",
    1010: "mandatory extension",
    1011: "internal error",
    1012: "service restart",
    1013: "try again later",
    1014: "bad gateway",
    1015: "TLS handshake failure",
}


def describe_close_code(code: int) -> str:
    """``1000`` -> ``"normal closure"``; ranges for unregistered codes."""
    if code in CLOSE_CODE_NAMES:
        return CLOSE_CODE_NAMES[code]
    if 3000 <= code < 4000:
        return "registered"
    if 4000 <= code < 5000:
        return "private use"
    return "unknown"


# Close codes after which a client exits 0: 1000, and 1005 (a close frame
# without a status, RFC 6455 §7.1.5, is still a clean close).
NORMAL_CLOSE_CODES = frozenset({1000, 1005})

# Close codes after which --reconnect tries again: a dropped connection and the
# codes that mean "come back later". Not 1002/1007/1008/1009 (retrying cannot
# help) nor 3000-4999 (the application's deliberate answer).
RETRYABLE_CLOSE_CODES = frozenset({1001, 1006, 1011, 1012, 1013, 1014})


def is_retryable(exc: WstoolError) -> bool:
    """The --reconnect policy (pipe and REPL alike): could not connect, timed
    out, or closed with a drop / come-back-later code (RETRYABLE_CLOSE_CODES)."""
    if isinstance(exc, ClosedAbnormally):
        return exc.close_code in RETRYABLE_CLOSE_CODES
    return exc.exit_status in (ExitStatus.CONNECT_FAILED, ExitStatus.TIMEOUT)
