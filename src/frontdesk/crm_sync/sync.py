"""From a finished call to outbox items: one per configured destination.

The hook: after ``CallStore.finish_call(call_id, ...)``, ``await sync.enqueue_call(call_id)``
(or record calls with :class:`SyncedCallStore`, which does that itself); an
:class:`~frontdesk.crm_sync.worker.OutboxWorker` then delivers the items, now or after a
failure, from the database.
"""

from __future__ import annotations

import logging

from frontdesk.crm_sync.destination import Destination
from frontdesk.crm_sync.gohighlevel import GoHighLevel
from frontdesk.crm_sync.hubspot import HubSpot
from frontdesk.crm_sync.settings import SyncSettings
from frontdesk.crm_sync.webhook import SignedWebhook
from frontdesk.crm_sync.worker import OutboxWorker
from frontdesk.store.db import Database
from frontdesk.store.models import normalize_phone
from frontdesk.store.outbox import OutboxQueue
from frontdesk.store.records import CallStore

log = logging.getLogger(__name__)

CALL_COMPLETED = "call.completed"
"""The outbox item kind of a finished call."""

CRM_DESTINATIONS = frozenset({GoHighLevel.name, HubSpot.name})
"""Destinations keyed on the caller's phone number: a call without one is not sent there."""


class CallInProgressError(RuntimeError):
    """The call has not finished; it is synced once ``finish_call`` has run."""


def build_destinations(settings: SyncSettings) -> dict[str, Destination]:
    """One destination object per configured destination, by name."""
    destinations: dict[str, Destination] = {}
    if settings.gohighlevel is not None:
        destinations[GoHighLevel.name] = GoHighLevel(settings.gohighlevel)
    if settings.hubspot is not None:
        destinations[HubSpot.name] = HubSpot(settings.hubspot)
    if settings.webhook is not None:
        destinations[SignedWebhook.name] = SignedWebhook(settings.webhook)
    return destinations


class CallSync:
    """Queues each finished call for every configured destination."""

    def __init__(
        self,
        db: Database,
        destination_names: frozenset[str] | set[str],
        queue: OutboxQueue | None = None,
    ) -> None:
        self.db = db
        self.calls = CallStore(db)
        self.queue = queue or OutboxQueue(db)
        self.destination_names = frozenset(destination_names)

    @classmethod
    def from_settings(
        cls, db: Database, settings: SyncSettings, queue: OutboxQueue | None = None
    ) -> tuple[CallSync, OutboxWorker]:
        """The sync and a worker delivering to the destinations ``settings`` configures."""
        destinations = build_destinations(settings)
        sync = cls(db, set(destinations), queue)
        return sync, OutboxWorker(sync.queue, destinations)

    @classmethod
    def from_env(cls, db: Database) -> tuple[CallSync, OutboxWorker]:
        """Like :meth:`from_settings`, configured from ``FRONTDESK_*`` variables."""
        return cls.from_settings(db, SyncSettings.from_env())

    async def enqueue_call(self, call_id: str) -> dict[str, int]:
        """Queue the finished call for each destination; returns ``{destination: item id}``.

        The call record (contact, transcript, bookings) is read now and stored with each
        item, so what is delivered is the call as it ended. Calling this again for the same
        call queues nothing new. A call with no usable phone number goes to the webhook only.
        """
        record = await self.calls.call_record(call_id)
        if record["ended_at"] is None:
            raise CallInProgressError(f"call {call_id!r} is still in progress; finish it first")
        raw_phone = (record.get("contact") or {}).get("phone") or record.get("caller_number")
        try:
            has_phone = bool(raw_phone) and bool(normalize_phone(raw_phone))
        except ValueError:
            has_phone = False
        queued: dict[str, int] = {}
        for name in sorted(self.destination_names):
            if name in CRM_DESTINATIONS and not has_phone:
                log.info("call %s has no caller number: not sent to %s", call_id, name)
                continue
            queued[name] = await self.queue.enqueue(
                name, CALL_COMPLETED, record, idempotency_key=f"call:{call_id}"
            )
        return queued


class SyncedCallStore(CallStore):
    """A :class:`CallStore` whose :meth:`finish_call` also queues the call for ``sync``.

    Queueing is one database insert per destination; if it fails, the error is logged and
    the call still ends normally (its record is saved; :meth:`CallSync.enqueue_call` can be
    run for it again later).
    """

    def __init__(self, db: Database, sync: CallSync) -> None:
        super().__init__(db)
        self.sync = sync

    async def finish_call(
        self,
        call_id: str,
        outcome: str,
        summary: str | None = None,
        recording_path: str | None = None,
    ) -> str:
        """Close the call (see :meth:`CallStore.finish_call`), then queue it."""
        final = await super().finish_call(call_id, outcome, summary, recording_path)
        try:
            await self.sync.enqueue_call(call_id)
        except Exception:
            log.exception("call %s: could not queue it for the CRM destinations", call_id)
        return final
