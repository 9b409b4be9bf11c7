"""The one colour palette: which colour means what, for every front-end.

rich style strings, by the role in the stable vocabulary (``>`` sent, ``<``
received, ``=`` state, ``!`` error). The REPL (``render_rich.py``) and
``frame-dump`` (``dump/frontend.py``) both read it, so ``>`` is green and ``<``
cyan everywhere; frame-dump's ``>`` is the client's direction, which for the
REPL's user is "sent". No rich import here: frame-dump loads rich only when it
colours a terminal.
"""

from __future__ import annotations

from typing import NamedTuple


class Palette(NamedTuple):
    sent: str  # ``>``
    received: str  # ``<``
    state: str  # ``=``: connection state, reassembled messages in frame-dump
    error: str  # ``!``
    dim: str  # secondary text: sizes, folds, timestamps, help


PALETTE = Palette(
    sent="bold green",
    received="bold cyan",
    state="yellow",
    error="bold red",
    dim="dim",
)

# A line's style by its first character (frame-dump colours whole lines).
MARKER_STYLES: dict[str, str] = {
    ">": PALETTE.sent,
    "<": PALETTE.received,
    "=": PALETTE.state,
    "!": PALETTE.error,
    " ": PALETTE.dim,
}
