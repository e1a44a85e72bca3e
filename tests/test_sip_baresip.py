"""The agent against baresip, a real SIP phone, on 127.0.0.1: the agent calls it (baresip
records what it hears and sees our RFC 4733 keys); baresip calls the agent and holds a
whole booking conversation, driven over its ``ctrl_tcp`` interface; and baresip is the
person a caller is bridged to when the caller's side refuses REFER."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from baresip_peer import USER, baresip, write_mic_wav
from frontdesk.agent import Agent
from frontdesk.audio import AudioFrame
from frontdesk.audio.resample import resample
from frontdesk.transports.sip import SipListener, SipSettings
from frontdesk.transports.sip.pcap import write_rtp_pcap
from sip_peers import HOST, SIPP_PCAPS, run_sipp, scenario, speak, until

pytestmark = pytest.mark.asyncio(loop_scope="session")


def _words(text: str) -> list[str]:
    return "".join(c for c in text.lower() if c.isalnum() or c.isspace()).split()


async def _transcribe(stt: object, pcm8k: np.ndarray) -> list[str]:
    pcm = resample(pcm8k, 8000, 16000)
    transcript = await stt.transcribe([AudioFrame(pcm, 16000)])  # type: ignore[attr-defined]
    return _words(transcript.text)


def _recall(said: list[str], heard: list[str]) -> float:
    """The share of the words said that were heard (each heard word counts once)."""
    left = list(heard)
    found = 0
    for word in said:
        if word in left:
            left.remove(word)
            found += 1
    return found / len(said)


async def test_agent_calls_baresip_which_hears_the_greeting_and_our_keys(
    agent: Agent, engines: tuple, tmp_path: Path
) -> None:
    # baresip hangs up when its microphone file ends: give it a long silence.
    write_mic_wav(tmp_path / "quiet.wav", np.zeros(8000, np.int16), tail_s=60)
    async with baresip(tmp_path, tmp_path / "quiet.wav") as phone:
        greeted = asyncio.Event()
        listener = SipListener(agent, HOST, 0, SipSettings())

        def observe(kind: str, **data: object) -> None:
            if kind == "agent":
                greeted.set()

        listener.observer = observe
        await listener.start()
        try:
            call = asyncio.create_task(listener.place_call(phone.uri))
            await asyncio.wait_for(greeted.wait(), 30)
            [transport] = listener.calls.values()
            await transport.send_dtmf("42#")

            def keys() -> list[str]:
                return [e.get("param") for e in phone.events if e["type"] == "CALL_DTMF_START"]

            await until(lambda: len(keys()) >= 3, 5)
            await phone.command("hangup")
            finished = await asyncio.wait_for(call, 15)
        finally:
            await listener.stop()
        heard, rate = await phone.recording()
    assert keys() == ["4", "2", "#"], phone.events
    assert finished.error is None and finished.result is not None
    record = await agent.store.call_record(finished.result.call_id)
    assert record["direction"] == "outbound"
    assert record["transport"] == "sip"
    assert record["outcome"] == "dropped"  # baresip hung up
    assert record["ended_at"] is not None
    assert rate == 8000
    text = await _transcribe(engines[0], heard)
    greeting = _words(agent.new_brain().greeting())
    # Whisper tiny on 8 kHz audio may miss a word ("Dental" came back as "Bentle" once);
    # the greeting as a whole must come through.
    assert _recall(greeting, text) >= 0.8, (text, greeting)
    assert " ".join(text).startswith("thanks for calling"), text


CONVERSATION = [
    "Hi, I'd like to book a cleaning, please.",
    "I'm a new patient.",
    "My name is Maria Lopez.",
    "I'd like to come in on Thursday afternoon.",
    "The first one works for me.",
    "No, that is everything, thanks.",
]


async def test_baresip_calls_and_books_in_a_two_way_conversation(
    agent: Agent, tmp_path: Path
) -> None:
    """baresip dials the agent; each time the agent's reply has played out, the test tells
    baresip (``ausrc``) to speak the caller's next line, until the agent books and ends."""
    lines = []
    for i, text in enumerate(CONVERSATION):
        # A long silent tail: baresip hangs up when its microphone file runs out.
        write_mic_wav(tmp_path / f"line{i}.wav", await speak(text), tail_s=60)
        lines.append(tmp_path / f"line{i}.wav")
    write_mic_wav(tmp_path / "quiet.wav", np.zeros(8000, np.int16), tail_s=120)
    events: asyncio.Queue[tuple[str, dict]] = asyncio.Queue()
    listener = SipListener(agent, HOST, 0, SipSettings())
    listener.observer = lambda kind, **data: events.put_nowait((kind, data))
    await listener.start()

    async def next_reply() -> str:
        """The agent's next reply, once it has played to the end."""
        while True:
            kind, data = await asyncio.wait_for(events.get(), 30)
            if kind == "agent" and not data.get("interrupted"):
                return str(data["text"])

    replies: list[str] = []
    try:
        async with baresip(tmp_path, tmp_path / "quiet.wav") as phone:
            host, port = listener.address
            await phone.command("dial", f"sip:frontdesk@{host}:{port}")
            await phone.wait_event("CALL_ESTABLISHED", 10)
            replies.append(await next_reply())  # the greeting
            for line in lines:
                await asyncio.sleep(0.4)  # a natural gap after the agent's last word
                await phone.command("ausrc", f"aufile,{line}")
                replies.append(await next_reply())
            await phone.wait_event("CALL_CLOSED", 20)  # the agent said goodbye and hung up
            [finished] = await listener.wait_finished(1, timeout_s=15)
    finally:
        await listener.stop()
    assert finished.error is None and finished.result is not None, finished
    record = await agent.store.call_record(finished.result.call_id)
    transcript = [(t["speaker"], t["text"]) for t in record["turns"]]
    assert record["outcome"] == "booked", transcript
    assert record["caller_number"] == USER
    assert record["direction"] == "inbound" and record["transport"] == "sip"
    [appointment] = record["appointments"]
    assert appointment["start"].startswith("2026-11-26"), appointment  # Thursday
    assert int(appointment["start"][11:13]) >= 12, appointment  # the afternoon
    callers = " ".join(t for s, t in transcript if s == "caller").lower()
    assert "cleaning" in callers and "thursday" in callers, transcript
    assert finished.transport is not None and finished.transport.leg.ended_by == "agent"
    # baresip's RTCP reports went to RTP port + 1, which is held open (a closed one answers
    # with ICMP, on which baresip ends the call).
    assert finished.transport.rtp.rtcp_in > 0


async def test_a_refused_refer_falls_back_to_bridging_the_caller_to_a_person(
    agent: Agent, engines: tuple, tmp_path: Path
) -> None:
    """sipp presses 0 and refuses the REFER (603); the agent calls the person (baresip,
    through the configured trunk) and bridges the two calls: the person hears the caller."""
    caller_says = "Hi Dana, I need to move my appointment to next week."
    seconds = write_rtp_pcap(tmp_path / "to-dana.pcap", await speak(caller_says))
    script = scenario(
        "caller_refuses_refer.xml",
        tmp_path,
        greeting_ms=5500,
        dtmf_pcap=SIPP_PCAPS / "dtmf_2833_0.pcap",
        bridge_ms=1500,
        human_pcap=tmp_path / "to-dana.pcap",
        human_ms=int(seconds * 1000) + 1500,
    )
    dana = await speak("Hello, this is Dana at the front desk.", voice="rms")
    write_mic_wav(tmp_path / "dana.wav", dana, lead_s=0.5, tail_s=60)
    async with baresip(tmp_path, tmp_path / "dana.wav") as person:
        # The trunk is the person's phone itself: the transfer number is its user.
        settings = SipSettings(
            outbound_proxy=f"{HOST}:{person.sip_port}", domain=HOST, transfer_number=USER
        )
        listener = SipListener(agent, HOST, 0, settings)
        await listener.start()
        try:
            run = await run_sipp(script, listener.address, tmp_path, timeout_s=45)
            await person.wait_event("CALL_CLOSED", 10)  # the caller left: the bridge hung up
            [finished] = await listener.wait_finished(1, timeout_s=10)
            await until(lambda: not listener.bridges, 10)
        finally:
            await listener.stop()
        heard, _ = await person.recording()
    assert run.returncode == 0, run.explain()
    assert "SIP/2.0 603 Decline" in run.messages
    assert finished.error is None and finished.result is not None and finished.transport
    assert finished.transport.transfers == [(agent.profile.handoff_number, "bridge")]
    record = await agent.store.call_record(finished.result.call_id)
    assert record["outcome"] == "escalated", record["outcome"]
    assert record["ended_at"] is not None
    words = await _transcribe(engines[0], heard)
    assert "appointment" in words and "week" in words, words  # relayed caller -> person
    # ... and the person's greeting (about 2 s of voice) went into the caller's RTP.
    assert finished.transport.rtp.relayed_voiced_frames >= 50
