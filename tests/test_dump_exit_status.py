"""Exit statuses of `frame-dump` (issue 10): protocol problems found make it exit 6, so CI can
run `wstool frame-dump capture.bin || fail`; `--no-fail` keeps the status of a clean run.

Offline on files, `--pcap` on hand-built captures, the relay between real peers on loopback.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from tests.conftest import ServerThread, run_wstool_inprocess
from tests.test_pcap import CLIENT, CLIENT_FRAMES, SERVER, SERVER_FRAMES, conversation, write_pcap
from tests.test_relay import REQUEST, RESPONSE, _raw_exchange, _scripted_upstream, relay
from wstool.errors import ExitStatus

CLEAN = CLIENT_FRAMES  # a masked text frame and a masked close: what a client sends
# A reserved opcode, then a text frame with invalid UTF-8: two problems in three frames.
BROKEN = bytes.fromhex("830161") + bytes([0x81, 0x02, 0xC3, 0x28]) + bytes([0x88, 0x02, 0x03,
                                                                            0xE8])


def test_offline_problems_exit_6_with_a_summary_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.bin"
    path.write_bytes(BROKEN)
    proc = run_wstool_inprocess("frame-dump", str(path))
    assert proc.returncode == ExitStatus.PROTOCOL_ERROR
    assert proc.stderr == ("wstool: 2 protocol problems in 3 frames "
                           "(exit 6; --no-fail to exit 0)\n")
    assert "! reserved opcode 0x3" in proc.stdout.decode()
    lenient = run_wstool_inprocess("frame-dump", "--no-fail", str(path))
    assert lenient.returncode == ExitStatus.OK
    assert lenient.stdout == proc.stdout  # the output is the same either way
    assert lenient.stderr == "wstool: 2 protocol problems in 3 frames (--no-fail: exit 0)\n"


def test_offline_clean_input_exits_0_without_a_summary(tmp_path: Path) -> None:
    path = tmp_path / "clean.bin"
    path.write_bytes(CLEAN)
    proc = run_wstool_inprocess("frame-dump", "--json", str(path))
    assert (proc.returncode, proc.stderr) == (ExitStatus.OK, "")


def test_stdin_and_hex_problems_exit_6() -> None:
    proc = run_wstool_inprocess("frame-dump", "--hex", "--json", "-", input=BROKEN.hex().encode())
    assert proc.returncode == ExitStatus.PROTOCOL_ERROR
    assert proc.stderr.startswith("wstool: 2 protocol problems in 3 frames (exit 6")


def test_truncation_stays_6_with_no_fail(tmp_path: Path) -> None:
    # --no-fail is about the frames' problems; input that stops inside a frame is incomplete.
    path = tmp_path / "cut.bin"
    path.write_bytes(BROKEN + b"\x81\x05He")
    proc = run_wstool_inprocess("frame-dump", "--no-fail", str(path))
    assert proc.returncode == ExitStatus.PROTOCOL_ERROR
    assert proc.stderr.splitlines() == [
        "wstool: 2 protocol problems in 3 frames",  # no promise of a status: the error sets it
        "wstool: error: input ends inside the payload of the TEXT frame at offset 11: "
        "5 bytes declared, 2 bytes present",
    ]


def test_pcap_problems_exit_6_unless_no_fail(tmp_path: Path) -> None:
    # The server's first frame gets a reserved opcode (0x81 -> 0x83), same length.
    bad = bytes([0x83]) + SERVER_FRAMES[1:]
    path = tmp_path / "bad.pcap"
    write_pcap(path, conversation(CLIENT, SERVER, server_frames=bad))
    proc = run_wstool_inprocess("frame-dump", "--pcap", str(path))
    assert proc.returncode == ExitStatus.PROTOCOL_ERROR
    assert "#1 < 0x3 fin 5 B unmasked" in proc.stdout.decode()
    assert proc.stderr == "wstool: 1 protocol problem in 4 frames (exit 6; --no-fail to exit 0)\n"
    lenient = run_wstool_inprocess("frame-dump", "--pcap", str(path), "--no-fail")
    assert lenient.returncode == ExitStatus.OK and lenient.stdout == proc.stdout
    clean = tmp_path / "clean.pcap"
    write_pcap(clean, conversation(CLIENT, SERVER))
    assert run_wstool_inprocess("frame-dump", "--pcap", str(clean)).returncode == ExitStatus.OK


# The relay: bytes go through unchanged whatever it sees; the status at its end says
# whether it saw problems, for SIGTERM (kill, CI) and SIGINT (Ctrl-C, timeout -s INT) alike.
@pytest.mark.slow
@pytest.mark.parametrize(
    ("sig", "args", "status", "summary"),
    [
        (signal.SIGTERM, [], 6, "(exit 6; --no-fail to exit 0)"),
        (signal.SIGINT, [], 6, "(exit 6; --no-fail to exit 130)"),
        (signal.SIGTERM, ["--no-fail"], 0, "(--no-fail: exit 0)"),
        (signal.SIGINT, ["--no-fail"], 130, "(--no-fail: exit 130)"),
    ],
)
def test_relay_that_saw_problems_ends_with_6(server_thread: ServerThread, sig: int,
                                             args: list[str], status: int,
                                             summary: str) -> None:
    received: list[bytes] = []
    upstream = _scripted_upstream(server_thread, RESPONSE + BROKEN, received)
    with relay(*args, upstream) as rp:
        got = _raw_exchange(rp.port, REQUEST, CLEAN)
        rp.wait_closed()
        rp.stop(sig)
    assert got == RESPONSE + BROKEN  # forwarded unchanged, problems included
    assert received[1] == CLEAN
    assert rp.returncode == status, rp.stderr
    assert rp.stderr.splitlines()[-1] == f"wstool: 2 protocol problems in 5 frames {summary}"


@pytest.mark.slow
def test_relay_stream_ending_inside_a_frame_counts_as_a_problem(
        server_thread: ServerThread) -> None:
    received: list[bytes] = []
    upstream = _scripted_upstream(server_thread, RESPONSE, received)
    with relay(upstream) as rp:
        _raw_exchange(rp.port, REQUEST, CLEAN + b"\x81\x85\x00")  # cut inside a header
        rp.wait_closed()
        rp.stop()
    assert "#1 ! client stream: input ends inside" in rp.stdout.decode()
    assert rp.returncode == ExitStatus.PROTOCOL_ERROR, rp.stderr
    assert rp.stderr.splitlines()[-1] == ("wstool: 1 protocol problem in 2 frames "
                                          "(exit 6; --no-fail to exit 0)")


def test_help_lists_frame_dumps_own_exit_statuses() -> None:
    proc = run_wstool_inprocess("frame-dump", "--help")
    text = " ".join(proc.stdout.decode().split())
    assert "--no-fail" in text
    assert "6 protocol problems found in the frames (not with --no-fail)" in text
    assert "130 --listen stopped by SIGINT" in text
    assert "4 handshake rejected" not in text  # the client's table does not apply
