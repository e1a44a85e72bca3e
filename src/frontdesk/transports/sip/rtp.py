"""One call's RTP stream: a UDP socket and one 20 ms clock driving both directions.

Each tick of the clock (scheduled from the start time, so it never drifts):

- *receive*: one packet leaves the jitter buffer, is decoded (PCMU/PCMA) and resampled to
  the 16 kHz frames the Listener wants; a gap or a silent peer plays as silence, so the
  call's audio clock keeps running even when the peer sends nothing;
- *send*: marks whose audio has gone out are echoed, then one queued 8 kHz frame (or a
  RFC 4733 event packet while a key is being sent, or silence) goes to the peer.

RTP is symmetric (we send from the port we receive on) and latched: packets are taken only
from the address the peer's SDP named, or, until that address has been heard from, the
first source on the same host (a peer behind NAT or sending from another port). Anything
else is counted and ignored.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import secrets
import time
from collections.abc import Callable

import numpy as np

from frontdesk.audio import FRAME_MS, AudioFrame, frame_samples
from frontdesk.audio.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode
from frontdesk.audio.resample import FrameResampler
from frontdesk.transports.base import INBOUND_RATE, AudioIn, DtmfIn, MarkPlayed, TransportEvent
from frontdesk.transports.sip.jitter import JitterBuffer
from frontdesk.transports.sip.rtp_packet import (
    RtpError,
    RtpPacket,
    TelephoneEvent,
    parse_event,
    parse_rtp,
)
from frontdesk.transports.sip.sdp import MediaChoice

log = logging.getLogger(__name__)

WIRE_RATE = 8000
TICK_S = FRAME_MS / 1000
SAMPLES = frame_samples(WIRE_RATE)
MAX_BEHIND_S = 1.0
"""A clock this late (a stalled process) restarts from now instead of bursting packets."""
DTMF_MS = 100
VOICED_PEAK = 300
"""A frame whose peak is above this counts as voice in the stats (line noise stays under)."""
_SILENCE = np.zeros(SAMPLES, dtype=np.int16)
_DECODERS = {0: ulaw_decode, 8: alaw_decode}
_ENCODERS = {"PCMU": ulaw_encode, "PCMA": alaw_encode}
_PEER_HOLDS = ("sendonly", "inactive")
"""Directions in the peer's SDP that mean it will not listen: the clock still plays our
audio out (marks, pacing) but nothing goes to the wire while the call is on hold."""


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, session: RtpSession) -> None:
        self.session = session

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.session._on_datagram(data, addr)

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable after the peer closed its socket: nothing to do.
        log.debug("rtp socket error: %s", exc)


class _RtcpProtocol(asyncio.DatagramProtocol):
    def __init__(self, session: RtpSession) -> None:
        self.session = session

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.session.rtcp_in += 1

    def error_received(self, exc: Exception) -> None:
        log.debug("rtcp socket error: %s", exc)


class RtpSession:
    """RTP for one call; events (audio, DTMF, marks) go to ``on_event``."""

    def __init__(
        self,
        on_event: Callable[[TransportEvent], None],
        *,
        jitter_depth: int = 1,
        lookahead_frames: int = 3,
    ) -> None:
        self._on_event = on_event
        self.lookahead_frames = lookahead_frames
        self.media: MediaChoice | None = None
        self.local_port = 0
        self.ignored: collections.Counter[str] = collections.Counter()
        """Datagrams dropped, by reason (unexpected source, not RTP, unknown payload)."""
        self.packets_in = 0
        self.packets_out = 0
        self.rtcp_in = 0
        """RTCP reports received on RTP port + 1 (read and dropped)."""
        self.relayed_voiced_frames = 0
        self.ticks_held = 0
        """Ticks on which nothing was sent because the peer had put the call on hold."""
        """Frames with voice that a bridge queued here from the other leg (stats)."""
        self.on_wire_audio: Callable[[np.ndarray], None] | None = None
        """Gets every received 20 ms at 8 kHz as it plays out (a bridge relays it)."""
        self.first_audio_sent_at: float | None = None
        """Monotonic time the first non-silent frame went out (latency at the wire)."""
        self._jitter = JitterBuffer(jitter_depth)
        self._transport: asyncio.DatagramTransport | None = None
        self._rtcp: asyncio.DatagramTransport | None = None
        self._source: tuple[str, int] | None = None  # the latched peer address
        self._resampler = FrameResampler(WIRE_RATE, INBOUND_RATE)
        self._playout: collections.deque[AudioFrame | str] = collections.deque()
        self._space = asyncio.Event()
        self._space.set()
        self._dtmf_out: collections.deque[str] = collections.deque()
        self._dtmf_sending: tuple[str, int, int] | None = None  # digit, timestamp, ticks
        self._seen_events: collections.deque[tuple[int, int]] = collections.deque(maxlen=32)
        self._ssrc = secrets.randbits(32)
        self._seq = secrets.randbits(16)
        self._timestamp = secrets.randbits(32)
        self._ticks_in = 0
        self._arrivals: collections.OrderedDict[int, float] = collections.OrderedDict()
        self._input_delay = 0.0  # playout time minus wire arrival, of the newest packet
        self._clock: asyncio.Task[None] | None = None
        self._closed = False

    async def open(self, host: str, port: int = 0) -> int:
        """Bind the RTP socket on an even port and the RTCP socket on the next one (port 0:
        any free pair); returns the RTP port.

        Peers send RTCP to RTP port + 1 (RFC 3550 §11) unless told otherwise. We do not use
        it, but a closed port answers with ICMP port unreachable, and some stacks (baresip)
        end the call on that error: so the RTCP port is held open and what arrives dropped.
        """
        loop = asyncio.get_running_loop()
        for _ in range(1 if port else 50):
            rtp, _ = await loop.create_datagram_endpoint(
                lambda: _Protocol(self), local_addr=(host, port)
            )
            chosen = rtp.get_extra_info("sockname")[1]
            if chosen % 2 == 0 or port:
                try:
                    rtcp, _ = await loop.create_datagram_endpoint(
                        lambda: _RtcpProtocol(self), local_addr=(host, chosen + 1)
                    )
                except OSError:
                    if port:
                        rtp.close()
                        raise
                else:
                    self._transport, self._rtcp = rtp, rtcp
                    self.local_port = chosen
                    return chosen
            rtp.close()  # odd, or its neighbour is taken: try another
        raise OSError(f"no free RTP/RTCP port pair on {host}")

    def set_media(self, media: MediaChoice) -> None:
        """Where and how to send (from SDP); a re-INVITE may change it mid-call."""
        if media.codec not in _ENCODERS:
            raise RtpError(f"codec {media.codec} not supported")
        if self.media is None or (media.host, media.port) != (self.media.host, self.media.port):
            self._source = None  # a new peer address: latch again
        self.media = media

    def start(self) -> None:
        """Start the 20 ms clock (idempotent)."""
        if self._clock is None and not self._closed:
            self._clock = asyncio.create_task(self._run_clock(), name="rtp-clock")

    # --- receive ----------------------------------------------------------------------
    def _on_datagram(self, data: bytes, addr: tuple[str, int]) -> None:
        media = self.media
        if media is None or self._closed:
            self.ignored["before media"] += 1
            return
        addr = (addr[0], addr[1])
        if addr != self._source and not self._accept_source(addr, media):
            self.ignored["unexpected source"] += 1
            return
        try:
            packet = parse_rtp(data)
        except RtpError:
            self.ignored["not rtp"] += 1
            return
        self.packets_in += 1
        if packet.payload_type == media.event_payload_type:
            self._on_event_packet(packet)
        elif packet.payload_type in _DECODERS:
            self._jitter.put(packet)
            self._arrivals[packet.sequence] = time.monotonic()
            while len(self._arrivals) > 64:  # packets the jitter buffer dropped
                self._arrivals.popitem(last=False)
        else:
            self.ignored[f"payload type {packet.payload_type}"] += 1

    def _accept_source(self, addr: tuple[str, int], media: MediaChoice) -> bool:
        expected = (media.host, media.port)
        if addr == expected or (self._source is None and addr[0] == media.host):
            # The SDP address always wins; another port on the peer's host only until the
            # SDP address has been heard from (comedia-style latching).
            if self._source != expected:
                self._source = addr
            return True
        return False

    def _on_event_packet(self, packet: RtpPacket) -> None:
        try:
            event = parse_event(packet.payload)
        except RtpError:
            self.ignored["bad telephone-event"] += 1
            return
        # One key press is many packets with the same timestamp (RFC 4733 §2.5).
        key = (packet.ssrc, packet.timestamp)
        if key in self._seen_events:
            return
        self._seen_events.append(key)
        self._on_event(DtmfIn(event.digit, time.monotonic()))

    def _tick_receive(self, now: float) -> None:
        playing, packet = self._jitter.pop()
        pcm = _SILENCE
        if playing and packet is not None:
            decode = _DECODERS[packet.payload_type]
            decoded = decode(packet.payload)
            if len(decoded):
                pcm = decoded
            arrived = self._arrivals.pop(packet.sequence, None)
            if arrived is not None:
                self._input_delay = max(0.0, now - arrived)
        if self.on_wire_audio is not None:
            self.on_wire_audio(pcm)
        frame = AudioFrame(pcm, WIRE_RATE, self._ticks_in * TICK_S)
        self._ticks_in += len(pcm) / SAMPLES
        # Audio is stamped with when it reached us on the wire, not when the jitter buffer
        # let it go: the buffer's delay is ours, and the latency figures must include it.
        received_at = now - self._input_delay
        for out in self._resampler.process(frame):
            self._on_event(AudioIn(out, received_at))

    # --- send -------------------------------------------------------------------------
    async def send_audio(self, frame: AudioFrame) -> None:
        """Queue an 8 kHz 20 ms frame, waiting while ``lookahead_frames`` are queued."""
        frame.check(WIRE_RATE)
        while not self._closed and self._queued_frames() >= self.lookahead_frames:
            self._space.clear()
            await self._space.wait()
        if not self._closed:
            self._playout.append(frame)

    def relay_audio(self, pcm: np.ndarray, max_queued: int = 5) -> None:
        """Queue 8 kHz audio without waiting (a bridge); drops it when ``max_queued`` frames
        are already waiting, so a bridge never builds up delay."""
        if not self._closed and len(pcm) == SAMPLES and self._queued_frames() < max_queued:
            self._playout.append(AudioFrame(pcm, WIRE_RATE))
            if np.abs(pcm).max() > VOICED_PEAK:
                self.relayed_voiced_frames += 1

    def send_mark(self, name: str) -> None:
        """Report ``name`` as played once the frames queued before it have gone out."""
        if not self._closed:
            self._playout.append(name)

    def clear(self) -> None:
        """Drop queued frames and the marks behind them."""
        self._playout.clear()
        self._space.set()

    def send_dtmf(self, digits: str) -> None:
        """Send keys as RFC 4733 events (needs a negotiated telephone-event type)."""
        if self.media is None or self.media.event_payload_type is None:
            raise RtpError("the peer did not negotiate telephone-event: cannot send DTMF")
        for digit in digits:
            TelephoneEvent(digit, False, 10, 0)  # validates the key now
            self._dtmf_out.append(digit)

    def _queued_frames(self) -> int:
        return sum(isinstance(item, AudioFrame) for item in self._playout)

    def _tick_send(self, now: float) -> None:
        self._echo_marks(now)
        media = self.media
        if media is None or self._transport is None:
            return
        if self._dtmf_sending is not None or self._dtmf_out:
            self._send_dtmf_packet(media)
            return
        frame = None
        if self._playout and isinstance(self._playout[0], AudioFrame):
            frame = self._playout.popleft()
            if self.first_audio_sent_at is None and np.any(frame.pcm):  # type: ignore[union-attr]
                self.first_audio_sent_at = now
        if self._queued_frames() < self.lookahead_frames:
            self._space.set()
        pcm = frame.pcm if isinstance(frame, AudioFrame) else _SILENCE
        if media.direction not in _PEER_HOLDS:
            payload = _ENCODERS[media.codec](pcm)
            packet = RtpPacket(media.payload_type, self._seq, self._timestamp, self._ssrc, payload)
            self._send(packet)
        else:
            self.ticks_held += 1
        self._timestamp += SAMPLES

    def _send_dtmf_packet(self, media: MediaChoice) -> None:
        assert media.event_payload_type is not None
        if self._dtmf_sending is None:
            self._dtmf_sending = (self._dtmf_out.popleft(), self._timestamp, 0)
        digit, timestamp, ticks = self._dtmf_sending
        ticks += 1
        end = ticks >= DTMF_MS // FRAME_MS
        payload = TelephoneEvent(digit, end, 10, ticks * SAMPLES).to_bytes()
        # The end packet goes three times (RFC 4733 §2.5.1.4); all share the timestamp.
        for repeat in range(3 if end else 1):
            first = ticks == 1 and repeat == 0
            self._send(
                RtpPacket(
                    media.event_payload_type, self._seq, timestamp, self._ssrc, payload, first
                )
            )
        if end:
            self._dtmf_sending = None
            self._timestamp = timestamp + ticks * SAMPLES
        else:
            self._dtmf_sending = (digit, timestamp, ticks)

    def _send(self, packet: RtpPacket) -> None:
        if self._transport is None or self.media is None:
            return
        target = self._source or (self.media.host, self.media.port)
        self._transport.sendto(packet.to_bytes(), target)
        self._seq = (self._seq + 1) & 0xFFFF
        self.packets_out += 1

    def _echo_marks(self, now: float) -> None:
        while self._playout and isinstance(self._playout[0], str):
            self._on_event(MarkPlayed(self._playout.popleft(), now))  # type: ignore[arg-type]

    # --- the clock --------------------------------------------------------------------
    async def _run_clock(self) -> None:
        start = time.monotonic()
        index = 0
        while not self._closed:
            due = start + index * TICK_S
            now = time.monotonic()
            if now - due > MAX_BEHIND_S:
                log.warning("rtp clock %.0f ms behind: restarting it", 1000 * (now - due))
                start, index, due = now, 0, now
            if due > now:
                await asyncio.sleep(due - now)
            now = time.monotonic()
            try:
                self._tick_receive(now)
                self._tick_send(now)
            except Exception:  # one bad packet must not stop the call's clock
                log.exception("rtp tick failed")
            index += 1

    async def close(self) -> None:
        """Stop the clock and close the sockets (idempotent)."""
        self._closed = True
        self._space.set()
        if self._clock is not None:
            self._clock.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._clock
        for transport in (self._transport, self._rtcp):
            if transport is not None:
                transport.close()
