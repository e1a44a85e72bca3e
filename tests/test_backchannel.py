"""What counts as a backchannel (the agent carries on) and what is a real interruption."""

from __future__ import annotations

import pytest

from frontdesk.call.backchannel import is_backchannel


@pytest.mark.parametrize(
    "text", ["Mm-hmm.", "MMMM", "Hmm.", "Uh-huh", "Okay.", "Yeah, right.", "Yep", "Oh.", ""]
)
def test_acknowledgements_and_noise_do_not_stop_the_agent(text: str) -> None:
    assert is_backchannel(text)


@pytest.mark.parametrize(
    "text",
    [
        "Actually, I want to book a cleaning.",
        "No.",
        "Okay, but wait",
        "Sorry, what was that?",
        "Stop",
        "Two thirty",
        "Yeah, that works for me",
    ],
)
def test_words_with_content_are_an_interruption(text: str) -> None:
    assert not is_backchannel(text)
