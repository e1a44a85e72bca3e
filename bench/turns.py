"""Voice-to-voice latency of the whole call loop, per turn, with the per-stage breakdown.

Real calls on the loopback line (real time): a scripted caller asks questions and books,
the agent answers with the embedded defaults (Silero VAD, Whisper tiny.en, flow brain,
Piper). Voice-to-voice = the caller's last voiced audio -> the agent's first audio out, as
the agent's own timings record it; the same gap read off the call recording (the caller's
side of the wire) is printed beside it.

    .venv/bin/python bench/turns.py [--calls N]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).parent))

from _stats import summary
from frontdesk.agent import Agent, AgentOptions
from frontdesk.call.timings import TurnTimings
from frontdesk.demo import DEMO_SCRIPT
from frontdesk.evals.local_call import run_local_call
from frontdesk.evals.recording import CallRecording
from frontdesk.evals.scripted_caller import CallerLine

QUESTIONS = [
    CallerLine("Hi there, what are your hours?"),
    CallerLine("Where are you located?"),
    CallerLine("Is there parking nearby?"),
    CallerLine("Which insurance plans do you accept?"),
    CallerLine("How much is a cleaning without insurance?"),
]
STAGES = [
    ("endpoint wait", "caller_stopped", "turn_closed"),
    ("transcript after close", "turn_closed", "transcript_final"),
    ("brain first text", "transcript_final", "llm_first_token"),
    ("first chunk", "llm_first_token", "first_sentence"),
    ("TTS first audio", "first_sentence", "tts_first_audio"),
    ("to the wire", "tts_first_audio", "agent_audio_out"),
]


def stage(t: TurnTimings, start: str, end: str) -> float | None:
    a, b = getattr(t, start), getattr(t, end)
    return None if a is None or b is None else b - a


async def main(calls: int) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="frontdesk-bench-"))
    agent = await Agent.open(AgentOptions(database_url=f"sqlite:///{workdir / 'bench.db'}"))
    timings: list[TurnTimings] = []
    wire: list[float] = []
    try:
        for i in range(calls):
            script = [*QUESTIONS, *DEMO_SCRIPT] if i % 2 == 0 else DEMO_SCRIPT
            result = await run_local_call(agent, script, workdir / f"call{i}.wav")
            timings += [t for t in result.call.turn_timings if t.voice_to_voice is not None]
            recording = CallRecording.load(result.recording)
            for line in result.caller.log:
                if self_barged(line, result):
                    continue
                onset = recording.voice_onset("agent", line.voiced_end)
                if onset is not None:
                    wire.append(onset - line.voiced_end)
            print(
                f"call {i + 1}/{calls}: {result.record['outcome']}, "
                f"{len(result.call.turn_timings)} turns",
                flush=True,
            )
    finally:
        await agent.aclose()
    v2v = [t.voice_to_voice for t in timings if t.voice_to_voice is not None]
    print(f"\nvoice-to-voice, agent timings (ms):   {summary(v2v)}")
    print(f"voice-to-voice, on the recording (ms): {summary(wire)}")
    print("\nper stage (ms):")
    for name, start, end in STAGES:
        values = [v for t in timings if (v := stage(t, start, end)) is not None]
        print(f"  {name:24} {summary(values)}")


def self_barged(line, result) -> bool:
    """Lines spoken over the agent (barge-ins) have no turn gap to measure."""
    index = result.caller.log.index(line)
    return result.caller.lines[index].barge_in_ms is not None or not line.text.strip()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=3, help="calls to run (>= 20 turns: 3)")
    asyncio.run(main(parser.parse_args().calls))
