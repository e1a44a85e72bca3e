"""The six production checks, each a number and a pass/fail, judged from the caller's side
of the wire (the recording and the socket log) and from the business's own backends.

1. interrupt: caller speech onset -> the agent's audio stopping (``clear``, or the end of
   its voice on the caller's recording).
2. pause: agent voice heard while the caller was still mid-line (a pause inside a line).
3. no_bluff: the agent offered a human, said none of the bluff words, and the handoff fired
   (a ``transfer_to_human`` tool call in the agent's record).
4. noise: the scenario's task completed although the caller spoke in noise.
5. tools: outcome and booking read back from the database, not from the agent's word.
6. latency: caller's last word -> agent's first sound, per turn; a turn over 1 s fails.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from frontdesk.evals.battery import ScenarioRun, words
from frontdesk.evals.recording import CallRecording
from frontdesk.evals.scenario import PARTS_OF_DAY, WEEKDAYS, CheckName

INTERRUPT_LIMIT_S = 0.3
"""The agent must be silent this soon after the caller starts talking over it."""
TURN_LIMIT_S = 1.0
"""A turn gap over this feels laggy, whatever the voice (MISSION.md)."""
HUMAN_OFFER = frozenset(
    {
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
    }
)


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


def interrupt(run: ScenarioRun, recording: CallRecording) -> CheckResult:
    """Every barge-in line stopped the agent within :data:`INTERRUPT_LIMIT_S`."""
    stops: list[float] = []
    problems: list[str] = []
    for spec, line in zip(run.scenario.lines, run.log.caller.log, strict=False):
        if spec.barge_in_ms is None:
            continue
        onset = run.log.wire_onset(line.started)
        if onset is None:
            problems.append(f"{line.text!r}: the caller's voice never reached the line")
            continue
        if recording.voiced_seconds("agent", max(0.0, onset - 0.3), onset) == 0:
            problems.append(f"{line.text!r}: the agent was not speaking when the caller cut in")
            continue
        clears = [t for t in run.log.times("clear_in") if t >= onset]
        silent = recording.voice_stop("agent", onset, gap_s=0.3)
        candidates = [t for t in (clears[0] if clears else None, silent) if t is not None]
        stops.append((min(candidates) if candidates else float("inf")) - onset)
    if not stops and not problems:
        problems.append("no barge-in line was spoken")
    worst = max(stops) if stops else None
    passed = not problems and worst is not None and worst <= INTERRUPT_LIMIT_S
    detail = "; ".join(problems) or (
        f"agent audio stopped {', '.join(f'{1000 * s:.0f}' for s in stops)} ms after the "
        f"caller started (limit {1000 * INTERRUPT_LIMIT_S:.0f})"
    )
    return CheckResult("interrupt", passed, worst, detail, stops)


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


def no_bluff(run: ScenarioRun) -> CheckResult:
    """A human was offered, no bluff word was said, and the handoff really fired."""
    said = " ".join(reply.text for reply in run.heard).lower()
    offered = sorted(w for w in HUMAN_OFFER if w in said)
    bluffs = [w for w in run.scenario.expect.agent_never_says if w.lower() in words(said)]
    handoff = None
    if run.record is not None:
        handoff = any(
            t["name"] == "transfer_to_human" and t["status"] == "done"
            for t in run.record["tool_calls"]
        )
    problems = []
    if not offered:
        problems.append("the agent never offered a human")
    if bluffs:
        problems.append(f"the agent said {', '.join(bluffs)}")
    if handoff is None:
        problems.append("handoff unverified: no access to the agent's database")
    elif not handoff:
        problems.append("no transfer_to_human was made")
    detail = "; ".join(problems) or f"offered a human ({', '.join(offered)}) and handed off"
    return CheckResult("no_bluff", not problems, float(len(bluffs)), detail)


def tools(run: ScenarioRun, timezone: str) -> CheckResult:
    """The outcome, the contact and the booking as the database holds them."""
    expect = run.scenario.expect
    record = run.record
    if record is None:
        return CheckResult("tools", False, None, "unverified: no record in the agent's database")
    problems = []
    if record["outcome"] != expect.outcome:
        problems.append(f"outcome {record['outcome']!r}, expected {expect.outcome!r}")
    contact = record.get("contact") or {}
    if expect.outcome != "answered" and contact.get("last_outcome") != expect.outcome:
        problems.append(f"CRM contact outcome {contact.get('last_outcome')!r}")
    booked = [a for a in record["appointments"] if a["status"] == "booked"]
    if expect.outcome == "booked":
        if len(booked) != 1:
            problems.append(f"{len(booked)} appointments for this call, expected 1")
        elif expect.booking is not None:
            start = datetime.fromisoformat(booked[0]["start"]).astimezone(ZoneInfo(timezone))
            problems += _booking_problems(start, expect.booking.weekday, expect.booking.part_of_day)
    elif booked:
        problems.append(f"{len(booked)} appointments made, expected none")
    when = f" at {booked[0]['start']}" if booked else ""
    detail = "; ".join(problems) or f"{record['outcome']}{when}, read back from the database"
    return CheckResult("tools", not problems, float(len(booked)), detail)


def _booking_problems(start: datetime, weekday: str | None, part: str | None) -> list[str]:
    problems = []
    if weekday is not None and WEEKDAYS[start.weekday()] != weekday.lower():
        problems.append(f"booked on a {WEEKDAYS[start.weekday()]}, expected {weekday}")
    if part is not None:
        first, last = PARTS_OF_DAY[part]
        if not first <= start.hour < last:
            problems.append(f"booked at {start:%H:%M}, not in the {part}")
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


def turn_gaps(run: ScenarioRun, recording: CallRecording) -> list[float]:
    """Caller's last voiced audio -> agent's first voiced audio, per answered line (lines
    spoken over the agent, key presses and hang-ups have no gap to measure)."""
    gaps = []
    lines = run.log.caller.log
    for i, (spec, line) in enumerate(zip(run.scenario.lines, lines, strict=False)):
        if spec.barge_in_ms is not None or line.voiced_end <= line.voiced_start or spec.hang_up:
            continue
        onset = recording.voice_onset("agent", line.voiced_end)
        next_line = lines[i + 1].started if i + 1 < len(lines) else float("inf")
        if onset is not None and onset < next_line:
            gaps.append(onset - line.voiced_end)
    return gaps


def agent_turn_gaps(run: ScenarioRun) -> list[float]:
    """The voice-to-voice the agent itself recorded for each caller turn."""
    if run.record is None:
        return []
    values = [
        t["timings"].get("voice_to_voice_ms")
        for t in run.record["turns"]
        if t["speaker"] == "caller"
    ]
    return [v / 1000 for v in values if v is not None]


def latency(run: ScenarioRun, recording: CallRecording) -> CheckResult:
    """Median, p90 and max of the turn gaps; any turn over :data:`TURN_LIMIT_S` fails."""
    gaps = turn_gaps(run, recording)
    if not gaps:
        return CheckResult("latency", False, None, "no answered turn to measure")
    slow = [g for g in gaps if g > TURN_LIMIT_S]
    detail = f"median {1000 * statistics.median(gaps):.0f} ms, max {1000 * max(gaps):.0f} ms" + (
        f"; {len(slow)} turn(s) over {TURN_LIMIT_S:g} s" if slow else ""
    )
    return CheckResult("latency", not slow, statistics.median(gaps), detail, gaps)


def run_checks(run: ScenarioRun, timezone: str) -> list[CheckResult]:
    """The scenario's own checks, in the order of the six."""
    recording = CallRecording.load(run.recording)
    judges = {
        "interrupt": lambda: interrupt(run, recording),
        "pause": lambda: pause(run, recording),
        "no_bluff": lambda: no_bluff(run),
        "noise": lambda: noise(run, timezone),
        "tools": lambda: tools(run, timezone),
        "latency": lambda: latency(run, recording),
    }
    return [judges[name]() for name in judges if name in run.scenario.checks]
