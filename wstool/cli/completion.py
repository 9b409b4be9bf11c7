"""Shell completion scripts, generated from the Click tree by click's shell_completion.

Part of the CLI edge (it imports click). `wstool completion SHELL` prints a script;
`python -m wstool.cli.completion` rewrites completions/wstool.{bash,zsh,fish} from the
same function, and tests/test_completions.py fails when the committed files drift.

The scripts are click's: at each TAB they run `wstool` with _WSTOOL_COMPLETE set
(bash_complete, zsh_complete or fish_complete) and COMP_WORDS/COMP_CWORD, and
wstool answers from its live command tree, so new options complete without
regenerating anything.
"""

from __future__ import annotations

import sys
from pathlib import Path

PROG_NAME = "wstool"
COMPLETE_VAR = "_WSTOOL_COMPLETE"
SHELLS = ("bash", "zsh", "fish")
COMPLETIONS_DIR = Path(__file__).resolve().parents[2] / "completions"

_HEADER = (
    "# wstool {shell} completion, generated from the Click tree by `wstool completion {shell}`\n"
    "# (or `python -m wstool.cli.completion`); do not edit. Install: README, Shell completion.\n"
)


# click 8.4's fish script is broken: its template has a literal newline inside
# `string split` and iterates over response lines one at a time, while its
# fish_complete answers with three lines per item (type, value, help). fish 3.6
# completes nothing with it. WstoolFishComplete owns both sides: the answer
# (three lines per item, newlines escaped, "_" for no help, as click 8.4 does)
# and a script that reads it three lines at a time.
_SOURCE_FISH = """\
function %(complete_func)s;
    set -l response (env %(complete_var)s=fish_complete COMP_WORDS=(commandline -cp) \
COMP_CWORD=(commandline -t) %(prog_name)s);

    for i in (seq 1 3 (count $response));
        set -l kind $response[$i];
        set -l value $response[(math $i + 1)];
        set -l help $response[(math $i + 2)];
        if test "$kind" = dir;
            __fish_complete_directories $value;
        else if test "$kind" = file;
            __fish_complete_path $value;
        else if test "$kind" = plain;
            if test "$help" != _;
                printf '%%s\\t%%s\\n' $value $help;
            else;
                printf '%%s\\n' $value;
            end;
        end;
    end;
end;

complete --no-files --command %(prog_name)s --arguments "(%(complete_func)s)";
"""


def register_completion_classes() -> None:
    """Make click use WstoolFishComplete for `fish`: call before `cli()` completes."""
    from click.shell_completion import CompletionItem, FishComplete, add_completion_class

    class WstoolFishComplete(FishComplete):
        source_template = _SOURCE_FISH

        def format_completion(self, item: CompletionItem) -> str:
            value = item.value.replace("\n", r"\n")
            help_ = (item.help or "_").replace("\n", r"\n")
            return f"{item.type}\n{value}\n{help_}"

    add_completion_class(WstoolFishComplete, "fish")


def completion_script(shell: str) -> str:
    """The completion script for `shell` (bash, zsh or fish), ending in a newline."""
    from click.shell_completion import get_completion_class

    from wstool.cli.app import cli

    if shell not in SHELLS:
        raise ValueError(f"unsupported shell {shell!r}: choose one of {', '.join(SHELLS)}")
    register_completion_classes()
    completion_class = get_completion_class(shell)
    assert completion_class is not None  # click ships all three
    source = completion_class(cli, {}, PROG_NAME, COMPLETE_VAR).source()
    source = source.rstrip("\n") + "\n"
    header = _HEADER.format(shell=shell)
    if source.startswith("#compdef"):
        # zsh autoloads a file from $fpath only if `#compdef` is its first line.
        first, _, rest = source.partition("\n")
        return f"{first}\n{header}{rest}"
    return header + source


def completion_path(shell: str, directory: Path = COMPLETIONS_DIR) -> Path:
    return directory / f"{PROG_NAME}.{shell}"


def write_completion_files(directory: Path = COMPLETIONS_DIR) -> list[Path]:
    """Regenerate completions/wstool.{bash,zsh,fish}; return the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for shell in SHELLS:
        path = completion_path(shell, directory)
        path.write_text(completion_script(shell), encoding="utf-8")
        written.append(path)
    return written


def _main(argv: list[str]) -> int:
    directory = Path(argv[0]) if argv else COMPLETIONS_DIR
    for path in write_completion_files(directory):
        sys.stdout.write(f"wrote {path}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))
