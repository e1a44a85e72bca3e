"""``frontdesk eval``'s engine: run a battery's scenarios one after another against a
target and score them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from frontdesk.evals.battery import Target, run_scenario
from frontdesk.evals.scenario import Scenario
from frontdesk.evals.scorecard import ScenarioScore, Scorecard, score
from frontdesk.speech.stt import STT, load_stt


def caller_ears() -> STT:
    """The simulated caller's own recognizer (not the agent's instance): Whisper with no
    interim decodes, used after each call to transcribe what the agent said."""
    return load_stt("whisper", interim_interval_s=0)


async def run_battery(
    target: Target,
    scenarios: list[Scenario],
    workdir: str | Path,
    *,
    timezone: str,
    stt: STT | None = None,
    on_scenario: Callable[[ScenarioScore], None] | None = None,
) -> Scorecard:
    """Call ``target`` once per scenario (in order, one at a time so calls don't compete
    for the agent's CPU) and judge each call. Recordings go to ``workdir``."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    ears = stt or caller_ears()
    scores = []
    try:
        for index, scenario in enumerate(scenarios):
            run = await run_scenario(target, scenario, workdir, ears, index=index)
            result = score(run, timezone)
            scores.append(result)
            if on_scenario is not None:
                on_scenario(result)
    finally:
        if stt is None:
            close = getattr(ears, "aclose", None)
            if close is not None:
                await close()
    return Scorecard(target.http_url, scores)
