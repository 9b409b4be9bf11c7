"""``wstool replay``: send a recording again, compare the replies."""

from __future__ import annotations

from typing import Any

import click

from wstool.cli.app import _Command, _environment, fail, run_async
from wstool.cli.options import (
    connect_config,
    connect_options,
    output_config,
    replay_config,
    replay_options,
    replay_output_options,
    upstream_tls_options,
)
from wstool.errors import REPLAY_EXIT_STATUS_HELP, UsageError, WstoolError


@click.command(cls=_Command, epilog=REPLAY_EXIT_STATUS_HELP)
@click.argument("file", type=click.Path(dir_okay=False))
@click.argument("url", required=False)
@replay_options
@connect_options
@upstream_tls_options
@replay_output_options
def replay(file: str, url: str | None, **raw: Any) -> None:
    """Replay a recording to URL and compare the replies with the recorded ones.

    FILE is a `connect --record`/`--json` log, a REPL /save file, or a browser's
    HAR file. The recorded messages are sent with their original spacing
    (--speed), and what comes back must be what was recorded (--ignore drops
    fields, --unordered ignores the order). URL defaults to the recorded one.
    """
    from wstool.client.recording import load_recording
    from wstool.config import parse_target

    try:
        replay_cfg = replay_config(raw)
        out_cfg = output_config(raw)
        target_url = parse_target(url).url if url else None
        recording, notices = load_recording(file, socket_number=raw["socket_number"],
                                            url=target_url)
        if url is None and recording.url is None:
            raise UsageError(f"{file} records no URL (no open event): give the URL")
        if not raw["subprotocols"] and recording.subprotocol:
            raw = {**raw, "subprotocols": (recording.subprotocol,)}  # as recorded
        conn_cfg = connect_config(url or recording.url or "", raw)
    except WstoolError as exc:
        fail(exc)
    env = _environment(color=out_cfg.color)

    async def main() -> int:
        from wstool.client.replay import run_replay

        return await run_replay(env, recording, conn_cfg, replay_cfg, out_cfg,
                                notices=notices)

    run_async(main, debug=raw["debug"], env=env)
