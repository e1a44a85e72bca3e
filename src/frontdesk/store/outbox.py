"""The outbox: writes to other systems (CRMs, webhooks) kept in the app database until they
are delivered.

A write is enqueued in the same database as the call record, so it survives a crash or a
restart; a worker claims what is due, delivers it, and marks it delivered or failed. A
failure is retried later with capped exponential backoff and jitter. Nothing here deletes an
item: a delivered one keeps ``delivered_at``; one that failed for good is *parked*
(``next_attempt_at`` is NULL) with its error, until :meth:`OutboxQueue.requeue`.

``progress`` is a delivery's checkpoint: a destination that makes several requests records
what each created (e.g. the CRM's contact id), so a retry resumes after the last success
instead of repeating writes the remote system already accepted. (A crash between the remote
system's answer and the checkpoint's commit can still repeat that one write: receivers that
take an idempotency key get the item's, stable across retries.)
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Index, Integer, String, Text, UniqueConstraint, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from frontdesk.store.db import Database
from frontdesk.store.models import Base, utc_now
from frontdesk.store.records import to_json


class OutboxItem(Base):
    """One write to deliver to one destination; unique per (destination, idempotency key)."""

    __tablename__ = "outbox"
    __table_args__ = (
        UniqueConstraint("destination", "idempotency_key", name="uq_outbox_destination_key"),
        Index("ix_outbox_due", "delivered_at", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    destination: Mapped[str] = mapped_column(String(40))
    kind: Mapped[str] = mapped_column(String(40))
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    idempotency_key: Mapped[str] = mapped_column(String(200))
    # What the delivery already achieved (ids the remote system returned), see module doc.
    progress: Mapped[dict[str, Any]] = mapped_column(default=dict)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # NULL while undelivered means parked: a permanent failure waiting for an operator.
    next_attempt_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    delivered_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utc_now)


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """A snapshot of an outbox item, safe to use outside its database session."""

    id: int
    destination: str
    kind: str
    payload: dict[str, Any]
    idempotency_key: str
    progress: dict[str, Any]
    attempts: int
    next_attempt_at: datetime | None
    last_error: str | None
    delivered_at: datetime | None
    created_at: datetime

    @property
    def parked(self) -> bool:
        """Undelivered and not scheduled again: it failed permanently."""
        return self.delivered_at is None and self.next_attempt_at is None


def _entry(item: OutboxItem) -> OutboxEntry:
    return OutboxEntry(
        id=item.id,
        destination=item.destination,
        kind=item.kind,
        payload=dict(item.payload or {}),
        idempotency_key=item.idempotency_key,
        progress=dict(item.progress or {}),
        attempts=item.attempts,
        next_attempt_at=item.next_attempt_at,
        last_error=item.last_error,
        delivered_at=item.delivered_at,
        created_at=item.created_at,
    )


@dataclass(frozen=True, slots=True)
class Backoff:
    """Delay before retry number ``attempts``: ``base_s * 2**(attempts-1)``, at most
    ``cap_s``, of which the upper half is random ("equal jitter"), so many failed items do
    not all retry in the same instant, yet every retry waits at least half the nominal delay.
    """

    base_s: float = 5.0
    cap_s: float = 3600.0
    rng: random.Random = field(default_factory=random.Random, compare=False)

    def __post_init__(self) -> None:
        if self.base_s <= 0 or self.cap_s < self.base_s:
            raise ValueError(
                f"backoff needs 0 < base_s <= cap_s, got base_s={self.base_s}, cap_s={self.cap_s}"
            )

    def delay(self, attempts: int) -> timedelta:
        """The wait after the ``attempts``-th failed attempt (1 for the first failure)."""
        nominal = min(self.cap_s, self.base_s * 2 ** max(0, min(attempts - 1, 60)))
        return timedelta(seconds=nominal / 2 + self.rng.uniform(0, nominal / 2))


class UnknownOutboxItemError(LookupError):
    """No outbox item with that id."""


def _get(session: Session, item_id: int) -> OutboxItem:
    item = session.get(OutboxItem, item_id)
    if item is None:
        raise UnknownOutboxItemError(f"no outbox item with id {item_id}")
    return item


class OutboxQueue:
    """The outbox's async API; every method does its database work on a database thread.

    ``now`` is injectable so tests and replays can move time forward without sleeping.
    """

    def __init__(
        self,
        db: Database,
        *,
        backoff: Backoff | None = None,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        self.db = db
        self.backoff = backoff or Backoff()
        self.now = now or utc_now

    async def enqueue(
        self, destination: str, kind: str, payload: dict[str, Any], idempotency_key: str
    ) -> int:
        """Queue a write, due at once, and return its id. Enqueueing the same
        ``idempotency_key`` for the same destination again returns the first item's id
        and changes nothing, so a repeated "call finished" cannot write twice."""
        if not destination or not idempotency_key:
            raise ValueError("an outbox item needs a destination and an idempotency key")
        return await self.db.run(
            self._enqueue, destination, kind, to_json(payload), idempotency_key
        )

    def _enqueue(self, destination: str, kind: str, payload: dict[str, Any], key: str) -> int:
        try:
            with self.db.session() as session:
                existing = self._by_key(session, destination, key)
                if existing is not None:
                    return existing
                item = OutboxItem(
                    destination=destination,
                    kind=kind,
                    payload=payload,
                    idempotency_key=key,
                    progress={},
                    attempts=0,
                    next_attempt_at=self.now(),
                )
                session.add(item)
                session.flush()
                return item.id
        except IntegrityError:
            # Another writer enqueued the same key between our check and insert.
            with self.db.session() as session:
                existing = self._by_key(session, destination, key)
            if existing is None:
                raise
            return existing

    @staticmethod
    def _by_key(session: Session, destination: str, key: str) -> int | None:
        return session.scalar(
            select(OutboxItem.id).where(
                OutboxItem.destination == destination, OutboxItem.idempotency_key == key
            )
        )

    async def get(self, item_id: int) -> OutboxEntry:
        """One item as it is now."""
        return await self.db.run(self._get_entry, item_id)

    def _get_entry(self, item_id: int) -> OutboxEntry:
        with self.db.session() as session:
            return _entry(_get(session, item_id))

    async def items(self, destination: str | None = None) -> list[OutboxEntry]:
        """Every item (optionally of one destination), oldest first."""
        return await self.db.run(self._items, destination)

    def _items(self, destination: str | None) -> list[OutboxEntry]:
        query = select(OutboxItem).order_by(OutboxItem.id)
        if destination is not None:
            query = query.where(OutboxItem.destination == destination)
        with self.db.session() as session:
            return [_entry(item) for item in session.scalars(query)]

    async def due(self, limit: int = 100) -> list[OutboxEntry]:
        """Undelivered items whose next attempt time has come, oldest first (read only)."""
        return await self.db.run(self._due, limit, None)

    async def claim_due(self, limit: int, lease: timedelta) -> list[OutboxEntry]:
        """Take up to ``limit`` due items for delivery: each one's next attempt moves
        ``lease`` ahead, so another worker does not deliver it at the same time, and a
        worker that dies mid-delivery leaves it due again once the lease runs out."""
        if lease <= timedelta(0):
            raise ValueError(f"lease must be positive, got {lease}")
        return await self.db.run(self._due, limit, lease)

    def _due(self, limit: int, lease: timedelta | None) -> list[OutboxEntry]:
        now = self.now()
        query = (
            select(OutboxItem)
            .where(OutboxItem.delivered_at.is_(None), OutboxItem.next_attempt_at <= now)
            .order_by(OutboxItem.next_attempt_at, OutboxItem.id)
            .limit(limit)
        )
        if lease is not None:
            # PostgreSQL: concurrent claimers skip each other's rows; SQLite's session
            # already holds the write lock.
            query = query.with_for_update(skip_locked=True)
        with self.db.session() as session:
            items = list(session.scalars(query))
            if lease is not None:
                for item in items:
                    item.next_attempt_at = now + lease
            return [_entry(item) for item in items]

    async def save_progress(self, item_id: int, progress: dict[str, Any]) -> None:
        """Replace the item's checkpoint (see the module doc)."""
        await self.db.run(self._save_progress, item_id, to_json(progress))

    def _save_progress(self, item_id: int, progress: dict[str, Any]) -> None:
        with self.db.session() as session:
            _get(session, item_id).progress = progress

    async def mark_delivered(self, item_id: int) -> None:
        """Record the successful delivery (idempotent: the first time stays)."""
        await self.db.run(self._mark_delivered, item_id)

    def _mark_delivered(self, item_id: int) -> None:
        with self.db.session() as session:
            item = _get(session, item_id)
            if item.delivered_at is None:
                item.attempts += 1
                item.delivered_at = self.now()
                item.next_attempt_at = None
                item.last_error = None

    async def mark_failed(
        self,
        item_id: int,
        error: str,
        *,
        retry_after: float | None = None,
        permanent: bool = False,
    ) -> datetime | None:
        """Record a failed attempt and return when the next one is due: after the backoff
        delay (at least ``retry_after`` seconds if the remote side asked for it), or
        ``None`` if ``permanent`` (the item is parked, kept with its error)."""
        return await self.db.run(self._mark_failed, item_id, error, retry_after, permanent)

    def _mark_failed(
        self, item_id: int, error: str, retry_after: float | None, permanent: bool
    ) -> datetime | None:
        with self.db.session() as session:
            item = _get(session, item_id)
            if item.delivered_at is not None:
                return None  # a late report about an item another attempt delivered
            item.attempts += 1
            item.last_error = error[:4000]
            if permanent:
                item.next_attempt_at = None
            else:
                delay = self.backoff.delay(item.attempts)
                if retry_after is not None:
                    delay = max(delay, timedelta(seconds=retry_after))
                item.next_attempt_at = self.now() + delay
            return item.next_attempt_at

    async def requeue(self, item_id: int) -> None:
        """Make an undelivered (e.g. parked) item due now; a delivered one is left alone."""
        await self.db.run(self._requeue, item_id)

    def _requeue(self, item_id: int) -> None:
        with self.db.session() as session:
            item = _get(session, item_id)
            if item.delivered_at is None:
                item.next_attempt_at = self.now()

    async def pending_count(self) -> int:
        """How many items are not delivered yet (parked ones included)."""
        return await self.db.run(self._pending_count)

    def _pending_count(self) -> int:
        with self.db.session() as session:
            return (
                session.scalar(
                    select(func.count(OutboxItem.id)).where(OutboxItem.delivered_at.is_(None))
                )
                or 0
            )
