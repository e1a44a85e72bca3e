"""Spotting Whisper's repetition loops in a transcript ("sure sure sure", a question said
twice, "afternoon afternoon ..."), the way it fails on short or padded audio."""

from __future__ import annotations

import re
import zlib

MAX_COMPRESSION_RATIO = 2.4
"""Text that zlib squeezes more than this is a repetition loop (Whisper's own threshold)."""

_NUMBER_WORD = re.compile(
    r"^(?:\d+|zero|oh|one|two|three|four|five|six|seven|eight|nine|ten|twenty|thirty|forty|"
    r"fifty|hundred|thousand)$"
)


def repeats_itself(text: str) -> bool:
    """Whether ``text`` repeats a run of words back to back ("do you take X do you take X",
    "sure sure sure"): Whisper's looping, which compression ratio misses in short texts.
    Runs of number words ("five five five") are how people read out numbers, not loops."""
    words = re.findall(r"[a-z0-9']+", text.lower())
    for size in range(1, len(words) // 2 + 1):
        for start in range(len(words) - 2 * size + 1):
            run = words[start : start + size]
            if all(_NUMBER_WORD.match(w) for w in run):
                continue
            times = 1
            while words[start + times * size : start + (times + 1) * size] == run:
                times += 1
            if times >= (3 if size == 1 else 2):
                return True
    return False


def said_twice(text: str) -> str | None:
    """The utterance once, when ``text`` is it followed by itself again (whole or cut short:
    "Where are you located? Where are you located?"), else None."""
    spans = [m.span() for m in re.finditer(r"[A-Za-z0-9']+", text)]
    words = [text[a:b].lower() for a, b in spans]
    for restart in range(2, len(words) - 1):
        tail = words[restart:]
        if tail == words[: len(tail)]:
            return text[: spans[restart][0]].strip()
    return None


def compression_ratio(text: str) -> float:
    """How much zlib shrinks ``text``: high for text that repeats itself."""
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data)) if data else 0.0


def settle_loop(text: str, hit_cap: bool) -> tuple[str, bool]:
    """What to keep of a short-window decode, and whether to decode it again on the full
    window (``hit_cap``: the decoder stopped at the token cap, still going).

    Most often a loop is the whole utterance said again, as often as the cap allows
    ("Tuesday morning would be best. Tuesday morning would be best. Tues..."): it was heard
    whole once, so that is kept and no re-decode is paid for (0.5-1 s on the full window on a
    busy machine). A cap hit on anything else, or a loop inside the words, is redone.
    """
    once = said_twice(text)
    if once is not None:
        text = once
    looped = (
        (once is None and hit_cap)
        or compression_ratio(text) > MAX_COMPRESSION_RATIO
        or repeats_itself(text)
    )
    return text, looped
