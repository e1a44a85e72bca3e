"""The calendar on a CalDAV server (Radicale, Nextcloud, Fastmail, iCloud...), via ``caldav``.

Free time is read from the real events on the server, recurring ones expanded, and cut into
the same slot grid inside business hours as :class:`~frontdesk.business.calendar.SQLCalendar`.
A booking is a VEVENT written by this adapter; anything else on the calendar (a staff
member's lunch, a weekly meeting) blocks the time it covers, unless it is marked free
(``TRANSP:TRANSPARENT``) or cancelled.

No double booking, even with two callers (or two frontdesk processes) at once:

1. Each booking is stored under a resource name made from its start time
   (``frontdesk-slot-20261126T190000Z.ics``) and written with ``If-None-Match: *``. The
   server creates a resource atomically, so of two writers racing for the same start exactly
   one gets it and the other is answered 412 -> :class:`SlotTaken`. (If a person moved or
   cancelled the event stored under that name, the name is stale: writers then all walk the
   same numbered names, ``...-2.ics``, ``...-3.ics``, and still meet on the same one.)
2. Bookings of different lengths can overlap without sharing a start (10:00 for an hour,
   10:30 for half an hour). So after writing, the range is read again; if any other event
   now overlaps, the new booking is deleted. A writer that did not see the other's event
   wrote before the other read, so the other sees it: at most one of them keeps its
   booking. In a close race both may back off; each then retries after a random pause (at
   most twice), so usually one of them gets the time; the loser gets :class:`SlotTaken`.

The ``caldav`` library is synchronous: every request runs in a worker thread, each thread
with its own HTTP client (:mod:`~frontdesk.business.caldav_connection`). Network,
authentication and server failures are raised as
:class:`~frontdesk.business.calendar.CalendarUnavailable`. How a booking looks as an
iCalendar event is :mod:`~frontdesk.business.caldav_events`.
"""

from __future__ import annotations

import asyncio
import random
import time as clock
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import NamedTuple, ParamSpec, TypeVar

import caldav
from caldav.lib import error as dav_error

from frontdesk.business.caldav_connection import CalDAVConnection, CalDAVSettings
from frontdesk.business.caldav_events import (
    as_booking,
    booking_event_ics,
    booking_id,
    busy_interval,
    is_ours,
    slot_resource_name,
    vevents,
)
from frontdesk.business.calendar import (
    Booking,
    CalendarUnavailable,
    Slot,
    SlotTaken,
    check_bookable,
    free_grid_slots,
    require_aware,
)
from frontdesk.business.crm import ContactInfo
from frontdesk.business.hours import BusinessHours
from frontdesk.store.models import utc_now

_P = ParamSpec("_P")
_T = TypeVar("_T")

_UID_NAMESPACE = uuid.UUID("6f0b7c1e-8d1f-4c55-9a57-3f7c2f0d5b21")
_MAX_NAME_GENERATIONS = 16
_RACE_RETRIES = 2

# CalDAVSettings and CalendarUnavailable are re-exported: callers need only this module.
__all__ = ["CalDAVCalendar", "CalDAVSettings", "CalendarUnavailable", "ContactLookup"]


class _Busy(NamedTuple):
    """An event (or occurrence) that blocks time; ``ours`` if this adapter wrote it."""

    uid: str
    start: datetime
    end: datetime
    ours: bool


ContactLookup = Callable[[int], Awaitable[ContactInfo | None]]
"""Finds a contact by id, so a booking's event can name the caller and their phone."""


class CalDAVCalendar:
    """A :class:`~frontdesk.business.calendar.Calendar` kept on a CalDAV server (see the
    module doc for how double bookings are prevented).

    ``contact_lookup`` (optional) names the caller in the event; without it the event
    carries only the contact's id. ``now`` is injectable for tests and replays.
    """

    def __init__(
        self,
        settings: CalDAVSettings,
        hours: BusinessHours,
        slot_minutes: int = 30,
        now: Callable[[], datetime] | None = None,
        contact_lookup: ContactLookup | None = None,
    ) -> None:
        if slot_minutes <= 0:
            raise ValueError(f"slot_minutes must be positive, got {slot_minutes}")
        self.settings = settings
        self.hours = hours
        self.step = timedelta(minutes=slot_minutes)
        self.now = now or utc_now
        self.contact_lookup = contact_lookup
        self._connection = CalDAVConnection(settings)

    async def aclose(self) -> None:
        """Close the connections to the server."""
        await asyncio.to_thread(self._connection.close)

    async def _run(self, function: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
        return await asyncio.to_thread(self._connection.guarded, function, *args, **kwargs)

    # -- reading

    def _busy(self, lower: datetime, upper: datetime) -> list[_Busy]:
        """Everything blocking time in ``[lower, upper)``, recurring events expanded into
        their occurrences."""
        found = self._connection.calendar().search(
            start=lower.astimezone(UTC), end=upper.astimezone(UTC), event=True, expand=True
        )
        busy = []
        for component in vevents(found):
            interval = busy_interval(component, self.hours.tz)
            if interval and interval[0] < upper and interval[1] > lower:
                uid = str(component.get("UID", ""))
                busy.append(_Busy(uid, interval[0], interval[1], is_ours(component)))
        return busy

    async def free_slots(self, start: datetime, end: datetime, duration: timedelta) -> list[Slot]:
        """Free grid slots starting in ``[start, end)`` and not in the past, soonest first,
        in the business timezone."""
        require_aware(start=start, end=end)
        if duration <= timedelta(0):
            raise ValueError(f"duration must be positive, got {duration}")
        lower = max(start, self.now())
        if lower >= end:
            return []
        busy = await self._run(self._busy, lower, end + duration)
        return free_grid_slots(
            self.hours, self.step, lower, end, duration, ((b.start, b.end) for b in busy)
        )

    async def bookings(
        self, call_id: str | None = None, contact_id: int | None = None
    ) -> list[Booking]:
        """Bookings made through frontdesk and still on the calendar, soonest first,
        optionally only those of a call or contact (all events are read: fine for one
        business's calendar)."""
        found = await self._run(self._ours)
        return sorted(
            (
                booking
                for _, booking in found
                if (call_id is None or booking.call_id == call_id)
                and (contact_id is None or booking.contact_id == contact_id)
            ),
            key=lambda booking: booking.start,
        )

    def _ours(self) -> list[tuple[str, Booking]]:
        """(resource URL, booking) of every live event this adapter wrote."""
        found = []
        for resource in self._connection.calendar().search(event=True):
            for component in resource.icalendar_instance.walk("VEVENT"):
                if is_ours(component) and busy_interval(component, self.hours.tz):
                    found.append((str(resource.url), as_booking(component, self.hours.tz)))
                    break
        return found

    # -- writing

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
        """Book the slot at ``start`` as a new event (see :meth:`Calendar.book`)."""
        require_aware(start=start)
        if duration <= timedelta(0):
            raise ValueError(f"duration must be positive, got {duration}")
        caller = None
        if self.contact_lookup is not None and contact_id is not None:
            caller = await self.contact_lookup(contact_id)
        return await self._run(
            self._book, start, duration, contact_id, call_id, service, idempotency_key, caller
        )

    def _book(
        self,
        start: datetime,
        duration: timedelta,
        contact_id: int | None,
        call_id: str | None,
        service: str | None,
        key: str | None,
        caller: ContactInfo | None,
    ) -> Booking:
        calendar = self._connection.calendar()
        if key is None:
            uid = f"frontdesk-{uuid.uuid4()}"
        else:
            uid = f"frontdesk-{uuid.uuid5(_UID_NAMESPACE, key)}"
            existing = self._by_uid(calendar, uid, key, start)
            if existing is not None:
                return existing
        check_bookable(self.hours, self.step, self.now(), start, duration)
        end = start + duration
        booking = Booking(
            id=booking_id(uid),
            start=start.astimezone(UTC),
            end=end.astimezone(UTC),
            service=service,
            contact_id=contact_id,
            call_id=call_id,
        )
        ics = booking_event_ics(uid, booking, key, caller)
        for attempt in range(_RACE_RETRIES + 1):
            if attempt:
                # Both racers may have backed off: a random pause lets one go first next time.
                clock.sleep(random.uniform(0.05, 0.2) * attempt)
            busy = self._busy(start, end)
            if key is not None and any(other.uid == uid for other in busy):
                # The same request, retried concurrently, has just booked it.
                existing = self._by_uid(calendar, uid, key, start)
                if existing is not None:
                    return existing
            if busy:
                raise SlotTaken(
                    "that time was just taken" if attempt else "that time is already taken"
                )
            url = self._claim(calendar, booking, uid, ics)
            # Re-read after writing: a booking of another length may have landed meanwhile.
            others = [busy for busy in self._busy(start, end) if busy.uid != uid]
            if not others:
                return booking
            calendar.client.delete(url)
            if not all(busy.ours for busy in others):
                break  # someone else's event: it will not back off for us
        raise SlotTaken("that time was just taken")

    def _by_uid(
        self, calendar: caldav.Calendar, uid: str, key: str, start: datetime
    ) -> Booking | None:
        try:
            resource = calendar.get_event_by_uid(uid)
        except dav_error.NotFoundError:
            return None
        for component in resource.icalendar_instance.walk("VEVENT"):
            if busy_interval(component, self.hours.tz) is None:
                return None  # cancelled by a person: the key may book again
            booking = as_booking(component, self.hours.tz)
            if booking.start != start:
                raise ValueError(f"idempotency key {key!r} was already used for another time")
            return booking
        return None

    def _claim(self, calendar: caldav.Calendar, booking: Booking, uid: str, ics: str) -> str:
        """Create the event under the first non-stale resource name for its start, with
        ``If-None-Match: *``; return its URL. Raises :class:`SlotTaken` if a live event
        already holds that name."""
        headers = {"If-None-Match": "*", "Content-Type": 'text/calendar; charset="utf-8"'}
        generation = attempts = 0
        while generation < _MAX_NAME_GENERATIONS and attempts < 2 * _MAX_NAME_GENERATIONS:
            attempts += 1
            url = str(calendar.url.join(slot_resource_name(booking.start, generation)))
            response = calendar.client.put(url, ics, headers)
            if response.status in (200, 201, 204):
                return url
            if response.status != 412:
                raise CalendarUnavailable(
                    f"the CalDAV server at {self.settings.url} refused the booking "
                    f"(HTTP {response.status})"
                )
            holder = caldav.Event(client=calendar.client, url=url, parent=calendar)
            try:
                holder.load()
            except dav_error.NotFoundError:
                continue  # deleted since our PUT: try the same name again
            for component in holder.icalendar_instance.walk("VEVENT"):
                if str(component.get("UID")) == uid:
                    return url  # the same booking, retried concurrently, got there first
                interval = busy_interval(component, self.hours.tz)
                if interval and interval[0] < booking.end and interval[1] > booking.start:
                    raise SlotTaken("that time was just taken")
            generation += 1  # a stale name (the event was moved or cancelled)
        raise CalendarUnavailable(
            f"could not find a free resource name for a booking at {booking.start.isoformat()}"
        )

    async def cancel(self, booking_id: int) -> None:
        """Cancel a booking: its event is deleted, so the slot is free again."""
        await self._run(self._cancel, booking_id)

    def _cancel(self, wanted: int) -> None:
        for url, booking in self._ours():
            if booking.id == wanted:
                self._connection.calendar().client.delete(url)
                return
        raise LookupError(f"no booking with id {wanted}")
