"""Noise generators and SNR mixing: levels, spectra, and the SNR a caller test relies on."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest

from frontdesk.audio import AudioFormatError
from frontdesk.audio.noise import (
    active_level_db,
    babble,
    brown_noise,
    car_rumble,
    mix_at_snr,
    pink_noise,
    rms_db,
)
from frontdesk.audio.wav import decode_wav

RATE = 16000

SENTENCES = [
    ("en-us", "Hello, I would like to book an appointment for next Tuesday afternoon."),
    ("en-gb+f3", "Could you tell me how much the full service costs for a small car?"),
    ("en-us+m3", "We moved last month, so the address on my account is out of date."),
    ("en-us+f4", "Is there anyone available on Saturday morning, maybe around ten?"),
]


@pytest.fixture(scope="module")
def voices() -> list[np.ndarray]:
    """Real speech from espeak-ng (22.05 kHz), one clip per talker."""
    clips = []
    for voice, text in SENTENCES:
        wav = subprocess.run(
            ["espeak-ng", "-v", voice, "--stdout", text], capture_output=True, check=True
        ).stdout
        pcm, rate = decode_wav(wav)
        assert rate == 22050
        clips.append(pcm)
    return clips


def _psd(pcm: np.ndarray, rate: int, segment: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Averaged periodogram (Welch, Hann window, no overlap)."""
    whole = len(pcm) - len(pcm) % segment
    segments = pcm[:whole].astype(np.float64).reshape(-1, segment) * np.hanning(segment)
    power = np.mean(np.abs(np.fft.rfft(segments, axis=1)) ** 2, axis=0)
    return np.fft.rfftfreq(segment, 1 / rate), power


def _slope_db_per_octave(pcm: np.ndarray, low_hz: float, high_hz: float) -> float:
    freqs, power = _psd(pcm, RATE)
    band = (freqs >= low_hz) & (freqs <= high_hz)
    slope, _ = np.polyfit(np.log2(freqs[band]), 10 * np.log10(power[band]), 1)
    return float(slope)


def _syllables(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Speech-like bursts (tones of varying loudness) between pauses, and the burst mask."""
    pieces, mask = [], []
    for _ in range(30):
        n_on, n_off = 160 * int(rng.integers(5, 20)), 160 * int(rng.integers(2, 15))
        t = np.arange(n_on) / RATE
        amplitude = 4000 * 10 ** (rng.uniform(-15, 0) / 20)
        pieces += [amplitude * np.sin(2 * np.pi * rng.uniform(150, 900) * t), np.zeros(n_off)]
        mask += [np.ones(n_on, bool), np.zeros(n_off, bool)]
    return np.rint(np.concatenate(pieces)).astype(np.int16), np.concatenate(mask)


def _measured_snr_db(speech: np.ndarray, mask: np.ndarray, mixed: np.ndarray) -> float:
    """Speech power over the bursts / power of what the mix added, in dB."""
    added = mixed.astype(np.float64) - speech
    speech_power = np.mean(speech[mask].astype(np.float64) ** 2)
    return float(10 * np.log10(speech_power / np.mean(added**2)))


@pytest.mark.parametrize("kind", ["pink", "car", "babble"])
@pytest.mark.parametrize("snr_db", [0.0, 5.0, 10.0, 20.0])
def test_mix_has_the_requested_snr(kind: str, snr_db: float, voices: list[np.ndarray]) -> None:
    rng = np.random.default_rng(int(snr_db) + 100)
    speech, mask = _syllables(rng)
    noise = {
        "pink": lambda: pink_noise(len(speech), rng),
        "car": lambda: car_rumble(len(speech), RATE, rng),
        "babble": lambda: babble(voices, len(speech), rng),
    }[kind]()

    mixed = mix_at_snr(speech, noise, snr_db)

    assert mixed.dtype == np.int16
    assert len(mixed) == len(speech)
    assert _measured_snr_db(speech, mask, mixed) == pytest.approx(snr_db, abs=0.5)


def test_silence_around_the_speech_does_not_change_the_noise_level() -> None:
    rng = np.random.default_rng(3)
    speech, _ = _syllables(rng)
    noise = pink_noise(3 * len(speech), rng)
    padded = np.concatenate([np.zeros(len(speech), np.int16), speech])

    def noise_gain(clean: np.ndarray) -> float:
        added = mix_at_snr(clean, noise, 10.0).astype(np.float64) - clean
        used = noise[: len(clean)].astype(np.float64)
        return float(added @ used / (used @ used))

    # Same noise power per unit of noise power in the stretch used: within 0.2 dB.
    ratio = noise_gain(padded) ** 2 * np.mean(noise[: len(padded)].astype(float) ** 2)
    ratio /= noise_gain(speech) ** 2 * np.mean(noise[: len(speech)].astype(float) ** 2)
    assert abs(10 * np.log10(ratio)) < 0.2


def test_short_noise_is_looped_to_the_speech_length() -> None:
    rng = np.random.default_rng(4)
    speech = np.rint(3000 * np.sin(np.arange(3 * RATE) * 0.05)).astype(np.int16)
    noise = pink_noise(RATE // 2, rng)
    added = mix_at_snr(speech, noise, 0.0).astype(np.int32) - speech
    period = RATE // 2
    assert len(added) == 3 * RATE
    assert np.abs(added[:period] - added[period : 2 * period]).max() <= 1
    assert np.abs(added[:period] - added[-period:]).max() <= 1


def test_pink_noise_falls_3_db_per_octave() -> None:
    pink = pink_noise(2**20, np.random.default_rng(5))
    assert _slope_db_per_octave(pink, 50, 6000) == pytest.approx(-3.01, abs=0.3)


def test_brown_noise_falls_6_db_per_octave() -> None:
    brown = brown_noise(2**20, RATE, np.random.default_rng(6))
    assert _slope_db_per_octave(brown, 100, 4000) == pytest.approx(-6.02, abs=0.5)


def test_car_rumble_is_low_frequency_with_an_engine_hum() -> None:
    rumble = car_rumble(30 * RATE, RATE, np.random.default_rng(7), level_db=-25.0)
    freqs, power = _psd(rumble, RATE, segment=RATE)  # 1 Hz resolution
    below_300 = power[freqs < 300].sum() / power.sum()
    above_1k = power[freqs > 1000].sum() / power.sum()
    assert below_300 > 0.9
    assert above_1k < 0.01
    # The engine's firing frequency (30-70 Hz, drifting 3%) is the strongest line.
    assert 29 <= freqs[np.argmax(power)] <= 73
    assert rms_db(rumble) == pytest.approx(-25.0, abs=0.1)


def test_babble_is_continuous_speech_at_the_requested_level(voices: list[np.ndarray]) -> None:
    n = 20 * 22050
    crowd = babble(voices, n, np.random.default_rng(8), voices=6, level_db=-28.0)
    assert crowd.dtype == np.int16
    assert len(crowd) == n
    assert rms_db(crowd) == pytest.approx(-28.0, abs=0.1)

    def quiet_fraction(pcm: np.ndarray) -> float:
        blocks = pcm[: len(pcm) - len(pcm) % 441].astype(np.float64).reshape(-1, 441)
        level = 10 * np.log10(np.mean(blocks**2, axis=1) + 1e-9)
        return float(np.mean(level < np.median(level) - 20))

    # One talker pauses between words; six overlapping talkers (almost) never all do.
    single = np.concatenate(voices)
    assert quiet_fraction(single) > 0.1
    assert quiet_fraction(crowd) < 0.02


@pytest.mark.parametrize("n", [0, 1, 2, 999, 16001])
def test_generators_give_int16_of_the_exact_length(n: int, voices: list[np.ndarray]) -> None:
    rng = np.random.default_rng(9)
    for noise in (
        pink_noise(n, rng),
        brown_noise(n, RATE, rng),
        car_rumble(n, RATE, rng),
        babble(voices, n, rng),
    ):
        assert noise.dtype == np.int16
        assert noise.shape == (n,)


def test_same_seed_same_noise() -> None:
    one = car_rumble(RATE, RATE, np.random.default_rng(10))
    two = car_rumble(RATE, RATE, np.random.default_rng(10))
    other = car_rumble(RATE, RATE, np.random.default_rng(11))
    assert np.array_equal(one, two)
    assert not np.array_equal(one, other)


def test_levels_in_dbfs() -> None:
    t = np.arange(RATE) / RATE
    sine = np.rint(32767 * np.sin(2 * np.pi * 1000 * t)).astype(np.int16)
    assert rms_db(sine) == pytest.approx(-3.01, abs=0.01)
    assert rms_db(np.zeros(100, np.int16)) == float("-inf")
    # Active level ignores the silence around the speech; plain RMS does not.
    padded = np.concatenate([np.zeros(3 * RATE, np.int16), sine])
    assert active_level_db(padded) == pytest.approx(-3.01, abs=0.01)
    assert rms_db(padded) == pytest.approx(-3.01 - 6.02, abs=0.01)


def test_bad_input_is_rejected_with_the_reason() -> None:
    rng = np.random.default_rng(12)
    speech = np.full(1600, 1000, np.int16)
    with pytest.raises(AudioFormatError, match="speech is silent"):
        mix_at_snr(np.zeros(1600, np.int16), pink_noise(1600, rng), 10.0)
    with pytest.raises(AudioFormatError, match="noise is silent"):
        mix_at_snr(speech, np.zeros(1600, np.int16), 10.0)
    with pytest.raises(AudioFormatError, match="noise is empty"):
        mix_at_snr(speech, np.zeros(0, np.int16), 10.0)
    with pytest.raises(AudioFormatError, match="int16"):
        mix_at_snr(speech.astype(np.float32), pink_noise(1600, rng), 10.0)
    with pytest.raises(ValueError, match="at least one"):
        babble([], 100, rng)
    with pytest.raises(AudioFormatError, match="clip 1 is silent"):
        babble([speech, np.zeros(800, np.int16)], 100, rng)
    with pytest.raises(ValueError, match="n_samples"):
        pink_noise(-1, rng)
