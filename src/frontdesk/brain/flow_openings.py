"""The times offered to one caller: fetched from ``check_availability``, narrowed to what the
caller asked for, and matched against the caller's choice."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from frontdesk.brain.base import Message, ToolResult, TurnContext
from frontdesk.brain.flow_endings import call_tool
from frontdesk.brain.flow_replies import heard_slots, nearest_slots
from frontdesk.brain.profile import AgentProfile
from frontdesk.brain.spoken_time import When, choose_slot, part_of_day_for
from frontdesk.brain.understand import yes_no

Slot = dict[str, str]
"""One opening as the calendar tool returns it: ``{"start": ISO 8601, "label": words}``."""


@dataclass
class Fetched:
    """What one availability check found: the slots to offer, or why there are none."""

    slots: list[Slot]
    note: str = ""
    error: str | None = None


@dataclass
class Openings:
    """The offer on the table: which slots, for which request, and which turned out taken."""

    profile: AgentProfile
    slots: list[Slot] = field(default_factory=list)
    asked_for: When | None = None
    taken: set[str] = field(default_factory=set)

    async def fetch(self, context: TurnContext, when: When, service: str | None = None) -> Fetched:
        """Ask the calendar for openings matching ``when``; with a clock time, keep the slot
        at that time, or the two closest to it. Slots found taken are never offered again."""
        part = when.part_of_day or (part_of_day_for(when.at) if when.at else None)
        arguments: dict[str, Any] = {
            "day": when.day.isoformat() if when.day else None,
            "part_of_day": part or "any",
            "limit": 10 if when.at else 3,
        }
        if service:
            arguments["service"] = service
        result: ToolResult = await call_tool(context, "check_availability", arguments)
        if not result.ok or not isinstance(result.data, dict):
            return Fetched([], error=result.error or "no answer from the calendar")
        slots = [s for s in result.data.get("slots", []) if s["start"] not in self.taken]
        if when.at is not None:
            slots = nearest_slots(slots, when, self.profile)
        return Fetched(slots, note=str(result.data.get("note", "")))

    def offer(self, slots: list[Slot], when: When) -> None:
        """Put ``slots`` on the table as the answer to ``when``."""
        self.slots, self.asked_for = slots, when

    def choose(self, text: str, history: Sequence[Message], now: datetime) -> Slot | None:
        """The slot the caller picked; a plain "yes" counts when exactly one time was heard
        (one offered, or an interrupted offer that got one label out)."""
        starts = [datetime.fromisoformat(s["start"]) for s in self.slots]
        index = choose_slot(text, starts, now)
        heard = heard_slots(self.slots, history)
        if index is None and yes_no(text) is True and len(heard) == 1:
            index = heard[0]
        return None if index is None else self.slots[index]

    def heard_none(self, history: Sequence[Message]) -> bool:
        """Whether the caller cut the offer off before hearing any of the times."""
        return not heard_slots(self.slots, history)
