"""Whole calls (a scripted caller over the loopback line, heard by Whisper, answered in
Piper's voice) with the language-model brain. In the first, the demo's script, the endpoint
is a separate process killed outright in the middle of its second reply.

Everything else is production wiring from ``AgentOptions``: the calendar is a real Radicale
CalDAV server, and the finished call goes to a signed webhook through the database outbox.
What must hold: the caller hears the apology instead of silence, the flow brain carries on
from what the conversation established, the booking lands on the CalDAV calendar, the CRM
webhook receives the call, and each turn's timings include the first-token time.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import caldav
import pytest
from fastapi import FastAPI, Request, Response

from conftest import MONDAY_MORNING
from frontdesk.agent import Agent, AgentOptions
from frontdesk.brain.llm import LLMSettings
from frontdesk.brain.local_llm import free_port
from frontdesk.business.caldav_connection import CalDAVSettings
from frontdesk.call.contracts import CallConfig
from frontdesk.crm_sync import SyncSettings, WebhookSettings, verify_signature
from frontdesk.demo import DEMO_SCRIPT
from frontdesk.evals.local_call import run_local_call
from frontdesk.evals.recording import CallRecording
from frontdesk.evals.scripted_caller import CallerLine
from frontdesk.server.background import BackgroundServer
from llm_server import ScriptedLLM, serve_scripted, text_reply
from radicale_server import RadicaleServer, radicale

SECRET = "whsec-call-test-0123456789"
TESTS = Path(__file__).resolve().parent

# The model's side of the call: a first answer, then a second one that dies mid-sentence.
SCRIPT = [
    {"pieces": ["Sure, I can help with a cleaning. ", "Are you a new patient, ", "or have you "
                "been to see us before?"]},
    {"pieces": ["Welcome to ", "Bright Smile! ", "Could I have ", "your first and last name?"],
     "kill_after": 3, "gap_s": 0.2},
]  # fmt: skip


@dataclass
class KillableEndpoint:
    """The scripted OpenAI-compatible server as a child process."""

    process: subprocess.Popen[bytes]
    base_url: str
    requests: Path

    def sent(self) -> list[dict[str, Any]]:
        lines = self.requests.read_text().splitlines() if self.requests.exists() else []
        return [json.loads(line) for line in lines]


@pytest.fixture
def endpoint(tmp_path: Path) -> Iterator[KillableEndpoint]:
    script = tmp_path / "script.json"
    script.write_text(json.dumps(SCRIPT))
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, str(TESTS / "llm_server.py"), str(port), str(script), str(tmp_path / "r")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base_url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 20
    while True:
        try:
            urllib.request.urlopen(f"{base_url}/models", timeout=0.5).close()
            break
        except (urllib.error.URLError, OSError):
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                raise RuntimeError("the scripted model server did not start") from None
            time.sleep(0.1)
    yield KillableEndpoint(process, base_url, tmp_path / "r")
    if process.poll() is None:
        process.kill()
    process.wait()


@pytest.fixture
def caldav_server(tmp_path: Path) -> Iterator[RadicaleServer]:
    with radicale(tmp_path / "radicale") as running:
        yield running


@dataclass
class Receiver:
    """The business's webhook endpoint: keeps each delivery and checks its signature."""

    bodies: list[dict[str, Any]]

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/hooks/frontdesk")
        async def hook(request: Request) -> Response:
            body = await request.body()
            if not verify_signature(SECRET, body, request.headers):
                return Response(status_code=401)
            self.bodies.append(json.loads(body))
            return Response(status_code=204)

        return app


def llm_agent_options(
    tmp_path: Path,
    cache_dir: Path,
    base_url: str,
    *,
    first_token_timeout_s: float,
    between_tokens_timeout_s: float,
    **more: Any,
) -> AgentOptions:
    """An agent on the LLM brain talking to the test's model server at ``base_url``, on a
    fresh SQLite database, its clock on Monday morning; ``more`` sets other options."""
    return AgentOptions(
        database_url=f"sqlite:///{tmp_path / 'frontdesk.db'}",
        phrase_cache_dir=cache_dir,
        now=lambda: MONDAY_MORNING,
        brain="llm",
        llm=LLMSettings(
            base_url=base_url,
            model="scripted",
            first_token_timeout_s=first_token_timeout_s,
            between_tokens_timeout_s=between_tokens_timeout_s,
        ),
        **more,
    )


@pytest.mark.slow
@pytest.mark.asyncio(loop_scope="session")
async def test_endpoint_killed_mid_reply_the_flow_takes_the_call_and_books(
    engines: tuple,
    endpoint: KillableEndpoint,
    caldav_server: RadicaleServer,
    tmp_path: Path,
) -> None:
    stt, tts, cache_dir = engines
    staff = caldav.DAVClient(
        url=caldav_server.url, username=caldav_server.user, password=caldav_server.password
    )
    calendar = staff.principal().make_calendar(name="Front desk")
    receiver = Receiver([])
    hooks = BackgroundServer("127.0.0.1")
    await hooks.start(receiver.app())
    options = llm_agent_options(
        tmp_path,
        cache_dir,
        endpoint.base_url,
        first_token_timeout_s=3.0,
        between_tokens_timeout_s=2.0,
        calendar="caldav",
        caldav=CalDAVSettings(
            caldav_server.url, caldav_server.user, caldav_server.password, str(calendar.url)
        ),
        crm_sync=SyncSettings(
            webhook=WebhookSettings(url=f"{hooks.base_url}/hooks/frontdesk", secret=SECRET)
        ),
    )
    agent = await Agent.open(options, stt=stt, tts=tts)
    try:
        call = await run_local_call(agent, DEMO_SCRIPT, tmp_path / "call.wav")
        for _ in range(100):  # the outbox worker delivers in the background
            if receiver.bodies:
                break
            await asyncio.sleep(0.1)
    finally:
        await agent.aclose()
        await hooks.stop()

    record = call.record
    assert endpoint.process.poll() == -9, "the model server was to die mid-reply"
    assert len(endpoint.sent()) == 2  # the retry found nothing listening

    agent_lines = [t["text"] for t in record["turns"] if t["speaker"] == "agent"]
    assert agent_lines[1].startswith("Sure, I can help with a cleaning.")
    apology = agent_lines[2]
    assert apology.startswith("Welcome to Bright Smile!") and "Sorry, one moment." in apology
    assert "name" in apology.split("Sorry, one moment.")[1]  # the flow asks what is missing

    assert record["outcome"] == "booked"
    assert record["contact"]["name"] == "Maria Lopez"
    assert not record["appointments"]  # not in the app database: the calendar is CalDAV
    [booked] = [t for t in record["tool_calls"] if t["name"] == "book_appointment"]
    assert booked["status"] == "done"
    start = datetime.fromisoformat(booked["result"]["start"])
    assert start.date() == date(2026, 11, 26) and start.hour >= 12  # Thursday afternoon

    # The booking is on the CalDAV calendar, as the staff's own client sees it.
    day = datetime(2026, 11, 26, tzinfo=start.tzinfo)
    events = calendar.search(start=day, end=day + timedelta(days=1), event=True, expand=True)
    assert len(events) == 1 and "Maria Lopez" in events[0].data
    staff.close()

    # The CRM webhook got the finished call, signed, from the outbox.
    [delivery] = receiver.bodies
    assert delivery["event"] == "call.completed"
    assert delivery["call"]["id"] == call.call.call_id
    assert delivery["call"]["outcome"] == "booked"

    # First-token time is stored with each answered caller turn.
    caller_turns = [t for t in record["turns"] if t["speaker"] == "caller"]
    timed = [t["timings"] for t in caller_turns[:-1]]
    assert all(t.get("llm_first_token_ms") is not None for t in timed), timed
    assert all(t.get("voice_to_voice_ms") for t in timed), timed


@pytest.fixture
def stalling_model() -> Iterator[ScriptedLLM]:
    yield from serve_scripted()


@pytest.mark.asyncio(loop_scope="session")
async def test_a_stalled_model_gets_filler_lines_not_dead_air(
    engines: tuple, stalling_model: ScriptedLLM, tmp_path: Path
) -> None:
    """The model stalls before its first word; the caller hears a short line after 1.2 s of
    silence, a second, different one if it goes on, then the apology when the model times
    out, then the retried answer. Each filler once, and all of it in the record as heard."""
    stt, tts, cache_dir = engines
    stalled = text_reply("We open at eight.")
    stalled.stall_after = 1  # the role chunk, then nothing
    answer = "We're open Monday to Friday, from eight to five. "
    stalling_model.script = [stalled, text_reply(answer)]
    config = CallConfig(think_filler_after_s=1.2, think_filler_again_s=2.0)
    options = llm_agent_options(
        tmp_path,
        cache_dir,
        stalling_model.base_url,
        first_token_timeout_s=5.0,
        between_tokens_timeout_s=5.0,
        call=config,
    )
    agent = await Agent.open(options, stt=stt, tts=tts)
    try:
        result = await run_local_call(
            agent,
            [
                CallerLine("What are your hours?"),
                # long enough not to take the silences between fillers for the end
                CallerLine("", hang_up=True, delay_ms=3000),
            ],
            tmp_path / "call.wav",
        )
    finally:
        await agent.aclose()

    [first, second] = config.think_filler_lines
    [reply] = [t["text"] for t in result.record["turns"] if t["speaker"] == "agent"][1:]
    order = [
        reply.find(first),
        reply.find(second),
        reply.find("Sorry, one moment."),
        reply.find(answer.strip()),
    ]
    assert -1 not in order and order == sorted(order), reply
    assert reply.count(first) == 1 and reply.count(second) == 1, reply  # once per wait
    print(f"\nthe caller heard: {reply!r}")

    # The caller heard the agent within the filler delay of the end of their turn, not after
    # the five seconds the model took to fail.
    line = result.caller.log[0]
    recording = CallRecording.load(result.recording)
    onset = recording.voice_onset("agent", line.voiced_end)
    assert onset is not None
    assert 1.2 <= onset - line.voiced_end <= 2.5, (
        f"agent spoke {onset - line.voiced_end:.2f} s after"
    )
    # The turn's timings stay honest: the brain's first words came late.
    [timings] = [t["timings"] for t in result.record["turns"] if t["speaker"] == "caller"][:1]
    assert timings["llm_first_token_ms"] > 4500, timings
