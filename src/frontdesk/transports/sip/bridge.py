"""The transfer fallback when a peer refuses REFER: call the human over the trunk and
relay audio between the two legs until either side hangs up.

The relay works on the decoded 8 kHz audio each leg's RTP clock plays out, so the two legs
may use different codecs; each direction is bounded to a few frames of queue so the bridge
never adds more than ~100 ms of delay. DTMF is not relayed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from frontdesk.transports.sip.leg import SipCallFailed, SipLeg

if TYPE_CHECKING:
    from frontdesk.transports.sip.listener import SipListener

log = logging.getLogger(__name__)


async def bridge_to(listener: SipListener, caller: SipLeg, uri: str) -> bool:
    """Call ``uri`` and bridge ``caller`` to it; False when the second call fails."""
    try:
        human, _ = await listener.open_leg(uri)
    except SipCallFailed as exc:
        log.warning("sip call %s: bridge to %s failed: %s", caller.call_id, uri, exc)
        return False
    caller.bridged = True
    caller.rtp.on_wire_audio = human.rtp.relay_audio
    human.rtp.on_wire_audio = caller.rtp.relay_audio
    caller.rtp.clear()
    task = asyncio.create_task(_hold(listener, caller, human), name=f"sip-bridge-{uri}")
    listener.bridges.add(task)
    task.add_done_callback(listener.bridges.discard)
    return True


async def _hold(listener: SipListener, caller: SipLeg, human: SipLeg) -> None:
    """Keep the bridge until one side ends, then end the other and release both."""
    ends = [asyncio.ensure_future(leg.ended.wait()) for leg in (caller, human)]
    try:
        await asyncio.wait(ends, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in ends:
            waiter.cancel()
        for leg in (caller, human):
            with contextlib.suppress(Exception):
                await leg.hang_up()
            await leg.rtp.close()
            listener.release(leg)
