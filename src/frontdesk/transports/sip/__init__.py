"""SIP trunks: answer and place phone calls over SIP/RTP (UDP) with a focused asyncio stack.

:class:`SipListener` answers INVITEs with one agent Call each and places outbound calls;
:func:`place_call` is the one-shot outbound helper; :class:`SipSettings` reads the trunk's
``FRONTDESK_SIP_*`` settings. See docs/sip.md.
"""

from frontdesk.transports.sip.leg import SipCallFailed
from frontdesk.transports.sip.listener import SipCallRecord, SipListener, place_call
from frontdesk.transports.sip.settings import SipSettings
from frontdesk.transports.sip.transport import SipCallTransport

__all__ = [
    "SipCallFailed",
    "SipCallRecord",
    "SipCallTransport",
    "SipListener",
    "SipSettings",
    "place_call",
]
