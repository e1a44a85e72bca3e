"""Business hours and the SQL calendar, on a real SQLite file, with a fixed clock."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from frontdesk.business.calendar import Booking, SlotTaken, SQLCalendar, describe_slot
from frontdesk.business.hours import BusinessHours
from frontdesk.store import Database

NY = ZoneInfo("America/New_York")
MONDAY = date(2026, 3, 2)  # US daylight saving time starts on Sunday 2026-03-08
NOW = datetime(2026, 3, 2, 8, 0, tzinfo=NY)  # Monday, before opening
HALF_HOUR = timedelta(minutes=30)
HOURS = BusinessHours.from_mapping(
    {
        "mon": "09:00-17:00",
        "tue": "09:00-17:00",
        "wed": "09:00-12:00,13:00-17:00",
        "thu": "09:00-17:00",
        "friday": "9-17",
        "sat": "closed",
    },
    tz="America/New_York",
)


class Clock:
    """A settable clock, so "now" is part of the test, not of the day it runs."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=NY)


@pytest.fixture
def db(tmp_path: Path) -> Database:
    database = Database(f"sqlite:///{tmp_path / 'calendar.db'}")
    database.create_all()
    yield database
    database.dispose()


@pytest.fixture
def clock() -> Clock:
    return Clock(NOW)


@pytest.fixture
def calendar(db: Database, clock: Clock) -> SQLCalendar:
    return SQLCalendar(db, HOURS, slot_minutes=30, now=clock)


async def book(calendar: SQLCalendar, start: datetime, key: str | None = None) -> Booking:
    return await calendar.book(
        start, HALF_HOUR, contact_id=None, call_id=None, service="cleaning", idempotency_key=key
    )


def test_hours_with_a_lunch_break() -> None:
    wednesday = MONDAY + timedelta(days=2)
    assert HOURS.windows(wednesday) == [
        (at(wednesday, 9), at(wednesday, 12)),
        (at(wednesday, 13), at(wednesday, 17)),
    ]
    assert HOURS.is_open(at(wednesday, 11, 59))
    assert not HOURS.is_open(at(wednesday, 12, 30))
    assert HOURS.is_open(at(wednesday, 13))
    assert not HOURS.is_open(at(wednesday, 17))
    assert HOURS.windows(MONDAY + timedelta(days=5)) == []  # Saturday: closed
    assert HOURS.windows(MONDAY + timedelta(days=6)) == []  # Sunday: left out, so closed
    # Friday given as "9-17" under its full name.
    assert HOURS.windows(MONDAY + timedelta(days=4))[0][0].hour == 9


def test_hours_follow_daylight_saving_time() -> None:
    # 9 AM in New York is 14:00 UTC before the switch and 13:00 UTC after it.
    assert HOURS.windows(MONDAY)[0][0].astimezone(UTC).hour == 14
    assert HOURS.windows(MONDAY + timedelta(days=7))[0][0].astimezone(UTC).hour == 13
    assert HOURS.is_open(datetime(2026, 3, 9, 13, 30, tzinfo=UTC))
    assert not HOURS.is_open(datetime(2026, 3, 2, 13, 30, tzinfo=UTC))


def test_hours_can_run_to_midnight() -> None:
    late = BusinessHours.from_mapping({"mon": "18:00-24:00"}, tz="UTC")
    assert late.is_open(datetime(2026, 3, 2, 23, 59, tzinfo=UTC))
    assert not late.is_open(datetime(2026, 3, 3, 0, 0, tzinfo=UTC))


@pytest.mark.parametrize(
    ("mapping", "tz", "problem"),
    [
        ({"mon": "09:00-25:00"}, "UTC", "not a valid time"),
        ({"mon": "17:00-09:00"}, "UTC", "closes before it opens"),
        ({"mon": "9 to 5"}, "UTC", "not a range"),
        ({"mon": "09:00-13:00,12:00-17:00"}, "UTC", "overlap"),
        ({"funday": "09:00-17:00"}, "UTC", "unknown weekday 'funday'"),
        ({"mon": "09:00-17:00"}, "Mars/Olympus", "unknown timezone"),
    ],
)
def test_bad_hours_are_refused_naming_the_problem(
    mapping: dict[str, str], tz: str, problem: str
) -> None:
    with pytest.raises(ValueError, match=problem):
        BusinessHours.from_mapping(mapping, tz=tz)


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        HOURS.is_open(datetime(2026, 3, 2, 10))


async def test_free_slots_are_a_grid_inside_business_hours(calendar: SQLCalendar) -> None:
    monday = await calendar.free_slots(at(MONDAY, 0), at(MONDAY, 23), HALF_HOUR)
    assert len(monday) == 16
    assert (monday[0].start, monday[-1].end) == (at(MONDAY, 9), at(MONDAY, 17))

    wednesday = MONDAY + timedelta(days=2)
    hour_long = await calendar.free_slots(
        at(wednesday, 0), at(wednesday, 23), timedelta(minutes=60)
    )
    starts = [(slot.start.hour, slot.start.minute) for slot in hour_long]
    # A one-hour appointment cannot start at 11:30 (lunch from 12) nor at 16:30 (closing).
    assert (11, 0) in starts and (11, 30) not in starts and (12, 0) not in starts
    assert (13, 0) in starts and (16, 0) in starts and (16, 30) not in starts

    weekend = await calendar.free_slots(
        at(MONDAY + timedelta(days=5), 0), at(MONDAY + timedelta(days=7), 0), HALF_HOUR
    )
    assert weekend == []


async def test_past_slots_are_not_offered(calendar: SQLCalendar, clock: Clock) -> None:
    clock.now = at(MONDAY, 10, 10)
    slots = await calendar.free_slots(at(MONDAY, 0), at(MONDAY, 23), HALF_HOUR)
    assert slots[0].start == at(MONDAY, 10, 30)


async def test_booking_takes_the_slot_off_the_calendar(calendar: SQLCalendar) -> None:
    booking = await book(calendar, at(MONDAY, 14))
    assert (booking.start, booking.end) == (at(MONDAY, 14), at(MONDAY, 14, 30))
    assert booking.service == "cleaning"
    slots = await calendar.free_slots(at(MONDAY, 0), at(MONDAY, 23), HALF_HOUR)
    assert at(MONDAY, 14) not in [slot.start for slot in slots]
    assert len(slots) == 15
    # An hour-long appointment at 13:30 would overlap it, so it is not offered either.
    hour_long = await calendar.free_slots(at(MONDAY, 0), at(MONDAY, 23), timedelta(hours=1))
    assert at(MONDAY, 13, 30) not in [slot.start for slot in hour_long]
    assert [b.id for b in await calendar.bookings()] == [booking.id]


async def test_a_taken_slot_is_refused(calendar: SQLCalendar) -> None:
    await book(calendar, at(MONDAY, 14))
    with pytest.raises(SlotTaken, match="already taken"):
        await book(calendar, at(MONDAY, 14))
    with pytest.raises(SlotTaken, match="already taken"):
        await calendar.book(
            at(MONDAY, 13, 30),
            timedelta(hours=1),
            contact_id=None,
            call_id=None,
            service=None,
            idempotency_key=None,
        )
    assert len(await calendar.bookings()) == 1


async def test_past_closed_and_off_grid_times_are_refused(
    calendar: SQLCalendar, clock: Clock
) -> None:
    clock.now = at(MONDAY, 12)
    with pytest.raises(SlotTaken, match="passed"):
        await book(calendar, at(MONDAY, 10))
    with pytest.raises(SlotTaken, match="closed"):
        await book(calendar, at(MONDAY, 17))
    with pytest.raises(SlotTaken, match="closed"):
        await book(calendar, at(MONDAY + timedelta(days=5), 10))  # Saturday
    with pytest.raises(SlotTaken, match="closed"):
        await book(calendar, at(MONDAY + timedelta(days=2), 12))  # Wednesday lunch
    with pytest.raises(SlotTaken, match="every 30 minutes"):
        await book(calendar, at(MONDAY, 14, 10))
    with pytest.raises(ValueError, match="timezone-aware"):
        await book(calendar, datetime(2026, 3, 3, 10))
    assert await calendar.bookings() == []


async def test_the_same_idempotency_key_books_once(calendar: SQLCalendar) -> None:
    first = await book(calendar, at(MONDAY, 15), key="call-1:15")
    second = await book(calendar, at(MONDAY, 15), key="call-1:15")
    assert first == second
    assert len(await calendar.bookings()) == 1
    with pytest.raises(ValueError, match="another time"):
        await book(calendar, at(MONDAY, 16), key="call-1:15")


async def test_cancelling_frees_the_slot(calendar: SQLCalendar) -> None:
    booking = await book(calendar, at(MONDAY, 15), key="k")
    await calendar.cancel(booking.id)
    assert await calendar.bookings() == []
    again = await book(calendar, at(MONDAY, 15), key="k")
    assert again.id != booking.id


async def test_concurrent_bookings_of_one_slot_let_exactly_one_through(
    calendar: SQLCalendar,
) -> None:
    results = await asyncio.gather(
        *(book(calendar, at(MONDAY, 11), key=f"call-{n}") for n in range(5)),
        return_exceptions=True,
    )
    booked = [result for result in results if isinstance(result, Booking)]
    refused = [result for result in results if isinstance(result, SlotTaken)]
    assert (len(booked), len(refused)) == (1, 4)
    assert len(await calendar.bookings()) == 1


def test_two_processes_worth_of_writers_cannot_double_book(tmp_path: Path) -> None:
    """Two threads, each with its own engine on the same file (as two server processes
    would be), race for the same slots; each slot ends up booked exactly once."""
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    Database(url).create_all()
    slots = [at(MONDAY + timedelta(days=1), 9, 0) + n * HALF_HOUR for n in range(8)]
    barrier = threading.Barrier(2)
    outcomes: dict[str, list[object]] = {}

    def writer(name: str) -> None:
        calendar = SQLCalendar(Database(url), HOURS, now=lambda: NOW)

        async def race() -> list[object]:
            results: list[object] = []
            for start in slots:
                try:
                    results.append(await book(calendar, start, key=f"{name}:{start}"))
                except SlotTaken as refusal:
                    results.append(refusal)
            return results

        barrier.wait()
        outcomes[name] = asyncio.run(race())
        calendar.db.dispose()

    threads = [threading.Thread(target=writer, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert set(outcomes) == {"a", "b"}
    for index in range(len(slots)):
        pair = [outcomes["a"][index], outcomes["b"][index]]
        assert sum(isinstance(result, Booking) for result in pair) == 1, pair
        assert sum(isinstance(result, SlotTaken) for result in pair) == 1, pair
    calendar = SQLCalendar(Database(url), HOURS, now=lambda: NOW)
    assert len(asyncio.run(calendar.bookings())) == len(slots)


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (at(MONDAY, 15), "today at 3 PM"),
        (at(MONDAY + timedelta(days=1), 10, 30), "tomorrow at 10:30 AM"),
        (at(MONDAY + timedelta(days=3), 14), "Thursday at 2 PM"),
        (at(MONDAY + timedelta(days=3), 12), "Thursday at 12 PM"),
        (at(MONDAY + timedelta(days=7), 9), "Monday, March 9 at 9 AM"),
        # A UTC time is spoken in the business's timezone.
        (datetime(2026, 3, 5, 19, 0, tzinfo=UTC), "Thursday at 2 PM"),
    ],
)
def test_slots_are_described_in_speakable_english(moment: datetime, expected: str) -> None:
    assert describe_slot(moment, NOW, NY) == expected
