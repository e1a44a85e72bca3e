"""Text normalisation for what a speech recogniser writes: lowercase, spelled-out contractions,
no punctuation, crude stems, and phrase matching over words.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from functools import lru_cache

_CONTRACTIONS = {
    "can't": "can not",
    "cant": "can not",
    "won't": "will not",
    "don't": "do not",
    "dont": "do not",
    "doesnt": "does not",
    "didnt": "did not",
    "isnt": "is not",
    "arent": "are not",
    "havent": "have not",
    "hasnt": "has not",
    "wouldnt": "would not",
    "couldnt": "could not",
    "shouldnt": "should not",
    "im": "i am",
    "ive": "i have",
    "thats": "that is",
    "whats": "what is",
    "its": "it is",
    "let's": "let us",
    "y'all": "you all",
    "gonna": "going to",
    "wanna": "want to",
    "gotta": "got to",
}
_IS_CONTRACTED = (
    "it",
    "that",
    "what",
    "there",
    "here",
    "name",
    "he",
    "she",
    "who",
    "where",
    "how",
    "when",
    "this",
)
_MERIDIEM = re.compile(r"(?<=\d)\s*([ap])\.?\s?m\b\.?|\b([ap])\.\s?m\.")
_WORD = re.compile(r"[a-z0-9]+(?::[0-9]{2})?|@")


def word_set(text: str) -> frozenset[str]:
    """The words of a whitespace-separated word list."""
    return frozenset(text.split())


STOPWORDS = word_set(
    """a an the i me my mine we us our you your yours it its this that these those is are was
    were be been am do does did doing have has had having can could would should will shall may
    might must to of in on at by for with from about as into onto than then so and or but if
    what which who whom whose why how there here please thanks thank hi hello hey um uh uh-huh
    er erm hmm well oh okay ok just really actually also like know want wanted need needs
    wondering wonder tell ask asking question quick anything something somewhere any some
    nearby get got go going guys yall all not no yes yeah sure kind sort maybe one
    let us give say said see wait sorry excuse pardon again mean"""
)
"""Words that carry no topic: ignored when matching a question to the FAQ."""


def normalize(text: str) -> str:
    """Lowercase words and digits only: "It's 2 P.M., OK?" -> "it is 2 pm ok"."""
    lowered = text.lower().replace("’", "'").replace("‘", "'")
    lowered = _MERIDIEM.sub(lambda m: f" {(m.group(1) or m.group(2))}m ", lowered)
    words = []
    for raw in re.split(r"\s+", lowered):
        word = raw.strip('.,!?;"()[]{}')
        if word in _CONTRACTIONS:
            words.append(_CONTRACTIONS[word])
        elif word.endswith("n't"):
            words.append(word[:-3] + " not")
        elif word.endswith("'s"):
            # "it's" is "it is"; "maria's" is just "maria" for matching purposes
            words.append(word[:-2] + " is" if word[:-2] in _IS_CONTRACTED else word[:-2])
        elif re.fullmatch(r"[a-z]+'(m|re|ve|ll|d)", word):
            stem, tail = word.split("'")
            words.append(f"{stem} {_TAILS[tail]}")
        else:
            words.append(word)
    joined = " ".join(words).replace("'", "")
    return " ".join(_WORD.findall(joined))


_TAILS = {"m": "am", "re": "are", "ve": "have", "ll": "will", "d": "would"}


def words(text: str) -> list[str]:
    """The normalised words of ``text``."""
    return normalize(text).split()


@lru_cache(maxsize=4096)
def stem(word: str) -> str:
    """A crude English stem: enough to match "hours"/"hour", "parking"/"park",
    "located"/"location"."""
    for suffix, keep in (
        ("ies", "y"),
        ("ation", ""),
        ("ion", ""),
        ("ing", ""),
        ("ed", ""),
        ("es", ""),
        ("s", ""),
    ):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3 and not word.endswith("ss"):
            return word[: -len(suffix)] + keep
    return word


def stems(text: str) -> list[str]:
    """Stems of the normalised words of ``text``."""
    return [stem(w) for w in words(text)]


@lru_cache(maxsize=2048)
def _phrase_pattern(phrase: str, use_stems: bool, gap: int) -> re.Pattern[str]:
    parts = [re.escape(stem(w) if use_stems else w) for w in words(phrase)]
    joiner = rf"(?:\s+\S+){{0,{gap}}}\s+" if gap else r"\s+"
    return re.compile(r"(?<!\S)" + joiner.join(parts) + r"(?!\S)")


def find_phrase(
    text: str, phrases: Iterable[str], *, use_stems: bool = True, gap: int = 0
) -> tuple[int, str] | None:
    """The earliest of ``phrases`` found in ``text`` (word position, phrase), longest first on a
    tie. ``gap`` lets up to that many words sit between a phrase's words."""
    tokens = stems(text) if use_stems else words(text)
    haystack = " ".join(tokens)
    best: tuple[int, int, str] | None = None
    for phrase in phrases:
        if not words(phrase):
            continue
        match = _phrase_pattern(phrase, use_stems, gap).search(haystack)
        if match:
            position = haystack.count(" ", 0, match.start()) if match.start() else 0
            key = (position, -len(match.group()), phrase)
            if best is None or key < best:
                best = key
    return None if best is None else (best[0], best[2])


def has_phrase(
    text: str, phrases: Iterable[str], *, use_stems: bool = True, negatable: bool = False
) -> bool:
    """Whether ``text`` contains one of ``phrases``; with ``negatable``, a phrase right after
    "not"/"no" ("it's not an emergency") does not count."""
    tokens = words(text)
    for phrase in phrases:
        for start in _occurrences(tokens, words(phrase), use_stems):
            before = tokens[max(0, start - 3) : start]
            if negatable and any(w in ("not", "no", "never", "without") for w in before):
                continue
            return True
    return False


def _occurrences(tokens: Sequence[str], phrase: Sequence[str], use_stems: bool) -> list[int]:
    if not phrase:
        return []
    norm = [stem(t) for t in tokens] if use_stems else list(tokens)
    target = [stem(t) for t in phrase] if use_stems else list(phrase)
    size = len(target)
    return [i for i in range(len(norm) - size + 1) if norm[i : i + size] == target]
