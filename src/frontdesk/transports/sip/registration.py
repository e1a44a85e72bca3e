"""Registration with a SIP trunk (RFC 3261 §10), digest-authenticated and refreshed.

REGISTER is sent at start, answered challenges are retried once with credentials, and the
binding is refreshed at 80 % of the interval the registrar granted. A failure is logged and
retried after ``RETRY_S``; stop() removes the binding (Expires: 0).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid

from frontdesk.transports.sip.dialog import authorize
from frontdesk.transports.sip.endpoint import SipEndpoint, SipTimeout, new_tag
from frontdesk.transports.sip.message import SipRequest, SipResponse, parse_params
from frontdesk.transports.sip.settings import SipSettings

log = logging.getLogger(__name__)

RETRY_S = 30.0


class RegistrationFailed(RuntimeError):
    """The registrar refused the binding (or never answered)."""


class Registration:
    """Keeps one binding at the trunk's registrar."""

    def __init__(self, endpoint: SipEndpoint, settings: SipSettings) -> None:
        if not settings.registrar:
            raise ValueError("registration needs FRONTDESK_SIP_REGISTRAR")
        self.endpoint = endpoint
        self.settings = settings
        self.registered = False
        self.granted_s: int | None = None
        self.last_status: int | None = None
        self.registrations = 0
        """Successful REGISTERs (the first one and every refresh)."""
        self._call_id = f"{uuid.uuid4().hex}@{endpoint.public_host}"
        self._tag = new_tag()
        self._cseq = 0
        self._task: asyncio.Task[None] | None = None

    @property
    def aor(self) -> str:
        """Our address of record at the trunk."""
        user = self.settings.username or self.settings.caller_id
        return f"sip:{user}@{self.settings.trunk_domain}"

    async def register(self, expires: int | None = None) -> int:
        """One REGISTER transaction (with digest auth); returns the granted seconds."""
        expires = self.settings.register_expires if expires is None else expires
        request = self._request(expires)
        dest = self.settings.proxy_address()
        assert dest is not None
        response = await self._send(request, dest)
        if response.status in (401, 407) and self.settings.credentials:
            request = self._request(expires)
            if authorize(request, response, self.settings.credentials):
                response = await self._send(request, dest)
        self.last_status = response.status
        if not 200 <= response.status < 300:
            raise RegistrationFailed(f"registrar answered {response.status} {response.reason}")
        granted = _granted(response, expires)
        self.registered = granted > 0
        self.granted_s = granted
        self.registrations += 1
        return granted

    async def _send(self, request: SipRequest, dest: tuple[str, int]) -> SipResponse:
        try:
            return await self.endpoint.request(request, dest)
        except SipTimeout as exc:
            raise RegistrationFailed("the registrar did not answer") from exc

    def _request(self, expires: int) -> SipRequest:
        self._cseq += 1
        assert self.settings.registrar is not None
        registrar = self.settings.registrar.split(";", 1)[0]
        host = registrar.split("@", 1)[-1].removeprefix("sip:")
        request = SipRequest(method="REGISTER", uri=f"sip:{host}")
        request.add("Via", self.endpoint.via)
        request.add("Max-Forwards", "70")
        request.add("From", f"<{self.aor}>;tag={self._tag}")
        request.add("To", f"<{self.aor}>")
        request.add("Call-ID", self._call_id)
        request.add("CSeq", f"{self._cseq} REGISTER")
        user = self.settings.username or self.settings.caller_id
        request.add("Contact", f"<sip:{user}@{self.endpoint.public_host}:{self.endpoint.port}>")
        request.add("Expires", str(expires))
        return request

    def start(self) -> None:
        """Register now and keep the binding refreshed in the background."""
        if self._task is None:
            self._task = asyncio.create_task(self._keep(), name="sip-register")

    async def _keep(self) -> None:
        while True:
            try:
                granted = await self.register()
                log.info("registered at %s for %d s", self.settings.registrar, granted)
                delay = max(granted * 0.8, 1.0)
            except RegistrationFailed as exc:
                self.registered = False
                log.warning("sip registration failed: %s; retrying in %.0f s", exc, RETRY_S)
                delay = RETRY_S
            except Exception:  # whatever went wrong, keep trying: calls depend on the binding
                self.registered = False
                log.exception("sip registration failed; retrying in %.0f s", RETRY_S)
                delay = RETRY_S
            await asyncio.sleep(delay)

    async def stop(self) -> None:
        """Stop refreshing and remove the binding."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self.registered:
            with contextlib.suppress(RegistrationFailed):
                await self.register(expires=0)
            self.registered = False


def _granted(response: SipResponse, asked: int) -> int:
    """The interval the registrar granted: our Contact's expires, else Expires, else ours."""
    for contact in response.get_all("Contact"):
        expires = parse_params(contact).get("expires", "")
        if expires.isdigit():
            return int(expires)
    value = response.get("Expires") or ""
    return int(value) if value.isdigit() else asked
