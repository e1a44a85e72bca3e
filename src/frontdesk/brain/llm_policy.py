"""Guardrails of the language-model brain, outside the model.

- :class:`CallMemory`: what this call's tool results established (the times offered, the
  bookings made), kept when old turns drop out of the model's context.
- :class:`BookingPolicy`: a booking only of a time the calendar offered in this call, and a
  second booking only when the caller's own words asked for another, whatever the model was
  talked into.
- :func:`required_tool`: when the caller names a day (or asks for the soonest time) that the
  calendar has not been asked about yet, the first completion of the turn must call
  ``check_availability``. Small models otherwise answer "we have 10:30" from nowhere; a
  time the agent says must come from the real calendar.
- :func:`grounded_arguments`: that check is for the day the caller named, whatever date
  the model wrote. Likewise, a caller (who gave their name) picking one of the times just
  offered makes the model call ``book_appointment``, for the time they picked.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from frontdesk.brain.base import Message, ToolCall, ToolResult
from frontdesk.brain.profile import AgentProfile
from frontdesk.brain.spoken_time import choose_slot, parse_when
from frontdesk.brain.understand import extract_name, is_question, match_service

CHECK_AVAILABILITY = "check_availability"
BOOK_APPOINTMENT = "book_appointment"


@dataclass(slots=True)
class CallMemory:
    """What this call's tool results established, kept when old turns are dropped."""

    offered: dict[datetime, str] = field(default_factory=dict)
    """Every time ``check_availability`` returned in this call: start -> ISO text."""
    bookings: list[str] = field(default_factory=list)
    """Labels of the appointments booked in this call."""
    last_offer: list[tuple[datetime, str]] = field(default_factory=list)
    """The times the latest check returned, in order, with their start as returned: what
    "the first one" refers to."""

    def note(self, call: ToolCall, result: ToolResult) -> None:
        """Remember what a tool result means for the rest of the call."""
        if not result.ok or not isinstance(result.data, Mapping):
            return
        if call.name == "check_availability":
            offer = []
            for slot in result.data.get("slots", []):
                start = _moment(slot.get("start"))
                if start is not None:
                    self.offered[start] = f"{slot['start']} ({slot.get('label', '')})"
                    offer.append((start, str(slot["start"])))
            if offer:
                self.last_offer = offer
        elif call.name == "book_appointment":
            self.bookings.append(str(result.data.get("label") or result.data.get("start")))

    def lines(self) -> list[str]:
        """The memory as sentences for the system prompt."""
        lines = []
        if self.offered:
            recent = list(self.offered.values())[-6:]
            lines.append("Times check_availability returned: " + "; ".join(recent))
        if self.bookings:
            lines.append("Already booked in this call: " + "; ".join(self.bookings))
        return lines


_ANOTHER = re.compile(
    r"\b(another|second|one more|two appointments|additional|also (book|schedule)|"
    r"for my (wife|husband|partner|son|daughter|kid|kids|child|children|mom|mother|dad|"
    r"father|friend))\b",
    re.IGNORECASE,
)


def asks_for_another_booking(caller_text: str) -> bool:
    """Whether the caller's own words ask for one more appointment."""
    return _ANOTHER.search(caller_text) is not None


class BookingPolicy:
    """Rules the model must not be able to break, checked before its tool calls run."""

    def __init__(self, memory: CallMemory, profile: AgentProfile) -> None:
        self.memory = memory
        self.profile = profile
        self._turn_bookings = 0
        self._caller_words: set[str] = set()

    def new_turn(self, history: Sequence[Message] = ()) -> None:
        """A caller turn starts: at most one booking may come out of it; ``history`` is the
        conversation so far (the caller's words, for the names a booking may carry)."""
        self._turn_bookings = 0
        said = " ".join(m.text for m in history if m.role == "caller")
        self._caller_words = set(_words(said))

    def refusal(self, call: ToolCall, caller_text: str) -> str | None:
        """Why ``call`` must not run (words for the model), or None to let it run."""
        if call.name != "book_appointment":
            return None
        name = call.arguments.get("name")
        named = _words(name) if isinstance(name, str) else []
        heard = self._caller_words | set(_words(caller_text))
        if not named or not set(named) <= heard:
            return (
                "not booked: book under the name the caller said in this call; "
                "if they have not said it, ask for their first and last name"
            )
        start = _moment(call.arguments.get("start"), self.profile)
        if start is None or start not in self.memory.offered:
            return (
                "not booked: book only a time that check_availability returned in this call, "
                "with its start exactly as returned"
            )
        if self._turn_bookings or (
            self.memory.bookings and not asks_for_another_booking(caller_text)
        ):
            return (
                "not booked: this caller already has an appointment from this call and did "
                "not ask for another one"
            )
        return None

    def booked(self) -> None:
        """A booking went through."""
        self._turn_bookings += 1


def _moment(value: Any, profile: AgentProfile | None = None) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=profile.tz) if profile is not None else None
    return moment


def required_tool(
    caller_text: str, now: datetime, memory: CallMemory, caller_named: bool = False
) -> str | None:
    """The tool the model must call first this turn, or None to let it choose.

    ``check_availability`` when the caller names a day the calendar was not asked about in
    this call, or asks for the soonest time (or a part of the day) before any time has been
    offered. ``book_appointment`` when the caller, who has given their name
    (``caller_named``), picks one of the times just offered ("the first one", "2 PM works")
    without asking a question, and has no booking from this call yet (or asks for another).
    """
    when = parse_when(caller_text, now)
    if when is not None:
        offered_days = {moment.astimezone(now.tzinfo).date() for moment in memory.offered}
        if when.day is not None and when.day not in offered_days:
            return CHECK_AVAILABILITY
        if not memory.offered and (when.soonest or when.part_of_day is not None):
            return CHECK_AVAILABILITY
    if picked_slot(caller_text, now, memory) is None or not caller_named:
        return None
    if is_question(caller_text):
        return None
    if memory.bookings and not asks_for_another_booking(caller_text):
        return None
    return BOOK_APPOINTMENT


def picked_slot(caller_text: str, now: datetime, memory: CallMemory) -> str | None:
    """The start (as check_availability returned it) of the offered time the caller's
    words pick, if they clearly pick one."""
    starts = [start for start, _ in memory.last_offer]
    index = choose_slot(caller_text, starts, now)
    return None if index is None else memory.last_offer[index][1]


def grounded_arguments(
    call: ToolCall, caller_text: str, now: datetime, memory: CallMemory | None = None
) -> ToolCall:
    """``call`` with what the caller's own words fixed: for ``check_availability`` the day
    and part of day they named (a small model copies "Thursday 2026-11-26" from its prompt
    wrong often enough, and the caller must hear the day they asked about); for
    ``book_appointment`` the start of the offered time they picked. Other tools, and turns
    that name nothing, pass unchanged."""
    if call.name == BOOK_APPOINTMENT:
        start = picked_slot(caller_text, now, memory) if memory is not None else None
        if start is None or call.arguments.get("start") == start:
            return call
        return ToolCall(call.name, {**call.arguments, "start": start}, call.call_id)
    if call.name != CHECK_AVAILABILITY:
        return call
    when = parse_when(caller_text, now)
    if when is None:
        return call
    arguments = dict(call.arguments)
    if when.day is not None:
        arguments["day"] = when.day.isoformat()
    elif when.soonest:
        arguments.pop("day", None)
    if when.part_of_day is not None:
        arguments["part_of_day"] = when.part_of_day
    return ToolCall(call.name, arguments, call.call_id)


def caller_name(history: Sequence[Message]) -> str | None:
    """The name the caller last gave ("my name is...", or a bare name right after being
    asked for it), or None."""
    asked, name = False, None
    for message in history:
        if message.role == "agent":
            asked = "name" in message.text.lower()
        elif message.role == "caller":
            name = extract_name(message.text, bare=asked) or name
    return name


def caller_service(history: Sequence[Message], profile: AgentProfile) -> str | None:
    """The service the caller last asked for by name or keyword, or None."""
    found = None
    for message in history:
        if message.role == "caller":
            service = match_service(message.text, profile.services)
            found = service.name if service is not None else found
    return found


def _words(text: str) -> list[str]:
    """Lower-case ASCII words: "López" and "lopez" are one name."""
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.findall(r"[a-z]+", plain.lower())
