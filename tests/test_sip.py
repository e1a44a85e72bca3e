"""SIP trunks against sipp on 127.0.0.1: a caller books, presses 0 and is transferred with
REFER; malformed SIP never takes the listener down. (baresip: test_sip_baresip.py.)"""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest

from frontdesk.agent import Agent
from frontdesk.transports.sip import SipListener, SipSettings
from frontdesk.transports.sip.pcap import write_rtp_pcap
from sip_peers import (
    HOST,
    SIPP_PCAPS,
    exchange,
    exchange_recv,
    run_sipp,
    scenario,
    speak,
    udp_socket,
)

pytestmark = pytest.mark.asyncio(loop_scope="session")

BOOKING_REQUEST = "Hi, I would like to book a cleaning for Thursday afternoon."


async def started_listener(agent: Agent, **settings: object) -> SipListener:
    listener = SipListener(agent, HOST, 0, SipSettings(**settings))
    await listener.start()
    return listener


async def test_sipp_caller_books_presses_zero_and_is_transferred(
    agent: Agent, tmp_path: Path
) -> None:
    speech = await speak(BOOKING_REQUEST)
    seconds = write_rtp_pcap(tmp_path / "request.pcap", speech)
    script = scenario(
        "caller_books.xml",
        tmp_path,
        greeting_ms=5500,
        speech_pcap=tmp_path / "request.pcap",
        speech_ms=int(seconds * 1000),
        reply_ms=6000,
        dtmf_pcap=SIPP_PCAPS / "dtmf_2833_0.pcap",
    )
    listener = await started_listener(agent)
    try:
        sipp = await run_sipp(script, listener.address, tmp_path, timeout_s=45)
        [finished] = await listener.wait_finished(1, timeout_s=15)
    finally:
        await listener.stop()
    assert sipp.returncode == 0, sipp.explain()
    assert finished.error is None
    assert finished.result is not None
    record = await agent.store.call_record(finished.result.call_id)
    assert record["transport"] == "sip"
    assert record["caller_number"] == "+15550123"
    assert record["ended_at"] is not None
    callers = [t["text"] for t in record["turns"] if t["speaker"] == "caller"]
    heard = " ".join(callers).lower()
    assert "book" in heard and "cleaning" in heard, callers
    assert "[keys 0]" in callers, callers
    assert record["outcome"] == "escalated", record["outcome"]
    assert finished.transport is not None
    assert finished.transport.transfers == [(agent.profile.handoff_number, "refer")]
    # The REFER named the hand-off number, and the agent hung up after the NOTIFY.
    assert "Refer-To: <sip:+15555550100@" in sipp.messages


def _request(method: str, call_id: str, *, body: str = "", extra: str = "") -> bytes:
    """A well-formed request from a raw socket (no SDP unless given)."""
    head = (
        f"{method} sip:frontdesk@{HOST} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {HOST}:9;branch=z9hG4bK{call_id}\r\n"
        f"From: <sip:fuzz@{HOST}>;tag=f{call_id}\r\n"
        f"To: <sip:frontdesk@{HOST}>\r\n"
        f"Call-ID: {call_id}\r\n"
        f"CSeq: 1 {method}\r\n"
        f"Contact: <sip:fuzz@{HOST}:9>\r\n"
        f"Max-Forwards: 70\r\n{extra}"
        f"Content-Length: {len(body.encode())}\r\n\r\n"
    )
    return head.encode() + body.encode()


def _call_id(message: bytes) -> str | None:
    for line in message.split(b"\r\n"):
        if line.lower().startswith(b"call-id:"):
            return line.split(b":", 1)[1].strip().decode(errors="replace")
    return None


def _status(answer: bytes | None) -> int | None:
    if answer is None:
        return None
    first = answer.split(b"\r\n", 1)[0].split()
    return int(first[1]) if len(first) > 1 and first[1].isdigit() else None


async def test_malformed_sip_never_crashes_the_listener(agent: Agent, tmp_path: Path) -> None:
    listener = await started_listener(agent)
    target = listener.address
    try:
        async with udp_socket() as sock:
            cases: dict[str, tuple[bytes, int | None]] = {
                "unknown method": (_request("FROBNICATE", "u1"), 501),
                "MESSAGE is not implemented": (_request("MESSAGE", "u2", body="hi"), 501),
                "truncated mid-headers": (_request("INVITE", "t1").split(b"Max-Forwards")[0], 400),
                "bad CSeq": (_request("INVITE", "c1").replace(b"CSeq: 1", b"CSeq: one"), 400),
                "CSeq method mismatch": (
                    _request("OPTIONS", "c2").replace(b"1 OPTIONS", b"1 INVITE"),
                    400,
                ),
                "Content-Length beyond the body": (
                    _request("OPTIONS", "l1").replace(b"Content-Length: 0", b"Content-Length: 99"),
                    400,
                ),
                "no SIP version": (_request("OPTIONS", "v1").replace(b" SIP/2.0\r", b"\r", 1), 400),
                "header without colon": (
                    _request("OPTIONS", "h1", extra="Broken header line\r\n"),
                    400,
                ),
                "oversized": (
                    _request("OPTIONS", "o1", extra="X-Pad: " + "a" * 20000 + "\r\n"),
                    513,
                ),
                "INVITE without SDP": (_request("INVITE", "s1"), 488),
                "BYE for no dialog": (
                    _request("BYE", "b1").replace(
                        b"To: <sip:frontdesk@127.0.0.1>", b"To: <sip:frontdesk@127.0.0.1>;tag=x"
                    ),
                    481,
                ),
                "binary garbage": (bytes(range(256)) * 4, None),
                "a response nobody asked for": (b"SIP/2.0 200 OK\r\n\r\n", None),
                "OPTIONS still answered": (_request("OPTIONS", "ok1"), 200),
            }
            got = {}
            earlier: set[str] = set()
            for name, (data, _) in cases.items():
                call_id = _call_id(data)
                answer = await exchange(sock, data, target, wait_s=1.0)
                # An INVITE gets 100 Trying first: read on to its final answer. A refused
                # INVITE's answer is repeated until ACKed (this socket never ACKs): an
                # earlier case's repeat is not this case's answer.
                while _status(answer) in (100, 180) or (
                    answer is not None and _call_id(answer) in earlier - {call_id}
                ):
                    answer = await exchange_recv(sock, wait_s=2.0)
                got[name] = _status(answer)
                earlier.add(call_id or "")
            assert got == {name: want for name, (_, want) in cases.items()}
            # Seeded mutations of a request: whatever parses is answered, nothing crashes.
            rng = random.Random(5)
            base = bytearray(_request("INVITE", "m0"))
            for i in range(300):
                mutated = bytearray(base)
                for _ in range(rng.randint(1, 8)):
                    mutated[rng.randrange(len(mutated))] = rng.randrange(256)
                await asyncio.get_running_loop().sock_sendto(sock, bytes(mutated), target)
                if i % 50 == 0:
                    await asyncio.sleep(0.01)
            answer = await exchange(sock, _request("OPTIONS", "ok2"), target)
            while answer is not None and b"Call-ID: ok2" not in answer:
                answer = await exchange_recv(sock)  # answers to the mutations come first
            assert _status(answer) == 200
        # ... and a normal call still completes: the caller speaks and hangs up.
        speech = await speak("Hi, what are your opening hours?")
        seconds = write_rtp_pcap(tmp_path / "hours.pcap", speech)
        script = scenario(
            "caller_hangs_up.xml",
            tmp_path,
            greeting_ms=5500,
            speech_pcap=tmp_path / "hours.pcap",
            speech_ms=int(seconds * 1000),
            reply_ms=5000,
        )
        sipp = await run_sipp(script, target, tmp_path, timeout_s=40)
        assert sipp.returncode == 0, sipp.explain()
        finished = await listener.wait_finished(1, timeout_s=40)
    finally:
        await listener.stop()
    calls = [f for f in finished if f.result is not None]
    assert len(calls) == 1, [(f.sip_call_id, f.error) for f in finished]
    record = await agent.store.call_record(calls[0].result.call_id)
    assert record["ended_at"] is not None
    assert record["outcome"] == "dropped"  # the caller hung up
    callers = " ".join(t["text"] for t in record["turns"] if t["speaker"] == "caller").lower()
    assert "hours" in callers, record["turns"]
    agents = [t["text"] for t in record["turns"] if t["speaker"] == "agent"]
    assert len(agents) >= 2, agents  # the greeting and the answer
