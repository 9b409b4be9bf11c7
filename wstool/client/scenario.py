"""``wstool run FILE``: scenario files, steps over fresh client runs (issue 11).

The file is parsed at the CLI edge (``cli/scenario_file.py``) into the records
below; this module runs them. Each scenario gets its own connection (a
:class:`~wstool.client.run.ClientRun` with no input source, driven push-style as
the REPL drives one) and its own template renderer; its steps run in order and
the first that fails ends the scenario (the connection is then closed with 1000).

Output, one line per step, then a summary: ``ok``/``FAIL`` when stdout is not a
terminal or NO_COLOR is set (greppable CI logs), ``✓``/``✗`` on a colour
terminal; ``--json`` writes ``step`` and ``summary`` events instead; ``--junit``
writes one test case per scenario. Exit status 0 when every step passed, else 8.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from typing import Any, NamedTuple

from wstool.client.expect import Inbox, Matcher, not_met_error, seconds_text
from wstool.client.run import ClientFrontEnd, ClientRun, NotOpen
from wstool.config import ClientRunConfig, ConnectConfig
from wstool.errors import ExitStatus, WstoolError
from wstool.events import Closed, Event, Opened
from wstool.templates import Renderer, Template
from wstool.term.env import Environment


class SendStep(NamedTuple):
    template: Template | None  # text (always a template in a scenario)
    data: bytes | None = None  # binary: from hex, base64 or file


class ExpectStep(NamedTuple):
    matcher: Matcher
    timeout_s: float
    capture: str | None = None


class SleepStep(NamedTuple):
    seconds: float


class PingStep(NamedTuple):
    data: bytes
    max_rtt_s: float | None
    timeout_s: float


class CloseStep(NamedTuple):
    code: int
    reason: str
    expect_code: int | None  # the code the server must close with (None: any)
    timeout_s: float


Step = SendStep | ExpectStep | SleepStep | PingStep | CloseStep


class Scenario(NamedTuple):
    name: str
    connect: ConnectConfig
    steps: tuple[tuple[str, Step], ...]  # (what the output line says, the step)


class StepResult(NamedTuple):
    scenario: str
    number: int  # the step's, 1-based; 0: the connection itself
    label: str
    ok: bool
    elapsed_s: float
    error: str | None = None


class _Front(ClientFrontEnd):
    def __init__(self, inbox: Inbox) -> None:
        self.inbox = inbox
        self.opened = asyncio.Event()
        self.closed: asyncio.Future[Closed] = asyncio.get_running_loop().create_future()

    def on_event(self, event: Event) -> None:
        if isinstance(event, Opened):
            self.opened.set()
        elif isinstance(event, Closed) and not self.closed.done():
            self.closed.set_result(event)

    def on_message(self, data: str | bytes) -> None:
        self.inbox.add(data)


class StepFailed(Exception):
    pass


async def _until_closed(front: _Front, coro: Any) -> Any:
    """Await CORO, unless the connection closes first (then StepFailed)."""
    task = asyncio.ensure_future(coro)
    await asyncio.wait({task, front.closed}, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        return task.result()
    task.cancel()
    with contextlib.suppress(BaseException):
        await task
    raise StepFailed(f"the connection closed first ({_close_text(front.closed.result())})")


def _close_text(closed: Closed) -> str:
    from wstool.term.render import close_line

    return close_line(closed)


async def _do_step(step: Step, run: ClientRun, front: _Front, inbox: Inbox,
                   renderer: Renderer) -> None:
    if isinstance(step, SendStep):
        data: str | bytes = (renderer.render(step.template) if step.template is not None
                             else step.data or b"")
        try:
            await run.send(data)
        except NotOpen as exc:
            raise StepFailed(str(exc)) from None
    elif isinstance(step, ExpectStep):
        try:
            _index, value = await _until_closed(
                front, inbox.wait_for(step.matcher, step.timeout_s))
        except TimeoutError:
            what = f"'{step.matcher.source}'"
            raise StepFailed(str(not_met_error(what, step.timeout_s, "timeout",
                                               inbox))) from None
        if step.capture is not None:
            renderer.captured[step.capture] = value
    elif isinstance(step, SleepStep):
        await asyncio.sleep(step.seconds)
    elif isinstance(step, PingStep):
        try:
            async with asyncio.timeout(step.timeout_s):
                rtt_s = await run.ping(step.data)
        except TimeoutError:
            raise StepFailed(f"no pong within {seconds_text(step.timeout_s)}") from None
        except NotOpen as exc:
            raise StepFailed(str(exc)) from None
        if step.max_rtt_s is not None and rtt_s > step.max_rtt_s:
            raise StepFailed(f"round trip {rtt_s * 1000:.1f} ms exceeds max_rtt_ms "
                             f"{step.max_rtt_s * 1000:g}")
    elif isinstance(step, CloseStep):
        if front.closed.done():
            closed = front.closed.result()
        else:
            try:
                async with asyncio.timeout(step.timeout_s):
                    await run.close(step.code, step.reason)
                    closed = await front.closed
            except TimeoutError:
                raise StepFailed(f"no close within {seconds_text(step.timeout_s)}") from None
        if step.expect_code is not None and closed.code != step.expect_code:
            raise StepFailed(f"expected close code {step.expect_code}, got "
                             f"{_close_text(closed)}")


async def run_scenario(scenario: Scenario, emit: Any) -> list[StepResult]:
    """Run SCENARIO's steps on a fresh connection; EMIT(result) for each step."""
    inbox = Inbox()
    front = _Front(inbox)
    run = ClientRun(scenario.connect, ClientRunConfig(wait_s=None))
    renderer = Renderer()
    results: list[StepResult] = []

    def record(result: StepResult) -> None:
        results.append(result)
        emit(result)

    started = time.monotonic()
    task = asyncio.ensure_future(run.run(front))
    opened = asyncio.ensure_future(front.opened.wait())
    await asyncio.wait({task, opened}, return_when=asyncio.FIRST_COMPLETED)
    opened.cancel()
    if not front.opened.is_set():
        error = "did not connect"
        with contextlib.suppress(BaseException):
            exc = task.exception()
            if exc is not None:
                error = str(exc)
        record(StepResult(scenario.name, 0, f"connect {scenario.connect.target.url}", False,
                          time.monotonic() - started, error))
        return results
    try:
        for index, (label, step) in enumerate(scenario.steps, 1):
            step_started = time.monotonic()
            try:
                await _do_step(step, run, front, inbox, renderer)
            except StepFailed as exc:
                record(StepResult(scenario.name, index, label, False,
                                  time.monotonic() - step_started, str(exc)))
                break
            record(StepResult(scenario.name, index, label, True,
                              time.monotonic() - step_started))
    finally:
        if not task.done():
            await run.close(1000)
        try:
            await task
        except WstoolError as exc:
            # After the steps passed: how the connection ended is a failure of its own
            # (e.g. the server dropped it); after a failed step it adds nothing.
            if all(r.ok for r in results):
                record(StepResult(scenario.name, len(results) + 1, "connection", False, 0.0,
                                  str(exc)))
    return results


class ScenarioOutput:
    """Step lines and the summary, as text or --json, on ENV's stdout."""

    def __init__(self, env: Environment, *, json: bool) -> None:
        self.env = env
        self.json = json
        fancy = env.stdout_isatty and env.color
        self.ok_mark, self.fail_mark = ("✓", "✗") if fancy else ("ok", "FAIL")

    def write_line(self, text: str) -> None:
        self.env.stdout.write(text.encode() + b"\n")
        self.env.stdout.flush()

    def scenario(self, scenario: Scenario) -> None:
        if not self.json:
            self.write_line(f"scenario {scenario.name} ({scenario.connect.target.url})")

    def step(self, result: StepResult) -> None:
        from wstool.term.render import escape

        if self.json:
            from wstool.term.jsonl import json_line_bytes

            self.env.stdout.write(json_line_bytes({
                "event": "step", "scenario": result.scenario, "index": result.number,
                "step": result.label, "ok": result.ok,
                "elapsed_ms": round(result.elapsed_s * 1000, 3), "error": result.error}))
            self.env.stdout.flush()
            return
        mark = self.ok_mark if result.ok else self.fail_mark
        line = f"  {mark} {escape(result.label)} ({result.elapsed_s * 1000:.1f} ms)"
        self.write_line(line)
        if result.error:
            for detail in result.error.splitlines():
                self.write_line(f"      {detail}")

    def summary(self, results: Sequence[StepResult], scenarios: int, elapsed_s: float) -> None:
        failed = sum(1 for r in results if not r.ok)
        failed_scenarios = len({r.scenario for r in results if not r.ok})
        if self.json:
            from wstool.term.jsonl import json_line_bytes

            self.env.stdout.write(json_line_bytes({
                "event": "summary", "scenarios": scenarios,
                "scenarios_failed": failed_scenarios, "steps": len(results),
                "steps_failed": failed, "elapsed_ms": round(elapsed_s * 1000, 3)}))
            self.env.stdout.flush()
            return
        verdict = "passed" if not failed else f"{failed_scenarios} failed"
        self.write_line(f"{scenarios} scenario{'' if scenarios == 1 else 's'} {verdict}: "
                        f"{len(results) - failed} of {len(results)} steps ok "
                        f"({elapsed_s:.2f} s)")


def junit_xml(file_name: str, scenarios: Sequence[Scenario],
              results: Sequence[StepResult]) -> bytes:
    """One <testsuite> for the file, one <testcase> per scenario (its steps in
    system-out, the failing one as <failure>): what CI systems show."""
    import xml.etree.ElementTree as ET

    by_scenario: dict[str, list[StepResult]] = {s.name: [] for s in scenarios}
    for result in results:
        by_scenario.setdefault(result.scenario, []).append(result)
    failures = sum(1 for rs in by_scenario.values() if any(not r.ok for r in rs))
    total_s = sum(r.elapsed_s for r in results)
    suites = ET.Element("testsuites", name="wstool run", tests=str(len(by_scenario)),
                        failures=str(failures), time=f"{total_s:.3f}")
    suite = ET.SubElement(suites, "testsuite", name=file_name, tests=str(len(by_scenario)),
                          failures=str(failures), errors="0", time=f"{total_s:.3f}")
    for name, rs in by_scenario.items():
        case = ET.SubElement(suite, "testcase", classname=file_name, name=name,
                             time=f"{sum(r.elapsed_s for r in rs):.3f}")
        failed = next((r for r in rs if not r.ok), None)
        if failed is not None:
            failure = ET.SubElement(case, "failure",
                                    message=f"step {failed.number} {failed.label}: "
                                            f"{(failed.error or '').splitlines()[0]}")
            failure.text = failed.error
        out = ET.SubElement(case, "system-out")
        out.text = "\n".join(f"{'ok' if r.ok else 'FAIL'} {r.label} "
                             f"({r.elapsed_s * 1000:.1f} ms)" for r in rs)
    ET.indent(suites)
    body: bytes = ET.tostring(suites, encoding="unicode").encode()
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + body


async def run_scenarios(env: Environment, file_name: str, scenarios: Sequence[Scenario], *,
                        json: bool, junit_path: str | None) -> ExitStatus:
    output = ScenarioOutput(env, json=json)
    results: list[StepResult] = []
    started = time.monotonic()
    for scenario in scenarios:
        output.scenario(scenario)
        results.extend(await run_scenario(scenario, output.step))
    output.summary(results, len(scenarios), time.monotonic() - started)
    if junit_path is not None:
        try:
            with open(junit_path, "wb") as f:
                f.write(junit_xml(file_name, scenarios, results))
        except OSError as exc:
            raise WstoolError(f"cannot write --junit {junit_path}: {exc.strerror}") from None
    return ExitStatus.OK if all(r.ok for r in results) else ExitStatus.EXPECTATION_NOT_MET
