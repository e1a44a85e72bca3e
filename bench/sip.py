"""Voice-to-voice latency over SIP, measured on the wire and from the agent's own timings.

``frontdesk serve --sip`` runs as its own process (the embedded default models, a temporary
SQLite database). For each level N, sipp places N calls 250 ms apart; each caller waits for
the greeting, then asks the questions of bench/turns.py (flite, one continuous mu-law RTP
stream from a pcap), one every QUESTION_EVERY_S seconds, and hangs up. tcpdump records the
loopback meanwhile.

Two figures per level, the same measurement points as bench/turns.py and
bench/concurrency.py:
- on the wire: the caller's last voiced audio -> the agent's first voiced audio, read off
  the capture (both RTP directions of each call decoded onto one timeline at their capture
  times: what a caller's phone would hear);
- agent timings: the ``voice_to_voice_ms`` (``agent_audio_out - caller_stopped``) each
  caller turn stored in the database, with its per-stage breakdown.

It also checks each call's RTP clock on the wire: the mean and worst interval between the
agent's packets and how far the last one is from where a perfect 20 ms clock puts it.

    .venv/bin/python bench/sip.py [--levels 1,4] [--questions 5]

Needs sipp (Debian sip-tester), tcpdump, and root (or CAP_NET_RAW) for the capture.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import defaultdict
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).parent))

import numpy as np
from sqlalchemy import select

from _stats import summary
from frontdesk.audio.g711 import alaw_decode, ulaw_decode
from frontdesk.audio.resample import resample
from frontdesk.evals.recording import CallRecording
from frontdesk.speech.tts.command import FliteVoice
from frontdesk.store.db import Database
from frontdesk.store.models import Call as CallRow
from frontdesk.store.models import Turn
from frontdesk.transports.sip.message import SipParseError, SipResponse, parse_message
from frontdesk.transports.sip.pcap import Datagram, read_udp_pcap, write_rtp_pcap
from frontdesk.transports.sip.rtp_packet import RtpError, parse_rtp
from frontdesk.transports.sip.sdp import SdpError, parse_sdp
from turns import QUESTIONS

HOST = "127.0.0.1"
GREETING_S = 6.0
QUESTION_EVERY_S = 12.0
"""Room for the longest answer: a caller who spoke over the agent would be a barge-in."""
STAGES = [
    ("endpoint wait", "caller_stopped_ms", "turn_closed_ms"),
    ("transcript after close", "turn_closed_ms", "transcript_final_ms"),
    ("brain first text", "transcript_final_ms", "llm_first_token_ms"),
    ("first chunk", "llm_first_token_ms", "first_sentence_ms"),
    ("TTS first audio", "first_sentence_ms", "tts_first_audio_ms"),
    ("to the transport", "tts_first_audio_ms", "agent_audio_out_ms"),
]
SCENARIO = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="bench caller">
  <send retrans="500"><![CDATA[
INVITE sip:frontdesk@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:+1555[call_number]@[local_ip]:[local_port]>;tag=[pid]T[call_number]
To: <sip:frontdesk@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: 1 INVITE
Contact: <sip:caller@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Type: application/sdp
Content-Length: [len]

v=0
o=sipp 1 1 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 0 101
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
]]></send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="200" rrs="true"/>
  <send><![CDATA[
ACK [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:+1555[call_number]@[local_ip]:[local_port]>;tag=[pid]T[call_number]
[last_To:]
Call-ID: [call_id]
CSeq: 1 ACK
Max-Forwards: 70
Content-Length: 0
]]></send>
  <nop><action><exec play_pcap_audio="@PCAP@"/></action></nop>
  <pause milliseconds="@DURATION_MS@"/>
  <send retrans="500"><![CDATA[
BYE [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:+1555[call_number]@[local_ip]:[local_port]>;tag=[pid]T[call_number]
[last_To:]
Call-ID: [call_id]
CSeq: 2 BYE
Max-Forwards: 70
Content-Length: 0
]]></send>
  <recv response="200"/>
</scenario>
"""


def free_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def caller_audio(questions: int) -> np.ndarray:
    """Silence through the greeting, then each question at its slot, at 8 kHz."""

    async def speak(text: str) -> np.ndarray:
        frames = [f async for f in FliteVoice("slt").synthesize(text)]
        return resample(np.concatenate([f.pcm for f in frames]), frames[0].sample_rate, 8000)

    lines = [asyncio.run(speak(q.text)) for q in QUESTIONS[:questions]]
    total = GREETING_S + QUESTION_EVERY_S * len(lines)
    pcm = np.zeros(int(total * 8000), np.int16)
    for i, line in enumerate(lines):
        start = int((GREETING_S + i * QUESTION_EVERY_S) * 8000)
        pcm[start : start + len(line)] = line
    return pcm


def start_server(workdir: Path, sip_port: int) -> tuple[subprocess.Popen[bytes], str]:
    """``frontdesk serve --sip`` on free ports; returns the process and its database URL."""
    http_port = free_port(socket.SOCK_STREAM)
    db_url = f"sqlite:///{workdir / 'bench.db'}"
    env = {**os.environ, "FRONTDESK_DATABASE_URL": db_url}
    exe = Path(sys.executable).with_name("frontdesk")
    argv = [str(exe), "serve", "--port", str(http_port), "--sip", f"{HOST}:{sip_port}"]
    log = (workdir / "server.log").open("wb")
    process = subprocess.Popen(argv, env=env, stdout=log, stderr=log)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://{HOST}:{http_port}/healthz", timeout=1)
            return process, db_url
        except OSError:
            if process.poll() is not None:
                raise SystemExit(f"the server exited; see {workdir / 'server.log'}") from None
            time.sleep(0.2)
    process.terminate()
    raise SystemExit("the server did not come up in 180 s")


def run_level(n: int, sip_port: int, scenario: Path, seconds: float, workdir: Path) -> Path:
    """N sipp calls against the server while tcpdump records the loopback."""
    capture = workdir / f"level{n}.pcap"
    tcpdump = subprocess.Popen(
        ["tcpdump", "-i", "lo", "-U", "-s", "0", "-w", str(capture), "udp"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(1.0)  # tcpdump opens the interface
    sipp = [
        *["sipp", f"{HOST}:{sip_port}", "-sf", str(scenario), "-m", str(n), "-l", str(n)],
        *["-r", "4", "-rp", "1000", "-i", HOST, "-p", str(free_port(socket.SOCK_DGRAM))],
        *["-mi", HOST, "-mp", str(free_port(socket.SOCK_DGRAM)), "-nostdin", "-bg"],
        *["-timeout", f"{int(seconds + 60)}s", "-trace_err", "-error_file"],
        str(workdir / f"level{n}-sipp-errors.log"),
    ]
    started = subprocess.run(sipp, cwd=workdir, capture_output=True, text=True, check=False)
    pid = int(started.stdout.split("PID=[")[-1].split("]")[0]) if "PID=[" in started.stdout else 0
    if not pid:
        raise SystemExit(f"sipp did not start: {started.stdout}{started.stderr}")
    while Path(f"/proc/{pid}").exists():
        time.sleep(0.5)
    time.sleep(1.5)  # the last BYE's 200, the server's last turn timings
    tcpdump.send_signal(signal.SIGINT)
    tcpdump.wait(timeout=10)
    return capture


def calls_on_wire(
    capture: Path, sip_port: int
) -> tuple[dict[str, CallRecording], dict[str, list[float]]]:
    """Each call of a capture, both directions on one timeline, by SIP Call-ID; and the
    capture times of the agent's audio packets, to check its RTP clock."""
    datagrams = list(read_udp_pcap(capture))
    agent_ports: dict[int, str] = {}
    for d in datagrams:
        if d.src[1] != sip_port or not d.payload.startswith(b"SIP/2.0 200"):
            continue
        try:
            message = parse_message(d.payload)
            if isinstance(message, SipResponse) and message.cseq[1] == "INVITE":
                agent_ports[parse_sdp(message.body).port] = message.call_id
        except (SipParseError, SdpError):
            continue
    packets: dict[str, list[tuple[str, Datagram]]] = defaultdict(list)
    for d in datagrams:
        if d.src[1] in agent_ports:
            packets[agent_ports[d.src[1]]].append(("agent", d))
        elif d.dst[1] in agent_ports:
            packets[agent_ports[d.dst[1]]].append(("caller", d))
    sent = {
        call_id: [d.at for side, d in items if side == "agent" and _is_audio(d.payload)]
        for call_id, items in packets.items()
    }
    return {call_id: timeline(items) for call_id, items in packets.items()}, sent


def _is_audio(payload: bytes) -> bool:
    try:
        return parse_rtp(payload).payload_type in (0, 8)
    except RtpError:
        return False


def clock_check(times: list[float]) -> tuple[float, float, float]:
    """(mean interval ms, worst interval ms, drift ms over the call) of one call's packets:
    drift is how far the last packet is from where a perfect 20 ms clock would put it."""
    gaps = np.diff(np.asarray(times))
    drift = (times[-1] - times[0]) - 0.02 * (len(times) - 1)
    return 1000 * float(gaps.mean()), 1000 * float(gaps.max()), 1000 * drift


def timeline(items: list[tuple[str, Datagram]]) -> CallRecording:
    """Decoded RTP of both sides placed at their capture times (8 kHz)."""
    start = min(d.at for _, d in items)
    length = int((max(d.at for _, d in items) - start + 1) * 8000)
    sides = {"caller": np.zeros(length, np.int16), "agent": np.zeros(length, np.int16)}
    for side, d in items:
        try:
            packet = parse_rtp(d.payload)
        except RtpError:
            continue
        decode = {0: ulaw_decode, 8: alaw_decode}.get(packet.payload_type)
        if decode is None:
            continue  # telephone-event
        pcm = decode(packet.payload)
        at = int((d.at - start) * 8000)
        sides[side][at : at + len(pcm)] = pcm[: length - at]
    return CallRecording(sides["caller"], sides["agent"], 8000)


def wire_gaps(recording: CallRecording) -> tuple[list[float], int]:
    """Per caller utterance: its last voiced audio -> the agent's next voiced audio. Also
    counts utterances spoken over the agent (not a turn gap) or left unanswered."""
    gaps, skipped, position = [], 0, 0.0
    while (onset := recording.voice_onset("caller", position)) is not None:
        stop = recording.voice_stop("caller", onset, gap_s=0.8)
        if stop is None:
            break
        talking = recording.voiced_seconds("agent", onset - 0.1, stop) > 0
        answer = recording.voice_onset("agent", stop)
        if talking or answer is None or answer - stop > 5.0:
            skipped += 1
        else:
            gaps.append(answer - stop)
        position = stop + 0.5
    return gaps, skipped


def stored_turns(db: Database, call_ids: set[str]) -> list[dict]:
    """The timings each caller turn of these calls stored."""
    with db.session() as session:
        calls = [
            c.id for c in session.scalars(select(CallRow)) if c.meta.get("sip_call_id") in call_ids
        ]
        turns = session.scalars(select(Turn).where(Turn.call_id.in_(calls))).all()
        return [dict(t.timings) for t in turns if t.speaker == "caller" and t.timings]


def main(levels: list[int], questions: int) -> None:
    for program in ("sipp", "tcpdump"):
        if shutil.which(program) is None:
            raise SystemExit(f"{program} is not installed (apt-get install sip-tester tcpdump)")
    workdir = Path(tempfile.mkdtemp(prefix="frontdesk-sip-bench-"))
    pcm = caller_audio(questions)
    seconds = write_rtp_pcap(workdir / "caller.pcap", pcm)
    scenario = workdir / "caller.xml"
    text = SCENARIO.replace("@PCAP@", str(workdir / "caller.pcap"))
    scenario.write_text(text.replace("@DURATION_MS@", str(int(seconds * 1000) + 500)))
    sip_port = free_port(socket.SOCK_DGRAM)
    process, db_url = start_server(workdir, sip_port)
    db = Database(db_url)
    rows = []
    try:
        for n in levels:
            capture = run_level(n, sip_port, scenario, seconds, workdir)
            calls, sent = calls_on_wire(capture, sip_port)
            clocks = [clock_check(times) for times in sent.values() if len(times) > 50]
            results = [wire_gaps(recording) for recording in calls.values()]
            wire = [g for gaps, _ in results for g in gaps]
            skipped = sum(s for _, s in results)
            turns = stored_turns(db, set(calls))
            rows.append((n, len(calls), wire, skipped, turns, clocks))
            print(f"{n} call(s): {len(calls)} on the wire, wire {summary(wire)}", flush=True)
    finally:
        process.terminate()
        process.wait(timeout=30)
        db.dispose()
    print("\nvoice-to-voice over SIP (sipp callers, frontdesk serve --sip), ms")
    for n, seen, wire, skipped, turns, clocks in rows:
        agent = [t["voice_to_voice_ms"] / 1000 for t in turns if t.get("voice_to_voice_ms")]
        print(f"  {n} call(s) ({seen} captured)")
        print(f"    on the wire:    {summary(wire)}  (utterances not measured: {skipped})")
        print(f"    agent timings:  {summary(agent)}")
        for mean, worst, drift in clocks:
            print(
                f"    agent RTP clock: mean interval {mean:.3f} ms, worst {worst:.1f} ms, "
                f"drift over the call {drift:+.1f} ms"
            )
        for name, start, end in STAGES:
            values = [
                (t[end] - t[start]) / 1000
                for t in turns
                if t.get(end) is not None and t.get(start) is not None
            ]
            print(f"      {name:24} {summary(values)}")
    print(f"\n  capture and server log: {workdir}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", default="1", help="simultaneous calls per round, e.g. 1,4")
    parser.add_argument("--questions", type=int, default=5, help="caller lines per call (<= 5)")
    args = parser.parse_args()
    main([int(n) for n in args.levels.split(",")], args.questions)
