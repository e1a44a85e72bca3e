"""The streaming STT protocol.

The Listener pushes only the frames of the current utterance (speech, plus the short pauses
inside it as the VAD reports them). When the VAD says a pause began, it calls
:meth:`STTStream.speculate` so decoding overlaps the endpointing silence; when the turn is
declared over, :meth:`STTStream.finish` returns at once if the speculative result already
covers every pushed frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from frontdesk.audio import AudioFormatError, AudioFrame


@dataclass(frozen=True, slots=True)
class Transcript:
    """What the recognizer heard.

    ``audio_end`` is the capture timestamp just after the last frame the text covers;
    ``decode_seconds`` is the wall time the decode took; ``speculative`` is true when the
    final transcript was produced before the turn closed and reused.
    """

    text: str
    is_final: bool
    audio_end: float = 0.0
    decode_seconds: float = 0.0
    speculative: bool = False


class STTStream(Protocol):
    """One caller's audio, utterance after utterance."""

    async def push(self, frame: AudioFrame) -> None:
        """Append a 20 ms frame (16 kHz PCM16) to the current utterance."""
        ...

    def speculate(self) -> None:
        """A pause began: start decoding everything pushed so far, in the background."""
        ...

    def interim(self) -> Transcript | None:
        """The newest interim transcript of the current utterance, if any."""
        ...

    async def latest(self) -> Transcript:
        """Transcript of everything pushed so far (waits for a decode if none covers it)."""
        ...

    async def finish(self) -> Transcript:
        """Final transcript of the current utterance; the next push starts a new one."""
        ...

    def reset(self) -> None:
        """Drop the current utterance (e.g. it was noise) without decoding it."""
        ...

    async def aclose(self) -> None:
        """Release the stream."""
        ...


class STT(Protocol):
    """A speech recognizer that can serve many concurrent streams."""

    name: str
    sample_rate: int

    def open(self) -> STTStream:
        """A new stream for one call."""
        ...

    async def transcribe(self, frames: list[AudioFrame]) -> Transcript:
        """Transcribe a whole recording (16 kHz frames) in one go."""
        ...


def recording_samples(frames: list[AudioFrame], sample_rate: int) -> np.ndarray:
    """The samples of a whole recording given as frames (any length), all at
    ``sample_rate``; a frame at another rate is an :class:`AudioFormatError`."""
    for frame in frames:
        if frame.sample_rate != sample_rate:
            raise AudioFormatError(
                f"expected {sample_rate} Hz audio, got a frame at {frame.sample_rate} Hz"
            )
    return np.concatenate([f.pcm for f in frames]) if frames else np.zeros(0, np.int16)
