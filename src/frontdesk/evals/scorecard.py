"""A battery's results: per scenario and per check, the printed scorecard and the JSON."""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich import box
from rich.console import Console
from rich.table import Table

from frontdesk.evals.battery import HeardReply, ScenarioRun
from frontdesk.evals.checks import CheckResult, Limits, TurnGap, run_checks, turn_gaps
from frontdesk.evals.recording import CallRecording
from frontdesk.evals.scenario import CHECKS


@dataclass(slots=True)
class ScenarioScore:
    """One scenario's call and its checks."""

    name: str
    persona: str
    call_sid: str
    outcome: str | None
    checks: list[CheckResult]
    gaps: list[TurnGap]
    """Turn gaps measured on the caller's recording, with the agent's own figure for the
    same turn."""
    heard: list[HeardReply]
    caller_lines: list[tuple[float, float, str]]
    """(start of voice, end of voice, words) of each caller line, on the call's clock."""
    recording: Path
    notes: list[str] = field(default_factory=list)
    agent_transcript: list[tuple[float, float, str]] = field(default_factory=list)
    """(start, end, text) of each caller turn as the agent transcribed it (its database)."""

    @property
    def passed(self) -> bool:
        """Every check of this scenario passed."""
        return all(c.passed for c in self.checks)


@dataclass(slots=True)
class Scorecard:
    """A whole battery run."""

    target: str
    scenarios: list[ScenarioScore]
    limits: Limits = field(default_factory=Limits)

    @property
    def passed(self) -> bool:
        """Every check of every scenario passed."""
        return all(s.passed for s in self.scenarios)

    def results(self, check: str) -> list[CheckResult]:
        """All results of one check, across scenarios."""
        return [c for s in self.scenarios for c in s.checks if c.check == check]

    def gaps(self) -> list[TurnGap]:
        """Every measured turn of the run."""
        return [g for s in self.scenarios for g in s.gaps]

    def latency(self) -> dict[str, float | int | None]:
        """Battery-wide turn gaps on the wire and in the agent's timings (ms), and the
        difference between the two over the turns both measured."""
        gaps = self.gaps()
        paired = [g for g in gaps if g.agent is not None]
        diffs = [g.wire - g.agent for g in paired if g.agent is not None]
        return {
            "turns": len(gaps),
            **_figures("wire", [g.wire for g in gaps]),
            "turns_over_limit": sum(g.wire > self.limits.turn_s for g in gaps),
            "paired_turns": len(paired),
            **_figures("paired_wire", [g.wire for g in paired]),
            **_figures("agent", [g.agent for g in paired if g.agent is not None]),
            "wire_minus_agent_mean_ms": _ms(statistics.mean(diffs)) if diffs else None,
            "wire_minus_agent_mean_abs_ms": (
                _ms(statistics.mean(abs(d) for d in diffs)) if diffs else None
            ),
            "agent_stop_error_mean_ms": _mean_ms([g.stop_error for g in paired]),
            "delivery_mean_ms": _mean_ms([g.delivery for g in paired]),
        }

    def as_json(self) -> dict[str, Any]:
        """JSON-ready form of the whole run."""
        return {
            "target": self.target,
            "passed": self.passed,
            "limits_ms": {
                "interrupt": _ms(self.limits.interrupt_s),
                "turn": _ms(self.limits.turn_s),
            },
            "checks": {
                name: {
                    "scenarios": len(results),
                    "passed": sum(r.passed for r in results),
                }
                for name in CHECKS
                if (results := self.results(name))
            },
            "latency": self.latency(),
            "scenarios": [
                {
                    "name": s.name,
                    "persona": s.persona,
                    "call_sid": s.call_sid,
                    "outcome": s.outcome,
                    "passed": s.passed,
                    "checks": [c.as_json() for c in s.checks],
                    "turn_gaps": [
                        {
                            "line": g.line,
                            "caller_stopped_s": round(g.caller_stopped, 3),
                            "wire_ms": _ms(g.wire),
                            "agent_ms": _ms(g.agent) if g.agent is not None else None,
                            "agent_stop_error_ms": (
                                _ms(g.stop_error) if g.stop_error is not None else None
                            ),
                            "delivery_ms": _ms(g.delivery) if g.delivery is not None else None,
                        }
                        for g in s.gaps
                    ],
                    "agent_transcript": [
                        {"start": round(a, 3), "end": round(b, 3), "text": text}
                        for a, b, text in s.agent_transcript
                    ],
                    "heard": [
                        {"start": round(h.start, 3), "end": round(h.end, 3), "text": h.text}
                        for h in s.heard
                    ],
                    "recording": str(s.recording),
                    "notes": s.notes,
                }
                for s in self.scenarios
            ],
        }

    def write_json(self, path: str | Path) -> None:
        """Write :meth:`as_json` to ``path``."""
        text = json.dumps(self.as_json(), indent=2, default=_plain_number)
        Path(path).write_text(text, encoding="utf-8")


def _plain_number(value: Any) -> Any:
    """numpy scalars (from the recording's arithmetic) as plain numbers."""
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _ms(seconds: float) -> float:
    return round(1000 * float(seconds), 1)


def _mean_ms(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return _ms(statistics.mean(present)) if present else None


def _figures(prefix: str, values: list[float]) -> dict[str, float | None]:
    data = np.asarray(values) * 1000
    if not len(data):
        return {f"{prefix}_median_ms": None, f"{prefix}_p90_ms": None, f"{prefix}_max_ms": None}
    return {
        f"{prefix}_median_ms": round(float(np.median(data)), 1),
        f"{prefix}_p90_ms": round(float(np.percentile(data, 90)), 1),
        f"{prefix}_max_ms": round(float(data.max()), 1),
    }


def score(run: ScenarioRun, timezone: str, limits: Limits | None = None) -> ScenarioScore:
    """Judge one scenario call."""
    recording = CallRecording.load(run.recording)
    return ScenarioScore(
        name=run.scenario.name,
        persona=run.scenario.persona,
        call_sid=run.log.call_sid,
        outcome=run.record["outcome"] if run.record else None,
        checks=run_checks(run, timezone, limits),
        gaps=turn_gaps(run, recording),
        heard=run.heard,
        caller_lines=[
            (line.voiced_start, line.voiced_end, line.text) for line in run.log.caller.log
        ],
        recording=run.recording,
        notes=run.notes,
        agent_transcript=[
            (float(t["started_at"]), float(t["ended_at"]), t["text"])
            for t in (run.record or {}).get("turns", [])
            if t["speaker"] == "caller"
            and t["started_at"] is not None
            and t["ended_at"] is not None
        ],
    )


def _value(result: CheckResult) -> str:
    if result.value is None:
        return "-"
    if result.check in ("interrupt", "latency", "pause"):
        return f"{1000 * result.value:.0f} ms"
    if result.check == "noise":
        return f"{result.value:g} dB"
    return f"{result.value:g}"


def print_scorecard(card: Scorecard, console: Console) -> None:
    """The scorecard as a table: one row per scenario, one column per check."""
    table = Table(title=f"frontdesk evaluation: {card.target}", box=box.SIMPLE_HEAD)
    table.add_column("scenario", no_wrap=True)
    table.add_column("outcome", no_wrap=True)
    for name in CHECKS:
        table.add_column(name, justify="right", no_wrap=True)
    for s in card.scenarios:
        cells = []
        for name in CHECKS:
            result = next((c for c in s.checks if c.check == name), None)
            if result is None:
                cells.append("")
            else:
                mark = "[green]pass[/green]" if result.passed else "[red]FAIL[/red]"
                cells.append(f"{mark} {_value(result)}")
        table.add_row(s.name, s.outcome or "?", *cells)
    if console.is_terminal:
        console.print(table)
    else:
        # A pipe or a CI log has no width of its own: don't squeeze the table into 80 columns.
        Console(file=console.file, width=max(console.width, 140), no_color=True).print(table)
    for s in card.scenarios:
        for c in s.checks:
            if not c.passed:
                console.print(f"[red]FAIL[/red] {s.name} / {c.check}: {c.detail}", soft_wrap=True)
    lat = card.latency()
    console.print(
        f"voice-to-voice on the wire: median {lat['wire_median_ms']} ms, p90 "
        f"{lat['wire_p90_ms']} ms, max {lat['wire_max_ms']} ms, "
        f"{lat['turns_over_limit']} turn(s) over {card.limits.turn_s:g} s"
    )
    console.print(
        f"the same {lat['paired_turns']} turns in the agent's own timings: median "
        f"{lat['agent_median_ms']} ms, p90 {lat['agent_p90_ms']} ms (wire: median "
        f"{lat['paired_wire_median_ms']} ms); wire minus agent: mean "
        f"{lat['wire_minus_agent_mean_ms']} ms, mean absolute "
        f"{lat['wire_minus_agent_mean_abs_ms']} ms = the agent's edge for the caller's last "
        f"word minus the true one (mean {lat['agent_stop_error_mean_ms']} ms) + its first "
        f"audio from transport to ear (mean {lat['delivery_mean_ms']} ms)"
    )
    verdict = "[green]PASSED[/green]" if card.passed else "[red]FAILED[/red]"
    console.print(
        f"{verdict}: {sum(s.passed for s in card.scenarios)}/{len(card.scenarios)} "
        "scenarios passed every check"
    )
