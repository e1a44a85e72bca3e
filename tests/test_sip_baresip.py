"""The agent against baresip, a real SIP phone, on 127.0.0.1: the agent calls it (baresip
records what it hears and sees our RFC 4733 keys), and baresip calls the agent and holds a
whole booking conversation, driven over its ``ctrl_tcp`` interface."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from baresip_peer import baresip, write_mic_wav
from frontdesk.agent import Agent
from frontdesk.audio import AudioFrame
from frontdesk.audio.resample import resample
from frontdesk.transports.sip import SipListener, SipSettings
from sip_peers import HOST

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
            keys = [await phone.wait_event("CALL_DTMF_START", 5)]
            while len(keys) < 3:
                await asyncio.sleep(0.1)
                keys = [e for e in phone.events if e.get("type") == "CALL_DTMF_START"]
            await phone.command("hangup")
            finished = await asyncio.wait_for(call, 15)
        finally:
            await listener.stop()
        heard, rate = await phone.recording()
    assert [e.get("param") for e in keys] == ["4", "2", "#"], keys
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
