"""Telling a backchannel ("mm-hmm", "okay") from a real interruption, by its words."""

from __future__ import annotations

import re

BACKCHANNEL = re.compile(
    r"^(?:h*m+h*|m+-?h+m+|uh+-?huh+|a+h+|o+h+|u+h+|yeah|yes|yep|yup|okay|ok|right|sure|"
    r"alright|cool|got|it|i|see|great|nice|wow)$"
)
"""One word of an acknowledgement: "mm", "mmmm", "mm-hmm", "uh-huh", "yeah", "okay"..."""
_WORDS = re.compile(r"[a-z'-]+")


def is_backchannel(text: str) -> bool:
    """A short acknowledgement ("mm-hmm", "yeah", "okay, right"), or no words at all (a
    cough, a noise): something that should not stop the agent."""
    words = [w.strip("-'") for w in _WORDS.findall(text.lower())]
    return len(words) <= 3 and all(BACKCHANNEL.match(w) for w in words if w)
