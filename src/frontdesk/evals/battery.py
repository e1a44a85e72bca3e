"""Running a battery: each scenario is one real call to a running ``frontdesk serve``,
over Twilio Media Streams or SIP/RTP, measured from the caller's side.

Per scenario the simulated caller (a flite voice, never the agent's) places the call
(Twilio: signs the voice webhook and opens the media stream; SIP: INVITE and RTP) and
follows its script in real time, in noise if the scenario says so, recording both
directions. After the call, and off the call's clock, it transcribes what the agent said
from its own recording, and reads the outcome and the agent's own per-turn timings back
from the business's database and the booking from the business's calendar (the database,
or the CalDAV server): never from the agent's word.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import numpy as np

from frontdesk.audio import AudioFrame, frame_samples
from frontdesk.audio.noise import active_level_db, babble, car_rumble, pink_noise
from frontdesk.evals.backends import (
    CalDAVSettings,
    caldav_bookings,
    fetch_record,
    on_caller_clock,
)
from frontdesk.evals.call_log import WIRE_RATE, CallLog
from frontdesk.evals.recording import CallRecording
from frontdesk.evals.scenario import NoiseSpec, Scenario
from frontdesk.evals.scripted_caller import ScriptedCaller, synthesize
from frontdesk.evals.sip_caller import SipCallLog, call_sip
from frontdesk.evals.twilio_caller import call_server
from frontdesk.speech.stt.base import STT
from frontdesk.speech.tts.command import FliteVoice
from frontdesk.transports.sip import SipCallFailed

REPLY_GAP_S = 0.7
"""Silence that separates two agent utterances on the recording."""
BABBLE_VOICES = ("awb", "kal", "rms", "slt")
BABBLE_LINES = (
    "Did you see the game last night? It went into overtime.",
    "I think the bus was late again this morning, so I walked.",
    "We should get lunch at that new place on the corner.",
    "She said the meeting moved to three, but nobody told me.",
)


class BatteryError(RuntimeError):
    """The battery cannot run: the agent cannot be reached or answers something else."""


@dataclass(frozen=True, slots=True)
class Target:
    """Where the agent under test answers, and where its business data can be read."""

    base_url: str | None
    """http(s)://host:port of ``frontdesk serve`` (a ws(s):// URL is accepted too)."""
    auth_token: str | None = None
    """The server's TWILIO_AUTH_TOKEN, to sign the voice webhook like Twilio does."""
    database_url: str | None = None
    """The agent's database, to verify outcomes, contacts and handoffs independently (and
    bookings, unless its calendar is on a CalDAV server)."""
    sip_uri: str | None = None
    """Call the agent here over SIP (``sip:agent@host:port``) instead of over Twilio."""
    caldav: CalDAVSettings | None = None
    """The CalDAV calendar the agent books on: bookings are read back from it."""

    @property
    def name(self) -> str:
        """How the scorecard names the agent."""
        return self.sip_uri or self.http_url

    @property
    def http_url(self) -> str:
        """The base URL as http(s), with any path dropped."""
        if self.base_url is None:
            raise ValueError("no server URL to call over Twilio Media Streams")
        parts = urlsplit(self.base_url)
        scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
        if scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"not a server URL: {self.base_url!r}")
        return urlunsplit((scheme, parts.netloc, "", "", ""))


@dataclass(frozen=True, slots=True)
class HeardReply:
    """One agent utterance as the caller heard it: when, and the words (transcribed)."""

    start: float
    end: float
    text: str


@dataclass(slots=True)
class ScenarioRun:
    """Everything one scenario call produced."""

    scenario: Scenario
    log: CallLog
    recording: Path
    heard: list[HeardReply]
    record: dict[str, Any] | None
    """The call's record from the agent's database (None: no database to read), its turn
    times on the caller's clock."""
    notes: list[str] = field(default_factory=list)
    bookings: list[dict[str, Any]] | None = None
    """The call's bookings as the calendar holds them; None: the record's appointments."""
    bookings_from: str = "the database"


async def noise_bed(
    spec: NoiseSpec, speech_level_db: float, rate: int, seconds: float = 30.0
) -> np.ndarray:
    """``seconds`` of ``spec.kind`` noise at ``rate``, ``spec.snr_db`` below
    ``speech_level_db``."""
    n = int(seconds * rate)
    rng = np.random.default_rng(spec.seed)
    level = speech_level_db - spec.snr_db
    if spec.kind == "pink":
        return pink_noise(n, rng, level_db=level)
    if spec.kind == "car":
        return car_rumble(n, rate, rng, level_db=level)
    clips = [
        await synthesize(FliteVoice(v), t, rate)
        for v, t in zip(BABBLE_VOICES, BABBLE_LINES, strict=True)
    ]
    return babble(clips, n, rng, level_db=level)


async def prepare_caller(scenario: Scenario) -> ScriptedCaller:
    """The scenario's caller, its lines synthesized and its noise bed laid under them."""
    # 8 kHz, as a phone line carries it: nothing resamples it on its way to the wire.
    caller = ScriptedCaller(scenario.caller_lines(), rate=WIRE_RATE)
    await caller.prepare(FliteVoice(scenario.voice))
    if scenario.noise is not None:
        speech = caller.speech()
        level = active_level_db(speech) if len(speech) else -20.0
        caller.noise = await noise_bed(scenario.noise, level, WIRE_RATE)
    return caller


def agent_utterances(
    recording: CallRecording, gap_s: float = REPLY_GAP_S
) -> list[tuple[float, float]]:
    """(start, end) of each stretch of agent voice, split at silences of ``gap_s``."""
    spans: list[tuple[float, float]] = []
    at = 0.0
    while (onset := recording.voice_onset("agent", at)) is not None:
        stop = recording.voice_stop("agent", onset, gap_s=gap_s)
        end = stop if stop is not None else len(recording.agent) / recording.sample_rate
        spans.append((onset, end))
        at = end + 0.01
    return spans


async def transcribe_agent(recording: CallRecording, stt: STT) -> list[HeardReply]:
    """What the agent said, utterance by utterance, recognised from the recording."""
    heard = []
    step = frame_samples(recording.sample_rate)
    for start, end in agent_utterances(recording):
        a, b = int(start * recording.sample_rate), int(end * recording.sample_rate) + step
        pcm = recording.agent[a:b]
        pcm = np.concatenate([pcm, np.zeros((-len(pcm)) % step, np.int16)])
        frames = [
            AudioFrame(pcm[i : i + step], recording.sample_rate, start + i / recording.sample_rate)
            for i in range(0, len(pcm), step)
        ]
        transcript = await stt.transcribe(frames)
        heard.append(HeardReply(start, end, transcript.text.strip()))
    return heard


def words(text: str) -> list[str]:
    """Lower-case words of ``text``."""
    return re.findall(r"[a-z0-9']+", text.lower())


async def run_scenario(
    target: Target, scenario: Scenario, workdir: Path, stt: STT, *, index: int = 0
) -> ScenarioRun:
    """One scenario call against ``target``. Raises :class:`BatteryError` when the agent
    cannot be reached at all; anything the agent does wrong is for the checks to judge."""
    recording = workdir / f"{index:02d}-{scenario.name}.wav"
    caller = await prepare_caller(scenario)
    number = f"+1555{7000000 + index:07d}"
    log: CallLog
    try:
        if target.sip_uri is not None:
            log = await call_sip(
                target.sip_uri, caller, caller_number=number, recording_path=recording
            )
        else:
            log = await call_server(
                target.http_url,
                caller,
                auth_token=target.auth_token,
                caller_number=number,
                recording_path=recording,
            )
    except (OSError, ValueError, RuntimeError, SipCallFailed) as exc:
        raise BatteryError(f"{scenario.name}: could not call {target.name}: {exc}") from exc
    heard = await transcribe_agent(CallRecording.load(recording), stt) if log.recording else []
    run = ScenarioRun(scenario, log, recording, heard, None)
    if target.database_url:
        await read_back(run, target)
    return run


async def read_back(run: ScenarioRun, target: Target) -> None:
    """The call's record from the agent's database (its times moved onto the caller's
    clock) and, with a CalDAV calendar, the call's bookings from the CalDAV server."""
    assert target.database_url is not None
    key = "sip_call_id" if run.log.transport == "sip" else "call_sid"
    record = await fetch_record(target.database_url, key, run.log.call_sid)
    if record is None:
        run.notes.append("the agent's database holds no finished record of this call")
        return
    if isinstance(run.log, SipCallLog):
        offset = run.log.agent_clock_offset
        if offset is None:
            run.notes.append("the agent's RTP clock could not be read: its times are its own")
        else:
            record = on_caller_clock(record, offset)
        late = run.log.times("late_tick")
        if late:
            run.notes.append(
                f"the caller's clock ran late {len(late)} time(s): the agent's turn times "
                "may be off by a tick after that"
            )
    run.record = record
    if target.caldav is not None:
        run.bookings_from = f"the CalDAV server ({target.caldav.url})"
        try:
            run.bookings = await asyncio.to_thread(caldav_bookings, target.caldav, record["id"])
        except Exception as exc:  # any failure reading it is a check failure, not a crash
            run.bookings = []
            run.notes.append(f"the CalDAV calendar could not be read: {exc}")
