"""What a destination (a CRM, a webhook) is to the outbox worker, and how it reports failure."""

from __future__ import annotations

from typing import Any, Protocol

from frontdesk.store.outbox import OutboxEntry, OutboxQueue


class DeliveryError(Exception):
    """A delivery attempt failed; the message names the request and the reason."""


class RetryableDeliveryError(DeliveryError):
    """A failure that may pass (a 5xx, a 429, a timeout, a dropped connection): the item
    stays queued and is retried after a backoff of at least ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentDeliveryError(DeliveryError):
    """A failure that retrying cannot fix (bad credentials, a rejected payload): the item
    is parked with its error, kept in the database for an operator to fix and requeue."""


class Delivery:
    """One outbox item being delivered: its data, and a checkpoint that survives retries.

    A destination making several writes calls :meth:`checkpoint` after each one, and skips
    on a retry what ``progress`` says is already done.
    """

    def __init__(self, entry: OutboxEntry, queue: OutboxQueue | None = None) -> None:
        self.entry = entry
        self.progress: dict[str, Any] = dict(entry.progress)
        self._queue = queue

    @property
    def id(self) -> int:
        """The outbox item id."""
        return self.entry.id

    @property
    def kind(self) -> str:
        """What the item is, e.g. ``call.completed``."""
        return self.entry.kind

    @property
    def payload(self) -> dict[str, Any]:
        """The data to deliver (for calls: the call record)."""
        return self.entry.payload

    @property
    def idempotency_key(self) -> str:
        """Stable across retries; sent on the wire where the receiver supports it."""
        return self.entry.idempotency_key

    @property
    def attempt(self) -> int:
        """This attempt's number, from 1."""
        return self.entry.attempts + 1

    async def checkpoint(self, **done: Any) -> None:
        """Record (in memory and in the database) what this delivery has achieved."""
        self.progress.update(done)
        if self._queue is not None:
            await self._queue.save_progress(self.entry.id, self.progress)


class Destination(Protocol):
    """Somewhere outbox items go. ``deliver`` returns once the item is fully written, or
    raises :class:`RetryableDeliveryError` / :class:`PermanentDeliveryError`."""

    name: str

    async def deliver(self, item: Delivery) -> None:
        """Write ``item`` to the destination."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...
