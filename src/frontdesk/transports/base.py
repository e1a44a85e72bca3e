"""The Transport protocol: how a call's audio and control reach the orchestrator.

Inbound, a transport yields 16 kHz PCM16 frames of 20 ms (whatever the wire carries),
DTMF digits, playback marks and the end of the call. Outbound it takes frames at its own
``output_rate`` (8 kHz on the phone network) and plays them at real time; a mark sent after
some audio comes back as :class:`MarkPlayed` once the caller has heard that audio, which is
how the Call knows which words were really heard when it is interrupted.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

from frontdesk.audio import AudioFrame

INBOUND_RATE = 16000
"""Sample rate of the frames every transport delivers to the Listener."""


@dataclass(frozen=True, slots=True)
class AudioIn:
    """20 ms of caller audio at 16 kHz; ``received_at`` is the monotonic arrival time."""

    frame: AudioFrame
    received_at: float


@dataclass(frozen=True, slots=True)
class DtmfIn:
    """A key the caller pressed."""

    digit: str
    received_at: float


@dataclass(frozen=True, slots=True)
class MarkPlayed:
    """The audio sent before mark ``name`` has been played to the caller."""

    name: str
    received_at: float


@dataclass(frozen=True, slots=True)
class CallEnded:
    """The far end hung up or the stream closed; ``reason`` for the record."""

    reason: str
    received_at: float


TransportEvent = AudioIn | DtmfIn | MarkPlayed | CallEnded


class Transport(Protocol):
    """One call's connection to the caller."""

    name: str
    caller_number: str | None
    output_rate: int

    def events(self) -> AsyncIterator[TransportEvent]:
        """Inbound events until the call ends (the last one is :class:`CallEnded`)."""
        ...

    async def send_audio(self, frame: AudioFrame) -> None:
        """Queue a 20 ms frame at ``output_rate`` for playout. Waits while the transport's
        buffer is full, so the caller of this paces itself to real time."""
        ...

    async def send_mark(self, name: str) -> None:
        """Echo ``name`` back as :class:`MarkPlayed` once everything sent before it played."""
        ...

    async def clear(self) -> None:
        """Drop every frame queued and not yet played (barge-in). Marks behind the dropped
        audio are never reported as played."""
        ...

    async def hang_up(self) -> None:
        """End the call from the agent's side."""
        ...

    async def transfer(self, number: str) -> None:
        """Hand the call to a human at ``number``."""
        ...
