"""wstool's permessage-deflate policy (RFC 7692), shared by the client and the servers.

* Messages under ``config.COMPRESS_THRESHOLD_BYTES`` go uncompressed (the
  client's ``Session.send_many``, the echo engine's ``raw_below_bytes``).
* What is compressed uses ``config.DEFLATE_SETTINGS`` (zlib level 1).
* Binary messages whose sample does not compress go uncompressed
  (``skip_incompressible_binary``).

RFC 7692 §6.1 lets a sender leave any message uncompressed (RSV1 clear), so
none of this needs the peer's agreement. Kept apart from ``echo.py`` so that a
client does not import the echo engine to use it.
"""

from __future__ import annotations

import zlib

from websockets.extensions.permessage_deflate import (
    ClientPerMessageDeflateFactory,
    PerMessageDeflate,
    ServerPerMessageDeflateFactory,
)
from websockets.frames import Frame, Opcode

from wstool.config import DEFLATE_SETTINGS


def client_factory() -> ClientPerMessageDeflateFactory:
    return ClientPerMessageDeflateFactory(compress_settings=dict(DEFLATE_SETTINGS))


def server_factory() -> ServerPerMessageDeflateFactory:
    return ServerPerMessageDeflateFactory(compress_settings=dict(DEFLATE_SETTINGS))


# A sample this size decides whether a binary message is worth compressing.
_SAMPLE_BYTES = 512


def skip_incompressible_binary(extension: PerMessageDeflate) -> None:
    """Send binary messages that do not compress uncompressed.

    zlib crawls on incompressible data (about 10 MB/s for random bytes against
    1 GB/s for JSON), so `wstool connect -b < file.gz` (and serve-echo's echo
    of it) would be CPU-bound on compression that saves nothing. A level-1
    trial on a small sample costs a few microseconds. Whole messages only
    (neither side fragments what it sends).
    """
    encode = extension.encode

    def selective_encode(frame: Frame) -> Frame:
        if (
            frame.opcode is Opcode.BINARY
            and frame.fin
            and len(frame.data) > 2 * _SAMPLE_BYTES
        ):
            sample = bytes(frame.data[:_SAMPLE_BYTES])
            if len(zlib.compress(sample, 1)) > _SAMPLE_BYTES * 0.9:
                return frame
        return encode(frame)

    extension.encode = selective_encode  # type: ignore[method-assign]
