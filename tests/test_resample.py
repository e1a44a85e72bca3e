"""Resampling and re-framing: exact lengths and clocks over long calls, tones kept, errors."""

from __future__ import annotations

import numpy as np
import pytest

from frontdesk.audio import AudioFormatError, AudioFrame
from frontdesk.audio.resample import FrameResampler, Reframer, StreamResampler, resample

PAIRS = [(8000, 16000), (16000, 8000), (22050, 16000), (22050, 8000), (24000, 8000)]
TEN_MINUTES_S = 600
FRAMES_IN_TEN_MINUTES = 30_000


def _noise(seconds: float, rate: int, seed: int = 0) -> np.ndarray:
    """White noise; long spans repeat one second of it (content is not what these test)."""
    rng = np.random.default_rng(seed)
    second = (rng.standard_normal(rate) * 3000).astype(np.int16)
    return np.tile(second, int(np.ceil(seconds)))[: int(seconds * rate)]


def _tone(freq: float, seconds: float, rate: int, amplitude: float = 12000) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return np.round(amplitude * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def _chunks(pcm: np.ndarray, size: int) -> list[np.ndarray]:
    return [pcm[at : at + size] for at in range(0, len(pcm), size)]


def _sine_residual_db(pcm: np.ndarray, freq: float, rate: int) -> float:
    """Power of what is not a ``freq`` sinusoid, relative to the signal, in dB."""
    t = np.arange(len(pcm)) / rate
    basis = np.column_stack([np.sin(2 * np.pi * freq * t), np.cos(2 * np.pi * freq * t)])
    signal = pcm.astype(np.float64)
    fit, *_ = np.linalg.lstsq(basis, signal, rcond=None)
    residual = signal - basis @ fit
    return float(10 * np.log10(np.mean(residual**2) / np.mean(signal**2)))


@pytest.mark.parametrize(("in_rate", "out_rate"), PAIRS)
def test_ten_minutes_in_20ms_chunks_keep_exact_length_frame_count_and_clock(
    in_rate: int, out_rate: int
) -> None:
    pcm = _noise(TEN_MINUTES_S, in_rate)
    resampler = StreamResampler(in_rate, out_rate)
    reframer = Reframer(out_rate)
    frames: list[AudioFrame] = []
    out_samples = 0
    outputs = (resampler.process(chunk) for chunk in _chunks(pcm, in_rate // 50))
    for out in [*outputs, resampler.process(np.zeros(0, np.int16), last=True)]:
        out_samples += len(out)
        frames += reframer.push(out)
    if (tail := reframer.flush()) is not None:
        frames.append(tail)

    assert abs(out_samples - round(len(pcm) * out_rate / in_rate)) <= 1
    assert len(frames) == FRAMES_IN_TEN_MINUTES
    assert {len(f.pcm) for f in frames} == {out_rate // 50}
    stamps = np.array([f.timestamp for f in frames])
    expected = np.arange(FRAMES_IN_TEN_MINUTES) * 0.02
    assert np.max(np.abs(stamps - expected)) < 1e-9


@pytest.mark.parametrize(("in_rate", "out_rate"), PAIRS)
def test_a_tone_keeps_its_frequency_and_stays_clean(in_rate: int, out_rate: int) -> None:
    freq = 997.0
    resampler = StreamResampler(in_rate, out_rate)
    parts = [resampler.process(c) for c in _chunks(_tone(freq, 1.0, in_rate), in_rate // 50)]
    out = np.concatenate([*parts, resampler.process(np.zeros(0, np.int16), last=True)])

    spectrum = np.abs(np.fft.rfft(out * np.hanning(len(out))))
    peak_hz = np.fft.rfftfreq(len(out), 1 / out_rate)[np.argmax(spectrum)]
    assert peak_hz == pytest.approx(freq, abs=1.0)
    # Away from the stream's start and end the output is a pure tone, not a distorted one.
    middle = out[out_rate // 10 : -out_rate // 10]
    assert _sine_residual_db(middle, freq, out_rate) < -60


@pytest.mark.parametrize(("in_rate", "out_rate"), PAIRS)
def test_streaming_holds_back_little_audio(in_rate: int, out_rate: int) -> None:
    # Latency budget: after one second of 20 ms frames, at most 35 ms is still held back.
    resampler = StreamResampler(in_rate, out_rate)
    out = sum(len(resampler.process(c)) for c in _chunks(_noise(1.0, in_rate), in_rate // 50))
    assert out >= (1.0 - 0.035) * out_rate


def test_one_shot_resample_length_and_frequency() -> None:
    out = resample(_tone(440.0, 2.0, 22050), 22050, 8000)
    assert out.dtype == np.int16
    assert len(out) == 16000
    spectrum = np.abs(np.fft.rfft(out * np.hanning(len(out))))
    assert np.fft.rfftfreq(len(out), 1 / 8000)[np.argmax(spectrum)] == pytest.approx(440, abs=1)


def test_same_rate_passes_audio_through_unchanged() -> None:
    pcm = _noise(0.1, 16000)
    assert np.array_equal(StreamResampler(16000, 16000).process(pcm), pcm)
    assert np.array_equal(resample(pcm, 16000, 16000), pcm)


def test_reset_drops_held_back_audio() -> None:
    resampler = StreamResampler(8000, 16000)
    for chunk in _chunks(_tone(1000.0, 0.2, 8000), 160):
        resampler.process(chunk)
    resampler.reset()
    after = resampler.process(np.zeros(1600, np.int16), last=True)
    assert len(after) == 3200
    assert np.abs(after).max() == 0


def test_reframer_cuts_any_chunking_into_exact_frames() -> None:
    rng = np.random.default_rng(7)
    pcm = _noise(3.01, 22050)
    reframer = Reframer(22050, start=1.5)
    frames: list[AudioFrame] = []
    at = 0
    while at < len(pcm):
        size = int(rng.integers(1, 2000))
        frames += reframer.push(pcm[at : at + size])
        at += size
    assert reframer.pending == len(pcm) % 441
    tail = reframer.flush()
    assert tail is not None
    frames.append(tail)

    assert all(len(f.pcm) == 441 for f in frames)
    joined = np.concatenate([f.pcm for f in frames])
    assert np.array_equal(joined[: len(pcm)], pcm)
    assert not joined[len(pcm) :].any()  # the last frame is padded with silence
    stamps = np.array([f.timestamp for f in frames])
    assert np.max(np.abs(stamps - (1.5 + 0.02 * np.arange(len(frames))))) < 1e-9
    assert reframer.flush() is None


def test_frame_resampler_clock_starts_at_the_first_frame() -> None:
    resampler = FrameResampler(8000, 16000)
    frames: list[AudioFrame] = []
    for k, chunk in enumerate(_chunks(_noise(1.0, 8000), 160)):
        frames += resampler.process(AudioFrame(chunk, 8000, 12.34 + k * 0.02))
    frames += resampler.flush()
    assert len(frames) == 50
    assert frames[0].timestamp == pytest.approx(12.34, abs=1e-9)
    assert frames[-1].timestamp == pytest.approx(12.34 + 49 * 0.02, abs=1e-9)


def test_frame_at_the_wrong_rate_is_rejected_naming_both_rates() -> None:
    resampler = FrameResampler(8000, 16000)
    with pytest.raises(AudioFormatError, match=r"expected 8000 Hz.*16000 Hz"):
        resampler.process(AudioFrame(np.zeros(320, np.int16), 16000))


@pytest.mark.parametrize(("in_rate", "out_rate"), [(44100, 16000), (8000, 48000)])
def test_unsupported_rates_are_rejected(in_rate: int, out_rate: int) -> None:
    bad = in_rate if in_rate == 44100 else out_rate
    with pytest.raises(AudioFormatError, match=rf"unsupported .*{bad} Hz"):
        StreamResampler(in_rate, out_rate)
    with pytest.raises(AudioFormatError, match=rf"unsupported .*{bad} Hz"):
        FrameResampler(in_rate, out_rate)
    with pytest.raises(AudioFormatError, match=rf"unsupported .*{bad} Hz"):
        resample(np.zeros(10, np.int16), in_rate, out_rate)


def test_non_int16_or_stereo_input_is_rejected() -> None:
    resampler = StreamResampler(8000, 16000)
    with pytest.raises(AudioFormatError, match="int16"):
        resampler.process(np.zeros(160, np.float32))
    with pytest.raises(AudioFormatError, match="mono"):
        resampler.process(np.zeros((160, 2), np.int16))
    with pytest.raises(AudioFormatError, match="int16"):
        Reframer(8000).push(np.zeros(160, np.int32))


def test_a_flushed_stream_refuses_more_audio_until_reset() -> None:
    resampler = StreamResampler(8000, 16000)
    resampler.process(np.zeros(160, np.int16), last=True)
    with pytest.raises(RuntimeError, match="reset"):
        resampler.process(np.zeros(160, np.int16))
    resampler.reset()
    assert len(resampler.process(np.zeros(1600, np.int16), last=True)) == 3200


def test_reframer_rejects_frames_that_are_not_whole_samples() -> None:
    with pytest.raises(AudioFormatError, match="whole number of samples"):
        Reframer(22050, frame_ms=10)
