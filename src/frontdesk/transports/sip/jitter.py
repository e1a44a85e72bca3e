"""A small fixed-delay jitter buffer, read once per 20 ms tick of the call's clock.

Packets are held by sequence number; playout starts ``depth`` ticks after the first packet
and then takes one packet per tick. A missing packet plays as silence (None), a late or
duplicated one is dropped, and a stream that jumps (a new SSRC, a sender that paused while
our clock ran on, clocks that drifted apart) restarts the playout at the new packet. A
backlog that outlasts ordinary jitter (a sender that stalled and then caught up in a burst)
is drained back to ``depth``, so delay never builds up for the rest of the call.
"""

from __future__ import annotations

from frontdesk.transports.sip.rtp_packet import RtpPacket, seq_newer

RESYNC_JUMP = 50
"""A packet this many sequence numbers away from the playout point restarts the playout."""

DRAIN_SLACK = 2
"""Packets queued beyond ``depth`` that count as ordinary jitter, never drained."""

DRAIN_AFTER_TICKS = 10
"""Ticks a larger backlog must last before it is drained (200 ms: not a passing burst)."""


class JitterBuffer:
    """Reorders RTP packets and hands one per tick to the playout."""

    def __init__(self, depth: int = 1, max_packets: int = 8) -> None:
        self.depth = depth
        self.max_packets = max_packets
        self.lost = 0
        self.late = 0
        self.drained = 0
        """Packets skipped to shed a lasting backlog (audio the caller said, not heard)."""
        self._backlogged_ticks = 0
        self._packets: dict[int, RtpPacket] = {}
        self._next: int | None = None  # sequence number the next tick plays
        self._ssrc: int | None = None
        self._newest: int | None = None  # the newest sequence number received
        self._wait = 0  # ticks left before playout starts

    def put(self, packet: RtpPacket) -> None:
        """Store an arriving packet (late or duplicate ones are dropped)."""
        if self._ssrc != packet.ssrc or self._next is None or self._newest is None:
            self._restart(packet)
        else:
            ahead = seq_newer(packet.sequence, self._next)
            behind_newest = seq_newer(packet.sequence, self._newest)
            if ahead < 0 and -RESYNC_JUMP <= behind_newest <= 0:
                # A duplicate, or reordered past its slot: playing it now would rewind the
                # playout and add its delay to the rest of the call.
                self.late += 1
                return
            if ahead < 0 or ahead > RESYNC_JUMP:
                # Behind the playout but newer than anything received: the sender paused
                # (silence suppression, hold) while our clock ran on. Far ahead: it jumped.
                # Either way, follow the sender.
                self._restart(packet)
        if seq_newer(packet.sequence, self._newest or packet.sequence) >= 0:
            self._newest = packet.sequence
        self._packets[packet.sequence] = packet
        if len(self._packets) > self.max_packets:
            # The sender runs ahead of our clock: skip to stay within max_packets.
            oldest = min(self._packets, key=lambda s: seq_newer(s, self._next or 0))
            del self._packets[oldest]
            self._next = (oldest + 1) & 0xFFFF

    def _restart(self, packet: RtpPacket) -> None:
        self._packets.clear()
        self._ssrc = packet.ssrc
        self._next = packet.sequence
        self._newest = packet.sequence
        self._wait = self.depth

    def pop(self) -> tuple[bool, RtpPacket | None]:
        """One tick: (playing, packet). ``playing`` is False before the first packet and
        while playout is starting; a None packet while playing is a loss or a gap."""
        if self._next is None:
            return False, None
        if self._wait > 0:
            self._wait -= 1
            return False, None
        self._drain_lasting_backlog()
        packet = self._packets.pop(self._next, None)
        if packet is None and self._packets:
            self.lost += 1
        self._next = (self._next + 1) & 0xFFFF
        return True, packet

    def _drain_lasting_backlog(self) -> None:
        """Skip the oldest packets once more than ``depth + DRAIN_SLACK`` have waited for
        :data:`DRAIN_AFTER_TICKS` ticks: every one of them is delay the caller's words would
        otherwise carry to the end of the call."""
        assert self._next is not None
        backlog = seq_newer(self._newest, self._next) + 1 if self._newest is not None else 0
        if backlog <= self.depth + DRAIN_SLACK:
            self._backlogged_ticks = 0
            return
        self._backlogged_ticks += 1
        if self._backlogged_ticks < DRAIN_AFTER_TICKS:
            return
        self._backlogged_ticks = 0
        for _ in range(backlog - self.depth - 1):
            if self._packets.pop(self._next, None) is not None:
                self.drained += 1
            self._next = (self._next + 1) & 0xFFFF
