"""Opening hours: per weekday, one or more windows, in the business's own timezone."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_DAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")

_CLOSED_WORDS = frozenset({"", "closed", "off", "none", "false"})
_TIME = re.compile(r"^(\d{1,2})(?::(\d{2}))?$")

Window = tuple[time, time]
"""Opening and closing wall-clock time; ``time.max`` stands for midnight at the day's end."""


def _parse_time(text: str, where: str) -> time:
    match = _TIME.match(text.strip())
    if not match:
        raise ValueError(f"{where}: {text!r} is not a time like 09:00")
    hour, minute = int(match.group(1)), int(match.group(2) or 0)
    if hour == 24 and minute == 0:
        return time.max
    if hour > 23 or minute > 59:
        raise ValueError(f"{where}: {text!r} is not a valid time of day")
    return time(hour, minute)


def _weekday_index(key: object) -> int:
    name = str(key).strip().lower()
    for index, full in enumerate(_DAY_NAMES):
        if len(name) >= 3 and full.startswith(name):
            return index
    raise ValueError(f"unknown weekday {key!r}; use one of {', '.join(WEEKDAYS)}")


def _parse_day(day: str, spec: object) -> tuple[Window, ...]:
    if spec is None or spec is False or str(spec).strip().lower() in _CLOSED_WORDS:
        return ()
    windows: list[Window] = []
    for part in str(spec).split(","):
        if "-" not in part:
            raise ValueError(f"{day}: {part.strip()!r} is not a range like 09:00-17:00")
        opening_text, closing_text = part.split("-", 1)
        opening = _parse_time(opening_text, day)
        closing = _parse_time(closing_text, day)
        if closing <= opening:
            raise ValueError(f"{day}: {part.strip()!r} closes before it opens")
        windows.append((opening, closing))
    windows.sort()
    for (_, previous_close), (next_open, _) in pairwise(windows):
        if next_open < previous_close:
            raise ValueError(f"{day}: opening windows {spec!r} overlap")
    return tuple(windows)


@dataclass(frozen=True, slots=True)
class BusinessHours:
    """When the business is open: windows per weekday (0 = Monday) in ``tz``."""

    tz: ZoneInfo
    weekly: tuple[tuple[Window, ...], ...]

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, object], tz: str = "UTC") -> BusinessHours:
        """Hours from ``{"mon": "09:00-17:00", "tue": "09:00-12:00,13:00-17:00",
        "sat": "closed"}``; a weekday left out is closed. Keys may be full day names."""
        try:
            zone = ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError) as error:
            raise ValueError(f"unknown timezone {tz!r}") from error
        days: dict[int, tuple[Window, ...]] = {}
        for key, spec in mapping.items():
            index = _weekday_index(key)
            if index in days:
                raise ValueError(f"weekday {key!r} is given twice")
            days[index] = _parse_day(WEEKDAYS[index], spec)
        return cls(zone, tuple(days.get(index, ()) for index in range(7)))

    @property
    def timezone(self) -> ZoneInfo:
        """The business's timezone."""
        return self.tz

    def windows(self, day: date) -> list[tuple[datetime, datetime]]:
        """The opening windows of ``day`` as timezone-aware datetimes, in order."""
        result = []
        for opening, closing in self.weekly[day.weekday()]:
            start = datetime.combine(day, opening, tzinfo=self.tz)
            if closing == time.max:
                end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=self.tz)
            else:
                end = datetime.combine(day, closing, tzinfo=self.tz)
            result.append((start, end))
        return result

    def is_open(self, moment: datetime) -> bool:
        """Whether the business is open at ``moment`` (which must be timezone-aware)."""
        local = self.local(moment)
        return any(start <= local < end for start, end in self.windows(local.date()))

    def contains(self, start: datetime, end: datetime) -> bool:
        """Whether ``[start, end)`` lies inside a single opening window."""
        local_start, local_end = self.local(start), self.local(end)
        return any(
            opening <= local_start and local_end <= closing
            for opening, closing in self.windows(local_start.date())
        )

    def open_on(self, day: date) -> bool:
        """Whether ``day`` has any opening hours."""
        return bool(self.weekly[day.weekday()])

    def local(self, moment: datetime) -> datetime:
        """``moment`` in the business timezone; naive datetimes are refused."""
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise ValueError(f"expected a timezone-aware datetime, got naive {moment!r}")
        return moment.astimezone(self.tz)
