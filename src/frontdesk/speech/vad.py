"""Voice activity detection: Silero VAD (ONNX) turning 20 ms frames into speech start/end events.

The model file ships inside the ``silero-vad`` wheel; we run it on onnxruntime directly (the
package's own wrapper needs torch). One inference session is shared by every detector, each
detector keeps its own recurrent state. A 32 ms chunk costs well under a millisecond, so
detectors run inline on the event loop.

The VAD only reports speech and pauses, in the audio's own clock; deciding that the caller's
turn is over is the endpointer's job, so the default minimum silence is short.
"""

from __future__ import annotations

import functools
import importlib.util
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from frontdesk.audio import AudioFrame

SAMPLE_RATE = 16000
CHUNK_SAMPLES = 512
"""Silero v5/v6 score 32 ms chunks at 16 kHz."""
CONTEXT_SAMPLES = 64
"""The model sees the last 64 samples of the previous chunk before each chunk (as upstream)."""
_CHUNK_S = CHUNK_SAMPLES / SAMPLE_RATE


@dataclass(frozen=True, slots=True)
class SpeechStart:
    """Speech began at ``timestamp`` (onset of the first voiced chunk, audio clock seconds)."""

    timestamp: float


@dataclass(frozen=True, slots=True)
class SpeechEnd:
    """Speech stopped at ``timestamp`` (end of the last voiced chunk, audio clock seconds)."""

    timestamp: float


VADEvent = SpeechStart | SpeechEnd


def silero_model_path() -> Path:
    """Path of ``silero_vad.onnx`` inside the installed silero-vad wheel.

    Located without importing the package: its ``__init__`` imports torch, which we do not use.
    """
    spec = importlib.util.find_spec("silero_vad")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("silero-vad is not installed (pip install --no-deps silero-vad)")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "silero_vad.onnx"
    if not path.is_file():
        raise RuntimeError(f"silero-vad is installed but {path} is missing")
    return path


class SileroVAD:
    """The Silero VAD model: one onnxruntime session, safe to share across threads and calls."""

    def __init__(self, path: Path | None = None) -> None:
        opts = ort.SessionOptions()
        # One thread per chunk: chunks are tiny and many calls share two cores.
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        self._session = ort.InferenceSession(
            str(path or silero_model_path()), sess_options=opts, providers=["CPUExecutionProvider"]
        )
        self._sr = np.array(SAMPLE_RATE, dtype=np.int64)

    @staticmethod
    def initial_state() -> np.ndarray:
        """The recurrent state for a fresh stream."""
        return np.zeros((2, 1, 128), dtype=np.float32)

    def score(self, window: np.ndarray, state: np.ndarray) -> tuple[float, np.ndarray]:
        """Speech probability of one window (context + chunk, float32 in [-1, 1]) and new state."""
        out, new_state = self._session.run(
            None, {"input": window[np.newaxis, :], "state": state, "sr": self._sr}
        )
        return float(out[0, 0]), new_state


_shared_lock = threading.Lock()


@functools.cache
def _load_shared() -> SileroVAD:
    return SileroVAD()


def shared_model() -> SileroVAD:
    """The process-wide model, loaded on first use."""
    with _shared_lock:
        return _load_shared()


class VoiceActivityDetector:
    """Speech start/end events for one audio stream (one per call).

    Feed consecutive 20 ms, 16 kHz frames to :meth:`process`. Speech is confirmed once
    ``min_speech_ms`` of chunks score at least ``threshold`` without dropping below
    ``neg_threshold``; it ends once chunks stay below ``neg_threshold`` for ``min_silence_ms``.

    Event timestamps say where the speech really started/stopped in the frames' clock (widened
    by ``speech_pad_ms``), not when the decision was made. The model only sees 32 ms chunks and
    its score lags the sound (it stays high for ~60-100 ms after a word ends, up to ~250 ms in
    noise), so the boundary it implies is refined on an 8 ms grid from band energies measured
    against the noise of the pauses (see :class:`_EdgeTrack`), but never against less than an
    audible level (-52 dBFS): on a silent line a phrase's faint fade-out is not speech. In
    noise, where the faint start and end of a phrase are buried, the edges are widened by up
    to 25 ms (start) and 50 ms (end), the more the lower the speech-to-noise ratio.
    """

    def __init__(
        self,
        threshold: float = 0.5,
        neg_threshold: float | None = None,
        min_speech_ms: int = 64,
        min_silence_ms: int = 100,
        speech_pad_ms: int = 0,
        model: SileroVAD | None = None,
    ) -> None:
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"threshold must be between 0 and 1, got {threshold}")
        neg = max(threshold - 0.15, 0.01) if neg_threshold is None else neg_threshold
        if not 0.0 <= neg <= threshold:
            raise ValueError(f"neg_threshold must be in [0, threshold], got {neg}")
        if min_speech_ms < 0 or min_silence_ms < 0 or speech_pad_ms < 0:
            raise ValueError("min_speech_ms, min_silence_ms and speech_pad_ms must be >= 0")
        self.threshold = threshold
        self.neg_threshold = neg
        self.min_speech_s = min_speech_ms / 1000
        self.min_silence_s = min_silence_ms / 1000
        self.speech_pad_s = speech_pad_ms / 1000
        self._model = model or shared_model()
        self.reset()

    def reset(self) -> None:
        """Forget all audio and state (a new stream starts)."""
        self._state = SileroVAD.initial_state()
        self._context = np.zeros(CONTEXT_SAMPLES, dtype=np.float32)
        self._pending = np.zeros(0, dtype=np.float32)
        self._pending_start = 0.0
        self._candidate_start: float | None = None  # onset of unconfirmed speech
        self._silence_start: float | None = None  # onset of a pause inside speech
        self._last_end = float("-inf")
        self._speech_start = 0.0
        self._edges = _EdgeTrack()
        self.probability = 0.0
        """Speech probability of the most recent 32 ms chunk."""
        self.is_speech = False
        """True between a SpeechStart and the following SpeechEnd."""

    def process(self, frame: AudioFrame) -> list[VADEvent]:
        """Add one 20 ms frame; returns the events decided by it (usually none)."""
        frame.check(SAMPLE_RATE)
        if not len(self._pending):
            # Re-anchor the clock whenever the buffer drains, so gaps in the stream are honoured.
            self._pending_start = frame.timestamp
        samples = frame.pcm.astype(np.float32) / 32768.0
        self._pending = np.concatenate([self._pending, samples])
        events: list[VADEvent] = []
        while len(self._pending) >= CHUNK_SAMPLES:
            chunk, self._pending = self._pending[:CHUNK_SAMPLES], self._pending[CHUNK_SAMPLES:]
            start = self._pending_start
            self._pending_start += _CHUNK_S
            self._edges.add(chunk, start)
            window = np.concatenate([self._context, chunk])
            self._context = chunk[-CONTEXT_SAMPLES:]
            self.probability, self._state = self._model.score(window, self._state)
            event = self._advance(self.probability, start)
            if event is not None:
                events.append(event)
        return events

    def _advance(self, prob: float, start: float) -> VADEvent | None:
        """Update the speech state with the chunk starting at ``start``; maybe emit an event."""
        end = start + _CHUNK_S
        if not self.is_speech:
            if prob >= self.threshold:
                if self._candidate_start is None:
                    self._candidate_start = start
                if end - self._candidate_start >= self.min_speech_s:
                    self.is_speech = True
                    self._silence_start = None
                    onset = self._edges.onset(self._candidate_start, floor_time=self._last_end)
                    self._speech_start = max(0.0, self._last_end, onset - self.speech_pad_s)
                    return SpeechStart(self._speech_start)
            elif prob < self.neg_threshold:
                self._candidate_start = None
                self._edges.learn_noise()
            return None
        if prob >= self.threshold:
            self._silence_start = None
        elif prob < self.neg_threshold and self._silence_start is None:
            self._silence_start = start
        if self._silence_start is not None and end - self._silence_start >= self.min_silence_s:
            self.is_speech = False
            self._candidate_start = None
            stopped = self._edges.offset(self._silence_start, self._speech_start, end)
            stopped = max(stopped, self._speech_start)
            self._silence_start = None
            self._last_end = stopped + self.speech_pad_s
            return SpeechEnd(self._last_end)
        return None


_HOP = 128
"""Edges are placed on an 8 ms grid: four analysis windows per model chunk."""
_HOP_S = _HOP / SAMPLE_RATE
_FFT = 256
"""Each window is 16 ms (Hann), centred on a grid point."""
_BANDS_HZ = ((150, 400), (400, 800), (800, 1500), (1500, 3000), (3000, 5000), (5000, 8000))
"""Band energies are compared with the noise band by band, so the low-frequency bulk of
car or pink noise cannot swamp a fricative, nor a hiss swamp a voiced tail."""
_HISTORY = 128
"""Windows kept (~1 s): covers the look-back, the silence the model waits for, and enough
speech to measure its level."""
_NOISE_WINDOWS = 64
"""Pause windows the noise estimate is taken from (~0.5 s)."""
_ONSET_LOOK_BACK_S = 0.128
"""How far before the model's first voiced chunk an onset may lie."""
_OFFSET_LOOK_BACK_S = 0.3
"""How far before the model's first silent chunk an offset may lie: in noise the model's
score stays up to ~250 ms past the sound."""
_DRIFT = 1.0
"""Per-window z-score a window must exceed to count as speech in the change-point sum."""
_Z_SPREAD_MIN = 0.3
"""Smallest noise spread (natural log units) used for z-scores: digital silence has none."""
_FLOOR_DBFS = -70.0
"""Band energies are floored at white noise of this level, so silence has a finite floor."""
_AUDIBLE_DBFS = -52.0
"""Quietest sound (RMS over a window) an edge may count as speech, however quiet the line.
Synthesized phrases fade out through a -50..-65 dBFS tail lasting up to ~150 ms; the caller's
side (|sample| > 300, -41 dBFS peak) hears the phrase end before it, and so must we, or turns
are reported as ending late. On flite and espeak phrases in digital silence, -52 dBFS puts ends
within a few ms of that measure on average (-56 dBFS: +19 ms late; -50 dBFS: early)."""
# Speech fades in and out through its last 30-40 dB, and whatever part of that fade is under
# the noise cannot be seen: pink noise at 10 dB SNR hides up to ~100 ms of a phrase's end in
# every band. So in noise the found offset is moved later by a hangover and the onset earlier
# by a lead: in full while the speech is at most *_FULL_DB above the noise, not at all from
# *_NONE_DB on, linearly in between (clean audio gets neither).
_HANGOVER_S = 0.050
_HANGOVER_FULL_DB, _HANGOVER_NONE_DB = 25.0, 45.0
_LEAD_S = 0.025
_LEAD_FULL_DB, _LEAD_NONE_DB = 15.0, 35.0


def _band_matrix() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bin-to-band summing matrix for a ``_FFT``-point rfft, each band's energy floor, and
    each band's share of the audible level."""
    freqs = np.fft.rfftfreq(_FFT, 1 / SAMPLE_RATE)
    matrix = np.array([(freqs >= lo) & (freqs < hi) for lo, hi in _BANDS_HZ], np.float32).T
    window = np.hanning(_FFT).astype(np.float32)
    # A white signal of power p puts p * sum(w^2) in each bin of the windowed periodogram.
    bins = matrix.sum(axis=0)
    white = float(np.sum(window**2))
    floor = bins * white * 10 ** (_FLOOR_DBFS / 10)
    # Shared equally, so that on a silent line a window's score is its total energy against
    # the audible level whatever its spectrum (a white share would hide a voiced tail's low
    # bands under the large share of the wide high bands).
    audible = np.full(len(bins), bins.sum() * white * 10 ** (_AUDIBLE_DBFS / 10) / len(bins))
    return matrix, floor, audible.astype(np.float32)


_BAND_SUM, _BAND_FLOOR, _BAND_AUDIBLE = _band_matrix()
_AUDIBLE_TOTAL = float(_BAND_AUDIBLE.sum())
_BURST_OVER_AUDIBLE = 4.0
"""On a quiet line a window this far over the audible level (6 dB) is sound, not noise."""
_HANN = np.hanning(_FFT).astype(np.float32)
_CHUNK_WINDOWS = np.arange(CHUNK_SAMPLES // _HOP)
_FRAME_INDEX = _CHUNK_WINDOWS[:, np.newaxis] * _HOP + np.arange(_FFT)
"""Sample indices of a chunk's windows in (the previous chunk's last 128 samples + chunk)."""


def _ramp(snr_db: float, full_db: float, none_db: float) -> float:
    """1 at or below ``full_db`` SNR, 0 at or above ``none_db``, linear in between."""
    return float(np.clip((none_db - snr_db) / (none_db - full_db), 0.0, 1.0))


class _EdgeTrack:
    """Recent band energies on an 8 ms grid and the noise they are judged against.

    Each 16 ms window's six band energies are divided by the noise's (the median of recent
    pause windows, or the audible level where that is louder), averaged, and turned into a
    z-score against the pause windows' own spread.
    An edge is then placed by change-point detection: where the running sum of ``z - _DRIFT``
    peaks, summed from the speech side. Unlike a threshold crossing this is not fooled by one
    noise spike, and it follows a tail that is only slightly above the noise while it lasts.
    """

    def __init__(self) -> None:
        self._bands = np.zeros((_HISTORY, len(_BANDS_HZ)), np.float32)
        self._times = np.full(_HISTORY, -np.inf)
        self._count = 0
        self._noise = np.zeros((_NOISE_WINDOWS, len(_BANDS_HZ)), np.float32)
        self._noise_count = 0
        self._tail = np.zeros(_FFT - _HOP, np.float32)  # samples before the current chunk
        self._latest = np.zeros((0, len(_BANDS_HZ)), np.float32)

    def add(self, chunk: np.ndarray, start: float) -> None:
        """Record the windows centred on the 8 ms grid points of a chunk starting at ``start``."""
        signal = np.concatenate([self._tail, chunk])
        self._tail = signal[-(_FFT - _HOP) :]
        spectrum = np.fft.rfft(signal[_FRAME_INDEX] * _HANN, axis=1)
        power = np.square(spectrum.real) + np.square(spectrum.imag)
        self._latest = np.maximum(power.astype(np.float32) @ _BAND_SUM, _BAND_FLOOR)
        slots = (self._count + _CHUNK_WINDOWS) % _HISTORY
        self._bands[slots] = self._latest
        self._times[slots] = start + _CHUNK_WINDOWS * _HOP_S
        self._count += len(_CHUNK_WINDOWS)

    def learn_noise(self) -> None:
        """The latest chunk is a pause: its windows are what silence sounds like on this line."""
        n = len(self._latest)
        slots = (self._noise_count + np.arange(n)) % _NOISE_WINDOWS
        self._noise[slots] = self._latest
        self._noise_count += n

    def _history(self, earliest: float) -> tuple[np.ndarray, np.ndarray]:
        """Times and band energies of the kept windows from ``earliest`` on, oldest first."""
        order = np.roll(np.arange(_HISTORY), -(self._count % _HISTORY))
        times, bands = self._times[order], self._bands[order]
        keep = times >= earliest - 1e-9
        return times[keep], bands[keep]

    def _scores(self, bands: np.ndarray) -> tuple[np.ndarray, float]:
        """Per-window z-scores of ``bands`` against the noise, and the noise's total energy.

        Both the windows and the pauses are seen through the audible level: sound below it
        scores as silence, so on a quiet line an edge is judged against that level instead of
        a noise floor that is all but zero.
        """
        pauses = self._noise[: min(self._noise_count, _NOISE_WINDOWS)]
        noise = np.maximum(np.median(pauses, axis=0), _BAND_FLOOR) if len(pauses) else _BAND_FLOOR
        judged = np.maximum(noise, _BAND_AUDIBLE)
        level = np.log(np.mean(np.maximum(bands, _BAND_AUDIBLE) / judged, axis=1))
        if len(pauses):
            reference = np.log(np.mean(np.maximum(pauses, _BAND_AUDIBLE) / judged, axis=1))
            mean, spread = float(reference.mean()), max(float(reference.std()), _Z_SPREAD_MIN)
        else:
            mean, spread = 0.0, _Z_SPREAD_MIN
        # The widening in noise depends on the real noise, not on the audible level.
        return (level - mean) / spread, float(noise.sum())

    @staticmethod
    def _snr_db(bands: np.ndarray, noise_total: float) -> float:
        """How far the loud part of ``bands`` is above the noise, in dB."""
        if not len(bands):
            return 0.0
        return 10 * float(np.log10(np.percentile(bands.sum(axis=1), 90) / noise_total))

    def onset(self, model_start: float, floor_time: float) -> float:
        """Where speech the model first heard at ``model_start`` really began."""
        times, bands = self._history(max(model_start - _ONSET_LOOK_BACK_S, floor_time))
        if not len(times):
            return model_start
        z, noise_total = self._scores(bands)
        from_here = np.cumsum((z - _DRIFT)[::-1])[::-1]  # evidence of speech from each window on
        onset = float(times[int(np.argmax(from_here))])
        snr = self._snr_db(bands[times >= model_start], noise_total)
        return onset - _LEAD_S * _ramp(snr, _LEAD_FULL_DB, _LEAD_NONE_DB)

    def offset(self, model_end: float, speech_start: float, now: float) -> float:
        """Where speech the model says stopped at ``model_end`` really stopped (by ``now``)."""
        times, bands = self._history(max(model_end - _OFFSET_LOOK_BACK_S, speech_start))
        if not len(times):
            return model_end
        z, noise_total = self._scores(bands)
        up_to_here = np.cumsum(z - _DRIFT)  # evidence of speech up to each window
        offset = float(times[int(np.argmax(up_to_here))])
        if noise_total < _AUDIBLE_TOTAL:
            # On a quiet line only sound rises well over the audible level, so a short burst
            # the model still heard (a final "t" after its silent closure) ends the phrase,
            # though the change-point sum would trade it for the closure before it.
            loud = (bands.sum(axis=1) > _BURST_OVER_AUDIBLE * _AUDIBLE_TOTAL) & (times < model_end)
            if loud.any():
                offset = max(offset, float(times[np.flatnonzero(loud)[-1]]))
        _, recent = self._history(-np.inf)  # ~1 s: the end of the phrase
        snr = self._snr_db(recent, noise_total)
        return min(offset + _HANGOVER_S * _ramp(snr, _HANGOVER_FULL_DB, _HANGOVER_NONE_DB), now)
