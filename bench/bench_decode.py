"""Decoding throughput of ``wstool.protocol.frames.FrameDecoder`` (issue 5 targets).

Targets: at least 50 MB/s on a capture of large frames, at least 200 000
frames/s on a capture of small frames. Run: ``python bench/bench_decode.py``.
Figures are printed, never asserted (STYLE.md "Tests").
"""

from __future__ import annotations

import os
import time

from websockets.frames import Frame, Opcode

from wstool.config import DEFAULT_MAX_BUFFER_BYTES
from wstool.protocol.frames import FrameDecoder, FrameRecord
from wstool.term.render import frame_line

CHUNK_BYTES = 1024 * 1024


def build(count: int, size: int, *, mask: bool, text: bool) -> bytes:
    opcode = Opcode.TEXT if text else Opcode.BINARY
    payload = b"x" * size if text else os.urandom(size)
    frame = Frame(opcode, payload).serialize(mask=mask)
    return frame * count


def run(label: str, data: bytes, frames: int, repeat: int = 3,
        max_buffer_bytes: int | None = DEFAULT_MAX_BUFFER_BYTES) -> tuple[float, float]:
    best = float("inf")
    for _ in range(repeat):
        decoder = FrameDecoder(max_buffer_bytes=max_buffer_bytes)
        seen = 0
        start = time.perf_counter()
        for i in range(0, len(data), CHUNK_BYTES):
            seen += len(decoder.feed(data[i : i + CHUNK_BYTES]))
        decoder.finish()
        best = min(best, time.perf_counter() - start)
        assert seen == frames, (seen, frames)
    mb_s = len(data) / best / 1e6
    fps = frames / best
    print(f"{label:<44} {len(data) / 1e6:8.1f} MB {frames:9d} frames "
          f"{mb_s:8.1f} MB/s {fps:11.0f} frames/s")
    return mb_s, fps


def build_mixed(count: int) -> tuple[bytes, int]:
    """Fragmented text with pings in between: the general (non fast) path."""
    unit = (Frame(Opcode.TEXT, b"frag", fin=False).serialize(mask=True)
            + Frame(Opcode.PING, b"p").serialize(mask=True)
            + Frame(Opcode.CONT, b"ment", fin=True).serialize(mask=True))
    return unit * count, 3 * count


def run_render(label: str, data: bytes, frames: int) -> None:
    """Decoding plus the human one-line renderer: what `frame-dump` itself costs."""
    decoder = FrameDecoder()
    start = time.perf_counter()
    lines = 0
    for i in range(0, len(data), CHUNK_BYTES):
        for record in decoder.feed(data[i : i + CHUNK_BYTES]):
            if isinstance(record, FrameRecord):  # no HTTP heads in this input
                frame_line(record)
            lines += 1
    elapsed = time.perf_counter() - start
    assert lines == frames
    print(f"{label:<44} {len(data) / 1e6:8.1f} MB {frames:9d} frames "
          f"{len(data) / elapsed / 1e6:8.1f} MB/s {frames / elapsed:11.0f} frames/s")


def main() -> None:
    small = 500_000
    run("small: 500k masked text frames of 16 B", build(small, 16, mask=True, text=True), small)
    run("small: 500k unmasked binary frames of 16 B",
        build(small, 16, mask=False, text=False), small)
    run("large: 200 masked binary frames of 1 MiB",
        build(200, 1 << 20, mask=True, text=False), 200)
    run("large: 200 masked text frames of 1 MiB", build(200, 1 << 20, mask=True, text=True), 200)
    run("large: 100 unmasked binary frames of 4 MiB",
        build(100, 4 << 20, mask=False, text=False), 100)
    run("large: 1 masked text frame of 256 MiB, streamed",
        build(1, 256 << 20, mask=True, text=True), 1, repeat=1, max_buffer_bytes=1 << 20)
    mixed, mixed_frames = build_mixed(100_000)
    run("mixed: 100k x (TEXT more, PING, CONT fin)", mixed, mixed_frames)
    print("(for information: decoding plus the human line renderer)")
    run_render("render: 200k masked text frames of 16 B",
               build(200_000, 16, mask=True, text=True), 200_000)


if __name__ == "__main__":
    main()
