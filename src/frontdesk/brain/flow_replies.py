"""What the flow brain says: replies split into clauses for early speech, slot offers, answers
built only from the profile, and the one-line call summaries written to the CRM.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime

from frontdesk.brain.base import Message
from frontdesk.brain.profile import AgentProfile, QualifyingQuestion, Service
from frontdesk.brain.spoken_text import find_phrase, has_phrase
from frontdesk.brain.understand import When

_SENTENCE_END = re.compile(r"(?<=[.!?;:])\s+")
_COMMA = re.compile(r"(?<=,)\s+")
_MIN_CLAUSE = 20  # shorter comma pieces ("whitening, ") would chop a list's melody apart


def clauses(text: str) -> list[str]:
    """``text`` in speakable pieces (sentences, and long sentences at a comma), so speech can
    start on the first piece. Joining the pieces gives back ``text``."""
    pieces: list[str] = []
    for sentence in _split_keep(text, _SENTENCE_END):
        start = 0
        for boundary in _COMMA.finditer(sentence):
            rest = sentence[boundary.end() :]
            if boundary.start() - start >= _MIN_CLAUSE and len(rest.strip()) >= _MIN_CLAUSE:
                pieces.append(sentence[start : boundary.end()])
                start = boundary.end()
        pieces.append(sentence[start:])
    return [p for p in pieces if p]


def _split_keep(text: str, pattern: re.Pattern[str]) -> list[str]:
    parts, start = [], 0
    for boundary in pattern.finditer(text):
        parts.append(text[start : boundary.end()])
        start = boundary.end()
    parts.append(text[start:])
    return parts


def reprompt_for(
    stage: str, profile: AgentProfile, question: QualifyingQuestion | None, last_prompt: str
) -> str:
    """A second, differently worded try at what the agent asked in ``stage``."""
    if question is not None:
        return profile.render(question.reprompt or question.question)
    return {
        "intent": "I can book an appointment for you, or answer questions about "
        f"{profile.business_name}. What would you like to do?",
        "name": "Could you tell me your first and last name?",
        "phone": "Could you say the number again, with the area code, digit by digit?",
        "when": "Which day works for you? For example, tomorrow morning, or Friday afternoon.",
        "pick": "Which of those times works for you? Or I can look at another day.",
        "anything_else": profile.lines.anything_else,
    }.get(stage, last_prompt)


def heard_slots(offer: Sequence[dict[str, str]], history: Sequence[Message]) -> list[int]:
    """Indexes of offered slots the caller really heard: all of them, unless the offer was
    interrupted, then those whose label made it into the heard part."""
    last = next((m for m in reversed(history) if m.role == "agent"), None)
    if last is None or not last.interrupted:
        return list(range(len(offer)))
    return [i for i, slot in enumerate(offer) if slot["label"] in last.text]


def join_labels(labels: Sequence[str], conjunction: str = "or") -> str:
    """ "A", "A or B", "A, B, or C"."""
    if len(labels) <= 1:
        return "".join(labels)
    if len(labels) == 2:
        return f"{labels[0]} {conjunction} {labels[1]}"
    return f"{', '.join(labels[:-1])}, {conjunction} {labels[-1]}"


def offer_line(labels: Sequence[str], lead: str = "I have") -> str:
    """The spoken offer of one or more times."""
    if len(labels) == 1:
        return f"{lead} {labels[0]}. Does that work for you?"
    return f"{lead} {join_labels(labels)}. Which works best for you?"


def describe_when(when: When, now: datetime) -> str:
    """``when`` as words for "I don't have anything open ...": "on Thursday afternoon"."""
    parts: list[str] = []
    if when.day is not None:
        parts.append(_day_words(when.day, now.date()))
    if when.at is not None:
        hour = when.at.hour % 12 or 12
        minutes = f":{when.at.minute:02d}" if when.at.minute else ""
        parts.append(f"at {hour}{minutes} {'AM' if when.at.hour < 12 else 'PM'}")
    elif when.part_of_day is not None:
        parts.append(f"in the {when.part_of_day}" if when.day is None else when.part_of_day)
    return " ".join(parts) if parts else "then"


def _day_words(day: date, today: date) -> str:
    ahead = (day - today).days
    if ahead == 0:
        return "today"
    if ahead == 1:
        return "tomorrow"
    if 1 < ahead < 7:
        return f"on {day.strftime('%A')}"
    return f"on {day.strftime('%A, %B')} {day.day}"


_HOW_LONG = ("how long", "duration", "take", "last")


def service_answer(text: str, profile: AgentProfile, service: Service | None) -> str | None:
    """An answer about services that the profile itself supports ("do you do whitening?",
    "how long is a cleaning?", "do you do braces?"), or None."""
    if service is not None:
        if has_phrase(text, _HOW_LONG, use_stems=False):
            minutes = service.duration_minutes
            return f"{_article(service.name)} usually takes about {minutes} minutes."
        detail = f": {service.description}" if service.description else ""
        return f"Yes, we do{detail}."
    missing = find_phrase(text, profile.criteria.not_offered)
    if missing is not None:
        return f"I'm sorry, we don't offer {missing[1]} at {profile.business_name}."
    if has_phrase(text, ("services", "what do you do", "what do you offer", "kind of")):
        names = join_labels([s.name.lower() for s in profile.services], "and")
        return f"We offer {names}."
    return None


def _article(name: str) -> str:
    return f"An {name.lower()}" if name[:1].lower() in "aeiou" else f"A {name.lower()}"


@dataclass
class CallNotes:
    """What happened on the call, for the CRM summary and the contact notes."""

    name: str | None = None
    service: str | None = None
    booked_label: str | None = None
    answers: dict[str, str] = field(default_factory=dict)
    topics: list[str] = field(default_factory=list)
    reason: str | None = None

    def contact_notes(self) -> str | None:
        """Qualifying answers as one line ("patient_type: new; reason: Cleaning")."""
        if not self.answers:
            return None
        return "; ".join(f"{key}: {value}" for key, value in self.answers.items())

    def summary(self, outcome: str) -> str:
        """One sentence on what the caller wanted and what happened."""
        who = self.name or "The caller"
        if outcome == "booked":
            what = f" for {_article(self.service).lower()}" if self.service else ""
            text = f"{who} booked {self.booked_label}{what}."
        elif outcome == "escalated":
            text = f"{who} was transferred to a person ({self.reason or 'needed a person'})."
        elif outcome == "nurture":
            text = f"{who} did not book ({self.reason or 'not ready yet'})."
        else:
            asked = join_labels(self.topics, "and") if self.topics else "a question"
            text = f"{who} asked about {asked}."
        if self.answers and outcome != "booked":
            text += f" Answers: {self.contact_notes()}."
        elif self.answers:
            text += f" {self.contact_notes()}."
        return text


def dated(moment: datetime, profile: AgentProfile) -> str:
    """An absolute date and time for the CRM ("Thursday, December 3 at 2 PM")."""
    local = moment.astimezone(profile.tz)
    hour = local.hour % 12 or 12
    minutes = f":{local.minute:02d}" if local.minute else ""
    clock = f"{hour}{minutes} {'AM' if local.hour < 12 else 'PM'}"
    return f"{local.strftime('%A, %B')} {local.day} at {clock}"


def nearest_slots(
    slots: list[dict[str, str]], when: When, profile: AgentProfile
) -> list[dict[str, str]]:
    """The slot at the caller's time if open, else the two closest to it, in time order."""
    if when.at is None:
        return slots
    target = when.at.hour * 60 + when.at.minute

    def distance(slot: dict[str, str]) -> int:
        local = datetime.fromisoformat(slot["start"]).astimezone(profile.tz)
        return abs(local.hour * 60 + local.minute - target)

    exact = [s for s in slots if distance(s) == 0]
    if exact:
        return exact[:1]
    return sorted(sorted(slots, key=distance)[:2], key=lambda s: s["start"])
