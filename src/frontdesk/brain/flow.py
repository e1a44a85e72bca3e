"""``FlowBrain``: the embedded default brain, a qualification flow driven by the profile.

greet -> what the caller wants -> the profile's qualifying questions -> name (and number when
the call has none) -> when -> real openings from ``check_availability`` -> the caller picks
-> ``book_appointment`` -> confirm -> anything else? -> goodbye and ``end_call``.

Facts the caller volunteers out of order are kept and never asked again; FAQ answers come
only from the profile, at any point, and the flow resumes; a question the profile cannot
answer is never guessed at: the agent says so and hands the call to a person. One FlowBrain
serves one call (its state is the conversation's state).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Any, Literal

from frontdesk.brain.base import BrainEvent, EndCall, TextDelta, ToolCall, ToolResult, TurnContext
from frontdesk.brain.flow_replies import CallNotes, clauses, describe_when, offer_line
from frontdesk.brain.flow_replies import service_answer
from frontdesk.brain.flow_state import CallerFacts
from frontdesk.brain.profile import AgentProfile, QualifyingQuestion
from frontdesk.brain.spoken_text import find_phrase, has_phrase, normalize
from frontdesk.brain.spoken_time import part_of_day_for
from frontdesk.brain.understand import (
    When,
    choose_slot,
    detect_intent,
    is_question,
    match_faq,
    match_service,
    yes_no,
)

log = logging.getLogger(__name__)

Stage = Literal[
    "intent", "question", "name", "phone", "when", "pick", "anything_else", "offer_human", "done"
]
_EXPECTING: dict[str, str] = {
    "intent": "open", "name": "name", "phone": "phone", "when": "date", "pick": "date",
    "anything_else": "yes_no", "offer_human": "yes_no", "done": "open",
}
_QUESTION_EXPECTING = {"yes_no": "yes_no", "name": "name", "phone": "phone", "date": "date"}
_ACKS = ("Great.", "Got it.", "Perfect.", "Okay.")
_GREETING_WORDS = frozenset(("hi", "hello", "hey", "there", "good", "morning", "afternoon",
                             "evening", "oh", "um", "uh"))


class FlowBrain:
    """A rule-based brain that qualifies and books callers from an ``AgentProfile``."""

    def __init__(self, profile: AgentProfile, now: Callable[[], datetime] | None = None) -> None:
        self.profile = profile
        self._now = now or (lambda: datetime.now(profile.tz))
        self._faq = profile.rendered_faq()
        self._ignore = (profile.business_name, profile.agent_name)
        self.facts = CallerFacts()
        self.notes = CallNotes()
        self.stage: Stage = "intent"
        self._question: QualifyingQuestion | None = None
        self._offer: list[dict[str, str]] = []
        self._offered_for: When | None = None
        self._rejected: set[str] = set()
        self._misses = 0
        self._stage_before_offer: Stage = "intent"
        self._resume_prompt = ""
        self._acks = 0
        self._last_prompt = profile.render(profile.greeting)
        self._outcome_logged = False
        self._looked_up = False
        self._ending: str | None = None

    def greeting(self) -> str:
        """The first line of the call, from the profile."""
        return self._last_prompt

    def expecting(self) -> str:
        """What the next caller turn should hold, for endpointing."""
        if self.stage == "question" and self._question is not None:
            return _QUESTION_EXPECTING.get(self._question.expects, "open")
        return _EXPECTING.get(self.stage, "open")

    async def respond(self, text: str, context: TurnContext) -> AsyncIterator[BrainEvent]:
        """React to one caller turn: text pieces to speak, then ``EndCall`` if the call ends."""
        first = True
        async for line in self._turn(text, context):
            for piece in clauses(line if first else f" {line}"):
                yield TextDelta(piece)
            first = False
        if self._ending is not None:
            yield EndCall(self._ending)

    # -- one turn ---------------------------------------------------------------------------

    async def _turn(self, text: str, context: TurnContext) -> AsyncIterator[str]:
        if self.stage == "done":
            return
        if not self._looked_up:
            await self._lookup(context)
        if "0" in context.dtmf:
            async for line in self._escalate(context, "caller pressed 0 for a person"):
                yield line
            return
        spoken = normalize(text)
        if not spoken:
            yield f"Sorry, I didn't catch that. {self._last_prompt}"
            return
        intent = detect_intent(text)
        rules = self.profile.criteria
        if intent == "human" or (self.stage == "offer_human" and yes_no(text) is not False):
            async for line in self._escalate(context, "caller asked for a person"):
                yield line
            return
        if has_phrase(text, rules.escalate_when, negatable=True):
            found = find_phrase(text, rules.escalate_when)
            reason = f"urgent: {found[1] if found else 'emergency'}"
            async for line in self._escalate(context, reason, self.profile.lines.urgent):
                yield line
            return
        if intent == "not_interested" or has_phrase(text, rules.nurture_when, negatable=True):
            self.notes.reason = "said they are not interested or not ready"
            async for line in self._finish(context, self.profile.lines.not_interested, "nurture"):
                yield line
            return
        if intent in ("cancel", "reschedule"):
            lead = f"I'll get a person from our team to {intent} that appointment for you."
            async for line in self._escalate(context, f"caller wants to {intent}", lead):
                yield line
            return
        if self.stage == "offer_human":
            self._misses = 0
            self.stage = self._stage_before_offer
            yield f"Okay, let's keep going. {self._prompt(self._resume_prompt)}"
            return
        if intent == "repeat":
            yield self._last_prompt
            return
        if self.stage == "intent" and set(spoken.split()) <= _GREETING_WORDS:
            yield self._prompt("Hi there! How can I help you today?")
            return
        async for line in self._understood(text, intent, context):
            yield line

    async def _understood(self, text: str, intent: str | None, context: TurnContext
                          ) -> AsyncIterator[str]:
        asking = intent == "question" or is_question(text)
        learned = self.facts.harvest(
            text, self.profile, self._now(), stage=self.stage, question=self._question,
            asking=asking and intent != "book",
        )
        if intent == "book" or learned & {"service", "when"}:
            self.facts.wants_booking = True
        if self.stage == "pick" and self._offer:
            async for line in self._picked(text, intent, learned, context):
                yield line
            return
        missing = find_phrase(text, self.profile.criteria.not_offered)
        if missing is not None and "service" not in learned:
            async for line in self._not_offered(missing[1]):
                yield line
            return
        answer = self._answer(text, services=intent != "book") if asking else None
        if asking and answer is None and not learned and intent != "book":
            async for line in self._cannot_answer(context, text):
                yield line
            return
        if answer is not None:
            yield answer
        verdict = self._verdict(text)
        if verdict is not None:
            async for line in verdict(context):
                yield line
            return
        if self.stage == "anything_else" and not learned and answer is None:
            choice = yes_no(text)
            if choice is False or intent == "goodbye":
                async for line in self._finish(context, self.profile.lines.goodbye):
                    yield line
                return
            if choice is True and not self.facts.wants_booking:
                self._misses = 0
                self.stage = "intent"
                yield self._prompt("Sure, what can I help you with?")
                return
        if intent == "goodbye" and not learned:
            async for line in self._finish(context, self.profile.lines.goodbye):
                yield line
            return
        if not learned and answer is None and not (intent == "book" and self.stage == "intent"):
            async for line in self._unclear():
                yield line
            return
        self._misses = 0
        async for line in self._advance(context, ack=bool(learned) and answer is None):
            yield line

    # -- moving the flow forward ------------------------------------------------------------

    async def _advance(self, context: TurnContext, *, ack: bool) -> AsyncIterator[str]:
        lead = self._ack() if ack else ""
        if not self.facts.wants_booking:
            self.stage = "anything_else" if self.notes.topics or self.facts.any_answer() else "intent"
            yield self._prompt(self.profile.lines.anything_else if self.stage == "anything_else"
                               else "How can I help you today?", lead)
            return
        for question in self.profile.qualifying_questions:
            if question.id not in self.facts.answers:
                self.stage, self._question = "question", question
                yield self._prompt(self.profile.render(question.question), lead)
                return
        self._question = None
        if not self.facts.name:
            self.stage = "name"
            yield self._prompt("Can I get your first and last name, please?", lead)
            return
        if not self.facts.phone and not context.caller_number:
            self.stage = "phone"
            yield self._prompt("And what's the best phone number to reach you?", lead)
            return
        if self.facts.when is None:
            self.stage = "when"
            yield self._prompt("What day and time work best for you?", lead)
            return
        if lead:
            yield lead
        async for line in self._offer_slots(context, self.facts.when):
            yield line

    async def _offer_slots(self, context: TurnContext, when: When, lead: str = "I have"
                           ) -> AsyncIterator[str]:
        now = self._now()
        part = when.part_of_day or (part_of_day_for(when.at) if when.at else None)
        arguments: dict[str, Any] = {
            "day": when.day.isoformat() if when.day else None,
            "part_of_day": part or "any",
            "limit": 10 if when.at else 3,
        }
        result = await self._tool(context, "check_availability", arguments)
        if not result.ok:
            if "passed" in (result.error or ""):
                self.facts.when, self.stage = None, "when"
                yield self._prompt("That day has already passed. What other day works for you?")
                return
            async for line in self._escalate(context, "calendar unavailable",
                                             "I'm sorry, I can't reach our calendar right now."):
                yield line
            return
        slots = [s for s in result.data.get("slots", []) if s["start"] not in self._rejected]
        if when.at is not None and slots:
            slots = _nearest(slots, when, self.profile)
        if not slots:
            note = result.data.get("note", "")
            said = describe_when(when, now)
            sorry = (f"I'm sorry, we're {note}." if note.startswith("closed")
                     else f"I'm sorry, I don't have anything open {said}.")
            if when.day is None and when.part_of_day is None and when.at is None:
                yield sorry
                self.stage = "offer_human"
                yield self._prompt("Would you like me to connect you with a person from our team?")
                return
            yield sorry
            async for line in self._offer_slots(context, When(soonest=True), "The soonest I have is"):
                yield line
            return
        self._offer, self._offered_for, self.stage = slots, when, "pick"
        yield self._prompt(offer_line([s["label"] for s in slots], lead))

    async def _picked(self, text: str, intent: str | None, learned: set[str],
                      context: TurnContext) -> AsyncIterator[str]:
        starts = [datetime.fromisoformat(s["start"]) for s in self._offer]
        heard = self._heard_offer(context)
        index = choose_slot(text, starts, self._now())
        if index is None and yes_no(text) is True and len(heard) == 1:
            index = heard[0]
        if index is not None:
            async for line in self._book(context, self._offer[index]):
                yield line
            return
        if "when" in learned and self.facts.when != self._offered_for:
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
        if yes_no(text) is False or has_phrase(text, ("none", "neither", "another day",
                                                      "different day", "other day")):
            self.facts.when, self.stage, self._misses = None, "when", 0
            yield self._prompt("No problem. What other day or time would work better?")
            return
        async for line in self._unclear():
            yield line

    async def _book(self, context: TurnContext, slot: dict[str, str]) -> AsyncIterator[str]:
        service = self.facts.service.name if self.facts.service else None
        arguments = {"start": slot["start"], "name": self.facts.name or "Caller",
                     "phone": self.facts.phone, "service": service}
        result = await self._tool(context, "book_appointment", arguments)
        if not result.ok:
            self._rejected.add(slot["start"])
            yield "I'm sorry, that time was just taken."
            async for line in self._offer_slots(context, self._offered_for or When(soonest=True),
                                                "I can do"):
                yield line
            return
        label = result.data.get("label", slot["label"])
        booked_at = datetime.fromisoformat(result.data.get("start", slot["start"]))
        self.notes.booked_label, self.notes.service = _dated(booked_at, self.profile), service
        self.notes.answers = dict(self.facts.answers)
        self.facts.booked, self.facts.wants_booking = True, False
        self.stage, self._misses = "anything_else", 0
        first = (self.facts.name or "").split(" ")[0]
        what = f"your {service.lower()}" if service else "your appointment"
        yield f"You're all set: {what} is booked for {label}." + (
            f" Thanks, {first}." if first else "")
        yield self._prompt(self.profile.lines.anything_else)
        notes = self.notes.contact_notes()
        if context.caller_number and (self.facts.email or notes):
            await self._tool(context, "update_contact",
                             {"name": self.facts.name, "email": self.facts.email, "notes": notes})
        await self._log(context, "booked")

    async def _not_offered(self, service: str) -> AsyncIterator[str]:
        self.facts.declined_service, self.facts.wants_booking = service, False
        self.notes.reason = f"asked for {service}, which is not offered"
        self.stage, self._misses = "anything_else", 0
        yield f"I'm sorry, we don't offer {service} at {self.profile.business_name}."
        yield self._prompt(self.profile.lines.anything_else)

    # -- outcomes ---------------------------------------------------------------------------

    def _verdict(self, text: str) -> Callable[[TurnContext], AsyncIterator[str]] | None:
        """Where a qualifying answer sends the caller, when not on to booking."""
        for question_id, value in self.facts.answers.items():
            question = self.profile.question(question_id)
            if question is None or question_id in self.facts.judged:
                continue
            self.facts.judged.add(question_id)
            choice = next((c for c in question.choices if c.value == value), None)
            outcome = choice.outcome if choice else "book"
            if has_phrase(text, question.escalate_if, negatable=True):
                outcome = "escalate"
            elif has_phrase(text, question.nurture_if, negatable=True):
                outcome = "nurture"
            if outcome == "escalate":
                reason = f"{question_id}: {value}"
                return lambda context: self._escalate(context, reason)
            if outcome == "nurture":
                self.notes.reason = f"{question_id}: {value}"
                return lambda context: self._finish(
                    context, self.profile.lines.not_interested, "nurture")
        return None

    async def _cannot_answer(self, context: TurnContext, text: str) -> AsyncIterator[str]:
        """No answer in the profile: say so, never guess, and hand over to a person."""
        self.notes.reason = f"asked something the agent cannot answer: {text.strip()}"
        async for line in self._escalate(context, "question the agent cannot answer",
                                         self.profile.lines.cannot_answer):
            yield line

    async def _escalate(self, context: TurnContext, reason: str, lead: str | None = None
                        ) -> AsyncIterator[str]:
        self.notes.reason = self.notes.reason or reason
        self.stage = "done"
        yield f"{lead or ''} {self.profile.render(self.profile.lines.handoff)}".strip()
        result = await self._tool(context, "transfer_to_human", {"reason": reason})
        await self._log(context, "escalated")
        if result.ok and isinstance(result.data, dict) and result.data.get("transferring") is False:
            # Nobody can take the call: promise a call back instead, and end the call.
            yield ("I'm sorry, nobody from our team can take the call right now. "
                   "I've noted your request, and someone will call you back as soon as possible.")
            await self._tool(context, "end_call", {"reason": "no one available for transfer"})
            self._ending = "no one available for transfer"

    async def _finish(self, context: TurnContext, line: str, outcome: str | None = None
                      ) -> AsyncIterator[str]:
        self.stage = "done"
        yield self.profile.render(line)
        if outcome is None:
            wanted = self.facts.wants_booking or self.facts.declined_service
            outcome = "answered" if self.notes.topics and not wanted else "nurture"
        await self._log(context, outcome)
        await self._tool(context, "end_call", {"reason": "completed"})
        self._ending = "completed"

    async def _log(self, context: TurnContext, outcome: str) -> None:
        if self._outcome_logged:
            return
        self._outcome_logged = True
        self.notes.name = self.facts.name
        self.notes.answers = dict(self.facts.answers)
        await self._tool(context, "log_call_outcome",
                         {"outcome": outcome, "summary": self.notes.summary(outcome)})

    # -- small pieces -----------------------------------------------------------------------

    async def _unclear(self) -> AsyncIterator[str]:
        self._misses += 1
        if self._misses >= 2:
            self._stage_before_offer, self._resume_prompt = self.stage, self._reprompt()
            self.stage = "offer_human"
            yield self._prompt("I'm sorry, I'm having trouble understanding. "
                               "Would you like me to connect you with a person from our team?")
            return
        yield f"Sorry, I didn't quite get that. {self._reprompt()}"

    def _reprompt(self) -> str:
        if self.stage == "question" and self._question is not None:
            return self.profile.render(self._question.reprompt or self._question.question)
        return {
            "intent": "I can book an appointment for you, or answer questions about "
                      f"{self.profile.business_name}. What would you like to do?",
            "name": "Could you tell me your first and last name?",
            "phone": "Could you say the number again, with the area code, digit by digit?",
            "when": "Which day works for you? For example, tomorrow morning, or Friday afternoon.",
            "pick": "Which of those times works for you? Or I can look at another day.",
            "anything_else": self.profile.lines.anything_else,
        }.get(self.stage, self._last_prompt)

    def _answer(self, text: str, *, services: bool = True) -> str | None:
        """An answer from the profile (FAQ, then its services), never a guess."""
        entry = match_faq(text, self._faq, ignore=self._ignore)
        if entry is not None:
            self.notes.topics.append(entry.question.rstrip("?").lower())
            return entry.answer
        if not services:
            return None
        answer = service_answer(text, self.profile, match_service(text, self.profile.services))
        if answer is not None:
            self.notes.topics.append("our services")
        return answer

    def _prompt(self, line: str, lead: str = "") -> str:
        self._last_prompt = line
        return f"{lead} {line}".strip()

    def _ack(self) -> str:
        self._acks += 1
        return _ACKS[(self._acks - 1) % len(_ACKS)]

    def _heard_offer(self, context: TurnContext) -> list[int]:
        """Offered slots the caller really heard (an interrupted offer was cut short)."""
        last = next((m for m in reversed(context.history) if m.role == "agent"), None)
        if last is None or not last.interrupted:
            return list(range(len(self._offer)))
        return [i for i, s in enumerate(self._offer) if s["label"] in last.text]

    async def _lookup(self, context: TurnContext) -> None:
        self._looked_up = True
        if not context.caller_number:
            return
        result = await self._tool(context, "lookup_contact", {"phone": context.caller_number})
        if result.ok and isinstance(result.data, dict) and result.data.get("found"):
            self.facts.known_contact(result.data.get("name"), self.profile)

    async def _tool(self, context: TurnContext, name: str, arguments: dict[str, Any]
                    ) -> ToolResult:
        try:
            return await context.run_tool(ToolCall(name, arguments))
        except Exception as error:  # a broken tool must not take the conversation down
            log.exception("tool %s failed", name)
            return ToolResult(name, ok=False, error=str(error))


def _dated(moment: datetime, profile: AgentProfile) -> str:
    """An absolute date and time for the CRM ("Thursday, December 3 at 2 PM")."""
    local = moment.astimezone(profile.tz)
    hour = local.hour % 12 or 12
    minutes = f":{local.minute:02d}" if local.minute else ""
    clock = f"{hour}{minutes} {'AM' if local.hour < 12 else 'PM'}"
    return f"{local.strftime('%A, %B')} {local.day} at {clock}"


def _nearest(slots: list[dict[str, str]], when: When, profile: AgentProfile
             ) -> list[dict[str, str]]:
    """The slot at the caller's time if open, else the two closest to it, in time order."""
    assert when.at is not None
    target = when.at.hour * 60 + when.at.minute

    def distance(slot: dict[str, str]) -> int:
        local = datetime.fromisoformat(slot["start"]).astimezone(profile.tz)
        return abs(local.hour * 60 + local.minute - target)

    exact = [s for s in slots if distance(s) == 0]
    if exact:
        return exact[:1]
    return sorted(sorted(slots, key=distance)[:2], key=lambda s: s["start"])


