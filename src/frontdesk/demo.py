"""The demo call: a scripted caller books a cleaning with the agent, offline, in real time.

The caller pauses mid-thought once ("I'd like to come in on... Thursday afternoon") and
interrupts the agent once (while it reads out the open slots), so the demo shows adaptive
endpointing and barge-in as well as the booking.
"""

from __future__ import annotations

import secrets
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from frontdesk.agent import Agent, AgentOptions
from frontdesk.call.session import CallResult
from frontdesk.evals.scripted_caller import CallerLine, ScriptedCaller
from frontdesk.speech.tts.command import FliteVoice
from frontdesk.transports.local import LocalTransport

DEMO_SCRIPT = [
    CallerLine("Hi, I'd like to book a cleaning, please."),
    CallerLine("I'm a new patient."),
    CallerLine("My name is Maria Lopez."),
    CallerLine("I'd like to come in on <pause 1500> Thursday afternoon."),
    CallerLine("The second one works for me.", barge_in_ms=4200),
    CallerLine("Nope that is everything thanks."),
]


def demo_caller_number() -> str:
    """A new caller each run, so a rerun on the same database takes the same path (a
    returning caller would not be asked whether they are a new patient)."""
    return f"+1555555{secrets.randbelow(10_000):04d}"


@dataclass(slots=True)
class DemoResult:
    """A finished demo call: what happened and where it was written."""

    call: CallResult
    record: dict[str, Any]
    recording: Path
    database_url: str


async def run_demo(
    options: AgentOptions | None = None,
    observer: Callable[..., None] | None = None,
    recording_dir: str | Path | None = None,
    script: list[CallerLine] | None = None,
    caller_voice: str = "slt",
) -> DemoResult:
    """Run the demo call end to end and return its record."""
    options = options or AgentOptions()
    agent = await Agent.open(options)
    try:
        caller = ScriptedCaller(list(script or DEMO_SCRIPT))
        await caller.prepare(FliteVoice(caller_voice))
        directory = Path(recording_dir or tempfile.mkdtemp(prefix="frontdesk-demo-"))
        recording = directory / "demo-call.wav"
        transport = LocalTransport(
            caller, caller_number=demo_caller_number(), recording_path=recording
        )
        call = await agent.new_call(transport, metadata={"demo": True})
        call.observer = observer
        result = await call.run()
        record = await agent.store.call_record(result.call_id)
        return DemoResult(result, record, recording, agent.db.url)
    finally:
        await agent.aclose()
