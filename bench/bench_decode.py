"""Decoding throughput of ``wstool.frames.FrameDecoder`` (issue 5 targets).

Targets: at least 50 MB/s on a capture of large frames, at least 200 000
frames/s on a capture of small frames. Run: ``python bench/bench_decode.py``.
Figures are printed, never asserted (STYLE.md "Tests").
"""

from __future__ import annotations

import os
import time

from websockets.frames import Frame, Opcode

from wstool.frames import FrameDecoder

CHUNK_BYTES = 1024 * 1024


def build(count: int, size: int, *, mask: bool, text: bool) -> bytes:
    opcode = Opcode.TEXT if text else Opcode.BINARY
    payload = b"x" * size if text else os.urandom(size)
    frame = Frame(opcode, payload).serialize(mask=mask)
    return frame * count


def run(label: str, data: bytes, frames: int, repeat: int = 3) -> tuple[float, float]:
    best = float("inf")
    for _ in range(repeat):
        decoder = FrameDecoder()
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


if __name__ == "__main__":
    main()
