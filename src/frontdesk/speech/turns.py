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

from collections.abc import Callable
from dataclasses import dataclass

CompletenessJudge = Callable[[str, str], bool]
"""``judge(text, expecting)``: whether the words read like a finished turn. Understanding
language is the brain's job, so the agent passes the brain's judge in."""


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

    def __init__(self, judge: CompletenessJudge, config: EndpointConfig | None = None) -> None:
        self.judge = judge
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
        if not self.judge(self._text, self.expecting):
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
