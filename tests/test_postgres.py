"""The store on a real PostgreSQL 15 server (started by the test) and on SQLite: Alembic
migrations build exactly the models' schema, a booking call stores everything in
PostgreSQL, and concurrent writers cannot double book."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections.abc import Callable, Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, create_engine, inspect, text
from sqlalchemy.exc import OperationalError

from conftest import MONDAY_MORNING
from frontdesk.agent import Agent, AgentOptions
from frontdesk.business.calendar import Booking, SlotTaken, SQLCalendar
from frontdesk.business.hours import BusinessHours
from frontdesk.demo import DEMO_SCRIPT
from frontdesk.evals.local_call import run_local_call
from frontdesk.store import db as db_module
from frontdesk.store import migrate
from frontdesk.store.db import Database, model_metadata, normalize_database_url
from frontdesk.store.migrate import MigrationError
from postgres_server import PostgresServer, free_port, postgres_server_fixture  # noqa: F401

NY = ZoneInfo("America/New_York")
TUESDAY = date(2026, 3, 3)
NOW = datetime(2026, 3, 2, 8, 0, tzinfo=NY)
HOURS = BusinessHours.from_mapping({"tue": "09:00-17:00"}, tz="America/New_York")


def at(hour: int, minute: int = 0) -> datetime:
    return datetime(TUESDAY.year, TUESDAY.month, TUESDAY.day, hour, minute, tzinfo=NY)


async def book(calendar: SQLCalendar, start: datetime, key: str | None) -> Booking:
    """Book a 30-minute cleaning at ``start`` outside any call."""
    return await calendar.book(
        start,
        timedelta(minutes=30),
        contact_id=None,
        call_id=None,
        service="cleaning",
        idempotency_key=key,
    )


@pytest.fixture(params=["postgresql", "sqlite"])
def new_database(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], str]:
    """Makes new, empty databases on each backend and returns their URLs."""
    if request.param == "sqlite":
        names = itertools.count()
        return lambda: f"sqlite:///{tmp_path / f'frontdesk-{next(names)}.db'}"
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.create_database


@pytest.fixture
def empty_url(new_database: Callable[[], str]) -> str:
    """The URL of a new, empty database on each backend."""
    return new_database()


@pytest.fixture
def pg_url(postgres_server: PostgresServer) -> str:
    """A new, empty PostgreSQL database."""
    return postgres_server.create_database()


@pytest.fixture
def pg_db(pg_url: str) -> Iterator[Database]:
    """A migrated PostgreSQL database."""
    migrate.upgrade(pg_url)
    database = Database(pg_url)
    yield database
    database.dispose()


def schema(connection: Connection) -> dict[str, Any]:
    """Every table's columns, keys, unique constraints and indexes (with partial-index
    conditions), as comparable plain data; Alembic's own table is left out."""
    inspector = inspect(connection)
    out: dict[str, Any] = {}
    for table in sorted(set(inspector.get_table_names()) - {"alembic_version"}):
        out[table] = {
            "columns": [
                (c["name"], str(c["type"]), c["nullable"], c.get("default"))
                for c in inspector.get_columns(table)
            ],
            "primary_key": inspector.get_pk_constraint(table)["constrained_columns"],
            "foreign_keys": sorted(
                (tuple(fk["constrained_columns"]), fk["referred_table"])
                for fk in inspector.get_foreign_keys(table)
            ),
            "unique": sorted(
                tuple(u["column_names"]) for u in inspector.get_unique_constraints(table)
            ),
            "indexes": sorted(
                (
                    i["name"],
                    tuple(i["column_names"]),
                    bool(i["unique"]),
                    sorted((k, str(v)) for k, v in i.get("dialect_options", {}).items()),
                )
                for i in inspector.get_indexes(table)
            ),
        }
    return out


def differences_from_models(database: Database) -> list[Any]:
    """What Alembic's autogenerate would change to make the database match the models."""
    with database.engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "compare_server_default": True}
        )
        return compare_metadata(context, model_metadata())


# --- migrations ------------------------------------------------------------------------


def test_migrations_from_empty_build_exactly_the_models_schema(
    new_database: Callable[[], str],
) -> None:
    empty_url = new_database()
    assert migrate.current(empty_url) is None
    migrate.upgrade(empty_url)
    assert migrate.current(empty_url) == migrate.head_revision()

    migrated = Database(empty_url)
    try:
        assert differences_from_models(migrated) == []
        with migrated.engine.connect() as connection:
            migrated_schema = schema(connection)
    finally:
        migrated.dispose()

    # The other path, create_all, gives the same tables, columns, keys and indexes.
    created = Database(new_database())
    try:
        created.create_all()
        with created.engine.connect() as connection:
            assert schema(connection) == migrated_schema
    finally:
        created.dispose()

    # The partial unique index that stops double bookings exists, with its condition.
    booked_start = [
        index
        for index in migrated_schema["appointments"]["indexes"]
        if index[0] == "uq_appointment_booked_start"
    ]
    assert len(booked_start) == 1
    _name, columns, unique, options = booked_start[0]
    assert columns == ("start",) and unique
    assert any("status" in value and "booked" in value for _key, value in options), options


def test_the_initial_revision_is_0001_and_creates_the_five_tables(empty_url: str) -> None:
    database = Database(empty_url)
    try:
        with database.engine.begin() as connection:
            migrate.upgrade_connection(connection, "0001")
        assert migrate.current(empty_url) == "0001"
        tables = set(inspect(database.engine).get_table_names())
        assert tables == migrate.INITIAL_TABLES | {"alembic_version"}
    finally:
        database.dispose()


def test_postgres_columns_use_native_types(pg_db: Database) -> None:
    with pg_db.engine.connect() as connection:
        types = dict(
            connection.execute(
                text(
                    "select table_name || '.' || column_name, data_type "
                    "from information_schema.columns where table_schema = 'public'"
                )
            ).all()
        )
    assert types["turns.timings"] == "jsonb"
    assert types["calls.metadata"] == "jsonb"
    assert types["appointments.start"] == "timestamp with time zone"


def test_upgrade_adopts_a_database_made_by_create_all_and_keeps_its_data(pg_url: str) -> None:
    database = Database(pg_url)
    try:
        database.create_all()
        with database.session() as session:
            session.execute(
                text(
                    "insert into contacts (phone, created_at, updated_at) "
                    "values ('+15550100', now(), now())"
                )
            )
        database.upgrade()
        database.upgrade()  # a second start finds nothing to do
        assert migrate.current(pg_url) == migrate.head_revision()
        assert differences_from_models(database) == []
        with database.session() as session:
            assert session.scalar(text("select phone from contacts")) == "+15550100"
    finally:
        database.dispose()


def test_two_processes_starting_at_once_both_end_at_head(empty_url: str) -> None:
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def start() -> None:
        database = Database(empty_url)
        try:
            barrier.wait()
            database.upgrade()
        except BaseException as error:  # reported below, with the thread's error
            errors.append(error)
        finally:
            database.dispose()

    threads = [threading.Thread(target=start) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert migrate.current(empty_url) == migrate.head_revision()


def test_a_partial_unversioned_schema_is_refused_not_guessed(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'odd.db'}"
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text("create table contacts (id integer primary key)"))
    engine.dispose()
    with pytest.raises(MigrationError, match="missing appointments, calls"):
        migrate.upgrade(url)


def test_database_urls_are_checked_and_postgres_means_psycopg() -> None:
    assert normalize_database_url("postgres://u@h/d") == "postgresql+psycopg://u@h/d"
    assert normalize_database_url("postgresql://u@h/d") == "postgresql+psycopg://u@h/d"
    assert normalize_database_url("sqlite:///x.db") == "sqlite:///x.db"
    with pytest.raises(ValueError, match="unsupported database 'mysql'"):
        Database("mysql://u@localhost/frontdesk")


def test_an_unreachable_server_is_an_error_not_a_hang() -> None:
    started = time.monotonic()
    with pytest.raises(OperationalError, match=r"127\.0\.0\.1"):
        migrate.upgrade(f"postgresql://postgres@127.0.0.1:{free_port()}/frontdesk")
    assert time.monotonic() - started < db_module.CONNECT_TIMEOUT_S + 5


# --- bookings under concurrency ----------------------------------------------------------


async def test_concurrent_bookings_of_one_slot_on_postgres_book_it_once(pg_db: Database) -> None:
    # Separate Database objects have separate connection pools, as separate server
    # processes would.
    databases = [pg_db, *(Database(pg_db.url) for _ in range(3))]
    calendars = [SQLCalendar(d, HOURS, now=lambda: NOW) for d in databases]
    try:
        results = await asyncio.gather(
            *(book(calendar, at(11), f"call-{n}") for n, calendar in enumerate(calendars * 2)),
            return_exceptions=True,
        )
    finally:
        for database in databases[1:]:
            database.dispose()
    booked = [r for r in results if isinstance(r, Booking)]
    refused = [r for r in results if isinstance(r, SlotTaken)]
    assert (len(booked), len(refused)) == (1, 7), results
    with pg_db.session() as session:
        rows = session.execute(text("select status from appointments")).scalars().all()
    assert rows == ["booked"]


async def test_an_overlapping_booking_waits_for_the_writer_then_is_refused(
    pg_db: Database,
) -> None:
    """A 10:00-11:00 booking is being written; a 10:30 booking (a different start, so the
    unique index cannot help) waits for the write lock and then sees the clash."""
    holding = threading.Event()
    release = threading.Event()

    def slow_writer() -> None:
        with pg_db.exclusive_session() as session:
            session.execute(
                text(
                    'insert into appointments (start, "end", status, created_at) '
                    "values (:start, :end, 'booked', now())"
                ),
                {"start": at(10), "end": at(11)},
            )
            holding.set()
            release.wait(timeout=10)

    writer = threading.Thread(target=slow_writer)
    writer.start()
    assert holding.wait(timeout=10)
    other = Database(pg_db.url)
    try:
        calendar = SQLCalendar(other, HOURS, now=lambda: NOW)
        booking = asyncio.create_task(book(calendar, at(10, 30), None))
        await asyncio.sleep(0.5)
        assert not booking.done(), "the second writer did not wait for the first"
        release.set()
        with pytest.raises(SlotTaken, match="already taken"):
            await asyncio.wait_for(booking, timeout=10)
    finally:
        release.set()
        writer.join(timeout=10)
        other.dispose()


async def test_a_race_past_the_check_ends_in_slot_taken_not_a_database_error(
    pg_db: Database,
) -> None:
    """A writer that does not take the lock inserts the same start; the partial unique index
    refuses the second insert and the calendar turns that into SlotTaken."""
    engine = create_engine(pg_db.url)
    connection = engine.connect()
    try:
        connection.execute(
            text(
                'insert into appointments (start, "end", status, created_at) '
                "values (:start, :end, 'booked', now())"
            ),
            {"start": at(14), "end": at(14, 30)},
        )  # not committed yet: the calendar's clash check cannot see it
        calendar = SQLCalendar(pg_db, HOURS, now=lambda: NOW)
        booking = asyncio.create_task(book(calendar, at(14), "late"))
        await asyncio.sleep(0.5)
        assert not booking.done(), "the insert should wait on the unique index"
        connection.commit()
        with pytest.raises(SlotTaken, match="just taken"):
            await asyncio.wait_for(booking, timeout=10)
        # A cancelled appointment at that start does not block a new booking.
        connection.execute(text("update appointments set status = 'cancelled'"))
        connection.commit()
        booked = await book(calendar, at(14), "again")
        assert booked.start == at(14)
    finally:
        connection.close()
        engine.dispose()


def test_a_held_write_lock_times_out_with_an_error(
    pg_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db_module, "WRITE_LOCK_TIMEOUT_MS", 300)
    release = threading.Event()
    holding = threading.Event()

    def holder() -> None:
        with pg_db.exclusive_session():
            holding.set()
            release.wait(timeout=10)

    thread = threading.Thread(target=holder)
    thread.start()
    try:
        assert holding.wait(timeout=10)
        started = time.monotonic()
        with pytest.raises(OperationalError, match="lock timeout"), pg_db.exclusive_session():
            pass
        assert time.monotonic() - started < 3
    finally:
        release.set()
        thread.join(timeout=10)


# --- a whole call ------------------------------------------------------------------------


@pytest.mark.asyncio(loop_scope="session")
async def test_the_demo_booking_call_stores_everything_in_postgres(
    engines: tuple, pg_url: str, tmp_path: Path
) -> None:
    migrate.upgrade(pg_url)
    stt, tts, cache_dir = engines
    options = AgentOptions(
        database_url=pg_url, phrase_cache_dir=cache_dir, now=lambda: MONDAY_MORNING
    )
    agent = await Agent.open(options, stt=stt, tts=tts)
    try:
        result = await run_local_call(agent, DEMO_SCRIPT, tmp_path / "call.wav")
    finally:
        await agent.aclose()
    call_id = result.call.call_id

    # Read back with SQL from PostgreSQL itself, not from the agent's word.
    engine = create_engine(pg_url)
    try:
        with engine.connect() as sql:
            outcome, ended, contact_id = sql.execute(
                text("select outcome, ended_at, contact_id from calls where id = :id"),
                {"id": call_id},
            ).one()
            name, phone, last_outcome = sql.execute(
                text("select name, phone, last_outcome from contacts where id = :id"),
                {"id": contact_id},
            ).one()
            appointments = sql.execute(
                text("select status, contact_id, call_id, start from appointments")
            ).all()
            turns = sql.execute(
                text(
                    "select speaker, text, interrupted, timings ->> 'voice_to_voice_ms' "
                    "from turns where call_id = :id order by index"
                ),
                {"id": call_id},
            ).all()
            tools = sql.execute(
                text("select name, status from tool_calls where call_id = :id"),
                {"id": call_id},
            ).all()
    finally:
        engine.dispose()

    assert outcome == "booked" and ended is not None
    assert (name, last_outcome) == ("Maria Lopez", "booked")
    assert phone == result.transport.caller_number
    assert len(appointments) == 1
    status, appointment_contact, appointment_call, start = appointments[0]
    assert (status, appointment_contact, appointment_call) == ("booked", contact_id, call_id)
    assert start.astimezone(NY).strftime("%A") == "Thursday"
    assert {speaker for speaker, *_ in turns} == {"agent", "caller"}
    assert len(turns) >= 10
    assert any(interrupted for _s, _t, interrupted, _v in turns), "the caller barged in once"
    assert any(v2v is not None for speaker, _t, _i, v2v in turns if speaker == "caller")
    assert any("Maria" in said for speaker, said, _i, _v in turns if speaker == "caller")
    assert ("book_appointment", "done") in tools
