"""The audio frame: PCM16 mono samples, their sample rate and when they were captured."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FRAME_MS = 20
"""Every stage of the call path moves audio in 20 ms frames."""

SUPPORTED_RATES = (8000, 16000, 22050, 24000)
"""Sample rates the call path handles: phone (8k), speech models (16k), TTS voices (22.05k/24k)."""


class AudioFormatError(ValueError):
    """Audio that is not what the receiver expects; the message names the problem."""


def frame_samples(sample_rate: int, frame_ms: int = FRAME_MS) -> int:
    """Samples in one frame of ``frame_ms`` at ``sample_rate`` (22.05 kHz: 441 per 20 ms)."""
    samples = sample_rate * frame_ms / 1000
    if samples != int(samples):
        raise AudioFormatError(
            f"{frame_ms} ms at {sample_rate} Hz is not a whole number of samples"
        )
    return int(samples)


@dataclass(frozen=True, slots=True)
class AudioFrame:
    """PCM16 mono audio.

    ``timestamp`` is when the first sample was captured, in seconds on the call's audio
    clock (the clock of the stream the frame came from, starting at 0 for a call).
    """

    pcm: np.ndarray
    sample_rate: int
    timestamp: float = 0.0

    def __post_init__(self) -> None:
        if not isinstance(self.pcm, np.ndarray) or self.pcm.dtype != np.int16:
            raise AudioFormatError("audio frame samples must be a numpy int16 array")
        if self.pcm.ndim != 1:
            raise AudioFormatError(f"audio frame must be mono (1-D), got shape {self.pcm.shape}")
        if self.sample_rate <= 0:
            raise AudioFormatError(f"sample rate must be positive, got {self.sample_rate}")

    @classmethod
    def from_bytes(cls, data: bytes, sample_rate: int, timestamp: float = 0.0) -> AudioFrame:
        """Frame from little-endian PCM16 bytes; an odd byte count is an error."""
        if len(data) % 2:
            raise AudioFormatError(f"PCM16 audio needs an even number of bytes, got {len(data)}")
        return cls(np.frombuffer(data, dtype="<i2").astype(np.int16), sample_rate, timestamp)

    def to_bytes(self) -> bytes:
        """Little-endian PCM16 bytes."""
        return self.pcm.astype("<i2").tobytes()

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return len(self.pcm) / self.sample_rate

    @property
    def end(self) -> float:
        """Timestamp just after the last sample."""
        return self.timestamp + self.duration

    def check(self, sample_rate: int, frame_ms: int = FRAME_MS) -> None:
        """Raise :class:`AudioFormatError` unless this is one frame_ms frame at sample_rate."""
        if self.sample_rate != sample_rate:
            raise AudioFormatError(
                f"expected {sample_rate} Hz audio, got a frame at {self.sample_rate} Hz"
            )
        want = frame_samples(sample_rate, frame_ms)
        if len(self.pcm) != want:
            raise AudioFormatError(
                f"expected {frame_ms} ms frames ({want} samples at {sample_rate} Hz), "
                f"got {len(self.pcm)} samples"
            )
