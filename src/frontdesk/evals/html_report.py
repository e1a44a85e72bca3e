"""The battery's self-contained HTML report: the scorecard, a per-turn latency chart (inline
SVG) and, per call, an audio player with the call's recording embedded (8 kHz stereo WAV:
caller left, agent right) and what each side said."""

from __future__ import annotations

import base64
import html
from pathlib import Path

import numpy as np

from frontdesk.audio.resample import resample
from frontdesk.audio.wav import encode_wav
from frontdesk.evals.recording import CallRecording
from frontdesk.evals.scenario import CHECKS
from frontdesk.evals.scorecard import ScenarioScore, Scorecard

PLAYER_RATE = 8000
"""Recordings are embedded at the phone line's own rate: 32 kB a second in stereo."""
_STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px}
th{background:#f4f4f4}.pass{color:#17702f}.fail{color:#b00020;font-weight:600}
.call{border-top:1px solid #ddd;margin-top:2em;padding-top:1em}.who{color:#666;width:4em}
.detail{color:#555;font-size:12px}svg text{font-size:10px;fill:#333}
"""


def _wav_data_uri(path: Path) -> str:
    recording = CallRecording.load(path)
    stereo = np.stack(
        [
            resample(recording.caller, recording.sample_rate, PLAYER_RATE),
            resample(recording.agent, recording.sample_rate, PLAYER_RATE),
        ],
        axis=1,
    )
    wav = encode_wav(stereo.astype(np.int16), PLAYER_RATE)
    return "data:audio/wav;base64," + base64.b64encode(wav).decode("ascii")


def latency_chart(card: Scorecard, width: int = 1000, height: int = 220) -> str:
    """Every measured turn gap as a bar (wire) with the agent's own figure as a tick; a
    dashed line at the 1 s limit."""
    turns = [(s.name, g.line, g.wire, g.agent) for s in card.scenarios for g in s.gaps]
    if not turns:
        return "<p>No turn gaps were measured.</p>"
    limit_s = card.limits.turn_s
    top = max(limit_s * 1.2, max(w for _, _, w, _ in turns) * 1.1)
    left, bottom = 40, 20
    bar = (width - left) / len(turns)

    def y(seconds: float) -> float:
        return height - bottom - (height - bottom - 10) * seconds / top

    parts = [f'<svg width="{width}" height="{height}" role="img" aria-label="turn latency">']
    for ms in range(0, int(top * 1000) + 1, 200):
        parts.append(
            f'<text x="2" y="{y(ms / 1000) + 3:.1f}">{ms}</text>'
            f'<line x1="{left}" x2="{width}" y1="{y(ms / 1000):.1f}" y2="{y(ms / 1000):.1f}" '
            'stroke="#eee"/>'
        )
    for k, (name, i, wire, agent) in enumerate(turns):
        x = left + k * bar
        colour = "#b00020" if wire > limit_s else "#3b6fb6"
        title = f"{name} line {i + 1}: wire {1000 * wire:.0f} ms" + (
            f", agent {1000 * agent:.0f} ms" if agent is not None else ""
        )
        parts.append(
            f'<rect x="{x + 1:.1f}" y="{y(wire):.1f}" width="{max(bar - 2, 1):.1f}" '
            f'height="{y(0) - y(wire):.1f}" fill="{colour}"><title>{html.escape(title)}</title>'
            "</rect>"
        )
        if agent is not None:
            parts.append(
                f'<line x1="{x:.1f}" x2="{x + bar:.1f}" y1="{y(agent):.1f}" y2="{y(agent):.1f}" '
                'stroke="#f0a030" stroke-width="2"/>'
            )
    limit = y(limit_s)
    parts.append(
        f'<line x1="{left}" x2="{width}" y1="{limit:.1f}" y2="{limit:.1f}" stroke="#b00020" '
        'stroke-dasharray="4 3"/></svg>'
    )
    return "".join(parts)


def _mark(passed: bool) -> str:
    return '<span class="pass">pass</span>' if passed else '<span class="fail">FAIL</span>'


def _agent_heard(s: ScenarioScore, start: float, end: float) -> str:
    """What the agent transcribed of the caller line voiced from ``start`` to ``end``."""
    texts = [text for a, b, text in s.agent_transcript if a < end + 0.3 and b > start - 0.3]
    return " / ".join(texts)


def _call_section(s: ScenarioScore) -> str:
    said = sorted(
        [
            (start, "caller", text, _agent_heard(s, start, end))
            for start, end, text in s.caller_lines
        ]
        + [(h.start, "agent", h.text, "") for h in s.heard]
    )
    rows = "".join(
        f'<tr><td class="who">{who}</td><td>{at:.1f} s</td><td>{html.escape(text)}</td>'
        f'<td class="detail">{html.escape(heard)}</td></tr>'
        for at, who, text, heard in said
    )
    checks = "".join(
        f"<li>{c.check}: {_mark(c.passed)} <span class='detail'>{html.escape(c.detail)}</span></li>"
        for c in s.checks
    )
    audio = (
        f'<audio controls preload="none" src="{_wav_data_uri(s.recording)}"></audio>'
        if s.recording.exists()
        else "<p>(recording missing)</p>"
    )
    return (
        f'<div class="call" id="{html.escape(s.name)}"><h3>{html.escape(s.name)} '
        f"{_mark(s.passed)}</h3><p>{html.escape(s.persona)} Outcome: "
        f"<b>{html.escape(s.outcome or '?')}</b>. Call SID {html.escape(s.call_sid)}.</p>"
        f"{audio}<ul>{checks}</ul><table><tr><th></th><th>at</th><th>said (the script; the "
        f"agent's words as the caller's recognizer heard them)</th><th>what the agent "
        f"transcribed</th></tr>{rows}</table></div>"
    )


def write_html(card: Scorecard, path: str | Path) -> None:
    """Write the report to ``path`` (one file, nothing fetched from anywhere)."""
    header = "".join(f"<th>{name}</th>" for name in CHECKS)
    rows = []
    for s in card.scenarios:
        cells = []
        for name in CHECKS:
            result = next((c for c in s.checks if c.check == name), None)
            cells.append(f"<td>{_mark(result.passed) if result else ''}</td>")
        rows.append(
            f'<tr><td><a href="#{html.escape(s.name)}">{html.escape(s.name)}</a></td>'
            f"<td>{html.escape(s.outcome or '?')}</td>{''.join(cells)}</tr>"
        )
    lat = card.latency()
    verdict = _mark(card.passed)
    document = (
        "<!doctype html><html><head><meta charset='utf-8'><title>frontdesk evaluation</title>"
        f"<style>{_STYLE}</style></head><body><h1>frontdesk evaluation {verdict}</h1>"
        f"<p>Target: {html.escape(card.target)}</p>"
        f"<table><tr><th>scenario</th><th>outcome</th>{header}</tr>{''.join(rows)}</table>"
        "<h2>Voice-to-voice latency per turn</h2>"
        f"<p>On the wire (bars): median {lat['wire_median_ms']} ms, p90 {lat['wire_p90_ms']} "
        f"ms, max {lat['wire_max_ms']} ms. The agent's own timings (orange ticks): median "
        f"{lat['agent_median_ms']} ms. Dashed: the {card.limits.turn_s:g} s limit.</p>"
        f"{latency_chart(card)}<h2>Calls</h2>"
        f"{''.join(_call_section(s) for s in card.scenarios)}</body></html>"
    )
    Path(path).write_text(document, encoding="utf-8")
