"""The database schema: contacts, calls, their turns and tool calls, and appointments.

All metadata lives on :class:`Base` so ``create_all`` (and later Alembic) sees one place.
The SQL is portable: it runs on SQLite (the embedded default) and PostgreSQL.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal, get_args

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

Direction = Literal["inbound", "outbound"]
Outcome = Literal["in_progress", "booked", "escalated", "nurture", "answered", "dropped", "failed"]
Speaker = Literal["caller", "agent"]
ToolStatus = Literal["started", "done", "failed", "refused"]
AppointmentStatus = Literal["booked", "cancelled"]

DIRECTIONS: tuple[str, ...] = get_args(Direction)
OUTCOMES: tuple[str, ...] = get_args(Outcome)
SPEAKERS: tuple[str, ...] = get_args(Speaker)
TOOL_STATUSES: tuple[str, ...] = get_args(ToolStatus)


def utc_now() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(UTC)


def check_choice(kind: str, value: str, choices: tuple[str, ...]) -> str:
    """Return ``value`` if it is one of ``choices``, else raise ValueError naming both."""
    if value not in choices:
        raise ValueError(f"{kind} must be one of {', '.join(choices)}; got {value!r}")
    return value


def normalize_phone(raw: str, default_country_code: str = "1") -> str:
    """A phone number as ``+`` and digits (E.164-ish), so one person is one contact.

    Formatting is dropped ("(555) 010-2030" -> "+15550102030"); a 10-digit number without a
    country code gets ``default_country_code`` (North America by default). Short numbers
    (3 to 6 digits, e.g. a PBX extension on a test trunk) are kept as bare digits.
    """
    text_value = raw.strip()
    if text_value.lower().startswith(("tel:", "sip:")):
        text_value = text_value.split(":", 1)[1].split("@", 1)[0]
    digits = re.sub(r"\D", "", text_value)
    if not 3 <= len(digits) <= 15 or re.search(r"[A-Za-z]", text_value.split(";")[0]):
        raise ValueError(f"not a phone number: {raw!r}")
    if len(digits) <= 6:
        return digits
    if text_value.startswith("+"):
        return "+" + digits
    if text_value.startswith("00"):
        return "+" + digits[2:]
    if len(digits) == 10:
        return f"+{default_country_code}{digits}"
    return "+" + digits


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that is always timezone-aware UTC in Python.

    SQLite has no timezone type, so values are stored as naive UTC there and made aware
    again on the way out; naive datetimes are refused rather than guessed at.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"timestamps must be timezone-aware, got naive {value!r}")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


# JSONB on PostgreSQL (indexable, compact); plain JSON text elsewhere.
JSONColumn = JSON().with_variant(JSONB(), "postgresql")


class Base(DeclarativeBase):
    """The one metadata registry of every frontdesk table."""

    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSONColumn,
    }


class Contact(Base):
    """A person the business talks to, keyed by normalised phone number."""

    __tablename__ = "contacts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    phone: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str | None] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(320))
    last_outcome: Mapped[str | None] = mapped_column(String(20))
    notes: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(default=utc_now, onupdate=utc_now)


class Call(Base):
    """One phone call, written as it proceeds (outcome ``in_progress`` until it ends)."""

    __tablename__ = "calls"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=lambda: str(uuid.uuid4()))
    direction: Mapped[str] = mapped_column(String(10))
    transport: Mapped[str] = mapped_column(String(40))
    caller_number: Mapped[str | None] = mapped_column(String(64))
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id"), index=True)
    started_at: Mapped[datetime] = mapped_column(default=utc_now)
    ended_at: Mapped[datetime | None]
    outcome: Mapped[str] = mapped_column(String(20), default="in_progress", index=True)
    summary: Mapped[str | None] = mapped_column(Text)
    recording_path: Mapped[str | None] = mapped_column(String(1024))
    # "metadata" is reserved on declarative classes; the column keeps the plain name.
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict)


class Turn(Base):
    """One utterance of the call; times are seconds on the call's audio clock."""

    __tablename__ = "turns"
    __table_args__ = (UniqueConstraint("call_id", "index", name="uq_turn_call_index"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    call_id: Mapped[str] = mapped_column(ForeignKey("calls.id"), index=True)
    index: Mapped[int] = mapped_column(Integer)
    speaker: Mapped[str] = mapped_column(String(10))
    text: Mapped[str] = mapped_column(Text, default="")
    started_at: Mapped[float | None] = mapped_column(Float)
    ended_at: Mapped[float | None] = mapped_column(Float)
    interrupted: Mapped[bool] = mapped_column(Boolean, default=False)
    # The latency waterfall of this turn: measurement point name -> seconds.
    timings: Mapped[dict[str, Any]] = mapped_column(default=dict)


class ToolCallRecord(Base):
    """One tool call made by one reply: what was asked, whether it ran, what it returned."""

    __tablename__ = "tool_calls"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    call_id: Mapped[str] = mapped_column(ForeignKey("calls.id"), index=True)
    reply_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(100))
    arguments: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(10), default="started")
    result: Mapped[Any | None] = mapped_column(JSONColumn)
    error: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime] = mapped_column(default=utc_now)
    finished_at: Mapped[datetime | None]


class Appointment(Base):
    """A booked (or cancelled) appointment; start and end are UTC.

    The partial unique index makes the database itself refuse two booked appointments at
    the same start, even when two calls race for the last slot.
    """

    __tablename__ = "appointments"
    __table_args__ = (
        Index(
            "uq_appointment_booked_start",
            "start",
            unique=True,
            sqlite_where=text("status = 'booked'"),
            postgresql_where=text("status = 'booked'"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id"), index=True)
    call_id: Mapped[str | None] = mapped_column(ForeignKey("calls.id"), index=True)
    start: Mapped[datetime]
    end: Mapped[datetime]
    service: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(10), default="booked")
    # Cleared on cancellation so the same key can book again; NULLs never collide.
    idempotency_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utc_now)


class CarrierStatus(Base):
    """A call status the carrier reported (Twilio's status callback: ringing, in-progress,
    completed, busy, no-answer, failed...), keyed by the carrier's call id: it may arrive
    before the call has a record (an outbound call that was never answered never gets one),
    or after the record is finished."""

    __tablename__ = "carrier_statuses"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    carrier_call_id: Mapped[str] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(32))
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    received_at: Mapped[datetime] = mapped_column(default=utc_now)
