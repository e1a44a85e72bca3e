"""Numbers as callers say them: number words, phone numbers digit by digit, spoken emails."""

from __future__ import annotations

import re

from frontdesk.brain.spoken_text import normalize

UNITS = {
    "zero": 0,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
}
TEENS = {
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "thirteen": 13,
    "fourteen": 14,
    "fifteen": 15,
    "sixteen": 16,
    "seventeen": 17,
    "eighteen": 18,
    "nineteen": 19,
}
TENS = {
    "twenty": 20,
    "thirty": 30,
    "forty": 40,
    "fifty": 50,
    "sixty": 60,
    "seventy": 70,
    "eighty": 80,
    "ninety": 90,
}
ORDINALS = {
    "first": 1,
    "second": 2,
    "third": 3,
    "fourth": 4,
    "fifth": 5,
    "sixth": 6,
    "seventh": 7,
    "eighth": 8,
    "ninth": 9,
    "tenth": 10,
    "eleventh": 11,
    "twelfth": 12,
    "thirteenth": 13,
    "fourteenth": 14,
    "fifteenth": 15,
    "sixteenth": 16,
    "seventeenth": 17,
    "eighteenth": 18,
    "nineteenth": 19,
    "twentieth": 20,
    "thirtieth": 30,
}
_ZERO_WORDS = ("oh", "o")
# Recognisers mishear digits as these words; inside a run of digits they are digits.
_HOMOPHONES = {"to": "2", "too": "2", "for": "4", "won": "1", "ate": "8"}
_RUN_FILLERS = ("dash", "hyphen", "uh", "um", "er", "and")


def number_words_to_digits(text: str) -> str:
    """Normalised ``text`` with cardinal and ordinal number words as digits:
    "two thirty" -> "2 30", "twenty first" -> "21st", "forty five" -> "45"."""
    tokens = normalize(text).split()
    out: list[str] = []
    i = 0
    while i < len(tokens):
        word = tokens[i]
        nxt = tokens[i + 1] if i + 1 < len(tokens) else ""
        if word in TENS and nxt in UNITS and nxt != "zero":
            out.append(str(TENS[word] + UNITS[nxt]))
            i += 2
            continue
        if word in TENS and nxt in ORDINALS and ORDINALS[nxt] < 10:
            out.append(_ordinal(TENS[word] + ORDINALS[nxt]))
            i += 2
            continue
        if word in UNITS:
            out.append(str(UNITS[word]))
        elif word in TEENS:
            out.append(str(TEENS[word]))
        elif word in TENS:
            out.append(str(TENS[word]))
        elif word in ORDINALS:
            out.append(_ordinal(ORDINALS[word]))
        else:
            out.append(word)
        i += 1
    return " ".join(out)


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def digit_runs(text: str) -> list[str]:
    """Every run of phone-style digits in ``text``: "five five five, one two three" and
    "555-123" both give "555123"; "oh" is 0, "double five" is 55, "eight hundred" is 800."""
    tokens = re.findall(r"[a-z]+|\d+", text.lower().replace("'", ""))
    runs: list[str] = []
    current = ""
    i = 0
    while i < len(tokens):
        token = tokens[i]
        nxt = tokens[i + 1] if i + 1 < len(tokens) else ""
        piece, used = _digits_at(token, nxt, tokens[i + 2] if i + 2 < len(tokens) else "", current)
        if piece is not None:
            current += piece
            i += used
            continue
        if current and token in _RUN_FILLERS and _starts_digits(nxt):
            i += 1
            continue
        if current:
            runs.append(current)
            current = ""
        i += 1
    if current:
        runs.append(current)
    return runs


def _starts_digits(token: str) -> bool:
    return token.isdigit() or token in UNITS or token in TEENS or token in TENS


def _digits_at(token: str, nxt: str, after: str, current: str) -> tuple[str | None, int]:
    if token.isdigit():
        return token, 1
    if token in ("double", "triple") and nxt in UNITS:
        return str(UNITS[nxt]) * (2 if token == "double" else 3), 2
    if token in UNITS:
        if nxt == "hundred":
            return str(UNITS[token]) + "00", 2
        if nxt == "thousand":
            return str(UNITS[token]) + "000", 2
        return str(UNITS[token]), 1
    if token in TEENS:
        return str(TEENS[token]), 1
    if token in TENS:
        if nxt in UNITS and nxt != "zero":
            return str(TENS[token] + UNITS[nxt]), 2
        return str(TENS[token]), 1
    # "oh" and misheard digits only count next to real digits ("oh my number is" is no 0).
    if token in _ZERO_WORDS and (current or _starts_digits(nxt) or nxt in _ZERO_WORDS):
        return "0", 1
    if token in _HOMOPHONES and current and _starts_digits(nxt):
        return _HOMOPHONES[token], 1
    return None, 1


def extract_phone(text: str) -> str | None:
    """The phone number in ``text`` as digits ("5551234567"), or None.

    Accepts a 7-digit local number, 10 digits, or 11 starting with 1 (the US country code).
    """
    runs = [r for r in digit_runs(text) if len(r) >= 7]
    if not runs:
        return None
    digits = max(runs, key=len)
    if len(digits) in (7, 10) or (len(digits) == 11 and digits.startswith("1")):
        return digits
    return None


_NUMBER_LEAD = re.compile(
    r"\b(?:number is|number|phone is|phone number|reach me at|call me at|call me back at|"
    r"cell is|mobile is)\b"
)


def digits_after_number_lead(text: str) -> int | None:
    """How many digits follow "my number is" (or similar) in ``text``; None without one."""
    lowered = normalize(text)
    leads = list(_NUMBER_LEAD.finditer(lowered))
    if not leads:
        return None
    tail = lowered[leads[-1].end() :]
    runs = digit_runs(tail)
    return max((len(r) for r in runs), default=0)


_EMAIL_LITERAL = re.compile(r"[a-z0-9._%+-]+@[a-z0-9-]+(?:\.[a-z0-9-]+)+")
_CONNECTORS = {
    "dot": ".",
    "period": ".",
    "point": ".",
    "underscore": "_",
    "dash": "-",
    "hyphen": "-",
    "minus": "-",
}


def extract_email(text: str) -> str | None:
    """The email address in ``text``, written or spoken ("maria dot lopez at example dot com",
    "m a r i a at gmail dot com"), or None."""
    lowered = text.lower().strip()
    literal = _EMAIL_LITERAL.search(lowered)
    if literal:
        return literal.group().rstrip(".")
    tokens = re.findall(r"[a-z0-9]+|@|\.|_|-", lowered.replace("'", ""))
    tokens = [_CONNECTORS.get(t, t) for t in tokens]
    tokens = [str(UNITS[t]) if t in UNITS else t for t in tokens]
    for at in (i for i, t in enumerate(tokens) if t in ("at", "@")):
        local = _local_part(tokens[:at])
        domain = _domain_part(tokens[at + 1 :])
        if local and domain:
            return f"{local}@{domain}"
    return None


def _local_part(before: list[str]) -> str:
    parts: list[str] = []
    i = len(before) - 1
    if i < 0 or not before[i].isalnum():
        return ""
    parts.append(before[i])
    i -= 1
    while i >= 0:
        token = before[i]
        if token in "._-" and i > 0 and before[i - 1].isalnum():
            parts[:0] = [before[i - 1], token]
            i -= 2
        elif len(token) == 1 and token.isalnum() and len(parts[0]) == 1:
            # spelled out letter by letter: "m a r i a"
            parts.insert(0, token)
            i -= 1
        else:
            break
    return "".join(parts)


def _domain_part(after: list[str]) -> str:
    if not after or not after[0].isalnum():
        return ""
    parts = [after[0]]
    i = 1
    while i + 1 < len(after) and after[i] in (".", "-") and after[i + 1].isalnum():
        parts += [after[i], after[i + 1]]
        i += 2
    domain = "".join(parts)
    return domain if "." in domain else ""
