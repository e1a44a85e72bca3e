"""WAV read/write for PCM16 audio (mono, or stereo for call recordings)."""

from __future__ import annotations

import io
import wave
from pathlib import Path

import numpy as np

from frontdesk.audio.frames import AudioFormatError


def decode_wav(data: bytes) -> tuple[np.ndarray, int]:
    """Samples (int16; shape (n,) mono or (n, channels)) and sample rate of WAV bytes.

    Engines that stream WAV to a pipe cannot seek back to fill in the header's length
    fields, so a zero or oversized length is tolerated: all data present is read.
    """
    if len(data) < 44 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise AudioFormatError("not a WAV file (no RIFF/WAVE header)")
    if data[4:8] == b"\0\0\0\0":
        # A zero RIFF size would make ``wave`` see an empty file: claim what is there.
        data = data[:4] + min(len(data) - 8, 0xFFFFFFFF).to_bytes(4, "little") + data[8:]
    try:
        with wave.open(io.BytesIO(data)) as wav:
            channels, width, rate = wav.getnchannels(), wav.getsampwidth(), wav.getframerate()
            frames = wav.readframes(wav.getnframes() or 2**31 - 1)
    except (wave.Error, EOFError) as exc:
        raise AudioFormatError(f"unreadable WAV: {exc}") from exc
    if width != 2:
        raise AudioFormatError(f"only 16-bit PCM WAV is supported, got {8 * width}-bit")
    if len(frames) < 2 * channels:
        frames = _data_chunk(data)
    usable = len(frames) - len(frames) % (2 * channels)
    pcm = np.frombuffer(frames[:usable], dtype="<i2").astype(np.int16)
    if channels > 1:
        pcm = pcm.reshape(-1, channels)
    return pcm, rate


def _data_chunk(data: bytes) -> bytes:
    """The bytes after the ``data`` chunk header, whatever length the header claims."""
    at = data.find(b"data", 12)
    if at < 0:
        raise AudioFormatError("WAV has no data chunk")
    return data[at + 8 :]


def read_wav(path: str | Path) -> tuple[np.ndarray, int]:
    """Samples and sample rate of a WAV file (see :func:`decode_wav`)."""
    return decode_wav(Path(path).read_bytes())


def encode_wav(pcm: np.ndarray, sample_rate: int) -> bytes:
    """WAV bytes for int16 samples, mono ``(n,)`` or multi-channel ``(n, channels)``."""
    if pcm.dtype != np.int16:
        raise AudioFormatError("WAV output needs int16 samples")
    channels = 1 if pcm.ndim == 1 else pcm.shape[1]
    buf = io.BytesIO()
    with wave.open(buf, "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(2)
        wav.setframerate(sample_rate)
        wav.writeframes(np.ascontiguousarray(pcm).astype("<i2").tobytes())
    return buf.getvalue()


def write_wav(path: str | Path, pcm: np.ndarray, sample_rate: int) -> Path:
    """Write int16 samples to ``path`` as WAV; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encode_wav(pcm, sample_rate))
    return path
