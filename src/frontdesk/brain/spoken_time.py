"""Days and times as callers say them, read relative to "now" in the business time zone, and
which of the offered slots a caller picked.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Literal

import dateparser

from frontdesk.brain.spoken_numbers import number_words_to_digits
from frontdesk.brain.spoken_text import has_phrase, normalize

PartOfDay = Literal["morning", "afternoon", "evening"]

WEEKDAYS = {
    "monday": 0,
    "mon": 0,
    "tuesday": 1,
    "tues": 1,
    "tue": 1,
    "wednesday": 2,
    "wed": 2,
    "weds": 2,
    "thursday": 3,
    "thurs": 3,
    "thur": 3,
    "thu": 3,
    "friday": 4,
    "fri": 4,
    "saturday": 5,
    "sat": 5,
    "sunday": 6,
    "sun": 6,
}
MONTHS = {
    "january": 1,
    "jan": 1,
    "february": 2,
    "feb": 2,
    "march": 3,
    "april": 4,
    "apr": 4,
    "may": 5,
    "june": 6,
    "jun": 6,
    "july": 7,
    "jul": 7,
    "august": 8,
    "aug": 8,
    "september": 9,
    "sept": 9,
    "sep": 9,
    "october": 10,
    "oct": 10,
    "november": 11,
    "nov": 11,
    "december": 12,
    "dec": 12,
}
_PARTS: dict[PartOfDay, tuple[str, ...]] = {
    "morning": ("morning", "mornings", "before lunch", "first thing", "early in the day"),
    "afternoon": ("afternoon", "afternoons", "after lunch", "lunchtime", "lunch time", "midday"),
    "evening": ("evening", "evenings", "tonight", "after work", "late in the day"),
}
_SOONEST = (
    "soonest",
    "earliest",
    "as soon as possible",
    "asap",
    "first available",
    "next available",
    "whenever",
    "any time",
    "anytime",
    "any day",
    "does not matter",
    "whatever works",
    "whatever is available",
    "first opening",
    "next opening",
    "right away",
)
_WEEKDAY_RE = "|".join(sorted(WEEKDAYS, key=len, reverse=True))
_MONTH_RE = "|".join(sorted(MONTHS, key=len, reverse=True))


@dataclass(frozen=True, slots=True)
class When:
    """What the caller said about when: any of a day, a part of the day, a time, or "soonest"."""

    day: date | None = None
    part_of_day: PartOfDay | None = None
    at: time | None = None
    soonest: bool = False


def part_of_day_for(value: time) -> PartOfDay:
    """The part of the day a clock time falls in (morning before noon, evening from 5 PM)."""
    if value.hour < 12:
        return "morning"
    return "afternoon" if value.hour < 17 else "evening"


def parse_when(text: str, now: datetime) -> When | None:
    """The day / part of day / time in ``text``, relative to ``now`` (aware, business zone).

    "thursday afternoon", "tomorrow at 10", "next monday", "the 3rd", "june 12th", "2 pm",
    "two thirty", "noon", "as soon as possible". None when it says nothing about when.
    """
    numeric_day, text = _numeric_date(text, now)
    spoken = _fix_homophones(number_words_to_digits(text))
    day = numeric_day or _parse_day(spoken, now)
    part = _parse_part(spoken)
    at = _parse_clock(spoken, part, bare_numbers=False)
    if at is not None and part is None:
        part = part_of_day_for(at)
    soonest = has_phrase(text, _SOONEST, use_stems=False)
    if day is None and part is None and at is None and not soonest:
        return None
    return When(day=day, part_of_day=part, at=at, soonest=soonest)


def parse_time(text: str, *, bare_numbers: bool = False) -> time | None:
    """The clock time in ``text`` ("2 pm", "two thirty", "noon", "at 10", "half past 3").

    A bare number ("two") counts only with ``bare_numbers`` (when choosing among offered
    times). Without AM/PM, 7-11 are morning and 12-6 afternoon: office hours.
    """
    spoken = _fix_homophones(number_words_to_digits(text))
    return _parse_clock(spoken, _parse_part(spoken), bare_numbers=bare_numbers)


def _fix_homophones(spoken: str) -> str:
    # "at to thirty", "for pm": recognisers write the word, the caller said the number.
    spoken = re.sub(r"\b(at|around|about|by|after|before) (to|too)\b", r"\1 2", spoken)
    spoken = re.sub(r"\b(at|around|about|by) for\b", r"\1 4", spoken)
    spoken = re.sub(r"\b(to|too) (?=(?:am|pm|30|15|45|oclock|o clock)\b)", "2 ", spoken)
    spoken = re.sub(r"\bfor (?=(?:am|pm|30|15|45|oclock|o clock)\b)", "4 ", spoken)
    return spoken.replace("o clock", "oclock")


def _parse_part(spoken: str) -> PartOfDay | None:
    for part, phrases in _PARTS.items():
        if has_phrase(spoken, phrases, use_stems=False):
            return part
    return None


def _parse_clock(spoken: str, part: PartOfDay | None, *, bare_numbers: bool) -> time | None:
    if re.search(r"\b(noon|midday|12 noon)\b", spoken):
        return time(12, 0)
    patterns: list[tuple[str, str]] = [
        (r"\bhalf past (\d{1,2})\b", "half"),
        (r"\bquarter past (\d{1,2})\b", "quarter"),
        (r"\bquarter (?:to|till|of) (\d{1,2})\b", "quarter_to"),
        (r"\b(\d{1,2})(?::(\d{2})| (\d{2}))? ?(am|pm)\b", "meridiem"),
        (r"\b(\d{1,2}):(\d{2})\b", "colon"),
        (r"\b(\d{1,2}) (00|05|10|15|20|25|30|35|40|45|50|55)\b(?! ?(?:st|nd|rd|th)\b)", "pair"),
        (r"\b(\d{1,2}) ?oclock\b", "oclock"),
        (r"\b(\d{1,2}) in the (?:morning|afternoon|evening)\b", "lead"),
        (
            r"\b(?:at|around|about|by|after|before|say|for) (\d{1,2})\b(?!(?:st|nd|rd|th| \d))",
            "lead",
        ),
    ]
    if bare_numbers:
        patterns.append((r"(?<![\d:])\b(\d{1,2})\b(?!(?:st|nd|rd|th|:))", "bare"))
    for pattern, kind in patterns:
        match = re.search(pattern, spoken)
        if not match:
            continue
        hour = int(match.group(1))
        minute = 0
        meridiem: str | None = None
        if kind == "half":
            minute = 30
        elif kind == "quarter":
            minute = 15
        elif kind == "quarter_to":
            hour, minute = hour - 1, 45
        elif kind == "meridiem":
            minute = int(match.group(2) or match.group(3) or 0)
            meridiem = match.group(4)
        elif kind in ("colon", "pair"):
            minute = int(match.group(2))
        resolved = _resolve_hour(hour, minute, meridiem, part)
        if resolved is not None:
            return resolved
    return None


def _resolve_hour(
    hour: int, minute: int, meridiem: str | None, part: PartOfDay | None
) -> time | None:
    if minute > 59 or hour > 23 or (meridiem and not 1 <= hour <= 12) or hour < 0:
        return None
    if meridiem == "am":
        hour = 0 if hour == 12 else hour
    elif meridiem == "pm":
        hour = hour if hour == 12 else hour + 12
    elif hour <= 12:
        if part in ("afternoon", "evening"):
            hour = hour if hour == 12 else hour + 12
        elif part == "morning":
            hour = 0 if hour == 12 else hour
        elif 1 <= hour <= 6:
            hour += 12  # office hours: "at 2" is 2 PM
        elif hour == 0:
            return None
    return time(hour, minute)


def _numeric_date(text: str, now: datetime) -> tuple[date | None, str]:
    """A written date ("6/20") read month first, and ``text`` without it."""
    match = _NUMERIC_DATE.search(text)
    if not match:
        return None, text
    parsed = dateparser.parse(
        match.group(),
        languages=["en"],
        settings={
            "DATE_ORDER": "MDY",
            "PREFER_DATES_FROM": "future",
            "RELATIVE_BASE": now.replace(tzinfo=None),
        },
    )
    rest = text[: match.start()] + " " + text[match.end() :]
    return (parsed.date() if parsed is not None else None), rest


_NUMERIC_DATE = re.compile(r"\b\d{1,2}/\d{1,2}(?:/\d{2,4})?\b")


def _parse_day(spoken: str, now: datetime) -> date | None:
    today = now.date()
    if "day after tomorrow" in spoken:
        return today + timedelta(days=2)
    if re.search(r"\b(tomorrow|tmrw)\b", spoken):
        return today + timedelta(days=1)
    if re.search(r"\b(today|tonight|this (morning|afternoon|evening)|later today)\b", spoken):
        return today
    relative = re.search(r"\bin (\d{1,2}|a|an) (day|days|week|weeks)\b", spoken)
    if relative:
        count = 1 if relative.group(1) in ("a", "an") else int(relative.group(1))
        return today + timedelta(days=count * (7 if "week" in relative.group(2) else 1))
    if re.search(r"\ba week from (today|now)\b", spoken):
        return today + timedelta(days=7)
    named = _month_day(spoken, today)
    if named is not None:
        return named
    weekday = re.search(rf"\b(next |this |coming |this coming )?({_WEEKDAY_RE})\b", spoken)
    if weekday:
        target = WEEKDAYS[weekday.group(2)]
        ahead = (target - today.weekday()) % 7
        if (weekday.group(1) or "").strip() == "next" and today.weekday() < target:
            ahead += 7  # "next thursday" on a tuesday: thursday of next week
        return today + timedelta(days=ahead)
    if re.search(r"\bnext week\b", spoken):
        return today + timedelta(days=7 - today.weekday())
    if re.search(r"\b(this|the) weekend\b", spoken):
        return today + timedelta(days=(5 - today.weekday()) % 7)
    if re.search(r"\bend of (the|this) week\b", spoken) and today.weekday() <= 4:
        return today + timedelta(days=4 - today.weekday())
    ordinal = re.search(rf"\b(?:the )(\d{{1,2}})(?:st|nd|rd|th)\b(?! {_NOT_A_DAY}\b)", spoken)
    if ordinal:
        return _next_day_of_month(int(ordinal.group(1)), today)
    return None


_NOT_A_DAY = "(?:1|one|option|slot|time|choice|available|opening)"  # "the first one"


def _month_day(spoken: str, today: date) -> date | None:
    match = re.search(rf"\b({_MONTH_RE}) (?:the )?(\d{{1,2}})(?:st|nd|rd|th)?\b", spoken)
    if match:
        month, day = MONTHS[match.group(1)], int(match.group(2))
    else:
        match = re.search(rf"\b(\d{{1,2}})(?:st|nd|rd|th)? of ({_MONTH_RE})\b", spoken)
        if not match:
            return None
        month, day = MONTHS[match.group(2)], int(match.group(1))
    for year in (today.year, today.year + 1):
        try:
            candidate = date(year, month, day)
        except ValueError:
            return None
        if candidate >= today:
            return candidate
    return None


def _next_day_of_month(day: int, today: date) -> date | None:
    year, month = today.year, today.month
    for _ in range(12):
        try:
            candidate = date(year, month, day)
        except ValueError:
            candidate = None
        if candidate is not None and candidate >= today:
            return candidate
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return None


_FIRST = (
    "first",
    "1st",
    "earlier one",
    "the earlier",
    "earliest",
    "sooner one",
    "the sooner",
    "soonest",
    "former",
)
_SECOND = ("second", "2nd", "middle")
_THIRD = ("third", "3rd")
_LAST = ("last", "latter", "later one", "the later", "latest", "final")
_ANY = (
    "either",
    "any of them",
    "any of those",
    "whichever",
    "does not matter",
    "either one",
    "any one",
    "whatever",
)


def choose_slot(text: str, slots: Sequence[datetime], now: datetime) -> int | None:
    """Which of the offered ``slots`` the caller picked ("the first one", "two works",
    "friday at 10", "the later one"), as an index; None when unclear or none fits."""
    if not slots:
        return None
    local = [s.astimezone(now.tzinfo) for s in slots]
    # "the later one", "the one on friday": that "one" is no number.
    cleaned = re.sub(rf"\b({_ONE_LEADS}) ones?\b", r"\1", normalize(text))
    cleaned = re.sub(r"\bones?\b(?= (?:on|at|in|for)\b)", "", cleaned)
    option = re.search(r"\b(?:option|number|choice) (\d|one|two|three|four)\b", cleaned)
    if option:
        cleaned = cleaned[: option.start()] + cleaned[option.end() :]
    spoken = _fix_homophones(number_words_to_digits(cleaned))
    # "the second one" is a position in the offer, not the 2nd of the month ("on the 2nd" is)
    dates_only = re.sub(
        rf"\b(on |(?:{_MONTH_RE}) )?(?:the )?(?:first|second|third|1st|2nd|3rd)\b(?! of\b)",
        lambda m: m.group() if m.group(1) else " ",
        cleaned,
    )
    candidates = list(range(len(local)))
    when = parse_when(dates_only, now)
    narrowed = False
    if when is not None and when.day is not None:
        same_day = [i for i in candidates if local[i].date() == when.day]
        if same_day:
            candidates, narrowed = same_day, True
        elif not re.search(r"\b\d{1,2}(st|nd|rd|th)\b", spoken):
            return None  # a day that was not offered
    at = parse_time(dates_only, bare_numbers=True)
    if at is not None:
        timed = [i for i in candidates if _same_clock(local[i].time(), at)]
        if not timed:
            return None  # a time that was not offered
        candidates, narrowed = timed, True
    elif when is not None and when.part_of_day is not None:
        parted = [i for i in candidates if part_of_day_for(local[i].time()) == when.part_of_day]
        if parted:
            candidates, narrowed = parted, True
    ordered = sorted(candidates, key=lambda i: local[i])
    if option:
        number = int(number_words_to_digits(option.group(1)))
        return ordered[number - 1] if 1 <= number <= len(ordered) else None
    if has_phrase(spoken, _LAST, use_stems=False):
        return ordered[-1]
    if has_phrase(spoken, _FIRST, use_stems=False):
        return ordered[0]
    if has_phrase(spoken, _SECOND, use_stems=False) and len(ordered) >= 2:
        return ordered[1]
    if has_phrase(spoken, _THIRD, use_stems=False) and len(ordered) >= 3:
        return ordered[2]
    if narrowed and len(candidates) == 1:
        return candidates[0]
    if has_phrase(cleaned, _ANY, use_stems=False):
        return ordered[0]
    return None


_ONE_LEADS = "|".join(
    (
        "first",
        "second",
        "third",
        "last",
        "later",
        "earlier",
        "sooner",
        "latter",
        "former",
        "middle",
        "the",
        "that",
        "this",
        "either",
        "any",
        "other",
        "morning",
        "afternoon",
        "evening",
        "friday",
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "saturday",
        "sunday",
        "pm",
        "am",
        "oclock",
    )
)


def _same_clock(slot: time, said: time) -> bool:
    # "two" resolves to 2 PM, but compare on the 12-hour dial: the caller heard the label.
    return slot.minute == said.minute and slot.hour % 12 == said.hour % 12
