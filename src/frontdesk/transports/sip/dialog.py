"""A SIP dialog (RFC 3261 §12): the identifiers, sequence numbers and route of one call,
and how to build a request inside it."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from frontdesk.transports.sip.digest import digest_response, parse_challenge
from frontdesk.transports.sip.message import (
    NameAddr,
    SipParseError,
    SipRequest,
    SipResponse,
    parse_name_addr,
    parse_uri,
)


@dataclass(slots=True)
class Credentials:
    """A trunk account for digest authentication."""

    username: str
    password: str


@dataclass(slots=True)
class Dialog:
    """One dialog's state, from our side."""

    call_id: str
    local: NameAddr
    remote: NameAddr
    remote_target: str
    route_set: list[str] = field(default_factory=list)
    local_cseq: int = 1
    remote_cseq: int | None = None

    @classmethod
    def as_uas(cls, invite: SipRequest, local_tag: str) -> Dialog:
        """The dialog an INVITE we answer creates."""
        return cls(
            call_id=invite.call_id,
            local=parse_name_addr(invite.get("To") or "").with_tag(local_tag),
            remote=parse_name_addr(invite.get("From") or ""),
            remote_target=_contact_uri(invite),
            route_set=invite.get_all("Record-Route"),
            local_cseq=secrets.randbelow(10_000) + 1,
            remote_cseq=invite.cseq[0],
        )

    @classmethod
    def as_uac(cls, invite: SipRequest, response: SipResponse) -> Dialog:
        """The dialog a 2xx to our INVITE creates."""
        return cls(
            call_id=invite.call_id,
            local=parse_name_addr(invite.get("From") or ""),
            remote=parse_name_addr(response.get("To") or ""),
            remote_target=_contact_uri(response),
            route_set=list(reversed(response.get_all("Record-Route"))),
            local_cseq=invite.cseq[0],
        )

    def destination(self) -> tuple[str, int]:
        """Where in-dialog requests go: the first route, else the remote target."""
        uri = self.route_set[0] if self.route_set else self.remote_target
        if "<" in uri:
            uri = parse_name_addr(uri).uri
        return parse_uri(uri).address()

    def request(self, method: str, via: str, contact: str) -> SipRequest:
        """A new in-dialog request (a new CSeq, except ACK which the caller numbers)."""
        if method != "ACK":
            self.local_cseq += 1
        request = SipRequest(method=method, uri=self.remote_target)
        request.add("Via", via)
        request.add("Max-Forwards", "70")
        for route in self.route_set:
            request.add("Route", route)
        request.add("From", str(self.local))
        request.add("To", str(self.remote))
        request.add("Call-ID", self.call_id)
        request.add("CSeq", f"{self.local_cseq} {method}")
        request.add("Contact", f"<{contact}>")
        return request

    def accepts(self, request: SipRequest) -> bool:
        """An in-dialog request with a CSeq above the last one (a lower one is stale)."""
        number, _ = request.cseq
        if request.method in ("ACK", "CANCEL"):
            return True
        if self.remote_cseq is not None and number <= self.remote_cseq:
            return False
        self.remote_cseq = number
        return True


def _contact_uri(message: SipRequest | SipResponse) -> str:
    contacts = message.get_all("Contact")
    if not contacts:
        raise SipParseError(f"{_what(message)} without a Contact")
    return parse_name_addr(contacts[0]).uri


def _what(message: SipRequest | SipResponse) -> str:
    return message.method if isinstance(message, SipRequest) else f"{message.status} response"


def authorize(
    request: SipRequest, challenge_response: SipResponse, credentials: Credentials
) -> bool:
    """Add the Authorization answering a 401/407 to ``request``; False when unanswerable."""
    header = "WWW-Authenticate" if challenge_response.status == 401 else "Proxy-Authenticate"
    answer = "Authorization" if challenge_response.status == 401 else "Proxy-Authorization"
    for value in challenge_response.raw_values(header):
        try:
            challenge = parse_challenge(value)
            authorization = digest_response(
                challenge,
                method=request.method,
                uri=request.uri,
                username=credentials.username,
                password=credentials.password,
            )
        except SipParseError:
            continue
        request.set(answer, authorization)
        return True
    return False
