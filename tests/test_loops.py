"""Whisper loop detection: repeats are caught, numbers read out digit by digit are not."""

from __future__ import annotations

import pytest

from frontdesk.speech.stt.loops import compression_ratio, repeats_itself, said_twice


@pytest.mark.parametrize(
    ("text", "looped"),
    [
        ("Where are you located? Where are you located?", True),
        ("Share. Share. Share.", True),
        ("Thursday afternoon Thursday afternoon", True),
        ("five five five five two one three", False),
        ("My number is 555 555 1234", False),
        ("Hello, hello.", False),
        ("I would like to book an appointment for my son, David.", False),
    ],
)
def test_repeats(text: str, looped: bool) -> None:
    assert repeats_itself(text) is looped


def test_an_utterance_said_twice_is_kept_once() -> None:
    assert said_twice("Where are you located? Where are you") == "Where are you located?"
    assert said_twice("Do you take Delta Dental? Do you take Delta Dental?") == (
        "Do you take Delta Dental?"
    )
    assert said_twice("I want to book. I want to book a cleaning.") is None
    assert said_twice("Hello") is None


def test_compression_ratio_flags_long_loops_only() -> None:
    assert compression_ratio("afternoon " * 40) > 2.4
    assert compression_ratio("Hi, my name is Sarah Johnson and I'd like to book.") < 2.4
