"""The endpointer: which pause ends the caller's turn (audio clock, no real time)."""

from __future__ import annotations

import pytest

from frontdesk.brain.understand import sounds_complete
from frontdesk.speech.turns import EndpointConfig, Endpointer


def endpointer(expecting: str = "open") -> Endpointer:
    e = Endpointer(sounds_complete, EndpointConfig())
    e.expecting = expecting
    return e


def close_time(e: Endpointer, pause_at: float, text: str | None) -> float:
    """Audio time (20 ms steps) at which the pause starting at ``pause_at`` closes the turn."""
    e.speech_ended(pause_at)
    if text is not None:
        e.transcript(text)
    now = pause_at
    while not e.should_close(now):
        now = round(now + 0.02, 2)
        assert now < pause_at + 10, "never closed"
    return round(now - pause_at, 2)


@pytest.mark.parametrize(
    ("text", "expecting", "window"),
    [
        ("I'd like to book a cleaning.", "open", 0.26),
        ("Yes.", "yes_no", 0.2),
        ("I'd like to come in on", "open", 2.0),
        ("I'd like to come in on...", "open", 2.0),
        ("My number is five five five, two one three", "open", 2.0),
        ("five five five two one three", "phone", 2.0),
        ("five five five two one three four eight seven six", "phone", 0.26),
        ("Thursday afternoon and", "open", 2.0),
        ("um", "open", 2.0),
    ],
)
def test_the_window_fits_what_was_said(text: str, expecting: str, window: float) -> None:
    assert close_time(endpointer(expecting), 3.0, text) == pytest.approx(window, abs=0.021)


def test_speech_resuming_keeps_the_turn_open() -> None:
    e = endpointer()
    e.speech_ended(1.0)
    e.transcript("I'd like to book a cleaning.")
    assert not e.should_close(1.2)
    e.speech_started()
    assert not e.in_pause
    assert not e.should_close(5.0), "no pause, no close"


def test_a_late_transcript_is_waited_for_but_not_forever() -> None:
    e = endpointer()
    e.speech_ended(0.0)
    assert not e.should_close(1.0), "no words yet: the turn may be unfinished"
    e.transcript("Friday works.")
    assert e.should_close(1.0), "a complete transcript closes a pause already past its window"
    late = endpointer()
    assert close_time(late, 0.0, None) == pytest.approx(3.0, abs=0.021)
