"""Audio primitives: frames, G.711 codecs, resampling, WAV I/O, noise mixing."""

from frontdesk.audio.frames import (
    FRAME_MS,
    SUPPORTED_RATES,
    AudioFormatError,
    AudioFrame,
    frame_samples,
)

__all__ = ["FRAME_MS", "SUPPORTED_RATES", "AudioFormatError", "AudioFrame", "frame_samples"]
