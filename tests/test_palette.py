"""term/palette.py: one palette, read by the REPL's renderer and by frame-dump."""

from __future__ import annotations

import io

import pytest

from wstool.dump import frontend
from wstool.dump.frontend import DumpConfig, FrameWriter
from wstool.events import Message
from wstool.term import palette, render_rich
from wstool.term.env import Environment
from wstool.term.palette import PALETTE
from wstool.term.render_rich import ViewOptions, message_text


def test_both_renderers_read_the_same_palette() -> None:
    # The same objects, not equal copies (vars(): mypy wants no implicit re-export).
    assert vars(frontend)["MARKER_STYLES"] is palette.MARKER_STYLES
    assert vars(render_rich)["PALETTE"] is PALETTE
    repl_styles = (render_rich.STYLE_SENT, render_rich.STYLE_RECEIVED, render_rich.STYLE_STATE,
                   render_rich.STYLE_ERROR, render_rich.STYLE_DIM)
    assert repl_styles == tuple(PALETTE)
    assert palette.MARKER_STYLES[">"] == PALETTE.sent
    assert palette.MARKER_STYLES["<"] == PALETTE.received


def test_sent_and_received_are_the_same_colour_in_the_repl_and_frame_dump(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TERM", "xterm")
    monkeypatch.delenv("COLORTERM", raising=False)
    view = ViewOptions()
    sent = message_text(Message("sent", "hi"), view)
    received = message_text(Message("received", "hi"), view)
    assert sent.spans[0].style == PALETTE.sent
    assert received.spans[0].style == PALETTE.received

    out = io.BytesIO()
    env = Environment(io.BytesIO(), out, io.StringIO(), stdout_isatty=True, color=True)
    writer = FrameWriter(env, DumpConfig())
    writer.write_lines(["> TEXT fin 2 B", "< TEXT fin 2 B"])
    text = out.getvalue().decode()
    # rich's SGR for "bold green" / "bold cyan" on a standard terminal.
    assert "\x1b[1;32m> TEXT fin 2 B" in text
    assert "\x1b[1;36m< TEXT fin 2 B" in text
