"""Background noise for calls under test: pink, brown, car interior, babble; mixing at an SNR.

Generators return int16 audio at an RMS level in dBFS (0 dBFS = a full-scale square wave,
so a full-scale sine is -3 dBFS). Spectra are shaped in the frequency domain, so the slopes
are exact on average rather than approximated by filters.

SNR, as :func:`mix_at_snr` uses it, is *active* speech power over noise power: speech power
is averaged only over blocks of the speech that are active (see :func:`active_level_db`), so
leading and trailing silence in a clip does not change how loud the noise is made.
"""

from __future__ import annotations

import numpy as np

from frontdesk.audio.frames import AudioFormatError

FULL_SCALE = 32768.0
DEFAULT_LEVEL_DB = -30.0
"""Default noise level, dBFS RMS: audible background under speech at about -20 dBFS."""

ACTIVE_BLOCK = 160
"""Samples per block when finding active speech: 20 ms at 8 kHz, 10 ms at 16 kHz."""

ACTIVE_RANGE_DB = 40.0
"""A block is active speech if its power is within this many dB of the loudest block."""


def _check_pcm(pcm: np.ndarray, what: str) -> None:
    if not isinstance(pcm, np.ndarray) or pcm.dtype != np.int16:
        got = pcm.dtype if isinstance(pcm, np.ndarray) else type(pcm).__name__
        raise AudioFormatError(f"{what} must be int16 PCM samples, got {got}")
    if pcm.ndim != 1:
        raise AudioFormatError(f"{what} must be mono (1-D), got shape {pcm.shape}")


def _check_length(n_samples: int) -> None:
    if n_samples < 0:
        raise ValueError(f"n_samples must be >= 0, got {n_samples}")


def _power(samples: np.ndarray) -> float:
    return float(np.mean(np.square(samples, dtype=np.float64))) if len(samples) else 0.0


def _db(power: float) -> float:
    return 10 * np.log10(power / FULL_SCALE**2) if power > 0 else float("-inf")


def rms_db(pcm: np.ndarray) -> float:
    """RMS level of int16 audio in dBFS; ``-inf`` for digital silence or no samples."""
    _check_pcm(pcm, "audio")
    return float(_db(_power(pcm)))


def _active_power(pcm: np.ndarray, block: int) -> float:
    if len(pcm) <= block:
        return _power(pcm)
    whole = len(pcm) - len(pcm) % block
    blocks = pcm[:whole].astype(np.float64).reshape(-1, block)
    powers = np.mean(blocks**2, axis=1)
    loudest = powers.max()
    if loudest == 0:
        return 0.0
    return float(powers[powers >= loudest * 10 ** (-ACTIVE_RANGE_DB / 10)].mean())


def active_level_db(pcm: np.ndarray, block: int = ACTIVE_BLOCK) -> float:
    """Level of the active part of speech, dBFS.

    The audio is cut into ``block``-sample blocks (a trailing partial block is ignored;
    audio shorter than a block is one block);
    blocks within :data:`ACTIVE_RANGE_DB` of the loudest one are active, and their mean
    power is the level. ``-inf`` for digital silence.
    """
    _check_pcm(pcm, "speech")
    return float(_db(_active_power(pcm, block)))


def _at_level(signal: np.ndarray, level_db: float) -> np.ndarray:
    """Scale float ``signal`` to an RMS of ``level_db`` dBFS and round to int16 (clipped)."""
    power = _power(signal)
    if power == 0:
        return np.zeros(len(signal), dtype=np.int16)
    scaled = signal * (FULL_SCALE * 10 ** (level_db / 20) / np.sqrt(power))
    return np.clip(np.rint(scaled), -32768, 32767).astype(np.int16)


def _shaped_noise(n_samples: int, rng: np.random.Generator, gain: np.ndarray) -> np.ndarray:
    """Gaussian noise whose amplitude spectrum is ``gain`` (one value per rfft bin)."""
    spectrum = rng.standard_normal(len(gain)) + 1j * rng.standard_normal(len(gain))
    return np.fft.irfft(spectrum * gain, n=n_samples)


def pink_noise(
    n_samples: int, rng: np.random.Generator, level_db: float = DEFAULT_LEVEL_DB
) -> np.ndarray:
    """Pink noise (power falls 3 dB per octave), int16 at ``level_db`` dBFS RMS."""
    _check_length(n_samples)
    if n_samples < 2:
        return np.zeros(n_samples, dtype=np.int16)
    bins = np.arange(n_samples // 2 + 1, dtype=np.float64)
    gain = np.zeros_like(bins)
    gain[1:] = 1 / np.sqrt(bins[1:])  # no DC: noise must not push the waveform off centre
    return _at_level(_shaped_noise(n_samples, rng, gain), level_db)


def _brown_gain(n_samples: int, sample_rate: int, low_cut_hz: float) -> np.ndarray:
    freqs = np.fft.rfftfreq(n_samples, 1 / sample_rate)
    gain = 1 / np.maximum(freqs, low_cut_hz)
    gain[0] = 0.0
    return gain


def brown_noise(
    n_samples: int,
    sample_rate: int,
    rng: np.random.Generator,
    level_db: float = DEFAULT_LEVEL_DB,
    low_cut_hz: float = 20.0,
) -> np.ndarray:
    """Brown noise (power falls 6 dB per octave above ``low_cut_hz``), int16 at ``level_db``."""
    _check_length(n_samples)
    if n_samples < 2:
        return np.zeros(n_samples, dtype=np.int16)
    gain = _brown_gain(n_samples, sample_rate, low_cut_hz)
    return _at_level(_shaped_noise(n_samples, rng, gain), level_db)


def car_rumble(
    n_samples: int,
    sample_rate: int,
    rng: np.random.Generator,
    level_db: float = DEFAULT_LEVEL_DB,
) -> np.ndarray:
    """A car interior at speed, int16 at ``level_db`` dBFS RMS.

    Brown noise low-passed at about 200 Hz (road and body rumble), an engine hum (a firing
    frequency of 30-70 Hz and three harmonics, its speed drifting slowly) 6 dB below the
    rumble, and a faint pink tyre/wind hiss 25 dB below it.
    """
    _check_length(n_samples)
    if n_samples < 2:
        return np.zeros(n_samples, dtype=np.int16)
    freqs = np.fft.rfftfreq(n_samples, 1 / sample_rate)
    lowpass = 1 / np.sqrt(1 + (freqs / 200.0) ** 4)  # second-order roll-off
    gain = _brown_gain(n_samples, sample_rate, 20.0) * lowpass
    rumble = _shaped_noise(n_samples, rng, gain)
    rumble /= np.sqrt(_power(rumble))

    t = np.arange(n_samples) / sample_rate
    firing_hz = rng.uniform(30.0, 70.0)
    drift = 1 + 0.03 * np.sin(2 * np.pi * rng.uniform(0.05, 0.2) * t + rng.uniform(0, 2 * np.pi))
    phase = 2 * np.pi * np.cumsum(firing_hz * drift) / sample_rate
    hum = np.zeros(n_samples, dtype=np.float64)
    for harmonic, amplitude in enumerate((1.0, 0.5, 0.3, 0.15), start=1):
        hum += amplitude * np.sin(harmonic * phase + rng.uniform(0, 2 * np.pi))
    hum *= 10 ** (-6 / 20) / np.sqrt(_power(hum))

    hiss = pink_noise(n_samples, rng, level_db=0.0).astype(np.float64)
    hiss *= 10 ** (-25 / 20) / np.sqrt(_power(hiss))
    return _at_level(rumble + hum + hiss, level_db)


def _looped_voice(clip: np.ndarray, n_samples: int, rng: np.random.Generator) -> np.ndarray:
    """``clip`` repeated with random pauses between repeats, from a random starting point."""
    pieces: list[np.ndarray] = []
    total = 0
    # One extra repeat so a random start offset still leaves n_samples to take.
    while total < n_samples + 2 * len(clip):
        pause = np.zeros(int(rng.integers(0, len(clip) // 4 + 1)), dtype=np.float64)
        pieces += [clip.astype(np.float64), pause]
        total += len(clip) + len(pause)
    track = np.concatenate(pieces)
    start = int(rng.integers(0, len(clip)))
    return track[start : start + n_samples]


def babble(
    clips: list[np.ndarray],
    n_samples: int,
    rng: np.random.Generator,
    voices: int | None = None,
    level_db: float = DEFAULT_LEVEL_DB,
) -> np.ndarray:
    """Several talkers at once (a busy room), int16 at ``level_db`` dBFS RMS.

    Each of ``voices`` talkers (default: one per clip) loops one clip, all at the same
    sample rate, with random pauses, from a random offset, at an active level within
    +-3 dB of the others. Clips are reused when there are more voices than clips.
    """
    _check_length(n_samples)
    if not clips:
        raise ValueError("babble needs at least one speech clip")
    for i, clip in enumerate(clips):
        _check_pcm(clip, f"babble clip {i}")
        if _active_power(clip, ACTIVE_BLOCK) == 0:
            raise AudioFormatError(f"babble clip {i} is silent")
    voices = len(clips) if voices is None else voices
    if voices < 1:
        raise ValueError(f"voices must be >= 1, got {voices}")
    mix = np.zeros(n_samples, dtype=np.float64)
    for v in range(voices):
        clip = clips[v % len(clips)]
        gain = 10 ** (rng.uniform(-3, 3) / 20) / np.sqrt(_active_power(clip, ACTIVE_BLOCK))
        mix += gain * _looped_voice(clip, n_samples, rng)
    return _at_level(mix, level_db)


def mix_at_snr(speech: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """``speech`` plus ``noise`` scaled to ``snr_db`` below it; int16, same length as speech.

    The noise is looped or cut to the speech's length; its power is measured over that
    stretch. Speech power is its active power (:func:`active_level_db`). The sum is
    rounded and clipped to int16.
    """
    _check_pcm(speech, "speech")
    _check_pcm(noise, "noise")
    if not len(noise):
        raise AudioFormatError("noise is empty")
    speech_power = _active_power(speech, ACTIVE_BLOCK)
    if speech_power == 0:
        raise AudioFormatError("speech is silent: SNR is undefined")
    fitted = np.resize(noise, len(speech)).astype(np.float64)
    noise_power = _power(fitted)
    if noise_power == 0:
        raise AudioFormatError("noise is silent: it cannot be scaled to an SNR")
    gain = np.sqrt(speech_power / (noise_power * 10 ** (snr_db / 10)))
    mixed = speech.astype(np.float64) + gain * fitted
    return np.clip(np.rint(mixed), -32768, 32767).astype(np.int16)
