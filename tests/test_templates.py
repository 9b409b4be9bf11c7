"""wstool/templates.py: every placeholder, and the errors before connecting (issue 11)."""

from __future__ import annotations

import random
import re
import time
import uuid
from pathlib import Path

import pytest

from wstool.errors import UsageError
from wstool.templates import Renderer, check_capture_name, compile_template, now_iso


def render(text: str, **kwargs: object) -> str:
    return Renderer().render(compile_template(text, **kwargs))  # type: ignore[arg-type]


def test_literal_text_is_unchanged() -> None:
    assert render('{"a": {"b": 1}}') == '{"a": {"b": 1}}'
    assert render("") == ""


def test_uuid_is_a_new_version_4_uuid_each_time() -> None:
    renderer = Renderer()
    template = compile_template("{{uuid}}")
    first, second = renderer.render(template), renderer.render(template)
    assert uuid.UUID(first).version == 4 and first != second


def test_seq_counts_messages_and_is_shared_within_one() -> None:
    renderer = Renderer()
    template = compile_template("{{seq}}-{{ seq }}")
    assert [renderer.render(template) for _ in range(3)] == ["1-1", "2-2", "3-3"]


def test_now_ms_and_now_iso() -> None:
    before = time.time_ns() // 1_000_000
    value = int(render("{{now_ms}}"))
    assert before <= value <= time.time_ns() // 1_000_000
    assert now_iso(1_700_000_000_123_456_789) == "2023-11-14T22:13:20.123Z"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", render("{{now_iso}}"))


def test_env() -> None:
    assert render("x{{env:TOKEN}}y", environ={"TOKEN": "abc"}) == "xabcy"
    with pytest.raises(UsageError, match="the environment variable NOPE is not set"):
        compile_template("{{env:NOPE}}", environ={})


def test_file(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("secret\n")
    assert render(f"[{{{{file:{path}}}}}]") == "[secret]"
    with pytest.raises(UsageError, match="cannot read"):
        compile_template(f"{{{{file:{tmp_path / 'missing'}}}}}")


def test_random() -> None:
    renderer = Renderer(rng=random.Random(1))
    value = renderer.render(compile_template("{{random:12}}"))
    assert re.fullmatch(r"[A-Za-z0-9]{12}", value)
    for bad in ("{{random:0}}", "{{random:x}}", "{{random:99999}}"):
        with pytest.raises(UsageError, match="N must be 1 to 4096"):
            compile_template(bad)


def test_captures_are_known_only_when_declared_before() -> None:
    template = compile_template("t={{token}}", captures=["token"])
    renderer = Renderer()
    assert renderer.missing(template) == {"token"}
    renderer.captured["token"] = "abc"
    assert renderer.missing(template) == frozenset()
    assert renderer.render(template) == "t=abc"
    with pytest.raises(UsageError, match=r"unknown placeholder \{\{token\}\}"):
        compile_template("{{token}}", where="-x")


def test_unknown_placeholder_names_where_and_what_is_known() -> None:
    with pytest.raises(UsageError, match=r"^-x 'a': unknown placeholder \{\{nope\}\} \(known: "
                                         r"uuid, seq"):
        compile_template("{{nope}}", where="-x 'a'")


def test_capture_names() -> None:
    assert check_capture_name("token_2") == "token_2"
    for bad in ("2x", "a-b", "", "seq", "uuid"):
        with pytest.raises(UsageError):
            check_capture_name(bad)
