"""The call loop end to end: real models, a scripted caller on the loopback line, a real
SQLite database. Timing is measured on the call recording, from the caller's side."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
from sqlalchemy import func, select

from frontdesk.agent import Agent
from frontdesk.evals.local_call import LocalCallResult, run_local_call
from frontdesk.evals.recording import CallRecording
from frontdesk.evals.scripted_caller import CallerLine, ScriptedCaller
from frontdesk.speech.tts.command import FliteVoice
from frontdesk.store.models import Appointment
from frontdesk.transports.local import LocalTransport

pytestmark = pytest.mark.asyncio(loop_scope="session")

HOURS_ANSWER_WORDS = ["open", "monday", "friday"]


async def call(agent: Agent, tmp_path: Path, *lines: CallerLine) -> LocalCallResult:
    return await run_local_call(agent, list(lines), tmp_path / "call.wav")


def appointments(agent: Agent) -> int:
    with agent.db.session() as session:
        return session.scalar(select(func.count()).select_from(Appointment)) or 0


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


async def test_barge_in_stops_the_agent_and_keeps_only_what_was_heard(
    agent: Agent, tmp_path: Path
) -> None:
    result = await call(
        agent,
        tmp_path,
        CallerLine("What are your hours?"),
        CallerLine("Sorry, actually I want to book a cleaning.", barge_in_ms=1000),
        CallerLine("", hang_up=True, delay_ms=600),
    )
    # On the recording: the caller starts talking over the agent; the agent goes quiet.
    line = result.caller.log[1]
    recording = CallRecording.load(result.recording)
    onset = recording.voice_onset("caller", line.started)
    assert onset is not None
    assert recording.voiced_seconds("agent", onset - 0.5, onset) > 0.3, "agent was talking"
    stopped = recording.voice_stop("agent", onset)
    assert stopped is not None
    assert stopped - onset <= 0.300, f"agent kept talking {1000 * (stopped - onset):.0f} ms"

    # The history holds the heard prefix of the hours answer, marked interrupted.
    interrupted = [m for m in result.call.history if m.role == "agent" and m.interrupted]
    assert len(interrupted) == 1
    heard = words(interrupted[0].text)
    full = next(d["unheard"] for k, d in result.events if k == "agent" and d.get("interrupted"))
    assert 0 < len(heard) < len(words(full))
    assert words(full)[: len(heard)] == heard
    assert "open" in heard
    stored = [t for t in result.record["turns"] if t["speaker"] == "agent" and t["interrupted"]]
    assert [t["text"] for t in stored] == [interrupted[0].text]


async def test_a_backchannel_does_not_stop_the_agent(agent: Agent, tmp_path: Path) -> None:
    result = await call(
        agent,
        tmp_path,
        CallerLine("What are your hours?"),
        CallerLine("Mm-hmm.", barge_in_ms=1200),
    )
    kinds = [k for k, _ in result.events]
    assert "backchannel" in kinds
    agent_lines = [m for m in result.call.history if m.role == "agent"]
    assert not any(m.interrupted for m in agent_lines)
    hours = [m.text for m in agent_lines if all(w in words(m.text) for w in HOURS_ANSWER_WORDS)]
    assert hours, "the hours answer was said in full"
    # The flow brain answers in milliseconds: no filler line ever precedes its answer.
    fillers = agent.call_config().think_filler_lines
    assert not any(line in m.text for m in agent_lines for line in fillers), agent_lines
    callers = [m.text for m in result.call.history if m.role == "caller"]
    assert len(callers) == 1, f"the backchannel became a turn: {callers}"


async def test_a_pause_mid_thought_is_one_turn(agent: Agent, tmp_path: Path) -> None:
    result = await call(
        agent,
        tmp_path,
        CallerLine("Can I book a cleaning on <pause 1500> Thursday afternoon?"),
        CallerLine("", hang_up=True, delay_ms=800),
    )
    callers = [t for t in result.record["turns"] if t["speaker"] == "caller"]
    assert len(callers) == 1, [t["text"] for t in callers]
    assert "thursday" in words(callers[0]["text"]) and "cleaning" in words(callers[0]["text"])
    # The agent said nothing during the pause: its voice starts only after the whole line.
    line = result.caller.log[0]
    recording = CallRecording.load(result.recording)
    assert recording.voiced_seconds("agent", line.started, line.voiced_end) == 0.0
    assert recording.voice_onset("agent", line.voiced_end) is not None, "and then it answered"


async def test_an_out_of_scope_question_goes_to_a_human(agent: Agent, tmp_path: Path) -> None:
    result = await call(agent, tmp_path, CallerLine("What's my insurance deductible?"))
    tools = {t["name"]: t for t in result.record["tool_calls"]}
    assert tools["transfer_to_human"]["status"] == "done"
    assert result.transport.log.transfers == [agent.profile.handoff_number]
    reply = " ".join(m.text for m in result.call.history if m.role == "agent")
    assert "person" in reply.lower()
    # Nothing invented: no amount, no figure beyond what the greeting says.
    assert not re.search(r"\$|\bdollars?\b|\d", reply.split("How can I help")[-1]), reply
    assert result.record["outcome"] == "escalated"
    assert "transferred to a person" in result.record["summary"]
    assert result.record["contact"]["last_outcome"] == "escalated"


async def test_a_caller_who_cuts_off_the_hand_off_stays_and_is_not_recorded_escalated(
    agent: Agent, tmp_path: Path
) -> None:
    result = await call(
        agent,
        tmp_path,
        CallerLine("What's my insurance deductible?"),
        CallerLine("No wait, I just want to book a cleaning.", barge_in_ms=1200),
        CallerLine("I'm a new patient."),
        CallerLine("", hang_up=True, delay_ms=600),
    )
    # The hand-off was said (its tools ran), the caller talked over it, and was never
    # transferred: the conversation carried on.
    tools = [(t["name"], t["status"]) for t in result.record["tool_calls"]]
    assert ("transfer_to_human", "done") in tools
    assert result.transport.log.transfers == []
    agent_lines = [m for m in result.call.history if m.role == "agent"]
    [cut] = [m for m in agent_lines if m.interrupted]
    later = agent_lines[agent_lines.index(cut) + 1 :]
    assert later, "the agent answered the caller after the cut-off hand-off"
    assert any("new patient" in m.text.lower() for m in later), [m.text for m in later]
    # The record says what happened: no "escalated", no "transferred to a person".
    record = result.record
    assert record["outcome"] == "dropped"  # the caller hung up mid-qualification
    assert "transferred" not in (record["summary"] or "")
    assert record["contact"] is None or record["contact"]["last_outcome"] != "escalated"


async def test_a_caller_who_hangs_up_mid_booking_leaves_no_booking(
    agent: Agent, tmp_path: Path
) -> None:
    result = await call(
        agent,
        tmp_path,
        CallerLine("I'd like to book a cleaning, please."),
        CallerLine("I'm a new patient."),
        CallerLine("My name is Maria Lopez."),
        CallerLine("Thursday afternoon."),
        CallerLine("", barge_in_ms=1500, hang_up=True),  # hangs up while slots are read out
    )
    assert result.record["outcome"] == "dropped"
    assert result.record["ended_at"] is not None
    assert appointments(agent) == 0
    assert result.record["appointments"] == []
    said = [t["text"] for t in result.record["turns"] if t["speaker"] == "caller"]
    assert any("maria" in s.lower() for s in said), said
    assert all(t["status"] in ("done", "refused") for t in result.record["tool_calls"])


async def test_pressing_zero_reaches_a_person(agent: Agent, tmp_path: Path) -> None:
    result = await call(agent, tmp_path, CallerLine(dtmf="0"))
    callers = [t["text"] for t in result.record["turns"] if t["speaker"] == "caller"]
    assert callers == ["[keys 0]"]
    assert result.transport.log.transfers == [agent.profile.handoff_number]
    assert result.record["outcome"] == "escalated"


class RingingTransferLine(LocalTransport):
    """A line whose transfer takes a while (the person's phone rings before it answers),
    like a SIP bridge or a carrier's REFER; it notes the order things happen in."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.order: list[str] = []

    async def transfer(self, number: str) -> None:
        self.order.append("transfer started")
        await asyncio.sleep(1.0)
        self.order.append("transfer done")
        await super().transfer(number)

    async def aclose(self) -> None:
        self.order.append("closed")
        await super().aclose()


async def test_the_call_waits_for_a_slow_transfer_before_closing_the_line(
    agent: Agent, tmp_path: Path
) -> None:
    """Closing the line while the person's phone still rings would hang up on the caller."""
    caller = ScriptedCaller([CallerLine(dtmf="0")])
    await caller.prepare(FliteVoice("slt"))
    line = RingingTransferLine(caller, recording_path=tmp_path / "call.wav")
    call = await agent.new_call(line)
    result = await call.run()
    assert line.order == ["transfer started", "transfer done", "closed"]
    assert line.log.transfers == [agent.profile.handoff_number]
    record = await agent.store.call_record(result.call_id)
    assert record["outcome"] == "escalated"
