"""Trimming the silence a synthesizer puts around each sentence, on streamed audio."""

from __future__ import annotations

import numpy as np

SILENCE_LEVEL = 200
"""Peak amplitude (int16) at or below which audio counts as silence."""


class SilenceTrimmer:
    """Cuts one utterance's leading silence to ``keep_lead_s`` and its trailing silence to
    ``keep_trail_s``, on audio that arrives in pieces. Silence between voiced pieces is kept:
    only the edges of the whole utterance are trimmed.
    """

    def __init__(self, sample_rate: int, keep_lead_s: float, keep_trail_s: float) -> None:
        self._lead = int(keep_lead_s * sample_rate)
        self._trail = int(keep_trail_s * sample_rate)
        self._started = False
        self._held = np.zeros(0, np.int16)  # silence not yet known to be trailing

    def push(self, pcm: np.ndarray) -> np.ndarray:
        """Audio that can be played now (possibly empty)."""
        audio = np.concatenate([self._held, pcm])
        voiced = np.flatnonzero(np.abs(audio.astype(np.int32)) > SILENCE_LEVEL)
        if not len(voiced):
            self._held = (
                audio if self._started else audio[-self._lead :] if self._lead else audio[:0]
            )
            return audio[:0]
        start = 0 if self._started else max(0, int(voiced[0]) - self._lead)
        self._started = True
        end = int(voiced[-1]) + 1
        self._held = audio[end:]
        return audio[start:end]

    def end(self) -> np.ndarray:
        """The utterance is over: what is left of its trailing silence."""
        tail, self._held = (
            self._held[: self._trail] if self._started else self._held[:0],
            self._held[:0],
        )
        return tail
