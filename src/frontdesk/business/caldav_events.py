"""Bookings as iCalendar events: what time an event on a CalDAV calendar blocks, the
bookings frontdesk wrote read back, and the VEVENT written for a new booking.

A booking's event carries frontdesk's own fields as ``X-FRONTDESK-*`` properties, so it can
be told apart from the staff's own events and read back without a database.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any, Protocol

import icalendar

from frontdesk.business.calendar import Booking
from frontdesk.business.crm import ContactInfo

_PRODID = "-//frontdesk//CalDAV calendar//EN"
_OURS = "X-FRONTDESK-BOOKING-ID"


class CalendarResource(Protocol):
    """A calendar object as ``caldav`` returns it from a search."""

    @property
    def icalendar_instance(self) -> icalendar.Calendar:
        """The resource's parsed VCALENDAR."""
        ...


def _moment(value: date | datetime, tz: tzinfo) -> datetime:
    """An iCalendar DATE or DATE-TIME as an aware datetime; floating and all-day values are
    read in the business timezone."""
    if not isinstance(value, datetime):
        return datetime.combine(value, time(0), tzinfo=tz)
    return value if value.tzinfo is not None else value.replace(tzinfo=tz)


def busy_interval(component: icalendar.Event, tz: tzinfo) -> tuple[datetime, datetime] | None:
    """The time an event (or one occurrence) blocks, or None if it blocks nothing
    (cancelled, marked free with ``TRANSP:TRANSPARENT``, or without a start)."""
    if str(component.get("STATUS", "")).upper() == "CANCELLED":
        return None
    if str(component.get("TRANSP", "OPAQUE")).upper() == "TRANSPARENT":
        return None
    if "DTSTART" not in component:
        return None
    raw_start = component["DTSTART"].dt
    start = _moment(raw_start, tz)
    if "DTEND" in component:
        end = _moment(component["DTEND"].dt, tz)
    elif "DURATION" in component:
        end = start + component["DURATION"].dt
    elif not isinstance(raw_start, datetime):
        end = start + timedelta(days=1)  # RFC 5545: an all-day event without end is one day
    else:
        end = start
    return start, end


def booking_id(uid: str) -> int:
    """A booking's stable integer id, derived from its UID (52 bits, safe in JSON)."""
    return int(hashlib.sha256(uid.encode()).hexdigest()[:13], 16)


def _optional_int(value: object) -> int | None:
    try:
        return int(str(value)) if value is not None else None
    except ValueError:
        return None


def as_booking(component: icalendar.Event, tz: tzinfo) -> Booking:
    """The booking an event written by :func:`booking_event_ics` stands for."""
    start = _moment(component["DTSTART"].dt, tz)
    interval = busy_interval(component, tz)
    end = interval[1] if interval else start
    service = component.get("X-FRONTDESK-SERVICE")
    call_id = component.get("X-FRONTDESK-CALL-ID")
    return Booking(
        id=booking_id(str(component["UID"])),
        start=start.astimezone(UTC),
        end=end.astimezone(UTC),
        service=str(service) if service is not None else None,
        contact_id=_optional_int(component.get("X-FRONTDESK-CONTACT-ID")),
        call_id=str(call_id) if call_id is not None else None,
    )


def is_ours(component: icalendar.Event) -> bool:
    """Whether frontdesk wrote this event (as opposed to a person or another app)."""
    return _OURS in component


def vevents(resources: Iterable[CalendarResource]) -> Iterator[icalendar.Event]:
    """Every VEVENT (each expanded occurrence, after an expanding search) in ``resources``."""
    for resource in resources:
        yield from resource.icalendar_instance.walk("VEVENT")


def slot_resource_name(start: datetime, generation: int) -> str:
    """The resource name a booking at ``start`` is stored under: one name per start time, so
    two writers racing for a start meet on it (generation > 0 when earlier names are stale)."""
    stamp = start.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    suffix = f"-{generation + 1}" if generation else ""
    return f"frontdesk-slot-{stamp}{suffix}.ics"


def booking_event_ics(
    uid: str, booking: Booking, key: str | None, caller: ContactInfo | None
) -> str:
    """The VCALENDAR of a new booking: the caller's name and service in the summary, how to
    reach them in the description, and frontdesk's own fields as X- properties."""
    name = caller.name if caller and caller.name else None
    phone = caller.phone if caller else None
    what = booking.service or "Appointment"
    via = f" (call {booking.call_id})" if booking.call_id else ""
    details = [
        f"Booked by phone through frontdesk{via}.",
        *([f"Caller: {name}"] if name else []),
        *([f"Phone: {phone}"] if phone else []),
        *([f"Service: {booking.service}"] if booking.service else []),
    ]
    event = icalendar.Event()
    event.add("uid", uid)
    event.add("dtstamp", datetime.now(UTC))
    event.add("dtstart", booking.start)
    event.add("dtend", booking.end)
    event.add("summary", f"{what}: {name}" if name else what)
    event.add("description", "\n".join(details))
    event.add("status", "CONFIRMED")
    event.add("transp", "OPAQUE")
    extras: dict[str, Any] = {
        _OURS: booking.id,
        "X-FRONTDESK-SERVICE": booking.service,
        "X-FRONTDESK-CONTACT-ID": booking.contact_id,
        "X-FRONTDESK-CALL-ID": booking.call_id,
        "X-FRONTDESK-CALLER-PHONE": phone,
        "X-FRONTDESK-IDEMPOTENCY-KEY": key,
    }
    for prop, value in extras.items():
        if value is not None:
            event.add(prop, str(value))
    container = icalendar.Calendar()
    container.add("prodid", _PRODID)
    container.add("version", "2.0")
    container.add_component(event)
    return container.to_ical().decode()
