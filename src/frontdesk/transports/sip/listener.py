"""The SIP front door: answers INVITEs with a Call each, and places outbound calls.

Each call runs in its own task with its own RTP socket and event queue; whatever goes wrong
in one is logged and ends only that call. Requests outside any call: OPTIONS gets 200
(trunks use it as a keep-alive), a request for an unknown dialog 481, a method this UA does
not implement 501, and anything unparseable 400 (from the endpoint).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from frontdesk.transports.base import CallEnded, TransportEvent
from frontdesk.transports.sip.bridge import bridge_to
from frontdesk.transports.sip.endpoint import SipEndpoint
from frontdesk.transports.sip.leg import ALLOW, SipCallFailed, SipLeg
from frontdesk.transports.sip.message import SipRequest, SipResponse, parse_name_addr
from frontdesk.transports.sip.registration import Registration
from frontdesk.transports.sip.rtp import RtpSession
from frontdesk.transports.sip.settings import SipSettings
from frontdesk.transports.sip.transport import SipCallTransport

if TYPE_CHECKING:
    from frontdesk.agent import Agent
    from frontdesk.call.contracts import CallResult

log = logging.getLogger(__name__)

DIALOG_METHODS = frozenset({"BYE", "CANCEL", "NOTIFY", "INFO", "REFER", "ACK"})
AgentSource = "Agent | Callable[[], Awaitable[Agent]]"


@dataclass(slots=True)
class SipCallRecord:
    """A finished SIP call, as the listener saw it (the full record is in the database)."""

    sip_call_id: str
    direction: str
    result: CallResult | None
    transport: SipCallTransport | None
    error: str | None = None
    ignored_rtp: dict[str, int] = field(default_factory=dict)


class SipListener:
    """Listens for SIP on ``host:port`` and runs one Call per INVITE with ``agent``."""

    def __init__(
        self,
        agent: Agent | Callable[[], Awaitable[Agent]],
        host: str = "127.0.0.1",
        port: int = 5060,
        settings: SipSettings | None = None,
        *,
        observer: Callable[..., None] | None = None,
    ) -> None:
        self.settings = settings or SipSettings()
        self.endpoint = SipEndpoint(
            host, port, on_request=self._on_request, public_host=self.settings.media_host
        )
        self.endpoint.on_stray_2xx = self._on_stray_2xx
        self.endpoint.on_ack_timeout = self._on_ack_timeout
        self.media_host = self.endpoint.public_host
        self.observer = observer
        self.finished: list[SipCallRecord] = []
        self.registration: Registration | None = None
        self._agent_source = agent
        self._agent: Agent | None = None
        self._owns_agent = False
        self._legs: dict[str, SipLeg] = {}
        self.calls: dict[str, SipCallTransport] = {}
        """The transport of each call in progress, by SIP Call-ID (to press keys on an
        outbound call, say: ``calls[id].send_dtmf("1")``)."""
        self._tasks: set[asyncio.Task[Any]] = set()
        self.bridges: set[asyncio.Task[None]] = set()
        """Transfer bridges in progress (their legs outlive the agent's Call)."""
        self._finished_event = asyncio.Event()
        self._stopping = False

    @property
    def address(self) -> tuple[str, int]:
        """(host, port) the listener is bound to (the port is known after start)."""
        return self.endpoint.host, self.endpoint.port

    @property
    def live_calls(self) -> int:
        """Calls in progress."""
        return len(self._legs)

    async def start(self) -> None:
        """Open the agent (if given a factory), bind the socket, register with the trunk."""
        if self._agent is None:
            source = self._agent_source
            if callable(source) and not hasattr(source, "new_call"):
                self._agent, self._owns_agent = await source(), True
            else:
                self._agent = source  # type: ignore[assignment]
        await self.endpoint.start()
        if self.settings.registrar:
            self.registration = Registration(self.endpoint, self.settings)
            self.registration.start()
        log.info("sip listening on %s:%d", *self.address)

    async def stop(self) -> None:
        """Hang up every call, unregister and close the socket."""
        self._stopping = True
        for leg in list(self._legs.values()):
            with contextlib.suppress(Exception):
                await leg.hang_up()
        pending = self._tasks | self.bridges
        if pending:
            await asyncio.wait(pending, timeout=10)
        for task in pending:
            task.cancel()
        if self.registration is not None:
            await self.registration.stop()
        await self.endpoint.stop()
        if self._owns_agent and self._agent is not None:
            await self._agent.aclose()

    async def wait_finished(self, count: int = 1, timeout_s: float = 60.0) -> list[SipCallRecord]:
        """Wait until ``count`` calls have finished (tests, the CLI); returns them all."""
        async with asyncio.timeout(timeout_s):
            while len(self.finished) < count:
                self._finished_event.clear()
                await self._finished_event.wait()
        return self.finished

    # --- requests ---------------------------------------------------------------------
    def _on_request(self, request: SipRequest, addr: tuple[str, int]) -> None:
        leg = self._legs.get(request.call_id)
        if leg is not None:
            leg.on_request(request, addr)
            return
        method = request.method
        has_tag = parse_name_addr(request.get("To") or "").tag is not None
        if method == "INVITE" and not has_tag:
            self._on_invite(request, addr)
        elif method == "OPTIONS":
            headers = [("Allow", ALLOW), ("Accept", "application/sdp")]
            self.endpoint.respond(request, addr, 200, "OK", headers=headers)
        elif method == "ACK":
            return
        elif method in DIALOG_METHODS or method == "INVITE":
            self.endpoint.respond(request, addr, 481, "Call/Transaction Does Not Exist")
        else:
            self.endpoint.respond(request, addr, 501, "Not Implemented", headers=[("Allow", ALLOW)])

    def _on_invite(self, invite: SipRequest, addr: tuple[str, int]) -> None:
        if self._stopping or self._agent is None:
            self.endpoint.respond(invite, addr, 503, "Service Unavailable")
            return
        if len(self._legs) >= self.settings.max_calls:
            self.endpoint.respond(invite, addr, 486, "Busy Here")
            return
        events: asyncio.Queue[TransportEvent] = asyncio.Queue()
        rtp = RtpSession(events.put_nowait)
        leg = SipLeg(self.endpoint, rtp, self.media_host, on_end=_ender(events))
        self._legs[invite.call_id] = leg
        self._spawn(self._run_inbound(leg, events, invite, addr), invite.call_id)

    def _on_stray_2xx(self, response: SipResponse) -> None:
        leg = self._legs.get(response.call_id)
        if leg is not None:
            leg.resend_ack()

    def _on_ack_timeout(self, call_id: str) -> None:
        leg = self._legs.get(call_id)
        if leg is not None:
            leg._end("no ACK for our 200 OK", "caller")

    def _spawn(self, coro: Awaitable[Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        task.set_name(f"sip-call-{name[:16]}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # --- calls ------------------------------------------------------------------------
    async def _run_inbound(
        self,
        leg: SipLeg,
        events: asyncio.Queue[TransportEvent],
        invite: SipRequest,
        addr: tuple[str, int],
    ) -> None:
        record = SipCallRecord(invite.call_id, "inbound", None, None)
        try:
            await leg.rtp.open(self.media_host)
            if not await leg.accept(invite, addr, self.settings.ring_s):
                return
            metadata = {
                "sip_call_id": invite.call_id,
                "sip_from": invite.get("From"),
                "sip_to": invite.get("To"),
            }
            record.transport, record.result = await self._run_call(leg, events, "inbound", metadata)
        except Exception as exc:
            log.exception("sip call %s failed", invite.call_id)
            record.error = repr(exc)
        finally:
            await self._close_leg(leg, record)

    async def _run_call(
        self,
        leg: SipLeg,
        events: asyncio.Queue[TransportEvent],
        direction: str,
        metadata: dict[str, Any],
    ) -> tuple[SipCallTransport, CallResult]:
        assert self._agent is not None
        transport = SipCallTransport(
            leg,
            events,
            transfer_uri=self._transfer_uri,
            on_refer_refused=self._bridge if self.settings.bridge_fallback else None,
        )
        call = await self._agent.new_call(transport, direction=direction, metadata=metadata)
        if self.observer is not None:
            call.observer = self.observer
        self.calls[leg.call_id] = transport
        try:
            return transport, await call.run()
        finally:
            self.calls.pop(leg.call_id, None)

    def _transfer_uri(self, number: str) -> str:
        number = self.settings.transfer_number or number
        try:
            return self.settings.number_uri(number)
        except ValueError:
            # No trunk: the peer we talk to is the best place to dial the number at.
            return f"sip:{''.join(c for c in number if c.isdigit() or c == '+')}@{self.media_host}"

    async def _bridge(self, transport: SipCallTransport, uri: str) -> bool:
        if self.settings.proxy_address() is None:
            return False  # no trunk to place the second leg through
        return await bridge_to(self, transport.leg, uri)

    async def _close_leg(self, leg: SipLeg, record: SipCallRecord) -> None:
        if not leg.bridged:  # a bridged leg is released by its bridge
            with contextlib.suppress(Exception):
                await leg.hang_up()
            await leg.rtp.close()
            self.release(leg)
        record.ignored_rtp = dict(leg.rtp.ignored)
        self.finished.append(record)
        self._finished_event.set()

    def release(self, leg: SipLeg) -> None:
        """Forget a leg that has ended (its Call-ID no longer routes here)."""
        if self._legs.get(leg.call_id) is leg:
            del self._legs[leg.call_id]

    # --- outbound ---------------------------------------------------------------------
    async def open_leg(self, uri: str) -> tuple[SipLeg, asyncio.Queue[TransportEvent]]:
        """Place a call to ``uri`` and return its leg once answered (no Call on it yet).
        Raises :class:`SipCallFailed` if it is not answered."""
        events: asyncio.Queue[TransportEvent] = asyncio.Queue()
        rtp = RtpSession(events.put_nowait)
        leg = SipLeg(self.endpoint, rtp, self.media_host, on_end=_ender(events))
        await rtp.open(self.media_host)
        domain = self.settings.trunk_domain or self.endpoint.public_host
        user = self.settings.username or self.settings.caller_id
        try:
            pending = leg.call(
                uri,
                from_uri=f"sip:{user}@{domain}",
                proxy=self.settings.proxy_address(),
                credentials=self.settings.credentials,
                ring_timeout_s=self.settings.ring_timeout_s,
            )
            task = asyncio.ensure_future(pending)
            await asyncio.sleep(0)  # leg.call sets the Call-ID before its first await
            self._legs[leg.call_id] = leg
            await task
        except BaseException:
            self._legs.pop(leg.call_id, None)
            await rtp.close()
            raise
        return leg, events

    async def place_call(self, uri: str, metadata: dict[str, Any] | None = None) -> SipCallRecord:
        """Call ``uri`` (a SIP URI or a number dialled through the trunk), hold the
        conversation, and return when it is over. Raises :class:`SipCallFailed`."""
        if self._agent is None:
            raise RuntimeError("start() the listener before placing calls")
        uri = self.settings.number_uri(uri) if not uri.startswith("sip") else uri
        leg, events = await self.open_leg(uri)
        record = SipCallRecord(leg.call_id, "outbound", None, None)
        try:
            meta = {"sip_call_id": leg.call_id, "sip_to": uri, **(metadata or {})}
            record.transport, record.result = await self._run_call(leg, events, "outbound", meta)
        except Exception as exc:
            log.exception("outbound sip call %s failed", leg.call_id)
            record.error = repr(exc)
        finally:
            await self._close_leg(leg, record)
        return record


def _ender(events: asyncio.Queue[TransportEvent]) -> Callable[[str, str], None]:
    def end(reason: str, by: str) -> None:
        events.put_nowait(CallEnded(reason, time.monotonic()))

    return end


async def place_call(
    agent: Agent,
    uri: str,
    *,
    settings: SipSettings | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    metadata: dict[str, Any] | None = None,
    observer: Callable[..., None] | None = None,
) -> SipCallRecord:
    """Place one outbound call from a temporary SIP endpoint on ``host:port`` (0: any free
    port) and return when it is over. Raises :class:`SipCallFailed` when unanswered.
    ``observer`` gets the Call's events (see ``Call._emit``)."""
    listener = SipListener(agent, host, port, settings, observer=observer)
    await listener.start()
    try:
        return await listener.place_call(uri, metadata)
    finally:
        await listener.stop()


__all__ = ["SipCallFailed", "SipCallRecord", "SipListener", "place_call"]
