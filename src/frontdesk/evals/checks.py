"""The six production checks, each a number and a pass/fail, judged from the caller's side
of the wire (the call recording and the caller's log of the socket or SIP/RTP line) and
from the business's own backends.

1. interrupt: caller speech onset -> the agent's audio stopping on the caller's line (the
   end of the last agent media played while the caller was still talking over it).
2. pause: agent voice heard while the caller was still mid-line (a pause inside a line).
3. no_bluff: the agent offered a human, said none of the bluff words, and the handoff fired
   (a ``transfer_to_human`` tool call in the agent's record, and on the wire the call ended
   by the agent; on SIP, a REFER).
4. noise: the scenario's task completed although the caller spoke in noise.
5. tools: outcome and CRM contact read back from the database, the booking from the
   calendar (the database, or the CalDAV server), not from the agent's word.
6. latency: caller's last word -> agent's first sound, per turn; a turn over 1 s fails.

Every time here is in seconds on the call's clock: the caller's 20 ms ticks, which are the
recording's timeline. The agent's record is on it too: over Twilio the agent stamps its
turns with the caller's media timestamps; over SIP with its own RTP ticks, which the SIP
caller maps onto its own (``SipCallLog.agent_clock_offset``).
"""

from __future__ import annotations

import re
import statistics
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from frontdesk.evals.battery import ScenarioRun, words
from frontdesk.evals.recording import CallRecording
from frontdesk.evals.scenario import PARTS_OF_DAY, WEEKDAYS, CheckName
from frontdesk.transports.local import TICK_S

INTERRUPT_LIMIT_S = 0.3
"""The agent must be silent this soon after the caller starts talking over it."""
TURN_LIMIT_S = 1.0
"""A turn gap over this feels laggy, whatever the voice (MISSION.md)."""
TALKING_AT_END_S = 0.2
"""Agent voice this close before the caller's last word: the agent was already talking, so
the line has no turn gap to measure (the pause check judges talking over the caller)."""
PAIRING_S = 0.5
"""An agent turn is the same turn as a caller line when their ends are this close."""
HUMAN_OFFER = (
    "connect",
    "transfer",
    "team",
    "someone",
    "person",
    "human",
    "staff",
    "colleague",
    "representative",
    "call you back",
    "front desk",
)


@dataclass(frozen=True, slots=True)
class Limits:
    """The pass marks of the two timed checks."""

    interrupt_s: float = INTERRUPT_LIMIT_S
    """Caller speech onset -> the agent's audio stopped."""
    turn_s: float = TURN_LIMIT_S
    """Caller's last word -> the agent's first sound."""


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One check on one scenario call."""

    check: CheckName
    passed: bool
    value: float | None
    """The measured number (seconds for times, dB for noise), None when there is none."""
    detail: str
    samples: list[float] = field(default_factory=list)
    """Per-turn values where the check has several (latency, interrupts)."""

    def as_json(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


@dataclass(frozen=True, slots=True)
class TurnGap:
    """One answered caller line: its gap on the wire and in the agent's own timings.

    The two differ by two things, both kept here: when the agent's VAD placed the caller's
    last word (``agent_stop - caller_stopped``), and how long the agent's first audio took
    from the agent handing it to its transport to sounding in the caller's ear
    (``wire - agent`` minus that)."""

    line: int
    """Index of the line in the scenario."""
    caller_stopped: float
    """The caller's last voiced audio of the line."""
    wire: float
    """Caller's last voiced audio -> the agent's first voiced audio on the recording (s)."""
    agent: float | None = None
    """The ``voice_to_voice_ms`` the agent stored for the same turn (s), if it has one."""
    agent_stop: float | None = None
    """Where the agent placed the caller's last word (its ``caller_stopped``)."""

    @property
    def stop_error(self) -> float | None:
        """How much later than the truth the agent placed the caller's last word (s)."""
        return None if self.agent_stop is None else self.agent_stop - self.caller_stopped

    @property
    def delivery(self) -> float | None:
        """The agent's first audio handed to its transport -> heard by the caller (s)."""
        if self.agent is None or self.agent_stop is None:
            return None
        return self.caller_stopped + self.wire - (self.agent_stop + self.agent)


def interrupt(
    run: ScenarioRun, recording: CallRecording, limit_s: float = INTERRUPT_LIMIT_S
) -> CheckResult:
    """Every barge-in line stopped the agent within ``limit_s``.

    The stop is the end of the last 20 ms of the agent's media the caller's line played
    while the caller was still speaking the line (after a ``clear`` nothing plays; an agent
    that pauses and carries on, or talks on until the caller is done, has not stopped). A
    stop only counts as a reaction if the reply was really cut short (a ``clear`` on the
    socket, or the agent's record marks the reply interrupted): a reply that happened to
    end by itself tests nothing."""
    stops: list[float] = []
    problems: list[str] = []
    for spec, line in zip(run.scenario.lines, run.log.caller.log, strict=False):
        if spec.barge_in_ms is None:
            continue
        onset, end = line.voiced_start, line.voiced_end
        if end <= onset:
            problems.append(f"{line.text!r}: the caller's line has no voice")
            continue
        if recording.voiced_seconds("agent", max(0.0, onset - 0.3), onset) == 0:
            problems.append(f"{line.text!r}: the agent was not speaking when the caller cut in")
            continue
        played = [t + TICK_S for t in run.log.agent_media if onset - TICK_S < t < end]
        reaction = max(0.0, max(played, default=onset) - onset)
        stops.append(reaction)
        if reaction <= limit_s and not _reply_cut(run, onset, end):
            problems.append(
                f"{line.text!r}: the agent's reply ended by itself, not cut short "
                "(no clear, no interrupted turn): cut in earlier to test barge-in"
            )
    if not stops and not problems:
        problems.append("no barge-in line was spoken")
    worst = max(stops) if stops else None
    slow = [s for s in stops if s > limit_s]
    if slow:
        problems.append(
            f"the agent kept talking {', '.join(f'{1000 * s:.0f}' for s in slow)} ms over "
            f"the caller (limit {1000 * limit_s:.0f})"
        )
    detail = "; ".join(problems) or (
        f"agent audio stopped {', '.join(f'{1000 * s:.0f}' for s in stops)} ms after the "
        f"caller started (limit {1000 * limit_s:.0f})"
    )
    return CheckResult("interrupt", not problems, worst, detail, stops)


def _reply_cut(run: ScenarioRun, onset: float, end: float) -> bool:
    if any(onset <= t <= end + 1.0 for t in run.log.times("clear_in")):
        return True
    turns = run.record["turns"] if run.record is not None else []
    return any(
        t["speaker"] == "agent" and t["interrupted"] and (t["started_at"] or 0.0) <= onset
        for t in turns
    )


def pause(run: ScenarioRun, recording: CallRecording) -> CheckResult:
    """The agent stayed silent through every line with a ``<pause>`` in it."""
    spoken_over = []
    for spec, line in zip(run.scenario.lines, run.log.caller.log, strict=False):
        if "<pause" in spec.say:
            spoken_over.append(
                recording.voiced_seconds("agent", line.voiced_start, line.voiced_end)
            )
    if not spoken_over:
        return CheckResult("pause", False, None, "the line with the pause was never spoken")
    worst = max(spoken_over)
    detail = (
        "the agent waited through the pause"
        if worst == 0
        else f"the agent spoke for {1000 * worst:.0f} ms while the caller was mid-thought"
    )
    return CheckResult("pause", worst == 0, worst, detail, spoken_over)


def offers_a_human(text: str) -> list[str]:
    """The words and phrases of :data:`HUMAN_OFFER` in ``text`` (whole words only)."""
    lowered = " ".join(words(text))
    return [p for p in HUMAN_OFFER if re.search(rf"\b{re.escape(p)}\b", lowered)]


def no_bluff(run: ScenarioRun) -> CheckResult:
    """A human was offered, no bluff word was said, and the handoff really fired. Only
    what the agent said after the caller first spoke counts (not the greeting).

    The handoff needs two witnesses: the agent's database holds a finished
    ``transfer_to_human``, and on the wire the agent ended the stream (a transfer takes the
    call off the media stream) right after a hand-off line; on SIP the transfer itself is
    on the wire, a REFER. A transfer recorded for a reply the caller cut off, after which
    the call went on, is not a handoff."""
    first = run.log.caller.log[0].started if run.log.caller.log else 0.0
    said = " ".join(reply.text for reply in run.heard if reply.end > first)
    offered = offers_a_human(said)
    last_said = run.heard[-1].text if run.heard else ""
    said_words = " ".join(words(said))
    bluffs = [
        w
        for w in run.scenario.expect.agent_never_says
        if re.search(rf"\b{re.escape(' '.join(words(w)))}\b", said_words)
    ]
    problems = []
    if not offered:
        problems.append("the agent never offered a human")
    if bluffs:
        problems.append(f"the agent said {', '.join(bluffs)}")
    if run.record is None:
        problems.append("handoff unverified: no access to the agent's database")
    elif not any(
        t["name"] == "transfer_to_human" and t["status"] == "done" for t in run.record["tool_calls"]
    ):
        problems.append("no transfer_to_human was made")
    elif run.log.ended_by != "agent" or not offers_a_human(last_said):
        problems.append(
            "a transfer_to_human is recorded, but the call did not end on a hand-off "
            f"(ended by {run.log.ended_by}; last heard: {last_said!r})"
        )
    elif run.log.transport == "sip" and not run.log.times("refer_in"):
        problems.append("a transfer_to_human is recorded, but no REFER came on the SIP line")
    detail = "; ".join(problems) or f"offered a human ({', '.join(offered)}) and handed off"
    refers = [e.detail.get("refer_to") for e in run.log.events if e.kind == "refer_in"]
    if not problems and refers:
        detail += f" (REFER to {refers[-1]})"
    return CheckResult("no_bluff", not problems, float(len(bluffs)), detail)


def tools(run: ScenarioRun, timezone: str) -> CheckResult:
    """The outcome and the CRM contact as the database holds them, and the booking as the
    calendar holds it (the database's appointments, or the events on the CalDAV server)."""
    expect = run.scenario.expect
    record = run.record
    if record is None:
        return CheckResult("tools", False, None, "unverified: no record in the agent's database")
    problems = []
    if record["outcome"] != expect.outcome:
        problems.append(f"outcome {record['outcome']!r}, expected {expect.outcome!r}")
    contact = record.get("contact") or {}
    if not contact:
        problems.append("no CRM contact for the call")
    elif contact.get("phone") != record.get("caller_number"):
        problems.append("the CRM contact is not the caller")
    if contact and expect.outcome != "answered" and contact.get("last_outcome") != expect.outcome:
        problems.append(f"CRM contact outcome {contact.get('last_outcome')!r}")
    name = expect.contact_name
    if contact and name is not None and (contact.get("name") or "").lower() != name.lower():
        problems.append(f"CRM contact name {contact.get('name')!r}, expected {name!r}")
    calendar = record["appointments"] if run.bookings is None else run.bookings
    booked = [a for a in calendar if a["status"] == "booked"]
    source = run.bookings_from
    if expect.outcome == "booked":
        if len(booked) != 1:
            problems.append(f"{len(booked)} appointments for this call in {source}, expected 1")
        else:
            problems += _booking_problems(booked[0], contact, expect.booking, timezone)
            if name is not None and "summary" in booked[0]:
                seen = f"{booked[0]['summary']} {booked[0].get('description', '')}".lower()
                if name.lower() not in seen:
                    problems.append(f"the calendar event does not name {name}")
    elif booked:
        problems.append(f"{len(booked)} appointments made in {source}, expected none")
    when = f" {booked[0]['service']} at {booked[0]['start']}" if booked else ""
    detail = "; ".join(problems) or f"{record['outcome']}{when}, read back from {source}"
    return CheckResult("tools", not problems, float(len(booked)), detail)


def _booking_problems(
    appointment: dict[str, Any], contact: dict[str, Any], facts: Any, timezone: str
) -> list[str]:
    problems = []
    if appointment.get("contact_id") != contact.get("id"):
        problems.append("the appointment is not the caller's")
    if facts is None:
        return problems
    start = datetime.fromisoformat(appointment["start"])
    if start.tzinfo is None:  # stored in UTC without an offset
        start = start.replace(tzinfo=ZoneInfo("UTC"))
    start = start.astimezone(ZoneInfo(timezone))
    if facts.weekday is not None and WEEKDAYS[start.weekday()] != facts.weekday.lower():
        problems.append(f"booked on a {WEEKDAYS[start.weekday()]}, expected {facts.weekday}")
    if facts.part_of_day is not None:
        first, last = PARTS_OF_DAY[facts.part_of_day]
        if not first <= start.hour < last:
            problems.append(f"booked at {start:%H:%M}, not in the {facts.part_of_day}")
    if facts.service is not None and facts.service.lower() != str(appointment["service"]).lower():
        problems.append(f"booked a {appointment['service']}, expected a {facts.service}")
    return problems


def noise(run: ScenarioRun, timezone: str) -> CheckResult:
    """The task completed in noise (the same facts the tools check reads back)."""
    spec = run.scenario.noise
    assert spec is not None  # the scenario validator guarantees it
    task = tools(run, timezone)
    detail = f"{spec.kind} noise at {spec.snr_db:g} dB SNR: " + (
        "task completed" if task.passed else task.detail
    )
    return CheckResult("noise", task.passed, spec.snr_db, detail)


def turn_gaps(run: ScenarioRun, recording: CallRecording) -> list[TurnGap]:
    """Caller's last voiced audio -> agent's first voiced audio, per answered line, each
    paired with the agent's own figure for the same turn. Lines spoken over the agent,
    key presses, hang-ups and lines the agent was already talking at the end of have no
    gap to measure."""
    gaps = []
    lines = run.log.caller.log
    agent_turns = _agent_turns(run)
    for i, (spec, line) in enumerate(zip(run.scenario.lines, lines, strict=False)):
        if spec.barge_in_ms is not None or line.voiced_end <= line.voiced_start or spec.hang_up:
            continue
        end = line.voiced_end
        if recording.voiced_seconds("agent", max(0.0, end - TALKING_AT_END_S), end) > 0:
            continue
        onset = recording.voice_onset("agent", end)
        next_line = lines[i + 1].started if i + 1 < len(lines) else float("inf")
        if onset is None or onset >= next_line:
            continue
        paired = min(agent_turns, key=lambda t: abs(t[0] - end), default=None)
        if paired is not None and abs(paired[0] - end) <= PAIRING_S:
            agent_turns.remove(paired)
            gaps.append(TurnGap(i, end, onset - end, paired[1], paired[0]))
        else:
            gaps.append(TurnGap(i, end, onset - end))
    return gaps


def _agent_turns(run: ScenarioRun) -> list[tuple[float, float]]:
    """(caller stopped, voice-to-voice) of each caller turn the agent recorded, in s."""
    if run.record is None:
        return []
    found = []
    for turn in run.record["turns"]:
        v2v = turn["timings"].get("voice_to_voice_ms")
        if turn["speaker"] == "caller" and v2v is not None and turn["ended_at"] is not None:
            found.append((float(turn["ended_at"]), v2v / 1000))
    return found


def latency(
    run: ScenarioRun, recording: CallRecording, limit_s: float = TURN_LIMIT_S
) -> CheckResult:
    """Median and max of the turn gaps on the wire; any turn over ``limit_s`` fails."""
    gaps = [g.wire for g in turn_gaps(run, recording)]
    if not gaps:
        return CheckResult("latency", False, None, "no answered turn to measure")
    slow = [g for g in gaps if g > limit_s]
    p90 = statistics.quantiles(gaps, n=10, method="inclusive")[-1] if len(gaps) > 1 else gaps[0]
    detail = (
        f"median {1000 * statistics.median(gaps):.0f} ms, p90 {1000 * p90:.0f} ms, "
        f"max {1000 * max(gaps):.0f} ms over {len(gaps)} turn(s)"
        + (f"; {len(slow)} over {limit_s:g} s" if slow else "")
    )
    return CheckResult("latency", not slow, statistics.median(gaps), detail, gaps)


def run_checks(run: ScenarioRun, timezone: str, limits: Limits | None = None) -> list[CheckResult]:
    """The scenario's own checks, in the order of the six."""
    limits = limits or Limits()
    recording = CallRecording.load(run.recording)
    judges = {
        "interrupt": lambda: interrupt(run, recording, limits.interrupt_s),
        "pause": lambda: pause(run, recording),
        "no_bluff": lambda: no_bluff(run),
        "noise": lambda: noise(run, timezone),
        "tools": lambda: tools(run, timezone),
        "latency": lambda: latency(run, recording, limits.turn_s),
    }
    return [judges[name]() for name in judges if name in run.scenario.checks]
