"""deflate.py: which messages get compressed (RFC 7692 §6.1 lets the sender choose)."""

from __future__ import annotations

import os

from websockets.extensions.permessage_deflate import PerMessageDeflate
from websockets.frames import Frame, Opcode

from wstool.protocol.deflate import skip_incompressible_binary


def extension() -> PerMessageDeflate:
    ext = PerMessageDeflate(False, False, 15, 15, {"level": 1, "memLevel": 5})
    skip_incompressible_binary(ext)
    return ext


def test_incompressible_binary_is_left_alone() -> None:
    data = os.urandom(4096)
    frame = extension().encode(Frame(Opcode.BINARY, data))
    assert not frame.rsv1 and frame.data == data


def test_compressible_binary_and_all_text_are_compressed() -> None:
    ext = extension()
    binary = ext.encode(Frame(Opcode.BINARY, bytes(4096)))
    assert binary.rsv1 and len(binary.data) < 100
    # Text is never skipped by this rule (random-looking text still compresses
    # through the library as before).
    text = ext.encode(Frame(Opcode.TEXT, os.urandom(2048).hex().encode()))
    assert text.rsv1


def test_small_and_fragmented_binary_go_through_the_library() -> None:
    ext = extension()
    assert ext.encode(Frame(Opcode.BINARY, os.urandom(1000))).rsv1  # under 2 samples
    assert ext.encode(Frame(Opcode.BINARY, os.urandom(4096), fin=False)).rsv1


def test_skipping_keeps_the_compressor_in_step() -> None:
    # With context takeover, a skipped message must not disturb later ones: the
    # peer's decoder only ever sees the compressed messages.
    from websockets.extensions.permessage_deflate import PerMessageDeflate as Decoder

    ext = extension()
    peer = Decoder(False, False, 15, 15)
    for data in (bytes(4096), os.urandom(4096), b"again " * 1000):
        frame = ext.encode(Frame(Opcode.BINARY, data))
        assert peer.decode(frame).data == data
