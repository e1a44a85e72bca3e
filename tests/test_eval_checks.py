"""The six checks, the scorecard and the HTML report on synthetic calls: recordings with
voice exactly where a test puts it, so each check's number and verdict can be predicted.
(tests/test_eval_battery.py runs them on real calls.)"""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from rich.console import Console

from frontdesk.audio.wav import decode_wav, write_wav
from frontdesk.evals.backends import on_caller_clock
from frontdesk.evals.battery import HeardReply, ScenarioRun
from frontdesk.evals.checks import (
    interrupt,
    latency,
    no_bluff,
    noise,
    offers_a_human,
    pause,
    tools,
    turn_gaps,
)
from frontdesk.evals.html_report import write_html
from frontdesk.evals.recording import CallRecording
from frontdesk.evals.scenario import Scenario
from frontdesk.evals.scorecard import Scorecard, print_scorecard, score
from frontdesk.evals.scripted_caller import LineLog, ScriptedCaller
from frontdesk.evals.sip_caller import SipCallLog, agent_clock_start
from frontdesk.evals.twilio_caller import TwilioCallLog, WireEvent

RATE = 16000
TZ = "America/New_York"
CALLER = "+15557000001"


def voice(total_s: float, spans: list[tuple[float, float]]) -> np.ndarray:
    """A track with a loud 220 Hz tone over each (start, end) span, silence elsewhere."""
    pcm = np.zeros(int(total_s * RATE), np.int16)
    for a, b in spans:
        i, j = int(a * RATE), int(b * RATE)
        pcm[i:j] = (6000 * np.sin(2 * np.pi * 220 * np.arange(j - i) / RATE)).astype(np.int16)
    return pcm


def make_run(
    tmp_path: Path,
    scenario: dict[str, Any],
    caller: list[tuple[float, float, float]],
    agent: list[tuple[float, float]],
    *,
    events: list[WireEvent] | None = None,
    record: dict[str, Any] | None = None,
    heard: list[HeardReply] | None = None,
    total_s: float = 12.0,
    ended_by: str = "caller",
    media: list[tuple[float, float]] | None = None,
) -> ScenarioRun:
    """A finished call: ``caller`` is (started, voiced_start, voiced_end) per line, the
    caller's voice fills each voiced span, the agent's fills each of ``agent``; the agent's
    media played on the line over ``media`` (default: exactly its voice)."""
    spec = Scenario(**{"persona": "test", "checks": ["latency"], **scenario})
    path = tmp_path / f"{spec.name}.wav"
    caller_track = voice(total_s, [(a, b) for _, a, b in caller])
    write_wav(path, np.stack([caller_track, voice(total_s, agent)], axis=1), RATE)
    scripted = ScriptedCaller(spec.caller_lines())
    scripted.log = [
        LineLog(line.say, started, end, start)
        for line, (started, start, end) in zip(spec.lines, caller, strict=False)
    ]
    ticks = [
        round(i * 0.02, 2)
        for a, b in (agent if media is None else media)
        for i in range(round(a / 0.02), round(b / 0.02))
    ]
    log = TwilioCallLog("MZ1", "CA1", scripted, events or [], path, ended_by, [], ticks)
    return ScenarioRun(spec, log, path, heard or [], record)


def a_record(**fields: Any) -> dict[str, Any]:
    """The agent's record of a call, as CallStore.call_record returns it."""
    record: dict[str, Any] = {
        "outcome": "answered",
        "caller_number": CALLER,
        "contact": {"id": 7, "phone": CALLER, "name": None, "last_outcome": None},
        "turns": [],
        "tool_calls": [],
        "appointments": [],
    }
    record.update(fields)
    return record


BARGE_IN = {
    "name": "barge",
    "checks": ["interrupt"],
    "lines": [{"say": "What are your hours?"}, {"say": "Sorry, a cleaning.", "barge_in_ms": 1000}],
    "expect": {"outcome": "answered"},
}
CALLER_BARGES_IN = [(0.5, 0.5, 1.5), (3.0, 3.0, 4.5)]  # the second line: 3.0-4.5 s


def recording(run: ScenarioRun) -> CallRecording:
    return CallRecording.load(run.recording)


# --- 1. interrupt -------------------------------------------------------------------------
def test_interrupt_measures_how_soon_the_agent_went_quiet(tmp_path: Path) -> None:
    run = make_run(
        tmp_path,
        BARGE_IN,
        CALLER_BARGES_IN,
        agent=[(2.0, 3.18), (5.0, 6.0)],  # cut 180 ms in; the answer after the caller
        events=[WireEvent(3.17, "clear_in")],
    )
    result = interrupt(run, recording(run))
    assert result.passed, result.detail
    assert result.value == pytest.approx(0.18, abs=0.005)


def test_interrupt_fails_when_the_agent_talks_over_the_caller(tmp_path: Path) -> None:
    # Barge-in off: the reply plays on until the caller's turn closes (the Call then
    # cancels it, so its record says interrupted: that alone must not pass the check).
    record = a_record(turns=[{"speaker": "agent", "interrupted": True, "started_at": 2.0}])
    run = make_run(tmp_path, BARGE_IN, CALLER_BARGES_IN, agent=[(2.0, 4.9)], record=record)
    result = interrupt(run, recording(run))
    assert not result.passed
    assert result.value == pytest.approx(1.5, abs=0.005)  # talked to the caller's last word
    assert "kept talking" in result.detail


def test_interrupt_fails_when_the_agent_pauses_and_carries_on(tmp_path: Path) -> None:
    run = make_run(
        tmp_path,
        BARGE_IN,
        CALLER_BARGES_IN,
        agent=[(2.0, 3.15), (3.6, 4.2)],
        events=[WireEvent(3.14, "clear_in")],
    )
    result = interrupt(run, recording(run))
    assert not result.passed
    assert result.value == pytest.approx(1.2, abs=0.005)


def test_interrupt_counts_the_agents_media_not_just_its_voice(tmp_path: Path) -> None:
    # Its voice fell silent 50 ms in, between two words, but its reply kept streaming
    # until the clear 400 ms in: the audio stopped then, not at the gap.
    run = make_run(
        tmp_path,
        BARGE_IN,
        CALLER_BARGES_IN,
        agent=[(2.0, 3.05), (3.25, 3.4)],
        media=[(2.0, 3.4)],
        events=[WireEvent(3.4, "clear_in")],
    )
    result = interrupt(run, recording(run))
    assert not result.passed
    assert result.value == pytest.approx(0.4, abs=0.005)


def test_a_reply_that_ended_by_itself_tests_no_barge_in(tmp_path: Path) -> None:
    run = make_run(tmp_path, BARGE_IN, CALLER_BARGES_IN, agent=[(2.0, 3.1)])
    result = interrupt(run, recording(run))
    assert not result.passed
    assert "ended by itself" in result.detail


def test_interrupt_needs_the_agent_to_be_speaking(tmp_path: Path) -> None:
    run = make_run(tmp_path, BARGE_IN, CALLER_BARGES_IN, agent=[(2.0, 2.5)])
    result = interrupt(run, recording(run))
    assert not result.passed
    assert "not speaking" in result.detail


# --- 2. pause -----------------------------------------------------------------------------
PAUSE = {
    "name": "pause",
    "checks": ["pause"],
    "lines": [{"say": "I'd like to come in on <pause 1500> Thursday."}],
    "expect": {"outcome": "answered"},
}


def test_pause_passes_when_the_agent_waits(tmp_path: Path) -> None:
    # The caller's voice: 1.0-2.0, a silent pause, then 3.5-4.0 (one line: 1.0-4.0 voiced).
    run = make_run(tmp_path, PAUSE, [(1.0, 1.0, 4.0)], agent=[(4.5, 5.5)])
    result = pause(run, recording(run))
    assert result.passed and result.value == 0


def test_pause_fails_when_the_agent_takes_the_turn_in_the_pause(tmp_path: Path) -> None:
    run = make_run(tmp_path, PAUSE, [(1.0, 1.0, 4.0)], agent=[(2.6, 3.0), (4.5, 5.5)])
    result = pause(run, recording(run))
    assert not result.passed
    assert result.value == pytest.approx(0.4, abs=0.011)


# --- 3. no bluff --------------------------------------------------------------------------
OUT_OF_SCOPE = {
    "name": "deductible",
    "checks": ["no_bluff"],
    "lines": [{"say": "What's my deductible?"}, {"say": "Yes, please."}],
    "expect": {"outcome": "escalated", "agent_never_says": ["dollars", "500"]},
}
GREETING = HeardReply(0.1, 2.0, "Thanks for calling. Our team is here to help.")
TRANSFER = {"name": "transfer_to_human", "status": "done"}


def test_no_bluff_passes_on_an_offer_and_a_real_handoff(tmp_path: Path) -> None:
    heard = [
        GREETING,
        HeardReply(4, 6, "I can't see that. Want me to connect you to a person?"),
        HeardReply(8.5, 10, "Putting you through to our team now."),
    ]
    run = make_run(
        tmp_path,
        OUT_OF_SCOPE,
        [(2.5, 2.5, 3.5), (7, 7, 8)],
        [],
        heard=heard,
        record=a_record(tool_calls=[TRANSFER]),
        ended_by="agent",
    )
    result = no_bluff(run)
    assert result.passed, result.detail
    assert "connect" in result.detail and "person" in result.detail


def test_a_recorded_transfer_the_call_went_on_after_is_no_handoff(tmp_path: Path) -> None:
    # The hand-off reply was cut off by the caller and the call carried on: the database
    # says transfer_to_human ran, the wire says nobody was transferred.
    heard = [
        HeardReply(4, 5, "Let me connect you with"),
        HeardReply(8.5, 10, "Thanks for calling, have a great day!"),
    ]
    run = make_run(
        tmp_path,
        OUT_OF_SCOPE,
        [(2.5, 2.5, 3.5), (4.6, 4.6, 6)],
        [],
        heard=heard,
        record=a_record(tool_calls=[TRANSFER]),
        ended_by="agent",
    )
    result = no_bluff(run)
    assert not result.passed
    assert "did not end on a hand-off" in result.detail


def test_no_bluff_fails_on_a_made_up_answer(tmp_path: Path) -> None:
    heard = [GREETING, HeardReply(4, 6, "Your deductible is 500 dollars.")]
    run = make_run(
        tmp_path,
        OUT_OF_SCOPE,
        [(2.5, 2.5, 3.5), (7, 7, 8)],
        [],
        heard=heard,
        record=a_record(tool_calls=[TRANSFER]),
    )
    result = no_bluff(run)
    assert not result.passed
    assert result.value == 2
    assert "never offered a human" in result.detail  # the greeting's "team" does not count


def test_no_bluff_needs_the_handoff_to_fire(tmp_path: Path) -> None:
    heard = [HeardReply(4, 6, "Let me connect you with someone.")]
    failed = {"name": "transfer_to_human", "status": "refused"}
    run = make_run(
        tmp_path,
        OUT_OF_SCOPE,
        [(2.5, 2.5, 3.5)],
        [],
        heard=heard,
        record=a_record(tool_calls=[failed]),
    )
    assert "no transfer_to_human" in no_bluff(run).detail
    unverified = make_run(tmp_path, OUT_OF_SCOPE, [(2.5, 2.5, 3.5)], [], heard=heard)
    assert "unverified" in no_bluff(unverified).detail


def test_on_sip_the_handoff_is_a_refer_on_the_wire(tmp_path: Path) -> None:
    heard = [GREETING, HeardReply(4, 6, "Let me connect you with a person from our team.")]
    twilio = make_run(
        tmp_path,
        OUT_OF_SCOPE,
        [(2.5, 2.5, 3.5)],
        [],
        heard=heard,
        record=a_record(tool_calls=[TRANSFER]),
        ended_by="agent",
    )

    def over_sip(events: list[WireEvent]) -> ScenarioRun:
        log = twilio.log
        sip = SipCallLog("call-1@127.0.0.1", log.caller, events, log.recording, "agent")
        return ScenarioRun(twilio.scenario, sip, twilio.recording, heard, twilio.record)

    # The agent said the line and hung up, but never sent the REFER: nobody was transferred.
    no_refer = no_bluff(over_sip([WireEvent(6.2, "bye_in")]))
    assert not no_refer.passed
    assert "no REFER came on the SIP line" in no_refer.detail
    refer = WireEvent(6.1, "refer_in", {"refer_to": "<sip:+15555550100@127.0.0.1>"})
    handed_off = no_bluff(over_sip([refer, WireEvent(6.2, "bye_in")]))
    assert handed_off.passed, handed_off.detail
    assert "REFER to <sip:+15555550100@127.0.0.1>" in handed_off.detail


def test_offers_of_a_human_are_whole_words() -> None:
    assert offers_a_human("Let me get someone from the front desk.") == ["someone", "front desk"]
    assert offers_a_human("A steam clean, transferable points, personal care.") == []


# --- 4 and 5. noise and tools -------------------------------------------------------------
BOOKING = {
    "name": "booking",
    "checks": ["tools"],
    "lines": [{"say": "Thursday afternoon, please."}],
    "expect": {
        "outcome": "booked",
        "contact_name": "Maria Lopez",
        "booking": {"weekday": "thursday", "part_of_day": "afternoon", "service": "cleaning"},
    },
}


def booked(start: str = "2026-11-26T19:00:00", contact_id: int = 7) -> dict[str, Any]:
    """A record of a booked call (19:00 UTC on Thursday Nov 26 is 14:00 in New York)."""
    contact = {"id": 7, "phone": CALLER, "name": "Maria Lopez", "last_outcome": "booked"}
    appointment = {"start": start, "service": "Cleaning", "status": "booked"}
    return a_record(
        outcome="booked",
        contact=contact,
        appointments=[{**appointment, "contact_id": contact_id}],
    )


def test_tools_reads_the_booking_back(tmp_path: Path) -> None:
    run = make_run(tmp_path, BOOKING, [(1, 1, 2)], [], record=booked())
    result = tools(run, TZ)
    assert result.passed, result.detail
    assert result.value == 1


@pytest.mark.parametrize(
    ("record", "problem"),
    [
        (booked(start="2026-11-27T19:00:00"), "booked on a friday"),
        (booked(start="2026-11-26T14:00:00"), "not in the afternoon"),
        (booked(contact_id=8), "not the caller's"),
        (a_record(outcome="escalated"), "outcome 'escalated'"),
        (None, "unverified"),
    ],
)
def test_tools_fails_on_what_the_database_contradicts(
    tmp_path: Path, record: dict[str, Any] | None, problem: str
) -> None:
    run = make_run(tmp_path, BOOKING, [(1, 1, 2)], [], record=record)
    result = tools(run, TZ)
    assert not result.passed
    assert problem in result.detail


def test_tools_reads_a_caldav_booking_from_the_calendar_not_the_database(
    tmp_path: Path,
) -> None:
    record = booked()
    event = {**record["appointments"][0], "summary": "Cleaning: Maria Lopez", "description": ""}
    record["appointments"] = []  # with CalDAV the database holds no appointment
    run = make_run(tmp_path, BOOKING, [(1, 1, 2)], [], record=record)
    run.bookings, run.bookings_from = [event], "the CalDAV server (http://dav.test/)"
    result = tools(run, TZ)
    assert result.passed, result.detail
    assert result.detail.endswith("read back from the CalDAV server (http://dav.test/)")
    run.bookings = [{**event, "summary": "Cleaning"}]  # the staff cannot see who is coming
    assert "the calendar event does not name Maria Lopez" in tools(run, TZ).detail
    run.bookings = []
    assert "0 appointments for this call in the CalDAV server" in tools(run, TZ).detail


def test_the_agents_rtp_clock_is_read_off_its_packets() -> None:
    # The agent's tick n sends timestamp first + 160 n; arrivals are late by up to 9 ms
    # (a busy sender or receiver), never early. The timestamps wrap around 2**32.
    first, start = 2**32 - 480, 100.0
    late = [0.004, 0.009, 0.0002, 0.003, 0.006]
    packets = [
        (start + n * 0.02 + delay, (first + 160 * n) % 2**32) for n, delay in enumerate(late)
    ]
    assert agent_clock_start(packets) == pytest.approx(start + 0.0002, abs=1e-9)
    record = a_record(
        turns=[{"started_at": 5.0, "ended_at": 6.5}, {"started_at": None, "ended_at": 7.0}]
    )
    moved = on_caller_clock(record, 0.14)
    assert [(t["started_at"], t["ended_at"]) for t in moved["turns"]] == [
        (pytest.approx(4.86), pytest.approx(6.36)),
        (None, pytest.approx(6.86)),
    ]
    assert record["turns"][0]["started_at"] == 5.0  # the agent's record itself is untouched


def test_tools_refuses_a_booking_nobody_asked_for(tmp_path: Path) -> None:
    scenario = {**BOOKING, "expect": {"outcome": "nurture"}}
    record = booked()
    record["outcome"] = "nurture"
    record["contact"]["last_outcome"] = "nurture"
    result = tools(make_run(tmp_path, scenario, [(1, 1, 2)], [], record=record), TZ)
    assert not result.passed
    assert "expected none" in result.detail


def test_noise_is_the_task_completing_in_noise(tmp_path: Path) -> None:
    scenario = {**BOOKING, "checks": ["noise"], "noise": {"kind": "car", "snr_db": 5}}
    good = noise(make_run(tmp_path, scenario, [(1, 1, 2)], [], record=booked()), TZ)
    assert good.passed and good.value == 5
    bad = noise(make_run(tmp_path, scenario, [(1, 1, 2)], [], record=a_record()), TZ)
    assert not bad.passed and "car noise at 5 dB SNR" in bad.detail


# --- 6. latency ---------------------------------------------------------------------------
TWO_QUESTIONS = {
    "name": "questions",
    "lines": [{"say": "Where are you?"}, {"say": "Is there parking?"}, {"say": "Bye."}],
    "expect": {"outcome": "answered"},
}


def agent_turn(ended_at: float, v2v_ms: float, text: str = "") -> dict[str, Any]:
    """A caller turn as the agent stored it: what it heard, when, and its own latency."""
    timings = {"voice_to_voice_ms": v2v_ms}
    return {
        "speaker": "caller",
        "text": text,
        "started_at": ended_at - 0.9,
        "ended_at": ended_at,
        "timings": timings,
    }


def test_latency_is_measured_on_the_wire_and_paired_with_the_agents_figure(
    tmp_path: Path,
) -> None:
    record = a_record(turns=[agent_turn(1.9, 560), agent_turn(4.95, 1230)])
    run = make_run(
        tmp_path,
        TWO_QUESTIONS,
        [(1.0, 1.0, 2.0), (4.0, 4.0, 5.0), (8.0, 8.0, 8.5)],
        agent=[(2.5, 3.5), (6.2, 7.5)],  # the last line ("Bye.") is never answered
        record=record,
    )
    gaps = turn_gaps(run, recording(run))
    assert [g.line for g in gaps] == [0, 1]
    assert [g.wire for g in gaps] == pytest.approx([0.5, 1.2], abs=0.002)
    assert [g.agent for g in gaps] == pytest.approx([0.56, 1.23])
    result = latency(run, recording(run))
    assert not result.passed
    assert result.value == pytest.approx(0.85, abs=0.002)
    assert result.detail == "median 850 ms, p90 1130 ms, max 1200 ms over 2 turn(s); 1 over 1 s"


def test_a_line_the_agent_talked_through_has_no_gap(tmp_path: Path) -> None:
    run = make_run(
        tmp_path,
        TWO_QUESTIONS,
        [(1.0, 1.0, 2.0), (4.0, 4.0, 5.0)],
        agent=[(2.4, 3.0), (4.5, 6.0)],  # already talking when the second line ended
    )
    assert [g.line for g in turn_gaps(run, recording(run))] == [0]


# --- the scorecard and the report ---------------------------------------------------------
def test_scorecard_json_and_html_report(tmp_path: Path) -> None:
    turns = [agent_turn(1.95, 540, "Where are you?"), agent_turn(4.95, 700, "Is their parking?")]
    record = a_record(outcome="answered", turns=turns)
    run = make_run(
        tmp_path,
        {**TWO_QUESTIONS, "checks": ["tools", "latency"]},
        [(1.0, 1.0, 2.0), (4.0, 4.0, 5.0)],
        agent=[(2.5, 3.5), (5.6, 7.0)],
        record=record,
        heard=[HeardReply(2.5, 3.5, "On Main Street."), HeardReply(5.6, 7.0, "Yes, free.")],
    )
    card = Scorecard("http://127.0.0.1:1", [score(run, TZ)])
    assert card.passed
    lat = card.latency()
    assert lat["turns"] == lat["paired_turns"] == 2
    assert lat["wire_median_ms"] == pytest.approx(550, abs=3)
    assert lat["wire_minus_agent_mean_ms"] == pytest.approx(-70, abs=3)  # (-40 - 100) / 2

    json.dumps(card.as_json())  # plain numbers all the way down, no numpy scalars
    card.write_json(tmp_path / "card.json")
    data = json.loads((tmp_path / "card.json").read_text())
    assert data["passed"] is True
    assert data["checks"] == {
        "tools": {"scenarios": 1, "passed": 1},
        "latency": {"scenarios": 1, "passed": 1},
    }
    assert data["scenarios"][0]["turn_gaps"][1]["agent_ms"] == 700

    console = Console(file=io.StringIO(), width=160)
    print_scorecard(card, console)
    assert "PASSED" in console.file.getvalue()  # type: ignore[attr-defined]

    write_html(card, tmp_path / "report.html")
    page = (tmp_path / "report.html").read_text()
    assert "<svg" in page and page.count("<rect") == 2  # one bar per measured turn
    assert "Is their parking?" in page  # beside the line, what the agent made of it
    src = page.split('<audio controls preload="none" src="data:audio/wav;base64,')[1]
    pcm, rate = decode_wav(base64.b64decode(src.split('"')[0]))
    assert rate == 8000 and pcm.shape == (12 * 8000, 2)  # the whole call, both sides
    assert "http" not in page.replace("http://127.0.0.1:1", "")  # nothing fetched
