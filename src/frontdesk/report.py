"""Printing calls for people: the live transcript and the per-turn latency waterfall."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.table import Table

from frontdesk.call.contracts import CallResult
from frontdesk.call.timings import POINTS


class LiveTranscript:
    """A Call observer that prints the conversation as it happens."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.started = time.monotonic()

    def _stamp(self) -> str:
        return f"[dim]{time.monotonic() - self.started:6.1f}s[/dim]"

    def __call__(self, kind: str, **data: Any) -> None:
        """Print one call event."""
        out = self.console.print
        if kind == "caller":
            said = data["text"] or f"[keys {data.get('dtmf', '')}]"
            out(f"{self._stamp()} [cyan]caller[/cyan]  {said}")
        elif kind == "agent":
            if data.get("interrupted"):
                out(f"{self._stamp()} [green]agent[/green]   {data['text']} [yellow]— (cut off)")
            else:
                out(f"{self._stamp()} [green]agent[/green]   {data['text']}")
        elif kind == "barge_in":
            out(
                f"{self._stamp()} [yellow]barge-in[/yellow]: agent audio stopped "
                f"{data['reaction_ms']} ms after the caller started talking"
            )
        elif kind == "backchannel":
            out(f"{self._stamp()} [dim]backchannel: the agent carries on[/dim]")
        elif kind == "tool":
            status = "[green]ok[/green]" if data["ok"] else f"[red]{data['error']}[/red]"
            out(
                f"{self._stamp()} [magenta]tool[/magenta]    {data['name']}({_args(data)}) {status}"
            )
        elif kind == "ended":
            out(f"{self._stamp()} [bold]call ended[/bold]: {data['outcome']}")


def _args(data: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in data.get("arguments", {}).items())


def waterfall_table(record: dict[str, Any]) -> Table:
    """One row per caller turn: each measurement point in ms after the caller stopped."""
    table = Table(title="Per-turn latency waterfall (ms after the caller's last voiced audio)")
    table.add_column("turn", justify="right")
    table.add_column("caller said", max_width=34)
    for point in POINTS[1:]:
        table.add_column(point.replace("_", " "), justify="right")
    table.add_column("voice-to-voice", justify="right", style="bold")
    for turn in record["turns"]:
        timings = turn.get("timings") or {}
        if turn["speaker"] != "caller" or not timings:
            continue
        cells = [_ms(timings.get(f"{p}_ms")) for p in POINTS[1:]]
        table.add_row(
            str(turn["index"]), turn["text"], *cells, _ms(timings.get("voice_to_voice_ms"))
        )
    return table


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:.0f}"


def print_call_summary(
    console: Console, record: dict[str, Any], result: CallResult, database_url: str
) -> None:
    """The waterfall, the barge-in reactions, and where the booking, contact and WAV are."""
    console.print()
    console.print(waterfall_table(record))
    v2v = sorted(t.voice_to_voice for t in result.turn_timings if t.voice_to_voice is not None)
    if v2v:
        console.print(
            f"voice-to-voice: median {v2v[len(v2v) // 2] * 1000:.0f} ms, "
            f"max {v2v[-1] * 1000:.0f} ms over {len(v2v)} turns"
        )
    for reaction in result.barge_ins:
        console.print(f"barge-in: agent audio stopped {reaction * 1000:.0f} ms after onset")
    console.print(f"outcome: [bold]{record['outcome']}[/bold]")
    for appointment in record.get("appointments", []):
        console.print(
            f"booking: appointment #{appointment['id']} at {appointment['start']} "
            f"({appointment.get('service') or 'visit'}) in {database_url}"
        )
    if record.get("contact"):
        contact = record["contact"]
        console.print(
            f"CRM contact: {contact.get('name')} {contact.get('phone')} "
            f"(last outcome: {contact.get('last_outcome')}) in {database_url}"
        )
    console.print(f"recording: {record.get('recording_path')} (caller left, agent right)")
