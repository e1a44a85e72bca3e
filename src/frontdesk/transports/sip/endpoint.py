"""The SIP endpoint: one UDP socket, the transaction layer (RFC 3261 §17) and routing.

- Client transactions retransmit their request (timer A/E: 0.5 s doubling to 4 s) until a
  response comes, and give up after 32 s (timer B/F). A non-2xx final answer to an INVITE
  is acknowledged here, as the transaction layer must.
- Server transactions remember their last response: a retransmitted request gets it again
  instead of being handled twice.
- A final response to an INVITE is retransmitted until its ACK arrives (§13.3.1.4 for a
  2xx, timer G for a failure such as 487 after CANCEL).
- Anything that does not parse is answered 400 with the reason when it is a request we can
  answer (it names a Via, Call-ID and CSeq), and otherwise dropped; each kind is logged once.

Requests that are not part of a client transaction go to ``on_request``; responses always
go back to the address the request came from (symmetric signalling, RFC 3581).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import re
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from frontdesk.transports.sip.message import (
    MessageTooLarge,
    SipParseError,
    SipRequest,
    SipResponse,
    parse_message,
    parse_params,
)

log = logging.getLogger(__name__)

T1 = 0.5
T2 = 4.0
TRANSACTION_TIMEOUT = 64 * T1
SERVER_MEMORY_S = 32.0
USER_AGENT = "frontdesk"
WILDCARDS = ("0.0.0.0", "")
_HEADER_LINE = re.compile(rb"^(via|v|from|f|to|t|call-id|i|cseq)\s*:\s*(.*)$", re.I | re.M)

RequestHandler = Callable[[SipRequest, tuple[str, int]], None]


class SipTimeout(TimeoutError):
    """No final response to a request within the transaction timeout."""


@dataclass(slots=True)
class _ClientTransaction:
    request: SipRequest
    dest: tuple[str, int]
    final: asyncio.Future[SipResponse]
    on_provisional: Callable[[SipResponse], None] | None
    answered: bool = False  # any response seen: INVITE stops retransmitting


@dataclass(slots=True)
class _ServerTransaction:
    response: SipResponse | None
    addr: tuple[str, int]
    at: float


def new_branch() -> str:
    """A Via branch with the RFC 3261 magic cookie."""
    return "z9hG4bK" + secrets.token_hex(8)


def new_tag() -> str:
    """A From/To tag."""
    return secrets.token_hex(6)


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, endpoint: SipEndpoint) -> None:
        self.endpoint = endpoint

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            self.endpoint._on_datagram(data, (addr[0], addr[1]))
        except Exception:  # whatever one datagram does, the socket keeps serving
            log.exception("sip: failed handling a datagram from %s", addr)

    def error_received(self, exc: Exception) -> None:
        log.debug("sip socket error: %s", exc)


class SipEndpoint:
    """A SIP UDP socket with transactions; see the module docstring."""

    def __init__(
        self,
        host: str,
        port: int = 5060,
        *,
        on_request: RequestHandler,
        public_host: str | None = None,
    ) -> None:
        if host in WILDCARDS and not public_host:
            raise ValueError(f"listening on {host} needs the address peers reach us at")
        self.host = host
        self.port = port
        self.public_host = public_host or host
        """The address in our Via and Contact (``host`` unless that is a wildcard)."""
        self.on_request = on_request
        self.on_stray_2xx: Callable[[SipResponse], None] | None = None
        """Gets a 2xx to an INVITE whose transaction is over (our ACK was lost)."""
        self.on_ack_timeout: Callable[[str], None] | None = None
        """Gets the Call-ID of a call whose 200 OK was never acknowledged."""
        self.malformed: collections.Counter[str] = collections.Counter()
        self._transport: asyncio.DatagramTransport | None = None
        self._client: dict[tuple[str, str], _ClientTransaction] = {}
        self._server: dict[tuple[str, str], _ServerTransaction] = {}
        self._pending_acks: dict[tuple[str, int], asyncio.Task[None]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Bind the socket; ``port`` 0 picks a free one (read it back from ``port``)."""
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _Protocol(self), local_addr=(self.host, self.port)
        )
        self._transport = transport
        self.port = transport.get_extra_info("sockname")[1]

    async def stop(self) -> None:
        """Stop retransmitting and close the socket."""
        for task in [*self._tasks, *self._pending_acks.values()]:
            task.cancel()
        await asyncio.gather(*self._tasks, *self._pending_acks.values(), return_exceptions=True)
        for transaction in self._client.values():
            if not transaction.final.done():
                transaction.final.set_exception(SipTimeout("endpoint stopped"))
        if self._transport is not None:
            self._transport.close()

    @property
    def via(self) -> str:
        """A Via value for a new request (new branch each time)."""
        return f"SIP/2.0/UDP {self.public_host}:{self.port};rport;branch={new_branch()}"

    @property
    def contact(self) -> str:
        """Our Contact URI."""
        return f"sip:frontdesk@{self.public_host}:{self.port}"

    @property
    def awaiting_ack(self) -> int:
        """Final INVITE answers still being repeated because no ACK has come."""
        return len(self._pending_acks)

    def send(self, message: SipRequest | SipResponse, addr: tuple[str, int]) -> None:
        """Send one message (no retransmission)."""
        if self._transport is not None and not self._transport.is_closing():
            self._transport.sendto(message.to_bytes(), addr)

    # --- inbound ----------------------------------------------------------------------
    def _on_datagram(self, data: bytes, addr: tuple[str, int]) -> None:
        if not data.strip():
            return  # CRLF keep-alive (RFC 5626)
        try:
            message = parse_message(data)
        except SipParseError as exc:
            self._bad_message(data, addr, exc)
            return
        if isinstance(message, SipResponse):
            self._on_response(message)
        else:
            self._on_request(message, addr)

    def _bad_message(self, data: bytes, addr: tuple[str, int], error: SipParseError) -> None:
        reason = str(error)
        kind = type(error).__name__ + ":" + " ".join(reason.split(" ")[:2])
        if not self.malformed[kind]:
            log.warning("sip: ignoring a malformed message from %s: %s", addr, reason)
        self.malformed[kind] += 1
        if data.startswith(b"SIP/") or data.upper().startswith(b"ACK "):
            return  # never answer a response or an ACK
        headers = _salvage_headers(data)
        if {"Via", "Call-ID", "CSeq"} <= headers.keys():
            if isinstance(error, MessageTooLarge):
                response = SipResponse(status=513, reason="Message Too Large")
            else:
                response = SipResponse(status=400, reason=f"Bad Request ({_printable(reason)})")
            for name in ("Via", "From", "To", "Call-ID", "CSeq"):
                if name in headers:
                    response.add(name, headers[name])
            response.add("User-Agent", USER_AGENT)
            self.send(response, addr)

    def _on_request(self, request: SipRequest, addr: tuple[str, int]) -> None:
        key = (request.branch, request.method)
        if request.method != "ACK" and request.branch:
            known = self._server.get(key)
            if known is not None:
                if known.response is not None:
                    self.send(known.response, known.addr)
                return  # a retransmission of a request already being handled
            self._server[key] = _ServerTransaction(None, addr, time.monotonic())
            self._expire_server()
        if request.method == "ACK":
            self._ack_received(request)
        self.on_request(request, addr)

    def _ack_received(self, ack: SipRequest) -> None:
        number, _ = ack.cseq
        task = self._pending_acks.pop((ack.call_id, number), None)
        if task is not None:
            task.cancel()

    def _on_response(self, response: SipResponse) -> None:
        vias = response.get_all("Via")
        branch = ""
        if vias:
            branch = parse_params(vias[0]).get("branch", "")
        _, method = response.cseq
        transaction = self._client.get((branch, method))
        if transaction is None:
            if method == "INVITE" and 200 <= response.status < 300:
                # A 2xx retransmitted because our ACK was lost: whoever owns the dialog
                # acknowledges again.
                self._on_stray_2xx(response)
            return
        transaction.answered = True
        if response.status < 200:
            if transaction.on_provisional is not None:
                transaction.on_provisional(response)
            return
        if method == "INVITE" and response.status >= 300:
            self._ack_failure(transaction, response)
        if not transaction.final.done():
            transaction.final.set_result(response)

    def _on_stray_2xx(self, response: SipResponse) -> None:
        if self.on_stray_2xx is not None:
            self.on_stray_2xx(response)

    def _ack_failure(self, transaction: _ClientTransaction, response: SipResponse) -> None:
        invite = transaction.request
        number, _ = invite.cseq
        ack = SipRequest(method="ACK", uri=invite.uri)
        ack.add("Via", invite.get_all("Via")[0])
        for name in ("Route", "From"):
            for value in invite.get_all(name) if name == "Route" else [invite.get(name) or ""]:
                ack.add(name, value)
        ack.add("To", response.get("To") or "")
        ack.add("Call-ID", invite.call_id)
        ack.add("CSeq", f"{number} ACK")
        ack.add("Max-Forwards", "70")
        self.send(ack, transaction.dest)

    def _expire_server(self) -> None:
        cutoff = time.monotonic() - SERVER_MEMORY_S
        for key in [k for k, t in self._server.items() if t.at < cutoff]:
            del self._server[key]

    # --- responding -------------------------------------------------------------------
    def respond(
        self,
        request: SipRequest,
        addr: tuple[str, int],
        status: int,
        reason: str,
        *,
        to_tag: str | None = None,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
        content_type: str | None = None,
    ) -> SipResponse:
        """Build, send and remember the response to ``request``."""
        response = make_response(request, status, reason, to_tag=to_tag)
        for name, value in headers:
            response.add(name, value)
        if body:
            response.add("Content-Type", content_type or "application/sdp")
            response.body = body
        self.send(response, addr)
        key = (request.branch, request.method)
        if key in self._server:
            self._server[key] = _ServerTransaction(response, addr, time.monotonic())
        if request.method == "INVITE" and status >= 200:
            # Over UDP the final answer to an INVITE is repeated until its ACK arrives: the
            # 2xx by the UA core (§13.3.1.4), a failure by the transaction (timer G).
            self._retransmit_until_ack(request, response, addr)
        return response

    def _retransmit_until_ack(
        self, request: SipRequest, response: SipResponse, addr: tuple[str, int]
    ) -> None:
        number, _ = request.cseq
        key = (request.call_id, number)

        async def retransmit() -> None:
            interval, waited = T1, 0.0
            while waited < TRANSACTION_TIMEOUT:
                await asyncio.sleep(interval)
                waited += interval
                self.send(response, addr)
                interval = min(2 * interval, T2)
            self._pending_acks.pop(key, None)
            if response.status >= 300:
                return  # a refused call: nothing more to end
            log.warning("sip: no ACK for the 200 OK of call %s", request.call_id)
            if self.on_ack_timeout is not None:
                self.on_ack_timeout(request.call_id)

        old = self._pending_acks.pop(key, None)
        if old is not None:
            old.cancel()
        self._pending_acks[key] = asyncio.create_task(retransmit(), name="sip-2xx")

    # --- requesting -------------------------------------------------------------------
    async def request(
        self,
        request: SipRequest,
        dest: tuple[str, int],
        *,
        on_provisional: Callable[[SipResponse], None] | None = None,
        wait_s: float = TRANSACTION_TIMEOUT,
    ) -> SipResponse:
        """Send ``request`` (retransmitting over UDP) and return its final response."""
        loop = asyncio.get_running_loop()
        key = (request.branch, request.method)
        transaction = _ClientTransaction(request, dest, loop.create_future(), on_provisional)
        self._client[key] = transaction
        task = asyncio.create_task(self._retransmit(transaction), name="sip-request")
        self._tasks.add(task)
        try:
            self.send(request, dest)
            async with asyncio.timeout(wait_s):
                return await transaction.final
        except TimeoutError as exc:
            raise SipTimeout(
                f"no final response to {request.method} within {wait_s:.0f} s"
            ) from exc
        finally:
            task.cancel()
            self._tasks.discard(task)
            self._client.pop(key, None)

    async def _retransmit(self, transaction: _ClientTransaction) -> None:
        interval = T1
        with contextlib.suppress(asyncio.CancelledError):
            while not transaction.final.done():
                await asyncio.sleep(interval)
                if transaction.answered and transaction.request.method == "INVITE":
                    return  # a provisional answer: the INVITE arrived
                if not transaction.final.done():
                    self.send(transaction.request, transaction.dest)
                interval = min(2 * interval, T2)


def make_response(
    request: SipRequest, status: int, reason: str, *, to_tag: str | None = None
) -> SipResponse:
    """A response copying Via/From/To/Call-ID/CSeq from ``request`` (RFC 3261 §8.2.6)."""
    response = SipResponse(status=status, reason=reason)
    for via in request.get_all("Via"):
        response.add("Via", via)
    response.add("From", request.get("From") or "")
    to = request.get("To") or ""
    if to_tag and ";tag=" not in to.replace(" ", ""):
        to = f"{to};tag={to_tag}"
    response.add("To", to)
    response.add("Call-ID", request.call_id)
    response.add("CSeq", request.get("CSeq") or "")
    response.add("User-Agent", USER_AGENT)
    return response


def _salvage_headers(data: bytes) -> dict[str, str]:
    """The routing headers of a message that failed to parse (to answer it 400)."""
    canonical = {"v": "Via", "f": "From", "t": "To", "i": "Call-ID"}
    found: dict[str, str] = {}
    for match in _HEADER_LINE.finditer(data[:4096]):
        raw = match.group(1).decode("ascii").lower()
        name = canonical.get(raw) or {"call-id": "Call-ID", "cseq": "CSeq"}.get(raw)
        name = name or raw.capitalize()
        value = match.group(2).decode("utf-8", "replace").strip()
        if name not in found and value and all(ord(c) >= 32 for c in value):
            found[name] = value
    return found


def _printable(text: str) -> str:
    """A reason phrase safe to put on a status line (no CR/LF or control characters)."""
    return "".join(c if c.isprintable() else "?" for c in text)[:80]
