"""A caller on a SIP line: a phone, played by a script, calling the agent's SIP address.

It places the call with the SIP stack's own UAC (:class:`SipLeg`: INVITE with a PCMU/PCMA
offer and RFC 4733 ``telephone-event``, ACK, BYE) and speaks over an :class:`RtpSession`,
whose 20 ms clock is the caller's clock: on each tick the agent's 20 ms that played out of
the jitter buffer goes to the :class:`ScriptedCaller`, and what the caller says goes out in
the same tick. Key presses are RFC 4733 events, which replace the caller's audio while a
key is sent, as on a phone. Both directions are recorded on that clock, and every tick on
which the agent's audio played is logged: SIP has no ``clear``, so the agent stopping is
its audio stopping on the line (it keeps sending RTP, silence).

A REFER (the agent handing the caller to a person) is logged with its ``Refer-To``,
accepted (202) and reported done (NOTIFY ``200 OK``) without calling anyone: the battery
tests the agent, not the hand-off line. The agent then hangs up.

**One timeline with the agent's record.** frontdesk stamps caller audio with its RTP
clock's tick count, so the agent's turn times are on its own clock, not the caller's. Before
its clock starts, the caller reads the agent's clock off the agent's first packets (tick n
carries the first timestamp + 160 n) and starts half-way between two of the agent's ticks,
so each of its packets is played at a known tick of the agent's (its jitter buffer holds the
first one for one tick): :attr:`SipCallLog.agent_clock_offset` maps the agent's times onto
the caller's. A tick of either clock more than ~15 ms late shifts that by a tick.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from frontdesk.audio import FRAME_MS
from frontdesk.evals.call_log import WIRE_RATE, WireEvent, event_times, write_call_recording
from frontdesk.evals.scripted_caller import ScriptedCaller
from frontdesk.transports.base import TransportEvent
from frontdesk.transports.sip.endpoint import SipEndpoint
from frontdesk.transports.sip.jitter import JitterBuffer
from frontdesk.transports.sip.leg import SipLeg
from frontdesk.transports.sip.message import SipRequest, parse_uri
from frontdesk.transports.sip.rtp import DTMF_MS, SAMPLES, TICK_S, RtpSession
from frontdesk.transports.sip.rtp_packet import RtpError, parse_rtp

PHASE_S = 0.015
"""Our ticks run this long after the agent's: our packets reach it 5 ms before its next
tick but one needs them (its jitter buffer is one packet deep) and its packets wait 15 ms
for our tick, so either clock may run that late without a packet missing its tick."""
AGENT_JITTER_DEPTH = 1
"""Ticks frontdesk's jitter buffer holds the first packet of a stream."""
CLOCK_PACKETS = 5
"""The agent's packets its clock is read from (the earliest arrival wins)."""
LATE_TICK_S = 0.02
"""A tick this late is logged: the caller's clock fell behind real time."""
_AUDIO_PAYLOADS = (0, 8)  # PCMU, PCMA
_KEY_TICKS = DTMF_MS // FRAME_MS
_SILENCE = np.zeros(SAMPLES, np.int16)

__all__ = ["SipCallLog", "SipCaller", "call_sip"]


@dataclass(slots=True)
class SipCallLog:
    """A finished call seen from the caller's phone."""

    call_sid: str
    """The SIP Call-ID (the agent stores it as ``sip_call_id``)."""
    caller: ScriptedCaller
    events: list[WireEvent]
    recording: Path | None
    ended_by: str | None
    agent_media: list[float] = field(default_factory=list)
    """Start of every tick (call clock) on which a frame of the agent's audio that was not
    digital silence played."""
    agent_clock_offset: float | None = None
    """The agent's audio clock minus the caller's, in seconds (None: not known)."""
    transport: str = "sip"

    def times(self, kind: str) -> list[float]:
        """When each event of ``kind`` happened."""
        return event_times(self.events, kind)


class _CallerRtp(RtpSession):
    """The caller's RTP session. Unlike the agent's:

    - its clock starts when the caller says (``SipLeg.call`` starts it on the answer), and
      until then the agent's packets are only timed, not buffered (played later, they would
      delay all the caller hears as long);
    - its jitter buffer plays the newest packet at the first tick after it arrived and
      drops one that missed its tick. The session's own buffer follows a late sender and
      keeps the delay (up to 8 packets): a single late tick of the agent's clock would add
      20 ms to everything the caller hears after it, and the agent would be blamed for it
      in every later turn. Here a late packet costs the agent 20 ms of audio, once.
    """

    def __init__(self, on_event: Any) -> None:
        super().__init__(on_event)
        self._jitter = JitterBuffer(depth=0, max_packets=1)
        self.agent_packets: list[tuple[float, int]] = []
        """(arrival, RTP timestamp) of the agent's packets before our clock started."""
        self.clock_read = asyncio.Event()
        """Set once ``CLOCK_PACKETS`` of the agent's packets have been timed."""
        self._may_start = False

    def start(self) -> None:
        """Start the clock, once :meth:`start_clock` allowed it."""
        if self._may_start:
            super().start()

    def start_clock(self) -> None:
        """Start the clock now."""
        self._may_start = True
        super().start()

    def _on_datagram(self, data: bytes, addr: tuple[str, int]) -> None:
        if self._may_start:
            super()._on_datagram(data, addr)
            return
        with contextlib.suppress(RtpError):
            packet = parse_rtp(data)
            if packet.payload_type in _AUDIO_PAYLOADS:
                self.agent_packets.append((time.monotonic(), packet.timestamp))
                if len(self.agent_packets) >= CLOCK_PACKETS:
                    self.clock_read.set()


def agent_clock_start(packets: list[tuple[float, int]]) -> float:
    """When the agent's RTP clock ticked for the first time, on our monotonic clock: its
    tick n sends the packet stamped with the first one's timestamp + 160 n, so each arrival
    less n ticks is that time, plus however late the tick and the delivery were; the
    earliest is the best estimate."""
    first = packets[0][1]
    return min(at - ((stamp - first) % 2**32) / WIRE_RATE for at, stamp in packets)


def local_address_towards(peer: tuple[str, int]) -> str:
    """The address of ours that packets to ``peer`` leave from (a UDP "connect" sends
    nothing; it only asks the kernel for the route)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(peer)
        return str(probe.getsockname()[0])


class SipCaller:
    """Places one SIP call to ``uri`` from ``host`` (default: our address towards the agent)
    and lets ``caller`` talk on it."""

    def __init__(
        self,
        uri: str,
        caller: ScriptedCaller,
        *,
        caller_number: str,
        host: str | None = None,
        recording_path: str | Path | None = None,
        max_seconds: float = 180.0,
        ring_timeout_s: float = 30.0,
    ) -> None:
        agent = parse_uri(uri).address()  # a malformed URI is named before anything is bound
        if caller.rate != WIRE_RATE:
            raise ValueError(f"a SIP caller speaks at {WIRE_RATE} Hz, not {caller.rate}")
        self.uri = uri
        self.caller = caller
        self.caller_number = caller_number
        self.host = host or local_address_towards(agent)
        """Our address for SIP and RTP: one the agent can reach."""
        self.recording_path = Path(recording_path) if recording_path else None
        self.max_seconds = max_seconds
        self.ring_timeout_s = ring_timeout_s
        self.events: list[WireEvent] = []
        self.ended_by: str | None = None
        self.leg: SipLeg | None = None
        self._endpoint: SipEndpoint | None = None
        self._rtp = _CallerRtp(self._on_rtp_event)
        self._offset: float | None = None
        self._t0: float | None = None
        self._index = 0
        self._keys_until = 0
        self._hung_up = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._caller_track: list[np.ndarray] = []
        self._agent_track: list[np.ndarray] = []
        self._agent_media: list[float] = []

    def _now(self) -> float:
        return time.monotonic() - self._t0 if self._t0 is not None else 0.0

    def _log(self, kind: str, **detail: Any) -> None:
        self.events.append(WireEvent(self._now(), kind, detail))

    async def run(self) -> SipCallLog:
        """Place the call, hold it until either side hangs up, and return what happened.
        Raises :class:`~frontdesk.transports.sip.SipCallFailed` when it is not answered."""
        endpoint = SipEndpoint(self.host, 0, on_request=self._on_request)
        self._endpoint = endpoint
        await endpoint.start()
        try:
            await self._rtp.open(self.host)
            leg = SipLeg(endpoint, self._rtp, self.host)
            self.leg = leg
            endpoint.on_stray_2xx = lambda _response: leg.resend_ack()
            await leg.call(
                self.uri,
                from_uri=f"sip:{self.caller_number}@{self.host}",
                ring_timeout_s=self.ring_timeout_s,
            )
            await self._start_in_phase()
            await self._hold(leg)
        finally:
            for task in self._tasks:
                task.cancel()
            await self._rtp.close()
            await endpoint.stop()
        if self.recording_path is not None:
            write_call_recording(
                self.recording_path, self._caller_track, WIRE_RATE, self._agent_track
            )
        return SipCallLog(
            self.leg.call_id if self.leg else "",
            self.caller,
            self.events,
            self.recording_path,
            self.ended_by,
            self._agent_media,
            self._offset,
        )

    async def _start_in_phase(self) -> None:
        """Start our clock ``PHASE_S`` after one of the agent's ticks (see the module doc)."""
        rtp = self._rtp
        rtp.on_wire_audio = self._tick
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(rtp.clock_read.wait(), 2.0)
        if rtp.agent_packets:
            start = agent_clock_start(rtp.agent_packets)
            ticks = math.ceil((time.monotonic() + 0.002 - start - PHASE_S) / TICK_S)
            await asyncio.sleep(max(0.0, start + ticks * TICK_S + PHASE_S - time.monotonic()))
            # Our packet 0 lands between the agent's ticks ``ticks`` and ``ticks + 1``; its
            # jitter buffer plays it AGENT_JITTER_DEPTH ticks after the first of those.
            self._offset = (ticks + 1 + AGENT_JITTER_DEPTH) * TICK_S
        rtp.start_clock()

    async def _hold(self, leg: SipLeg) -> None:
        ended = asyncio.ensure_future(leg.ended.wait())
        hung_up = asyncio.ensure_future(self._hung_up.wait())
        try:
            await asyncio.wait(
                {ended, hung_up}, timeout=self.max_seconds, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            ended.cancel()
            hung_up.cancel()
        if leg.ended.is_set():
            self.ended_by = "agent"  # its BYE (the leg calls its peer the caller)
            return
        self.ended_by = "caller"
        self._log("bye_out")
        self._rtp.on_wire_audio = None
        await leg.hang_up()

    # --- the caller's clock ---------------------------------------------------------------
    def _tick(self, heard: np.ndarray) -> None:
        """One tick of our RTP clock: ``heard`` just played; say this tick's 20 ms."""
        index = self._index
        self._index += 1
        now = time.monotonic()
        if self._t0 is None:
            self._t0 = now
        elif (late := now - self._t0 - index * TICK_S) > LATE_TICK_S:
            self._log("late_tick", index=index, late_ms=round(1000 * late))
        self._agent_track.append(heard)
        if np.any(heard):
            self._agent_media.append(index * TICK_S)
        if self._hung_up.is_set():
            self._caller_track.append(_SILENCE)
            return
        step = self.caller.tick(index, heard)
        if step.dtmf:
            self._rtp.send_dtmf(step.dtmf)
            self._keys_until = index + _KEY_TICKS * len(step.dtmf)
            self._log("dtmf_out", digits=step.dtmf)
        if index < self._keys_until:
            # The key's RFC 4733 events go out instead of audio on these ticks.
            self._caller_track.append(_SILENCE)
        else:
            self._caller_track.append(step.pcm)
            # Queued now, sent by this same tick (the queue is empty: one frame per tick).
            self._rtp.relay_audio(step.pcm, max_queued=1)
        if step.hang_up:
            self._hung_up.set()

    def _on_rtp_event(self, event: TransportEvent) -> None:
        """The session's 16 kHz copy of what we hear is not needed: the tick has the 8 kHz."""

    # --- signalling -----------------------------------------------------------------------
    def _on_request(self, request: SipRequest, addr: tuple[str, int]) -> None:
        leg, endpoint = self.leg, self._endpoint
        assert endpoint is not None
        if leg is None or request.call_id != leg.call_id:
            if request.method != "ACK":
                endpoint.respond(request, addr, 481, "Call/Transaction Does Not Exist")
            return
        if request.method == "REFER":
            self._on_refer(leg, endpoint, request, addr)
            return
        if request.method == "BYE":
            self._log("bye_in")
        leg.on_request(request, addr)

    def _on_refer(
        self, leg: SipLeg, endpoint: SipEndpoint, refer: SipRequest, addr: tuple[str, int]
    ) -> None:
        dialog = leg.dialog
        if dialog is None or not dialog.accepts(refer):
            endpoint.respond(refer, addr, 481, "Call/Transaction Does Not Exist")
            return
        self._log("refer_in", refer_to=refer.get("Refer-To"))
        endpoint.respond(refer, addr, 202, "Accepted")
        notify = dialog.request("NOTIFY", endpoint.via, endpoint.contact)
        notify.add("Event", "refer")
        notify.add("Subscription-State", "terminated;reason=noresource")
        notify.add("Content-Type", "message/sipfrag;version=2.0")
        notify.body = b"SIP/2.0 200 OK\r\n"
        task = asyncio.ensure_future(endpoint.request(notify, dialog.destination(), wait_s=8.0))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(lambda t: t.cancelled() or t.exception())  # retrieved


async def call_sip(
    uri: str,
    caller: ScriptedCaller,
    *,
    caller_number: str,
    recording_path: str | Path | None = None,
    **options: Any,
) -> SipCallLog:
    """One whole SIP call to ``uri``; ``options`` go to :class:`SipCaller`."""
    sip = SipCaller(
        uri, caller, caller_number=caller_number, recording_path=recording_path, **options
    )
    return await sip.run()
