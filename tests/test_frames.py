"""AudioFrame: what a valid frame is, and the errors that name what is wrong."""

from __future__ import annotations

import numpy as np
import pytest

from frontdesk.audio import AudioFormatError, AudioFrame, frame_samples


def test_bytes_round_trip_is_little_endian_pcm16() -> None:
    pcm = np.array([0, 1, -1, 32767, -32768, 258], dtype=np.int16)
    frame = AudioFrame(pcm, 8000, timestamp=1.5)
    data = frame.to_bytes()
    assert data[:6] == b"\x00\x00\x01\x00\xff\xff"
    assert data[-2:] == b"\x02\x01"  # 258 = 0x0102, low byte first
    back = AudioFrame.from_bytes(data, 8000, timestamp=1.5)
    assert np.array_equal(back.pcm, pcm)
    assert back.timestamp == 1.5


def test_duration_and_end() -> None:
    frame = AudioFrame(np.zeros(441, np.int16), 22050, timestamp=2.0)
    assert frame.duration == pytest.approx(0.02)
    assert frame.end == pytest.approx(2.02)


@pytest.mark.parametrize(
    ("rate", "samples"), [(8000, 160), (16000, 320), (22050, 441), (24000, 480)]
)
def test_frame_samples_for_every_supported_rate(rate: int, samples: int) -> None:
    assert frame_samples(rate) == samples


def test_frame_samples_rejects_fractional_frames() -> None:
    with pytest.raises(AudioFormatError, match=r"10 ms at 22050 Hz is not a whole number"):
        frame_samples(22050, 10)


def test_odd_byte_count_is_rejected() -> None:
    with pytest.raises(AudioFormatError, match="even number of bytes, got 321"):
        AudioFrame.from_bytes(b"\x00" * 321, 8000)


@pytest.mark.parametrize("dtype", [np.float32, np.int32, np.uint8, np.float64])
def test_wrong_dtype_is_rejected(dtype: type) -> None:
    with pytest.raises(AudioFormatError, match="int16"):
        AudioFrame(np.zeros(160, dtype=dtype), 8000)


def test_non_array_is_rejected() -> None:
    with pytest.raises(AudioFormatError, match="numpy int16 array"):
        AudioFrame([0] * 160, 8000)  # type: ignore[arg-type]


def test_stereo_is_rejected_naming_the_shape() -> None:
    with pytest.raises(AudioFormatError, match=r"mono .*\(160, 2\)"):
        AudioFrame(np.zeros((160, 2), np.int16), 8000)


@pytest.mark.parametrize("rate", [0, -8000])
def test_non_positive_rate_is_rejected(rate: int) -> None:
    with pytest.raises(AudioFormatError, match=f"positive, got {rate}"):
        AudioFrame(np.zeros(160, np.int16), rate)


def test_check_accepts_a_proper_frame() -> None:
    AudioFrame(np.zeros(320, np.int16), 16000).check(16000)
    AudioFrame(np.zeros(160, np.int16), 16000).check(16000, frame_ms=10)


def test_check_names_the_wrong_rate() -> None:
    frame = AudioFrame(np.zeros(160, np.int16), 8000)
    with pytest.raises(AudioFormatError, match="expected 16000 Hz audio, got a frame at 8000 Hz"):
        frame.check(16000)


def test_check_names_the_wrong_length() -> None:
    frame = AudioFrame(np.zeros(300, np.int16), 16000)
    with pytest.raises(
        AudioFormatError, match=r"expected 20 ms frames \(320 samples at 16000 Hz\), got 300"
    ):
        frame.check(16000)


def test_frames_are_immutable_values() -> None:
    frame = AudioFrame(np.zeros(160, np.int16), 8000)
    with pytest.raises(AttributeError):
        frame.sample_rate = 16000  # type: ignore[misc]
