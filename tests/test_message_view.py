"""The REPL's message display (wstool/term/message_view.py): numbering, compact and
pretty JSON, the bound on kept messages, /find, /filter, /pause; pure, on records.
And the status bar's new segments through tests/test_repl.py's pipe-input harness."""

from __future__ import annotations

import re

import pytest
from rich.console import Console
from rich.text import Text

from tests.conftest import async_test, until
from tests.test_repl import ENTER, echo, repl_on, server
from wstool.client.repl import filter_matcher
from wstool.events import Message
from wstool.term.commands import KEPT_MESSAGES, RESUME_SHOW_MAX
from wstool.term.message_view import (
    STYLE_MATCH,
    Kept,
    MessageFilter,
    MessageLog,
    MessageView,
    find_text,
    message_text,
    regex_filter,
)
from wstool.term.render_rich import ViewOptions


def plain(text: Text | None) -> str:
    assert text is not None
    console = Console(width=200, no_color=True, soft_wrap=True)
    with console.capture() as capture:
        console.print(text)
    return capture.get()


def received(data: str | bytes) -> Message:
    return Message("received", data)


def test_log_numbers_and_bounds() -> None:
    log = MessageLog(maxlen=3)
    for i in range(5):
        log.add(received(f"m{i}"))
    assert len(log) == 3
    assert log.get(2) is None  # gone: only the last 3 are kept
    kept = log.get(5)
    assert kept is not None and kept.event.data == "m4"
    assert log.kept_range() == "#3-#5 are kept"
    log.add(Message("sent", "s"))
    last = log.last_received()
    assert last is not None and last.number == 5
    assert KEPT_MESSAGES == 10_000  # /help quotes it


def test_compact_one_line_when_it_fits_else_pretty() -> None:
    view = ViewOptions(width=40)
    short = Kept(7, received('{"a":1,"b":[true,null]}'))
    text = message_text(short, view, "compact")
    assert plain(text) == '#7 < {"a":1,"b":[true,null]}\n'  # as received
    assert any(span.style == "json.key" for span in text.spans)  # highlighted
    # A server's multi-line JSON is put on one line when that fits.
    multi = Kept(8, received('{\n  "a": 1\n}'))
    assert plain(message_text(multi, view, "compact")) == '#8 < {"a": 1}\n'
    wide = Kept(9, received('{"a": "' + "x" * 40 + '"}'))
    assert plain(message_text(wide, view, "compact")) == (
        '#9 < {\n       "a": "' + "x" * 40 + '"\n     }\n')
    # Not JSON: as it is, not highlighted.
    text = message_text(Kept(10, received("[not json")), view, "compact")
    assert plain(text) == "#10 < [not json\n"
    assert not any(span.style.startswith("json") for span in text.spans if
                   isinstance(span.style, str))


def test_pretty_and_off_modes() -> None:
    view = ViewOptions(width=80)
    kept = Kept(1, Message("sent", '{"a":1}'))
    assert plain(message_text(kept, view, "pretty")) == '#1 > {\n       "a": 1\n     }\n'
    off = message_text(kept, view, "off")
    assert plain(off) == '#1 > {"a":1}\n'
    assert not any(str(span.style).startswith("json") for span in off.spans)


def test_timestamps_and_label_in_the_prefix() -> None:
    view = ViewOptions(width=80, timestamps=True)
    kept = Kept(3, Message("received", '{"a":1}', ts=1.0), label="[c1]")
    lines = plain(message_text(kept, view, "pretty")).splitlines()
    assert lines[0].startswith("[c1] ") and lines[0].endswith(" #3 < {")
    # "[c1] HH:MM:SS.mmm #3 < " then the JSON's own indent.
    assert lines[1] == " " * (5 + 13 + 5) + '  "a": 1'


def test_fold_names_show_and_whole_does_not_fold() -> None:
    view = ViewOptions(width=80, max_lines=5)
    kept = Kept(12, received("\n".join(f"line {i}" for i in range(50))))
    folded = plain(message_text(kept, view, "compact"))
    assert "… folded (/show 12 prints it whole)" in folded
    assert "line 49" not in folded
    whole = plain(message_text(kept, view, "compact", whole=True))
    assert "line 49" in whole and "folded" not in whole
    binary = Kept(13, received(bytes(range(256))))
    assert "/show 13 prints it whole" in plain(message_text(binary, view, "compact"))
    assert "folded" not in plain(message_text(binary, view, "compact", whole=True))


def test_remote_text_is_escaped() -> None:
    view = ViewOptions(width=80)
    out = plain(message_text(Kept(1, received('{"a":"\x1b[2J"}')), view, "compact"))
    assert "\x1b" not in out and "\\e[2J" in out
    found = find_text(Kept(1, received("x\x1b]0;t\x07 x")), "x", view)
    assert "\x1b" not in plain(found) and "\x07" not in plain(found)


def test_find_highlights_every_match_case_insensitively() -> None:
    view = ViewOptions(width=80)
    text = find_text(Kept(4, received("Apple and apple\nand APPLE")), "apple", view)
    assert text is not None
    assert plain(text) == "#4 < Apple and apple\\nand APPLE\n"
    matches = [text.plain[s.start:s.end] for s in text.spans if s.style == STYLE_MATCH]
    assert matches == ["Apple", "apple", "APPLE"]
    assert find_text(Kept(4, received("pear")), "apple", view) is None
    assert find_text(Kept(4, received(b"apple")), "apple", view) is None  # binary: not searched


def test_find_cuts_a_long_message_around_the_first_match() -> None:
    view = ViewOptions(width=60)
    text = find_text(Kept(1, received("x" * 500 + "needle" + "y" * 500)), "needle", view)
    shown = plain(text).rstrip("\n")
    assert len(shown) <= 60
    assert shown.startswith("#1 < …") and shown.endswith("…")
    assert "needle" in shown


def test_find_summary_and_bound() -> None:
    view = MessageView(ViewOptions(width=80))
    for i in range(80):
        view.add(received(f"hit {i}"))
    view.add(received(b"hit"))
    lines, summary = view.find("HIT")
    assert len(lines) == 50 and plain(lines[-1]).startswith("#80 < hit 79")
    assert summary == ("80 of 81 kept messages contain 'HIT' (binary messages are not "
                       "searched); the last 50 shown")
    assert view.find("nope") == ([], "no kept message contains 'nope' (#1-#81 are kept)")


def test_filter_hides_incoming_only_and_counts() -> None:
    view = MessageView(ViewOptions(width=80))
    view.set_filter(MessageFilter("^keep", regex_filter("^keep")))
    assert view.add(received("keep 1")) is not None
    assert view.add(received("drop")) is None
    assert view.add(Message("sent", "drop too")) is not None  # sent: always shown
    assert view.add(received(b"\x00")) is None  # a regex never matches binary
    assert view.status_segments() == ["filter: 2 hidden"]
    kept = view.lookup(2)
    assert isinstance(kept, Kept) and kept.event.data == "drop"  # still kept, /show-able
    view.set_filter(None)
    assert view.status_segments() == []


def test_regex_filter_errors() -> None:
    with pytest.raises(ValueError, match="invalid regular expression '\\['"):
        regex_filter("[")
    with pytest.raises(ValueError, match="json: filters are not available here"):
        regex_filter("json:.a")


def test_connect_filter_reuses_the_expect_matcher() -> None:
    pytest.importorskip("jq", reason="json: patterns need the jq extra")
    match = filter_matcher('json:.type == "trade"')
    assert match('{"type": "trade"}')
    assert not match('{"type": "quote"}')
    assert not match("not json")
    assert not match(b"\x00")
    assert filter_matcher("^tick")("tick 3")
    with pytest.raises(ValueError, match=re.escape("/filter 'json:.[': invalid jq expression")):
        filter_matcher("json:.[")


def test_pause_holds_incoming_and_resume_shows_them_bounded() -> None:
    view = MessageView(ViewOptions(width=80))
    view.add(received("before"))
    assert view.pause()
    assert not view.pause()  # already paused
    assert view.add(Message("sent", "typed")) is not None  # what you send still shows
    for i in range(RESUME_SHOW_MAX + 20):
        assert view.add(received(f"r{i}")) is None
    assert view.status_segments() == [f"paused: {RESUME_SHOW_MAX + 20} new"]
    resumed = view.resume()
    assert resumed is not None
    texts, summary = resumed
    assert len(texts) == RESUME_SHOW_MAX
    assert plain(texts[0]).startswith("#23 < r20")  # the last ones
    assert summary == ("display resumed: 120 messages arrived while paused; 20 not printed "
                       "(the first ones; /show N prints a kept one)")
    assert view.resume() is None
    assert view.add(received("after")) is not None


def test_resume_through_the_filter_and_past_the_kept_bound() -> None:
    view = MessageView(ViewOptions(width=80), keep=5)
    view.set_filter(MessageFilter("^k", regex_filter("^k")))
    view.pause()
    for text in ("k1", "d1", "d2", "k2", "d3", "k3", "k4"):
        view.add(received(text))
    resumed = view.resume()
    assert resumed is not None
    texts, summary = resumed
    # k1 and d1 are no longer kept (5 kept); of the rest d2 and d3 are filtered out.
    assert [plain(t).split()[-1] for t in texts] == ["k2", "k3", "k4"]
    assert summary == ("display resumed: 7 messages arrived while paused; 2 not printed "
                       "(the first ones; /show N prints a kept one); 2 hidden by the filter")
    assert view.status_segments() == ["filter: 2 hidden"]


@async_test
async def test_status_bar_counts_hidden_and_paused() -> None:
    async with server(echo) as (url, _peer), repl_on(url) as d:
        await d.open()

        def bar() -> str:
            return "".join(text for _style, text, *_ in d.repl._toolbar())

        d.type("/filter ^k" + ENTER)
        d.type("drop" + ENTER)
        d.type("keep" + ENTER)
        await d.see("#4 < keep")
        assert "│ filter: 1 hidden" in bar()
        d.type("/pause" + ENTER)
        d.type("kk" + ENTER)
        await d.see("#5 > kk")
        await until(lambda: "paused: 1 new" in bar(), "the paused count")
        assert "│ filter: 1 hidden │ paused: 1 new" in bar()
        d.type("/resume" + ENTER)
        await d.see("#6 < kk")
        assert "paused" not in bar()
