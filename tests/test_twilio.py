"""Twilio Media Streams end to end: a real uvicorn server on loopback, real websockets, the
real agent, and a caller that speaks Twilio's side of the protocol (signed webhook, then the
media socket on its own 20 ms clock)."""

from __future__ import annotations

import asyncio
import json
import logging
import statistics
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import websockets
from sqlalchemy import select

from frontdesk.agent import Agent
from frontdesk.evals.recording import CallRecording
from frontdesk.evals.scripted_caller import CallerLine
from frontdesk.evals.twilio_caller import TwilioCallLog
from frontdesk.evals.twilio_webhook import answer_webhook, new_sid, post_form, sign
from frontdesk.server.background import BackgroundServer
from frontdesk.store.models import Appointment
from twilio_support import AUTH_TOKEN, call_record, place_call, serving, words

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest_asyncio.fixture(loop_scope="session")
async def server(agent: Agent) -> AsyncIterator[BackgroundServer]:
    async with serving(agent) as running:
        yield running


def voice_to_voice(log: TwilioCallLog) -> list[float]:
    """Caller's last word -> agent's first sound, per answered line, on the recording."""
    assert log.recording is not None
    recording = CallRecording.load(log.recording)
    gaps = []
    for line in log.caller.log:
        onset = recording.voice_onset("agent", line.voiced_end)
        if line.voiced_end > line.voiced_start and onset is not None:
            gaps.append(onset - line.voiced_end)
    return gaps


BOOKING = [
    CallerLine("Hi, I'd like to book a cleaning, please."),
    CallerLine("I'm a new patient."),
    CallerLine("My name is Maria Lopez."),
    CallerLine("Thursday afternoon, please."),
    CallerLine("The first one works for me."),
    CallerLine("Nope that is everything thanks."),
]
"""A booking without the demo's pause and barge-in (both tested on their own below and in
test_call.py): what this test checks is the transport, so the script avoids the words that
tiny.en sometimes mishears over the 8 kHz line."""


async def test_a_booking_call_over_twilio_media_streams(
    agent: Agent, server: BackgroundServer, tmp_path: Path
) -> None:
    log = await place_call(server, tmp_path, *BOOKING)
    assert log.protocol_errors == []
    record = await call_record(agent, log.call_sid)
    assert record["outcome"] == "booked"
    assert record["transport"] == "twilio"
    assert record["contact"]["name"] == "Maria Lopez"
    with agent.db.session() as session:
        booked = session.scalars(select(Appointment)).all()
        assert [a.call_id for a in booked] == [record["id"]]
    # The caller heard the agent's voice on the socket, turn after turn.
    gaps = voice_to_voice(log)
    assert len(gaps) >= 5 and all(gap < 3.0 for gap in gaps), gaps
    print(f"\nvoice-to-voice over the socket (ms): {[round(1000 * g) for g in gaps]}")
    print(f"median {statistics.median(gaps):.3f}")
    # Twilio's status callback after the call lands in the call's record.
    status_url = f"{server.base_url}/twilio/status"
    update = {"CallSid": log.call_sid, "CallStatus": "completed", "CallDuration": "41"}
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Twilio-Signature": sign(AUTH_TOKEN, status_url, update),
    }
    status, _ = await post_form(status_url, update, headers)
    assert status == 204
    record = await call_record(agent, log.call_sid)
    assert [s["status"] for s in record["carrier_statuses"]] == ["completed"]


async def test_webhooks_need_a_valid_twilio_signature(
    agent: Agent, server: BackgroundServer
) -> None:
    voice_url = f"{server.base_url}/twilio/voice"
    form = {"CallSid": new_sid("CA"), "From": "+15551230000", "To": "+15550000000"}
    plain = {"Content-Type": "application/x-www-form-urlencoded"}

    status, _ = await post_form(voice_url, form, plain)
    assert status == 403, "unsigned"
    signature = sign(AUTH_TOKEN, voice_url, form)
    tampered = {**form, "From": "+15559999999"}
    status, _ = await post_form(voice_url, tampered, {**plain, "X-Twilio-Signature": signature})
    assert status == 403, "signed for other fields"
    wrong_key = sign("not-the-token", voice_url, form)
    status, _ = await post_form(voice_url, form, {**plain, "X-Twilio-Signature": wrong_key})
    assert status == 403, "signed with another token"

    status, twiml = await post_form(voice_url, form, {**plain, "X-Twilio-Signature": signature})
    assert status == 200
    assert f'<Stream url="ws://127.0.0.1:{server.port}/twilio/media">' in twiml
    assert '<Parameter name="callerNumber" value="+15551230000"' in twiml
    assert f'<Parameter name="callSid" value="{form["CallSid"]}"' in twiml
    assert '<Parameter name="token" value="' in twiml

    status_url = f"{server.base_url}/twilio/status"
    update = {"CallSid": form["CallSid"], "CallStatus": "completed"}
    status, _ = await post_form(status_url, update, plain)
    assert status == 403
    signed = {**plain, "X-Twilio-Signature": sign(AUTH_TOKEN, status_url, update)}
    status, _ = await post_form(status_url, update, signed)
    assert status == 204


async def refused(url: str, start: dict[str, Any]) -> int | None:
    """Send connected + start; the close code the server answers with (None: accepted)."""
    async with websockets.connect(url, ping_interval=None) as ws:
        await ws.send(json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}))
        await ws.send(json.dumps(start))
        try:
            while True:
                message = json.loads(await ws.recv())
                if message.get("event") == "media":
                    return None  # the agent is greeting: the stream was accepted
        except websockets.ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd else -1


def start_message(call_sid: str, token: str) -> dict[str, Any]:
    stream_sid = new_sid("MZ")
    return {
        "event": "start",
        "streamSid": stream_sid,
        "start": {
            "streamSid": stream_sid,
            "callSid": call_sid,
            "tracks": ["inbound"],
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
            "customParameters": {"token": token, "callSid": call_sid},
        },
    }


async def test_a_media_socket_needs_a_token_from_a_signed_webhook(
    agent: Agent, server: BackgroundServer
) -> None:
    async def invite(call_sid: str) -> tuple[str, str]:
        invitation = await answer_webhook(
            f"{server.base_url}/twilio/voice",
            call_sid=call_sid,
            caller_number="+15551230000",
            auth_token=AUTH_TOKEN,
        )
        return invitation.url, invitation.parameters["token"]

    call_sid = new_sid("CA")
    url, token = await invite(call_sid)
    assert await refused(url, start_message(call_sid, "made-up-token")) == 1008
    assert await refused(url, start_message(call_sid, token)) is None, "the real one works"
    assert await refused(url, start_message(call_sid, token)) == 1008, "tokens are one-time"
    other_call, other_token = new_sid("CA"), (await invite(new_sid("CA")))[1]
    assert await refused(url, start_message(other_call, other_token)) == 1008, "another call's"
    health = await asyncio.to_thread(
        lambda: json.load(urllib.request.urlopen(f"{server.base_url}/healthz", timeout=5))
    )
    assert health["status"] == "ok", "the server is still up"


async def test_barge_in_clears_twilio_and_the_old_reply_never_resumes(
    agent: Agent, server: BackgroundServer, tmp_path: Path
) -> None:
    log = await place_call(
        server,
        tmp_path,
        CallerLine("What are your hours?"),
        CallerLine("Sorry, actually I want to book a cleaning.", barge_in_ms=1000),
        CallerLine("", hang_up=True, delay_ms=600),
    )
    assert log.protocol_errors == []
    line = log.caller.log[1]
    onset = log.wire_onset(line.started)
    # On the 8 kHz wire a line can start later than in the 16 kHz script: an initial "s"
    # lies mostly above 4 kHz. The phone line's onset is what the agent can hear.
    onset = log.wire_onset(line.started)
    assert onset is not None and line.voiced_start - 0.03 < onset < line.voiced_start + 0.2
    clears = [t for t in log.times("clear_in") if t >= onset]
    assert clears, "no clear after the caller started talking over the agent"
    onset_to_clear = clears[0] - onset
    print(f"\nbarge-in: caller onset -> clear received {1000 * onset_to_clear:.0f} ms")
    assert onset_to_clear <= 0.300, f"{1000 * onset_to_clear:.0f} ms"

    # The interrupted reply is the one whose marks came in before the clear; after the
    # clear, none of its audio or marks arrive (only the next reply's).
    before = [e for e in log.events if e.kind == "mark_in" and e.at < clears[0]]
    interrupted = before[-1].detail["name"].rpartition("/")[0]
    after = [e for e in log.events if e.at > clears[0]]
    marks_after = [e.detail["name"] for e in after if e.kind == "mark_in"]
    assert not any(name.startswith(f"{interrupted}/") for name in marks_after), marks_after
    audio_while_caller_talks = [e for e in after if e.kind == "media_in" and e.at < line.voiced_end]
    assert audio_while_caller_talks == []

    record = await call_record(agent, log.call_sid)
    cut = [t for t in record["turns"] if t["speaker"] == "agent" and t["interrupted"]]
    assert len(cut) == 1 and "open" in words(cut[0]["text"]), cut


async def test_malformed_messages_are_survived(
    agent: Agent, server: BackgroundServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="frontdesk.transports.twilio")
    stream_sid = new_sid("MZ")
    junk_before = [
        b"\x00\x01\x02 binary",
        "{not json",
        json.dumps({"event": "launch-missiles", "streamSid": stream_sid}),
        json.dumps({"event": "media", "streamSid": stream_sid, "media": {"payload": "//8="}}),
        json.dumps([1, 2, 3]),
    ]
    junk_after = [
        json.dumps({"event": "media", "streamSid": stream_sid, "media": {"payload": "!!no!!"}}),
        json.dumps({"event": "media", "streamSid": "MZother", "media": {"payload": "//8="}}),
        json.dumps({"event": "mark", "streamSid": "MZother", "mark": {"name": "r0/0:999"}}),
        json.dumps({"event": "dtmf", "streamSid": stream_sid, "dtmf": {"digit": "xyz"}}),
        json.dumps({"event": "media", "streamSid": stream_sid}),
        json.dumps({"event": "start", "streamSid": stream_sid, "start": {}}),
    ]
    log = await place_call(
        server,
        tmp_path,
        CallerLine("What are your hours?"),
        stream_sid=stream_sid,
        before_start=junk_before,
        after_start=junk_after,
    )
    assert log.ended_by == "caller", "the caller hung up after the answer: the call held"
    ignored = [r.getMessage() for r in caplog.records if "ignoring" in r.getMessage()]
    for what in ("binary", "not valid JSON", "unknown event", "before start", "not base64"):
        assert sum(what in message for message in ignored) == 1, (what, ignored)
    assert sum("another streamSid" in message for message in ignored) == 1, ignored
    record = await call_record(agent, log.call_sid)
    callers = [t["text"] for t in record["turns"] if t["speaker"] == "caller"]
    assert len(callers) == 1 and "hours" in words(callers[0]), callers
    answers = " ".join(t["text"] for t in record["turns"] if t["speaker"] == "agent")
    assert "open" in words(answers), answers
    # ... and the server still takes new calls.
    invitation = await answer_webhook(
        f"{server.base_url}/twilio/voice",
        call_sid=new_sid("CA"),
        caller_number="+15551230000",
        auth_token=AUTH_TOKEN,
    )
    assert invitation.url.endswith("/twilio/media")
