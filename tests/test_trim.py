"""SilenceTrimmer: an utterance's edges trimmed, the pauses inside it kept."""

from __future__ import annotations

import numpy as np

from frontdesk.audio.trim import SilenceTrimmer

RATE = 16000


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * RATE), np.int16)


def voice(seconds: float) -> np.ndarray:
    return (3000 * np.sin(np.arange(int(seconds * RATE)) * 0.3)).astype(np.int16)


def trimmed(pieces: list[np.ndarray]) -> np.ndarray:
    trimmer = SilenceTrimmer(RATE, keep_lead_s=0.01, keep_trail_s=0.1)
    out = [trimmer.push(p) for p in pieces]
    return np.concatenate([*out, trimmer.end()])


def test_edges_are_cut_to_what_is_kept() -> None:
    out = trimmed([np.concatenate([silence(0.05), voice(0.5), silence(0.3)])])
    assert len(out) == int(0.01 * RATE) + int(0.5 * RATE) + int(0.1 * RATE) - 1


def test_a_pause_inside_the_utterance_survives_any_piece_boundaries() -> None:
    whole = [silence(0.05), voice(0.3), silence(0.25), voice(0.3), silence(0.2)]
    audio = np.concatenate(whole)
    pieces = np.array_split(audio, 17)  # streamed in arbitrary pieces
    out = trimmed(list(pieces))
    assert np.array_equal(out, trimmed([audio]))
    voiced = np.flatnonzero(np.abs(out.astype(np.int32)) > 200)
    gaps = np.diff(voiced)
    assert gaps.max() >= int(0.24 * RATE), "the 250 ms pause is still there"


def test_silence_alone_gives_nothing() -> None:
    assert len(trimmed([silence(0.5), silence(0.2)])) == 0
