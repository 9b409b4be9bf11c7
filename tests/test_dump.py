"""`wstool frame-dump` offline, as a process; and the frame renderers (render.py "Frames")."""

from __future__ import annotations

import json
from pathlib import Path

from websockets.frames import Frame, Opcode

from tests.conftest import run_wstool_inprocess
from wstool.protocol.frames import FrameRecord, decode_all
from wstool.term.render import frame_detail_lines, frame_line, payload_preview, trace_frame_line

FRAME_KEYS = {"offset", "fin", "rsv1", "rsv2", "rsv3", "opcode", "masked", "mask_key", "length",
              "payload_hex", "text", "close_code", "close_reason", "problems"}

MASKED_HELLO = bytes.fromhex("818537fa213d7f9f4d5158")
FRAGMENTED = bytes.fromhex("010348656c80026c6f")
CLOSE_BYE = bytes([0x88, 0x05, 0x03, 0xE8]) + b"bye"


def write(tmp_path: Path, data: bytes) -> str:
    path = tmp_path / "stream.bin"
    path.write_bytes(data)
    return str(path)


def test_human_lines(tmp_path: Path) -> None:
    proc = run_wstool_inprocess("frame-dump", write(tmp_path,
                                MASKED_HELLO + FRAGMENTED + CLOSE_BYE))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.decode().splitlines() == [
        '@0 > TEXT fin 5 B masked 37fa213d "Hello"',
        '@11 < TEXT more 3 B unmasked msg 2 "Hel"',
        '@16 < CONT fin 2 B unmasked msg 2 "lo"',
        '    = message 2 TEXT 5 B "Hello"',
        '@20 < CLOSE fin 5 B unmasked 1000 (normal closure) "bye"',
    ]
    assert proc.stderr == ""


def test_json_lines_have_exactly_the_documented_keys(tmp_path: Path) -> None:
    data = MASKED_HELLO + bytes.fromhex("830161") + CLOSE_BYE
    proc = run_wstool_inprocess("frame-dump", "--json", write(tmp_path, data))
    assert proc.returncode == 6, proc.stderr  # the reserved opcode (issue 10)
    objs = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [set(o) for o in objs] == [FRAME_KEYS] * 3
    hello, reserved, close = objs
    assert hello == {"offset": 0, "fin": True, "rsv1": False, "rsv2": False, "rsv3": False,
                     "opcode": "TEXT", "masked": True, "mask_key": "37fa213d", "length": 5,
                     "payload_hex": "48656c6c6f", "text": "Hello", "close_code": None,
                     "close_reason": None, "problems": []}
    assert reserved["opcode"] == "0x3" and reserved["offset"] == 11
    assert reserved["problems"] == [
        "reserved opcode 0x3 (RFC 6455 §5.2; a compliant peer closes with 1002 protocol error)"]
    assert (close["close_code"], close["close_reason"]) == (1000, "bye")


def test_hex_input_from_stdin_and_hexdump() -> None:
    proc = run_wstool_inprocess("frame-dump", "--hex", "-x", "-",
                                input=b"0x81 0x05\n48 65 6c 6c 6f\n")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.decode().splitlines() == [
        '@0 < TEXT fin 5 B unmasked "Hello"',
        "    00000000  81 05                                             |..|",
        "    00000002  48 65 6c 6c 6f                                    |Hello|",
    ]


def test_truncated_input_prints_what_decoded_then_fails_with_the_offset(tmp_path: Path) -> None:
    proc = run_wstool_inprocess("frame-dump", write(tmp_path, MASKED_HELLO + bytes([0x81,
                                0x05]) + b"Hi"))
    assert proc.returncode == 6
    assert proc.stdout.decode().splitlines() == ['@0 > TEXT fin 5 B masked 37fa213d "Hello"']
    assert proc.stderr == ("wstool: error: input ends inside the payload of the TEXT frame at "
                           "offset 11: 5 bytes declared, 2 bytes present\n")


def test_truncated_json_ends_with_an_error_event(tmp_path: Path) -> None:
    proc = run_wstool_inprocess("frame-dump", "--json", write(tmp_path, MASKED_HELLO + b"\x81"))
    assert proc.returncode == 6
    last = json.loads(proc.stdout.splitlines()[-1])
    assert last["event"] == "error" and last["offset"] == 11


def test_bad_input_and_usage_errors(tmp_path: Path) -> None:
    missing = run_wstool_inprocess("frame-dump", str(tmp_path / "nope.bin"))
    assert missing.returncode == 1
    assert missing.stderr.startswith("wstool: error: cannot read ")
    assert "No such file" in missing.stderr
    bad_hex = run_wstool_inprocess("frame-dump", "--hex", "-", input=b"81 0")
    assert bad_hex.returncode == 6
    assert bad_hex.stderr == "wstool: error: invalid --hex input: odd number of hex digits (3)\n"
    no_arg = run_wstool_inprocess("frame-dump")
    assert no_arg.returncode == 2 and "missing FILE" in no_arg.stderr
    bad_from = run_wstool_inprocess("frame-dump", "--from", "peer", "-")
    assert bad_from.returncode == 2
    bad_listen = run_wstool_inprocess("frame-dump", "--listen", "nowhere", "ws://127.0.0.1:1/")
    assert bad_listen.returncode == 2
    assert "invalid --listen 'nowhere'" in bad_listen.stderr
    for proc in (missing, bad_hex, no_arg, bad_listen):
        assert "Traceback" not in proc.stderr


def test_bad_hex_names_the_line_and_column() -> None:
    proc = run_wstool_inprocess("frame-dump", "--hex", "-", input=b"0x81 0x05\n48 65 6c 6c 6g\n")
    assert proc.returncode == 6
    assert proc.stderr == ("wstool: error: invalid --hex input: 'g' at line 2, column 14 is "
                           "not a hex digit\n")
    assert proc.stdout == b""
    # A control byte is named, never written to the terminal.
    proc = run_wstool_inprocess("frame-dump", "--hex", "-", input=b"81\r\n05 \x1b[2J")
    assert proc.stderr == ("wstool: error: invalid --hex input: byte 0x1b at line 2, column 4 "
                           "is not a hex digit\n")


def test_hex_text_without_hex_gets_a_hint(tmp_path: Path) -> None:
    path = tmp_path / "frames.txt"
    path.write_bytes(b"81 05 48 65 6c 6c 6f\n81 05 48 65 6c 6c 6f\n")
    proc = run_wstool_inprocess("frame-dump", str(path))
    assert "wstool: the input looks like hex text: try --hex" in proc.stderr.splitlines()
    assert proc.stderr.count("try --hex") == 1
    assert proc.returncode == 6  # decoded as bytes all the same: a hint, nothing else
    # xxd -p style, 0x prefixes and ":" separators, from stdin.
    for text in (b"8105:48:65:6c:6c:6f", b"0x81, 0x05, 0x48,\n"):
        proc = run_wstool_inprocess("frame-dump", "-", input=text)
        assert "wstool: the input looks like hex text: try --hex" in proc.stderr, text
    ok = run_wstool_inprocess("frame-dump", "--hex", str(path))
    assert ok.returncode == 0 and ok.stderr == ""
    # Raw frames and text that is not hex get no hint.
    for data in (MASKED_HELLO + FRAGMENTED, b"hello world\n", b" \n"):
        assert "try --hex" not in run_wstool_inprocess("frame-dump", write(tmp_path, data)).stderr


def test_from_client_flags_unmasked_frames() -> None:
    proc = run_wstool_inprocess("frame-dump", "--from", "client", "--hex", "-",
                                input=b"810548656c6c6f")
    assert proc.returncode == 6  # a protocol problem found (issue 10)
    assert proc.stdout.decode().splitlines() == [
        '@0 > TEXT fin 5 B unmasked "Hello"',
        "   ! unmasked client frame (RFC 6455 §5.1; a compliant peer closes with 1002 "
        "protocol error)",
    ]


def test_remote_bytes_are_escaped(tmp_path: Path) -> None:
    evil = "\x1b[31mred\x07\u009b".encode()
    proc = run_wstool_inprocess("frame-dump", write(tmp_path, Frame(Opcode.TEXT,
                                evil).serialize(mask=False)))
    out = proc.stdout.decode()
    assert "\x1b" not in out and "\x07" not in out and "\u009b" not in out
    assert '"\\e[31mred\\x07\\x9b"' in out


def test_payload_bound_and_max_size_summary(tmp_path: Path) -> None:
    data = Frame(Opcode.BINARY, bytes(range(200))).serialize(mask=False)
    proc = run_wstool_inprocess("frame-dump", "--payload", "4", write(tmp_path, data))
    assert proc.stdout.decode().splitlines() == [
        "@0 < BINARY fin 200 B len16 unmasked 00010203… (+196 B)"]
    proc = run_wstool_inprocess("frame-dump", "--max-size", "8", "--payload", "0", write(tmp_path,
                                data))
    assert proc.stdout.decode().splitlines() == [
        "@0 < BINARY fin 200 B len16 unmasked 0001020304050607… (+192 B) "
        "[summarised: 8 B kept, --max-size]"]


def test_http_upgrade_prefix_is_shown(tmp_path: Path) -> None:
    request = b"GET /chat HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\n\r\n"
    proc = run_wstool_inprocess("frame-dump", write(tmp_path, request + MASKED_HELLO))
    assert proc.returncode == 0
    assert proc.stdout.decode().splitlines() == [
        "@0 > GET /chat HTTP/1.1",
        "@0 > Host: example.com",
        "@0 > Upgrade: websocket",
        "@0 >",
        f'@{len(request)} > TEXT fin 5 B masked 37fa213d "Hello"',
    ]


# Renderers on records


def test_frame_line_vocabulary() -> None:
    (r,) = decode_all(bytes([0xF2, 126, 0, 3]) + b"\x00\x01\x02")
    assert isinstance(r, FrameRecord)  # for mypy: the renderers take frames, not HTTP heads
    assert frame_line(r) == "< BINARY fin rsv1 rsv2 rsv3 3 B len16 unmasked 000102"
    assert [line.split(" (")[0] for line in frame_detail_lines(r)] == [
        "! non-minimal length: 3 in the 16-bit encoding",
        "! RSV1/RSV2/RSV3 set without a negotiated extension",
    ]


def test_payload_preview() -> None:
    assert payload_preview(b'say "hi"\n', is_text=True, limit=None) == '"say \\"hi\\"\\n"'
    assert payload_preview(b"\xff\xfe", is_text=True, limit=None) == '"\\xff\\xfe"'
    assert payload_preview(b"abcdef", is_text=False, limit=2) == "6162… (+4 B)"


def test_trace_frame_line() -> None:
    assert trace_frame_line("sent", Frame(Opcode.TEXT, b"Hello")) == '> TEXT fin 5 B "Hello"'
    assert trace_frame_line("received", Frame(Opcode.PING, b"\x00\x01")) == "< PING fin 2 B 0001"
    assert trace_frame_line("received", Frame(Opcode.PONG, b"ok")) == '< PONG fin 2 B "ok"'
    close = Frame(Opcode.CLOSE, b"\x03\xe8bye")
    assert trace_frame_line("sent", close) == '> CLOSE fin 5 B 1000 (normal closure) "bye"'
    assert trace_frame_line("sent", Frame(Opcode.BINARY, b"ab", fin=False)) == (
        "> BINARY more 2 B 6162")


def test_stdin_frames_show_as_they_arrive() -> None:
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "wstool", "frame-dump", "-"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    assert proc.stdin is not None and proc.stdout is not None
    try:
        proc.stdin.write(MASKED_HELLO)
        proc.stdin.flush()
        # The line comes while stdin is still open: nothing waits for a full chunk.
        assert proc.stdout.readline() == b'@0 > TEXT fin 5 B masked 37fa213d "Hello"\n'
        proc.stdin.close()
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def test_no_verbose_option() -> None:
    # frame-dump prints every frame already: a -v that did nothing was removed.
    proc = run_wstool_inprocess("frame-dump", "-v", "capture.bin")
    assert proc.returncode == 2
    assert "wstool: error: no such option '-v'" in proc.stderr
