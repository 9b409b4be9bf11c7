"""pipe.InputSplitter: stdin bytes to messages, on bytes (shared by connect and listen)."""

from __future__ import annotations

import collections

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wstool.errors import WstoolError
from wstool.term.stdin import InputSplitter, TextLines


def split(chunks: list[bytes], *, binary: bool = False, sep: bytes = b"\n") -> list[str | bytes]:
    out: collections.deque[str | bytes] = collections.deque()
    splitter = InputSplitter(binary=binary, separator=sep)
    for chunk in chunks:
        splitter.feed(chunk, out)
    splitter.finish(out)
    return list(out)


def test_lines_across_chunks() -> None:
    assert split([b"al", b"pha\nbe", b"ta\n\ngam", b"ma"]) == ["alpha", "beta", "", "gamma"]
    assert split([b"one\n"]) == ["one"]  # a final separator adds no empty message
    assert split([b"a\0b\nc\0"], sep=b"\0") == ["a", "b\nc"]


def test_binary_chunks_are_messages() -> None:
    assert split([b"\x00\xff", b"\n"], binary=True) == [b"\x00\xff", b"\n"]


def test_invalid_utf8_keeps_the_lines_before_it() -> None:
    out: collections.deque[str | bytes] = collections.deque()
    splitter = InputSplitter(binary=False, separator=b"\n")
    with pytest.raises(WstoolError, match="input line 3 is not valid UTF-8 \\(byte 1\\)"):
        splitter.feed(b"a\nb\nc\xff\nd\n", out)
    assert list(out) == ["a", "b"]


@given(st.lists(st.text(alphabet=st.characters(codec="utf-8",
                                                blacklist_characters="\n")), max_size=20),
       st.lists(st.integers(min_value=0, max_value=200), max_size=10))
def test_any_cutting_gives_the_same_lines(lines: list[str], cuts: list[int]) -> None:
    data = "".join(line + "\n" for line in lines).encode()
    points = sorted({min(c, len(data)) for c in cuts})
    chunks = [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]
    assert split([c for c in chunks if c]) == lines


# text_blocks (issue 14, pipe mode's hot path): a chunk's complete lines as one
# TextLines block, which Session.send_many frames without a str per line.

def test_text_blocks_hold_a_chunks_complete_lines() -> None:
    out: collections.deque[str | bytes] = collections.deque()
    splitter = InputSplitter(binary=False, separator=b"\n", text_blocks=True)
    splitter.feed("a\né\n\nb".encode(), out)
    splitter.feed(b"c\nd", out)
    splitter.finish(out)
    first, second, last = out
    assert isinstance(first, TextLines) and isinstance(second, TextLines)
    assert (first.lines(), first.payloads) == (["a", "é", ""], [b"a", "é".encode(), b""])
    assert (second.lines(), second.payloads) == (["bc"], [b"bc"])
    assert last == "d" and not isinstance(last, TextLines)  # the partial last line: a str
    assert splitter.line_no == 5


def test_text_blocks_with_invalid_utf8_keep_the_lines_before_it() -> None:
    out: collections.deque[str | bytes] = collections.deque()
    splitter = InputSplitter(binary=False, separator=b"\0", text_blocks=True)
    splitter.feed(b"a\0b\0", out)
    with pytest.raises(WstoolError, match="input line 4 is not valid UTF-8 \\(byte 0\\)"):
        splitter.feed(b"c\0\xff\0d\0", out)
    block, c = out
    assert isinstance(block, TextLines) and block.lines() == ["a", "b"]
    assert c == "c"


@pytest.mark.parametrize("first", [1, 1023, 1024, 70_000])
def test_text_blocks_cut_short_and_long_lines_alike(first: int) -> None:
    # Long first lines take the find() loop, short ones split() (LONG_LINE_BYTES).
    lines = [b"a" * first, b"", b"b", b"c" * 2000, b"", "é".encode() * 700]
    block = b"".join(line + b"\n" for line in lines)
    out: collections.deque[str | bytes] = collections.deque()
    InputSplitter(binary=False, separator=b"\n", text_blocks=True).feed(block, out)
    (whole,) = out
    assert isinstance(whole, TextLines) and whole.payloads == lines
    assert whole.lines() == [line.decode() for line in lines]
