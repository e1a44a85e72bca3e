"""Test speech: booking-style sentences spoken by simulated callers, and signals built from them.

Callers speak with the command-line voices (flite, espeak-ng), never with Piper: Piper is the
agent's voice, and a recognizer tested on the voice it will hear least would flatter it.

Ground truth for timing comes from the clips themselves: a clip's speech runs from its first to
its last sample above :data:`SPEECH_LEVEL`, and :func:`compose` places clips at known offsets.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from frontdesk.audio import AudioFrame, frame_samples
from frontdesk.audio.g711 import ulaw_decode, ulaw_encode
from frontdesk.audio.noise import mix_at_snr, pink_noise
from frontdesk.audio.resample import resample
from frontdesk.brain.spoken_numbers import ORDINALS
from frontdesk.speech.tts.command import CommandVoice, EspeakVoice, FliteVoice

BOOKING_SENTENCES: list[str] = [
    "Hi, my name is Sarah Johnson and I would like to book an appointment.",
    "Do you have anything available on Thursday at two thirty in the afternoon?",
    "My phone number is five five five, two one three, four eight seven six.",
    "Could we do next Monday morning at nine fifteen instead?",
    "I need a cleaning on the fourteenth of March.",
    "Friday at ten o'clock works great for me.",
    "The appointment is for my son, David Miller.",
    "Can you send me a reminder the day before?",
    "I am calling about the quote for the kitchen repair.",
    "Is there an opening on Tuesday between one and three?",
    "Please cancel my booking for the twenty first of June.",
    "You can reach me at the same number after six in the evening.",
]
"""What callers say when booking: names, dates, times and a phone number (numbers as words)."""

FLITE_VOICES = ("slt", "rms", "awb", "kal16", "kal")
"""Voices that go to flite; any other voice name is an espeak-ng voice (e.g. "en-us+f3")."""

SPEECH_LEVEL = 300
"""|sample| above this (about -40 dBFS) counts as sound when measuring a clip's speech span."""

_cache: dict[tuple[str, str, int], np.ndarray] = {}


def caller_voice(voice: str) -> CommandVoice:
    """The engine that speaks as ``voice``: flite for its voice names, espeak-ng otherwise."""
    return FliteVoice(voice) if voice in FLITE_VOICES else EspeakVoice(voice)


async def caller_audio(text: str, voice: str = "slt", rate: int = 16000) -> np.ndarray:
    """``text`` spoken by ``voice`` as int16 mono at ``rate`` (cached; the array is read-only)."""
    key = (text, voice, rate)
    if key not in _cache:
        engine = caller_voice(voice)
        parts = [frame.pcm async for frame in engine.synthesize(text)]
        pcm = resample(np.concatenate(parts), engine.sample_rate, rate)
        pcm.setflags(write=False)
        _cache[key] = pcm
    return _cache[key]


def speech_span(pcm: np.ndarray, level: int = SPEECH_LEVEL) -> tuple[int, int]:
    """Sample index of the first sound and one past the last (``level`` sets what is sound)."""
    loud = np.flatnonzero(np.abs(pcm.astype(np.int32)) > level)
    if not len(loud):
        raise ValueError("clip has no sample above the speech level")
    return int(loud[0]), int(loud[-1]) + 1


@dataclass(frozen=True, slots=True)
class Segment:
    """Known speech in a composed signal, in seconds from its start."""

    start: float
    end: float


def compose(
    clips: list[np.ndarray],
    rate: int = 16000,
    gap_s: float = 0.7,
    lead_s: float = 0.5,
    tail_s: float = 0.7,
) -> tuple[np.ndarray, list[Segment]]:
    """Clips separated by silence, and where each clip's speech sits in the result.

    ``gap_s`` of digital silence is inserted between the speech of consecutive clips (the
    clips' own leading/trailing quiet is trimmed off first), ``lead_s`` before the first and
    ``tail_s`` after the last. The length is padded to whole 20 ms frames.
    """
    parts: list[np.ndarray] = []
    segments: list[Segment] = []
    at = 0
    for i, clip in enumerate(clips):
        first, last = speech_span(clip)
        silence = round((lead_s if i == 0 else gap_s) * rate)
        parts += [np.zeros(silence, np.int16), clip[first:last]]
        at += silence
        segments.append(Segment(at / rate, (at + last - first) / rate))
        at += last - first
    parts.append(np.zeros(round(tail_s * rate), np.int16))
    signal = np.concatenate(parts)
    pad = -len(signal) % frame_samples(rate)
    return np.concatenate([signal, np.zeros(pad, np.int16)]), segments


def to_frames(pcm: np.ndarray, rate: int = 16000, start: float = 0.0) -> list[AudioFrame]:
    """20 ms frames with capture timestamps from ``start``; the last one is zero-padded."""
    size = frame_samples(rate)
    padded = np.concatenate([pcm, np.zeros(-len(pcm) % size, np.int16)]).astype(np.int16)
    return [
        AudioFrame(padded[i : i + size], rate, start + i / rate)
        for i in range(0, len(padded), size)
    ]


def phone_line(pcm: np.ndarray, rate: int = 16000) -> np.ndarray:
    """``pcm`` after a trip over the phone network: 8 kHz G.711 mu-law, back at ``rate``."""
    narrow = resample(pcm, rate, 8000)
    return resample(ulaw_decode(ulaw_encode(narrow)), 8000, rate)


def with_pink_noise(pcm: np.ndarray, snr_db: float, seed: int = 0) -> np.ndarray:
    """``pcm`` with pink noise mixed in at ``snr_db`` (reproducible for a given ``seed``)."""
    noise = pink_noise(len(pcm), np.random.default_rng(seed))
    return mix_at_snr(pcm, noise, snr_db)


_ONES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
_TEENS = [
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
]
_TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50}
_ORDINALS = ORDINALS
_NUMBER_WORDS = {w: i for i, w in enumerate(_ONES)} | {w: 10 + i for i, w in enumerate(_TEENS)}
_NUMBER_WORDS |= _TENS | _ORDINALS


def normalize(text: str) -> list[str]:
    """Words for scoring: lowercase, no punctuation, every number as single-digit tokens.

    "two thirty", "2:30" and "230" all become ``2 3 0``; "twenty first" and "21st" become
    ``2 1``; "five five five" and "555" become ``5 5 5``. So a misheard digit costs one word.
    """
    text = re.sub(r"(\d)(st|nd|rd|th)\b", r"\1", text.lower())
    words = re.sub(r"[^a-z0-9' ]+", " ", text.replace("'", "")).split()
    numbers: list[str] = []
    i = 0
    while i < len(words):
        word = words[i]
        if word in _TENS and i + 1 < len(words) and _NUMBER_WORDS.get(words[i + 1], 10) < 10:
            numbers.append(str(_TENS[word] + _NUMBER_WORDS[words[i + 1]]))  # "twenty one"
            i += 2
            continue
        numbers.append(str(_NUMBER_WORDS[word]) if word in _NUMBER_WORDS else word)
        i += 1
    return [token for word in numbers for token in (list(word) if word.isdigit() else [word])]


def word_errors(reference: str, hypothesis: str) -> tuple[int, int]:
    """Word edit distance between normalised texts, and the reference length."""
    ref, hyp = normalize(reference), normalize(hypothesis)
    row = list(range(len(hyp) + 1))
    for i, ref_word in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, hyp_word in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (ref_word != hyp_word))
    return row[-1], len(ref)


def word_error_rate(references: list[str], hypotheses: list[str]) -> float:
    """Corpus WER: total word errors over total reference words."""
    errors = words = 0
    for reference, hypothesis in zip(references, hypotheses, strict=True):
        e, n = word_errors(reference, hypothesis)
        errors, words = errors + e, words + n
    return errors / max(words, 1)
