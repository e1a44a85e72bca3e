"""What every simulated caller hands the checks, whatever the wire: the call's events on
the caller's clock, the ticks on which the agent's audio played, and the stereo recording.

The Twilio caller (:mod:`frontdesk.evals.twilio_caller`) and the SIP caller
(:mod:`frontdesk.evals.sip_caller`) each keep their own log class; the checks read only
what :class:`CallLog` names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from frontdesk.audio.resample import resample
from frontdesk.audio.wav import write_wav
from frontdesk.evals.scripted_caller import ScriptedCaller
from frontdesk.transports.base import INBOUND_RATE

WIRE_RATE = 8000
"""The phone line's rate: G.711 on both Twilio Media Streams and RTP."""


@dataclass(frozen=True, slots=True)
class WireEvent:
    """One thing on the wire, ``at`` seconds into the call on the caller's clock."""

    at: float
    kind: str  # media_out, dtmf_out, mark_echo, stop_out, media_in, clear_in, refer_in, ...
    detail: dict[str, Any] = field(default_factory=dict)


class CallLog(Protocol):
    """A finished call as the simulated caller saw it."""

    transport: str
    """"twilio" or "sip"."""
    call_sid: str
    """The call's id on the wire (Twilio's CallSid, the SIP Call-ID): the agent's record
    of the call is found by it."""
    caller: ScriptedCaller
    events: list[WireEvent]
    recording: Path | None
    ended_by: str | None
    """"caller" or "agent" (None: it never started)."""
    agent_media: list[float]
    """Start of every 20 ms tick on which a frame of the agent's audio played on the
    caller's line: when the agent's audio stopped is read from here."""

    def times(self, kind: str) -> list[float]:
        """When each event of ``kind`` happened."""
        ...


def event_times(events: list[WireEvent], kind: str) -> list[float]:
    """When each event of ``kind`` happened."""
    return [e.at for e in events if e.kind == kind]


def write_call_recording(
    path: Path, caller: list[np.ndarray], caller_rate: int, agent: list[np.ndarray]
) -> None:
    """Both sides of the call, one array per 20 ms tick each (the agent's at 8 kHz, as it
    played on the line), as a 16 kHz stereo WAV: caller left, agent right."""
    if not caller:
        return
    left = resample(np.concatenate(caller), caller_rate, INBOUND_RATE)
    right = resample(np.concatenate(agent), WIRE_RATE, INBOUND_RATE)
    n = min(len(left), len(right))
    write_wav(path, np.stack([left[:n], right[:n]], axis=1), INBOUND_RATE)
