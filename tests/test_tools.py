"""The tool registry, the fenced tool runner, and the front-desk tools on a real database."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from frontdesk.brain.base import Message, TextDelta, ToolCall, ToolResult, TurnContext
from frontdesk.brain.flow import FlowBrain
from frontdesk.brain.profile import load_profile
from frontdesk.brain.tools import ToolError, ToolRegistry, ToolRunner
from frontdesk.business.caldav_calendar import CalDAVCalendar, CalDAVSettings
from frontdesk.business.calendar import Calendar, SQLCalendar
from frontdesk.business.crm import SQLCRM
from frontdesk.business.hours import BusinessHours
from frontdesk.business.toolset import FrontDeskEnv, HangUp, Transfer, frontdesk_tools
from frontdesk.store import CallStore, Database
from radicale_server import free_port

NY = ZoneInfo("America/New_York")
MONDAY = date(2026, 3, 2)
NOW = datetime(2026, 3, 2, 8, 0, tzinfo=NY)  # Monday, before opening
CALLER = "+15550102030"
HOURS = BusinessHours.from_mapping(
    {day: "09:00-17:00" for day in ("mon", "tue", "wed", "thu", "fri")} | {"sat": "closed"},
    tz="America/New_York",
)


@dataclass
class Workbench:
    """The environment of the test tools: what they did, and how often."""

    writes: list[str] = field(default_factory=list)
    attempts: int = 0


registry = ToolRegistry()


@registry.tool
def add(env: Workbench, a: int, b: int = 2) -> int:
    """Add two numbers.

    Args:
        a: The first number.
        b: The second number.
    """
    return a + b


@registry.tool(side_effect=True)
async def write(env: Workbench, value: str) -> dict[str, str]:
    """Write a value somewhere that matters."""
    env.writes.append(value)
    return {"written": value}


@registry.tool(side_effect=True, slow=True)
async def slow_write(env: Workbench, value: str) -> dict[str, str]:
    """Write a value, slowly."""
    await asyncio.sleep(0.3)
    env.writes.append(value)
    return {"written": value}


@registry.tool
def blocking(env: Workbench, seconds: float) -> int:
    """Block the calling thread for a while and say which thread it was."""
    time.sleep(seconds)
    return threading.get_ident()


@registry.tool
def broken(env: Workbench) -> None:
    """Always fails."""
    raise RuntimeError("disk on fire")


@registry.tool(side_effect=True)
async def flaky(env: Workbench, value: str) -> str:
    """Fails the first time."""
    env.attempts += 1
    if env.attempts == 1:
        raise ToolError("try again")
    return value


@registry.tool
async def hang(env: Workbench) -> None:
    """Never returns on its own."""
    await asyncio.sleep(60)


@pytest.fixture
def db(tmp_path: Path) -> Database:
    database = Database(f"sqlite:///{tmp_path / 'tools.db'}")
    database.create_all()
    yield database
    database.dispose()


@pytest.fixture
async def store_and_call(db: Database) -> tuple[CallStore, str]:
    store = CallStore(db)
    return store, await store.start_call("inbound", "local", CALLER)


def live() -> bool:
    return True


def dead() -> bool:
    return False


async def tool_rows(store: CallStore, call_id: str) -> list[dict[str, Any]]:
    return (await store.call_record(call_id))["tool_calls"]


# ---- the registry -------------------------------------------------------------------------


def test_schema_comes_from_the_signature_and_docstring() -> None:
    tool = registry.get("add").openai_tool()
    assert tool["type"] == "function"
    function = tool["function"]
    assert (function["name"], function["description"]) == ("add", "Add two numbers.")
    parameters = function["parameters"]
    assert parameters["type"] == "object"
    assert set(parameters["properties"]) == {"a", "b"}  # env is injected, not an argument
    assert parameters["properties"]["a"] == {"type": "integer", "description": "The first number."}
    assert parameters["properties"]["b"]["default"] == 2
    assert parameters["required"] == ["a"]


async def test_invoke_validates_and_converts_arguments() -> None:
    bench = Workbench()
    assert (await registry.invoke(ToolCall("add", {"a": 1}), bench)).data == 3
    assert (await registry.invoke(ToolCall("add", {"a": "4", "b": 5}), bench)).data == 9
    assert (await registry.invoke(ToolCall("add", '{"a": 2}'), bench)).data == 4  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("name", "arguments", "problem"),
    [
        ("add", {}, "missing required argument 'a'"),
        ("add", {"a": "seven"}, "argument 'a'"),
        ("add", {"a": 1, "c": 3}, "unexpected argument 'c' (accepted: a, b)"),
        ("add", "{not json", "not valid JSON"),
        ("subtract", {"a": 1}, "unknown tool 'subtract'"),
    ],
)
async def test_bad_tool_calls_come_back_as_errors_naming_the_problem(
    name: str, arguments: Any, problem: str
) -> None:
    result = await registry.invoke(ToolCall(name, arguments), Workbench())
    assert result.ok is False
    assert problem in (result.error or "")


async def test_exceptions_become_failed_results() -> None:
    result = await registry.invoke(ToolCall("broken", {}), Workbench())
    assert (result.ok, result.error) == (False, "broken failed: disk on fire")


async def test_sync_tools_run_off_the_event_loop() -> None:
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticking = asyncio.create_task(ticker())
    result = await registry.invoke(ToolCall("blocking", {"seconds": 0.3}), Workbench())
    ticking.cancel()
    assert result.ok and result.data != threading.get_ident()
    assert ticks >= 10  # the loop kept running while the tool blocked its thread


def test_bad_tool_definitions_are_refused_at_registration() -> None:
    other = ToolRegistry()

    def undocumented(env: Workbench, x: int) -> int:
        return x

    def untyped(env, x):  # type: ignore[no-untyped-def]
        """Has no types."""
        return x

    with pytest.raises(ValueError, match="docstring"):
        other.tool(undocumented)
    with pytest.raises(TypeError, match="'x' needs a type hint"):
        other.tool(untyped)
    other.tool(add)
    with pytest.raises(ValueError, match="already registered"):
        other.tool(add)


# ---- the runner: fence, completion, idempotency ---------------------------------------------


async def test_a_side_effect_from_a_discarded_reply_is_refused(
    store_and_call: tuple[CallStore, str],
) -> None:
    store, call_id = store_and_call
    bench = Workbench()
    runner = ToolRunner(registry, bench, store, call_id)
    result = await runner.run(ToolCall("write", {"value": "x"}), "reply-1", dead)
    assert result.ok is False and "discarded" in (result.error or "")
    assert bench.writes == []
    # Reading is harmless, so a read-only tool still answers.
    assert (await runner.run(ToolCall("add", {"a": 1}), "reply-1", dead)).data == 3
    await runner.drain()
    rows = await tool_rows(store, call_id)
    assert [(row["name"], row["status"], row["reply_id"]) for row in rows] == [
        ("write", "refused", "reply-1"),
        ("add", "done", "reply-1"),
    ]
    assert rows[0]["arguments"] == {"value": "x"}


async def test_a_started_side_effect_completes_when_its_reply_is_cancelled(
    store_and_call: tuple[CallStore, str],
) -> None:
    store, call_id = store_and_call
    bench = Workbench()
    runner = ToolRunner(registry, bench, store, call_id)
    reply = asyncio.create_task(runner.run(ToolCall("slow_write", {"value": "x"}), "r1", live))
    await asyncio.sleep(0.1)
    reply.cancel()  # the caller barged in
    with pytest.raises(asyncio.CancelledError):
        await reply
    assert runner.in_flight >= 1
    await runner.drain()
    assert bench.writes == ["x"]
    rows = await tool_rows(store, call_id)
    assert [(row["status"], row["result"]) for row in rows] == [("done", {"written": "x"})]


async def test_tool_calls_are_recorded_as_they_happen(
    store_and_call: tuple[CallStore, str],
) -> None:
    store, call_id = store_and_call
    runner = ToolRunner(registry, Workbench(), store, call_id)
    running = asyncio.create_task(runner.run(ToolCall("slow_write", {"value": "y"}), "r", live))
    await asyncio.sleep(0.15)
    assert [row["status"] for row in await tool_rows(store, call_id)] == ["started"]
    await running
    assert [row["status"] for row in await tool_rows(store, call_id)] == ["done"]


async def test_a_repeated_side_effect_runs_once_per_call(
    store_and_call: tuple[CallStore, str],
) -> None:
    store, call_id = store_and_call
    bench = Workbench()
    runner = ToolRunner(registry, bench, store, call_id)
    first = await runner.run(ToolCall("write", {"value": "a"}), "r1", live)
    again = await runner.run(ToolCall("write", {"value": "a"}), "r2", live)
    concurrent = await asyncio.gather(
        *(runner.run(ToolCall("slow_write", {"value": "b"}), f"r{n}", live) for n in range(3))
    )
    other = await runner.run(ToolCall("write", {"value": "c"}), "r3", live)
    assert first == again and first.ok
    assert all(result == concurrent[0] and result.ok for result in concurrent)
    assert other.ok
    assert bench.writes == ["a", "b", "c"]
    await runner.drain()
    assert [row["status"] for row in await tool_rows(store, call_id)] == ["done"] * 6


async def test_a_failed_side_effect_may_be_retried(store_and_call: tuple[CallStore, str]) -> None:
    store, call_id = store_and_call
    bench = Workbench()
    runner = ToolRunner(registry, bench, store, call_id)
    failed = await runner.run(ToolCall("flaky", {"value": "v"}), "r1", live)
    retried = await runner.run(ToolCall("flaky", {"value": "v"}), "r2", live)
    assert (failed.ok, failed.error) == (False, "try again")
    assert (retried.ok, retried.data, bench.attempts) == (True, "v", 2)
    rows = await tool_rows(store, call_id)
    assert [(row["status"], row["error"]) for row in rows] == [
        ("failed", "try again"),
        ("done", None),
    ]


async def test_a_hanging_tool_times_out_instead_of_stalling_the_call(
    store_and_call: tuple[CallStore, str],
) -> None:
    store, call_id = store_and_call
    runner = ToolRunner(registry, Workbench(), store, call_id, timeout=0.2)
    started = time.monotonic()
    result = await runner.run(ToolCall("hang", {}), "r1", live)
    assert time.monotonic() - started < 2
    assert result.ok is False and "did not finish within 0.2 s" in (result.error or "")
    assert [row["status"] for row in await tool_rows(store, call_id)] == ["failed"]


async def test_bad_calls_are_recorded_as_failed(store_and_call: tuple[CallStore, str]) -> None:
    store, call_id = store_and_call
    runner = ToolRunner(registry, Workbench(), store, call_id)
    bad = await runner.run(ToolCall("add", {"b": 1}), "r1", live)
    unknown = await runner.run(ToolCall("launch", {}), "r1", live)
    assert "missing required argument 'a'" in (bad.error or "")
    assert "unknown tool 'launch'" in (unknown.error or "")
    rows = await tool_rows(store, call_id)
    assert [(row["name"], row["status"]) for row in rows] == [
        ("add", "failed"),
        ("launch", "failed"),
    ]
    assert rows[0]["error"] == bad.error


# ---- the front-desk tools --------------------------------------------------------------------


CONTRACT = {
    "check_availability": ({"day", "part_of_day", "limit", "service"}, set(), False, True),
    "book_appointment": ({"start", "name", "phone", "service"}, {"start", "name"}, True, True),
    "lookup_contact": ({"phone"}, set(), False, False),
    "update_contact": ({"name", "email", "notes"}, set(), True, False),
    "log_call_outcome": ({"outcome", "summary"}, {"outcome", "summary"}, True, False),
    "transfer_to_human": ({"reason"}, {"reason"}, True, False),
    "end_call": ({"reason"}, set(), True, False),
}


def test_front_desk_tools_are_valid_openai_functions() -> None:
    tools = frontdesk_tools()
    definitions = tools.openai_tools()
    assert [tool["function"]["name"] for tool in definitions] == list(CONTRACT)
    for tool in definitions:
        assert tool["type"] == "function"
        function = tool["function"]
        assert set(function) == {"name", "description", "parameters"}
        assert function["description"]
        parameters = function["parameters"]
        assert parameters["type"] == "object"
        names, required, side_effect, slow = CONTRACT[function["name"]]
        assert set(parameters["properties"]) == names
        assert set(parameters["required"]) == required
        for prop in parameters["properties"].values():
            assert prop["type"] in {"string", "integer"}
            assert prop["description"]
        spec = tools.get(function["name"])
        assert (spec.side_effect, spec.slow) == (side_effect, slow)
    outcome = definitions[4]["function"]["parameters"]["properties"]["outcome"]
    assert outcome["enum"] == ["booked", "escalated", "nurture", "answered"]


class FrontDesk:
    """One call's front desk: store, calendar, CRM, env and runner on one database."""

    def __init__(
        self,
        db: Database,
        call_id: str,
        caller: str | None = CALLER,
        calendar: Calendar | None = None,
    ) -> None:
        self.store = CallStore(db)
        self.calendar = calendar or SQLCalendar(db, HOURS, now=lambda: NOW)
        self.crm = SQLCRM(db)
        self.env = FrontDeskEnv(
            calendar=self.calendar,
            crm=self.crm,
            store=self.store,
            call_id=call_id,
            caller_number=caller,
            hours=HOURS,
            appointment_minutes=30,
            service_minutes={"Cleaning": 60},
            handoff_number="+15550100000",
            now=lambda: NOW,
        )
        self.runner = ToolRunner(frontdesk_tools(), self.env, self.store, call_id)

    async def run(self, tool: str, /, **arguments: Any) -> Any:
        return await self.runner.run(ToolCall(tool, arguments), "reply", live)

    @classmethod
    async def start(
        cls, db: Database, caller: str | None = CALLER, calendar: Calendar | None = None
    ) -> FrontDesk:
        call_id = await CallStore(db).start_call("inbound", "local", caller)
        return cls(db, call_id, caller, calendar)


async def test_check_availability_offers_real_openings(db: Database) -> None:
    desk = await FrontDesk.start(db)
    monday = await desk.run("check_availability", day="2026-03-02")
    assert monday.ok
    slots = monday.data["slots"]
    assert len(slots) == 3
    assert slots[0] == {"start": "2026-03-02T09:00:00-05:00", "label": "today at 9 AM"}
    starts = [datetime.fromisoformat(slot["start"]) for slot in slots]
    assert all(later - earlier >= timedelta(hours=2) for earlier, later in pairwise(starts))

    afternoon = await desk.run("check_availability", day="2026-03-03", part_of_day="afternoon")
    assert [slot["label"] for slot in afternoon.data["slots"]] == [
        "tomorrow at 12 PM",
        "tomorrow at 2 PM",
        "tomorrow at 4 PM",
    ]
    soonest = await desk.run("check_availability", limit=4)
    labels = [slot["label"] for slot in soonest.data["slots"]]
    assert labels == ["today at 9 AM", "today at 11 AM", "tomorrow at 9 AM", "tomorrow at 11 AM"]

    saturday = await desk.run("check_availability", day="saturday")
    assert saturday.data == {"slots": [], "note": "closed on Saturdays"}
    past = await desk.run("check_availability", day="2026-02-27")
    assert past.ok is False and "already passed" in past.error
    too_many = await desk.run("check_availability", limit=0)
    assert too_many.ok is False and "argument 'limit'" in too_many.error
    nonsense = await desk.run("check_availability", day="someday")
    assert nonsense.ok is False and "day must be a date" in nonsense.error


async def test_booking_lands_on_the_calendar_and_in_the_crm(db: Database) -> None:
    desk = await FrontDesk.start(db)
    offered = (await desk.run("check_availability", day="2026-03-03")).data["slots"][1]
    booked = await desk.run(
        "book_appointment", start=offered["start"], name="Dana Scully", service="cleaning"
    )
    assert booked.ok, booked.error
    assert booked.data["label"] == offered["label"] == "tomorrow at 11 AM"
    assert booked.data["start"] == offered["start"]

    # The model repeats itself (or the reply is retried): still one appointment.
    repeat = await desk.run(
        "book_appointment", start=offered["start"], name="Dana Scully", service="cleaning"
    )
    assert repeat.data == booked.data
    bookings = await desk.calendar.bookings(call_id=desk.env.call_id)
    assert [booking.id for booking in bookings] == [booked.data["appointment_id"]]
    assert bookings[0].service == "cleaning"

    contact = await desk.crm.find_contact(CALLER)
    assert contact is not None and contact.name == "Dana Scully"
    assert bookings[0].contact_id == contact.id
    record = await desk.store.call_record(desk.env.call_id)
    assert record["outcome"] == "booked"
    assert record["contact"]["last_outcome"] == "booked"
    assert len(record["appointments"]) == 1

    # The slot is gone for everyone else, and the agent hears why and what is open instead.
    other = await FrontDesk.start(db, caller="+15550109999")
    taken = await other.run("book_appointment", start=offered["start"], name="Fox")
    assert taken.ok is False
    assert "already taken" in taken.error and "tomorrow at 9 AM" in taken.error
    after = (await other.run("check_availability", day="2026-03-03", limit=10)).data["slots"]
    assert offered["start"] not in [slot["start"] for slot in after]

    lookup = await desk.run("lookup_contact")
    assert lookup.data["found"] is True
    assert (lookup.data["name"], lookup.data["upcoming"]) == ("Dana Scully", ["tomorrow at 11 AM"])


async def test_booking_refuses_past_and_closed_times(db: Database) -> None:
    desk = await FrontDesk.start(db)
    past = await desk.run("book_appointment", start="2026-03-01T10:00:00-05:00", name="Dana")
    assert past.ok is False and "already passed" in past.error
    closed = await desk.run("book_appointment", start="2026-03-07T10:00:00", name="Dana")
    assert closed.ok is False and "closed" in closed.error
    garbled = await desk.run("book_appointment", start="Tuesday morning", name="Dana")
    assert garbled.ok is False and "ISO date" in garbled.error
    anonymous = await FrontDesk.start(db, caller=None)
    no_phone = await anonymous.run("book_appointment", start="2026-03-03T10:00:00", name="Dana")
    assert no_phone.ok is False and "phone number" in no_phone.error
    assert await desk.calendar.bookings() == []


async def test_contact_and_outcome_tools_write_the_crm(db: Database) -> None:
    desk = await FrontDesk.start(db)
    assert (await desk.run("lookup_contact")).data["found"] is False
    bad_email = await desk.run("update_contact", email="dana at example")
    assert bad_email.ok is False and "email" in bad_email.error
    updated = await desk.run(
        "update_contact", name="Dana", email="dana@example.com", notes="asks about whitening"
    )
    assert updated.ok and updated.data["email"] == "dana@example.com"
    logged = await desk.run("log_call_outcome", outcome="nurture", summary="Will call back.")
    assert logged.ok
    record = await desk.store.call_record(desk.env.call_id)
    assert (record["outcome"], record["summary"]) == ("nurture", "Will call back.")
    assert record["contact"]["notes"] == "asks about whitening"
    assert record["contact"]["last_outcome"] == "nurture"
    wrong = await desk.run("log_call_outcome", outcome="sold", summary="x")
    assert wrong.ok is False and "argument 'outcome'" in wrong.error


async def test_transfer_and_hang_up_become_actions_for_the_call(db: Database) -> None:
    desk = await FrontDesk.start(db)
    transfer = await desk.run("transfer_to_human", reason="billing question")
    assert transfer.data == {"transferring": True}
    assert desk.env.actions == [Transfer("+15550100000", "billing question")]
    assert (await desk.store.call_record(desk.env.call_id))["outcome"] == "escalated"

    await desk.run("end_call")
    assert desk.env.actions[1:] == [HangUp("completed")]
    # Run outside a reply, the outcome is written at once; in a call it waits for the reply
    # to be heard, and is dropped with a transfer the caller cut short (test_reply_effects).


async def test_a_service_books_as_long_as_it_takes(db: Database) -> None:
    desk = await FrontDesk.start(db)
    cleaning = await desk.run(
        "book_appointment", start="2026-03-03T10:00:00-05:00", name="Ana Ruiz", service="cleaning"
    )
    assert cleaning.ok, cleaning.error
    [booking] = await desk.calendar.bookings(call_id=desk.env.call_id)
    assert booking.end - booking.start == timedelta(minutes=60)
    # 10:30 is inside the cleaning: no 30-minute visit there, and no cleaning at 9:30 either.
    other = await FrontDesk.start(db, caller="+15550109999")
    taken = await other.run("book_appointment", start="2026-03-03T10:30:00-05:00", name="Bo Li")
    assert not taken.ok
    open_times = await other.run(
        "check_availability", day="2026-03-03", part_of_day="morning", limit=10, service="Cleaning"
    )
    starts = {slot["start"][11:16] for slot in open_times.data["slots"]}
    assert starts and not starts & {"09:30", "10:00", "10:30"}, starts


def unreachable_calendar(hours: BusinessHours) -> CalDAVCalendar:
    """A real CalDAV adapter pointed at a port on 127.0.0.1 where nothing listens."""
    settings = CalDAVSettings(f"http://127.0.0.1:{free_port()}/", "frontdesk", "pw")
    return CalDAVCalendar(settings, hours, now=lambda: NOW)


async def test_an_unreachable_calendar_is_a_tool_error_the_caller_can_hear(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    calendar = unreachable_calendar(HOURS)
    desk = await FrontDesk.start(db, calendar=calendar)
    await desk.crm.upsert_contact(CALLER, name="Dana Scully")
    try:
        with caplog.at_level(logging.WARNING, logger="frontdesk.business.toolset"):
            check = await desk.run("check_availability", day="2026-03-03")
            book = await desk.run(
                "book_appointment", start="2026-03-03T10:00:00-05:00", name="Dana Scully"
            )
            lookup = await desk.run("lookup_contact")
    finally:
        await calendar.aclose()
    for failed in (check, book):
        assert failed.ok is False
        assert failed.error.startswith("I can't reach the calendar right now")
        assert "transfer_to_human" in failed.error  # the brain is told to offer a person
        assert calendar.settings.url not in failed.error  # the address is for the operator
    assert "cannot reach the CalDAV server" in caplog.text
    assert calendar.settings.url in caplog.text
    # The caller is still recognised; only their appointments are unknown.
    assert lookup.ok and (lookup.data["found"], lookup.data["name"]) == (True, "Dana Scully")
    assert "calendar cannot be reached" in lookup.data["note"]
    record = await desk.store.call_record(desk.env.call_id)
    assert record["outcome"] != "booked" and record["appointments"] == []


async def test_the_flow_offers_a_person_when_the_calendar_is_unreachable(db: Database) -> None:
    profile = load_profile()
    hours = profile.business_hours()
    calendar = unreachable_calendar(hours)
    store = CallStore(db)
    call_id = await store.start_call("inbound", "local", CALLER)
    env = FrontDeskEnv(
        calendar=calendar, crm=SQLCRM(db), store=store, call_id=call_id,
        caller_number=CALLER, hours=hours, handoff_number=profile.handoff_number,
        now=lambda: NOW,
    )  # fmt: skip
    brain = FlowBrain(profile, now=lambda: NOW)
    tools = frontdesk_tools()
    results: list[ToolResult] = []

    async def run_tool(call: ToolCall) -> ToolResult:
        results.append(await tools.invoke(call, env))
        return results[-1]

    text = "hi it's ann lee, existing patient, i need a cleaning thursday afternoon"
    context = TurnContext(
        call_id=call_id,
        caller_number=CALLER,
        history=[Message("agent", brain.greeting()), Message("caller", text)],
        run_tool=run_tool,
    )
    try:
        spoken = "".join(
            [
                event.text
                async for event in brain.respond(text, context)
                if isinstance(event, TextDelta)
            ]
        )
    finally:
        await calendar.aclose()
    assert [r.name for r in results if not r.ok] == ["check_availability"]
    assert "can't reach our calendar" in spoken
    assert "thursday at" not in spoken.lower()  # no made-up times
    assert env.actions == [Transfer(profile.handoff_number, "calendar unavailable")]
    assert (await store.call_record(call_id))["outcome"] == "escalated"
