"""``FallbackBrain``: the language model first, the flow brain when the model fails.

When the endpoint times out, refuses, or drops mid-reply, the caller hears a short line at
once ("Sorry, one moment."), the turn is tried once more (with what was already spoken in
the history, so the model carries on rather than starting over), and if that fails too the
flow brain answers this turn and every later one. The flow brain is handed what the
conversation established so far (service, name, answers, day, a booking already made), so
the lead is not lost: it asks only for what is still missing and can still book. Text
already spoken stays spoken.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from dataclasses import replace

from frontdesk.brain.base import BrainEvent, Message, TextDelta, TurnContext
from frontdesk.brain.flow import FlowBrain
from frontdesk.brain.llm import LLMBrain
from frontdesk.brain.profile import QualifyingQuestion
from frontdesk.brain.understand import detect_intent, is_question

log = logging.getLogger(__name__)

_WORD = re.compile(r"[a-z]+")


class FallbackBrain:
    """Answers with ``primary`` (an LLMBrain) while it works, with ``backup`` after."""

    def __init__(
        self,
        primary: LLMBrain,
        backup: FlowBrain,
        *,
        sorry_line: str = "Sorry, one moment.",
        retries: int = 1,
    ) -> None:
        self.primary = primary
        self.backup = backup
        self.sorry_line = sorry_line
        self.retries = retries
        self.on_backup = False
        self.failures: list[str] = []
        """Why the model failed, in order (for the call record and the logs)."""

    def greeting(self) -> str:
        """The first line of the call."""
        return self.primary.greeting()

    def stock_lines(self) -> list[str]:
        """Lines worth synthesizing ahead of time: both brains' and the apology."""
        return [self.sorry_line, *self.primary.stock_lines(), *self.backup.stock_lines()]

    def expecting(self) -> str:
        """What the next caller turn should hold, from whichever brain is answering."""
        return self.backup.expecting() if self.on_backup else self.primary.expecting()

    async def aclose(self) -> None:
        """Release the model's HTTP client."""
        await self.primary.aclose()

    async def respond(self, text: str, context: TurnContext) -> AsyncIterator[BrainEvent]:
        """One caller turn: the model's answer, or the flow's once the model has failed."""
        said: list[str] = []
        if not self.on_backup:
            for attempt in range(1 + self.retries):
                try:
                    async for event in self.primary.respond(text, _with_partial(context, said)):
                        if isinstance(event, TextDelta):
                            said.append(event.text)
                        yield event
                    return
                except Exception as error:  # any failure: the caller must never hear silence
                    self.failures.append(f"{type(error).__name__}: {error}")
                    log.warning("call %s: language model failed: %s", context.call_id, error)
                    if attempt == 0:
                        yield TextDelta(("... " if said else "") + self.sorry_line + " ")
            self._take_over(context)
        async for event in self.backup.respond(text, _with_partial(context, said)):
            yield event

    def _take_over(self, context: TurnContext) -> None:
        """Hand the flow brain what the conversation so far established."""
        self.on_backup = True
        flow, profile = self.backup, self.backup.profile
        now = self.primary.now()
        asked: str = ""
        stage = "intent"
        question: QualifyingQuestion | None = None
        for message in context.history[:-1]:  # the last one is this turn: the flow reads it
            if message.role == "agent":
                asked = message.text
                stage, question = _stage_of(asked, profile.qualifying_questions)
                continue
            if message.role != "caller":
                continue
            learned = flow.facts.harvest(
                message.text,
                profile,
                now,
                stage=stage,
                question=question,
                asking=is_question(message.text),
            )
            if detect_intent(message.text) == "book" or learned & {"service", "when"}:
                flow.facts.wants_booking = True
        if self.primary.memory.bookings:
            flow.facts.booked, flow.facts.wants_booking = True, False
            stage, question = "anything_else", None
        # Resume where the model left off, so a bare "Maria Lopez" or "new" answers the
        # question it asked. FlowBrain has no public hook for the pending question yet.
        flow.stage = stage  # type: ignore[assignment]
        flow._question = question
        log.info("call %s: flow brain takes over at stage %s", context.call_id, stage)


def _stage_of(
    agent_text: str, questions: tuple[QualifyingQuestion, ...]
) -> tuple[str, QualifyingQuestion | None]:
    """Which flow stage the agent's last line puts the caller in."""
    lowered = agent_text.lower()
    if "name" in lowered:
        return "name", None
    if "phone" in lowered or "number" in lowered:
        return "phone", None
    words = set(_WORD.findall(lowered))
    for question in questions:
        key = {w for w in _WORD.findall(question.question.lower()) if len(w) > 3}
        if len(key & words) >= 2:
            return "question", question
    if any(p in lowered for p in ("what day", "which day", "what time", "when would")):
        return "when", None
    return "intent", None


def _with_partial(context: TurnContext, said: list[str]) -> TurnContext:
    """``context`` with the text already spoken in this turn added as an agent message."""
    if not said:
        return context
    partial = Message("agent", "".join(said).strip(), interrupted=True)
    return replace(context, history=[*context.history, partial])
