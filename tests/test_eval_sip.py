"""The battery over SIP, end to end: a real ``frontdesk serve --sip`` on loopback whose
calendar is a real Radicale CalDAV server, called by the battery's SIP caller (INVITE,
PCMU RTP on its own 20 ms clock, RFC 4733 keys) and judged from the caller's side, the
agent's database and the CalDAV server.

Two scenarios keep it short: a caller who books a cleaning and cuts into the list of times
to take the first one (booking on CalDAV, barge-in without a ``clear``), and one who
presses 0 (a key as RFC 4733 events, the hand-off as a REFER on the wire). The timed checks
use the loose pass marks of tests/test_eval_battery.py: speed is judged by the battery's
own figures (``frontdesk eval --sip``), not by tests on a shared machine.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import caldav
import pytest

from conftest import MONDAY_MORNING
from frontdesk.evals.backends import CalDAVSettings, caldav_bookings
from frontdesk.evals.battery import run_scenario
from frontdesk.evals.checks import Limits, tools
from frontdesk.evals.html_report import write_html
from frontdesk.evals.local_server import LocalServer
from frontdesk.evals.scenario import load_battery
from frontdesk.evals.scorecard import Scorecard, score
from radicale_server import RadicaleServer, radicale

pytestmark = pytest.mark.asyncio(loop_scope="session")

CI_LIMITS = Limits(interrupt_s=0.6, turn_s=2.0)
TZ = "America/New_York"
BOOK, PRESS_ZERO = "interrupt-the-slot-list", "press-zero"


@pytest.fixture
def calendar_server(tmp_path: Path) -> Iterator[tuple[RadicaleServer, caldav.Calendar]]:
    """Radicale with one empty calendar, and the staff's own client on it."""
    with radicale(tmp_path / "radicale") as server:
        client = caldav.DAVClient(url=server.url, username=server.user, password=server.password)
        yield server, client.principal().make_calendar(name="Front desk")
        client.close()


async def test_the_battery_over_sip_books_on_caldav_and_hands_off_by_refer(
    calendar_server: tuple[RadicaleServer, caldav.Calendar], engines: tuple, tmp_path: Path
) -> None:
    server, staff = calendar_server
    settings = CalDAVSettings(server.url, server.user, server.password, str(staff.url))
    clock = {"fixed_now": MONDAY_MORNING.isoformat()}
    stt = engines[0]  # the caller's ears: a Whisper of its own, not the server's
    async with LocalServer(tmp_path / "agent", clock, sip=True, caldav=settings) as target:
        assert target.sip_uri is not None and target.sip_uri.startswith("sip:")
        runs = [
            await run_scenario(target, scenario, tmp_path, stt, index=i)
            for i, scenario in enumerate(load_battery(only=[BOOK, PRESS_ZERO]))
        ]
    scores = [score(run, TZ, CI_LIMITS) for run in runs]
    card = Scorecard(target.name, scores, CI_LIMITS)
    failures = [f"{s.name}/{c.check}: {c.detail}" for s in scores for c in s.checks if not c.passed]
    assert card.passed, failures
    book, press_zero = runs
    assert [s.outcome for s in scores] == ["booked", "escalated"]

    # The booking was read from the CalDAV server: the app database has none for the call.
    assert book.record is not None and book.record["appointments"] == []
    assert book.bookings is not None and len(book.bookings) == 1
    assert "CalDAV server" in next(c for c in scores[0].checks if c.check == "tools").detail
    [event] = [e.icalendar_instance.walk("VEVENT")[0] for e in staff.events()]
    assert str(event["SUMMARY"]) == "Cleaning: Sam Patel"  # what the staff see
    assert event["DTSTART"].dt.astimezone(ZoneInfo(TZ)).weekday() == 3  # Thursday

    # Barge-in on SIP: the agent's audio stopped arriving, and its record says it was cut.
    interrupted = next(c for c in scores[0].checks if c.check == "interrupt")
    assert interrupted.value is not None and 0 < interrupted.value <= CI_LIMITS.interrupt_s
    assert any(t["interrupted"] for t in book.record["turns"] if t["speaker"] == "agent")

    # The key went as RFC 4733 events and reached the agent; the hand-off was a REFER.
    assert press_zero.log.transport == "sip" and press_zero.log.times("dtmf_out")
    assert press_zero.record is not None
    assert "[keys 0]" in [t["text"] for t in press_zero.record["turns"]]
    refer = [e.detail["refer_to"] for e in press_zero.log.events if e.kind == "refer_in"]
    assert refer and "+15555550100" in refer[0]
    assert press_zero.log.ended_by == "agent"

    # Every measured turn paired with the agent's own figure, its times mapped onto the
    # caller's clock: where it put the caller's last word agrees with the recording.
    lat = card.latency()
    print(f"\nSIP latency (ms): {lat}")
    assert lat["turns"] >= 3 and lat["paired_turns"] == lat["turns"]
    assert lat["agent_stop_error_mean_ms"] is not None
    assert abs(lat["agent_stop_error_mean_ms"]) < 60

    # The HTML report carries each SIP call's recording.
    write_html(card, tmp_path / "report.html")
    assert (tmp_path / "report.html").read_text().count("data:audio/wav;base64,") == 2

    # Take the booking off the calendar: the same call now fails the tools check, because
    # the battery reads the calendar, not the agent's word or its database.
    staff.events()[0].delete()
    assert book.record is not None
    book.bookings = await asyncio.to_thread(caldav_bookings, settings, book.record["id"])
    result = tools(book, TZ)
    assert not result.passed
    assert "0 appointments for this call in the CalDAV server" in result.detail
