"""The demo call: a scripted caller books a cleaning with the agent, offline, in real time.

The caller pauses mid-thought once ("I'd like to come in on... Thursday afternoon") and
interrupts the agent once (while it reads out the open slots), so the demo shows adaptive
endpointing and barge-in as well as the booking.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

from frontdesk.agent import Agent, AgentOptions
from frontdesk.evals.local_call import LocalCallResult, run_local_call
from frontdesk.evals.scripted_caller import CallerLine

DEMO_SCRIPT = [
    CallerLine("Hi, I'd like to book a cleaning, please."),
    CallerLine("I'm a new patient."),
    CallerLine("My name is Maria Lopez."),
    CallerLine("I'd like to come in on <pause 1500> Thursday afternoon."),
    CallerLine("The first one works for me.", barge_in_ms=2600),
    CallerLine("Nope that is everything thanks."),
]


async def run_demo(
    options: AgentOptions | None = None,
    observer: Callable[..., None] | None = None,
    recording_dir: str | Path | None = None,
) -> tuple[LocalCallResult, str]:
    """Run the demo call end to end; returns it and the database URL it was written to."""
    agent = await Agent.open(options)
    try:
        directory = Path(recording_dir or tempfile.mkdtemp(prefix="frontdesk-demo-"))
        result = await run_local_call(
            agent,
            DEMO_SCRIPT,
            directory / "demo-call.wav",
            observer=observer,
            metadata={"demo": True},
        )
        return result, agent.db.url
    finally:
        await agent.aclose()
