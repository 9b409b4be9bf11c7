"""man pages, generated from the Click tree as the completion scripts are (issue 13).

Part of the CLI edge (it walks click's commands and params). A small roff writer of
our own rather than PyPI click-man: what it needs is ~100 lines (NAME, SYNOPSIS,
DESCRIPTION, OPTIONS, EXIT STATUS, SEE ALSO from each command's help, params and
epilog), it follows wstool's own help classes (``full_epilog``: listen's REPL
commands), and it adds no dependency; the output has no date or version in it, so
the committed pages change only when the CLI does.

``python -m wstool.cli.manpages [DIR]`` rewrites man/wstool.1 and
man/wstool-COMMAND.1; tests/test_manpages.py fails when the committed files drift.
"""

from __future__ import annotations

import inspect
import sys
from pathlib import Path

import click

PROG_NAME = "wstool"
MAN_DIR = Path(__file__).resolve().parents[2] / "man"

_HEADER = (
    '.\\" Generated from the Click tree by `python -m wstool.cli.manpages`; do not edit.\n'
)


def _escape(text: str) -> str:
    """Text for roff: backslashes doubled, hyphens literal, no line read as a request."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return "\n".join(f"\\&{line}" if line.startswith((".", "'")) else line
                     for line in text.split("\n"))


def _paragraphs(text: str) -> list[str]:
    """click's help text -> roff: a ``\\b`` paragraph stays as written, others flow."""
    out = []
    for paragraph in inspect.cleandoc(text).split("\n\n"):
        if paragraph.startswith("\b\n"):
            out.append(".PP\n.nf\n" + _escape(paragraph[2:]) + "\n.fi")
        elif paragraph.strip():
            out.append(".PP\n" + _escape(" ".join(paragraph.split())))
    return out


def _epilog(command: click.Command) -> str:
    full_epilog = getattr(command, "full_epilog", None)
    return str(full_epilog()) if callable(full_epilog) else command.epilog or ""


def _first_line(command: click.Command) -> str:
    return command.get_short_help_str(limit=1000).rstrip(".")


def _page(command: click.Command, name: str, ctx: click.Context,
          siblings: list[str]) -> str:
    title = name.replace(" ", "-")
    lines = [_HEADER.rstrip("\n"),
             f'.TH "{title.upper()}" "1" "" "{PROG_NAME}" "User Commands"',
             ".SH NAME", f"{_escape(title)} \\- {_escape(_first_line(command))}",
             ".SH SYNOPSIS",
             f".B {_escape(name)}\n" + _escape(" ".join(command.collect_usage_pieces(ctx)))]
    lines.append(".SH DESCRIPTION")
    lines += _paragraphs(command.help or "")
    exit_status: list[str] = []
    for paragraph in inspect.cleandoc(_epilog(command)).split("\n\n"):
        target = exit_status if paragraph.startswith("Exit status") else lines
        target += _paragraphs(paragraph)
    if isinstance(command, click.Group):
        lines.append(".SH COMMANDS")
        for sub_name, sub in sorted(command.commands.items()):
            lines += [".TP", f"\\fB{_escape(sub_name)}\\fR",
                      f"{_escape(_first_line(sub))}; see \\fB{PROG_NAME}\\-{_escape(sub_name)}"
                      "\\fR(1)."]
    records = [r for r in (p.get_help_record(ctx) for p in command.get_params(ctx)) if r]
    if records:
        lines.append(".SH OPTIONS")
        for opts, help_text in records:
            lines += [".TP", f"\\fB{_escape(opts)}\\fR", _escape(help_text)]
    if exit_status:
        lines.append(".SH EXIT STATUS")
        lines += exit_status
    lines.append(".SH SEE ALSO")
    lines.append(",\n".join(f"\\fB{_escape(s)}\\fR(1)" for s in siblings if s != title))
    return "\n".join(lines) + "\n"


def man_pages() -> dict[str, str]:
    """File name -> roff text: wstool.1 and one wstool-COMMAND.1 per subcommand."""
    from wstool.cli.app import cli

    names = sorted(cli.commands)
    siblings = [PROG_NAME, *(f"{PROG_NAME}-{n}" for n in names)]
    # With the group's context settings, as a run has them: -h is the help option
    # (click caches each command's help option from the first context it sees).
    root_ctx = click.Context(cli, info_name=PROG_NAME, **cli.context_settings)
    pages = {f"{PROG_NAME}.1": _page(cli, PROG_NAME, root_ctx, siblings)}
    for name in names:
        command = cli.commands[name]
        ctx = click.Context(command, info_name=name, parent=root_ctx)
        pages[f"{PROG_NAME}-{name}.1"] = _page(command, f"{PROG_NAME} {name}", ctx, siblings)
    return pages


def write_man_pages(directory: Path = MAN_DIR) -> list[Path]:
    """Rewrite DIRECTORY's pages (removing stale wstool*.1); return the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    pages = man_pages()
    for stale in directory.glob(f"{PROG_NAME}*.1"):
        if stale.name not in pages:
            stale.unlink()
    written = []
    for file_name, text in pages.items():
        path = directory / file_name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def _main(argv: list[str]) -> int:
    for path in write_man_pages(Path(argv[0]) if argv else MAN_DIR):
        sys.stdout.write(f"wrote {path}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))
