"""WAV I/O: round trips, WAV streamed to a pipe by a real engine, and what is not a WAV."""

from __future__ import annotations

import io
import struct
import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest

from frontdesk.audio import AudioFormatError
from frontdesk.audio.wav import decode_wav, encode_wav, read_wav, write_wav


def _ramp(n: int) -> np.ndarray:
    return ((np.arange(n) * 97) % 65536 - 32768).astype(np.int16)


def _with_lengths(wav: bytes, riff_size: int, data_size: int) -> bytes:
    """The WAV with its RIFF and data length fields overwritten (as a streaming writer does)."""
    data_at = wav.find(b"data")
    patched = bytearray(wav)
    patched[4:8] = struct.pack("<I", riff_size)
    patched[data_at + 4 : data_at + 8] = struct.pack("<I", data_size)
    return bytes(patched)


def test_mono_round_trip_through_a_file(tmp_path: Path) -> None:
    pcm = _ramp(8000)
    path = write_wav(tmp_path / "sub" / "mono.wav", pcm, 8000)
    back, rate = read_wav(path)
    assert rate == 8000
    assert back.dtype == np.int16
    assert np.array_equal(back, pcm)


def test_stereo_round_trip_keeps_channels_apart() -> None:
    left, right = _ramp(1600), np.zeros(1600, np.int16)
    pcm = np.column_stack([left, right])
    back, rate = decode_wav(encode_wav(pcm, 16000))
    assert rate == 16000
    assert back.shape == (1600, 2)
    assert np.array_equal(back[:, 0], left)
    assert not back[:, 1].any()


def test_written_wav_is_standard_pcm16() -> None:
    # Other tools (sox, players) must read it: check with the standard library's reader.
    with wave.open(io.BytesIO(encode_wav(_ramp(441), 22050))) as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, 22050)
        assert wav.getnframes() == 441


@pytest.mark.parametrize(
    ("riff_size", "data_size"),
    [(0, 0), (0xFFFFFFFF, 0xFFFFFFFF), (0, 0xFFFFFFFF), (0xFFFFFFFF, 0), (0x7FFFF024, 0x7FFFF000)],
)
def test_streamed_wav_with_unfilled_lengths_decodes_all_data(
    riff_size: int, data_size: int
) -> None:
    pcm = _ramp(2205)
    streamed = _with_lengths(encode_wav(pcm, 22050), riff_size, data_size)
    back, rate = decode_wav(streamed)
    assert rate == 22050
    assert np.array_equal(back, pcm)


def test_streamed_wav_cut_mid_sample_keeps_whole_samples() -> None:
    pcm = _ramp(1000)
    streamed = _with_lengths(encode_wav(pcm, 8000), 0, 0)[:-1]
    back, _ = decode_wav(streamed)
    assert np.array_equal(back, pcm[:-1])


def test_espeak_wav_written_to_a_pipe_decodes() -> None:
    out = subprocess.run(
        ["espeak-ng", "--stdout", "Thank you for calling."], capture_output=True, check=True
    ).stdout
    claimed = struct.unpack("<I", out[4:8])[0]
    assert claimed != len(out) - 8  # espeak-ng cannot fill the length in on a pipe
    pcm, rate = decode_wav(out)
    assert rate == 22050
    assert len(pcm) == (len(out) - 44) // 2
    assert np.abs(pcm).max() > 1000  # speech, not silence


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"hello, this is not audio at all; " * 4,
        b"RIFF\x24\x00\x00\x00AVI LIST" + b"\x00" * 40,
        b"\xff\xfb\x90\x64" + b"\x00" * 100,  # an MP3 frame header
    ],
)
def test_non_wav_bytes_are_rejected(data: bytes) -> None:
    with pytest.raises(AudioFormatError, match="not a WAV"):
        decode_wav(data)


def test_wav_without_data_chunk_is_rejected() -> None:
    fmt = struct.pack("<HHIIHH", 1, 1, 8000, 16000, 2, 16)
    broken = b"RIFF" + struct.pack("<I", 28) + b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt
    with pytest.raises(AudioFormatError, match="data chunk missing"):
        decode_wav(broken + b"\x00" * 8)


def test_8_bit_wav_is_rejected_naming_the_width() -> None:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(1)
        wav.setframerate(8000)
        wav.writeframes(bytes(200))
    with pytest.raises(AudioFormatError, match=r"16-bit PCM .* got 8-bit"):
        decode_wav(buf.getvalue())


def test_float_samples_cannot_be_written() -> None:
    with pytest.raises(AudioFormatError, match="int16"):
        encode_wav(np.zeros(100, np.float32), 8000)
