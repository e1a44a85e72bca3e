"""CRM sync: a real call record in SQLite, a real HTTP server on loopback standing in for
GoHighLevel, HubSpot and a webhook receiver, and the durable outbox between them."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import pytest_asyncio
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from fastapi import FastAPI, Request, Response
from sqlalchemy import inspect

from frontdesk.business.calendar import SQLCalendar
from frontdesk.business.crm import SQLCRM
from frontdesk.business.hours import BusinessHours
from frontdesk.crm_sync import (
    CallInProgressError,
    CallSync,
    GoHighLevelSettings,
    HubSpotSettings,
    SyncedCallStore,
    SyncSettings,
    WebhookSettings,
    verify_signature,
)
from frontdesk.crm_sync.webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER
from frontdesk.server.background import BackgroundServer
from frontdesk.store import CallStore, Database
from frontdesk.store.outbox import Backoff, OutboxItem, OutboxQueue
from postgres_server import postgres_server_fixture  # noqa: F401

NY = ZoneInfo("America/New_York")
MONDAY = datetime(2026, 11, 23, 9, 30, tzinfo=NY)
SLOT = datetime(2026, 11, 24, 10, 0, tzinfo=NY)  # Tuesday 10 AM
PHONE = "+15550102030"
SECRET = "whsec-0123456789abcdef"
GHL_TOKEN = "pit-ghl-test-token"
HUBSPOT_TOKEN = "pat-hubspot-test-token"


@dataclass
class Seen:
    """One request the fake CRM received, and what it answered."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    status: int

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class FakeCRM:
    """GoHighLevel, HubSpot and a webhook receiver behind one app, answering as documented."""

    seen: list[Seen] = field(default_factory=list)
    failures: dict[tuple[str, str], list[tuple[int, dict[str, str]]]] = field(default_factory=dict)
    ghl_contacts: dict[str, str] = field(default_factory=dict)  # phone -> id

    def fail_next(self, method: str, path: str, status: int, **headers: str) -> None:
        self.failures.setdefault((method, path), []).append((status, headers))

    def requests(self) -> list[tuple[str, str]]:
        return [(seen.method, seen.path) for seen in self.seen]

    def successful_writes(self) -> list[tuple[str, str]]:
        return [
            (seen.method, seen.path)
            for seen in self.seen
            if seen.method != "GET" and not seen.path.endswith("/search") and seen.status < 300
        ]

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.api_route("/{path:path}", methods=["GET", "POST", "PUT", "PATCH"])
        async def handle(request: Request, path: str) -> Response:
            body = await request.body()
            key = (request.method, "/" + path)
            status, extra = 200, {}
            payload: Any = {}
            if self.failures.get(key):
                status, extra = self.failures[key].pop(0)
                payload = {"message": "injected failure"}
            else:
                status, payload = self._answer(key, request, body)
            headers = {name.lower(): value for name, value in request.headers.items()}
            self.seen.append(Seen(*key, dict(request.query_params), headers, body, status))
            return Response(json.dumps(payload), status, extra, media_type="application/json")

        return app

    def _answer(self, key: tuple[str, str], request: Request, body: bytes) -> tuple[int, Any]:
        method, path = key
        data = json.loads(body) if body else {}
        if key == ("GET", "/contacts/search/duplicate"):
            found = self.ghl_contacts.get(request.query_params.get("number", ""))
            return 200, {"contact": {"id": found, "phone": PHONE} if found else None}
        if key == ("POST", "/contacts/"):
            self.ghl_contacts[data["phone"]] = contact_id = f"ghl-contact-{len(self.seen)}"
            return 201, {"contact": {"id": contact_id, **data}}
        if method == "PUT" and path.startswith("/contacts/"):
            return 200, {"succeded": True, "contact": {"id": path.split("/")[2], **data}}
        if key == ("POST", "/opportunities/upsert"):
            return 200, {"opportunity": {"id": "ghl-opp-1", **data}, "new": True}
        if key == ("POST", "/calendars/events/appointments"):
            return 201, {"id": "ghl-appt-1", **data}
        if method == "POST" and path.startswith("/contacts/") and path.endswith("/notes"):
            return 201, {"note": {"id": "ghl-note-1", **data}}
        if key == ("POST", "/crm/v3/objects/contacts/search"):
            return 200, {"total": 0, "results": []}
        hubspot_ids = {"contacts": "501", "meetings": "701", "notes": "801"}
        if method == "POST" and path.removeprefix("/crm/v3/objects/") in hubspot_ids:
            return 201, {"id": hubspot_ids[path.rsplit("/", 1)[1]], **data}
        if key == ("POST", "/hooks/frontdesk"):
            good = verify_signature(SECRET, body, request.headers)
            return (200, {"ok": True}) if good else (401, {"error": "bad signature"})
        return 404, {"message": f"no route {method} {path}"}


class Clock:
    """The outbox's clock, moved by hand so retries need no sleeping."""

    def __init__(self) -> None:
        self.now = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A database migrated to the newest revision (0002 included), on each backend."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'frontdesk.db'}"
    else:
        url = request.getfixturevalue("postgres_server").create_database()
    database = Database(url)
    database.upgrade()
    yield database
    database.dispose()


@pytest_asyncio.fixture
async def crm() -> AsyncIterator[tuple[FakeCRM, str]]:
    fake = FakeCRM()
    server = BackgroundServer("127.0.0.1")
    await server.start(fake.app())
    yield fake, server.base_url
    await server.stop()


async def booked_call(db: Database, store: CallStore | None = None) -> str:
    """A new caller books a cleaning, through the real store, CRM and calendar."""
    store, crm = store or CallStore(db), SQLCRM(db)
    hours = BusinessHours.from_mapping({"mon": "09:00-17:00", "tue": "09:00-17:00"}, str(NY))
    calendar = SQLCalendar(db, hours, now=lambda: MONDAY)
    call_id = await store.start_call("inbound", "local", "(555) 010-2030")
    lines = [
        ("agent", "Thanks for calling Bright Smile Dental. How can I help?"),
        ("caller", "Hi, this is Dana Whitfield, I'd like to book a cleaning."),
        ("agent", "I have Tuesday at 10 AM. Shall I book it?"),
        ("caller", "Yes please."),
    ]
    for index, (speaker, text) in enumerate(lines):
        await store.add_turn(call_id, speaker, text, index * 3.0, index * 3.0 + 2.5)
    contact = await crm.upsert_contact(PHONE, name="Dana Whitfield", email="dana@example.com")
    await store.link_contact(call_id, contact.id)
    await calendar.book(
        SLOT,
        timedelta(minutes=30),
        contact_id=contact.id,
        call_id=call_id,
        service="Cleaning",
        idempotency_key=f"{call_id}:book",
    )
    summary = "Booked a cleaning on Tuesday at 10 AM."
    await crm.log_outcome(PHONE, call_id, "booked", summary)
    await store.finish_call(call_id, "booked", summary)
    return call_id


def ghl_settings(base_url: str) -> GoHighLevelSettings:
    ids = {"location_id": "loc-1", "calendar_id": "cal-1", "pipeline_id": "pipe-1"}
    return GoHighLevelSettings(token=GHL_TOKEN, stage_id="stage-booked", base_url=base_url, **ids)


def sync_for(db: Database, settings: SyncSettings, clock: Clock) -> tuple[CallSync, Any]:
    queue = OutboxQueue(db, backoff=Backoff(base_s=30, cap_s=600), now=clock)
    return CallSync.from_settings(db, settings, queue)


async def test_gohighlevel_new_caller_books(db: Database, crm: tuple[FakeCRM, str]) -> None:
    fake, base_url = crm
    call_id = await booked_call(db)
    sync, worker = sync_for(db, SyncSettings(gohighlevel=ghl_settings(base_url)), Clock())
    queued = await sync.enqueue_call(call_id)
    assert await worker.run_once() == 1
    await worker.aclose()

    contact_id = fake.ghl_contacts[PHONE]
    assert fake.requests() == [
        ("GET", "/contacts/search/duplicate"),
        ("POST", "/contacts/"),
        ("POST", "/opportunities/upsert"),
        ("POST", "/calendars/events/appointments"),
        ("POST", f"/contacts/{contact_id}/notes"),
    ]
    lookup, create, opportunity, appointment, note = fake.seen
    for seen in fake.seen:
        assert seen.headers["authorization"] == f"Bearer {GHL_TOKEN}"
        expected_version = "2021-04-15" if "calendars" in seen.path else "2021-07-28"
        assert seen.headers["version"] == expected_version
    assert lookup.query == {"locationId": "loc-1", "number": PHONE}
    assert create.json["locationId"] == "loc-1"
    assert create.json["phone"] == PHONE
    assert (create.json["firstName"], create.json["lastName"]) == ("Dana", "Whitfield")
    assert create.json["email"] == "dana@example.com"
    assert opportunity.json == {
        "pipelineId": "pipe-1",
        "locationId": "loc-1",
        "contactId": contact_id,
        "name": "Dana Whitfield: Cleaning",
        "status": "open",
        "pipelineStageId": "stage-booked",
    }
    body = appointment.json
    assert body["calendarId"] == "cal-1" and body["locationId"] == "loc-1"
    assert body["contactId"] == contact_id and body["appointmentStatus"] == "confirmed"
    assert datetime.fromisoformat(body["startTime"]) == SLOT
    assert datetime.fromisoformat(body["endTime"]) == SLOT + timedelta(minutes=30)
    assert "Outcome: booked" in note.json["body"]
    assert "Caller: Hi, this is Dana Whitfield, I'd like to book a cleaning." in note.json["body"]

    item = await sync.queue.get(queued["gohighlevel"])
    assert item.delivered_at is not None and item.attempts == 1 and item.last_error is None
    assert item.progress["contact_id"] == contact_id
    assert await worker.run_once() == 0  # delivered once; nothing is sent again
    assert len(fake.seen) == 5


async def test_gohighlevel_known_caller_is_updated_not_duplicated(
    db: Database, crm: tuple[FakeCRM, str]
) -> None:
    fake, base_url = crm
    fake.ghl_contacts[PHONE] = "ghl-known"
    call_id = await booked_call(db)
    sync, worker = sync_for(db, SyncSettings(gohighlevel=ghl_settings(base_url)), Clock())
    await sync.enqueue_call(call_id)
    assert await worker.run_once() == 1
    await worker.aclose()
    assert ("POST", "/contacts/") not in fake.requests()
    update = fake.seen[1]
    assert (update.method, update.path) == ("PUT", "/contacts/ghl-known")
    assert update.json["email"] == "dana@example.com"
    assert fake.seen[3].json["contactId"] == "ghl-known"


async def test_hubspot_new_caller_books(db: Database, crm: tuple[FakeCRM, str]) -> None:
    fake, base_url = crm
    call_id = await booked_call(db)
    settings = SyncSettings(hubspot=HubSpotSettings(token=HUBSPOT_TOKEN, base_url=base_url))
    sync, worker = sync_for(db, settings, Clock())
    await sync.enqueue_call(call_id)
    assert await worker.run_once() == 1
    await worker.aclose()

    assert fake.requests() == [
        ("POST", "/crm/v3/objects/contacts/search"),
        ("POST", "/crm/v3/objects/contacts"),
        ("POST", "/crm/v3/objects/meetings"),
        ("POST", "/crm/v3/objects/notes"),
    ]
    search, create, meeting, note = fake.seen
    assert all(seen.headers["authorization"] == f"Bearer {HUBSPOT_TOKEN}" for seen in fake.seen)
    filters = [group["filters"][0] for group in search.json["filterGroups"]]
    assert {"propertyName": "phone", "operator": "EQ", "value": PHONE} in filters
    assert create.json["properties"] == {
        "phone": PHONE,
        "firstname": "Dana",
        "lastname": "Whitfield",
        "email": "dana@example.com",
    }
    to_contact = [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 200}]
    assert meeting.json["associations"] == [{"to": {"id": "501"}, "types": to_contact}]
    properties = meeting.json["properties"]
    assert properties["hs_meeting_start_time"] == "2026-11-24T15:00:00.000Z"
    assert properties["hs_meeting_end_time"] == "2026-11-24T15:30:00.000Z"
    assert properties["hs_timestamp"] == properties["hs_meeting_start_time"]
    assert properties["hs_meeting_title"] == "Cleaning: Dana Whitfield"
    assert note.json["associations"][0]["to"] == {"id": "501"}
    assert note.json["associations"][0]["types"][0]["associationTypeId"] == 202
    assert "Outcome: booked" in note.json["properties"]["hs_note_body"]
    assert "Agent: I have Tuesday at 10 AM." in note.json["properties"]["hs_note_body"]


async def test_a_500_keeps_the_write_queued_and_a_retry_delivers_it_once(
    db: Database, crm: tuple[FakeCRM, str]
) -> None:
    fake, base_url = crm
    fake.fail_next("POST", "/calendars/events/appointments", 500)
    clock = Clock()
    call_id = await booked_call(db)
    sync, worker = sync_for(db, SyncSettings(gohighlevel=ghl_settings(base_url)), clock)
    item_id = (await sync.enqueue_call(call_id))["gohighlevel"]

    assert await worker.run_once() == 0
    item = await sync.queue.get(item_id)
    assert item.delivered_at is None and item.attempts == 1
    assert item.next_attempt_at is not None and item.next_attempt_at > clock.now
    assert "500" in item.last_error and "/calendars/events/appointments" in item.last_error
    assert set(item.progress) == {"contact_id", "opportunity_id"}  # resumes after these
    assert await worker.run_once() == 0  # not due yet: nothing is sent
    assert len(fake.seen) == 4

    clock.now = item.next_attempt_at + timedelta(seconds=1)
    assert await worker.run_once() == 1
    assert await worker.run_once() == 0
    await worker.aclose()
    contact_id = fake.ghl_contacts[PHONE]
    assert fake.successful_writes() == [
        ("POST", "/contacts/"),
        ("POST", "/opportunities/upsert"),
        ("POST", "/calendars/events/appointments"),
        ("POST", f"/contacts/{contact_id}/notes"),
    ]
    item = await sync.queue.get(item_id)
    assert item.delivered_at is not None and item.attempts == 2


async def test_a_429_waits_at_least_retry_after(db: Database, crm: tuple[FakeCRM, str]) -> None:
    fake, base_url = crm
    fake.fail_next("POST", "/crm/v3/objects/notes", 429, **{"Retry-After": "900"})
    clock = Clock()
    call_id = await booked_call(db)
    settings = SyncSettings(hubspot=HubSpotSettings(token=HUBSPOT_TOKEN, base_url=base_url))
    sync, worker = sync_for(db, settings, clock)
    item_id = (await sync.enqueue_call(call_id))["hubspot"]
    assert await worker.run_once() == 0
    item = await sync.queue.get(item_id)
    assert item.next_attempt_at >= clock.now + timedelta(seconds=900)  # > the 600 s cap
    clock.now = item.next_attempt_at
    assert await worker.run_once() == 1
    await worker.aclose()
    writes = fake.successful_writes()
    assert writes.count(("POST", "/crm/v3/objects/meetings")) == 1
    assert writes.count(("POST", "/crm/v3/objects/notes")) == 1


async def test_an_unreachable_crm_keeps_the_write_queued(db: Database) -> None:
    clock = Clock()
    call_id = await booked_call(db)
    with socket.socket() as idle:  # bound, never listening: connections are refused at once
        idle.bind(("127.0.0.1", 0))
        base_url = f"http://127.0.0.1:{idle.getsockname()[1]}"
        settings = SyncSettings(hubspot=HubSpotSettings(token=HUBSPOT_TOKEN, base_url=base_url))
        sync, worker = sync_for(db, settings, clock)
        item_id = (await sync.enqueue_call(call_id))["hubspot"]
        assert await worker.run_once() == 0
        await worker.aclose()
    item = await sync.queue.get(item_id)
    assert item.delivered_at is None and item.next_attempt_at > clock.now
    assert "/crm/v3/objects/contacts/search" in item.last_error
    assert await sync.queue.pending_count() == 1


async def test_webhook_is_signed_and_a_tampered_body_fails(
    db: Database, crm: tuple[FakeCRM, str]
) -> None:
    fake, base_url = crm
    call_id = await booked_call(db)
    hook = WebhookSettings(url=f"{base_url}/hooks/frontdesk", secret=SECRET)
    sync, worker = sync_for(db, SyncSettings(webhook=hook), Clock())
    await sync.enqueue_call(call_id)
    assert await worker.run_once() == 1  # the receiver verified the signature (else 401)
    await worker.aclose()

    (seen,) = fake.seen
    assert seen.status == 200
    assert seen.headers["x-frontdesk-delivery"] == f"call:{call_id}"
    assert seen.headers["idempotency-key"] == f"call:{call_id}"
    sent = seen.json
    assert sent["event"] == "call.completed"
    assert sent["call"] == await CallStore(db).call_record(call_id)

    stamp = int(seen.headers[TIMESTAMP_HEADER.lower()])
    # The documented scheme, computed independently: HMAC-SHA256 of "<timestamp>." + body.
    expected = hmac.new(SECRET.encode(), f"{stamp}.".encode() + seen.body, hashlib.sha256)
    assert seen.headers[SIGNATURE_HEADER.lower()] == "sha256=" + expected.hexdigest()
    assert verify_signature(SECRET, seen.body, seen.headers, now=stamp)
    tampered = seen.body.replace(b'"booked"', b'"dropped"', 1)
    assert tampered != seen.body
    assert not verify_signature(SECRET, tampered, seen.headers, now=stamp)
    assert not verify_signature("another-secret-0123456789", seen.body, seen.headers, now=stamp)
    assert not verify_signature(SECRET, seen.body, seen.headers, now=stamp + 3600)  # replayed
    assert not verify_signature(SECRET, seen.body, {}, now=stamp)


async def test_a_refused_webhook_is_parked_not_deleted(
    db: Database, crm: tuple[FakeCRM, str]
) -> None:
    _, base_url = crm
    call_id = await booked_call(db)
    hook = WebhookSettings(url=f"{base_url}/hooks/frontdesk", secret="not-the-receivers-secret")
    sync, worker = sync_for(db, SyncSettings(webhook=hook), Clock())
    item_id = (await sync.enqueue_call(call_id))["webhook"]
    assert await worker.run_once() == 0
    await worker.aclose()
    item = await sync.queue.get(item_id)
    assert item.parked and "401" in item.last_error
    assert [entry.id for entry in await sync.queue.items()] == [item_id]
    await sync.queue.requeue(item_id)
    assert [entry.id for entry in await sync.queue.due()] == [item_id]


async def test_enqueue_is_idempotent_and_needs_a_finished_call(db: Database) -> None:
    call_id = await booked_call(db)
    settings = SyncSettings(
        hubspot=HubSpotSettings(token=HUBSPOT_TOKEN),
        webhook=WebhookSettings(url="http://127.0.0.1:9/hook", secret=SECRET),
    )
    sync, worker = sync_for(db, settings, Clock())
    first = await sync.enqueue_call(call_id)
    assert set(first) == {"hubspot", "webhook"}
    assert await sync.enqueue_call(call_id) == first
    assert await sync.queue.pending_count() == 2

    live = await CallStore(db).start_call("inbound", "local", "+15550109999")
    with pytest.raises(CallInProgressError, match="still in progress"):
        await sync.enqueue_call(live)
    anonymous = await CallStore(db).start_call("inbound", "local", "anonymous")
    await CallStore(db).finish_call(anonymous, "dropped")
    assert set(await sync.enqueue_call(anonymous)) == {"webhook"}  # no number: no CRM write
    await worker.aclose()


async def test_a_finished_call_reaches_the_webhook_through_background_workers(
    db: Database, crm: tuple[FakeCRM, str]
) -> None:
    fake, base_url = crm
    hook = WebhookSettings(url=f"{base_url}/hooks/frontdesk", secret=SECRET)
    sync, _ = sync_for(db, SyncSettings(webhook=hook), Clock())
    call_ids = [await booked_call(db, SyncedCallStore(db, sync))]  # finishing queues it
    for number in range(4):  # and four calls with no booking
        call_id = await sync.calls.start_call("inbound", "local", f"+1555010300{number}")
        await SyncedCallStore(db, sync).finish_call(call_id, "answered")
        call_ids.append(call_id)
    assert await sync.queue.pending_count() == 5
    # Two workers on one database: each item is claimed, and delivered, exactly once.
    workers = [CallSync.from_settings(db, SyncSettings(webhook=hook))[1] for _ in range(2)]
    for worker in workers:
        worker.poll_interval_s = worker.batch_size = 1
    async with workers[0].running(), workers[1].running():
        for _ in range(500):
            if await sync.queue.pending_count() == 0:
                break
            await asyncio.sleep(0.01)
    delivered = sorted(seen.headers["x-frontdesk-delivery"] for seen in fake.seen)
    assert delivered == sorted(f"call:{call_id}" for call_id in call_ids)
    assert all(seen.status == 200 for seen in fake.seen)


def test_settings_come_from_the_environment() -> None:
    env = {
        "FRONTDESK_GHL_TOKEN": GHL_TOKEN,
        "FRONTDESK_GHL_LOCATION_ID": "loc-1",
        "FRONTDESK_GHL_CALENDAR_ID": "cal-1",
        "FRONTDESK_HUBSPOT_TOKEN": HUBSPOT_TOKEN,
        "FRONTDESK_WEBHOOK_URL": "https://example.com/hook",
        "FRONTDESK_WEBHOOK_SECRET": SECRET,
    }
    settings = SyncSettings.from_env(env)
    assert settings.gohighlevel.base_url == "https://services.leadconnectorhq.com"
    assert settings.gohighlevel.token.get_secret_value() == GHL_TOKEN
    assert settings.hubspot.base_url == "https://api.hubapi.com"
    assert settings.webhook.url == "https://example.com/hook"
    assert not SyncSettings.from_env({}).configured
    with pytest.raises(ValueError, match="FRONTDESK_GHL_CALENDAR_ID"):
        SyncSettings.from_env({k: v for k, v in env.items() if "CALENDAR" not in k})
    with pytest.raises(ValueError, match="FRONTDESK_GHL_STAGE_ID"):
        SyncSettings.from_env({**env, "FRONTDESK_GHL_PIPELINE_ID": "pipe-1"})
    with pytest.raises(ValueError, match="FRONTDESK_WEBHOOK_SECRET"):
        SyncSettings.from_env({"FRONTDESK_WEBHOOK_URL": "https://example.com/hook"})


def test_backoff_grows_with_jitter_up_to_a_cap() -> None:
    backoff = Backoff(base_s=10, cap_s=300)
    for attempts, nominal in [(1, 10), (2, 20), (3, 40), (6, 300), (40, 300)]:
        delays = {backoff.delay(attempts).total_seconds() for _ in range(50)}
        assert all(nominal / 2 <= delay <= nominal for delay in delays)
        assert len(delays) > 1  # jittered, not lock-step


def test_migration_0002_creates_the_outbox_as_the_model_defines_it(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'migrated.db'}")
    try:
        database.upgrade()
        with database.engine.connect() as connection:
            assert "outbox" in inspect(connection).get_table_names()
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            differences = compare_metadata(context, OutboxItem.metadata)
    finally:
        database.dispose()
    # Autogenerate finds nothing to change: revision 0002 made the table the model describes.
    assert [diff for diff in differences if "outbox" in repr(diff)] == []
