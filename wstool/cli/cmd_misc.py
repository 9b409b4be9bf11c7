"""``wstool profiles`` and ``wstool completion``."""

from __future__ import annotations

import click

from wstool.cli.app import _CONFIG, _Command, _environ
from wstool.config import config_path


@click.command(cls=_Command, name="profiles")
@click.pass_context
def profiles_cmd(ctx: click.Context) -> None:
    """List the profiles of the config file: NAME and URL, for `wstool connect @NAME`.

    The file is $XDG_CONFIG_HOME/wstool/config.toml (~/.config/wstool/config.toml);
    its format is in README "Profiles and defaults".
    """
    config = ctx.meta.get(_CONFIG)
    if config is None:
        click.echo(f"wstool: no config file at {config_path(_environ())}", err=True)
        return
    if not config.profiles:
        click.echo(f"wstool: no [profile.NAME] tables in {config.path}", err=True)
        return
    width = max(len(name) for name in config.profiles) + 1
    for name, profile in config.profiles.items():
        # The URL as written: a ${env:NAME} in it is not expanded (nor shown).
        click.echo(f"@{name:<{width}} {profile.get('url', '(no url)')}")


@click.command(cls=_Command, name="completion")
@click.argument("shell", metavar="SHELL", type=click.Choice(["bash", "zsh", "fish"]))
def completion_cmd(shell: str) -> None:
    """Print the shell completion script for SHELL (bash, zsh or fish).

    \b
    bash:  wstool completion bash > ~/.local/share/bash-completion/completions/wstool
    zsh:   mkdir -p ~/.zfunc && wstool completion zsh > ~/.zfunc/_wstool
           ...and in ~/.zshrc, before compinit:  fpath=(~/.zfunc $fpath)
    fish:  wstool completion fish > ~/.config/fish/completions/wstool.fish
    """
    from wstool.cli.completion import completion_script

    click.echo(completion_script(shell), nl=False)
