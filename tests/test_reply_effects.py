"""What a reply's tools ask for is settled with the reply: the front-desk tools behind the
fenced runner (FrontDeskTools, the Call's ToolExecutor), on a real SQLite call record.

A transfer or hang-up happens only when the caller heard the reply that asked for it, and
the outcome logged beside it is written only then: a caller who cuts the hand-off short and
carries on leaves no "escalated, transferred to a person" behind.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from frontdesk.brain.base import ToolCall, ToolResult
from frontdesk.brain.tools import ToolRunner
from frontdesk.business.calendar import SQLCalendar
from frontdesk.business.crm import SQLCRM
from frontdesk.business.hours import BusinessHours
from frontdesk.business.tool_executor import FrontDeskTools
from frontdesk.business.toolset import FrontDeskEnv, HangUp, Transfer, frontdesk_tools
from frontdesk.store import CallStore, Database

pytestmark = pytest.mark.asyncio(loop_scope="session")

CALLER = "+15550102030"
HANDOFF = "+15550100000"
HOURS = BusinessHours.from_mapping({"mon": "09:00-17:00"}, tz="America/New_York")
SUMMARY = "Dana was transferred to a person (asked for a person)."


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'effects.db'}")
    database.create_all()
    yield database
    database.dispose()


class Desk:
    """One call's tools as the Call drives them: each run on behalf of a reply."""

    def __init__(self, db: Database, call_id: str) -> None:
        self.store = CallStore(db)
        self.env = FrontDeskEnv(
            calendar=SQLCalendar(db, HOURS),
            crm=SQLCRM(db),
            store=self.store,
            call_id=call_id,
            caller_number=CALLER,
            hours=HOURS,
            handoff_number=HANDOFF,
        )
        registry = frontdesk_tools()
        self.tools = FrontDeskTools(
            registry, ToolRunner(registry, self.env, self.store, call_id), self.env
        )
        self.live: set[str] = set()

    @classmethod
    async def open(cls, db: Database) -> Desk:
        return cls(db, await CallStore(db).start_call("inbound", "local", CALLER))

    async def run(self, reply: str, tool: str, /, **arguments: Any) -> ToolResult:
        self.live.add(reply)
        return await self.tools.run(ToolCall(tool, arguments), reply, lambda: reply in self.live)

    async def hand_off(self, reply: str) -> None:
        """What the flow brain does in its hand-off reply."""
        await self.run(reply, "transfer_to_human", reason="asked for a person")
        await self.run(reply, "log_call_outcome", outcome="escalated", summary=SUMMARY)

    async def settle(self, reply: str, end: Any) -> list[tuple[str, str]]:
        self.live.discard(reply)
        return await self.tools.settle(reply, end)

    async def record(self) -> dict[str, Any]:
        return await self.store.call_record(self.env.call_id)


async def test_a_heard_hand_off_transfers_and_records_escalated(db: Database) -> None:
    desk = await Desk.open(db)
    await desk.hand_off("r1")
    # Nothing is true yet: the caller is still hearing "let me connect you...".
    assert desk.env.actions == [Transfer(HANDOFF, "asked for a person")]
    assert (await desk.record())["outcome"] == "in_progress"

    assert await desk.settle("r1", "heard") == [("transfer", HANDOFF)]
    record = await desk.record()
    assert (record["outcome"], record["summary"]) == ("escalated", SUMMARY)
    assert record["contact"]["last_outcome"] == "escalated"
    assert desk.env.actions == []


async def test_a_hand_off_cut_short_neither_transfers_nor_records_escalated(db: Database) -> None:
    desk = await Desk.open(db)
    await desk.hand_off("r1")
    assert await desk.settle("r1", "interrupted") == []
    record = await desk.record()
    assert (record["outcome"], record["summary"], record["contact"]) == ("in_progress", None, None)
    # The tools did run, and the record says so: only their effect on the call was dropped.
    assert [(t["name"], t["status"]) for t in record["tool_calls"]] == [
        ("transfer_to_human", "done"),
        ("log_call_outcome", "done"),
    ]

    # The caller carries on, and later asks for a person again: the same tool calls with the
    # same arguments are raised and logged again, not replayed from the dropped first time.
    await desk.hand_off("r3")
    assert await desk.settle("r3", "heard") == [("transfer", HANDOFF)]
    assert (await desk.record())["outcome"] == "escalated"


async def test_a_goodbye_cut_short_drops_its_hang_up_and_its_outcome(db: Database) -> None:
    desk = await Desk.open(db)
    await desk.run("r1", "log_call_outcome", outcome="answered", summary="Asked about hours.")
    await desk.run("r1", "end_call")
    assert await desk.settle("r1", "interrupted") == []
    assert (await desk.record())["outcome"] == "in_progress"

    await desk.run("r2", "log_call_outcome", outcome="answered", summary="Asked about parking.")
    await desk.run("r2", "end_call")
    assert await desk.settle("r2", "heard") == [("hang_up", "completed")]
    record = await desk.record()
    assert (record["outcome"], record["summary"]) == ("answered", "Asked about parking.")


async def test_an_outcome_without_an_ending_stands_when_its_reply_is_cut_short(
    db: Database,
) -> None:
    desk = await Desk.open(db)
    await desk.run("r1", "log_call_outcome", outcome="nurture", summary="Will call back.")
    assert await desk.settle("r1", "interrupted") == []
    record = await desk.record()
    assert (record["outcome"], record["summary"]) == ("nurture", "Will call back.")


@pytest.mark.parametrize(
    ("ending", "outcome"),
    [("goodbye", "answered"), ("hand_off", "in_progress")],
)
async def test_a_caller_who_hangs_up_mid_reply(db: Database, ending: str, outcome: str) -> None:
    """The call did end during a goodbye, so its outcome stands; nobody was transferred
    during a hand-off, so "transferred to a person" is not written."""
    desk = await Desk.open(db)
    if ending == "goodbye":
        await desk.run("r1", "log_call_outcome", outcome="answered", summary="Asked about hours.")
        await desk.run("r1", "end_call")
    else:
        await desk.hand_off("r1")
    assert await desk.settle("r1", "call_over") == []
    assert (await desk.record())["outcome"] == outcome


async def test_a_transfer_finishing_after_its_reply_was_cut_off_never_fires(
    db: Database,
) -> None:
    desk = await Desk.open(db)
    desk.live.add("r1")
    running = asyncio.create_task(
        desk.tools.run(
            ToolCall("transfer_to_human", {"reason": "x"}), "r1", lambda: "r1" in desk.live
        )
    )
    await asyncio.sleep(0)  # the fence passed; the tool has not run yet (its record first)
    assert await desk.settle("r1", "interrupted") == []
    running.cancel()  # the reply's task goes; the tool itself completes (shielded)
    await desk.tools.drain()
    record = await desk.record()
    assert [(t["name"], t["status"]) for t in record["tool_calls"]] == [
        ("transfer_to_human", "done")
    ]
    # It asked after its reply was settled: dropped, not left for the next reply to perform.
    assert desk.env.actions == []
    await desk.run("r2", "lookup_contact")
    assert await desk.settle("r2", "heard") == []
    assert (await desk.record())["outcome"] == "in_progress"


async def test_actions_of_other_replies_are_not_performed(db: Database) -> None:
    desk = await Desk.open(db)
    await desk.run("r1", "end_call", reason="first")
    await desk.run("r2", "end_call", reason="second")
    assert desk.env.actions == [HangUp("first"), HangUp("second")]
    assert await desk.settle("r2", "heard") == [("hang_up", "second")]
    assert desk.env.actions == [HangUp("first")]
