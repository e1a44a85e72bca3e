"""Reading a call recording (stereo WAV: caller left, agent right) from the caller's side.

These are the wire-level measurements: when someone's voice starts and stops, read off the
audio itself rather than from anyone's logs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from frontdesk.audio.frames import AudioFormatError
from frontdesk.audio.wav import read_wav

VOICED_LEVEL = 300
"""Peak amplitude (int16) above which a sample counts as voice rather than line silence."""


@dataclass(frozen=True, slots=True)
class CallRecording:
    """Both sides of a call on one timeline."""

    caller: np.ndarray
    agent: np.ndarray
    sample_rate: int

    @classmethod
    def load(cls, path: str | Path) -> CallRecording:
        """Read a stereo recording written by a transport."""
        pcm, rate = read_wav(path)
        if pcm.ndim != 2 or pcm.shape[1] != 2:
            raise AudioFormatError(f"{path}: a call recording has two channels")
        return cls(pcm[:, 0].copy(), pcm[:, 1].copy(), rate)

    def voice_onset(self, side: str, after: float, level: int = VOICED_LEVEL) -> float | None:
        """First instant at or after ``after`` seconds where ``side`` ("caller"/"agent")
        is voiced."""
        pcm = self._side(side)
        start = int(after * self.sample_rate)
        hits = np.flatnonzero(np.abs(pcm[start:].astype(np.int32)) > level)
        return None if not len(hits) else float(start + hits[0]) / self.sample_rate

    def voice_stop(
        self, side: str, after: float, gap_s: float = 0.3, level: int = VOICED_LEVEL
    ) -> float | None:
        """End of ``side``'s voice after ``after``: the last voiced instant before a silence
        of at least ``gap_s`` (``after`` itself if it is silent then; None if the voice runs
        to the end of the recording)."""
        pcm = self._side(side)
        start = int(after * self.sample_rate)
        hits = np.flatnonzero(np.abs(pcm[start:].astype(np.int32)) > level)
        gap = int(gap_s * self.sample_rate)
        if not len(hits) or hits[0] >= gap:
            return after
        breaks = np.flatnonzero(np.diff(hits) >= gap)
        end = hits[breaks[0]] if len(breaks) else hits[-1]
        if not len(breaks) and len(pcm) - start - end < gap:
            return None
        return float(start + end + 1) / self.sample_rate

    def voiced_seconds(
        self, side: str, start: float, end: float, level: int = VOICED_LEVEL
    ) -> float:
        """How much of ``side`` is voiced between ``start`` and ``end`` (10 ms resolution)."""
        pcm = self._side(side)[int(start * self.sample_rate) : int(end * self.sample_rate)]
        block = self.sample_rate // 100
        usable = len(pcm) - len(pcm) % block
        if not usable:
            return 0.0
        peaks = np.abs(pcm[:usable].astype(np.int32)).reshape(-1, block).max(axis=1)
        return float((peaks > level).sum()) / 100

    def _side(self, side: str) -> np.ndarray:
        if side == "caller":
            return self.caller
        if side == "agent":
            return self.agent
        raise ValueError(f"side must be 'caller' or 'agent', got {side!r}")
