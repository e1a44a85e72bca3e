"""The front desk's tools: check the calendar, book, look up and update the caller, log the
outcome, hand off to a human, hang up.

Names and arguments are a contract with the brain (its prompts and flow refer to them).
Errors are raised as :class:`ToolError` with a reason the agent can say out loud. A calendar
that cannot be reached is one of them (:data:`CALENDAR_UNREACHABLE`): the call goes on, and
the agent offers a person instead of times it cannot check.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from pydantic import Field

from frontdesk.brain.tools import ToolError, ToolRegistry
from frontdesk.business.calendar import CalendarUnavailable, Slot, SlotTaken
from frontdesk.business.environment import FrontDeskEnv, is_phone
from frontdesk.business.reply_effects import CallAction, HangUp, Transfer

__all__ = [  # the env and the actions live in their own modules; named here for importers
    "CALENDAR_UNREACHABLE",
    "CallAction",
    "FrontDeskEnv",
    "HangUp",
    "Transfer",
    "book_appointment",
    "check_availability",
    "end_call",
    "frontdesk_tools",
    "log_call_outcome",
    "lookup_contact",
    "transfer_to_human",
    "update_contact",
]

log = logging.getLogger(__name__)

PartOfDay = Literal["morning", "afternoon", "evening", "any"]
_DAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

# The tool error for a calendar out of reach: the first sentence is for the caller's ears,
# the rest tells the brain what to do instead.
CALENDAR_UNREACHABLE = (
    "I can't reach the calendar right now, so I can't check or book times. Apologise and "
    "offer to connect the caller with a person (transfer_to_human), or take a message."
)


@contextmanager
def _calendar_reachable(tool: str) -> Iterator[None]:
    """Turn :class:`CalendarUnavailable` into :data:`CALENDAR_UNREACHABLE`; the real cause
    (server, status, timeout) goes to the log for the operator, not to the caller."""
    try:
        yield
    except CalendarUnavailable as error:
        log.warning("%s: calendar unavailable: %s", tool, error)
        raise ToolError(CALENDAR_UNREACHABLE) from error


def _parse_day(text: str, today: date) -> date:
    """An ISO date, or the words a model sometimes sends instead (today, friday, ...)."""
    word = text.strip().lower()
    if word == "today":
        return today
    if word == "tomorrow":
        return today + timedelta(days=1)
    word = word.removeprefix("next ").removeprefix("this ")
    if word in _DAY_NAMES:
        return today + timedelta(days=(_DAY_NAMES.index(word) - today.weekday()) % 7)
    try:
        return date.fromisoformat(word[:10])
    except ValueError:
        raise ToolError(f"day must be a date like {today.isoformat()}, got {text!r}") from None


def _parse_start(text: str, tz: ZoneInfo) -> datetime:
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ToolError(
            f"start must be an ISO date and time from check_availability, got {text!r}"
        ) from None
    # A time without an offset is the business's local time.
    return moment.replace(tzinfo=tz) if moment.tzinfo is None else moment


def _part_of_day(moment: datetime, part: PartOfDay) -> bool:
    hour = moment.hour
    return {
        "morning": hour < 12,
        "afternoon": 12 <= hour < 17,
        "evening": hour >= 17,
        "any": True,
    }[part]


def _spread(slots: list[Slot], limit: int, tz: ZoneInfo, per_day: int) -> list[Slot]:
    """Up to ``limit`` slots, soonest first, at least two hours apart and at most
    ``per_day`` a day when there is that much choice, so the offer is a real choice."""
    chosen: list[Slot] = []
    per_date: dict[date, int] = {}
    for slot in slots:
        day = slot.start.astimezone(tz).date()
        if chosen and slot.start < chosen[-1].start + timedelta(hours=2):
            continue
        if per_date.get(day, 0) >= per_day:
            continue
        chosen.append(slot)
        per_date[day] = per_date.get(day, 0) + 1
        if len(chosen) == limit:
            return chosen
    extra = [slot for slot in slots if slot not in chosen][: limit - len(chosen)]
    return sorted(chosen + extra, key=lambda slot: slot.start)


async def check_availability(
    env: FrontDeskEnv,
    day: str | None = None,
    part_of_day: PartOfDay = "any",
    limit: Annotated[int, Field(ge=1, le=10)] = 3,
    service: str | None = None,
) -> dict[str, Any]:
    """Find open appointment times on the real calendar.

    Args:
        day: The date to look at, as YYYY-MM-DD. Leave out for the soonest openings.
        part_of_day: Only times in this part of the day.
        limit: How many times to return.
        service: The service to book, when known (visits differ in length).
    """
    now = env.now()
    today = now.astimezone(env.tz).date()
    duration = env.visit(service)
    wanted = _parse_day(day, today) if day else None
    if wanted is not None:
        if wanted < today:
            raise ToolError(f"{wanted.isoformat()} has already passed")
        start = datetime.combine(wanted, time(0), tzinfo=env.tz)
        end = datetime.combine(wanted + timedelta(days=1), time(0), tzinfo=env.tz)
    else:
        start = now
        end = datetime.combine(today + timedelta(days=env.search_days), time(0), tzinfo=env.tz)
    with _calendar_reachable("check_availability"):
        free = await env.calendar.free_slots(start, end, duration)
    free = [slot for slot in free if _part_of_day(slot.start.astimezone(env.tz), part_of_day)]
    chosen = _spread(free, limit, env.tz, per_day=2 if wanted is None else limit)
    result: dict[str, Any] = {
        "slots": [
            {"start": slot.start.astimezone(env.tz).isoformat(), "label": env.label(slot.start)}
            for slot in chosen
        ]
    }
    if chosen:
        return result
    if wanted is None:
        result["note"] = f"no openings in the next {env.search_days} days"
    elif not env.hours.open_on(wanted):
        result["note"] = f"closed on {wanted.strftime('%A')}s"
    else:
        result["note"] = f"no openings on {wanted.strftime('%A, %B')} {wanted.day}"
    return result


async def book_appointment(
    env: FrontDeskEnv,
    start: str,
    name: str,
    phone: str | None = None,
    service: str | None = None,
) -> dict[str, Any]:
    """Book the caller into an open time returned by check_availability.

    Args:
        start: The slot's start exactly as check_availability returned it.
        name: The caller's name.
        phone: Phone number to book under; leave out to use the number they are calling from.
        service: What the appointment is for, if the caller said.
    """
    when = _parse_start(start, env.tz)
    if not name.strip():
        raise ToolError("I need the caller's name to book")
    number = phone or env.caller_number
    if not number:
        raise ToolError("I need a phone number to book under")
    if not is_phone(number):
        raise ToolError(f"{number!r} is not a phone number")
    label = env.label(when)
    contact = await env.crm.upsert_contact(number, name=name)
    with _calendar_reachable("book_appointment"):
        try:
            booking = await env.calendar.book(
                when,
                env.visit(service),
                contact_id=contact.id,
                call_id=env.call_id,
                service=service,
                idempotency_key=f"{env.call_id}:{when.astimezone(UTC).isoformat()}",
            )
        except SlotTaken as refusal:
            day_start = datetime.combine(when.astimezone(env.tz).date(), time(0), tzinfo=env.tz)
            nearby = await env.calendar.free_slots(
                day_start, day_start + timedelta(days=1), env.visit(service)
            )
            offer = ", ".join(env.label(slot.start) for slot in nearby[:3])
            other = f" Open that day: {offer}." if offer else " Nothing else is open that day."
            raise ToolError(f"Cannot book {label}: {refusal}.{other}") from None
    summary = f"Booked {label}" + (f" for {service}" if service else "")
    await env.crm.log_outcome(number, env.call_id, "booked", summary)
    return {
        "appointment_id": booking.id,
        "start": booking.start.astimezone(env.tz).isoformat(),
        "end": booking.end.astimezone(env.tz).isoformat(),
        "service": booking.service,
        "label": label,
    }


async def lookup_contact(env: FrontDeskEnv, phone: str | None = None) -> dict[str, Any]:
    """Look up a caller in the CRM: their name, last outcome and upcoming appointments.

    Args:
        phone: The number to look up; leave out for the number they are calling from.
    """
    number = phone or env.caller_number
    not_found: dict[str, Any] = {"found": False, "name": None, "last_outcome": None, "upcoming": []}
    if not number:
        return not_found
    try:
        contact = await env.crm.find_contact(number)
    except ValueError:
        raise ToolError(f"{number!r} is not a phone number") from None
    if contact is None:
        return not_found
    found: dict[str, Any] = {
        "found": True,
        "name": contact.name,
        "email": contact.email,
        "last_outcome": contact.last_outcome,
        "upcoming": [],
    }
    try:
        bookings = await env.calendar.bookings(contact_id=contact.id)
    except CalendarUnavailable as error:
        # Who is calling is still worth knowing when their appointments cannot be read.
        log.warning("lookup_contact: calendar unavailable: %s", error)
        found["note"] = "the calendar cannot be reached, so upcoming appointments are unknown"
        return found
    now = env.now()
    found["upcoming"] = [env.label(b.start) for b in bookings if b.start > now]
    return found


async def update_contact(
    env: FrontDeskEnv,
    name: str | None = None,
    email: str | None = None,
    notes: str | None = None,
) -> dict[str, Any]:
    """Save the caller's details in the CRM.

    Args:
        name: The caller's name.
        email: The caller's email address.
        notes: Anything worth remembering about the caller or their request.
    """
    if not env.caller_number:
        raise ToolError("the caller's number is unknown, so there is no record to update")
    if not any(value and value.strip() for value in (name, email, notes)):
        raise ToolError("give at least one of name, email or notes")
    if email and not _EMAIL.match(email.strip()):
        raise ToolError(f"{email!r} does not look like an email address")
    try:
        contact = await env.crm.upsert_contact(
            env.caller_number, name=name, email=email, notes=notes
        )
    except ValueError:
        raise ToolError(f"{env.caller_number!r} is not a phone number") from None
    await env.store.link_contact(env.call_id, contact.id)
    return {"updated": True, "name": contact.name, "email": contact.email}


async def log_call_outcome(
    env: FrontDeskEnv,
    outcome: Literal["booked", "escalated", "nurture", "answered"],
    summary: str,
) -> dict[str, Any]:
    """Record how the call went, with a one-sentence summary, in the CRM.

    Args:
        outcome: booked (an appointment was made), escalated (a human must follow up),
            nurture (interested, not ready yet), answered (questions answered, nothing more).
        summary: One sentence on what the caller wanted and what happened.
    """
    # Kept with the reply until the caller has heard it: an outcome logged beside a transfer
    # or goodbye that the caller cut short would describe an ending that never happened.
    await env.log_outcome(outcome, summary)
    return {"logged": outcome}


async def transfer_to_human(env: FrontDeskEnv, reason: str) -> dict[str, Any]:
    """Hand the call to a person, after telling the caller you are transferring them.

    Args:
        reason: Why a person is needed, in a few words.
    """
    # The transfer is asked for before the outcome is logged: the outcome then goes with it
    # (dropped with it), even when this runs after its reply was already cut short.
    if env.handoff_number:
        env.after_reply(Transfer(env.handoff_number, reason))
    await env.log_outcome("escalated")
    if not env.handoff_number:
        return {
            "transferring": False,
            "note": "nobody can take the call now: offer to take a message for a call back",
        }
    return {"transferring": True}


async def end_call(env: FrontDeskEnv, reason: str = "completed") -> dict[str, Any]:
    """End the call after your goodbye has been spoken.

    Args:
        reason: Why the call is ending.
    """
    env.after_reply(HangUp(reason))
    return {"ending": True}


def frontdesk_tools() -> ToolRegistry:
    """A registry holding the front-desk tools."""
    registry = ToolRegistry()
    registry.tool(check_availability, slow=True)
    registry.tool(book_appointment, side_effect=True, slow=True)
    registry.tool(lookup_contact)
    registry.tool(update_contact, side_effect=True)
    # Repeatable: an outcome dropped with a reply the caller cut short must be logged again
    # when the brain logs it again, not replayed from the first (dropped) time.
    registry.tool(log_call_outcome, side_effect=True, repeatable=True)
    registry.tool(transfer_to_human, side_effect=True, repeatable=True)
    registry.tool(end_call, side_effect=True, repeatable=True)
    return registry
