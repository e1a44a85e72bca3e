"""What a CRM needs from a finished call, read from its call record (``CallStore.call_record``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from frontdesk.crm_sync.destination import PermanentDeliveryError
from frontdesk.store.models import normalize_phone

NOTE_TRANSCRIPT_LIMIT = 60_000
"""Transcript characters kept in a CRM note (HubSpot allows 65,536 in a note body)."""


@dataclass(frozen=True, slots=True)
class Booking:
    """An appointment booked during the call (times timezone-aware, UTC)."""

    local_id: str
    """The appointment's id in this app (a row id, or a CalDAV event's id)."""
    start: datetime
    end: datetime
    service: str | None


@dataclass(frozen=True, slots=True)
class CallFacts:
    """The caller, the outcome, the transcript and the bookings of one call."""

    call_id: str
    phone: str
    name: str | None
    email: str | None
    outcome: str
    summary: str | None
    started_at: datetime | None
    ended_at: datetime | None
    transcript: tuple[tuple[str, str], ...]
    bookings: tuple[Booking, ...]

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> CallFacts:
        """Read a call record; a call without a usable phone number cannot go to a CRM."""
        contact = record.get("contact") or {}
        raw_phone = contact.get("phone") or record.get("caller_number") or ""
        try:
            phone = normalize_phone(raw_phone)
        except ValueError as error:
            raise PermanentDeliveryError(
                f"call {record.get('id')!r} has no usable caller phone number ({raw_phone!r})"
            ) from error
        bookings = tuple(
            Booking(
                local_id=str(appointment["id"]),
                start=datetime.fromisoformat(appointment["start"]),
                end=datetime.fromisoformat(appointment["end"]),
                service=appointment.get("service"),
            )
            for appointment in record.get("appointments") or []
            if appointment.get("status", "booked") == "booked"
        ) or _booked_by_tools(record)
        transcript = tuple(
            (str(turn.get("speaker", "")), str(turn.get("text", "")).strip())
            for turn in record.get("turns") or []
            if str(turn.get("text", "")).strip()
        )
        return cls(
            call_id=str(record["id"]),
            phone=phone,
            name=(contact.get("name") or "").strip() or None,
            email=(contact.get("email") or "").strip() or None,
            outcome=str(record.get("outcome") or "answered"),
            summary=record.get("summary"),
            started_at=_moment(record.get("started_at")),
            ended_at=_moment(record.get("ended_at")),
            transcript=transcript,
            bookings=bookings,
        )

    @property
    def first_name(self) -> str | None:
        """The first word of the name."""
        return self.name.split()[0] if self.name else None

    @property
    def last_name(self) -> str | None:
        """The rest of the name after the first word, if any."""
        if not self.name or " " not in self.name:
            return None
        return self.name.split(maxsplit=1)[1]

    @property
    def display_name(self) -> str:
        """The name, or the phone number when the caller gave no name."""
        return self.name or self.phone

    def transcript_text(self) -> str:
        """The transcript, one "Caller: ..." / "Agent: ..." line per turn."""
        return "\n".join(f"{speaker.capitalize()}: {text}" for speaker, text in self.transcript)

    def note_text(self) -> str:
        """The CRM note: outcome, summary, bookings, then the transcript."""
        lines = [
            f"Phone call handled by frontdesk (call {self.call_id})",
            f"Outcome: {self.outcome}",
        ]
        if self.summary:
            lines.append(f"Summary: {self.summary}")
        for booking in self.bookings:
            what = f" ({booking.service})" if booking.service else ""
            lines.append(f"Booked{what}: {booking.start.isoformat()} to {booking.end.isoformat()}")
        transcript = self.transcript_text()
        if len(transcript) > NOTE_TRANSCRIPT_LIMIT:
            transcript = transcript[:NOTE_TRANSCRIPT_LIMIT] + "\n[transcript truncated]"
        lines += ["", "Transcript:", transcript or "(no speech recorded)"]
        return "\n".join(lines)

    def booking_title(self, booking: Booking) -> str:
        """A calendar title such as "Cleaning: Dana Whitfield"."""
        return f"{booking.service or 'Appointment'}: {self.display_name}"


def _moment(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) and value else None


def _booked_by_tools(record: dict[str, Any]) -> tuple[Booking, ...]:
    """Bookings from the call's successful ``book_appointment`` tool calls: with an external
    calendar (CalDAV) the app database holds no appointment rows, only these results."""
    bookings = []
    for tool_call in record.get("tool_calls") or []:
        result = tool_call.get("result")
        if tool_call.get("name") != "book_appointment" or tool_call.get("status") != "done":
            continue
        if not isinstance(result, dict) or not result.get("start") or not result.get("end"):
            continue
        bookings.append(
            Booking(
                local_id=str(result.get("appointment_id") or result["start"]),
                start=datetime.fromisoformat(result["start"]),
                end=datetime.fromisoformat(result["end"]),
                service=result.get("service"),
            )
        )
    return tuple(bookings)
