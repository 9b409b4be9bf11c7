"""The pure frame decoder (wstool/protocol/frames.py), tested on bytes."""

from __future__ import annotations

import itertools
import os
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from websockets.extensions.permessage_deflate import PerMessageDeflate
from websockets.frames import Frame, Opcode

from wstool.errors import ExitStatus
from wstool.protocol.frames import (
    DecodeError,
    DeflateParams,
    FrameDecoder,
    FrameRecord,
    HttpHead,
    decode_all,
    deflate_params_from_response,
    parse_hex,
)


def frames_of(data: bytes, **kwargs: object) -> list[FrameRecord]:
    out = decode_all(data, **kwargs)
    assert all(isinstance(r, FrameRecord) for r in out)
    return out  # type: ignore[return-value]


def one(data: bytes, **kwargs: object) -> FrameRecord:
    records = frames_of(data, **kwargs)
    assert len(records) == 1
    return records[0]


def problem_texts(record: FrameRecord) -> list[str]:
    return [str(p) for p in record.problems]


# RFC 6455 §5.7 examples


def test_rfc_single_frame_unmasked_text() -> None:
    r = one(bytes.fromhex("810548656c6c6f"))
    assert (r.offset, r.fin, r.opcode_name, r.masked, r.length, r.length_bits) == (
        0, True, "TEXT", False, 5, 7)
    assert r.payload == b"Hello"
    assert r.direction == "server"
    assert r.problems == []
    assert r.mask_key is None


def test_rfc_single_frame_masked_text() -> None:
    r = one(bytes.fromhex("818537fa213d7f9f4d5158"))
    assert r.masked and r.mask_key == bytes.fromhex("37fa213d")
    assert r.payload == b"Hello"
    assert r.direction == "client"
    assert r.header == bytes.fromhex("818537fa213d")


def test_rfc_fragmented_unmasked_text() -> None:
    first, second = frames_of(bytes.fromhex("010348656c80026c6f"))
    assert (first.opcode_name, first.fin, first.payload, first.message) == ("TEXT", False,
                                                                             b"Hel", 1)
    assert (second.opcode_name, second.fin, second.payload, second.message) == ("CONT", True,
                                                                                 b"lo", 1)
    assert second.offset == 5
    assert first.reassembled is None
    assert second.reassembled == b"Hello"
    assert second.message_opcode == 0x1
    assert first.problems == second.problems == []


def test_rfc_unmasked_ping_and_masked_pong() -> None:
    ping = one(bytes.fromhex("890548656c6c6f"))
    pong = one(bytes.fromhex("8a8537fa213d7f9f4d5158"))
    assert (ping.opcode_name, ping.payload, ping.masked) == ("PING", b"Hello", False)
    assert (pong.opcode_name, pong.payload, pong.masked) == ("PONG", b"Hello", True)
    assert ping.message == pong.message == 0


def test_rfc_256_bytes_binary_16_bit_length() -> None:
    payload = os.urandom(256)
    r = one(bytes.fromhex("827e0100") + payload)
    assert (r.opcode_name, r.length, r.length_bits, r.payload) == ("BINARY", 256, 16, payload)
    assert r.problems == []


def test_rfc_64_kib_binary_64_bit_length() -> None:
    payload = os.urandom(65536)
    r = one(bytes.fromhex("827f0000000000010000") + payload)
    assert (r.length, r.length_bits, r.payload) == (65536, 64, payload)
    assert r.problems == []


# Protocol problems: each on the frame it occurs in, decoding goes on.


def test_reserved_opcode_flagged_and_decoding_goes_on() -> None:
    bad, good = frames_of(bytes.fromhex("830161") + bytes.fromhex("810548656c6c6f"))
    assert bad.opcode_name == "0x3" and bad.payload == b"a"
    assert problem_texts(bad) == [
        "reserved opcode 0x3 (RFC 6455 §5.2; a compliant peer closes with 1002 protocol error)"
    ]
    assert good.payload == b"Hello" and good.problems == []
    assert one(bytes.fromhex("8b00")).problems[0].text == "reserved opcode 0xB"


@pytest.mark.parametrize("first_byte,names", [(0xC1, "RSV1"), (0xA1, "RSV2"), (0x91, "RSV3"),
                                              (0xF1, "RSV1/RSV2/RSV3")])
def test_rsv_bits_without_extension(first_byte: int, names: str) -> None:
    r = one(bytes([first_byte, 0x01]) + b"a")
    assert [p.text for p in r.problems] == [f"{names} set without a negotiated extension"]
    assert r.problems[0].close_code == 1002


def test_rsv1_allowed_with_deflate_but_not_on_control_frames() -> None:
    deflate = DeflateParams()
    r = one(bytes([0x89, 0x00]) + b"", deflate=deflate)
    assert r.problems == []
    r = one(bytes([0xC9, 0x00]), deflate=deflate)
    assert [p.text for p in r.problems] == ["RSV1 on a control frame"]
    assert r.problems[0].rule == "RFC 7692 §6.1"


def test_control_frame_too_long() -> None:
    r = one(bytes([0x89, 126, 0, 126]) + b"p" * 126)
    assert [p.text for p in r.problems] == [
        "PING frame with 126 bytes of payload (control frames carry at most 125)"]
    assert r.problems[0].rule == "RFC 6455 §5.5"


def test_fragmented_control_frame() -> None:
    r = one(bytes([0x0A, 0x00]))
    assert [p.text for p in r.problems] == ["fragmented PONG frame (FIN not set)"]


def test_continuation_without_start() -> None:
    r = one(bytes.fromhex("80026c6f"))
    assert r.message == 0
    assert [p.text for p in r.problems] == ["continuation frame without a message to continue"]
    assert r.problems[0].rule == "RFC 6455 §5.4"


def test_new_message_inside_fragmented_one() -> None:
    a, b, c = frames_of(bytes.fromhex("010161") + bytes.fromhex("820162") +
                        bytes.fromhex("800163"))
    assert a.problems == []
    assert [p.text for p in b.problems] == ["new BINARY message inside fragmented message 1"]
    # The new message replaced the unfinished one: the continuation has nothing to continue.
    assert (b.message, c.message) == (2, 0)
    assert [p.text for p in c.problems] == ["continuation frame without a message to continue"]


def test_control_frames_may_interleave_fragments() -> None:
    records = frames_of(bytes.fromhex("010348656c") + bytes.fromhex("8900") +
                        bytes.fromhex("80026c6f"))
    assert all(r.problems == [] for r in records)
    assert records[2].reassembled == b"Hello"


def test_invalid_utf8_in_a_text_frame() -> None:
    r = one(bytes([0x81, 0x02, 0xC3, 0x28]))
    assert len(r.problems) == 1
    assert r.problems[0].text.startswith("invalid UTF-8 in text message 1")
    assert r.problems[0].close_code == 1007


def test_utf8_checked_across_fragments() -> None:
    euro = "€".encode()  # e2 82 ac, split across two frames: valid
    records = frames_of(bytes([0x01, 0x02]) + euro[:2] + bytes([0x80, 0x01]) + euro[2:])
    assert all(r.problems == [] for r in records)
    assert records[1].reassembled == euro
    # The sequence broken in the second fragment is flagged there, not on the first.
    first, second = frames_of(bytes([0x01, 0x02]) + euro[:2] + bytes([0x80, 0x01]) + b"A")
    assert first.problems == []
    assert second.problems[0].text.startswith("invalid UTF-8 in text message 1")
    # An incomplete sequence at the end of the message is flagged on the last frame.
    first, second = frames_of(bytes([0x01, 0x01]) + b"A" + bytes([0x80, 0x02]) + euro[:2])
    assert first.problems == [] and second.problems[0].close_code == 1007


def test_binary_is_not_utf8_checked() -> None:
    assert one(bytes([0x82, 0x02, 0xC3, 0x28])).problems == []


def test_close_frame_fields() -> None:
    r = one(bytes([0x88, 0x05, 0x03, 0xE8]) + b"bye")
    assert (r.close_code, r.close_reason, r.problems) == (1000, "bye", [])
    empty = one(bytes([0x88, 0x00]))
    assert (empty.close_code, empty.close_reason, empty.problems) == (None, None, [])


@pytest.mark.parametrize("code", [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535])
def test_invalid_close_code(code: int) -> None:
    r = one(bytes([0x88, 0x02]) + code.to_bytes(2, "big"))
    assert r.close_code == code
    assert [p.text.split(" (")[0] for p in r.problems] == [f"invalid close code {code}"]
    assert r.problems[0].close_code == 1002


@pytest.mark.parametrize("code", [1000, 1001, 1003, 1007, 1011, 1014, 3000, 4999])
def test_valid_close_code(code: int) -> None:
    assert one(bytes([0x88, 0x02]) + code.to_bytes(2, "big")).problems == []


def test_close_frame_with_one_byte_and_bad_reason() -> None:
    r = one(bytes([0x88, 0x01, 0x03]))
    assert [p.text for p in r.problems] == ["close frame with a 1-byte payload (a code takes 2)"]
    r = one(bytes([0x88, 0x04, 0x03, 0xE8, 0xC3, 0x28]))
    assert r.close_code == 1000
    assert r.problems[0].text.startswith("invalid UTF-8 in the close reason")
    assert r.problems[0].close_code == 1007


def test_non_minimal_length_encodings() -> None:
    r = one(bytes([0x82, 126, 0, 5]) + b"12345")
    assert (r.length, r.length_bits) == (5, 16)
    assert [p.text for p in r.problems] == [
        "non-minimal length: 5 in the 16-bit encoding (7-bit fits)"]
    r = one(bytes([0x82, 127]) + (300).to_bytes(8, "big") + b"x" * 300)
    assert [p.text for p in r.problems] == [
        "non-minimal length: 300 in the 64-bit encoding (16-bit fits)"]
    assert r.payload == b"x" * 300


def test_64_bit_length_with_msb_set_is_flagged_then_truncated() -> None:
    decoder = FrameDecoder()
    out = decoder.feed(bytes([0x82, 127]) + (1 << 63).to_bytes(8, "big") + b"abc")
    assert out == []
    with pytest.raises(DecodeError) as info:
        decoder.finish()
    assert "offset 0" in str(info.value)


def test_masking_rule_when_direction_is_forced() -> None:
    r = one(bytes.fromhex("810548656c6c6f"), direction="client")
    assert r.direction == "client"
    assert [p.text for p in r.problems] == ["unmasked client frame"]
    assert r.problems[0].rule == "RFC 6455 §5.1"
    r = one(bytes.fromhex("818537fa213d7f9f4d5158"), direction="server")
    assert [p.text for p in r.problems] == ["masked server frame"]
    assert one(bytes.fromhex("818537fa213d7f9f4d5158"), direction="client").problems == []


def test_data_after_close() -> None:
    close, text = frames_of(bytes([0x88, 0x00]) + bytes.fromhex("810161"))
    assert close.problems == []
    assert [p.text for p in text.problems] == ["data frame after a close frame"]


# Truncation


def test_truncated_header_reports_offset_after_what_decoded() -> None:
    decoder = FrameDecoder()
    out = decoder.feed(bytes.fromhex("810548656c6c6f") + bytes([0x82, 126, 1]))
    assert [r.payload for r in out if isinstance(r, FrameRecord)] == [b"Hello"]
    with pytest.raises(DecodeError) as info:
        decoder.finish()
    assert info.value.offset == 7
    assert str(info.value) == ("input ends inside a frame header at offset 7: "
                               "4 header bytes needed, 3 bytes present")
    assert info.value.exit_status == ExitStatus.PROTOCOL_ERROR


def test_truncated_payload() -> None:
    with pytest.raises(DecodeError) as info:
        decode_all(bytes([0x81, 0x05]) + b"Hel")
    assert str(info.value) == ("input ends inside the payload of the TEXT frame at offset 0: "
                               "5 bytes declared, 3 bytes present")


def test_truncated_oversized_payload() -> None:
    decoder = FrameDecoder(max_buffer_bytes=4)
    decoder.feed(bytes([0x82, 0x0A]) + b"abcdef")
    with pytest.raises(DecodeError, match="10 bytes declared, 6 bytes present"):
        decoder.finish()


def test_any_split_of_the_input_gives_the_same_records() -> None:
    euro = "€".encode()
    data = (bytes.fromhex("818537fa213d7f9f4d5158") + bytes([0x01, 0x02]) + euro[:2]
            + bytes([0x80, 0x01]) + euro[2:] + bytes([0x82, 126, 0, 200]) + b"z" * 200
            + bytes([0x88, 0x02, 0x03, 0xE8]))
    whole = decode_all(data)
    for size in (1, 2, 3, 7, 64):
        decoder = FrameDecoder(max_buffer_bytes=100)
        pieces: list[object] = []
        for i in range(0, len(data), size):
            pieces += decoder.feed(data[i : i + size])
        decoder.finish()
        assert [(r.offset, r.opcode, r.length, r.problems) for r in pieces  # type: ignore[attr-defined]
                ] == [(r.offset, r.opcode, r.length, r.problems) for r in whole]  # type: ignore[union-attr]


# --max-size: long payloads summarised


def test_oversized_payload_is_summarised_and_still_checked() -> None:
    text = ("é" * 100).encode()  # 200 bytes
    key = bytes.fromhex("01020304")
    frame = Frame(Opcode.TEXT, text).serialize(mask=True)
    decoder = FrameDecoder(max_buffer_bytes=16)
    records = []
    for i in range(0, len(frame), 7):  # odd chunks: the mask must rotate right
        records += decoder.feed(frame[i : i + 7])
    decoder.finish()
    (r,) = records
    assert isinstance(r, FrameRecord)
    assert r.summarised and r.length == 200
    assert r.payload == text[:16]
    assert r.problems == []
    bad = Frame(Opcode.TEXT, text[:-1] + b"\xff").serialize(mask=False)
    (r,) = decode_all(bad + bytes([0x81, 0x00]), max_buffer_bytes=16)[:1]
    assert isinstance(r, FrameRecord)
    assert r.problems and r.problems[0].close_code == 1007
    del key


def test_oversized_fragmented_message_is_not_reassembled() -> None:
    data = bytes([0x02, 0x0A]) + b"a" * 10 + bytes([0x80, 0x0A]) + b"b" * 10
    _first, second = frames_of(data, max_buffer_bytes=15)
    assert second.reassembled is None and second.reassembled_length == 20


# Hex input, HTTP prefix


def test_parse_hex() -> None:
    assert parse_hex("0x81 0x05\n48 65 6c\t6c6f") == bytes.fromhex("810548656c6c6f")
    assert parse_hex("81:05,48") == bytes.fromhex("810548")
    with pytest.raises(ValueError):
        parse_hex("8")
    with pytest.raises(ValueError):
        parse_hex("zz")
    assert parse_hex("0X81\r\n\x0b\x0c05") == b"\x81\x05"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("81 05 zz", "'z' at line 1, column 7 is not a hex digit"),
        ("81 05\n48 65\n6c 6q", "'q' at line 3, column 5 is not a hex digit"),
        ("0x81 0x0g", "'g' at line 1, column 9 is not a hex digit"),  # 0x keeps columns
        ("81\n\x9b", "byte 0x9b at line 2, column 1 is not a hex digit"),
        ("81 \x00", "byte 0x00 at line 1, column 4 is not a hex digit"),
        ("81\n0", "odd number of hex digits (3)"),
    ],
)
def test_parse_hex_names_the_first_bad_character(text: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_hex(text)
    assert str(info.value) == message


def test_http_request_prefix() -> None:
    request = (b"GET /chat HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\n"
               b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
    out = decode_all(request + bytes.fromhex("818537fa213d7f9f4d5158"))
    head, frame = out
    assert isinstance(head, HttpHead) and isinstance(frame, FrameRecord)
    assert head.kind == "request" and head.start_line == "GET /chat HTTP/1.1"
    assert head.header("host") == "example.com"
    assert frame.offset == len(request) and frame.payload == b"Hello"
    assert frame.problems == []


def test_http_response_prefix_forces_direction_and_enables_deflate() -> None:
    response = (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                b"Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover\r\n"
                b"\r\n")
    compressor = zlib.compressobj(wbits=-15)
    body = compressor.compress(b"Hello Hello Hello") + compressor.flush(zlib.Z_SYNC_FLUSH)
    body = body[:-4]
    data = response + bytes([0xC1, len(body)]) + body
    head, frame = decode_all(data)
    assert isinstance(head, HttpHead) and head.status_code == 101
    assert isinstance(frame, FrameRecord)
    assert frame.compressed and frame.problems == []
    assert frame.inflated == b"Hello Hello Hello" and frame.inflated_length == 17
    assert frame.reassembled is None  # one frame: nothing to reassemble
    # The masking rule applies: the response says these are server frames.
    masked = decode_all(response + Frame(Opcode.TEXT, b"x").serialize(mask=True))[1]
    assert isinstance(masked, FrameRecord)
    assert [p.text for p in masked.problems] == ["masked server frame"]


def test_http_response_other_than_101_is_not_followed_by_frames() -> None:
    response = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 7\r\n\r\n"
    decoder = FrameDecoder()
    out = decoder.feed(response + b"\x81\x05nope!")
    assert len(out) == 1 and isinstance(out[0], HttpHead) and out[0].status_code == 400
    assert decoder.feed(b"\x88") == []
    decoder.finish()  # no truncation error: there were no frames to cut


def test_http_prefix_split_and_truncated() -> None:
    decoder = FrameDecoder()
    assert decoder.feed(b"GE") == []
    assert decoder.feed(b"T / HTTP/1.1\r\nHost: x\r\n") == []
    with pytest.raises(DecodeError, match="inside the HTTP upgrade at offset 0"):
        decoder.finish()


def test_deflate_params_from_response() -> None:
    header = ("permessage-deflate; client_no_context_takeover; server_max_window_bits=10")
    assert deflate_params_from_response(header, "client") == DeflateParams(True, 15)
    assert deflate_params_from_response(header, "server") == DeflateParams(False, 10)
    assert deflate_params_from_response("x-other", "server") is None
    assert deflate_params_from_response(";;;", "server") is None


@pytest.mark.parametrize("no_context_takeover", [False, True])
def test_deflate_context_takeover_across_messages(no_context_takeover: bool) -> None:
    ext = PerMessageDeflate(False, no_context_takeover, 15, 15)
    data = b"".join(Frame(Opcode.TEXT, b"repeat repeat repeat").serialize(mask=False,
                                                                            extensions=[ext])
                    for _ in range(3))
    records = frames_of(data, deflate=DeflateParams(no_context_takeover, 15))
    assert [r.inflated for r in records] == [b"repeat repeat repeat"] * 3
    assert all(r.problems == [] for r in records)
    if not no_context_takeover:  # later messages refer back to the first one
        assert records[1].length < records[0].length


def test_undecodable_deflate_payload_is_a_problem() -> None:
    r = one(bytes([0xC2, 0x03, 0xFF, 0xFF, 0xFF]), deflate=DeflateParams())
    assert r.problems and r.problems[0].text.startswith("cannot inflate")


# Properties


_PREFIXES = [
    b"",
    b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    b"HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Extensions: permessage-deflate; "
    b"server_no_context_takeover; client_max_window_bits=9\r\n\r\n",
    b"HTTP/1.1 101 x\r\n",
    b"GET ",
]


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(_PREFIXES), st.binary(max_size=300),
       st.sampled_from([None, "client", "server"]), st.integers(min_value=0, max_value=64),
       st.lists(st.integers(min_value=0, max_value=400), max_size=4))
def test_arbitrary_bytes_only_raise_decode_error(prefix: bytes, body: bytes,
                                                 direction: str | None, max_size: int,
                                                 cuts: list[int]) -> None:
    data = prefix + body
    decoder = FrameDecoder(direction=direction, max_buffer_bytes=max_size,  # type: ignore[arg-type]
                           deflate=DeflateParams() if max_size % 2 else None)
    bounds = sorted({0, len(data), *(c for c in cuts if c < len(data))})
    try:
        for start, end in itertools.pairwise(bounds):
            for record in decoder.feed(data[start:end]):
                assert record.offset < len(data)
        decoder.finish()
    except DecodeError as exc:
        assert 0 <= exc.offset <= len(data)


_data_opcodes = st.sampled_from([Opcode.TEXT, Opcode.BINARY])
_control_opcodes = st.sampled_from([Opcode.PING, Opcode.PONG])


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.tuples(_data_opcodes, st.binary(max_size=70_000), st.booleans()),
            st.tuples(_control_opcodes, st.binary(max_size=125), st.just(True)),
        ),
        min_size=1,
        max_size=5,
    ),
    st.booleans(),
    st.booleans(),
)
def test_library_frames_round_trip(specs: list[tuple[Opcode, bytes, bool]], mask: bool,
                                   compress: bool) -> None:
    ext = PerMessageDeflate(False, False, 15, 15)
    built: list[Frame] = []
    wire = b""
    for opcode, payload, fin in specs:
        data = payload.decode("latin-1").encode() if opcode is Opcode.TEXT else payload
        frame = Frame(opcode, data, fin=True)
        del fin
        built.append(frame)
        wire += frame.serialize(mask=mask, extensions=[ext] if compress else None)
    records = frames_of(wire, deflate=DeflateParams() if compress else None)
    assert len(records) == len(built)
    for frame, record in zip(built, records, strict=True):
        assert record.opcode == frame.opcode
        assert record.fin == frame.fin
        assert (record.rsv2, record.rsv3) == (False, False)
        assert record.masked == mask
        assert record.direction == ("client" if mask else "server")
        assert record.data == frame.data
        assert record.problems == []
        if not compress:
            assert record.rsv1 is False
            assert record.payload == frame.data
            assert record.length == len(frame.data)


def _fragments(opcode: Opcode, pieces: list[bytes]) -> list[Frame]:
    frames = [Frame(opcode if i == 0 else Opcode.CONT, piece, fin=i == len(pieces) - 1)
              for i, piece in enumerate(pieces)]
    return frames


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from([Opcode.TEXT, Opcode.BINARY]),
            st.lists(st.text(max_size=300), min_size=1, max_size=4),
            st.one_of(st.none(), st.binary(max_size=125)),  # a ping between fragments
        ),
        min_size=1,
        max_size=4,
    ),
    st.booleans(),
    st.booleans(),
    st.booleans(),
)
def test_fragmented_library_frames_round_trip(
    messages: list[tuple[Opcode, list[str], bytes | None]], mask: bool, compress: bool,
    no_context_takeover: bool,
) -> None:
    ext = PerMessageDeflate(False, no_context_takeover, 15, 15)
    built: list[Frame] = []
    wire = b""
    for opcode, texts, ping in messages:
        frames = _fragments(opcode, [t.encode() for t in texts])
        if ping is not None:
            frames.insert(1, Frame(Opcode.PING, ping))
        for frame in frames:
            built.append(frame)
            wire += frame.serialize(mask=mask, extensions=[ext] if compress else None)
    deflate = DeflateParams(no_context_takeover, 15) if compress else None
    records = frames_of(wire, deflate=deflate)
    assert [(r.opcode, r.fin, r.data) for r in records] == [
        (f.opcode, f.fin, f.data) for f in built]
    assert all(r.problems == [] for r in records)
    finals = [r for r in records if r.opcode == 0 and r.fin]
    expected = [b"".join(t.encode() for t in texts) for _op, texts, _p in messages
                if len(texts) > 1]
    assert [r.reassembled for r in finals] == expected
    for r in records:
        assert r.rsv1 == (compress and r.opcode in (1, 2))
