"""What the Call needs from the outside: the protocols it is built from, its knobs, and
what it reports when the call is over."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from frontdesk.brain.base import Message, ToolCall, ToolResult
from frontdesk.call.timings import TurnTimings

ReplyEnd = Literal["heard", "interrupted", "call_over"]
"""How a reply ended: played to the end; cut off by a caller who carries on talking; or
still going when the call ended under it (the caller hung up)."""


class SpeechOutput(Protocol):
    """Text in, 20 ms frames at the transport's rate out, tagged with the text they speak."""

    def speak(self, deltas: AsyncIterator[str]) -> AsyncIterator[Any]:
        """Frames for streamed text (each has .frame, .chunk_index, .chunk_text, .chunk_end)."""
        ...

    def say(self, text: str) -> AsyncIterator[Any]:
        """Frames for one fixed line (phrase cache first)."""
        ...


class ToolExecutor(Protocol):
    """Runs the brain's tool calls, fenced to the reply that made them."""

    async def run(
        self, call: ToolCall, reply_id: str, reply_live: Callable[[], bool]
    ) -> ToolResult: ...

    def is_slow(self, name: str) -> bool: ...

    async def settle(self, reply_id: str, end: ReplyEnd) -> list[tuple[str, str]]:
        """Reply ``reply_id`` is over: what its tools asked to happen after it.

        Heard to the end: the call outcome its tools logged is written, and its call-control
        actions are returned for the Call to perform, as ("transfer", number) and
        ("hang_up", why). Otherwise nothing is performed, and an outcome logged beside a
        transfer or hang-up that will not happen is not written either: it described an
        ending that did not take place. Never raises (a failed write is logged)."""
        ...

    async def drain(self) -> None: ...


class CallRecorder(Protocol):
    """Where the call record is written as the call proceeds (the record itself is
    created before the Call, so the tools can refer to it)."""

    async def add_turn(
        self,
        call_id: str,
        speaker: str,
        text: str,
        started_at: float,
        ended_at: float,
        interrupted: bool = False,
        timings: dict[str, Any] | None = None,
    ) -> int: ...

    async def update_turn(self, turn_id: int, **fields: Any) -> None: ...

    async def finish_call(
        self,
        call_id: str,
        outcome: str,
        summary: str | None = None,
        recording_path: str | None = None,
    ) -> str:
        """Close the record; returns the final outcome (a stronger one set by a tool stays)."""
        ...


@dataclass(slots=True)
class CallConfig:
    """Behaviour knobs of one call."""

    barge_in: bool = True
    barge_in_min_s: float = 0.2
    """Sustained caller speech that stops the agent's audio."""
    filler_after_s: float = 0.3
    """A slow tool still running after this much silence gets a spoken filler."""
    filler_line: str = "One moment, let me check."
    think_filler_after_s: float | None = 1.2
    """The caller has heard nothing this long since their turn closed (or since the agent's
    last words) while the brain works on its answer: a filler line (None: never)."""
    think_filler_lines: tuple[str, ...] = (
        "One moment.",
        "Sorry, this is taking a little longer than usual.",
    )
    """The filler of a wait, then (if the silence goes on ``think_filler_again_s`` more) the
    second; nothing more until the brain speaks again."""
    think_filler_again_s: float = 4.0
    dtmf_gap_s: float = 1.0
    """Digits typed with no speech close a turn after this pause."""
    max_silence_s: float = 20.0
    """Caller silence before "are you still there?" (twice that: the call ends)."""
    still_there_line: str = "Are you still there?"
    goodbye_line: str = "I'll let you go. Goodbye."
    error_line: str = "Sorry, I'm having trouble on my end. One moment."


@dataclass(slots=True)
class CallResult:
    """What a finished call reports back to whoever ran it."""

    call_id: str
    outcome: str
    history: list[Message]
    turn_timings: list[TurnTimings]
    barge_ins: list[float] = field(default_factory=list)
    """Seconds from caller speech onset to the agent's audio being stopped."""
