"""The call record, written as the call proceeds: the call row, its turns and tool calls.

Every public method is async and does its blocking database work on a worker thread. A
write that was started finishes even if the awaiting task is cancelled (a thread cannot be
interrupted), so a barge-in never loses half a record.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from frontdesk.store.db import Database
from frontdesk.store.models import (
    DIRECTIONS,
    OUTCOMES,
    SPEAKERS,
    TOOL_STATUSES,
    Appointment,
    Call,
    CarrierStatus,
    Contact,
    ToolCallRecord,
    Turn,
    check_choice,
    normalize_phone,
    utc_now,
)

# Which outcome wins when the call ends: finishing never replaces a stronger outcome with a
# weaker one (a booked call whose caller then hangs up stays "booked").
OUTCOME_RANK: dict[str, int] = {
    "in_progress": 0,
    "dropped": 1,
    "failed": 2,
    "answered": 3,
    "nurture": 4,
    "escalated": 5,
    "booked": 6,
}

_TURN_FIELDS = frozenset({"text", "started_at", "ended_at", "interrupted", "timings"})


class UnknownCallError(LookupError):
    """No call with that id is in the store."""


def to_json(value: Any) -> Any:
    """``value`` as plain JSON types (datetimes and other objects become strings)."""
    return json.loads(json.dumps(value, default=str))


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _get_call(session: Session, call_id: str) -> Call:
    call = session.get(Call, call_id)
    if call is None:
        raise UnknownCallError(f"no call with id {call_id!r}")
    return call


def contact_dict(contact: Contact) -> dict[str, Any]:
    """A contact row as JSON-ready data."""
    return {
        "id": contact.id,
        "phone": contact.phone,
        "name": contact.name,
        "email": contact.email,
        "last_outcome": contact.last_outcome,
        "notes": contact.notes,
        "created_at": _iso(contact.created_at),
        "updated_at": _iso(contact.updated_at),
    }


def apply_outcome(call: Call, outcome: str, *, upgrade_only: bool) -> None:
    """Set ``call.outcome``; with ``upgrade_only`` a weaker outcome leaves it unchanged."""
    check_choice("outcome", outcome, OUTCOMES)
    if upgrade_only and OUTCOME_RANK[outcome] <= OUTCOME_RANK.get(call.outcome, 0):
        return
    if not upgrade_only and outcome == "in_progress" and call.outcome != "in_progress":
        raise ValueError("a call's outcome cannot go back to 'in_progress'")
    call.outcome = outcome


class CallStore:
    """Async writer and reader of call records, used by the Call as the call proceeds."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def start_call(
        self,
        direction: str,
        transport: str,
        caller_number: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> str:
        """Create the call row (outcome ``in_progress``) and return its id.

        A caller number that matches a known contact links the call to that contact.
        """
        check_choice("direction", direction, DIRECTIONS)
        return await self.db.run(
            self._start_call, direction, transport, caller_number, to_json(metadata or {})
        )

    def _start_call(
        self, direction: str, transport: str, caller_number: str | None, metadata: dict[str, Any]
    ) -> str:
        with self.db.session() as session:
            call = Call(
                direction=direction,
                transport=transport,
                caller_number=caller_number,
                meta=metadata,
                outcome="in_progress",
            )
            if caller_number:
                try:
                    phone = normalize_phone(caller_number)
                except ValueError:
                    phone = None  # "anonymous" and the like: a call without a contact
                if phone is not None:
                    call.contact_id = session.scalar(
                        select(Contact.id).where(Contact.phone == phone)
                    )
            session.add(call)
            session.flush()
            return call.id

    async def add_turn(
        self,
        call_id: str,
        speaker: str,
        text: str,
        started_at: float | None,
        ended_at: float | None,
        interrupted: bool = False,
        timings: dict[str, Any] | None = None,
    ) -> int:
        """Append a turn to the call's transcript; returns the turn id."""
        check_choice("speaker", speaker, SPEAKERS)
        return await self.db.run(
            self._add_turn,
            call_id,
            speaker,
            text,
            started_at,
            ended_at,
            interrupted,
            to_json(timings or {}),
        )

    def _add_turn(
        self,
        call_id: str,
        speaker: str,
        text: str,
        started_at: float | None,
        ended_at: float | None,
        interrupted: bool,
        timings: dict[str, Any],
    ) -> int:
        # Exclusive: the next index is read and written in one step.
        with self.db.exclusive_session() as session:
            _get_call(session, call_id)
            last = session.scalar(select(func.max(Turn.index)).where(Turn.call_id == call_id))
            turn = Turn(
                call_id=call_id,
                index=0 if last is None else last + 1,
                speaker=speaker,
                text=text,
                started_at=started_at,
                ended_at=ended_at,
                interrupted=interrupted,
                timings=timings,
            )
            session.add(turn)
            session.flush()
            return turn.id

    async def update_turn(self, turn_id: int, **fields: Any) -> None:
        """Change a turn (text, started_at, ended_at, interrupted); ``timings`` is merged
        into the existing waterfall so stages can add their measurement as they finish."""
        unknown = set(fields) - _TURN_FIELDS
        if unknown:
            raise TypeError(
                f"update_turn: unknown field(s) {', '.join(sorted(unknown))}; "
                f"allowed: {', '.join(sorted(_TURN_FIELDS))}"
            )
        if "timings" in fields:
            fields["timings"] = to_json(fields["timings"] or {})
        await self.db.run(self._update_turn, turn_id, fields)

    def _update_turn(self, turn_id: int, fields: dict[str, Any]) -> None:
        with self.db.exclusive_session() as session:
            turn = session.get(Turn, turn_id)
            if turn is None:
                raise LookupError(f"no turn with id {turn_id}")
            for name, value in fields.items():
                if name == "timings":
                    # A new dict, so the ORM sees the change to the JSON column.
                    turn.timings = {**(turn.timings or {}), **value}
                else:
                    setattr(turn, name, value)

    async def set_outcome(self, call_id: str, outcome: str, summary: str | None = None) -> None:
        """Record the outcome decided during the call (it replaces an earlier one)."""
        check_choice("outcome", outcome, OUTCOMES)
        await self.db.run(self._set_outcome, call_id, outcome, summary)

    def _set_outcome(self, call_id: str, outcome: str, summary: str | None) -> None:
        with self.db.session() as session:
            call = _get_call(session, call_id)
            apply_outcome(call, outcome, upgrade_only=False)
            if summary is not None:
                call.summary = summary

    async def link_contact(self, call_id: str, contact_id: int) -> None:
        """Attach the call to a contact (once the caller is known)."""
        await self.db.run(self._link_contact, call_id, contact_id)

    def _link_contact(self, call_id: str, contact_id: int) -> None:
        with self.db.session() as session:
            _get_call(session, call_id).contact_id = contact_id

    async def finish_call(
        self,
        call_id: str,
        outcome: str,
        summary: str | None = None,
        recording_path: str | None = None,
    ) -> str:
        """Close the call and return its final outcome. Idempotent: ``ended_at`` is set once,
        and ``outcome`` only replaces a weaker one (see :data:`OUTCOME_RANK`), so "dropped"
        after "booked" stays "booked"."""
        check_choice("outcome", outcome, OUTCOMES)
        return await self.db.run(self._finish_call, call_id, outcome, summary, recording_path)

    def _finish_call(
        self, call_id: str, outcome: str, summary: str | None, recording_path: str | None
    ) -> str:
        with self.db.session() as session:
            call = _get_call(session, call_id)
            if call.ended_at is None:
                call.ended_at = utc_now()
            apply_outcome(call, outcome, upgrade_only=True)
            if summary is not None:
                call.summary = summary
            if recording_path is not None:
                call.recording_path = recording_path
            return call.outcome

    async def add_carrier_status(
        self, carrier_call_id: str, status: str, details: dict[str, str]
    ) -> None:
        """Keep a status the carrier reported for its call ``carrier_call_id`` (shown in the
        record of the call whose ``call_sid`` it is)."""
        row = CarrierStatus(carrier_call_id=carrier_call_id, status=status, details=details)
        await self.db.run(self._add, row)

    def _add(self, row: CarrierStatus) -> None:
        with self.db.session() as session:
            session.add(row)

    async def record_tool_start(
        self, call_id: str, reply_id: str, name: str, arguments: dict[str, Any]
    ) -> int:
        """Record that a tool call is starting; returns the record id."""
        return await self.db.run(
            self._add_tool_call, call_id, reply_id, name, to_json(arguments), "started", None
        )

    async def record_tool_rejected(
        self, call_id: str, reply_id: str, name: str, arguments: Any, status: str, error: str
    ) -> int:
        """Record a tool call that was not run: "refused" (its reply was discarded) or
        "failed" (unknown tool, invalid arguments); ``arguments`` are kept as given."""
        if status not in ("refused", "failed"):
            raise ValueError(f"a rejected tool call is 'refused' or 'failed', not {status!r}")
        return await self.db.run(
            self._add_tool_call, call_id, reply_id, name, to_json(arguments), status, error
        )

    def _add_tool_call(
        self,
        call_id: str,
        reply_id: str,
        name: str,
        arguments: Any,
        status: str,
        error: str | None,
    ) -> int:
        if not isinstance(arguments, dict):
            arguments = {"_raw": arguments}  # malformed arguments are still worth keeping
        with self.db.session() as session:
            record = ToolCallRecord(
                call_id=call_id,
                reply_id=reply_id,
                name=name,
                arguments=arguments,
                status=status,
                error=error,
            )
            if status != "started":
                record.finished_at = record.started_at = utc_now()
            session.add(record)
            session.flush()
            return record.id

    async def record_tool_end(
        self, record_id: int, status: str, result: Any = None, error: str | None = None
    ) -> None:
        """Record how a started tool call ended ("done" or "failed") and what it returned."""
        check_choice("tool status", status, TOOL_STATUSES)
        await self.db.run(self._end_tool_call, record_id, status, to_json(result), error)

    def _end_tool_call(self, record_id: int, status: str, result: Any, error: str | None) -> None:
        with self.db.session() as session:
            record = session.get(ToolCallRecord, record_id)
            if record is None:
                raise LookupError(f"no tool call record with id {record_id}")
            record.status = status
            record.result = result
            record.error = error
            record.finished_at = utc_now()

    async def call_record(self, call_id: str) -> dict[str, Any]:
        """The whole call as JSON-ready data: call fields, contact, transcript turns with
        their timings, tool calls, and appointments made during the call."""
        return await self.db.run(self._call_record, call_id)

    def _call_record(self, call_id: str) -> dict[str, Any]:
        with self.db.session() as session:
            call = _get_call(session, call_id)
            contact = session.get(Contact, call.contact_id) if call.contact_id else None
            turns = session.scalars(
                select(Turn).where(Turn.call_id == call_id).order_by(Turn.index)
            ).all()
            tools = session.scalars(
                select(ToolCallRecord)
                .where(ToolCallRecord.call_id == call_id)
                .order_by(ToolCallRecord.id)
            ).all()
            appointments = session.scalars(
                select(Appointment).where(Appointment.call_id == call_id).order_by(Appointment.id)
            ).all()
            carrier = session.scalars(
                select(CarrierStatus)
                .where(CarrierStatus.carrier_call_id == str(call.meta.get("call_sid")))
                .order_by(CarrierStatus.id)
            ).all()
            return {
                "id": call.id,
                "direction": call.direction,
                "transport": call.transport,
                "caller_number": call.caller_number,
                "started_at": _iso(call.started_at),
                "ended_at": _iso(call.ended_at),
                "outcome": call.outcome,
                "summary": call.summary,
                "recording_path": call.recording_path,
                "metadata": call.meta,
                "contact": contact_dict(contact) if contact else None,
                "turns": [
                    {
                        "id": turn.id,
                        "index": turn.index,
                        "speaker": turn.speaker,
                        "text": turn.text,
                        "started_at": turn.started_at,
                        "ended_at": turn.ended_at,
                        "interrupted": turn.interrupted,
                        "timings": turn.timings,
                    }
                    for turn in turns
                ],
                "tool_calls": [
                    {
                        "id": record.id,
                        "reply_id": record.reply_id,
                        "name": record.name,
                        "arguments": record.arguments,
                        "status": record.status,
                        "result": record.result,
                        "error": record.error,
                        "started_at": _iso(record.started_at),
                        "finished_at": _iso(record.finished_at),
                    }
                    for record in tools
                ],
                "appointments": [
                    {
                        "id": appt.id,
                        "start": _iso(appt.start),
                        "end": _iso(appt.end),
                        "service": appt.service,
                        "status": appt.status,
                        "contact_id": appt.contact_id,
                    }
                    for appt in appointments
                ],
                "carrier_statuses": [
                    {"status": row.status, "received_at": _iso(row.received_at)} for row in carrier
                ],
            }
