"""The agent profile: who the agent is, the business it answers for, and how it qualifies callers.

One YAML file configures the whole front desk (see ``profiles/default.yaml``). Everything the
agent states as a fact comes from here or from a tool result: the brain never invents an answer.
"""

from __future__ import annotations

from datetime import time
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

if TYPE_CHECKING:
    from frontdesk.business.hours import BusinessHours

Expects = Literal["yes_no", "choice", "service", "name", "phone", "date", "open"]
"""What a qualifying question's answer holds ("service": one of the profile's services)."""

Outcome = Literal["book", "escalate", "nurture"]
"""Where an answer sends the caller: on to booking, to a human, or to the nurture list."""

_DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


class ProfileError(ValueError):
    """A profile file that cannot be used; the message names the file and the bad field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Service(_Strict):
    """Something the business books appointments for."""

    name: str = Field(min_length=1)
    duration_minutes: int = Field(default=30, gt=0, le=480)
    description: str = ""
    keywords: tuple[str, ...] = ()
    """Other words callers use for it ("teeth cleaned", "hygiene visit")."""


class FaqEntry(_Strict):
    """A question the agent may answer, with the exact answer to give."""

    question: str = Field(min_length=1)
    keywords: tuple[str, ...] = Field(min_length=1)
    answer: str = Field(min_length=1)


class Choice(_Strict):
    """One accepted answer to a choice question, the words that mean it, and where it leads."""

    value: str = Field(min_length=1)
    synonyms: tuple[str, ...] = ()
    outcome: Outcome = "book"

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, data: Any) -> Any:
        # A bare string is shorthand for a choice whose only word is its value; YAML reads an
        # unquoted yes/no as a boolean, which here can only have meant the word.
        if isinstance(data, str | bool):
            return {"value": _yaml_word(data)}
        if isinstance(data, dict):
            data = dict(data)
            if "value" in data:
                data["value"] = _yaml_word(data["value"])
            if isinstance(data.get("synonyms"), list):
                data["synonyms"] = [_yaml_word(s) for s in data["synonyms"]]
        return data


class QualifyingQuestion(_Strict):
    """A question asked before booking; its answer can send the caller elsewhere."""

    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    question: str = Field(min_length=1)
    expects: Expects = "open"
    choices: tuple[Choice, ...] = ()
    reprompt: str | None = None
    """Said when the first answer was not understood (default: the question again)."""
    escalate_if: tuple[str, ...] = ()
    """Phrases in the answer that send the caller to a human."""
    nurture_if: tuple[str, ...] = ()
    """Phrases in the answer that end the call as a nurture lead."""
    known_contact_answer: str | None = None
    """Answer assumed, without asking, when the caller is already in the CRM."""

    @model_validator(mode="after")
    def _choices_fit(self) -> QualifyingQuestion:
        if self.expects == "choice" and not self.choices:
            raise ValueError(f"question {self.id!r} expects a choice but lists no choices")
        if self.expects == "yes_no":
            bad = [c.value for c in self.choices if c.value not in ("yes", "no")]
            if bad:
                raise ValueError(f"yes/no question {self.id!r} has non yes/no choices: {bad}")
        return self


class Criteria(_Strict):
    """Business-wide rules applied to everything the caller says."""

    escalate_when: tuple[str, ...] = ()
    """Phrases that mean a person must take over (an emergency)."""
    nurture_when: tuple[str, ...] = ()
    """Phrases that mean the caller is not ready to book."""
    not_offered: tuple[str, ...] = ()
    """Services callers ask for that the business does not provide."""


class Lines(_Strict):
    """Fixed lines the agent speaks; ``{business_name}``, ``{agent_name}`` are filled in."""

    anything_else: str = "Is there anything else I can help you with?"
    handoff: str = "Let me connect you with a person from our team. One moment, please."
    cannot_answer: str = "I'm sorry, I don't have that information, and I don't want to guess."
    urgent: str = "That sounds urgent, and I want you to get help right away."
    not_interested: str = "No problem at all. Thanks for calling {business_name}. Have a great day!"
    goodbye: str = "Thanks for calling {business_name}. Have a great day!"
    fillers: tuple[str, ...] = ("One moment.", "Let me check that for you.")


class AgentProfile(_Strict):
    """Everything that makes the agent this business's front desk."""

    agent_name: str = Field(min_length=1)
    business_name: str = Field(min_length=1)
    timezone: str
    hours: dict[str, str]
    """``{"mon": "09:00-17:00", "wed": "09:00-12:00,13:00-17:00", "sun": "closed"}``;
    a day left out is closed."""
    services: tuple[Service, ...] = Field(min_length=1)
    faq: tuple[FaqEntry, ...] = ()
    qualifying_questions: tuple[QualifyingQuestion, ...] = ()
    criteria: Criteria = Criteria()
    handoff_number: str | None = Field(default=None, pattern=r"^\+?[0-9][0-9 ()-]{6,19}$")
    greeting: str = "Thanks for calling {business_name}, this is {agent_name}. How can I help you?"
    lines: Lines = Lines()

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (use an IANA name)") from None
        return value

    @field_validator("hours", mode="before")
    @classmethod
    def _valid_hours(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            raise ValueError("expected a mapping of weekday to 'HH:MM-HH:MM' or 'closed'")
        # The calendar's own parser is the judge, so a profile it accepts is one it can use.
        from frontdesk.business.hours import BusinessHours

        hours = BusinessHours.from_mapping(value, tz="UTC")
        if not any(hours.weekly):
            raise ValueError("the business is closed every day")
        return {str(day): _yaml_hours(spec) for day, spec in value.items()}

    @model_validator(mode="after")
    def _unique_question_ids(self) -> AgentProfile:
        ids = [q.id for q in self.qualifying_questions]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"qualifying question ids are not unique: {dupes}")
        return self

    @property
    def tz(self) -> ZoneInfo:
        """The business time zone: every day and time the caller says is read in it."""
        return ZoneInfo(self.timezone)

    def business_hours(self) -> BusinessHours:
        """The opening hours as the calendar's ``BusinessHours``."""
        from frontdesk.business.hours import BusinessHours

        return BusinessHours.from_mapping(self.hours, tz=self.timezone)

    def describe_hours(self) -> str:
        """The hours in words: "Monday to Friday, 9 AM to 5 PM; Saturday, 9 AM to noon; ..."."""
        weekly = self.business_hours().weekly
        groups: list[tuple[int, int, tuple[tuple[time, time], ...]]] = []
        for index, windows in enumerate(weekly):
            if groups and groups[-1][2] == windows:
                groups[-1] = (groups[-1][0], index, windows)
            else:
                groups.append((index, index, windows))
        open_parts, closed_days = [], []
        for first, last, windows in groups:
            days = _DAY_NAMES[first]
            if first != last:
                days += f" to {_DAY_NAMES[last]}"
            if not windows:
                closed_days.append(days)
                continue
            spans = " and ".join(f"{_spoken_time(a)} to {_spoken_time(b)}" for a, b in windows)
            open_parts.append(f"{days}, {spans}")
        text = "; ".join(open_parts)
        if closed_days:
            text += f"; closed {' and '.join(closed_days)}"
        return text

    def render(self, line: str) -> str:
        """``line`` with the profile's placeholders filled in."""
        names = ", ".join(s.name.lower() for s in self.services)
        return (
            line.replace("{business_name}", self.business_name)
            .replace("{agent_name}", self.agent_name)
            .replace("{hours}", self.describe_hours())
            .replace("{services}", names)
        )

    def rendered_faq(self) -> tuple[FaqEntry, ...]:
        """The FAQ with placeholders in answers filled in ("{hours}" in words)."""
        return tuple(
            entry.model_copy(update={"answer": self.render(entry.answer)}) for entry in self.faq
        )

    def question(self, question_id: str) -> QualifyingQuestion | None:
        """The qualifying question with this id."""
        return next((q for q in self.qualifying_questions if q.id == question_id), None)


def _yaml_word(value: Any) -> Any:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return value


def _yaml_hours(spec: Any) -> str:
    # YAML reads an unquoted "off"/"no" as False: that is a closed day.
    return "closed" if spec is None or spec is False else str(spec)


def _spoken_time(value: time) -> str:
    if value == time.max:
        return "midnight"
    if value == time(12, 0):
        return "noon"
    hour = value.hour % 12 or 12
    suffix = "AM" if value.hour < 12 else "PM"
    return f"{hour} {suffix}" if value.minute == 0 else f"{hour}:{value.minute:02d} {suffix}"


def load_profile(path: str | Path | None = None) -> AgentProfile:
    """Load a profile from a YAML file, or the default profile shipped in the package.

    Raises ``ProfileError`` naming the file and each bad field.
    """
    if path is None:
        source = "default profile"
        text = resources.files("frontdesk").joinpath("profiles/default.yaml").read_text("utf-8")
    else:
        source = str(path)
        try:
            text = Path(path).read_text("utf-8")
        except FileNotFoundError:
            raise ProfileError(f"profile file not found: {path}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ProfileError(f"{source}: cannot read the profile: {exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ProfileError(f"{source}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ProfileError(f"{source}: expected a mapping of settings, got {type(data).__name__}")
    try:
        return AgentProfile.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'profile'}: {err['msg']}"
            for err in exc.errors()
        )
        raise ProfileError(f"{source}: {problems}") from None
