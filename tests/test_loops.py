"""Whisper loop detection: repeats are caught, numbers read out digit by digit are not."""

from __future__ import annotations

import pytest

from frontdesk.speech.stt.loops import compression_ratio, repeats_itself, said_twice, settle_loop


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


def test_an_utterance_repeated_up_to_the_token_cap_is_kept_once_without_a_redecode() -> None:
    """What tiny.en does on a short window with little lead-in ("The first one is fine." in
    the battery's rms voice): the utterance again and again until the cap. Redoing it on the
    full window cost 0.5-1 s, and the turn closed 1-1.5 s after the caller stopped."""
    looped = "The first one is fine. The first one is fine. The first one is fine. The"
    assert settle_loop(looped, hit_cap=True) == ("The first one is fine.", False)
    assert settle_loop("Tuesday morning would be best.", hit_cap=False) == (
        "Tuesday morning would be best.",
        False,
    )


@pytest.mark.parametrize(
    "text",
    [
        "I'd like to book a cleaning on Thursday afternoon at",  # stopped by the cap, no repeat
        "Sure. Sure. Sure.",  # too short to be an utterance said twice
        "Can I come in on Thursday afternoon afternoon afternoon",
    ],
)
def test_other_loops_and_cap_hits_are_decoded_again(text: str) -> None:
    assert settle_loop(text, hit_cap=True)[1]
