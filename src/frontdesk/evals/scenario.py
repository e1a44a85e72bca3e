"""Evaluation scenarios: who calls, what they say and when, in what noise, and what must
come of it. One YAML file per scenario; a battery is a folder of them.

.. code-block:: yaml

    name: interrupt-mid-sentence
    persona: A caller who cuts the agent off to change the subject.
    voice: rms                      # a flite voice, never the agent's
    checks: [interrupt, latency]    # which of the six checks apply
    noise: {kind: babble, snr_db: 10}
    lines:
      - say: What are your hours?
      - say: Sorry, actually I want to book a cleaning.
        barge_in_ms: 1000           # N ms into the agent's reply
      - say: I'd like to come in on <pause 1500> Thursday afternoon.
      - dtmf: "0"
      - hang_up: true
    expect:
      outcome: booked               # booked / escalated / nurture / answered
      booking: {weekday: thursday, part_of_day: afternoon}
      agent_never_says: [dollars]   # words that would be a bluff here
"""

from __future__ import annotations

import re
from importlib.resources import files
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from frontdesk.evals.scripted_caller import CallerLine

CheckName = Literal["interrupt", "pause", "no_bluff", "noise", "tools", "latency"]
CHECKS: tuple[CheckName, ...] = ("interrupt", "pause", "no_bluff", "noise", "tools", "latency")
Outcome = Literal["booked", "escalated", "nurture", "answered"]
CALLER_VOICES = ("slt", "rms", "awb", "kal", "kal16")
"""flite's voices: none of them is the agent's (Piper)."""
_TAG = re.compile(r"<[^>]*>")
_PAUSE_TAG = re.compile(r"^<pause\s+\d+>$")
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
PARTS_OF_DAY = {"morning": (0, 12), "afternoon": (12, 17), "evening": (17, 24)}


class ScenarioError(ValueError):
    """A scenario file is unusable; the message names the file and the problem."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ScenarioLine(_Strict):
    """One caller line: words (with ``<pause MS>``), keys, a hang-up, and its timing."""

    say: str = ""
    barge_in_ms: int | None = Field(None, ge=0)
    delay_ms: int = Field(400, ge=0)
    dtmf: str = Field("", pattern=r"^[0-9*#A-D]*$")
    hang_up: bool = False

    @model_validator(mode="after")
    def _does_something(self) -> ScenarioLine:
        if not (self.say.strip() or self.dtmf or self.hang_up):
            raise ValueError("a line needs say, dtmf or hang_up")
        for tag in _TAG.findall(self.say):
            if not _PAUSE_TAG.match(tag):
                raise ValueError(f"{tag!r} is not a pause (write <pause 1500>)")
        return self

    def caller_line(self) -> CallerLine:
        """The scripted caller's form of this line."""
        return CallerLine(self.say, self.barge_in_ms, self.delay_ms, self.dtmf, self.hang_up)


class NoiseSpec(_Strict):
    """Background noise under the caller's voice, at ``snr_db`` below its speech level."""

    kind: Literal["pink", "babble", "car"]
    snr_db: float = Field(ge=-10, le=60)
    seed: int = 0


class BookingFacts(_Strict):
    """What the booking must be: its weekday, part of the day (business time), service."""

    weekday: str | None = None
    part_of_day: Literal["morning", "afternoon", "evening"] | None = None
    service: str | None = None
    """The service booked, as the business's profile names it (case ignored)."""

    @model_validator(mode="after")
    def _known_weekday(self) -> BookingFacts:
        if self.weekday is not None and self.weekday.lower() not in WEEKDAYS:
            raise ValueError(f"weekday must be one of {', '.join(WEEKDAYS)}")
        return self


class Expectation(_Strict):
    """The outcome the call must reach and the facts that must hold."""

    outcome: Outcome
    booking: BookingFacts | None = None
    contact_name: str | None = None
    """The name the CRM must hold for the caller afterwards."""
    agent_never_says: list[str] = Field(default_factory=list)
    """Words that would be a bluff here (e.g. a price or a deductible it cannot know)."""

    @model_validator(mode="after")
    def _booking_only_when_booked(self) -> Expectation:
        if self.booking is not None and self.outcome != "booked":
            raise ValueError("booking facts need outcome: booked")
        return self


class Scenario(_Strict):
    """One evaluation call."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    persona: str
    voice: Literal["slt", "rms", "awb", "kal", "kal16"] = "slt"
    """The caller's flite voice (see :data:`CALLER_VOICES`)."""
    checks: list[CheckName] = Field(min_length=1)
    lines: list[ScenarioLine] = Field(min_length=1)
    noise: NoiseSpec | None = None
    expect: Expectation

    @model_validator(mode="after")
    def _checks_have_what_they_need(self) -> Scenario:
        needs = {
            "interrupt": (
                any(line.barge_in_ms is not None for line in self.lines),
                "a line with barge_in_ms",
            ),
            "pause": (any("<pause" in line.say for line in self.lines), "a <pause MS>"),
            "noise": (self.noise is not None, "noise"),
        }
        if len(set(self.checks)) != len(self.checks):
            raise ValueError("a check is listed twice")
        for check in self.checks:
            present, what = needs.get(check, (True, ""))
            if not present:
                raise ValueError(f"check {check!r} needs {what}")
        return self

    def caller_lines(self) -> list[CallerLine]:
        """The script for the simulated caller."""
        return [line.caller_line() for line in self.lines]


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate one scenario file."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ScenarioError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    except yaml.YAMLError as exc:
        raise ScenarioError(f"{path}: not valid YAML ({exc})") from exc
    if not isinstance(data, dict):
        raise ScenarioError(f"{path}: a scenario is a mapping of fields")
    try:
        return Scenario(**data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'scenario'}: {e['msg']}" for e in exc.errors()
        )
        raise ScenarioError(f"{path}: {problems}") from exc


def load_battery(folder: str | Path | None = None, only: list[str] | None = None) -> list[Scenario]:
    """Every ``*.yaml`` scenario in ``folder`` (default: the battery shipped with frontdesk),
    sorted by file name; ``only`` keeps the named scenarios (unknown names are an error)."""
    root = Path(folder) if folder is not None else default_battery()
    paths = sorted(root.glob("*.yaml"))
    if not paths:
        raise ScenarioError(f"{root}: no scenario files (*.yaml)")
    scenarios = [load_scenario(p) for p in paths]
    names = [s.name for s in scenarios]
    if len(set(names)) != len(names):
        raise ScenarioError(f"{root}: two scenarios share a name")
    if only:
        missing = sorted(set(only) - set(names))
        if missing:
            raise ScenarioError(f"{root}: no scenario named {', '.join(missing)}")
        scenarios = [s for s in scenarios if s.name in only]
    return scenarios


def default_battery() -> Path:
    """The folder of the default battery inside the installed package."""
    return Path(str(files("frontdesk.evals") / "battery"))
