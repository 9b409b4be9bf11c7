"""CPU time to render REPL messages (issue 13): the pretty-printing renderer that was
the default (render_rich.message_text, pretty_json=True) against the compact one that
is now (message_view, /json compact), and /json pretty and off; plus /find over the
kept messages. Rendering only (Text built and captured to a string by the REPL's kind
of console), no terminal: the per-message cost a burst pays. Runs interleaved, medians.

    .venv/bin/python bench/bench_repl_render.py [--messages N] [--rounds R]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

from rich.console import Console
from rich.text import Text

from wstool.events import Message
from wstool.term.message_view import JSON_MODES, JsonMode, MessageView
from wstool.term.render_rich import ViewOptions
from wstool.term.render_rich import message_text as old_message_text


def sample_messages(count: int) -> list[Message]:
    """Small JSON ticks (one line in 100 columns), as a market feed sends them."""
    return [Message("received", json.dumps({"type": "tick", "seq": i, "price": 101.25 + i,
                                            "side": "buy" if i % 2 else "sell"}))
            for i in range(count)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    messages = sample_messages(args.messages)
    console = Console(force_terminal=True, color_system="256", highlight=False, markup=False,
                      emoji=False, soft_wrap=True, width=100)

    def render(text: Text) -> str:
        with console.capture() as capture:
            console.print(text)
        return capture.get()

    def old_pretty() -> None:
        view = ViewOptions(width=100)
        for m in messages:
            render(old_message_text(m, view))

    def new(mode: JsonMode) -> Callable[[], None]:
        def run() -> None:
            mv = MessageView(ViewOptions(width=100), mode)
            for m in messages:
                text = mv.add(m)
                assert text is not None
                render(text)
        return run

    kept = MessageView(ViewOptions(width=100))
    for m in messages:
        kept.add(m)

    def find() -> None:
        lines, _summary = kept.find('"seq": 1')
        for line in lines:
            render(line)

    cases: dict[str, Callable[[], None]] = {
        "before: pretty (old default)": old_pretty,
        "now: /json compact (default)": new("compact"),
        "now: /json pretty": new("pretty"),
        "now: /json off": new("off"),
    }
    times: dict[str, list[float]] = {name: [] for name in cases}
    find_times: list[float] = []
    for _ in range(args.rounds):
        for name, case in cases.items():  # interleaved
            start = time.process_time()
            case()
            times[name].append(time.process_time() - start)
        start = time.process_time()
        find()
        find_times.append(time.process_time() - start)
    print(f"{args.messages} messages, {args.rounds} rounds, median CPU time per message")
    print("| renderer | µs/message | rows on screen |")
    print("|---|---|---|")
    first = messages[0]
    rows = {
        "before: pretty (old default)": render(old_message_text(first, ViewOptions(width=100))),
        **{name: render(MessageView(ViewOptions(width=100), mode).add(first) or Text())
           for name, mode in zip(list(cases)[1:], JSON_MODES, strict=True)},
    }
    for name, samples in times.items():
        per = statistics.median(samples) / args.messages * 1e6
        print(f"| {name} | {per:.1f} | {rows[name].count(chr(10))} |")
    print(f"/find over {args.messages} kept messages (50 lines printed): "
          f"{statistics.median(find_times) * 1000:.1f} ms")


if __name__ == "__main__":
    main()
