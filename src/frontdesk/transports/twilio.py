"""Twilio Media Streams: one phone call over a bidirectional WebSocket.

Twilio sends JSON text messages (``connected``, ``start``, ``media``, ``dtmf``, ``mark``,
``stop``) and accepts ``media``, ``mark`` and ``clear``. Audio both ways is base64 G.711
mu-law, 8 kHz mono, no header. Inbound audio is decoded and resampled to the 16 kHz 20 ms
frames the Listener wants; outbound frames are sent as 20 ms mu-law payloads, paced from one
monotonic clock per call so Twilio's buffer holds only a shallow lookahead (a ``clear`` then
has little to drop, and the audio never starves while the agent keeps up).

Twilio echoes each ``mark`` once the audio sent before it has played, and after a ``clear``
it echoes every mark still queued: those are forwarded as :class:`MarkPlayed` like any other,
and the playback ignores them by their generation number.

Anything malformed (binary frames, broken JSON, unknown events, bad base64, media before
``start``, another stream's ``streamSid``) is logged once per kind, counted and ignored.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import collections
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from frontdesk.audio import FRAME_MS, AudioFormatError, AudioFrame, frame_samples
from frontdesk.audio.g711 import ulaw_decode, ulaw_encode
from frontdesk.audio.resample import FrameResampler
from frontdesk.transports.base import (
    INBOUND_RATE,
    AudioIn,
    CallEnded,
    DtmfIn,
    MarkPlayed,
    TransportEvent,
)
from frontdesk.transports.twilio_control import TwilioCallControl, TwilioCallControlError

log = logging.getLogger(__name__)

WIRE_RATE = 8000
"""Twilio Media Streams carry 8 kHz mu-law."""
WIRE_ENCODING = "audio/x-mulaw"
DEFAULT_LOOKAHEAD_S = 0.08
"""Agent audio allowed ahead of real time in Twilio's buffer (four 20 ms frames)."""
DTMF_DIGITS = frozenset("0123456789*#ABCD")
_FRAME_S = FRAME_MS / 1000


class StreamRejected(Exception):
    """The stream cannot be used: it ended before ``start``, or its media format is wrong."""


@dataclass(frozen=True, slots=True)
class StreamStart:
    """What Twilio's ``start`` message announced."""

    stream_sid: str
    call_sid: str | None
    account_sid: str | None
    custom_parameters: dict[str, str]
    tracks: list[str] = field(default_factory=list)


class TwilioMediaStream:
    """The Transport protocol over one accepted Media Streams WebSocket.

    Call :meth:`read_start` first (the server checks the announced parameters), then hand
    the stream to a Call. With ``call_control`` (Twilio's REST API), :meth:`hang_up` ends
    the phone call and :meth:`transfer` redirects it to ``<Dial>`` the number; without it
    they only close the socket (Twilio then ends a ``<Connect><Stream>`` call, as the voice
    webhook's TwiML has nothing after ``<Connect>``).
    """

    name = "twilio"
    output_rate = WIRE_RATE

    def __init__(
        self,
        websocket: WebSocket,
        *,
        caller_number: str | None = None,
        lookahead_s: float = DEFAULT_LOOKAHEAD_S,
        call_control: TwilioCallControl | None = None,
        transfer_caller_id: str | None = None,
    ) -> None:
        self.websocket = websocket
        self.call_control = call_control
        self.transfer_caller_id = transfer_caller_id
        self.caller_number = caller_number
        self.start_info: StreamStart | None = None
        self.transfers: list[str] = []
        self.ended_by: str | None = None
        self.malformed: collections.Counter[str] = collections.Counter()
        """Ignored inbound messages by kind (for logs and tests)."""
        self._lookahead = lookahead_s
        self._out_samples = frame_samples(WIRE_RATE)
        self._resampler = FrameResampler(WIRE_RATE, INBOUND_RATE)
        self._send_lock = asyncio.Lock()
        # When the audio already sent to Twilio will have finished playing (monotonic).
        self._play_end = 0.0
        self._pending: list[TransportEvent] = []
        self._closed = False
        self._ended = False

    @property
    def stream_sid(self) -> str | None:
        """Twilio's id for this stream (known after ``start``)."""
        return self.start_info.stream_sid if self.start_info else None

    # --- inbound ----------------------------------------------------------------------
    async def read_start(self) -> StreamStart:
        """Read messages up to ``start`` and return what it announced.

        Raises :class:`StreamRejected` if the socket closes first or the media format is
        not 8 kHz mono mu-law. DTMF or marks cannot precede ``start``; media that does is
        counted as malformed.
        """
        while self.start_info is None:
            message = await self._receive()
            if message is None:
                raise StreamRejected("the stream closed before its start message")
            self._handle(message)
        return self.start_info

    async def events(self) -> AsyncIterator[TransportEvent]:
        """Caller audio, DTMF and echoed marks, ending with :class:`CallEnded`."""
        while True:
            while self._pending:
                event = self._pending.pop(0)
                yield event
                if isinstance(event, CallEnded):
                    return
            if self._ended:
                return
            message = await self._receive()
            if message is None:
                self._end("stream closed", by="caller")
            else:
                self._handle(message)

    async def _receive(self) -> dict[str, Any] | None:
        """The next well-formed JSON object from the socket, or None once it is closed."""
        while not self._closed:
            try:
                raw = await self.websocket.receive()
            except (WebSocketDisconnect, RuntimeError):
                self._closed = True
                return None
            if raw.get("type") == "websocket.disconnect":
                self._closed = True
                return None
            text = raw.get("text")
            if text is None:
                self._malformed("binary", "a binary frame (Media Streams messages are JSON text)")
                continue
            try:
                message = json.loads(text)
            except (ValueError, RecursionError):  # RecursionError: absurdly deep nesting
                self._malformed("json", "a message that is not valid JSON")
                continue
            if not isinstance(message, dict):
                self._malformed("json", "a JSON message that is not an object")
                continue
            return message
        return None

    def _handle(self, message: dict[str, Any]) -> None:
        event = message.get("event")
        now = time.monotonic()
        if event == "connected":
            return
        if event == "start":
            self._on_start(message)
            return
        if event not in ("media", "dtmf", "mark", "stop"):
            self._malformed("unknown-event", f"an unknown event {str(event)[:40]!r}")
            return
        if self.start_info is None:
            self._malformed("before-start", f"a {event} message before start")
            return
        if message.get("streamSid") != self.start_info.stream_sid:
            self._malformed("stream-sid", f"a {event} message for another streamSid")
            return
        if event == "media":
            self._on_media(message, now)
        elif event == "dtmf":
            digit = _get(message, "dtmf", "digit")
            if isinstance(digit, str) and digit in DTMF_DIGITS:
                self._pending.append(DtmfIn(digit, now))
            else:
                self._malformed("dtmf", "a dtmf message without a valid digit")
        elif event == "mark":
            name = _get(message, "mark", "name")
            if isinstance(name, str):
                self._pending.append(MarkPlayed(name, now))
            else:
                self._malformed("mark", "a mark message without a name")
        else:  # stop
            self._end("caller hung up", by="caller")

    def _on_start(self, message: dict[str, Any]) -> None:
        if self.start_info is not None:
            self._malformed("start", "a second start message")
            return
        start = message.get("start")
        sid = message.get("streamSid") or (start or {}).get("streamSid")
        if not isinstance(start, dict) or not isinstance(sid, str) or not sid:
            self._malformed("start", "a start message without streamSid")
            return
        media = start.get("mediaFormat") or {}
        if not isinstance(media, dict) or (
            media.get("encoding"),
            media.get("sampleRate"),
            media.get("channels", 1),
        ) != (WIRE_ENCODING, WIRE_RATE, 1):
            raise StreamRejected(f"unsupported media format {media!r} (want 8 kHz mono mu-law)")
        params = start.get("customParameters") or {}
        tracks = start.get("tracks") or []
        self.start_info = StreamStart(
            stream_sid=sid,
            call_sid=_str_or_none(start.get("callSid")),
            account_sid=_str_or_none(start.get("accountSid")),
            custom_parameters={str(k): str(v) for k, v in params.items()}
            if isinstance(params, dict)
            else {},
            tracks=[str(t) for t in tracks] if isinstance(tracks, list) else [],
        )

    def _on_media(self, message: dict[str, Any], now: float) -> None:
        media = message.get("media")
        if not isinstance(media, dict):
            self._malformed("media", "a media message without a media object")
            return
        if media.get("track", "inbound") != "inbound":
            return  # only the caller's leg is ours to hear
        payload = media.get("payload")
        try:
            data = base64.b64decode(payload or "", validate=True)
        except (binascii.Error, TypeError, ValueError):
            self._malformed("base64", "a media payload that is not base64")
            return
        if not data:
            self._malformed("media", "an empty media payload")
            return
        timestamp = media.get("timestamp")
        try:
            at = int(timestamp) / 1000
        except (TypeError, ValueError, OverflowError):  # JSON allows Infinity
            at = 0.0
        try:
            frames = self._resampler.process(AudioFrame(ulaw_decode(data), WIRE_RATE, at))
        except AudioFormatError as exc:
            self._malformed("media", f"unusable media ({exc})")
            return
        self._pending.extend(AudioIn(frame, now) for frame in frames)

    def _malformed(self, kind: str, what: str) -> None:
        if not self.malformed[kind]:
            log.warning("twilio stream %s: ignoring %s", self.stream_sid or "?", what)
        self.malformed[kind] += 1

    def _end(self, reason: str, by: str) -> None:
        if self._ended:
            return
        self._ended = True
        self.ended_by = self.ended_by or by
        self._pending.append(CallEnded(reason, time.monotonic()))

    # --- outbound ---------------------------------------------------------------------
    async def send_audio(self, frame: AudioFrame) -> None:
        """Send one 20 ms 8 kHz frame, waiting so that at most ``lookahead_s`` of audio is
        ahead of real time in Twilio's buffer."""
        frame.check(WIRE_RATE)
        if self._closed:
            return
        now = time.monotonic()
        # A starved buffer restarts playout now, not in the past.
        self._play_end = max(self._play_end, now)
        wait = self._play_end - self._lookahead - now
        if wait > 0:
            await asyncio.sleep(wait)
        payload = base64.b64encode(ulaw_encode(frame.pcm)).decode("ascii")
        if await self._send({"event": "media", "media": {"payload": payload}}):
            self._play_end = max(self._play_end, time.monotonic()) + _FRAME_S

    async def send_mark(self, name: str) -> None:
        """Ask Twilio to echo ``name`` once the audio sent before it has played."""
        await self._send({"event": "mark", "mark": {"name": name}})

    async def clear(self) -> None:
        """Drop the audio buffered at Twilio (barge-in)."""
        if await self._send({"event": "clear"}):
            self._play_end = time.monotonic()

    async def _send(self, message: dict[str, Any]) -> bool:
        if self._closed or self.stream_sid is None:
            return False
        message["streamSid"] = self.stream_sid
        text = json.dumps(message, separators=(",", ":"))
        async with self._send_lock:
            try:
                await self.websocket.send_text(text)
            except (WebSocketDisconnect, RuntimeError, OSError) as exc:
                log.info("twilio stream %s: send failed, socket gone (%s)", self.stream_sid, exc)
                self._closed = True
                return False
        return True

    # --- call control -----------------------------------------------------------------
    async def hang_up(self) -> None:
        """End the call from the agent's side: the phone call through the REST API (when
        configured), then the media socket."""
        self.ended_by = self.ended_by or "agent"
        self._end("agent hung up", by="agent")
        await self._control("hang up", lambda control, sid: control.hang_up(sid))
        await self.aclose()

    async def transfer(self, number: str) -> None:
        """Redirect the live call to ``<Dial>`` ``number`` (the agent has already said its
        hand-off line, so the TwiML adds none), then close the media socket. Without REST
        call control, or if Twilio refuses, the socket closes and the call ends."""
        self.transfers.append(number)
        self.ended_by = self.ended_by or "agent"
        self._end(f"transferred to {number}", by="agent")
        await self._control(
            "transfer",
            lambda control, sid: control.transfer(sid, number, caller_id=self.transfer_caller_id),
        )
        await self.aclose()

    async def _control(
        self, what: str, request: Callable[[TwilioCallControl, str], Awaitable[None]]
    ) -> None:
        sid = self.start_info.call_sid if self.start_info else None
        if self.call_control is None or sid is None:
            return
        try:
            await request(self.call_control, sid)
        except TwilioCallControlError as exc:
            log.warning("twilio stream %s: could not %s the call: %s", self.stream_sid, what, exc)

    async def aclose(self) -> None:
        """Close the socket (idempotent)."""
        self._end("closed", by="agent")
        if self._closed:
            return
        self._closed = True
        if self.websocket.application_state == WebSocketState.CONNECTED:
            with contextlib.suppress(Exception):
                await self.websocket.close(1000)


def _get(message: dict[str, Any], section: str, key: str) -> Any:
    part = message.get(section)
    return part.get(key) if isinstance(part, dict) else None


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
