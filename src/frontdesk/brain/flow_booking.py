"""The booking steps of the flow: real openings offered, the caller's pick understood, the
appointment booked and confirmed.

A mixin of :class:`~frontdesk.brain.flow.FlowBrain`: these steps read and move the same
conversation state (the stage, the caller's facts, the last prompt), and fall back on the
flow's own moves (a person when the calendar is out of reach, an answer to a question asked
mid-choice, a goodbye) when the caller goes elsewhere.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime

from frontdesk.brain.base import TurnContext
from frontdesk.brain.flow_endings import CallEndings, call_tool
from frontdesk.brain.flow_openings import Openings
from frontdesk.brain.flow_replies import CallNotes, dated, describe_when, offer_line
from frontdesk.brain.flow_state import CallerFacts, Stage
from frontdesk.brain.profile import AgentProfile
from frontdesk.brain.spoken_text import has_phrase
from frontdesk.brain.understand import When, is_question, yes_no


class BookingSteps:
    """Offer, pick and book, on the conversation state of the FlowBrain it is part of."""

    # The FlowBrain's state these steps share (set in FlowBrain.__init__).
    profile: AgentProfile
    facts: CallerFacts
    notes: CallNotes
    openings: Openings
    endings: CallEndings
    stage: Stage
    _misses: int
    _stage_before_offer: Stage
    _resume_prompt: str
    _last_prompt: str

    async def _offer_slots(
        self, context: TurnContext, when: When, lead: str = "I have"
    ) -> AsyncIterator[str]:
        service = self.facts.service.name if self.facts.service else None
        fetched = await self.openings.fetch(context, when, service)
        if fetched.error is not None:
            if "passed" in fetched.error:
                self.facts.when, self.stage = None, "when"
                yield self._prompt("That day has already passed. What other day works for you?")
                return
            async for line in self._escalate(
                context, "calendar unavailable", "I'm sorry, I can't reach our calendar right now."
            ):
                yield line
            return
        if not fetched.slots:
            said = describe_when(when, self._clock())
            yield (
                f"I'm sorry, we're {fetched.note}."
                if fetched.note.startswith("closed")
                else f"I'm sorry, I don't have anything open {said}."
            )
            if when.day is None and when.part_of_day is None and when.at is None:
                self.facts.when, self._stage_before_offer = None, "when"
                self._resume_prompt = "What other day would work for you?"
                self.stage = "offer_human"
                yield self._prompt("Would you like me to connect you with a person from our team?")
                return
            soonest = self._offer_slots(context, When(soonest=True), "The soonest I have is")
            async for line in soonest:
                yield line
            return
        self.openings.offer(fetched.slots, when)
        self.stage = "pick"
        yield self._prompt(offer_line([s["label"] for s in fetched.slots], lead))

    async def _picked(
        self, text: str, intent: str | None, learned: set[str], context: TurnContext
    ) -> AsyncIterator[str]:
        slot = self.openings.choose(text, context.history, self._clock())
        if slot is not None:
            async for line in self._book(context, slot):
                yield line
            return
        if self.openings.heard_none(context.history) and yes_no(text) is not None:
            yield self._last_prompt  # cut off before any time was heard: offer them again
            return
        if "when" in learned and self.facts.when != self.openings.asked_for:
            self._misses = 0
            async for line in self._offer_slots(context, self.facts.when or When(soonest=True)):
                yield line
            return
        answer = self._answer(text) if is_question(text) else None
        if answer is not None:
            yield answer
            yield self._last_prompt
            return
        if is_question(text) and not learned and intent != "book":
            async for line in self._cannot_answer(context, text):
                yield line
            return
        if intent == "goodbye":
            async for line in self._finish(context, self.profile.lines.goodbye):
                yield line
            return
        if yes_no(text) is False or has_phrase(
            text, ("none", "neither", "another day", "different day", "other day")
        ):
            self.facts.when, self.stage, self._misses = None, "when", 0
            yield self._prompt("No problem. What other day or time would work better?")
            return
        async for line in self._unclear():
            yield line

    async def _book(self, context: TurnContext, slot: dict[str, str]) -> AsyncIterator[str]:
        service = self.facts.service.name if self.facts.service else None
        arguments = {
            "start": slot["start"],
            "name": self.facts.name or "Caller",
            "phone": self.facts.phone,
            "service": service,
        }
        result = await call_tool(context, "book_appointment", arguments)
        if not result.ok:
            self.openings.taken.add(slot["start"])
            yield "I'm sorry, that time was just taken."
            again = self._offer_slots(
                context, self.openings.asked_for or When(soonest=True), "I can do"
            )
            async for line in again:
                yield line
            return
        label = result.data.get("label", slot["label"])
        booked_at = datetime.fromisoformat(result.data.get("start", slot["start"]))
        self.notes.booked_label, self.notes.service = dated(booked_at, self.profile), service
        self.notes.answers = dict(self.facts.answers)
        self.facts.booked, self.facts.wants_booking = True, False
        self.stage, self._misses = "anything_else", 0
        # The CRM is written before the confirmation is spoken: a barge-in during it must
        # not lose the record of a booking that did happen.
        notes = self.notes.contact_notes()
        if context.caller_number and (self.facts.email or notes):
            await call_tool(
                context,
                "update_contact",
                {"name": self.facts.name, "email": self.facts.email, "notes": notes},
            )
        await self.endings.log(context, "booked")
        first = (self.facts.name or "").split(" ")[0]
        what = f"your {service.lower()}" if service else "your appointment"
        yield f"You're all set: {what} is booked for {label}." + (
            f" Thanks, {first}." if first else ""
        )
        yield self._prompt(self.profile.lines.anything_else)

    # The flow's own moves, which these steps hand over to (FlowBrain defines them).
    def _escalate(
        self, context: TurnContext, reason: str, lead: str | None = None
    ) -> AsyncIterator[str]:
        raise NotImplementedError

    def _finish(
        self, context: TurnContext, line: str, outcome: str | None = None
    ) -> AsyncIterator[str]:
        raise NotImplementedError

    def _cannot_answer(self, context: TurnContext, text: str) -> AsyncIterator[str]:
        raise NotImplementedError

    def _unclear(self) -> AsyncIterator[str]:
        raise NotImplementedError

    def _answer(self, text: str, *, services: bool = True) -> str | None:
        raise NotImplementedError

    def _prompt(self, line: str, lead: str = "") -> str:
        raise NotImplementedError

    def _clock(self) -> datetime:
        raise NotImplementedError
