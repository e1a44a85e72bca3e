"""SDP offer/answer for one audio stream (RFC 4566, RFC 3264): PCMU, PCMA, telephone-event.

The answer uses the payload types the peer offered (a dynamic telephone-event type is
whatever number the offer gave it) and picks the first G.711 codec in the peer's order.
An offer without a usable codec raises :class:`SdpError` (the UA answers 488).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

STATIC_CODECS = {0: "PCMU", 8: "PCMA"}
SUPPORTED = ("PCMU", "PCMA")
DEFAULT_EVENT_PT = 101


class SdpError(ValueError):
    """An SDP body this stack cannot use; the message says why."""


@dataclass(frozen=True, slots=True)
class MediaChoice:
    """What both sides agreed on: where to send RTP and how to encode it."""

    host: str
    port: int
    codec: str
    payload_type: int
    event_payload_type: int | None
    direction: str = "sendrecv"


@dataclass(slots=True)
class SessionDescription:
    """The parts of an SDP body this stack reads."""

    host: str
    port: int
    payload_types: list[int]
    rtpmap: dict[int, str] = field(default_factory=dict)
    direction: str = "sendrecv"

    def encoding(self, payload_type: int) -> str | None:
        """Encoding name (upper case) for ``payload_type``: rtpmap first, then static."""
        mapped = self.rtpmap.get(payload_type)
        if mapped:
            return mapped.split("/")[0].upper()
        return STATIC_CODECS.get(payload_type)

    def clock_rate(self, payload_type: int) -> int:
        mapped = self.rtpmap.get(payload_type, "")
        parts = mapped.split("/")
        return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 8000


def parse_sdp(body: bytes | str) -> SessionDescription:
    """Parse the first audio stream of an SDP body."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    session_host: str | None = None
    media_host: str | None = None
    port: int | None = None
    payload_types: list[int] = []
    rtpmap: dict[int, str] = {}
    direction = "sendrecv"
    in_audio = seen_media = False
    for raw in text.splitlines():
        line = raw.strip()
        if len(line) < 2 or line[1] != "=":
            continue
        kind, value = line[0], line[2:]
        if kind == "m":
            seen_media = True
            parts = value.split()
            in_audio = port is None and len(parts) >= 4 and parts[0] == "audio"
            if in_audio:
                if not parts[1].isdigit() or not 0 <= int(parts[1]) < 65536:
                    raise SdpError(f"bad audio port {parts[1][:10]!r}")
                port = int(parts[1])
                payload_types = [int(p) for p in parts[3:] if p.isdigit() and int(p) < 128]
        elif kind == "c":
            parts = value.split()
            if len(parts) < 3 or parts[1] != "IP4":
                raise SdpError(f"unsupported connection line c={value[:40]}")
            host = parts[2].split("/")[0]
            if in_audio:
                media_host = host
            elif not seen_media:
                session_host = host
        elif kind == "a" and (in_audio or not seen_media):
            name, _, attr = value.partition(":")
            if name in ("sendrecv", "sendonly", "recvonly", "inactive"):
                direction = name
            elif name == "rtpmap" and in_audio:
                pt, _, encoding = attr.partition(" ")
                if pt.isdigit():
                    rtpmap[int(pt)] = encoding.strip()
    host = media_host or session_host
    if port is None:
        raise SdpError("no audio stream in the SDP")
    if host is None:
        raise SdpError("no connection address (c=) in the SDP")
    return SessionDescription(host, port, payload_types, rtpmap, direction)


def choose_media(offer: SessionDescription) -> MediaChoice:
    """Pick the codec and the DTMF payload type from the peer's description."""
    codec_pt = next((pt for pt in offer.payload_types if offer.encoding(pt) in SUPPORTED), None)
    if codec_pt is None:
        names = [offer.encoding(pt) or str(pt) for pt in offer.payload_types]
        raise SdpError(f"no common codec: offered {', '.join(names) or 'none'}, want PCMU/PCMA")
    event_pt = next(
        (
            pt
            for pt in offer.payload_types
            if offer.encoding(pt) == "TELEPHONE-EVENT" and offer.clock_rate(pt) == 8000
        ),
        None,
    )
    codec = offer.encoding(codec_pt) or ""
    return MediaChoice(offer.host, offer.port, codec, codec_pt, event_pt, offer.direction)


_ANSWER_DIRECTION = {
    "sendonly": "recvonly",
    "recvonly": "sendonly",
    "inactive": "inactive",
    "sendrecv": "sendrecv",
}


def build_sdp(
    host: str,
    port: int,
    *,
    session_id: int,
    version: int = 1,
    codecs: list[tuple[int, str]] | None = None,
    event_payload_type: int | None = DEFAULT_EVENT_PT,
    direction: str = "sendrecv",
) -> bytes:
    """An SDP body: our audio stream with ``codecs`` ((pt, name) pairs; default both G.711)."""
    codecs = codecs or [(0, "PCMU"), (8, "PCMA")]
    pts = [pt for pt, _ in codecs] + ([event_payload_type] if event_payload_type else [])
    lines = [
        "v=0",
        f"o=frontdesk {session_id} {version} IN IP4 {host}",
        "s=frontdesk",
        f"c=IN IP4 {host}",
        "t=0 0",
        f"m=audio {port} RTP/AVP {' '.join(str(pt) for pt in pts)}",
        *(f"a=rtpmap:{pt} {name}/8000" for pt, name in codecs),
    ]
    if event_payload_type:
        lines += [
            f"a=rtpmap:{event_payload_type} telephone-event/8000",
            f"a=fmtp:{event_payload_type} 0-16",
        ]
    lines += ["a=ptime:20", f"a={direction}"]
    return ("\r\n".join(lines) + "\r\n").encode("ascii")


def build_answer(
    choice: MediaChoice, host: str, port: int, session_id: int, version: int = 1
) -> bytes:
    """Our answer to an offer: only the chosen codec (and telephone-event if offered)."""
    return build_sdp(
        host,
        port,
        session_id=session_id,
        version=version,
        codecs=[(choice.payload_type, choice.codec)],
        event_payload_type=choice.event_payload_type,
        direction=_ANSWER_DIRECTION.get(choice.direction, "sendrecv"),
    )


def new_session_id() -> int:
    """An o= session id (NTP-ish seconds, as RFC 4566 suggests)."""
    return int(time.time()) + 2208988800
