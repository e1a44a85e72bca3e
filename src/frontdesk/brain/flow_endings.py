"""How a flow call ends: handed to a person, or a goodbye; the outcome is written once."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

from frontdesk.brain.base import ToolCall, ToolResult, TurnContext
from frontdesk.brain.flow_replies import CallNotes
from frontdesk.brain.flow_state import CallerFacts
from frontdesk.brain.profile import AgentProfile

log = logging.getLogger(__name__)

NO_ONE_AVAILABLE = (
    "I'm sorry, nobody from our team can take the call right now. "
    "I've noted your request, and someone will call you back as soon as possible."
)


async def call_tool(context: TurnContext, name: str, arguments: dict[str, Any]) -> ToolResult:
    """Run a tool through the Call; a tool that raises becomes a failed result, because a
    broken tool must not take the conversation down."""
    try:
        return await context.run_tool(ToolCall(name, arguments))
    except Exception as error:
        log.exception("tool %s failed", name)
        return ToolResult(name, ok=False, error=str(error))


class CallEndings:
    """Transfers and goodbyes for one call, with the CRM outcome logged exactly once."""

    def __init__(self, profile: AgentProfile, facts: CallerFacts, notes: CallNotes) -> None:
        self.profile = profile
        self.facts = facts
        self.notes = notes
        self.ending: str | None = None
        """Why the call ends after this reply (None: it goes on, or is being transferred)."""
        self._logged = False
        self._logged_by_ending = False  # the outcome went with a hand-off or goodbye

    async def transfer(
        self, context: TurnContext, reason: str, lead: str | None = None
    ) -> AsyncIterator[str]:
        """Say the hand-off line, then ``transfer_to_human`` and log "escalated"."""
        self.notes.reason = self.notes.reason or reason
        yield f"{lead or ''} {self.profile.render(self.profile.lines.handoff)}".strip()
        result = await call_tool(context, "transfer_to_human", {"reason": reason})
        self._logged_by_ending = await self.log(context, "escalated")
        if result.ok and isinstance(result.data, dict) and result.data.get("transferring") is False:
            # Nobody can take the call: promise a call back instead, and hang up.
            yield NO_ONE_AVAILABLE
            await call_tool(context, "end_call", {"reason": "no one available for transfer"})
            self.ending = "no one available for transfer"

    async def goodbye(
        self, context: TurnContext, line: str, outcome: str | None = None
    ) -> AsyncIterator[str]:
        """Say ``line``, log the outcome (if not yet logged), then ``end_call``."""
        yield self.profile.render(line)
        if outcome is None:
            wanted = self.facts.wants_booking or self.facts.declined_service
            outcome = "answered" if self.notes.topics and not wanted else "nurture"
        self._logged_by_ending = await self.log(context, outcome)
        await call_tool(context, "end_call", {"reason": "completed"})
        self.ending = "completed"

    def resume(self) -> None:
        """The caller cut the hand-off or goodbye short and carries on: the Call dropped the
        transfer or hang-up, and the outcome logged with it, so the next ending logs again
        (an outcome logged before, with a booking, stands)."""
        self.ending = None
        if self._logged_by_ending:
            self._logged = self._logged_by_ending = False

    async def log(self, context: TurnContext, outcome: str) -> bool:
        """``log_call_outcome`` with a one-sentence summary, once per call; True if this
        call logged it."""
        if self._logged:
            return False
        self._logged = True
        self.notes.name = self.facts.name
        self.notes.answers = dict(self.facts.answers)
        summary = self.notes.summary(outcome)
        await call_tool(context, "log_call_outcome", {"outcome": outcome, "summary": summary})
        return True
