"""Voice-to-voice latency with 1, 2, 4 and 8 simultaneous calls on one ``frontdesk serve``.

The server runs as its own process (``frontdesk serve``, the embedded default models, a
temporary SQLite database); this process plays Twilio: for each call it signs the voice
webhook, opens the Media Stream and speaks five questions in real time from a scripted
caller (flite voices), recording both directions. Starts are staggered by 250 ms so the
calls overlap without marching in lockstep.

Two figures per level:
- on the wire: the caller's last voiced audio -> the agent's first voiced audio, read off
  the caller's recording (what a caller hears);
- agent timings: the ``voice_to_voice_ms`` each caller turn stored in the database.

    .venv/bin/python bench/concurrency.py [--levels 1,2,4,8] [--questions 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).parent))

from sqlalchemy import select

from _stats import summary
from frontdesk.evals.recording import CallRecording
from frontdesk.evals.scripted_caller import ScriptedCaller
from frontdesk.evals.twilio_caller import TwilioCallLog, call_server
from frontdesk.speech.tts.command import FliteVoice
from frontdesk.store.db import Database
from frontdesk.store.models import Call as CallRow
from frontdesk.store.models import Turn
from turns import QUESTIONS

TOKEN = "bench-auth-token"
VOICES = ["slt", "rms", "awb", "kal"]
STAGGER_S = 0.25
PIPECAT_AT_8 = "Pipecat, same models, 8 calls: median 1039 / p90 1679 ms"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(workdir: Path) -> tuple[subprocess.Popen[bytes], str, str]:
    """``frontdesk serve`` on a free port; returns the process, base URL and database URL."""
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    db_url = f"sqlite:///{workdir / 'bench.db'}"
    env = {
        **os.environ,
        "TWILIO_AUTH_TOKEN": TOKEN,
        "FRONTDESK_PUBLIC_URL": base_url,
        "FRONTDESK_DATABASE_URL": db_url,
    }
    exe = Path(sys.executable).with_name("frontdesk")
    log = (workdir / "server.log").open("wb")
    process = subprocess.Popen(
        [str(exe), "serve", "--port", str(port)], env=env, stdout=log, stderr=log
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"{base_url}/healthz", timeout=1)
            return process, base_url, db_url
        except OSError:
            if process.poll() is not None:
                raise SystemExit(f"the server exited; see {workdir / 'server.log'}") from None
            time.sleep(0.2)
    process.terminate()
    raise SystemExit("the server did not come up in 120 s")


async def one_call(base_url: str, index: int, lines: int, workdir: Path) -> TwilioCallLog:
    caller = ScriptedCaller(list(QUESTIONS[:lines]))
    await caller.prepare(FliteVoice(VOICES[index % len(VOICES)]))
    await asyncio.sleep(index * STAGGER_S)
    return await call_server(
        base_url,
        caller,
        auth_token=TOKEN,
        caller_number=f"+1555{index:07d}",
        recording_path=workdir / f"call-{time.monotonic_ns()}.wav",
    )


def wire_gaps(log: TwilioCallLog) -> list[float]:
    """Caller's last voiced audio -> agent's first voiced audio, per line, on the recording."""
    assert log.recording is not None
    recording = CallRecording.load(log.recording)
    gaps = []
    for line in log.caller.log:
        onset = recording.voice_onset("agent", line.voiced_end)
        if line.voiced_end > line.voiced_start and onset is not None:
            gaps.append(onset - line.voiced_end)
    return gaps


def agent_gaps(db: Database, call_sids: set[str]) -> list[float]:
    """The voice-to-voice the agent recorded for each caller turn of these calls."""
    with db.session() as session:
        calls = [
            c.id for c in session.scalars(select(CallRow)) if c.meta.get("call_sid") in call_sids
        ]
        turns = session.scalars(select(Turn).where(Turn.call_id.in_(calls))).all()
        values = [t.timings.get("voice_to_voice_ms") for t in turns if t.speaker == "caller"]
    return [v / 1000 for v in values if v is not None]


async def main(levels: list[int], questions: int) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="frontdesk-concurrency-"))
    process, base_url, db_url = start_server(workdir)
    db = Database(db_url)
    rows = []
    try:
        for n in levels:
            logs = await asyncio.gather(
                *(one_call(base_url, i, questions, workdir) for i in range(n))
            )
            await asyncio.sleep(1.0)  # the server saves each call's last turn timings
            wire = [g for log in logs for g in wire_gaps(log)]
            agent = agent_gaps(db, {log.call_sid for log in logs})
            late = sum(e.kind == "late_tick" for log in logs for e in log.events)
            rows.append((n, wire, agent, late))
            print(f"{n} calls: wire {summary(wire)}", flush=True)
    finally:
        process.terminate()
        process.wait(timeout=30)
        db.dispose()
    print("\nvoice-to-voice, simultaneous Twilio calls on one server (ms)")
    for n, wire, agent, late in rows:
        print(f"  {n} call(s)  on the wire:    {summary(wire)}")
        print(f"             agent timings: {summary(agent)}  late caller ticks: {late}")
    print(f"\n  ({PIPECAT_AT_8}; target here: 8 calls p90 < 800 ms)")
    print(f"  server log: {workdir / 'server.log'}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", default="1,2,4,8", help="simultaneous calls per round")
    parser.add_argument("--questions", type=int, default=5, help="caller lines per call (<= 5)")
    args = parser.parse_args()
    asyncio.run(main([int(n) for n in args.levels.split(",")], args.questions))
