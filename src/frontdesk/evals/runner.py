"""``frontdesk eval``'s engine: run a battery's scenarios one after another against a
target (a running agent, or one started here) and score them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from frontdesk.backend_settings import BackendSettings
from frontdesk.evals.backends import CalDAVSettings
from frontdesk.evals.battery import Target, run_scenario
from frontdesk.evals.checks import Limits
from frontdesk.evals.local_server import LocalServer
from frontdesk.evals.scenario import Scenario
from frontdesk.evals.scorecard import ScenarioScore, Scorecard, score
from frontdesk.speech.stt import STT, load_stt
from frontdesk.transports.sip.message import parse_uri


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
    limits: Limits | None = None,
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
            result = score(run, timezone, limits)
            scores.append(result)
            if on_scenario is not None:
                on_scenario(result)
    finally:
        if stt is None:
            close = getattr(ears, "aclose", None)
            if close is not None:
                await close()
    return Scorecard(target.name, scores, limits or Limits())


@dataclass(slots=True)
class EvalRun:
    """What ``frontdesk eval`` was asked to do."""

    scenarios: list[Scenario]
    workdir: Path
    timezone: str
    target: Target | None = None
    """A running agent; None starts a local ``frontdesk serve`` with ``agent_settings``."""
    agent_settings: dict[str, Any] = field(default_factory=dict)
    """``frontdesk serve`` settings for the local agent (as in its YAML file)."""
    limits: Limits = field(default_factory=Limits)
    sip: bool = False
    """Call the local agent over SIP (it is started with a SIP listener)."""
    caldav: CalDAVSettings | None = None
    """The local agent's CalDAV calendar (bookings are read back from it)."""


async def evaluate(
    request: EvalRun,
    *,
    stt: STT | None = None,
    on_scenario: Callable[[ScenarioScore], None] | None = None,
) -> Scorecard:
    """Run the battery against the target, starting (and stopping) a local agent if there
    is none."""

    async def against(target: Target) -> Scorecard:
        return await run_battery(
            target,
            request.scenarios,
            request.workdir,
            timezone=request.timezone,
            stt=stt,
            limits=request.limits,
            on_scenario=on_scenario,
        )

    if request.target is not None:
        return await against(request.target)
    local = LocalServer(
        request.workdir, request.agent_settings, sip=request.sip, caldav=request.caldav
    )
    async with local as target:
        return await against(target)


def plan_target(
    given: Target, sip: str | None, local_agent: BackendSettings
) -> tuple[Target | None, CalDAVSettings | None]:
    """What ``frontdesk eval`` calls: (a running agent, or None to start the local one; the
    local agent's CalDAV calendar, if any). ``given`` holds the command's flags; ``sip`` is
    a SIP URI, ``"local"``, or None (Twilio); ``local_agent`` is the local agent's
    settings. Raises ValueError when the flags contradict each other."""
    if sip is not None and given.base_url is not None:
        raise ValueError("--url (Twilio) and --sip: give one of them")
    if sip is not None and sip != "local":
        parse_uri(sip)  # a malformed URI is named now
        return replace(given, sip_uri=sip), None
    if given.base_url is not None:
        return given, None
    own = local_agent.caldav.settings() if local_agent.calendar_kind == "caldav" else None
    if own is not None and given.caldav is not None:
        raise ValueError("the local agent's CalDAV calendar is in --agent-config: no --caldav-url")
    return None, own or given.caldav
