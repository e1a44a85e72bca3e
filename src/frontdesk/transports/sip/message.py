"""SIP messages (RFC 3261 §7): strict parsing and serialization of requests and responses.

A datagram either parses into a :class:`SipRequest` / :class:`SipResponse` with every
header the rest of the stack relies on, or raises :class:`SipParseError` naming what is
wrong (the UA answers a request it can route with 400 and that reason). Compact header
forms are expanded; header names are matched case-insensitively; ``Content-Length`` must
match the body.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

MAX_MESSAGE_BYTES = 16 * 1024
"""Larger datagrams are refused: SIP over UDP should stay under the path MTU (RFC 3261
§18.1.1), and nothing this stack sends or expects comes close."""
MAX_HEADERS = 100

COMPACT_FORMS = {
    "i": "Call-ID",
    "m": "Contact",
    "e": "Content-Encoding",
    "l": "Content-Length",
    "c": "Content-Type",
    "f": "From",
    "s": "Subject",
    "k": "Supported",
    "t": "To",
    "v": "Via",
    "r": "Refer-To",
    "b": "Referred-By",
    "o": "Event",
}
REQUIRED_HEADERS = ("Via", "From", "To", "Call-ID", "CSeq")
_TOKEN = re.compile(r"^[A-Za-z0-9\-.!%*_+`'~]+$")
_REQUEST_LINE = re.compile(r"^([A-Za-z0-9\-.!%*_+`'~]+) (\S+) SIP/2\.0$")
_STATUS_LINE = re.compile(r"^SIP/2\.0 ([1-6]\d\d) ?(.*)$")


class SipParseError(ValueError):
    """A datagram that is not a usable SIP message; the message says why."""


class MessageTooLarge(SipParseError):
    """A datagram over :data:`MAX_MESSAGE_BYTES` (answered 513)."""


def canonical_name(name: str) -> str:
    """``call-id``/``i`` -> ``Call-ID``: one spelling per header for lookups."""
    lowered = name.strip().lower()
    if lowered in COMPACT_FORMS:
        return COMPACT_FORMS[lowered]
    special = {"call-id": "Call-ID", "cseq": "CSeq", "www-authenticate": "WWW-Authenticate"}
    return special.get(lowered) or "-".join(part.capitalize() for part in lowered.split("-"))


@dataclass(slots=True)
class SipMessage:
    """Headers (in order, names canonical) and a body; see the two subclasses."""

    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    def get(self, name: str) -> str | None:
        """The first value of header ``name`` (any spelling), or None."""
        want = canonical_name(name)
        return next((v for n, v in self.headers if n == want), None)

    def get_all(self, name: str) -> list[str]:
        """Every value of ``name``, comma-separated lists split (outside quotes and <>)."""
        want = canonical_name(name)
        return [part for n, v in self.headers if n == want for part in split_list(v)]

    def raw_values(self, name: str) -> list[str]:
        """Every value of ``name`` as received (not split: auth headers contain commas)."""
        want = canonical_name(name)
        return [v for n, v in self.headers if n == want]

    def set(self, name: str, value: str) -> None:
        """Replace every ``name`` header with one value."""
        want = canonical_name(name)
        self.headers = [(n, v) for n, v in self.headers if n != want]
        self.headers.append((want, value))

    def add(self, name: str, value: str) -> None:
        """Append a header (keeps existing ones)."""
        self.headers.append((canonical_name(name), value))

    def remove(self, name: str) -> None:
        """Drop every ``name`` header."""
        want = canonical_name(name)
        self.headers = [(n, v) for n, v in self.headers if n != want]

    @property
    def call_id(self) -> str:
        """The Call-ID (validated present for parsed messages)."""
        return self.get("Call-ID") or ""

    @property
    def cseq(self) -> tuple[int, str]:
        """(number, method) from CSeq."""
        return parse_cseq(self.get("CSeq") or "")

    def start_line(self) -> str:
        raise NotImplementedError

    def to_bytes(self) -> bytes:
        """The wire form, with Content-Length set from the body."""
        lines = [self.start_line()]
        lines += [f"{n}: {v}" for n, v in self.headers if n != "Content-Length"]
        lines.append(f"Content-Length: {len(self.body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + self.body


@dataclass(slots=True)
class SipRequest(SipMessage):
    """A request: ``method`` and ``uri`` from the request line."""

    method: str = ""
    uri: str = ""

    def start_line(self) -> str:
        return f"{self.method} {self.uri} SIP/2.0"

    @property
    def branch(self) -> str:
        """The top Via's branch parameter ("" when missing)."""
        via = self.get_all("Via")
        return parse_params(via[0]).get("branch", "") if via else ""


@dataclass(slots=True)
class SipResponse(SipMessage):
    """A response: ``status`` and ``reason`` from the status line."""

    status: int = 0
    reason: str = ""

    def start_line(self) -> str:
        return f"SIP/2.0 {self.status} {self.reason}"


def parse_message(data: bytes) -> SipRequest | SipResponse:
    """Parse one datagram. Raises :class:`SipParseError` naming the first problem."""
    if len(data) > MAX_MESSAGE_BYTES:
        raise MessageTooLarge(f"message of {len(data)} bytes exceeds {MAX_MESSAGE_BYTES}")
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        raise SipParseError("no blank line after the headers (truncated message?)")
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SipParseError("headers are not valid UTF-8") from exc
    lines = _unfold(text.split("\r\n"))
    if not lines or not lines[0]:
        raise SipParseError("empty start line")
    message = _start(lines[0])
    if len(lines) - 1 > MAX_HEADERS:
        raise SipParseError(f"more than {MAX_HEADERS} headers")
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon or not _TOKEN.match(name.strip()):
            raise SipParseError(f"malformed header line {line[:60]!r}")
        message.headers.append((canonical_name(name), value.strip()))
    for required in REQUIRED_HEADERS:
        if message.get(required) is None:
            raise SipParseError(f"missing {required} header")
    _number, method = parse_cseq(message.get("CSeq") or "")
    if isinstance(message, SipRequest) and method != message.method:
        raise SipParseError(f"CSeq method {method} does not match request method")
    message.body = _checked_body(message, body)
    return message


def _unfold(lines: list[str]) -> list[str]:
    """Join continuation lines (leading whitespace) onto the header they continue."""
    out: list[str] = []
    for line in lines:
        if line[:1] in (" ", "\t") and out:
            out[-1] += " " + line.strip()
        else:
            out.append(line)
    return out


def _start(line: str) -> SipRequest | SipResponse:
    if line.startswith("SIP/"):
        status = _STATUS_LINE.match(line)
        if not status:
            raise SipParseError(f"malformed status line {line[:60]!r}")
        return SipResponse(status=int(status.group(1)), reason=status.group(2))
    request = _REQUEST_LINE.match(line)
    if not request:
        raise SipParseError(f"malformed request line {line[:60]!r}")
    method, uri = request.group(1), request.group(2)
    if ":" not in uri:
        raise SipParseError(f"request URI {uri[:60]!r} has no scheme")
    return SipRequest(method=method, uri=uri)


def _checked_body(message: SipMessage, body: bytes) -> bytes:
    length = message.get("Content-Length")
    if length is None:
        return body  # optional over UDP: the datagram ends the body (RFC 3261 §18.3)
    if not length.isdigit():
        raise SipParseError(f"Content-Length {length[:20]!r} is not a number")
    if int(length) > len(body):
        raise SipParseError(f"Content-Length {length} but only {len(body)} body bytes")
    return body[: int(length)]


def parse_cseq(value: str) -> tuple[int, str]:
    """``"314159 INVITE"`` -> (314159, "INVITE")."""
    parts = value.split()
    if len(parts) != 2 or not parts[0].isdigit() or not _TOKEN.match(parts[1]):
        raise SipParseError(f"malformed CSeq {value[:40]!r}")
    number = int(parts[0])
    if number >= 2**31:
        raise SipParseError(f"CSeq number {number} out of range")
    return number, parts[1]


def split_list(value: str) -> list[str]:
    """Split a comma-separated header value, ignoring commas inside quotes or <...>."""
    parts: list[str] = []
    depth, quoted, current = 0, False, []
    for char in value:
        if char == '"':
            quoted = not quoted
        elif not quoted and char == "<":
            depth += 1
        elif not quoted and char == ">":
            depth = max(0, depth - 1)
        if char == "," and not quoted and depth == 0:
            parts.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    parts.append("".join(current).strip())
    return [p for p in parts if p]


def parse_params(value: str) -> dict[str, str]:
    """The ``;name=value`` parameters after an address or Via (outside <...>), lower-case
    names; a flag parameter maps to ""."""
    tail = value.rsplit(">", 1)[1] if ">" in value else value
    params: dict[str, str] = {}
    for part in tail.split(";")[1:]:
        name, _, param = part.partition("=")
        if name.strip():
            params[name.strip().lower()] = param.strip().strip('"')
    return params


@dataclass(frozen=True, slots=True)
class NameAddr:
    """A From/To/Contact/Refer-To value: optional display name, URI and parameters."""

    uri: str
    display: str = ""
    params: tuple[tuple[str, str], ...] = ()

    @property
    def tag(self) -> str | None:
        """The ``tag`` parameter, if any."""
        return dict(self.params).get("tag")

    def with_tag(self, tag: str) -> NameAddr:
        """The same address with ``tag`` set."""
        params = (*tuple((k, v) for k, v in self.params if k != "tag"), ("tag", tag))
        return NameAddr(self.uri, self.display, params)

    def __str__(self) -> str:
        display = f'"{self.display}" ' if self.display else ""
        params = "".join(f";{k}={v}" if v else f";{k}" for k, v in self.params)
        return f"{display}<{self.uri}>{params}"


def parse_name_addr(value: str) -> NameAddr:
    """Parse ``"Bob" <sip:bob@host>;tag=x`` or ``sip:bob@host;tag=x``."""
    value = value.strip()
    if "<" in value:
        display, _, rest = value.partition("<")
        uri, closed, _ = rest.partition(">")
        if not closed:
            raise SipParseError(f"unclosed <> in address {value[:60]!r}")
        params = parse_params(value)
    else:
        # addr-spec form: parameters after the URI belong to the header (RFC 3261 §20.10)
        display, uri_and_params = "", value
        uri, _, _ = uri_and_params.partition(";")
        params = parse_params(uri_and_params)
    uri = uri.strip()
    if ":" not in uri:
        raise SipParseError(f"address {value[:60]!r} has no URI scheme")
    return NameAddr(uri, display.strip().strip('"'), tuple(params.items()))


@dataclass(frozen=True, slots=True)
class SipUri:
    """The parts of a ``sip:user@host:port;params`` URI this stack uses."""

    user: str | None
    host: str
    port: int | None

    def address(self, default_port: int = 5060) -> tuple[str, int]:
        """(host, port) to send to."""
        return self.host, self.port or default_port


def parse_uri(uri: str) -> SipUri:
    """Parse a sip:/sips:/tel-less SIP URI (the host may be an IPv4 address or a name)."""
    scheme, colon, rest = uri.partition(":")
    if not colon or scheme.lower() not in ("sip", "sips"):
        raise SipParseError(f"not a SIP URI: {uri[:60]!r}")
    rest = rest.split(";", 1)[0].split("?", 1)[0]
    user, at, hostport = rest.rpartition("@")
    host, _, port = hostport.partition(":")
    if not host:
        raise SipParseError(f"SIP URI {uri[:60]!r} has no host")
    if port and (not port.isdigit() or not 0 < int(port) < 65536):
        raise SipParseError(f"SIP URI {uri[:60]!r} has a bad port")
    return SipUri(user.split(":", 1)[0] if at else None, host, int(port) if port else None)


def via_address(via: str) -> tuple[str, int]:
    """Where a response to this Via goes: ``received``/``rport`` if set, else sent-by."""
    protocol, _, rest = via.strip().partition(" ")
    if not protocol.upper().startswith("SIP/2.0/"):
        raise SipParseError(f"malformed Via {via[:60]!r}")
    sent_by = rest.split(";", 1)[0].strip()
    host, _, port = sent_by.partition(":")
    params = parse_params(via)
    if params.get("rport", "").isdigit():
        port = params["rport"]
    host = params.get("received") or host
    if not host or (port and not port.isdigit()):
        raise SipParseError(f"malformed Via sent-by {sent_by[:60]!r}")
    return host, int(port) if port else 5060
