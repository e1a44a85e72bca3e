"""The CalDAV calendar against a real Radicale server (htpasswd auth) on 127.0.0.1.

A second, independent ``caldav`` client plays the staff's calendar app: it puts events on
the calendar and checks what the agent booked.
"""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import caldav
import icalendar
import pytest
import pytest_asyncio

from frontdesk.business.caldav_calendar import CalDAVCalendar, CalDAVSettings
from frontdesk.business.calendar import CalendarUnavailable, SlotTaken, SQLCalendar
from frontdesk.business.crm import SQLCRM, ContactInfo
from frontdesk.business.hours import BusinessHours
from frontdesk.store import Database
from radicale_server import RadicaleServer, free_port, radicale

NY = ZoneInfo("America/New_York")
NOW = datetime(2026, 11, 23, 8, 0, tzinfo=NY)  # Monday, before opening
TUESDAY, WEDNESDAY, THURSDAY = date(2026, 11, 24), date(2026, 11, 25), date(2026, 11, 26)
HALF_HOUR, HOUR = timedelta(minutes=30), timedelta(hours=1)
HOURS = BusinessHours.from_mapping(
    {"mon": "09:00-17:00", "tue": "09:00-17:00", "wed": "09:00-17:00", "thu": "09:00-17:00"},
    tz="America/New_York",
)
JANE = ContactInfo(id=7, phone="+15551234567", name="Jane Doe")


def at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=NY)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RadicaleServer]:
    with radicale(tmp_path_factory.mktemp("radicale")) as running:
        yield running


@pytest.fixture
def staff(server: RadicaleServer) -> Iterator[caldav.Calendar]:
    """A fresh calendar, as the staff's own CalDAV client sees it."""
    client = caldav.DAVClient(url=server.url, username=server.user, password=server.password)
    yield client.principal().make_calendar(name=f"Front desk {uuid.uuid4().hex[:8]}")
    client.close()


def settings_for(server: RadicaleServer, calendar: caldav.Calendar) -> CalDAVSettings:
    return CalDAVSettings(
        url=server.url, username=server.user, password=server.password, calendar=str(calendar.url)
    )


async def lookup(contact_id: int) -> ContactInfo | None:
    return JANE if contact_id == JANE.id else None


@pytest_asyncio.fixture
async def desk(server: RadicaleServer, staff: caldav.Calendar) -> AsyncIterator[CalDAVCalendar]:
    """The agent's calendar on the staff's calendar, with the clock on Monday morning."""
    calendar = CalDAVCalendar(
        settings_for(server, staff), HOURS, now=lambda: NOW, contact_lookup=lookup
    )
    yield calendar
    await calendar.aclose()


def add_staff_event(
    calendar: caldav.Calendar,
    summary: str,
    start: datetime | date,
    end: datetime | date,
    rrule: dict | None = None,
    **properties: object,
) -> None:
    event = icalendar.Event()
    event.add("uid", str(uuid.uuid4()))
    event.add("dtstamp", datetime.now(UTC))
    event.add("summary", summary)
    event.add("dtstart", start)  # local time with a TZID (or a whole day), as apps write it
    event.add("dtend", end)
    if rrule:
        event.add("rrule", rrule)
    for name, value in properties.items():
        event.add(name, value)
    container = icalendar.Calendar()
    container.add("prodid", "-//staff calendar app//EN")
    container.add("version", "2.0")
    container.add_component(event)
    container.add_missing_timezones()
    calendar.add_event(container.to_ical().decode())


def staff_events_on(calendar: caldav.Calendar, day: date) -> list[icalendar.Event]:
    found = calendar.search(start=at(day, 0), end=at(day + timedelta(days=1), 0), event=True)
    return [c for resource in found for c in resource.icalendar_instance.walk("VEVENT")]


async def free_on_tuesday(settings: CalDAVSettings) -> list:
    """Ask a new adapter with ``settings`` for Tuesday's hour-long slots."""
    calendar = CalDAVCalendar(settings, HOURS, now=lambda: NOW)
    try:
        return await calendar.free_slots(at(TUESDAY, 0), at(TUESDAY, 23), HOUR)
    finally:
        await calendar.aclose()


def starts(slots: list) -> set[datetime]:
    return {slot.start for slot in slots}


async def test_free_slots_match_the_sql_grid_on_an_empty_calendar(
    desk: CalDAVCalendar, tmp_path: Path
) -> None:
    db = Database(f"sqlite:///{tmp_path / 'calendar.db'}")
    db.create_all()
    sql = SQLCalendar(db, HOURS, now=lambda: NOW)
    for duration in (HALF_HOUR, HOUR):
        expected = await sql.free_slots(at(TUESDAY, 0), at(THURSDAY, 0), duration)
        assert await desk.free_slots(at(TUESDAY, 0), at(THURSDAY, 0), duration) == expected
    db.dispose()


async def test_free_slots_exclude_events_and_weekly_recurring_ones(
    desk: CalDAVCalendar, staff: caldav.Calendar
) -> None:
    empty = starts(await desk.free_slots(at(TUESDAY, 0), at(THURSDAY, 23), HALF_HOUR))
    add_staff_event(staff, "Supplier visit", at(THURSDAY, 10), at(THURSDAY, 11))
    # A weekly staff meeting that began in October, before the clocks went back: its
    # Tuesday occurrences are still at noon local time.
    october = date(2026, 10, 6)
    add_staff_event(staff, "Staff meeting", at(october, 12), at(october, 13), {"FREQ": "WEEKLY"})
    # A daily stand-up, skipped on Thursday.
    daily = {"FREQ": "DAILY"}
    add_staff_event(
        staff, "Stand-up", at(october, 9), at(october, 9, 30), daily, exdate=at(THURSDAY, 9)
    )
    add_staff_event(staff, "Closed: inventory", WEDNESDAY, WEDNESDAY + timedelta(days=1))
    # Neither of these blocks time.
    add_staff_event(
        staff, "Think about taxes", at(THURSDAY, 13), at(THURSDAY, 17), transp="TRANSPARENT"
    )
    add_staff_event(staff, "Called off", at(THURSDAY, 16), at(THURSDAY, 17), status="CANCELLED")

    free = await desk.free_slots(at(TUESDAY, 0), at(THURSDAY, 23), HALF_HOUR)
    wednesday = {start for start in empty if start.date() == WEDNESDAY}
    assert len(wednesday) == 16
    assert empty - starts(free) == wednesday | {
        at(TUESDAY, 9),
        at(TUESDAY, 12),
        at(TUESDAY, 12, 30),
        at(THURSDAY, 10),
        at(THURSDAY, 10, 30),
    }
    hour_long = starts(await desk.free_slots(at(THURSDAY, 0), at(THURSDAY, 23), HOUR))
    assert at(THURSDAY, 9, 30) not in hour_long  # would run into the supplier visit
    assert {at(THURSDAY, 9), at(THURSDAY, 11)} <= hour_long


async def test_a_booking_is_an_event_the_staff_sees(
    desk: CalDAVCalendar, staff: caldav.Calendar
) -> None:
    booking = await desk.book(
        at(THURSDAY, 14),
        HOUR,
        contact_id=JANE.id,
        call_id="call-1",
        service="Consultation",
        idempotency_key="call-1:thu-14",
    )
    assert (booking.start, booking.end) == (at(THURSDAY, 14), at(THURSDAY, 15))

    [event] = staff_events_on(staff, THURSDAY)
    assert event["DTSTART"].dt == at(THURSDAY, 14)
    assert event["DTEND"].dt == at(THURSDAY, 15)
    assert "Jane Doe" in event["SUMMARY"] and "Consultation" in event["SUMMARY"]
    assert JANE.phone in event["DESCRIPTION"]

    assert await desk.bookings(call_id="call-1") == [booking]
    assert await desk.bookings(contact_id=JANE.id) == [booking]
    assert await desk.bookings(call_id="another call") == []
    free = starts(await desk.free_slots(at(THURSDAY, 0), at(THURSDAY, 23), HALF_HOUR))
    assert at(THURSDAY, 14) not in free and at(THURSDAY, 14, 30) not in free
    assert at(THURSDAY, 15) in free


async def test_the_event_names_the_caller_from_the_crm(
    server: RadicaleServer, staff: caldav.Calendar, tmp_path: Path
) -> None:
    db = Database(f"sqlite:///{tmp_path / 'crm.db'}")
    db.create_all()
    crm = SQLCRM(db)
    caller = await crm.upsert_contact("(555) 010-2030", name="Dana Scully")
    calendar = CalDAVCalendar(
        settings_for(server, staff), HOURS, now=lambda: NOW, contact_lookup=crm.get_contact
    )
    try:
        await calendar.book(
            at(WEDNESDAY, 10), HALF_HOUR, contact_id=caller.id, call_id="call-crm",
            service="Cleaning", idempotency_key="call-crm:wed-10",
        )  # fmt: skip
        # A contact the CRM does not know still books; the event just cannot name them.
        await calendar.book(
            at(WEDNESDAY, 11), HALF_HOUR, contact_id=caller.id + 1000, call_id="call-x",
            service=None, idempotency_key="call-x:wed-11",
        )  # fmt: skip
    finally:
        await calendar.aclose()
        db.dispose()
    named, unknown = sorted(staff_events_on(staff, WEDNESDAY), key=lambda e: e["DTSTART"].dt)
    assert named["SUMMARY"] == "Cleaning: Dana Scully"
    assert "Caller: Dana Scully" in named["DESCRIPTION"]
    assert "Phone: +15550102030" in named["DESCRIPTION"]
    assert unknown["SUMMARY"] == "Appointment"
    assert "Phone:" not in unknown["DESCRIPTION"]


async def test_a_retried_booking_makes_one_event(
    desk: CalDAVCalendar, staff: caldav.Calendar
) -> None:
    async def book(start: datetime) -> object:
        return await desk.book(
            start, HALF_HOUR, contact_id=None, call_id="c", service=None, idempotency_key="k1"
        )

    first, second = await asyncio.gather(book(at(THURSDAY, 9)), book(at(THURSDAY, 9)))
    assert first == second
    assert await book(at(THURSDAY, 9)) == first
    assert len(staff_events_on(staff, THURSDAY)) == 1
    with pytest.raises(ValueError, match="already used for another time"):
        await book(at(THURSDAY, 10))


async def test_a_taken_slot_is_refused(desk: CalDAVCalendar, staff: caldav.Calendar) -> None:
    add_staff_event(staff, "Dentist", at(THURSDAY, 15), at(THURSDAY, 16))

    async def book(start: datetime, duration: timedelta = HALF_HOUR, key: str = "x") -> object:
        return await desk.book(
            start, duration, contact_id=None, call_id=None, service=None, idempotency_key=key
        )

    with pytest.raises(SlotTaken, match="already taken"):
        await book(at(THURSDAY, 15, 30))
    with pytest.raises(SlotTaken, match="already taken"):
        await book(at(THURSDAY, 14, 30), HOUR)  # runs into the dentist
    await book(at(THURSDAY, 14), key="first caller")
    with pytest.raises(SlotTaken, match="already taken"):
        await book(at(THURSDAY, 14), key="second caller")
    with pytest.raises(SlotTaken, match="passed"):
        await book(at(date(2026, 11, 20), 10))
    with pytest.raises(SlotTaken, match="closed"):
        await book(at(date(2026, 11, 28), 10))  # a Saturday
    with pytest.raises(SlotTaken, match="every 30 minutes"):
        await book(at(THURSDAY, 10, 10))
    assert len(staff_events_on(staff, THURSDAY)) == 2


async def test_concurrent_bookings_of_one_slot_one_wins(
    server: RadicaleServer, staff: caldav.Calendar
) -> None:
    # Two agent processes' worth of adapters, three callers each, all after 11:00 Thursday.
    desks = [CalDAVCalendar(settings_for(server, staff), HOURS, now=lambda: NOW) for _ in "ab"]

    async def book(index: int) -> object:
        try:
            return await desks[index % 2].book(
                at(THURSDAY, 11),
                HALF_HOUR,
                contact_id=index,
                call_id=f"call-{index}",
                service=None,
                idempotency_key=f"call-{index}:thu-11",
            )
        except SlotTaken as refusal:
            return refusal

    outcomes = await asyncio.gather(*(book(index) for index in range(6)))
    refused = [o for o in outcomes if isinstance(o, SlotTaken)]
    assert len(refused) == 5, outcomes
    [event] = staff_events_on(staff, THURSDAY)
    assert event["DTSTART"].dt == at(THURSDAY, 11)
    for desk in desks:
        await desk.aclose()


async def test_racing_bookings_of_different_lengths_never_overlap(
    server: RadicaleServer, staff: caldav.Calendar
) -> None:
    desks = [CalDAVCalendar(settings_for(server, staff), HOURS, now=lambda: NOW) for _ in "ab"]
    requests = [(at(THURSDAY, 10), HOUR), (at(THURSDAY, 10, 30), HALF_HOUR)] * 2

    async def book(index: int) -> object:
        start, duration = requests[index]
        try:
            return await desks[index % 2].book(
                start, duration, contact_id=None, call_id=None, service=None,
                idempotency_key=f"racer-{index}",
            )  # fmt: skip
        except SlotTaken as refusal:
            return refusal

    outcomes = await asyncio.gather(*(book(index) for index in range(len(requests))))
    events = staff_events_on(staff, THURSDAY)
    assert len(events) == sum(not isinstance(o, SlotTaken) for o in outcomes) <= 1, outcomes
    for desk in desks:
        await desk.aclose()


async def test_cancel_frees_the_slot(desk: CalDAVCalendar, staff: caldav.Calendar) -> None:
    async def book() -> object:
        return await desk.book(
            at(WEDNESDAY, 16), HALF_HOUR, contact_id=JANE.id, call_id="c",
            service=None, idempotency_key="cancel-me",
        )  # fmt: skip

    booking = await book()
    await desk.cancel(booking.id)
    assert staff_events_on(staff, WEDNESDAY) == []
    assert await desk.bookings() == []
    assert at(WEDNESDAY, 16) in starts(
        await desk.free_slots(at(WEDNESDAY, 0), at(WEDNESDAY, 23), HALF_HOUR)
    )
    assert (await book()).start == at(WEDNESDAY, 16)  # the key may book again
    with pytest.raises(LookupError):
        await desk.cancel(12345)


async def test_a_booking_moved_by_the_staff_frees_its_old_time(
    desk: CalDAVCalendar, staff: caldav.Calendar
) -> None:
    first = await desk.book(
        at(THURSDAY, 13), HALF_HOUR, contact_id=None, call_id=None, service=None,
        idempotency_key="moved",
    )  # fmt: skip
    [resource] = staff.search(start=at(THURSDAY, 0), end=at(THURSDAY, 23), event=True)
    event = resource.icalendar_component
    for name, moment in (("DTSTART", at(THURSDAY, 16)), ("DTEND", at(THURSDAY, 16, 30))):
        del event[name]
        event.add(name, moment)
    resource.icalendar_instance.add_missing_timezones()
    resource.save()

    free = starts(await desk.free_slots(at(THURSDAY, 0), at(THURSDAY, 23), HALF_HOUR))
    assert at(THURSDAY, 13) in free and at(THURSDAY, 16) not in free
    second = await desk.book(
        at(THURSDAY, 13), HALF_HOUR, contact_id=None, call_id=None, service=None,
        idempotency_key="new caller",
    )  # fmt: skip
    assert second.id != first.id
    assert sorted(e["DTSTART"].dt for e in staff_events_on(staff, THURSDAY)) == [
        at(THURSDAY, 13),
        at(THURSDAY, 16),
    ]


async def test_the_calendar_is_found_by_name(
    server: RadicaleServer, staff: caldav.Calendar
) -> None:
    name = staff.get_display_name()
    settings = CalDAVSettings(server.url, server.user, server.password, calendar=name)
    by_name = CalDAVCalendar(settings, HOURS, now=lambda: NOW)
    add_staff_event(staff, "Closed for training", at(TUESDAY, 9), at(TUESDAY, 17))
    assert await by_name.free_slots(at(TUESDAY, 0), at(TUESDAY, 23), HALF_HOUR) == []
    await by_name.aclose()

    wrong = CalDAVSettings(server.url, server.user, server.password, calendar="No such calendar")
    with pytest.raises(CalendarUnavailable, match="no calendar named 'No such calendar'"):
        await free_on_tuesday(wrong)


async def test_a_wrong_password_is_a_clear_error(
    server: RadicaleServer, staff: caldav.Calendar
) -> None:
    settings = CalDAVSettings(server.url, server.user, "wrong", calendar=str(staff.url))
    with pytest.raises(CalendarUnavailable, match="refused user 'frontdesk'"):
        await free_on_tuesday(settings)


async def test_a_server_that_is_down_is_a_clear_error_at_once() -> None:
    settings = CalDAVSettings(f"http://127.0.0.1:{free_port()}/", "frontdesk", "pw")
    began = time.monotonic()
    with pytest.raises(CalendarUnavailable, match="cannot reach the CalDAV server"):
        await asyncio.wait_for(free_on_tuesday(settings), 10)
    assert time.monotonic() - began < 5


async def test_a_server_that_never_answers_times_out_without_blocking_the_loop() -> None:
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()  # accepts connections, never says a word
    port = silent.getsockname()[1]
    settings = CalDAVSettings(f"http://127.0.0.1:{port}/", "frontdesk", "pw", timeout_s=1.0)
    gaps: list[float] = []

    async def tick() -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(0.01)
            gaps.append(time.monotonic() - last)
            last = time.monotonic()

    ticker = asyncio.create_task(tick())
    began = time.monotonic()
    try:
        with pytest.raises(CalendarUnavailable, match="ReadTimeout"):
            await asyncio.wait_for(free_on_tuesday(settings), 10)
    finally:
        ticker.cancel()
        silent.close()
    assert time.monotonic() - began < 5
    assert gaps and max(gaps) < 0.5  # the loop ran on while the request waited 1 s


def test_settings_from_the_environment() -> None:
    settings = CalDAVSettings.from_env(
        {
            "FRONTDESK_CALDAV_URL": "https://dav.example.org/",
            "FRONTDESK_CALDAV_USER": "desk",
            "FRONTDESK_CALDAV_PASSWORD": "pw",
            "FRONTDESK_CALDAV_CALENDAR": "Appointments",
        }
    )
    assert settings == CalDAVSettings("https://dav.example.org/", "desk", "pw", "Appointments")
    assert "pw" not in repr(settings)
    with pytest.raises(ValueError, match="FRONTDESK_CALDAV_URL"):
        CalDAVSettings.from_env({"FRONTDESK_CALDAV_USER": "desk"})
