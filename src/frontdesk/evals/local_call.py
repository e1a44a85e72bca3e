"""One scripted call against an agent over the in-process loopback line."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from frontdesk.agent import Agent
from frontdesk.call.contracts import CallResult
from frontdesk.evals.scripted_caller import CallerLine, ScriptedCaller
from frontdesk.speech.tts.command import FliteVoice
from frontdesk.transports.local import LocalTransport


def new_caller_number() -> str:
    """A caller the CRM has not seen, so every run takes the same path."""
    return f"+1555555{secrets.randbelow(10_000):04d}"


@dataclass(slots=True)
class LocalCallResult:
    """A finished scripted call: the Call's view, the stored record, and the caller's side."""

    call: CallResult
    record: dict[str, Any]
    caller: ScriptedCaller
    transport: LocalTransport
    recording: Path
    events: list[tuple[str, dict[str, Any]]]
    """Everything the Call reported, in order (see ``Call._emit``)."""


async def run_local_call(
    agent: Agent,
    script: list[CallerLine],
    recording: str | Path,
    *,
    caller_voice: str = "slt",
    caller_number: str | None = None,
    noise: np.ndarray | None = None,
    observer: Callable[..., None] | None = None,
    metadata: dict[str, Any] | None = None,
) -> LocalCallResult:
    """Call ``agent`` with a scripted caller speaking in flite's ``caller_voice``."""
    caller = ScriptedCaller(list(script), noise=noise)
    await caller.prepare(FliteVoice(caller_voice))
    transport = LocalTransport(
        caller, caller_number=caller_number or new_caller_number(), recording_path=recording
    )
    events: list[tuple[str, dict[str, Any]]] = []

    def observe(kind: str, **data: Any) -> None:
        events.append((kind, data))
        if observer is not None:
            observer(kind, **data)

    call = await agent.new_call(transport, metadata=metadata)
    call.observer = observe
    result = await call.run()
    record = await agent.store.call_record(result.call_id)
    return LocalCallResult(result, record, caller, transport, Path(recording), events)
