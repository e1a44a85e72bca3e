"""The Transport protocol over one SIP call: RTP audio and DTMF in, paced RTP out.

The call's RTP clock is the playout clock: a mark is echoed once every frame queued before
it has gone to the wire at real time, and :meth:`clear` drops what has not gone yet, so a
barge-in stops the agent within one 20 ms tick. Hanging up sends BYE; a transfer sends
REFER and, when the peer refuses it, falls back to the ``on_refer_refused`` hook (the
listener bridges the call to the number over the trunk when one is configured).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from frontdesk.audio import AudioFrame
from frontdesk.transports.base import CallEnded, TransportEvent
from frontdesk.transports.sip.leg import SipLeg
from frontdesk.transports.sip.rtp import WIRE_RATE, RtpSession

log = logging.getLogger(__name__)

ReferFallback = Callable[["SipCallTransport", str], Awaitable[bool]]


class SipCallTransport:
    """A :class:`~frontdesk.transports.base.Transport` for one SIP call."""

    name = "sip"
    output_rate = WIRE_RATE

    def __init__(
        self,
        leg: SipLeg,
        events: asyncio.Queue[TransportEvent],
        *,
        transfer_uri: Callable[[str], str],
        on_refer_refused: ReferFallback | None = None,
    ) -> None:
        self.leg = leg
        self.caller_number = leg.remote_number
        self.transfers: list[tuple[str, str]] = []
        """(number, how) for every transfer: "refer", "bridge" or "failed"."""
        self._events = events
        self._transfer_uri = transfer_uri
        self._on_refer_refused = on_refer_refused
        self._done = False

    @property
    def rtp(self) -> RtpSession:
        """The call's RTP session (stats: packets, ignored datagrams, first audio out)."""
        return self.leg.rtp

    async def events(self) -> AsyncIterator[TransportEvent]:
        """Caller audio, DTMF and played marks, ending with :class:`CallEnded`."""
        while True:
            event = await self._events.get()
            yield event
            if isinstance(event, CallEnded):
                self._done = True
                return

    async def send_audio(self, frame: AudioFrame) -> None:
        """Queue a 20 ms 8 kHz frame for the RTP clock (waits while the queue is full)."""
        if not self.leg.ended.is_set():
            await self.leg.rtp.send_audio(frame)

    async def send_mark(self, name: str) -> None:
        """Echo ``name`` once the audio queued before it has been sent."""
        self.leg.rtp.send_mark(name)

    async def clear(self) -> None:
        """Stop sending: drop every queued frame (and the marks behind them)."""
        self.leg.rtp.clear()

    async def send_dtmf(self, digits: str) -> None:
        """Press keys towards the peer (RFC 4733 events on the RTP clock)."""
        self.leg.rtp.send_dtmf(digits)

    async def hang_up(self) -> None:
        """End the call with BYE."""
        await self.leg.hang_up()

    async def transfer(self, number: str) -> None:
        """Hand the caller to ``number``: REFER first, the fallback when it is refused."""
        uri = self._transfer_uri(number)
        if await self.leg.refer(uri):
            self.transfers.append((number, "refer"))
            await self.leg.hang_up()
            return
        bridged = False
        if self._on_refer_refused is not None:
            try:
                bridged = await self._on_refer_refused(self, uri)
            except Exception:
                log.exception("sip call %s: bridge fallback failed", self.leg.call_id)
        self.transfers.append((number, "bridge" if bridged else "failed"))
        if not bridged:
            await self.leg.hang_up()
        else:
            # The bridge owns the caller's leg from now on: the Call just ends.
            self._events.put_nowait(CallEnded(f"bridged to {number}", time.monotonic()))

    async def aclose(self) -> None:
        """Hang up if still up and not bridged (idempotent); the listener closes RTP."""
        if not self.leg.ended.is_set() and not self.leg.bridged:
            await self.leg.hang_up()
