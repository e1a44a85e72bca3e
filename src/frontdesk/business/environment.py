"""What the front-desk tools act on during one call: the calendar, the CRM, the call record,
the business's hours, and what the tools ask to happen after their reply."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from frontdesk.business.calendar import Calendar, describe_slot
from frontdesk.business.crm import CRM
from frontdesk.business.hours import BusinessHours
from frontdesk.business.reply_effects import CallAction, OutcomeNote, ReplyEffects
from frontdesk.store.models import normalize_phone, utc_now
from frontdesk.store.records import CallStore


def is_phone(number: str) -> bool:
    """Whether ``number`` reads as a phone number."""
    try:
        normalize_phone(number)
    except ValueError:
        return False
    return True


@dataclass
class FrontDeskEnv:
    """What the front-desk tools act on during one call.

    ``effects`` keeps, per reply, the call-control actions the tools ask for (transfer, hang
    up) and the outcomes they log, until the Call settles the reply: performed and written
    once the caller has heard it, dropped if the caller cut it short (see
    :mod:`frontdesk.business.reply_effects`).
    """

    calendar: Calendar
    crm: CRM
    store: CallStore
    call_id: str
    caller_number: str | None
    hours: BusinessHours
    appointment_minutes: int = 30
    """Length of a visit whose service is not known (or not in ``service_minutes``)."""
    service_minutes: dict[str, int] = field(default_factory=dict)
    """Length of a visit per service name (case-insensitive)."""
    handoff_number: str | None = None
    now: Callable[[], datetime] = utc_now
    search_days: int = 14  # how far ahead "the soonest openings" may look
    effects: ReplyEffects = field(default_factory=ReplyEffects)

    @property
    def actions(self) -> list[CallAction]:
        """The actions asked for by replies not settled yet, in order."""
        return self.effects.pending

    def visit(self, service: str | None) -> timedelta:
        """How long a visit for ``service`` takes."""
        minutes = {k.casefold(): v for k, v in self.service_minutes.items()}
        return timedelta(minutes=minutes.get((service or "").casefold(), self.appointment_minutes))

    @property
    def tz(self) -> ZoneInfo:
        """The business timezone."""
        return self.hours.tz

    def label(self, moment: datetime) -> str:
        """``moment`` as the agent would say it ("tomorrow at 10:30 AM")."""
        return describe_slot(moment, self.now(), self.tz)

    def after_reply(self, action: CallAction) -> None:
        """Ask for ``action`` once the reply the tool works for has been heard."""
        self.effects.ask(action)

    async def log_outcome(self, outcome: str, summary: str | None = None) -> None:
        """Log how the call went: written when the reply that logged it is settled (at once
        outside a reply), unless it went with an ending that did not happen."""
        note = OutcomeNote(outcome, summary)
        if self.effects.note(note):
            await self.write_outcome(note)

    async def write_outcome(self, note: OutcomeNote) -> None:
        """Write ``note`` to the record now. With a summary and the caller's number, through
        the CRM (the contact's last outcome too); else on the call record alone."""
        if note.summary is not None and self.caller_number and is_phone(self.caller_number):
            await self.crm.log_outcome(self.caller_number, self.call_id, note.outcome, note.summary)
        else:
            await self.store.set_outcome(self.call_id, note.outcome, summary=note.summary)
