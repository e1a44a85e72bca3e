"""What the flow brain knows about the caller so far, and how each turn adds to it.

Everything is taken from the caller's own words, whenever they say it: a name and a day in
the first sentence are kept, so the agent never asks for them again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from frontdesk.brain.profile import AgentProfile, Outcome, QualifyingQuestion, Service
from frontdesk.brain.spoken_text import has_phrase, normalize
from frontdesk.brain.understand import (
    When,
    extract_email,
    extract_name,
    extract_phone,
    match_choice,
    match_service,
    parse_when,
    yes_no,
)

Stage = Literal[
    "intent", "question", "name", "phone", "when", "pick", "anything_else", "offer_human", "done"
]
"""Where the flow is: what the agent last asked for (``done``: the call's ending was said)."""
_ANSWERING_STAGES = ("question", "name", "phone", "when", "pick")


def merge_when(old: When | None, new: When) -> When:
    """``new`` on top of what the caller said before: "how about Friday?" after "Thursday
    afternoon" is Friday afternoon; "at 3" after "Thursday" is Thursday at 3."""
    if old is None or new.soonest:
        return new
    keep_time = new.day is None and new.part_of_day is None
    return When(
        day=new.day or old.day,
        part_of_day=new.part_of_day or (None if new.at else old.part_of_day),
        at=new.at or (old.at if keep_time else None),
    )


@dataclass
class CallerFacts:
    """The caller's details and answers, gathered across turns."""

    name: str | None = None
    phone: str | None = None
    email: str | None = None
    service: Service | None = None
    when: When | None = None
    answers: dict[str, str] = field(default_factory=dict)
    judged: set[str] = field(default_factory=set)
    """Answers whose outcome (book / escalate / nurture) has been applied."""
    wants_booking: bool = False
    booked: bool = False
    declined_service: str | None = None
    """A service the caller asked for that the business does not offer."""

    def known_contact(self, name: str | None, profile: AgentProfile) -> None:
        """Take what the CRM knows about a returning caller."""
        if name and not self.name:
            self.name = name
        for question in profile.qualifying_questions:
            if question.known_contact_answer and question.id not in self.answers:
                self.answers[question.id] = question.known_contact_answer
                self.judged.add(question.id)

    def harvest(
        self,
        text: str,
        profile: AgentProfile,
        now: datetime,
        *,
        stage: str,
        question: QualifyingQuestion | None,
        asking: bool,
    ) -> set[str]:
        """Take every fact ``text`` holds; returns what was new ("name", "service", ...).

        A question ("are you open Saturday?") only counts as an answer while the agent is
        waiting for one; otherwise asking about a day is not asking to book it.
        """
        learned: set[str] = set()
        current = question if stage == "question" else None
        bare_name = stage == "name" or (current is not None and current.expects == "name")
        name = extract_name(text, bare=bare_name)
        if name and name != self.name:
            self.name = name
            learned.add("name")
        phone = extract_phone(text)
        if phone and len(phone) >= 10 and phone != self.phone:
            self.phone = phone
            learned.add("phone")
        email = extract_email(text)
        if email and email != self.email:
            self.email = email
            learned.add("email")
        if not asking or stage in _ANSWERING_STAGES:
            service = match_service(text, profile.services)
            if service is not None and service != self.service:
                self.service = service
                learned.add("service")
            when = parse_when(text, now)
            if when is not None:
                merged = merge_when(self.when, when)
                if merged != self.when:
                    self.when = merged
                    learned.add("when")
        for each in profile.qualifying_questions:
            if each.id in self.answers:
                continue
            value = self._answer(each, text, now, is_current=each is current)
            if value is not None:
                self.answers[each.id] = value
                learned.add("answer")
        return learned

    def _answer(
        self, question: QualifyingQuestion, text: str, now: datetime, *, is_current: bool
    ) -> str | None:
        if question.expects == "service":
            return self.service.name if self.service is not None else None
        if question.expects == "choice":
            # Out of turn, only unmistakable phrases count ("new patient", not "no").
            choice = match_choice(text, question.choices, multiword_only=not is_current)
            return choice.value if choice is not None else None
        if not is_current:
            return None
        if question.expects == "yes_no":
            said = yes_no(text)
            return None if said is None else ("yes" if said else "no")
        if question.expects == "name":
            return self.name
        if question.expects == "phone":
            return self.phone
        if question.expects == "date":
            return text.strip() if parse_when(text, now) is not None else None
        return text.strip() if normalize(text) else None

    def verdict(self, text: str, profile: AgentProfile) -> tuple[Outcome, str] | None:
        """Where a newly given qualifying answer sends the caller, when not on to booking:
        ("escalate" or "nurture", why). Each answer is judged once."""
        for question_id, value in self.answers.items():
            question = profile.question(question_id)
            if question is None or question_id in self.judged:
                continue
            self.judged.add(question_id)
            choice = next((c for c in question.choices if c.value == value), None)
            outcome: Outcome = choice.outcome if choice else "book"
            if has_phrase(text, question.escalate_if, negatable=True):
                outcome = "escalate"
            elif has_phrase(text, question.nurture_if, negatable=True):
                outcome = "nurture"
            if outcome != "book":
                return outcome, f"{question_id}: {value}"
        return None
