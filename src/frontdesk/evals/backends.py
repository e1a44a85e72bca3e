"""Reading back what the agent did, from its own backends rather than its word: the call's
record in its database, and the bookings on its calendar (the appointments table, or the
CalDAV server the agent books on, read by a client of the battery's own)."""

from __future__ import annotations

import asyncio
import copy
from datetime import date, datetime, time
from typing import Any

import caldav
import icalendar
from sqlalchemy import select

from frontdesk.business.caldav_connection import CalDAVSettings
from frontdesk.store.db import Database
from frontdesk.store.models import Call as CallRow
from frontdesk.store.records import CallStore

__all__ = ["CalDAVSettings", "caldav_bookings", "fetch_record", "on_caller_clock"]


async def fetch_record(
    database_url: str, key: str, value: str, wait_s: float = 10.0
) -> dict[str, Any] | None:
    """The agent's stored record of the call whose metadata ``key`` is ``value`` (Twilio's
    ``call_sid``, SIP's ``sip_call_id``), once it has ended (the server saves it just after
    the call's media stops)."""
    db = Database(database_url)
    store = CallStore(db)
    try:
        for _ in range(int(wait_s / 0.1)):
            with db.session() as session:
                ids = [
                    row.id for row in session.scalars(select(CallRow)) if row.meta.get(key) == value
                ]
            if len(ids) == 1:
                record = await store.call_record(ids[0])
                if record.get("ended_at") is not None:
                    return record
            await asyncio.sleep(0.1)
        return None
    finally:
        db.dispose()


def on_caller_clock(record: dict[str, Any], agent_clock_offset: float) -> dict[str, Any]:
    """``record`` with its turn times moved from the agent's audio clock onto the caller's
    (``agent_clock_offset`` = agent's clock - caller's)."""
    moved = copy.deepcopy(record)
    for turn in moved["turns"]:
        for name in ("started_at", "ended_at"):
            if turn[name] is not None:
                turn[name] = turn[name] - agent_clock_offset
    return moved


def caldav_bookings(settings: CalDAVSettings, call_id: str) -> list[dict[str, Any]]:
    """The events on the CalDAV calendar that the agent booked in call ``call_id`` (its
    ``X-FRONTDESK-CALL-ID``), shaped like the call record's appointments, plus what a person
    looking at the calendar sees (``summary``, ``description``). Blocking: run it in a
    thread."""
    client = caldav.DAVClient(
        url=settings.url,
        username=settings.username,
        password=settings.password,
        timeout=settings.timeout_s,  # type: ignore[arg-type]
    )
    try:
        calendar = _calendar(client, settings.calendar)
        found = []
        for resource in calendar.search(event=True):
            for event in resource.icalendar_instance.walk("VEVENT"):
                if str(event.get("X-FRONTDESK-CALL-ID", "")) == call_id:
                    found.append(_appointment(event))
        return sorted(found, key=lambda a: a["start"])
    finally:
        client.close()


def _calendar(client: caldav.DAVClient, wanted: str | None) -> caldav.Calendar:
    """The calendar named by URL, display name or id, else the user's first. Looked up
    here, not with the agent's own connection code, so a wrong calendar on the agent's side
    shows as a missing booking instead of being repeated."""
    wanted = (wanted or "").strip()
    if wanted.startswith(("http://", "https://")):
        return client.calendar(url=wanted)
    calendars = client.principal().calendars()
    for calendar in calendars:
        segment = str(calendar.url).rstrip("/").rsplit("/", 1)[-1]
        if not wanted or wanted in (calendar.get_display_name(), segment):
            return calendar
    raise LookupError(f"no calendar {wanted!r} on {client.url}")


def _appointment(event: icalendar.Event) -> dict[str, Any]:
    start = _iso(event["DTSTART"].dt)
    end = _iso(event["DTEND"].dt) if "DTEND" in event else None
    contact = event.get("X-FRONTDESK-CONTACT-ID")
    service = event.get("X-FRONTDESK-SERVICE")
    cancelled = str(event.get("STATUS", "")).upper() == "CANCELLED"
    return {
        "id": str(event.get("UID", "")),
        "start": start,
        "end": end,
        "service": str(service) if service is not None else None,
        "status": "cancelled" if cancelled else "booked",
        "contact_id": int(str(contact)) if contact is not None and str(contact).isdigit() else None,
        "summary": str(event.get("SUMMARY", "")),
        "description": str(event.get("DESCRIPTION", "")),
    }


def _iso(value: date | datetime) -> str:
    if not isinstance(value, datetime):
        value = datetime.combine(value, time(0))
    return value.isoformat()
