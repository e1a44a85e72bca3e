"""One SIP call's signalling, inbound (UAS) or outbound (UAC), with its RTP session.

Inbound: INVITE -> 100 Trying -> 180 Ringing -> 200 OK with our SDP answer (retransmitted
until ACK); CANCEL before the 200 ends it with 487. Outbound: INVITE with our offer, digest
authentication on 401/407, ACK for the 2xx. Either way, in the dialog: BYE from either side,
a re-INVITE answered with the current SDP (its new media address is taken), OPTIONS and
NOTIFY answered 200, REFER sent for a transfer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable

from frontdesk.transports.sip.dialog import Credentials, Dialog, authorize
from frontdesk.transports.sip.endpoint import SipEndpoint, SipTimeout, new_tag
from frontdesk.transports.sip.message import (
    NameAddr,
    SipParseError,
    SipRequest,
    SipResponse,
    parse_name_addr,
    parse_uri,
)
from frontdesk.transports.sip.rtp import RtpSession
from frontdesk.transports.sip.sdp import (
    MediaChoice,
    SdpError,
    build_answer,
    build_sdp,
    choose_media,
    new_session_id,
    parse_sdp,
)

log = logging.getLogger(__name__)

ALLOW = "INVITE, ACK, BYE, CANCEL, OPTIONS, NOTIFY, REFER, INFO"


class SipCallFailed(RuntimeError):
    """An outbound call was not answered; ``status`` is the final SIP status (0: timeout)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"call failed: {status} {reason}".strip())
        self.status = status
        self.reason = reason


class SipLeg:
    """Signalling and media of one call; ``on_end(reason, by)`` fires once when it ends."""

    def __init__(
        self,
        endpoint: SipEndpoint,
        rtp: RtpSession,
        media_host: str,
        *,
        on_end: Callable[[str, str], None] | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.rtp = rtp
        self.media_host = media_host
        self.on_end = on_end
        self.dialog: Dialog | None = None
        self.call_id = ""
        self.remote_number: str | None = None
        self.bridged = False
        """Handed to a transfer bridge: the bridge, not the Call, ends this leg."""
        self.answered = asyncio.Event()
        self.ended = asyncio.Event()
        self.end_reason: str | None = None
        self.ended_by: str | None = None
        self.notifications: list[str] = []
        """sipfrag bodies of NOTIFYs about our REFER (transfer progress)."""
        self._notified = asyncio.Event()
        self._session_id = new_session_id()
        self._sdp_version = 1
        self._local_sdp = b""
        self._invite: SipRequest | None = None
        self._invite_addr: tuple[str, int] | None = None
        self._last_ack: SipRequest | None = None
        self._cancelled = False

    # --- inbound ----------------------------------------------------------------------
    async def accept(self, invite: SipRequest, addr: tuple[str, int], ring_s: float) -> bool:
        """Answer an INVITE; False (with the error response sent) when it cannot be."""
        self.call_id = invite.call_id
        self._invite, self._invite_addr = invite, addr
        tag = new_tag()
        self.endpoint.respond(invite, addr, 100, "Trying")
        try:
            self.dialog = Dialog.as_uas(invite, tag)
            if not invite.body:
                raise SdpError("INVITE without an SDP offer (late offer is not supported)")
            media = choose_media(parse_sdp(invite.body))
        except (SdpError, SipParseError) as exc:
            status, reason = (
                (488, "Not Acceptable Here")
                if isinstance(exc, SdpError)
                else (
                    400,
                    "Bad Request",
                )
            )
            log.warning("sip call %s refused: %s", self.call_id, exc)
            self.endpoint.respond(invite, addr, status, f"{reason} ({str(exc)[:80]})", to_tag=tag)
            self._end(f"refused: {exc}", "agent")
            return False
        self.remote_number = _user(self.dialog.remote)
        self.rtp.set_media(media)
        self._local_sdp = self._answer(media, self._sdp_version)
        self.endpoint.respond(invite, addr, 180, "Ringing", to_tag=tag)
        if ring_s > 0:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(ring_s):
                    await self.ended.wait()  # a CANCEL while ringing
        if self._cancelled or self.ended.is_set():
            return False
        self.endpoint.respond(
            invite, addr, 200, "OK", to_tag=tag, headers=self._contact(), body=self._local_sdp
        )
        self.rtp.start()
        self.answered.set()
        return True

    def _contact(self) -> list[tuple[str, str]]:
        return [("Contact", f"<{self.endpoint.contact}>"), ("Allow", ALLOW)]

    # --- in-dialog requests -----------------------------------------------------------
    def on_request(self, request: SipRequest, addr: tuple[str, int]) -> None:
        """A request for this call (matched by Call-ID)."""
        method = request.method
        if method == "CANCEL":
            self._on_cancel(request, addr)
            return
        if method == "ACK":
            return  # the endpoint stopped the 200 OK retransmissions
        dialog = self.dialog
        tag = parse_name_addr(request.get("To") or "").tag
        if dialog is None or tag != dialog.local.tag:
            self.endpoint.respond(request, addr, 481, "Call/Transaction Does Not Exist")
            return
        if not dialog.accepts(request):
            self.endpoint.respond(request, addr, 500, "Server Internal Error (CSeq out of order)")
            return
        if method == "BYE":
            self.endpoint.respond(request, addr, 200, "OK")
            self._end("caller hung up", "caller")
        elif method == "INVITE":
            self._on_reinvite(request, addr)
        elif method == "NOTIFY":
            self.endpoint.respond(request, addr, 200, "OK")
            if request.body:
                self.notifications.append(request.body.decode("utf-8", "replace"))
                self._notified.set()
        elif method in ("OPTIONS", "INFO"):
            self.endpoint.respond(request, addr, 200, "OK", headers=[("Allow", ALLOW)])
        else:
            self.endpoint.respond(request, addr, 501, "Not Implemented", headers=[("Allow", ALLOW)])

    def _on_cancel(self, cancel: SipRequest, addr: tuple[str, int]) -> None:
        invite = self._invite
        if invite is None or cancel.branch != invite.branch:
            self.endpoint.respond(cancel, addr, 481, "Call/Transaction Does Not Exist")
            return
        self.endpoint.respond(cancel, addr, 200, "OK")
        if self.answered.is_set():
            return  # too late: the call is up, the caller must send BYE
        self._cancelled = True
        tag = self.dialog.local.tag if self.dialog else None
        self.endpoint.respond(
            invite, self._invite_addr or addr, 487, "Request Terminated", to_tag=tag
        )
        self._end("caller cancelled", "caller")

    def _on_reinvite(self, request: SipRequest, addr: tuple[str, int]) -> None:
        """A new offer (a moved media address, hold or resume) is answered from the same
        session, its version bumped when the answer changes; no offer gets the current SDP
        (the peer's answer in the ACK is not needed: nothing about our media changes)."""
        if request.body:
            try:
                media = choose_media(parse_sdp(request.body))
            except SdpError as exc:
                self.endpoint.respond(request, addr, 488, f"Not Acceptable Here ({exc})"[:100])
                return
            self.rtp.set_media(media)
            answer = self._answer(media, self._sdp_version)
            if answer != self._local_sdp:
                self._sdp_version += 1
                self._local_sdp = self._answer(media, self._sdp_version)
        self.endpoint.respond(
            request, addr, 200, "OK", headers=self._contact(), body=self._local_sdp
        )

    def _answer(self, media: MediaChoice, version: int) -> bytes:
        return build_answer(media, self.media_host, self.rtp.local_port, self._session_id, version)

    # --- outbound ---------------------------------------------------------------------
    async def call(
        self,
        uri: str,
        *,
        from_uri: str,
        proxy: tuple[str, int] | None = None,
        credentials: Credentials | None = None,
        ring_timeout_s: float = 60.0,
    ) -> None:
        """Place the call and wait for the answer; raises :class:`SipCallFailed`."""
        target = parse_uri(uri)
        dest = proxy or target.address()
        self.call_id = f"{uuid.uuid4().hex}@{self.endpoint.public_host}"
        self.remote_number = target.user
        self._local_sdp = build_sdp(
            self.media_host, self.rtp.local_port, session_id=self._session_id
        )
        invite = self._new_invite(uri, from_uri, cseq=1)
        deadline = time.monotonic() + ring_timeout_s
        authorized = False
        while True:
            self._invite = invite
            try:
                response = await self.endpoint.request(
                    invite, dest, wait_s=max(1.0, deadline - time.monotonic())
                )
            except SipTimeout as exc:
                self._end("no answer", "callee")
                raise SipCallFailed(0, "no answer") from exc
            if response.status in (401, 407) and credentials and not authorized:
                invite = self._new_invite(uri, from_uri, cseq=invite.cseq[0] + 1, like=invite)
                authorized = authorize(invite, response, credentials)
                if authorized:
                    continue
            if response.status >= 300:
                self._end(f"call failed: {response.status}", "callee")
                raise SipCallFailed(response.status, response.reason)
            break
        self.dialog = Dialog.as_uac(invite, response)
        self._send_ack(response)
        try:
            media = choose_media(parse_sdp(response.body))
        except SdpError as exc:
            await self.hang_up()
            raise SipCallFailed(488, f"unusable SDP answer: {exc}") from exc
        self.rtp.set_media(media)
        self.rtp.start()
        self.answered.set()

    def _new_invite(
        self, uri: str, from_uri: str, *, cseq: int, like: SipRequest | None = None
    ) -> SipRequest:
        invite = SipRequest(method="INVITE", uri=uri)
        invite.add("Via", self.endpoint.via)
        invite.add("Max-Forwards", "70")
        invite.add(
            "From", like.get("From") or "" if like else str(NameAddr(from_uri).with_tag(new_tag()))
        )
        invite.add("To", f"<{uri}>")
        invite.add("Call-ID", self.call_id)
        invite.add("CSeq", f"{cseq} INVITE")
        invite.add("Contact", f"<{self.endpoint.contact}>")
        invite.add("Allow", ALLOW)
        invite.add("Content-Type", "application/sdp")
        invite.body = self._local_sdp
        return invite

    def _send_ack(self, response: SipResponse) -> None:
        assert self.dialog is not None and self._invite is not None
        ack = self.dialog.request("ACK", self.endpoint.via, self.endpoint.contact)
        ack.set("CSeq", f"{self._invite.cseq[0]} ACK")
        self._last_ack = ack
        self.endpoint.send(ack, self.dialog.destination())

    def resend_ack(self) -> None:
        """Our ACK was lost (the 200 OK came again): send it again."""
        if self._last_ack is not None and self.dialog is not None:
            self.endpoint.send(self._last_ack, self.dialog.destination())

    # --- call control -----------------------------------------------------------------
    async def hang_up(self) -> None:
        """Send BYE (if the call is up) and end the leg."""
        if self.ended.is_set():
            return
        self._end("agent hung up", "agent")
        if self.dialog is None or not self.answered.is_set():
            return
        bye = self.dialog.request("BYE", self.endpoint.via, self.endpoint.contact)
        try:
            await self.endpoint.request(bye, self.dialog.destination(), wait_s=8.0)
        except SipTimeout:
            log.info("sip call %s: no answer to BYE", self.call_id)

    async def refer(self, target_uri: str, wait_s: float = 8.0) -> bool:
        """Ask the peer to call ``target_uri`` instead (blind transfer, RFC 3515). True when
        the peer accepted the REFER and reported the new call up (or did not say)."""
        if self.dialog is None or self.ended.is_set():
            return False
        refer = self.dialog.request("REFER", self.endpoint.via, self.endpoint.contact)
        refer.add("Refer-To", f"<{target_uri}>")
        refer.add("Referred-By", f"<{self.dialog.local.uri}>")
        try:
            response = await self.endpoint.request(refer, self.dialog.destination(), wait_s=wait_s)
        except SipTimeout:
            return False
        if response.status >= 300:
            log.info("sip call %s: REFER refused (%s)", self.call_id, response.status)
            return False
        # Wait briefly for the NOTIFY saying how the new call went.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait_s):
                while not any(_sipfrag_final(n) for n in self.notifications):
                    self._notified.clear()
                    await self._notified.wait()
        finals = [s for n in self.notifications if (s := _sipfrag_final(n))]
        return not finals or finals[-1] < 300

    def _end(self, reason: str, by: str) -> None:
        if self.ended.is_set():
            return
        self.end_reason, self.ended_by = reason, by
        self.ended.set()
        if self.on_end is not None:
            self.on_end(reason, by)


def _user(address: NameAddr) -> str | None:
    try:
        return parse_uri(address.uri).user
    except SipParseError:
        return None


def _sipfrag_final(body: str) -> int | None:
    """The final status in a message/sipfrag NOTIFY body ("SIP/2.0 200 OK"), else None."""
    parts = body.strip().split()
    if len(parts) >= 2 and parts[0] == "SIP/2.0" and parts[1].isdigit():
        status = int(parts[1])
        return status if status >= 200 else None
    return None
