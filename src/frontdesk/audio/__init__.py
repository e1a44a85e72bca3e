"""Audio primitives: frames, G.711 codecs, resampling, WAV I/O, noise mixing."""

from frontdesk.audio.frames import (
    FRAME_MS,
    SUPPORTED_RATES,
    AudioFormatError,
    AudioFrame,
    frame_samples,
)
from frontdesk.audio.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode
from frontdesk.audio.resample import FrameResampler, Reframer, StreamResampler, resample

__all__ = [
    "FRAME_MS",
    "SUPPORTED_RATES",
    "AudioFormatError",
    "AudioFrame",
    "FrameResampler",
    "Reframer",
    "StreamResampler",
    "alaw_decode",
    "alaw_encode",
    "frame_samples",
    "resample",
    "ulaw_decode",
    "ulaw_encode",
]
