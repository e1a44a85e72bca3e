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

from collections.abc import AsyncIterator, Callable
from datetime import datetime

from frontdesk.brain.base import BrainEvent, EndCall, TextDelta, TurnContext
from frontdesk.brain.flow_booking import BookingSteps
from frontdesk.brain.flow_endings import CallEndings, call_tool
from frontdesk.brain.flow_openings import Openings
from frontdesk.brain.flow_replies import CallNotes, clauses, reprompt_for, service_answer
from frontdesk.brain.flow_state import CallerFacts, Stage
from frontdesk.brain.profile import AgentProfile, QualifyingQuestion, Service
from frontdesk.brain.spoken_text import find_phrase, has_phrase, normalize
from frontdesk.brain.understand import (
    detect_intent,
    is_question,
    match_faq,
    match_service,
    yes_no,
)

_EXPECTING: dict[str, str] = {
    "intent": "open",
    "name": "name",
    "phone": "phone",
    "when": "date",
    "pick": "date",
    "anything_else": "yes_no",
    "offer_human": "yes_no",
    "done": "open",
}
_QUESTION_EXPECTING = {"yes_no": "yes_no", "name": "name", "phone": "phone", "date": "date"}
_ACKS = ("Great.", "Got it.", "Perfect.", "Okay.")
_GREETING_WORDS = frozenset(
    ("hi", "hello", "hey", "there", "good", "morning", "afternoon", "evening", "oh", "um", "uh")
)


class FlowBrain(BookingSteps):
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
        self.openings = Openings(profile)
        self._misses = 0
        self._stage_before_offer: Stage = "intent"
        self._stage_before_end: Stage = "intent"
        self._resume_prompt = ""
        self._acks = 0
        self._last_prompt = profile.render(profile.greeting)
        self._looked_up = False
        self._asked_about: Service | None = None
        self.endings = CallEndings(profile, self.facts, self.notes)

    def greeting(self) -> str:
        """The first line of the call, from the profile."""
        return self.profile.render(self.profile.greeting)

    def stock_lines(self) -> list[str]:
        """Lines this brain says word for word in many calls (greeting, questions, FAQ
        answers, acknowledgements): worth synthesizing once, ahead of the first call."""
        profile = self.profile
        lines = [self.greeting(), *_ACKS, *profile.lines.fillers]
        lines += [
            profile.render(getattr(profile.lines, name))
            for name in (
                "anything_else",
                "handoff",
                "cannot_answer",
                "urgent",
                "not_interested",
                "goodbye",
            )
        ]
        for question in profile.qualifying_questions:
            lines += [profile.render(q) for q in (question.question, question.reprompt) if q]
        lines += [entry.answer for entry in profile.rendered_faq()]
        return lines

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
        if self.endings.ending is not None:
            yield EndCall(self.endings.ending)

    # -- one turn ---------------------------------------------------------------------------

    async def _turn(self, text: str, context: TurnContext) -> AsyncIterator[str]:
        if self.stage == "done":
            # A performed transfer or hang-up ends the call, so a turn after the hand-off or
            # goodbye means the Call dropped it: the caller cut it short (perhaps before
            # hearing a word of it), and is still here talking to the flow.
            self.stage = self._stage_before_end
            self.endings.resume()
        if not self._looked_up:
            await self._lookup(context)
        async for line in self._route(text, context):
            yield line

    def _route(self, text: str, context: TurnContext) -> AsyncIterator[str]:
        """Call-wide rules first (a person, an emergency, not interested), then the flow."""
        if "0" in context.dtmf:
            return self._escalate(context, "caller pressed 0 for a person")
        spoken = normalize(text)
        if not spoken:
            return _say(f"Sorry, I didn't catch that. {self._last_prompt}")
        intent = detect_intent(text)
        rules = self.profile.criteria
        if intent == "human" or (self.stage == "offer_human" and yes_no(text) is not False):
            return self._escalate(context, "caller asked for a person")
        urgent = find_phrase(text, rules.escalate_when)
        if urgent and has_phrase(text, rules.escalate_when, negatable=True):
            return self._escalate(context, f"urgent: {urgent[1]}", self.profile.lines.urgent)
        if intent == "not_interested" or has_phrase(text, rules.nurture_when, negatable=True):
            self.notes.reason = "said they are not interested or not ready"
            return self._finish(context, self.profile.lines.not_interested, "nurture")
        if intent in ("cancel", "reschedule"):
            lead = f"I'll get a person from our team to {intent} that appointment for you."
            return self._escalate(context, f"caller wants to {intent}", lead)
        if self.stage == "offer_human":
            self._misses, self.stage = 0, self._stage_before_offer
            return _say(f"Okay, let's keep going. {self._prompt(self._resume_prompt)}")
        if intent == "repeat":
            return _say(self._last_prompt)
        if self.stage == "intent" and set(spoken.split()) <= _GREETING_WORDS:
            return _say(self._prompt("Hi there! How can I help you today?"))
        return self._understood(text, intent, context)

    async def _understood(
        self, text: str, intent: str | None, context: TurnContext
    ) -> AsyncIterator[str]:
        # "No, that's all, can you?" (a misheard "thank you") ends the call; it asks nothing.
        asking = intent == "question" or (intent != "goodbye" and is_question(text))
        if intent == "book" and self.facts.service is None:
            self.facts.service = self._asked_about  # "yes, I'd like to book one"
        learned = self.facts.harvest(
            text,
            self.profile,
            self._clock(),
            stage=self.stage,
            question=self._question,
            asking=asking and intent != "book",
        )
        if intent == "book" or learned & {"service", "when"}:
            self.facts.wants_booking = True
        if self.stage == "pick" and self.openings.slots:
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
        verdict = self.facts.verdict(text, self.profile)
        if verdict is not None:
            outcome, self.notes.reason = verdict
            ending = (
                self._escalate(context, verdict[1])
                if outcome == "escalate"
                else self._finish(context, self.profile.lines.not_interested, "nurture")
            )
            async for line in ending:
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
        if not learned and answer is None and intent != "book":
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
            self.stage = "anything_else" if self.notes.topics else "intent"
            yield self._prompt(
                self.profile.lines.anything_else
                if self.stage == "anything_else"
                else "How can I help you today?",
                lead,
            )
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

    async def _not_offered(self, service: str) -> AsyncIterator[str]:
        self.facts.declined_service, self.facts.wants_booking = service, False
        self.notes.reason = f"asked for {service}, which is not offered"
        self.stage, self._misses = "anything_else", 0
        yield f"I'm sorry, we don't offer {service} at {self.profile.business_name}."
        yield self._prompt(self.profile.lines.anything_else)

    # -- endings ---------------------------------------------------------------------------

    # The call is over only once the hand-off or goodbye was heard and its tools ran: a
    # caller who cuts in ("wait, one more thing") is still talking to the flow.
    async def _escalate(
        self, context: TurnContext, reason: str, lead: str | None = None
    ) -> AsyncIterator[str]:
        self._stage_before_end = self.stage
        async for line in self.endings.transfer(context, reason, lead):
            yield line
        self.stage = "done"

    async def _finish(
        self, context: TurnContext, line: str, outcome: str | None = None
    ) -> AsyncIterator[str]:
        self._stage_before_end = self.stage
        async for spoken in self.endings.goodbye(context, line, outcome):
            yield spoken
        self.stage = "done"

    def _cannot_answer(self, context: TurnContext, text: str) -> AsyncIterator[str]:
        """No answer in the profile: say so, never guess, and hand over to a person."""
        self.notes.reason = f"asked something the agent cannot answer: {text.strip()}"
        return self._escalate(
            context, "question the agent cannot answer", self.profile.lines.cannot_answer
        )

    # -- small pieces -----------------------------------------------------------------------

    async def _unclear(self) -> AsyncIterator[str]:
        self._misses += 1
        if self._misses >= 2:
            self._stage_before_offer, self._resume_prompt = self.stage, self._reprompt()
            self.stage = "offer_human"
            yield self._prompt(
                "I'm sorry, I'm having trouble understanding. "
                "Would you like me to connect you with a person from our team?"
            )
            return
        yield f"Sorry, I didn't quite get that. {self._reprompt()}"

    def _clock(self) -> datetime:
        """Now, in the business time zone (a naive clock is taken to be business time)."""
        now = self._now()
        tz = self.profile.tz
        return now.replace(tzinfo=tz) if now.tzinfo is None else now.astimezone(tz)

    def _reprompt(self) -> str:
        question = self._question if self.stage == "question" else None
        return reprompt_for(self.stage, self.profile, question, self._last_prompt)

    def _answer(self, text: str, *, services: bool = True) -> str | None:
        """An answer from the profile (FAQ, then its services), never a guess."""
        entry = match_faq(text, self._faq, ignore=self._ignore)
        if entry is not None:
            self.notes.topics.append(entry.question.rstrip("?").lower())
            return entry.answer
        if not services:
            return None
        service = match_service(text, self.profile.services)
        answer = service_answer(text, self.profile, service)
        self._asked_about = service or self._asked_about
        if answer is not None:
            self.notes.topics.append("our services")
        return answer

    def _prompt(self, line: str, lead: str = "") -> str:
        self._last_prompt = line
        return f"{lead} {line}".strip()

    def _ack(self) -> str:
        self._acks += 1
        return _ACKS[(self._acks - 1) % len(_ACKS)]

    async def _lookup(self, context: TurnContext) -> None:
        self._looked_up = True
        if not context.caller_number:
            return
        result = await call_tool(context, "lookup_contact", {"phone": context.caller_number})
        if result.ok and isinstance(result.data, dict) and result.data.get("found"):
            self.facts.known_contact(result.data.get("name"), self.profile)


async def _say(*lines: str) -> AsyncIterator[str]:
    for line in lines:
        yield line
