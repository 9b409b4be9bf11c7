"""``wstool run``: the scenarios of a TOML file."""

from __future__ import annotations

import click

from wstool.cli.app import _Command, _environment, fail, run_async
from wstool.cli.options import RUN_JSON_EVENTS, json_option_help
from wstool.errors import WstoolError

RUN_EXIT_STATUS_HELP = """\
Exit status: 0 every step of every scenario passed; 8 a step failed (or a scenario
could not connect); 1 FILE cannot be read or --junit FILE written; 2 usage, or a mistake in FILE
(with its line for TOML syntax)."""


@click.command(cls=_Command, name="run", epilog=RUN_EXIT_STATUS_HELP)
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--only", metavar="NAME", help="Run only the scenario named NAME.")
@click.option("--junit", "junit_path", type=click.Path(dir_okay=False), metavar="FILE",
              help="Also write the results as JUnit XML to FILE (CI test reports).")
@click.option("--json", "json_output", is_flag=True,
              help=json_option_help(RUN_JSON_EVENTS))
@click.option("--color/--no-color", default=None, help="Force colour (and the ✓/✗ marks).")
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
def run_cmd(file: str, only: str | None, junit_path: str | None, json_output: bool,
            color: bool | None, debug: bool) -> None:
    """Run the scenarios of a TOML FILE: connect, send, expect, capture, ping, close.

    Each [[scenario]] runs on a fresh connection, its steps in order; one line per
    step, then a summary. The format is in README "Scenario files"; a complete
    example is examples/chat.toml (try it against `wstool serve-echo`).
    """
    from wstool.cli.scenario_file import load_scenarios

    env = _environment(color=color)
    try:
        scenarios = load_scenarios(file, env.environ, only)
    except WstoolError as exc:
        fail(exc)

    async def main() -> int:
        from wstool.client.scenario import run_scenarios

        return await run_scenarios(env, file, scenarios, json=json_output,
                                   junit_path=junit_path)

    run_async(main, debug=debug, env=env)
