"""RTP packets (RFC 3550 §5.1) and RFC 4733 telephone-event payloads."""

from __future__ import annotations

import struct
from dataclasses import dataclass

RTP_VERSION = 2
DTMF_EVENTS = "0123456789*#ABCD"
"""RFC 4733 event codes 0-15, in order."""


class RtpError(ValueError):
    """A datagram that is not an RTP packet this stack can use."""


@dataclass(frozen=True, slots=True)
class RtpPacket:
    """One RTP packet (no CSRC list on the way out; extensions and padding skipped in)."""

    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    payload: bytes
    marker: bool = False

    def to_bytes(self) -> bytes:
        """Wire form: 12-byte header and payload."""
        first = RTP_VERSION << 6
        second = (0x80 if self.marker else 0) | (self.payload_type & 0x7F)
        header = struct.pack(
            "!BBHII",
            first,
            second,
            self.sequence & 0xFFFF,
            self.timestamp & 0xFFFFFFFF,
            self.ssrc & 0xFFFFFFFF,
        )
        return header + self.payload


def parse_rtp(data: bytes) -> RtpPacket:
    """Parse an RTP datagram; raises :class:`RtpError` for RTCP, short or bad packets."""
    if len(data) < 12:
        raise RtpError(f"{len(data)} bytes is shorter than an RTP header")
    first, second, sequence, timestamp, ssrc = struct.unpack_from("!BBHII", data)
    if first >> 6 != RTP_VERSION:
        raise RtpError(f"RTP version {first >> 6}, want 2")
    if 72 <= second & 0x7F <= 76:
        raise RtpError("an RTCP packet on the RTP port")
    offset = 12 + 4 * (first & 0x0F)
    if first & 0x10:  # header extension: 4-byte header, length in 32-bit words
        if len(data) < offset + 4:
            raise RtpError("truncated RTP header extension")
        (words,) = struct.unpack_from("!H", data, offset + 2)
        offset += 4 + 4 * words
    end = len(data)
    if first & 0x20:  # padding: the last byte says how much
        end -= data[-1]
    if offset > end:
        raise RtpError("RTP header longer than the packet")
    return RtpPacket(
        payload_type=second & 0x7F,
        sequence=sequence,
        timestamp=timestamp,
        ssrc=ssrc,
        payload=bytes(data[offset:end]),
        marker=bool(second & 0x80),
    )


@dataclass(frozen=True, slots=True)
class TelephoneEvent:
    """An RFC 4733 event payload: the key, whether it has ended, volume and duration."""

    digit: str
    end: bool
    volume: int
    duration: int

    def to_bytes(self) -> bytes:
        """The 4-byte payload."""
        code = DTMF_EVENTS.index(self.digit)
        flags = (0x80 if self.end else 0) | (self.volume & 0x3F)
        return struct.pack("!BBH", code, flags, min(self.duration, 0xFFFF))


def parse_event(payload: bytes) -> TelephoneEvent:
    """Parse a telephone-event payload; events beyond the 16 DTMF keys are refused."""
    if len(payload) < 4:
        raise RtpError(f"telephone-event payload of {len(payload)} bytes, want 4")
    code, flags, duration = struct.unpack_from("!BBH", payload)
    if code >= len(DTMF_EVENTS):
        raise RtpError(f"telephone-event {code} is not a DTMF key")
    return TelephoneEvent(DTMF_EVENTS[code], bool(flags & 0x80), flags & 0x3F, duration)


def seq_newer(a: int, b: int) -> int:
    """How far sequence number ``a`` is ahead of ``b`` (negative: behind), mod 2**16."""
    return ((a - b + 0x8000) & 0xFFFF) - 0x8000
