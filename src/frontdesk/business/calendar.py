"""The calendar: free slots and bookings, the slot grid every backend shares, and the
default calendar kept in the app database.

Capacity is one appointment at a time. :class:`SQLCalendar` checks for clashes inside a
write-locked transaction, and the partial unique index on booked start times makes the
database itself refuse a double booking should two writers ever get past that check.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from frontdesk.business.hours import BusinessHours
from frontdesk.store.db import Database
from frontdesk.store.models import Appointment, utc_now


@dataclass(frozen=True, slots=True)
class Slot:
    """A free interval that can be booked."""

    start: datetime
    end: datetime


@dataclass(frozen=True, slots=True)
class Booking:
    """A booked appointment (start and end in UTC)."""

    id: int
    start: datetime
    end: datetime
    service: str | None
    contact_id: int | None
    call_id: str | None = None


class SlotTaken(Exception):
    """The requested time cannot be booked; the message says why, in words for the caller."""


class CalendarUnavailable(Exception):
    """The calendar cannot be read or written right now (its server is down, refuses us or
    times out); the message says which and why, for the logs, not for the caller."""


class Calendar(Protocol):
    """Where appointments live."""

    async def free_slots(self, start: datetime, end: datetime, duration: timedelta) -> list[Slot]:
        """Bookable slots of ``duration`` starting in ``[start, end)``, soonest first."""
        ...

    async def book(
        self,
        start: datetime,
        duration: timedelta,
        *,
        contact_id: int | None,
        call_id: str | None,
        service: str | None,
        idempotency_key: str | None,
    ) -> Booking:
        """Book ``start``; raises :class:`SlotTaken` if it is not free, outside opening
        hours or in the past. A repeated ``idempotency_key`` returns the first booking.

        Any method may raise :class:`CalendarUnavailable` when the calendar is out of reach."""
        ...

    async def bookings(
        self, call_id: str | None = None, contact_id: int | None = None
    ) -> list[Booking]:
        """Booked (not cancelled) appointments, soonest first, optionally filtered."""
        ...


def require_aware(**moments: datetime) -> None:
    """Raise ValueError naming each argument whose datetime has no timezone."""
    for name, moment in moments.items():
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise ValueError(f"{name} must be timezone-aware, got naive {moment!r}")


# --- the slot grid, the same for every calendar backend ------------------------------------


def grid_slots(
    hours: BusinessHours, step: timedelta, day: date, duration: timedelta
) -> Iterator[Slot]:
    """Every slot start of ``day``, every ``step`` from each opening, whose whole
    ``duration`` fits in that opening window."""
    for window_start, window_end in hours.windows(day):
        start = window_start
        while start + duration <= window_end:
            yield Slot(start, start + duration)
            start += step


def free_grid_slots(
    hours: BusinessHours,
    step: timedelta,
    lower: datetime,
    end: datetime,
    duration: timedelta,
    busy: Iterable[tuple[datetime, datetime]],
) -> list[Slot]:
    """Grid slots starting in ``[lower, end)`` that overlap no ``busy`` interval, soonest
    first, in the business timezone."""
    taken = list(busy)
    slots = []
    day, last_day = hours.local(lower).date(), hours.local(end).date()
    while day <= last_day:
        for slot in grid_slots(hours, step, day, duration):
            if lower <= slot.start < end and not any(
                slot.start < busy_end and slot.end > busy_start for busy_start, busy_end in taken
            ):
                slots.append(slot)
        day += timedelta(days=1)
    return slots


def check_bookable(
    hours: BusinessHours, step: timedelta, now: datetime, start: datetime, duration: timedelta
) -> None:
    """Raise :class:`SlotTaken` if ``start`` is past, outside opening hours or off the grid
    (clashes with other bookings are each backend's own check)."""
    if start <= now:
        raise SlotTaken("that time has already passed")
    if not hours.contains(start, start + duration):
        raise SlotTaken("we are closed at that time")
    day = hours.local(start).date()
    if not any(slot.start == start for slot in grid_slots(hours, step, day, duration)):
        minutes = int(step.total_seconds() // 60)
        raise SlotTaken(f"appointments start every {minutes} minutes; that is not one")


def _booking(appointment: Appointment) -> Booking:
    return Booking(
        id=appointment.id,
        start=appointment.start.astimezone(UTC),
        end=appointment.end.astimezone(UTC),
        service=appointment.service,
        contact_id=appointment.contact_id,
        call_id=appointment.call_id,
    )


class SQLCalendar:
    """The embedded calendar: a grid of ``slot_minutes`` slots inside business hours, with
    appointments stored in the app database. ``now`` is injectable for tests and replays."""

    def __init__(
        self,
        db: Database,
        hours: BusinessHours,
        slot_minutes: int = 30,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        if slot_minutes <= 0:
            raise ValueError(f"slot_minutes must be positive, got {slot_minutes}")
        self.db = db
        self.hours = hours
        self.step = timedelta(minutes=slot_minutes)
        self.now = now or utc_now

    async def free_slots(self, start: datetime, end: datetime, duration: timedelta) -> list[Slot]:
        """Free grid slots starting in ``[start, end)`` and not in the past, soonest first,
        in the business timezone."""
        require_aware(start=start, end=end)
        if duration <= timedelta(0):
            raise ValueError(f"duration must be positive, got {duration}")
        return await self.db.run(self._free_slots, start, end, duration)

    def _free_slots(self, start: datetime, end: datetime, duration: timedelta) -> list[Slot]:
        lower = max(start, self.now())
        if lower >= end:
            return []
        with self.db.session() as session:
            busy = [
                (appointment.start, appointment.end)
                for appointment in session.scalars(
                    select(Appointment).where(
                        Appointment.status == "booked",
                        Appointment.start < end + duration,
                        Appointment.end > lower,
                    )
                )
            ]
        return free_grid_slots(self.hours, self.step, lower, end, duration, busy)

    async def book(
        self,
        start: datetime,
        duration: timedelta,
        *,
        contact_id: int | None,
        call_id: str | None,
        service: str | None,
        idempotency_key: str | None,
    ) -> Booking:
        """Book the slot at ``start`` (see :meth:`Calendar.book`)."""
        require_aware(start=start)
        if duration <= timedelta(0):
            raise ValueError(f"duration must be positive, got {duration}")
        return await self.db.run(
            self._book, start, duration, contact_id, call_id, service, idempotency_key
        )

    def _book(
        self,
        start: datetime,
        duration: timedelta,
        contact_id: int | None,
        call_id: str | None,
        service: str | None,
        idempotency_key: str | None,
    ) -> Booking:
        try:
            with self.db.exclusive_session() as session:
                existing = self._by_key(session, idempotency_key, start)
                if existing is not None:
                    return existing
                check_bookable(self.hours, self.step, self.now(), start, duration)
                end = start + duration
                clash = session.scalar(
                    select(Appointment.id)
                    .where(
                        Appointment.status == "booked",
                        Appointment.start < end,
                        Appointment.end > start,
                    )
                    .limit(1)
                )
                if clash is not None:
                    raise SlotTaken("that time is already taken")
                appointment = Appointment(
                    contact_id=contact_id,
                    call_id=call_id,
                    start=start,
                    end=end,
                    service=service,
                    status="booked",
                    idempotency_key=idempotency_key,
                )
                session.add(appointment)
                session.flush()
                return _booking(appointment)
        except IntegrityError as error:
            # Another writer committed the same key or start first; the database refused ours.
            with self.db.session() as session:
                existing = self._by_key(session, idempotency_key, start)
                taken = session.scalar(
                    select(Appointment.id).where(
                        Appointment.status == "booked", Appointment.start == start
                    )
                )
            if existing is not None:
                return existing
            if taken is not None:
                raise SlotTaken("that time was just taken") from error
            raise

    @staticmethod
    def _by_key(session: Session, key: str | None, start: datetime) -> Booking | None:
        if key is None:
            return None
        appointment = session.scalar(select(Appointment).where(Appointment.idempotency_key == key))
        if appointment is None:
            return None
        if appointment.start != start:
            raise ValueError(f"idempotency key {key!r} was already used for another time")
        return _booking(appointment)

    async def bookings(
        self, call_id: str | None = None, contact_id: int | None = None
    ) -> list[Booking]:
        """Booked appointments, soonest first, optionally only those of a call or contact."""
        return await self.db.run(self._bookings, call_id, contact_id)

    def _bookings(self, call_id: str | None, contact_id: int | None) -> list[Booking]:
        query = select(Appointment).where(Appointment.status == "booked")
        if call_id is not None:
            query = query.where(Appointment.call_id == call_id)
        if contact_id is not None:
            query = query.where(Appointment.contact_id == contact_id)
        with self.db.session() as session:
            return [_booking(row) for row in session.scalars(query.order_by(Appointment.start))]

    async def cancel(self, booking_id: int) -> None:
        """Cancel a booking: its slot becomes free and its idempotency key reusable."""
        await self.db.run(self._cancel, booking_id)

    def _cancel(self, booking_id: int) -> None:
        with self.db.session() as session:
            appointment = session.get(Appointment, booking_id)
            if appointment is None:
                raise LookupError(f"no booking with id {booking_id}")
            appointment.status = "cancelled"
            appointment.idempotency_key = None


def _clock(moment: datetime) -> str:
    hour = moment.hour % 12 or 12
    minutes = f":{moment.minute:02d}" if moment.minute else ""
    return f"{hour}{minutes} {'AM' if moment.hour < 12 else 'PM'}"


def describe_slot(moment: datetime, now: datetime, tz: tzinfo | None = None) -> str:
    """``moment`` in words a voice can say: "today at 3 PM", "tomorrow at 10:30 AM",
    "Thursday at 2 PM" within the week, "Monday, March 16 at 9 AM" beyond it.

    Both times are read in ``tz`` (the business timezone; default: ``moment``'s own zone).
    """
    require_aware(moment=moment, now=now)
    zone = tz or moment.tzinfo
    local = moment.astimezone(zone)
    days_ahead = (local.date() - now.astimezone(zone).date()).days
    if days_ahead == 0:
        day = "today"
    elif days_ahead == 1:
        day = "tomorrow"
    elif 1 < days_ahead < 7:
        day = local.strftime("%A")
    else:
        day = f"{local.strftime('%A, %B')} {local.day}"
    return f"{day} at {_clock(local)}"
