"""A battery's results: per scenario and per check, the printed scorecard and the JSON."""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from frontdesk.evals.battery import HeardReply, ScenarioRun
from frontdesk.evals.checks import (
    TURN_LIMIT_S,
    CheckResult,
    agent_turn_gaps,
    run_checks,
    turn_gaps,
)
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
    wire_gaps: list[float]
    """Turn gaps measured on the caller's recording (s)."""
    agent_gaps: list[float]
    """The same turns as the agent's own timings record them (s)."""
    heard: list[HeardReply]
    caller_lines: list[tuple[float, float, str]]
    """(start of voice, end of voice, words) of each caller line, on the call's clock."""
    recording: Path
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """Every check of this scenario passed."""
        return all(c.passed for c in self.checks)


@dataclass(slots=True)
class Scorecard:
    """A whole battery run."""

    target: str
    scenarios: list[ScenarioScore]

    @property
    def passed(self) -> bool:
        """Every check of every scenario passed."""
        return all(s.passed for s in self.scenarios)

    def results(self, check: str) -> list[CheckResult]:
        """All results of one check, across scenarios."""
        return [c for s in self.scenarios for c in s.checks if c.check == check]

    def latency(self) -> dict[str, float | int | None]:
        """Battery-wide turn gaps on the wire and in the agent's timings (ms), and the mean
        difference between the two over the turns both measured."""
        wire = [g for s in self.scenarios for g in s.wire_gaps]
        agent = [g for s in self.scenarios for g in s.agent_gaps]
        paired = [
            w - a
            for s in self.scenarios
            if len(s.wire_gaps) == len(s.agent_gaps)
            for w, a in zip(s.wire_gaps, s.agent_gaps, strict=True)
        ]
        return {
            **_figures("wire", wire),
            **_figures("agent", agent),
            "turns_over_1s": sum(g > TURN_LIMIT_S for g in wire),
            "wire_minus_agent_mean_ms": round(1000 * statistics.mean(paired), 1)
            if paired
            else None,
            "paired_turns": len(paired),
        }

    def as_json(self) -> dict[str, Any]:
        """JSON-ready form of the whole run."""
        return {
            "target": self.target,
            "passed": self.passed,
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
                    "wire_gaps_ms": [round(1000 * g, 1) for g in s.wire_gaps],
                    "agent_gaps_ms": [round(1000 * g, 1) for g in s.agent_gaps],
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


def _figures(prefix: str, values: list[float]) -> dict[str, float | None]:
    data = np.asarray(values) * 1000
    if not len(data):
        return {f"{prefix}_median_ms": None, f"{prefix}_p90_ms": None, f"{prefix}_max_ms": None}
    return {
        f"{prefix}_median_ms": round(float(np.median(data)), 1),
        f"{prefix}_p90_ms": round(float(np.percentile(data, 90)), 1),
        f"{prefix}_max_ms": round(float(data.max()), 1),
    }


def score(run: ScenarioRun, timezone: str) -> ScenarioScore:
    """Judge one scenario call."""
    recording = CallRecording.load(run.recording)
    return ScenarioScore(
        name=run.scenario.name,
        persona=run.scenario.persona,
        call_sid=run.log.call_sid,
        outcome=run.record["outcome"] if run.record else None,
        checks=run_checks(run, timezone),
        wire_gaps=turn_gaps(run, recording),
        agent_gaps=agent_turn_gaps(run),
        heard=run.heard,
        caller_lines=[
            (line.voiced_start, line.voiced_end, line.text) for line in run.log.caller.log
        ],
        recording=run.recording,
        notes=run.notes,
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
    table = Table(title=f"frontdesk evaluation: {card.target}", show_lines=False)
    table.add_column("scenario")
    table.add_column("outcome")
    for name in CHECKS:
        table.add_column(name, justify="right")
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
    console.print(table)
    for s in card.scenarios:
        for c in s.checks:
            if not c.passed:
                console.print(f"[red]FAIL[/red] {s.name} / {c.check}: {c.detail}")
    lat = card.latency()
    console.print(
        f"voice-to-voice on the wire: median {lat['wire_median_ms']} ms, p90 "
        f"{lat['wire_p90_ms']} ms, max {lat['wire_max_ms']} ms, "
        f"{lat['turns_over_1s']} turn(s) over 1 s"
    )
    console.print(
        f"agent's own timings: median {lat['agent_median_ms']} ms, p90 {lat['agent_p90_ms']} "
        f"ms; wire minus agent, mean over {lat['paired_turns']} turns: "
        f"{lat['wire_minus_agent_mean_ms']} ms"
    )
    verdict = "[green]PASSED[/green]" if card.passed else "[red]FAILED[/red]"
    console.print(
        f"{verdict}: {sum(s.passed for s in card.scenarios)}/{len(card.scenarios)} "
        "scenarios passed every check"
    )
