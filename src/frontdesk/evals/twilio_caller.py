"""A caller on the Twilio side of a Media Stream: what Twilio does, played by a script.

It answers the call like Twilio (POSTs the voice webhook, signed with the auth token, and
reads ``<Connect><Stream>`` from the TwiML), connects to the stream URL and then runs on
its own 20 ms monotonic clock: each tick it sends the scripted caller's 20 ms of audio
(16 kHz -> 8 kHz -> mu-law -> base64), plays one 20 ms frame of the agent's audio from a
jitter-free playout queue, and echoes each mark once the audio queued before it has been
played. A ``clear`` empties the queue and echoes the marks still in it, as Twilio does.
Every message in and out is timestamped on the caller's clock, which is also the timeline
of the stereo recording (caller left, agent right, 16 kHz; see
:class:`frontdesk.evals.recording.CallRecording`).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import collections
import contextlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import websockets

from frontdesk.audio import AudioFrame, frame_samples
from frontdesk.audio.g711 import ulaw_decode, ulaw_encode
from frontdesk.audio.resample import FrameResampler
from frontdesk.evals.call_log import WIRE_RATE, WireEvent, event_times, write_call_recording
from frontdesk.evals.scripted_caller import ScriptedCaller
from frontdesk.evals.twilio_webhook import StreamInvitation, answer_webhook, new_sid
from frontdesk.transports.local import TICK_S

_WIRE_FRAME = frame_samples(WIRE_RATE)
LATE_TICK_S = 0.02
"""A tick this late is logged: the caller's clock (and its audio) fell behind real time."""
CALLER_VOICED = 200
"""Amplitude above which caller audio on the wire counts as speech (as ScriptedCaller)."""

__all__ = [
    "WIRE_RATE",
    "StreamInvitation",
    "TwilioCallLog",
    "TwilioCaller",
    "WireEvent",
    "call_server",
]


async def call_server(
    base_url: str,
    caller: ScriptedCaller,
    *,
    auth_token: str | None,
    caller_number: str,
    recording_path: str | Path | None = None,
    **options: Any,
) -> TwilioCallLog:
    """One whole call to the server at ``base_url``: the voice webhook, then the stream.
    ``options`` go to :class:`TwilioCaller`."""
    call_sid = new_sid("CA")
    invitation = await answer_webhook(
        f"{base_url.rstrip('/')}/twilio/voice",
        call_sid=call_sid,
        caller_number=caller_number,
        auth_token=auth_token,
    )
    twilio = TwilioCaller(
        invitation, caller, call_sid=call_sid, recording_path=recording_path, **options
    )
    return await twilio.run()


@dataclass(slots=True)
class TwilioCallLog:
    """A finished call seen from Twilio's side."""

    stream_sid: str
    call_sid: str
    caller: ScriptedCaller
    events: list[WireEvent]
    recording: Path | None
    ended_by: str | None
    protocol_errors: list[str]
    """Outbound messages from the server that break the protocol (should be empty)."""
    agent_media: list[float] = field(default_factory=list)
    """Start of every 20 ms tick (call clock) on which a frame of the agent's media played:
    when the agent's audio stopped, a ``clear`` or not, is read from here."""
    transport: str = "twilio"

    def wire_onset(self, after: float) -> float | None:
        """When the caller's voice first went out on the socket at or after ``after``:
        the send time of the first voiced frame plus the offset of its first voiced sample
        (the 16 -> 8 kHz conversion of the simulated caller is not Twilio's delay)."""
        for event in self.events:
            voiced_at = event.detail.get("voiced_at") if event.kind == "media_out" else None
            if voiced_at is not None and event.at >= after:
                return float(voiced_at)
        return None

    def times(self, kind: str) -> list[float]:
        """When each message of ``kind`` happened."""
        return event_times(self.events, kind)


class TwilioCaller:
    """Plays Twilio's part of one Media Stream, with a :class:`ScriptedCaller` speaking."""

    def __init__(
        self,
        invitation: StreamInvitation,
        caller: ScriptedCaller,
        *,
        call_sid: str,
        stream_sid: str | None = None,
        recording_path: str | Path | None = None,
        max_seconds: float = 180.0,
        before_start: Sequence[str | bytes] = (),
        after_start: Sequence[str | bytes] = (),
        hang_up_by_dropping: bool = False,
    ) -> None:
        """``before_start``/``after_start`` are raw messages sent verbatim around ``start``
        (for robustness tests). ``hang_up_by_dropping``: a scripted hang-up aborts the TCP
        connection instead of sending ``stop`` (a network failure)."""
        self.invitation = invitation
        self.caller = caller
        self.call_sid = call_sid
        self.stream_sid = stream_sid or new_sid("MZ")
        self.recording_path = Path(recording_path) if recording_path else None
        self.events: list[WireEvent] = []
        self.protocol_errors: list[str] = []
        self.ended_by: str | None = None
        self._max_ticks = int(max_seconds / TICK_S)
        self._before = list(before_start)
        self._after = list(after_start)
        self._drop = hang_up_by_dropping
        self._playout: collections.deque[np.ndarray | str] = collections.deque()
        self._agent_partial = np.zeros(0, np.int16)
        # An 8 kHz caller goes on the wire as it is; a 16 kHz one through a streaming
        # resampler, which sends each 20 ms one tick late.
        self._to_wire = None if caller.rate == WIRE_RATE else FrameResampler(caller.rate, WIRE_RATE)
        self._sequence = 0
        self._chunk = 0
        self._t0 = 0.0
        self._closed = asyncio.Event()
        self._clear_pending = False
        self._send_lock = asyncio.Lock()
        self._caller_track: list[np.ndarray] = []
        self._agent_track: list[np.ndarray] = []
        self._agent_media: list[float] = []

    def _now(self) -> float:
        return time.monotonic() - self._t0

    def _log(self, kind: str, **detail: Any) -> None:
        self.events.append(WireEvent(self._now(), kind, detail))

    async def run(self) -> TwilioCallLog:
        """Connect, hold the whole call, and return what happened on the wire."""
        async with websockets.connect(
            self.invitation.url, ping_interval=None, max_size=2**20
        ) as ws:
            self._t0 = time.monotonic()
            await self._send(ws, {"event": "connected", "protocol": "Call", "version": "1.0.0"})
            for raw in self._before:
                await ws.send(raw)
            await self._send(ws, self._start_message())
            for raw in self._after:
                await ws.send(raw)
            receiver = asyncio.create_task(self._receive(ws), name="twilio-caller-receive")
            try:
                await self._run_clock(ws)
            finally:
                receiver.cancel()
                await asyncio.gather(receiver, return_exceptions=True)
        self._write_recording()
        return TwilioCallLog(
            self.stream_sid,
            self.call_sid,
            self.caller,
            self.events,
            self.recording_path,
            self.ended_by,
            self.protocol_errors,
            self._agent_media,
        )

    def _start_message(self) -> dict[str, Any]:
        return {
            "event": "start",
            "start": {
                "accountSid": "AC" + "0" * 32,
                "streamSid": self.stream_sid,
                "callSid": self.call_sid,
                "tracks": ["inbound"],
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
                "customParameters": dict(self.invitation.parameters),
            },
        }

    # --- the caller's clock -------------------------------------------------------------
    async def _run_clock(self, ws: Any) -> None:
        heard = np.zeros(_WIRE_FRAME, np.int16)
        for index in range(self._max_ticks):
            delay = self._t0 + index * TICK_S - time.monotonic()
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._closed.wait(), delay)
            if self._closed.is_set():
                self.ended_by = self.ended_by or "agent"
                return
            late = -delay if delay < 0 else 0.0
            if late > LATE_TICK_S:
                self._log("late_tick", index=index, late_ms=round(1000 * late))
            try:
                heard = await self._tick(ws, index, heard)
            except websockets.ConnectionClosed:
                self.ended_by = self.ended_by or "agent"
                return
            if self.ended_by == "caller":
                return
        self.ended_by = "caller"
        await self._hang_up(ws)

    async def _tick(self, ws: Any, index: int, heard: np.ndarray) -> np.ndarray:
        step = self.caller.tick(index, heard)
        self._caller_track.append(step.pcm)
        spoken = AudioFrame(step.pcm, self.caller.rate, index * TICK_S)
        for frame in self._to_wire.process(spoken) if self._to_wire else [spoken]:
            self._chunk += 1
            payload = base64.b64encode(ulaw_encode(frame.pcm)).decode("ascii")
            media = {
                "track": "inbound",
                "chunk": str(self._chunk),
                "timestamp": str(round(frame.timestamp * 1000)),
                "payload": payload,
            }
            await self._send(ws, {"event": "media", "media": media})
            voiced = np.flatnonzero(np.abs(frame.pcm.astype(np.int32)) > CALLER_VOICED)
            sent_at = self._now()
            if len(voiced):
                self._log("media_out", voiced_at=sent_at + voiced[0] / WIRE_RATE)
            else:
                self._log("media_out")
        if step.dtmf:
            for digit in step.dtmf:
                dtmf = {"track": "inbound_track", "digit": digit}
                await self._send(ws, {"event": "dtmf", "dtmf": dtmf}, log_as="dtmf_out")
        played = await self._play_one(ws, index)
        self._agent_track.append(played)
        if step.hang_up:
            self.ended_by = "caller"
            await self._hang_up(ws)
        return played

    async def _play_one(self, ws: Any, index: int) -> np.ndarray:
        played = np.zeros(_WIRE_FRAME, np.int16)
        await self._echo_marks(ws)
        if self._playout and isinstance(self._playout[0], np.ndarray):
            played = self._playout.popleft()  # type: ignore[assignment]
            self._agent_media.append(index * TICK_S)
            await self._echo_marks(ws)
        return played

    async def _echo_marks(self, ws: Any) -> None:
        while self._playout and isinstance(self._playout[0], str):
            name = self._playout.popleft()
            await self._send(ws, {"event": "mark", "mark": {"name": name}}, log_as="mark_echo")

    async def _hang_up(self, ws: Any) -> None:
        if self._drop:
            self._log("dropped")
            ws.transport.abort()
            return
        stop = {"accountSid": "AC" + "0" * 32, "callSid": self.call_sid}
        with contextlib.suppress(websockets.ConnectionClosed):
            await self._send(ws, {"event": "stop", "stop": stop}, log_as="stop_out")
            await ws.close()

    # --- the agent's side -----------------------------------------------------------------
    async def _receive(self, ws: Any) -> None:
        try:
            async for raw in ws:
                self._on_message(raw)
                if self._clear_pending:
                    self._clear_pending = False
                    await self._echo_all_marks(ws)
        except websockets.ConnectionClosed:
            pass
        finally:
            self._log("closed")
            self._closed.set()

    def _on_message(self, raw: str | bytes) -> None:
        if isinstance(raw, bytes):
            self._error("a binary frame")
            return
        try:
            message = json.loads(raw)
        except (ValueError, RecursionError):
            self._error("a message that is not JSON")
            return
        if not isinstance(message, dict):
            self._error("a JSON message that is not an object")
            return
        event = message.get("event")
        if message.get("streamSid") != self.stream_sid:
            self._error(f"a {event} message with the wrong streamSid")
            return
        if event == "media":
            self._on_media(message.get("media") or {})
        elif event == "mark":
            name = (message.get("mark") or {}).get("name")
            self._log("mark_in", name=name)
            self._flush_partial()
            self._playout.append(str(name))
        elif event == "clear":
            self._log("clear_in", dropped_ms=self._queued_ms())
            self._playout = collections.deque(i for i in self._playout if isinstance(i, str))
            self._agent_partial = np.zeros(0, np.int16)
            self._clear_pending = True
        else:
            self._error(f"an unknown event {event!r}")

    def _on_media(self, media: dict[str, Any]) -> None:
        try:
            data = base64.b64decode(media.get("payload") or "", validate=True)
        except (binascii.Error, ValueError):
            self._error("a media payload that is not base64")
            return
        if data[:4] == b"RIFF":
            self._error("a WAV header inside a media payload")
        pcm = ulaw_decode(data)
        self._log("media_in", samples=len(pcm))
        buffered = np.concatenate([self._agent_partial, pcm])
        whole = len(buffered) - len(buffered) % _WIRE_FRAME
        for at in range(0, whole, _WIRE_FRAME):
            self._playout.append(buffered[at : at + _WIRE_FRAME])
        self._agent_partial = buffered[whole:]

    def _flush_partial(self) -> None:
        # A mark follows all audio sent before it, even a short tail.
        if len(self._agent_partial):
            frame = np.zeros(_WIRE_FRAME, np.int16)
            frame[: len(self._agent_partial)] = self._agent_partial
            self._playout.append(frame)
            self._agent_partial = np.zeros(0, np.int16)

    async def _echo_all_marks(self, ws: Any) -> None:
        marks = [i for i in self._playout if isinstance(i, str)]
        self._playout.clear()
        for name in marks:
            await self._send(ws, {"event": "mark", "mark": {"name": name}}, log_as="mark_echo")

    def _queued_ms(self) -> int:
        frames = sum(isinstance(i, np.ndarray) for i in self._playout)
        return frames * 20 + len(self._agent_partial) * 1000 // WIRE_RATE

    def _error(self, what: str) -> None:
        self.protocol_errors.append(what)
        self._log("protocol_error", what=what)

    async def _send(self, ws: Any, message: dict[str, Any], log_as: str | None = None) -> None:
        self._sequence += 1
        message["sequenceNumber"] = str(self._sequence)
        if message["event"] != "connected":
            message["streamSid"] = self.stream_sid
        async with self._send_lock:
            await ws.send(json.dumps(message, separators=(",", ":")))
        if log_as == "mark_echo":
            self._log(log_as, name=message["mark"]["name"])
        elif log_as:
            self._log(log_as)

    def _write_recording(self) -> None:
        if self.recording_path is not None:
            write_call_recording(
                self.recording_path, self._caller_track, self.caller.rate, self._agent_track
            )
