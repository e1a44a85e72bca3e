"""The SIP pieces that loopback interop cannot exercise: a jitter buffer fed out of order,
with losses and a restarted stream; digest answers checked against RFC 2617's own example;
an offer's payload types kept in the answer."""

from __future__ import annotations

from frontdesk.transports.sip.digest import Challenge, digest_response
from frontdesk.transports.sip.jitter import JitterBuffer
from frontdesk.transports.sip.rtp_packet import RtpPacket
from frontdesk.transports.sip.sdp import build_answer, choose_media, parse_sdp


def _packet(sequence: int, ssrc: int = 1) -> RtpPacket:
    return RtpPacket(0, sequence & 0xFFFF, sequence * 160, ssrc, bytes([sequence % 256]) * 160)


def _play(buffer: JitterBuffer, ticks: int) -> list[int | None]:
    """Sequence numbers played over ``ticks`` ticks (None: silence for a gap)."""
    out = []
    for _ in range(ticks):
        playing, packet = buffer.pop()
        if playing:
            out.append(packet.sequence if packet else None)
    return out


def test_jitter_buffer_reorders_fills_losses_and_drops_late_packets() -> None:
    buffer = JitterBuffer(depth=1)
    for sequence in (65534, 65535):
        buffer.put(_packet(sequence))
    buffer.put(_packet(65537))  # 0 is late, 1 overtook it
    buffer.put(_packet(65536))
    buffer.put(_packet(65539))  # 2 is lost
    assert _play(buffer, 7) == [65534, 65535, 0, 1, None, 3]
    assert buffer.lost == 1
    buffer.put(_packet(65536))  # long gone: dropped, nothing replayed
    buffer.put(_packet(65540))
    assert _play(buffer, 1) == [4]  # no rewind to 0, no extra delay
    assert buffer.late == 1
    assert _play(buffer, 10) == [None] * 10  # the sender pauses (silence suppression) ...
    buffer.put(_packet(65541))  # ... and goes on where it left off: behind our playout now
    assert _play(buffer, 2) == [5]


def test_jitter_buffer_restarts_on_a_new_stream_instead_of_building_delay() -> None:
    buffer = JitterBuffer(depth=1, max_packets=8)
    for sequence in range(10):  # a burst: the sender got ahead of our clock
        buffer.put(_packet(sequence))
    assert _play(buffer, 3) == [2, 3]  # the oldest two skipped: at most 8 packets of delay
    buffer.put(_packet(5000, ssrc=2))  # the peer's stream restarted (a re-INVITE, say)
    assert _play(buffer, 2) == [5000]
    buffer.put(_packet(5001, ssrc=2))
    buffer.put(_packet(100, ssrc=2))  # the same sender jumped far back: follow it
    assert _play(buffer, 2) == [100]


def test_a_backlog_after_a_stall_is_drained_back_to_the_buffers_depth() -> None:
    buffer = JitterBuffer(depth=1, max_packets=8)
    sent = 0

    def lag_after_tick(arrivals: int) -> int | None:
        """Packets sent but not yet played after one tick (None: this tick played a gap)."""
        nonlocal sent
        for _ in range(arrivals):
            buffer.put(_packet(sent))
            sent += 1
        [played] = _play(buffer, 1) or [None]
        return None if played is None else sent - 1 - played

    steady = [lag_after_tick(1) for _ in range(20)][-1]
    assert steady == 1  # one tick of delay, as configured
    for _ in range(4):  # the sender stalls for 80 ms ...
        lag_after_tick(0)
    lag_after_tick(5)  # ... then catches up in one burst
    lags = [lag_after_tick(1) for _ in range(30)]
    assert lags[0] == steady + 4  # the burst is queued behind the playout ...
    assert lags[-1] == steady  # ... and drained back to the buffer's own depth
    assert buffer.drained == 4 and buffer.lost == 0
    for _ in range(3):  # ordinary jitter (two packets in one tick, then none) is kept
        lag_after_tick(2)
        lag_after_tick(0)
    assert buffer.drained == 4


def test_digest_matches_rfc_2617_example() -> None:
    challenge = Challenge(
        realm="testrealm@host.com",
        nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093",
        qop=("auth",),
        opaque="5ccc069c403ebaf9f0171e9517f40e41",
    )
    header = digest_response(
        challenge,
        method="GET",
        uri="/dir/index.html",
        username="Mufasa",
        password="Circle Of Life",
        cnonce="0a4f113b",
    )
    assert 'response="6629fae49393a05397450978507c4ef1"' in header
    assert "nc=00000001" in header and 'opaque="5ccc069c403ebaf9f0171e9517f40e41"' in header


def test_answer_keeps_the_offers_payload_types() -> None:
    offer = parse_sdp(
        "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"
        "m=audio 4000 RTP/AVP 18 8 0 97\r\na=rtpmap:18 G729/8000\r\n"
        "a=rtpmap:97 telephone-event/8000\r\na=sendonly\r\n"
    )
    media = choose_media(offer)
    assert (media.codec, media.payload_type, media.event_payload_type) == ("PCMA", 8, 97)
    answer = build_answer(media, "198.51.100.2", 5004, session_id=7).decode()
    assert "m=audio 5004 RTP/AVP 8 97\r\n" in answer
    assert "a=rtpmap:97 telephone-event/8000" in answer and "a=recvonly" in answer
