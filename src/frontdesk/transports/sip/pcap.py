"""RTP in pcap files, for tests and benchmarks that look at a call on the wire.

- :func:`write_rtp_pcap` writes 8 kHz audio as 20 ms G.711 RTP packets in a pcap file: what
  sipp's ``play_pcap_audio`` replays (sipp rewrites the addresses and keeps the timing).
- :func:`read_udp_pcap` reads a capture (``tcpdump -i lo -w``) back as UDP datagrams with
  their capture times, so both directions of a call can be decoded onto one timeline.

Only IPv4/UDP is read; other packets are skipped.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from frontdesk.audio.g711 import alaw_encode, ulaw_encode
from frontdesk.transports.sip.rtp_packet import RtpPacket

_MAGIC_US = 0xA1B2C3D4
_MAGIC_NS = 0xA1B23C4D
_LINK_HEADER = {0: 4, 1: 14, 101: 0, 113: 16, 276: 20}
"""Bytes before the IP header, by pcap link type (null, Ethernet, raw, Linux SLL, SLL2)."""
_ENCODERS = {0: (ulaw_encode, b"\xff"), 8: (alaw_encode, b"\xd5")}
_SAMPLES = 160


@dataclass(frozen=True, slots=True)
class Datagram:
    """One captured UDP datagram."""

    at: float
    """Capture time, seconds (the capturing machine's clock)."""
    src: tuple[str, int]
    dst: tuple[str, int]
    payload: bytes


def write_rtp_pcap(
    path: str | Path, pcm8k: np.ndarray, payload_type: int = 0, host: str = "127.0.0.1"
) -> float:
    """Write ``pcm8k`` as 20 ms RTP packets (payload type 0: PCMU, 8: PCMA) in an Ethernet
    pcap; the last packet is padded with silence. Returns the seconds of audio."""
    encode, silence = _ENCODERS[payload_type]
    payload = encode(pcm8k)
    payload += silence * (-len(payload) % _SAMPLES)
    address = socket.inet_aton(host)
    with Path(path).open("wb") as out:
        out.write(struct.pack("<IHHiIII", _MAGIC_US, 2, 4, 0, 0, 65535, 1))
        count = len(payload) // _SAMPLES
        for index in range(count):
            chunk = payload[index * _SAMPLES : (index + 1) * _SAMPLES]
            rtp = RtpPacket(payload_type, index, index * _SAMPLES, 0x5EED, chunk, index == 0)
            data = rtp.to_bytes()
            udp = struct.pack("!HHHH", 6000, 6002, 8 + len(data), 0) + data
            frame = b"\x00" * 12 + b"\x08\x00" + _ipv4(udp, address)
            at = index * 0.02
            out.write(struct.pack("<IIII", int(at), round((at % 1) * 1e6), len(frame), len(frame)))
            out.write(frame)
    return count * 0.02


def _ipv4(udp: bytes, address: bytes) -> bytes:
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0, address, address)
    total = sum(struct.unpack("!10H", header))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return header[:10] + struct.pack("!H", ~total & 0xFFFF) + header[12:] + udp


def read_udp_pcap(path: str | Path) -> Iterator[Datagram]:
    """Every IPv4 UDP datagram in a pcap file, in capture order. Raises ValueError for a
    file that is not a pcap (pcapng is not read: capture with ``tcpdump -w``)."""
    data = Path(path).read_bytes()
    if len(data) < 24:
        raise ValueError(f"{path}: too short for a pcap file")
    magic = struct.unpack_from("<I", data)[0]
    endian = "<" if magic in (_MAGIC_US, _MAGIC_NS) else ">"
    magic = struct.unpack_from(endian + "I", data)[0]
    if magic not in (_MAGIC_US, _MAGIC_NS):
        raise ValueError(f"{path}: not a pcap file (magic {magic:#x})")
    fraction = 1e-9 if magic == _MAGIC_NS else 1e-6
    link = struct.unpack_from(endian + "I", data, 20)[0] & 0xFFFF
    if link not in _LINK_HEADER:
        raise ValueError(f"{path}: link type {link} is not read")
    offset = 24
    while offset + 16 <= len(data):
        seconds, part, captured, _ = struct.unpack_from(endian + "IIII", data, offset)
        frame = data[offset + 16 : offset + 16 + captured]
        offset += 16 + captured
        datagram = _udp(frame[_LINK_HEADER[link] :], seconds + part * fraction)
        if datagram is not None:
            yield datagram


def _udp(packet: bytes, at: float) -> Datagram | None:
    if len(packet) < 28 or packet[0] >> 4 != 4 or packet[9] != 17:
        return None
    header = (packet[0] & 0x0F) * 4
    src, dst = socket.inet_ntoa(packet[12:16]), socket.inet_ntoa(packet[16:20])
    sport, dport, length = struct.unpack_from("!HHH", packet, header)
    payload = packet[header + 8 : header + length]
    return Datagram(at, (src, sport), (dst, dport), payload)
