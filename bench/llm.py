"""The language-model brain on a packaged local model: first-token and full-turn times.

Part 1 (always): llama-cpp-python's server with a packaged Qwen2.5-Coder model (``--model``:
qwen2.5-coder-1.5b, the default, or qwen2.5-coder-0.5b, or a GGUF file) on this machine's
CPU; the LLMBrain talks to it over HTTP with the real front-desk tools on a SQLite calendar,
through a booking conversation and an FAQ conversation, ``--runs`` times each. Per caller
turn: time to the first token the caller would hear, time to the model's first token of any
kind (a tool call's included), and the whole turn (tool rounds included).

Part 2 (``--call``): the demo call (scripted caller, Whisper, Piper, loopback line) with
``brain=llm`` on the same packaged model; voice-to-voice per turn from the agent's timings.

    .venv/bin/python bench/llm.py [--runs 3] [--call] [--threads N] [--model NAME|FILE.gguf]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).parent))

from _stats import summary
from frontdesk.agent import Agent, AgentOptions
from frontdesk.brain.base import Message, TextDelta, ToolCall, ToolResult, TurnContext
from frontdesk.brain.llm import LLMBrain, LLMTurnTimings
from frontdesk.brain.local_llm import (
    DEFAULT_LOCAL_MODEL,
    LOCAL_MODELS,
    LocalLLMServer,
    local_model,
    model_path,
)
from frontdesk.brain.profile import load_profile
from frontdesk.brain.tools import ToolRunner
from frontdesk.business.calendar import SQLCalendar
from frontdesk.business.crm import SQLCRM
from frontdesk.business.toolset import FrontDeskEnv, frontdesk_tools
from frontdesk.demo import DEMO_SCRIPT
from frontdesk.evals.local_call import run_local_call
from frontdesk.store import CallStore, Database

NOW = datetime(2026, 11, 23, 9, 30, tzinfo=ZoneInfo("America/New_York"))
CONVERSATIONS = {
    "booking": [
        "Hi, I'd like to book a cleaning, please.",
        "I'm a new patient.",
        "My name is Maria Lopez.",
        "Do you have anything Thursday afternoon?",
        "The first one works for me.",
        "No, that is everything, thanks.",
    ],
    "questions": [
        "What are your hours?",
        "Where are you located?",
        "Is there parking?",
        "Which insurance plans do you accept?",
    ],
}


async def converse(
    server: LocalLLMServer, db: Database, lines: list[str], show: bool
) -> list[LLMTurnTimings]:
    """One conversation on a fresh call record; the brain's timings of each turn."""
    profile = load_profile()
    hours = profile.business_hours()
    store = CallStore(db)
    call_id = await store.start_call("inbound", "local", "+15551230000")
    env = FrontDeskEnv(
        calendar=SQLCalendar(db, hours, now=lambda: NOW),
        crm=SQLCRM(db),
        store=store,
        call_id=call_id,
        caller_number="+15551230000",
        hours=hours,
        service_minutes={s.name: s.duration_minutes for s in profile.services},
        handoff_number=profile.handoff_number,
        now=lambda: NOW,
    )
    runner = ToolRunner(frontdesk_tools(), env, store, call_id)

    async def run_tool(call: ToolCall) -> ToolResult:
        return await runner.run(call, "r1", lambda: True)

    brain = LLMBrain(profile, server.settings(max_tokens=80), now=lambda: NOW)
    history = [Message("agent", brain.greeting())]
    timings = []
    try:
        for line in lines:
            history.append(Message("caller", line))
            context = TurnContext(call_id, "+15551230000", list(history), run_tool)
            said = []
            try:
                async for event in brain.respond(line, context):
                    if isinstance(event, TextDelta):
                        said.append(event.text)
            except Exception as error:  # a bench reports, it does not stop
                said.append(f"[{type(error).__name__}: {error}]")
            history.append(Message("agent", "".join(said)))
            if brain.last_turn_timings is not None:
                timings.append(brain.last_turn_timings)
            if show:
                t = brain.last_turn_timings
                first = f"{t.first_text_s:.2f}" if t and t.first_text_s else "-"
                total = f"{t.total_s:.2f}" if t and t.total_s else "-"
                print(f"    caller: {line}\n    agent ({first} s / {total} s): {''.join(said)}")
    finally:
        await brain.aclose()
    return timings


async def brain_bench(runs: int, threads: int | None, model: str) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="frontdesk-bench-llm-"))
    gguf = model_path(local_model(model)) if model in LOCAL_MODELS else Path(model)
    print(f"model: {gguf.name}")
    server = LocalLLMServer(gguf, threads=threads)
    started = time.monotonic()
    await server.start(timeout_s=300)
    print(f"local model server up in {time.monotonic() - started:.1f} s ({server.threads} threads)")
    try:
        warm = LLMBrain(load_profile(), server.settings(first_token_timeout_s=300), now=lambda: NOW)
        print(f"system prompt + tools read cold in {await warm.warm_up():.1f} s")
        await warm.aclose()
        by_kind: dict[str, list[LLMTurnTimings]] = {"plain": [], "tools": []}
        for run in range(runs):
            for name, lines in CONVERSATIONS.items():
                db = Database(f"sqlite:///{workdir / f'{name}-{run}.db'}")
                db.create_all()
                if run == 0:
                    print(f"  {name}:")
                for t in await converse(server, db, lines, show=run == 0):
                    by_kind["tools" if t.tool_calls else "plain"].append(t)
                db.dispose()
    finally:
        await server.stop()
    groups = {"all": by_kind["plain"] + by_kind["tools"], **by_kind}
    print("\nms, per caller turn (all turns / turns without tools / turns with tool calls):")
    for label, attribute in (
        ("first token heard", "first_text_s"),
        ("first token of any kind", "first_token_s"),
        ("whole turn", "total_s"),
    ):
        for kind, turns in groups.items():
            values = [v for t in turns if (v := getattr(t, attribute)) is not None]
            print(f"  {label:24s} {kind:5s} {summary(values)}")


async def call_bench(model: str) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="frontdesk-bench-llm-call-"))
    database_url = f"sqlite:///{workdir / 'call.db'}"
    options = AgentOptions(database_url=database_url, brain="llm", local_model=model)
    agent = await Agent.open(options)
    try:
        result = await run_local_call(agent, DEMO_SCRIPT, workdir / "call.wav")
    finally:
        await agent.aclose()
    print(f"\ndemo call with brain=llm: outcome {result.record['outcome']}")
    for turn in result.record["turns"]:
        timing = turn["timings"] or {}
        extra = ""
        if turn["speaker"] == "caller":
            extra = (
                f"  [first token {timing.get('llm_first_token_ms')} ms, "
                f"voice-to-voice {timing.get('voice_to_voice_ms')} ms]"
            )
        print(f"  {turn['speaker']:6s} {turn['text']}{extra}")
    v2v = [t.voice_to_voice for t in result.call.turn_timings if t.voice_to_voice is not None]
    first = [
        t.llm_first_token - t.transcript_final
        for t in result.call.turn_timings
        if t.llm_first_token is not None and t.transcript_final is not None
    ]
    print(f"  voice-to-voice ms          {summary(v2v)}")
    print(f"  transcript -> first token  {summary(first)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--call", action="store_true", help="also run the demo call on it")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument(
        "--model", default=DEFAULT_LOCAL_MODEL, help=f"{', '.join(LOCAL_MODELS)}, or a GGUF file"
    )
    args = parser.parse_args()
    asyncio.run(brain_bench(args.runs, args.threads, args.model))
    if args.call:
        if args.model not in LOCAL_MODELS:
            parser.error("--call runs a packaged model: name one of " + ", ".join(LOCAL_MODELS))
        asyncio.run(call_bench(args.model))


if __name__ == "__main__":
    main()
