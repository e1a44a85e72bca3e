"""Per-turn latency: the measurement points of one caller turn and the reply to it."""

from __future__ import annotations

from dataclasses import dataclass, fields

POINTS = (
    "caller_stopped",
    "turn_closed",
    "transcript_final",
    "llm_first_token",
    "first_sentence",
    "tts_first_audio",
    "agent_audio_out",
)
"""In order: each is a monotonic time, and each stage starts from the one before it."""


@dataclass(slots=True)
class TurnTimings:
    """Monotonic times (seconds) at each measurement point of one turn (None: not reached)."""

    caller_stopped: float | None = None
    turn_closed: float | None = None
    transcript_final: float | None = None
    llm_first_token: float | None = None
    first_sentence: float | None = None
    tts_first_audio: float | None = None
    agent_audio_out: float | None = None

    @property
    def voice_to_voice(self) -> float | None:
        """Seconds from the caller's last voiced audio to the agent's first audio out."""
        if self.caller_stopped is None or self.agent_audio_out is None:
            return None
        return self.agent_audio_out - self.caller_stopped

    def as_ms(self) -> dict[str, float | None]:
        """Each point in ms after ``caller_stopped``, plus ``voice_to_voice_ms``."""
        base = self.caller_stopped
        out: dict[str, float | None] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            out[f"{f.name}_ms"] = (
                None if value is None or base is None else round((value - base) * 1000, 1)
            )
        v2v = self.voice_to_voice
        out["voice_to_voice_ms"] = None if v2v is None else round(v2v * 1000, 1)
        return out
