"""The store: schema on a real SQLite file, the call record written as a call proceeds, the CRM."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError

from frontdesk.business.crm import SQLCRM
from frontdesk.store import (
    Appointment,
    CallStore,
    Database,
    UnknownCallError,
    normalize_phone,
)


@pytest.fixture
def db(tmp_path: Path) -> Database:
    database = Database(f"sqlite:///{tmp_path / 'frontdesk.db'}")
    database.create_all()
    yield database
    database.dispose()


def test_default_url_is_a_sqlite_file_under_var(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FRONTDESK_DATABASE_URL", raising=False)
    database = Database()
    database.create_all()
    database.dispose()
    assert database.url == "sqlite:///var/frontdesk.db"
    assert (tmp_path / "var" / "frontdesk.db").is_file()


def test_url_comes_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "nested" / "dir" / "calls.db"
    monkeypatch.setenv("FRONTDESK_DATABASE_URL", f"sqlite:///{target}")
    database = Database()
    database.create_all()
    database.dispose()
    assert target.is_file()


def test_sqlite_runs_in_wal_mode_with_foreign_keys(db: Database) -> None:
    with db.session() as session:
        assert session.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert session.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert session.execute(text("PRAGMA busy_timeout")).scalar() >= 1000


def test_timestamps_come_back_timezone_aware_utc(db: Database) -> None:
    start = datetime(2026, 3, 2, 9, 0, tzinfo=UTC) + timedelta(hours=5)
    with db.session() as session:
        session.add(Appointment(start=start, end=start + timedelta(minutes=30)))
    with db.session() as session:
        stored = session.scalars(select(Appointment)).one()
    assert stored.start == start
    assert stored.start.utcoffset() == timedelta(0)


def test_naive_timestamps_are_refused(db: Database) -> None:
    with pytest.raises(Exception, match="timezone-aware"), db.session() as session:
        session.add(Appointment(start=datetime(2026, 3, 2, 9), end=datetime(2026, 3, 2, 10)))


def test_database_refuses_two_booked_appointments_at_one_start(db: Database) -> None:
    start = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)
    end = start + timedelta(minutes=30)
    with db.session() as session:
        session.add(Appointment(start=start, end=end, status="booked"))
    with pytest.raises(IntegrityError), db.session() as session:
        session.add(Appointment(start=start, end=end, status="booked"))
    # A cancelled appointment does not hold the slot.
    with db.session() as session:
        session.add(Appointment(start=start, end=end, status="cancelled"))
        session.add(Appointment(start=start, end=end, status="cancelled"))
    with db.session() as session:
        assert len(session.scalars(select(Appointment)).all()) == 3


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("(555) 010-2030", "+15550102030"),
        ("+1 555 010 2030", "+15550102030"),
        ("1-555-010-2030", "+15550102030"),
        ("+44 20 7946 0958", "+442079460958"),
        ("0044 20 7946 0958", "+442079460958"),
        ("sip:+15550102030@pbx.example", "+15550102030"),
        ("1001", "1001"),
    ],
)
def test_phone_numbers_are_normalised(raw: str, expected: str) -> None:
    assert normalize_phone(raw) == expected


@pytest.mark.parametrize("raw", ["anonymous", "", "12", "+1 555 CALL NOW", "1234567890123456"])
def test_non_numbers_are_refused(raw: str) -> None:
    with pytest.raises(ValueError, match="not a phone number"):
        normalize_phone(raw)


async def test_turns_are_readable_while_the_call_is_in_progress(db: Database) -> None:
    store = CallStore(db)
    call_id = await store.start_call("inbound", "local", "+15550102030", {"profile": "dental"})
    first = await store.add_turn(call_id, "agent", "Hi, this is the front desk.", 0.0, 1.8)
    mid_call = await store.call_record(call_id)
    assert mid_call["outcome"] == "in_progress"
    assert mid_call["ended_at"] is None
    assert [turn["text"] for turn in mid_call["turns"]] == ["Hi, this is the front desk."]

    second = await store.add_turn(
        call_id, "caller", "I'd like to book", 2.4, 3.9, timings={"caller_stopped": 3.9}
    )
    await store.update_turn(second, timings={"turn_closed": 4.1, "transcript_final": 4.15})
    await store.update_turn(first, interrupted=True, text="Hi, this is")
    record = await store.call_record(call_id)
    turns = record["turns"]
    assert [(turn["index"], turn["speaker"]) for turn in turns] == [(0, "agent"), (1, "caller")]
    assert turns[0]["interrupted"] is True and turns[0]["text"] == "Hi, this is"
    # Timings from later stages are merged into the waterfall, not replacing it.
    assert turns[1]["timings"] == {
        "caller_stopped": 3.9,
        "turn_closed": 4.1,
        "transcript_final": 4.15,
    }
    assert (turns[1]["started_at"], turns[1]["ended_at"]) == (2.4, 3.9)
    assert record["metadata"] == {"profile": "dental"}


async def test_finish_call_never_downgrades_an_outcome(db: Database) -> None:
    store = CallStore(db)
    call_id = await store.start_call("inbound", "twilio", "+15550102030")
    await store.set_outcome(call_id, "booked")
    await store.finish_call(call_id, "dropped", summary="caller hung up after booking")
    record = await store.call_record(call_id)
    assert record["outcome"] == "booked"
    assert record["summary"] == "caller hung up after booking"
    ended_at = record["ended_at"]
    assert ended_at is not None

    # Finishing again is harmless: same end time, outcome still not downgraded.
    await store.finish_call(call_id, "failed")
    again = await store.call_record(call_id)
    assert again["ended_at"] == ended_at
    assert again["outcome"] == "booked"

    other = await store.start_call("outbound", "sip", None)
    await store.finish_call(other, "answered", recording_path="/tmp/call.wav")
    record = await store.call_record(other)
    assert (record["outcome"], record["recording_path"]) == ("answered", "/tmp/call.wav")


async def test_bad_values_are_refused_with_a_clear_error(db: Database) -> None:
    store = CallStore(db)
    with pytest.raises(ValueError, match="direction"):
        await store.start_call("sideways", "local")
    call_id = await store.start_call("inbound", "local")
    with pytest.raises(ValueError, match="speaker"):
        await store.add_turn(call_id, "robot", "hi", 0.0, 1.0)
    with pytest.raises(ValueError, match="outcome"):
        await store.finish_call(call_id, "great")
    await store.set_outcome(call_id, "answered")
    with pytest.raises(ValueError, match="in_progress"):
        await store.set_outcome(call_id, "in_progress")
    turn_id = await store.add_turn(call_id, "caller", "hi", 0.0, 1.0)
    with pytest.raises(TypeError, match="speeker"):
        await store.update_turn(turn_id, speeker="agent")
    with pytest.raises(UnknownCallError, match="nope"):
        await store.add_turn("nope", "caller", "hi", 0.0, 1.0)
    with pytest.raises(UnknownCallError):
        await store.call_record("nope")


async def test_call_record_is_complete_and_json_serialisable(db: Database) -> None:
    store = CallStore(db)
    crm = SQLCRM(db)
    contact = await crm.upsert_contact("555-010-2030", name="Dana")
    call_id = await store.start_call("inbound", "local", "+1 (555) 010-2030")
    await store.add_turn(call_id, "caller", "Book me for Monday", 0.5, 2.0)
    tool_id = await store.record_tool_start(call_id, "reply-1", "check_availability", {"day": None})
    await store.record_tool_end(tool_id, "done", {"slots": [{"label": "Monday at 9 AM"}]})
    await store.record_tool_rejected(
        call_id, "reply-0", "end_call", {"reason": "x"}, "refused", "reply discarded"
    )
    start = datetime(2030, 1, 7, 14, 0, tzinfo=UTC)
    with db.session() as session:
        session.add(
            Appointment(
                start=start,
                end=start + timedelta(minutes=30),
                call_id=call_id,
                contact_id=contact.id,
                service="cleaning",
            )
        )
    await crm.log_outcome("5550102030", call_id, "booked", "Booked Monday at 9 AM")
    await store.finish_call(call_id, "answered")

    record = json.loads(json.dumps(await store.call_record(call_id)))
    assert record["contact"]["name"] == "Dana"
    assert record["contact"]["last_outcome"] == "booked"
    assert record["outcome"] == "booked"
    assert record["summary"] == "Booked Monday at 9 AM"
    assert record["turns"][0]["text"] == "Book me for Monday"
    statuses = [(tool["name"], tool["status"]) for tool in record["tool_calls"]]
    assert statuses == [("check_availability", "done"), ("end_call", "refused")]
    assert record["tool_calls"][0]["result"]["slots"][0]["label"] == "Monday at 9 AM"
    assert record["tool_calls"][0]["finished_at"] is not None
    assert record["tool_calls"][1]["error"] == "reply discarded"
    assert record["appointments"] == [
        {
            "id": record["appointments"][0]["id"],
            "start": "2030-01-07T14:00:00+00:00",
            "end": "2030-01-07T14:30:00+00:00",
            "service": "cleaning",
            "status": "booked",
            "contact_id": contact.id,
        }
    ]


async def test_crm_upserts_one_contact_per_number(db: Database) -> None:
    crm = SQLCRM(db)
    first = await crm.upsert_contact("(555) 010-2030", name="Dana", notes="wants a cleaning")
    second = await crm.upsert_contact("+15550102030", email="dana@example.com", notes="prefers AM")
    again = await crm.upsert_contact("555 010 2030", notes="prefers AM")
    assert first.id == second.id == again.id
    found = await crm.find_contact("1-555-010-2030")
    assert found is not None
    assert (found.name, found.email) == ("Dana", "dana@example.com")
    assert found.notes == "wants a cleaning\nprefers AM"
    assert await crm.find_contact("+15550109999") is None
    with pytest.raises(ValueError, match="not a phone number"):
        await crm.find_contact("anonymous")


async def test_crm_finds_a_contact_by_id(db: Database) -> None:
    crm = SQLCRM(db)
    dana = await crm.upsert_contact("(555) 010-2030", name="Dana Scully")
    await crm.upsert_contact("555-010-9999", name="Fox Mulder")
    found = await crm.get_contact(dana.id)
    assert found == dana
    assert (found.name, found.phone) == ("Dana Scully", "+15550102030")
    assert await crm.get_contact(dana.id + 1000) is None


async def test_crm_log_outcome_writes_contact_and_call(db: Database) -> None:
    store = CallStore(db)
    crm = SQLCRM(db)
    call_id = await store.start_call("inbound", "local", "+15550102030")
    await crm.log_outcome("+15550102030", call_id, "nurture", "Not ready, call back in May")
    contact = await crm.find_contact("+15550102030")
    assert contact is not None and contact.last_outcome == "nurture"
    record = await store.call_record(call_id)
    assert (record["outcome"], record["summary"]) == ("nurture", "Not ready, call back in May")
    assert record["contact"]["id"] == contact.id
    # A later call from the same number is linked to the contact from the start.
    later = await store.start_call("inbound", "local", "555-010-2030")
    assert (await store.call_record(later))["contact"]["id"] == contact.id
    with pytest.raises(UnknownCallError):
        await crm.log_outcome("+15550102030", "no-such-call", "answered", "x")
