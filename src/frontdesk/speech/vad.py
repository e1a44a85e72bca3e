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
from collections import deque
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
    its score lags the sound (it stays high for ~60-100 ms after a word ends), so the boundary
    it implies is refined with energy: within a short look-back, the edge is placed at the
    outermost 8 ms window that is clearly above the noise floor measured in the pauses.
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
        self._energy = _EnergyTrack()
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
            self._energy.add(chunk, self._context[-1], start)
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
                    onset = self._energy.onset(self._candidate_start, floor_time=self._last_end)
                    self._speech_start = max(0.0, self._last_end, onset - self.speech_pad_s)
                    return SpeechStart(self._speech_start)
            elif prob < self.neg_threshold:
                self._candidate_start = None
                self._energy.learn_noise()
            return None
        if prob >= self.threshold:
            self._silence_start = None
        elif prob < self.neg_threshold and self._silence_start is None:
            self._silence_start = start
        if self._silence_start is not None and end - self._silence_start >= self.min_silence_s:
            self.is_speech = False
            self._candidate_start = None
            stopped = max(self._energy.offset(self._silence_start), self._speech_start)
            self._silence_start = None
            self._last_end = stopped + self.speech_pad_s
            return SpeechEnd(self._last_end)
        return None


_WINDOW = 128
"""Energy windows of 8 ms: four per model chunk."""
_WINDOW_S = _WINDOW / SAMPLE_RATE
_LOOK_BACK_S = 0.128
"""How far an edge may move back from where the model put it. The model's end lags the sound
by ~60-100 ms; looking further back in noise ends speech early, inside a buried tail."""
_MARGIN = 10 ** (4 / 10)
"""A window is sound when its energy is 4 dB above the noise floor."""
_PRE_EMPHASIS = 0.97
"""y[n] = x[n] - 0.97 x[n-1], the classic speech pre-emphasis."""
_MIN_ENERGY = 10 ** (-60 / 10)
"""Floor for digital silence: -60 dBFS (pre-emphasised)."""


class _EnergyTrack:
    """Recent 8 ms window energies and the noise floor, for placing speech edges precisely.

    Energies are of the pre-emphasised signal: pre-emphasis lifts the fricatives that start and
    end many words above the low-frequency rumble (car, pink noise) that dominates noise energy.
    (Adding plain energy as a second band caught more vowel tails but also noise swells.)
    """

    def __init__(self) -> None:
        history = int(2 * _LOOK_BACK_S / _WINDOW_S) + 8
        self._times: deque[float] = deque(maxlen=history)
        self._energies: deque[float] = deque(maxlen=history)
        self._noise: deque[float] = deque(maxlen=64)  # ~0.5 s of pause
        self._latest: np.ndarray = np.zeros(0)

    def add(self, chunk: np.ndarray, previous: float, start: float) -> None:
        """Record the windows of one chunk that starts at ``start`` (seconds)."""
        emphasised = np.empty_like(chunk)
        emphasised[0] = chunk[0] - _PRE_EMPHASIS * previous
        emphasised[1:] = chunk[1:] - _PRE_EMPHASIS * chunk[:-1]
        self._latest = (emphasised.reshape(-1, _WINDOW) ** 2).mean(axis=1)
        for i, energy in enumerate(self._latest):
            self._times.append(start + i * _WINDOW_S)
            self._energies.append(float(energy))

    def learn_noise(self) -> None:
        """The latest chunk is a pause: its energy is what silence sounds like on this line."""
        self._noise.extend(float(e) for e in self._latest)

    def _threshold(self) -> float:
        floor = float(np.median(self._noise)) if self._noise else 0.0
        return max(floor * _MARGIN, _MIN_ENERGY)

    def onset(self, model_start: float, floor_time: float) -> float:
        """Where speech the model first heard at ``model_start`` really began."""
        threshold = self._threshold()
        earliest = max(model_start - _LOOK_BACK_S, floor_time)
        for time, energy in zip(self._times, self._energies, strict=True):
            if earliest <= time < model_start + _CHUNK_S and energy > threshold:
                return time
        return model_start

    def offset(self, model_end: float) -> float:
        """Where speech the model says stopped at ``model_end`` really stopped."""
        threshold = self._threshold()
        earliest = model_end - _LOOK_BACK_S
        for time, energy in zip(reversed(self._times), reversed(self._energies), strict=True):
            if earliest <= time < model_end and energy > threshold:
                return time + _WINDOW_S
        return earliest
