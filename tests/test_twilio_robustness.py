"""The Twilio server under abuse and load: a thousand random and mutated messages, several
calls at once (one of them dropped mid-greeting), and DTMF over the socket. Real uvicorn on
loopback, real websockets, the real agent."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import random
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import websockets

from frontdesk.agent import Agent
from frontdesk.evals.scripted_caller import CallerLine
from frontdesk.evals.twilio_webhook import answer_webhook, new_sid
from frontdesk.server import ServerSettings, create_app
from frontdesk.server.background import BackgroundServer
from frontdesk.transports.twilio_control import TwilioCallControl, TwilioCredentials
from twilio_support import (
    AUTH_TOKEN,
    RecordingHttpClient,
    call_record,
    place_call,
    serving,
    words,
)

pytestmark = pytest.mark.asyncio(loop_scope="session")

FUZZ_MESSAGES = 1200
ACCOUNT = "AC" + "1" * 32
DATA = Path(__file__).parent / "data" / "twilio"


@pytest_asyncio.fixture(loop_scope="session")
async def server(agent: Agent) -> AsyncIterator[BackgroundServer]:
    async with serving(agent) as running:
        yield running


def live_calls(server: BackgroundServer) -> int:
    assert server.app is not None
    return len(server.app.state.frontdesk.live_calls)


async def until_idle(server: BackgroundServer, timeout_s: float = 10.0) -> None:
    """Wait until the server has no live call (each ended call saved and released)."""
    for _ in range(int(timeout_s / 0.05)):
        if live_calls(server) == 0:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{live_calls(server)} calls still live after {timeout_s} s")


def _templates(stream_sid: str, rng: random.Random) -> list[dict[str, Any]]:
    """Well-formed messages of every inbound kind but ``stop`` (mutations start here)."""
    payload = base64.b64encode(rng.randbytes(160)).decode("ascii")
    return [
        {
            "event": "media",
            "streamSid": stream_sid,
            "sequenceNumber": "7",
            "media": {"track": "inbound", "chunk": "3", "timestamp": "60", "payload": payload},
        },
        {"event": "mark", "streamSid": stream_sid, "mark": {"name": "r1/0:100"}},
        {
            "event": "dtmf",
            "streamSid": stream_sid,
            "dtmf": {"track": "inbound_track", "digit": "5"},
        },
        {"event": "connected", "protocol": "Call", "version": "1.0.0"},
        {
            "event": "start",
            "streamSid": stream_sid,
            "start": {
                "streamSid": stream_sid,
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
            },
        },
    ]


_ODD_VALUES: list[Any] = [
    None,
    True,
    0,
    -1,
    2**70,
    1e308,
    "",
    "x" * 5000,
    [],
    {},
    [1, [2, [3]]],
    {"a": {"b": None}},
    "\u0000\ud7ff",
    "stop",
    "media",
]


def _mutate(value: Any, rng: random.Random) -> Any:
    """``value`` with one key dropped, replaced by an odd value, or recursed into."""
    if isinstance(value, dict) and value:
        key = rng.choice(sorted(value))
        mutated = dict(value)
        roll = rng.random()
        if roll < 0.3:
            del mutated[key]
        elif roll < 0.7:
            mutated[key] = rng.choice(_ODD_VALUES)
        else:
            mutated[key] = _mutate(value[key], rng)
        return mutated
    return rng.choice(_ODD_VALUES)


def fuzz_messages(stream_sid: str, seed: int) -> Iterator[str | bytes]:
    """Random and mutated Media Streams messages, never a well-formed ``stop``."""
    rng = random.Random(seed)
    templates = _templates(stream_sid, rng)
    while True:
        roll = rng.random()
        template = rng.choice(templates)
        text = json.dumps(template)
        if roll < 0.10:
            yield rng.randbytes(rng.randint(0, 300))  # a binary frame
        elif roll < 0.20:
            yield "".join(chr(rng.randint(32, 126)) for _ in range(rng.randint(0, 200)))
        elif roll < 0.35:
            yield text[: rng.randint(0, len(text) - 1)]  # truncated
        elif roll < 0.50:
            chars = list(text)
            for _ in range(rng.randint(1, 5)):
                chars[rng.randrange(len(chars))] = chr(rng.randint(0, 0x2FF))
            yield "".join(chars)  # corrupted characters
        elif roll < 0.55:
            yield "[" * 5000 + "]" * 5000  # deep nesting
        elif roll < 0.60:
            yield json.dumps(
                {**template, "media": {"payload": "Infinity", "timestamp": float("inf")}}
            )
        elif roll < 0.65:
            yield json.dumps({**template, "streamSid": "MZ" + rng.randbytes(16).hex()})
        else:
            mutated = template
            for _ in range(rng.randint(1, 3)):
                mutated = _mutate(mutated, rng)
            if isinstance(mutated, dict) and mutated.get("event") == "stop":
                continue
            yield json.dumps(mutated)


async def _open_stream(server: BackgroundServer) -> tuple[Any, str]:
    """A signed webhook, then a media socket with a valid start: a live call to abuse."""
    call_sid = new_sid("CA")
    invitation = await answer_webhook(
        f"{server.base_url}/twilio/voice",
        call_sid=call_sid,
        caller_number="+15551230000",
        auth_token=AUTH_TOKEN,
    )
    ws = await websockets.connect(invitation.url, ping_interval=None, max_size=2**22)
    stream_sid = new_sid("MZ")
    start = {
        "event": "start",
        "streamSid": stream_sid,
        "start": {
            "streamSid": stream_sid,
            "callSid": call_sid,
            "tracks": ["inbound"],
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
            "customParameters": dict(invitation.parameters),
        },
    }
    await ws.send(json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}))
    await ws.send(json.dumps(start))
    return ws, stream_sid


async def _drain(ws: Any) -> None:
    """Read the agent's messages so its sends never back up."""
    try:
        async for _ in ws:
            pass
    except websockets.ConnectionClosed:
        pass


async def test_a_thousand_malformed_messages_then_a_normal_call(
    agent: Agent, server: BackgroundServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    sent = streams = 0
    while sent < FUZZ_MESSAGES:
        # A mutated message may legitimately end a call (a valid "0" key press hands the
        # caller to a person): the fuzzer then opens another stream and goes on.
        ws, stream_sid = await _open_stream(server)
        streams += 1
        reader = asyncio.create_task(_drain(ws))
        try:
            for message in fuzz_messages(stream_sid, seed=streams):
                await ws.send(message)
                sent += 1
                if sent % 50 == 0:
                    await asyncio.sleep(0.01)
                if sent >= FUZZ_MESSAGES or reader.done():
                    break
            await ws.close()
        except websockets.ConnectionClosed:
            pass
        await reader
    # Messages sent before any start, on a socket that never presents a token.
    async with websockets.connect(server.base_url.replace("http", "ws") + "/twilio/media") as ws:
        for message in fuzz_messages(new_sid("MZ"), seed=999):
            await ws.send(message)
            sent += 1
            if sent >= FUZZ_MESSAGES + 200:
                break

    await until_idle(server)
    failures = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert failures == [], [r.getMessage() for r in failures]
    # Logged once per kind and stream, not once per message.
    ignored = [r for r in caplog.records if "ignoring" in r.getMessage()]
    assert 0 < len(ignored) <= 15 * streams, len(ignored)

    log = await place_call(server, tmp_path, CallerLine("What are your hours?"))
    assert log.protocol_errors == []
    record = await call_record(agent, log.call_sid)
    callers = [t["text"] for t in record["turns"] if t["speaker"] == "caller"]
    assert len(callers) == 1 and "hours" in words(callers[0]), callers
    answers = " ".join(t["text"] for t in record["turns"] if t["speaker"] == "agent")
    assert "open" in words(answers), answers
    print(f"\nfuzz: {sent} messages over {streams} streams; then a normal call answered")


async def test_calls_at_once_are_isolated_and_a_dropped_one_is_saved(
    agent: Agent, server: BackgroundServer, tmp_path: Path
) -> None:
    hours, parking, dropped = await asyncio.gather(
        place_call(server, tmp_path, CallerLine("What are your hours?")),
        place_call(server, tmp_path, CallerLine("Is there parking?"), voice="rms"),
        place_call(
            server,
            tmp_path,
            CallerLine("", hang_up=True, barge_in_ms=800),
            hang_up_by_dropping=True,
        ),
    )
    assert any(e.kind == "dropped" for e in dropped.events)
    await until_idle(server)

    # Each call's record holds its own caller and its own answers, nothing of the others.
    for log, asked, answered, other in (
        (hours, "hours", "open", "parking"),
        (parking, "parking", "lot", "hours"),
    ):
        record = await call_record(agent, log.call_sid)
        said = " ".join(t["text"] for t in record["turns"] if t["speaker"] == "caller")
        answers = " ".join(t["text"] for t in record["turns"] if t["speaker"] == "agent")
        assert asked in words(said) and other not in words(said), said
        assert answered in words(answers), answers
        assert record["ended_at"] is not None

    # The dropped call ended when its socket died, and its record was saved.
    record = await call_record(agent, dropped.call_sid)
    assert record["ended_at"] is not None
    assert record["outcome"] == "dropped"
    assert [t["speaker"] for t in record["turns"]] == ["agent"]
    assert record["turns"][0]["interrupted"], "the greeting was cut off by the drop"


async def test_a_key_press_over_the_socket_reaches_a_person(
    agent: Agent, server: BackgroundServer, tmp_path: Path
) -> None:
    log = await place_call(server, tmp_path, CallerLine(dtmf="0"))
    assert log.protocol_errors == []
    assert "dtmf_out" in {e.kind for e in log.events}
    record = await call_record(agent, log.call_sid)
    assert [t["text"] for t in record["turns"] if t["speaker"] == "caller"] == ["[keys 0]"]
    assert record["outcome"] == "escalated"
    assert log.ended_by == "agent", "the agent handed the call over and closed the stream"
    handoff = [t for t in record["tool_calls"] if t["name"] == "transfer_to_human"]
    assert len(handoff) == 1 and handoff[0]["status"] == "done", record["tool_calls"]
    # The caller heard the hand-off line before the stream closed.
    pressed = log.times("dtmf_out")[0]
    assert any(e.kind == "media_in" and e.at > pressed for e in log.events)


async def test_a_transfer_redirects_the_live_call_through_twilios_rest_api(
    agent: Agent, tmp_path: Path
) -> None:
    """With REST call control configured, the hand-off becomes a Calls update whose TwiML
    dials the practice's number, sent after the agent's own hand-off line played."""
    answer = (DATA / "call_update_response.json").read_text()
    http = RecordingHttpClient((200, answer))
    control = TwilioCallControl(TwilioCredentials(ACCOUNT, auth_token=AUTH_TOKEN), http_client=http)
    running = BackgroundServer("127.0.0.1")
    settings = ServerSettings(auth_token=AUTH_TOKEN, public_url=running.base_url)
    await running.start(create_app(agent, settings, call_control=control))
    try:
        log = await place_call(running, tmp_path, CallerLine(dtmf="0"))
    finally:
        await running.stop()
    assert len(http.sent) == 1, http.sent
    sent = http.sent[0]
    assert sent.method == "POST"
    assert (
        sent.url
        == f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT}/Calls/{log.call_sid}.json"
    )
    assert sent.auth == (ACCOUNT, AUTH_TOKEN)
    assert sent.data is not None
    dial = ET.fromstring(sent.data["Twiml"]).find("Dial")
    assert dial is not None and dial.text == agent.profile.handoff_number
    # The agent said its line itself before the redirect (no second line in Twilio's voice).
    assert ET.fromstring(sent.data["Twiml"]).find("Say") is None
    record = await call_record(agent, log.call_sid)
    assert record["outcome"] == "escalated"
    agent_lines = [t for t in record["turns"] if t["speaker"] == "agent"]
    assert not agent_lines[-1]["interrupted"], "the hand-off line played to the end"
