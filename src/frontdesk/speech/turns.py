"""Adaptive endpointing: deciding that the caller finished their turn.

The VAD reports pauses; this decides which pause ends the turn. A pause closes the turn
after a short window when the words so far read complete, and a long one when they sound
unfinished ("I'd like to come in on...", "my number is five five five"). What the agent
asked for matters too: a phone number is not complete until it has ten digits, and a
yes/no answer is complete as soon as it is said.

Everything runs on the caller's audio clock (frame timestamps), so the decision is the same
whether the audio arrives from a socket in real time or from a file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_TRAILING_INCOMPLETE = {
    "and",
    "or",
    "but",
    "so",
    "because",
    "for",
    "on",
    "at",
    "in",
    "to",
    "with",
    "of",
    "the",
    "a",
    "an",
    "my",
    "your",
    "is",
    "was",
    "um",
    "uh",
    "er",
    "erm",
    "hmm",
    "like",
    "about",
    "around",
    "maybe",
    "then",
    "if",
    "that",
    "which",
    "when",
    "from",
    "by",
    "it's",
    "i'm",
    "i'd",
    "i",
    "we",
    "it",
    "this",
    "next",
    "be",
    "would",
    "could",
    "um,",
}
_DIGIT_WORDS = {
    "zero": "0",
    "oh": "0",
    "o": "0",
    "one": "1",
    "two": "2",
    "three": "3",
    "four": "4",
    "five": "5",
    "six": "6",
    "seven": "7",
    "eight": "8",
    "nine": "9",
}
_NUMBER_CUE = re.compile(r"\b(number|phone|cell|digits?|call me (?:at|on))\b")
_WORD = re.compile(r"[a-z0-9']+")


def count_digits(text: str) -> int:
    """Digits in ``text``, spoken ("five five five") or written ("555")."""
    words = _WORD.findall(text.lower())
    return sum(
        len(re.sub(r"\D", "", w)) if any(c.isdigit() for c in w) else int(w in _DIGIT_WORDS)
        for w in words
    )


def sounds_complete(text: str, expecting: str = "open") -> bool:
    """Whether ``text`` reads like a finished turn, given what the agent asked for."""
    lowered = text.lower().strip()
    words = _WORD.findall(lowered)
    if not words:
        return False
    if lowered.endswith(("...", "…", ",", "-")):
        return False
    if words[-1] in _TRAILING_INCOMPLETE:
        return False
    digits = count_digits(lowered)
    wants_number = expecting in ("phone", "digits") or _NUMBER_CUE.search(lowered)
    return not (wants_number and 0 < digits < 10 and expecting != "digits")


@dataclass(slots=True)
class EndpointConfig:
    """Silence windows in seconds, measured from the end of the caller's last voiced audio."""

    complete_s: float = 0.25
    """A pause this long closes a turn whose words read complete."""
    incomplete_s: float = 2.0
    """A pause this long closes a turn that sounds unfinished."""
    yes_no_s: float = 0.2
    """Shorter window when the agent asked a yes/no question."""
    number_s: float = 2.0
    """A caller reading out a number pauses between groups of digits."""
    transcript_wait_s: float = 1.0
    """How long past its window a pause waits for a late transcript before closing anyway."""


class Endpointer:
    """Decides, pause by pause, when the caller's turn is over."""

    def __init__(self, config: EndpointConfig | None = None) -> None:
        self.config = config or EndpointConfig()
        self.expecting = "open"
        self._pause_start: float | None = None
        self._text: str | None = None

    @property
    def in_pause(self) -> bool:
        """True between a speech end and the next speech start."""
        return self._pause_start is not None

    @property
    def pause_start(self) -> float | None:
        """Audio time the current pause began (the caller's last voiced audio)."""
        return self._pause_start

    def speech_started(self) -> None:
        """The caller is talking again: the pending pause did not end the turn."""
        self._pause_start = None
        self._text = None

    def speech_ended(self, at: float) -> None:
        """A pause began at audio time ``at``; its transcript is not known yet."""
        self._pause_start = at
        self._text = None

    def transcript(self, text: str) -> None:
        """The transcript of everything said up to the current pause."""
        self._text = text

    def window(self) -> float | None:
        """The silence that closes the current pause, or None while no transcript is known."""
        if self._text is None:
            return None
        cfg = self.config
        if not sounds_complete(self._text, self.expecting):
            return cfg.number_s if self.expecting in ("phone", "digits") else cfg.incomplete_s
        return cfg.yes_no_s if self.expecting == "yes_no" else cfg.complete_s

    def should_close(self, now: float) -> bool:
        """Whether the turn is over at audio time ``now``."""
        if self._pause_start is None:
            return False
        silence = now - self._pause_start
        window = self.window()
        if window is None:
            # No transcript yet: wait for it, but never past the longest window.
            return silence >= self.config.incomplete_s + self.config.transcript_wait_s
        return silence >= window

    def reset(self) -> None:
        """Forget the pause (the turn was closed or discarded)."""
        self._pause_start = None
        self._text = None
