"""The outbox worker: delivers what is due, records each result, and keeps polling.

It runs beside the calls on the same event loop (``frontdesk serve`` starts one); all of
its waiting is on the network or on the database's worker threads, never on the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Mapping
from datetime import timedelta

from frontdesk.crm_sync.destination import (
    Delivery,
    Destination,
    PermanentDeliveryError,
    RetryableDeliveryError,
)
from frontdesk.store.outbox import OutboxEntry, OutboxQueue

log = logging.getLogger(__name__)


class OutboxWorker:
    """Delivers due outbox items to their destinations (looked up by item destination name).

    Each delivery is bounded by ``delivery_timeout_s``; the claim on an item lasts longer
    than that, so no other worker picks it up meanwhile, and if this process dies the item
    is due again once the claim runs out.
    """

    def __init__(
        self,
        queue: OutboxQueue,
        destinations: Mapping[str, Destination],
        *,
        batch_size: int = 20,
        poll_interval_s: float = 2.0,
        delivery_timeout_s: float = 60.0,
    ) -> None:
        if batch_size < 1 or poll_interval_s <= 0 or delivery_timeout_s <= 0:
            raise ValueError(
                "batch_size must be >= 1 and poll_interval_s, delivery_timeout_s positive"
            )
        self.queue = queue
        self.destinations = dict(destinations)
        self.batch_size = batch_size
        self.poll_interval_s = poll_interval_s
        self.delivery_timeout_s = delivery_timeout_s
        self.lease = timedelta(seconds=delivery_timeout_s + 30)

    async def run_once(self) -> int:
        """Deliver one batch of due items (concurrently) and return how many succeeded."""
        _, delivered = await self._round()
        return delivered

    async def _round(self) -> tuple[int, int]:
        """One batch: (items claimed, items delivered)."""
        entries = await self.queue.claim_due(self.batch_size, self.lease)
        if not entries:
            return 0, 0
        results = await asyncio.gather(
            *(self._deliver(entry) for entry in entries), return_exceptions=True
        )
        for entry, result in zip(entries, results, strict=True):
            if isinstance(result, BaseException):
                # Recording the result failed (the database, most likely): the claim runs
                # out and the item is attempted again.
                log.error("outbox item %s: could not record the attempt: %r", entry.id, result)
        return len(entries), sum(result is True for result in results)

    async def run_forever(self, stop: asyncio.Event) -> None:
        """Deliver until ``stop`` is set: a full batch is followed at once by the next, an
        empty or partial one by a pause of ``poll_interval_s``. A database error is logged
        and retried on the next poll; it never ends the loop."""
        while not stop.is_set():
            full_batch = False
            try:
                claimed, _ = await self._round()
                full_batch = claimed >= self.batch_size
            except Exception:  # keep polling: the outbox must outlive a database hiccup
                log.exception("outbox worker: delivery round failed")
            if full_batch:
                await asyncio.sleep(0)
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.poll_interval_s)

    async def _deliver(self, entry: OutboxEntry) -> bool:
        """One attempt at one item; returns whether it was delivered."""
        destination = self.destinations.get(entry.destination)
        if destination is None:
            await self.queue.mark_failed(
                entry.id,
                f"no destination named {entry.destination!r} is configured "
                f"(configured: {', '.join(sorted(self.destinations)) or 'none'})",
                permanent=True,
            )
            return False
        delivery = Delivery(entry, self.queue)
        try:
            async with asyncio.timeout(self.delivery_timeout_s):
                await destination.deliver(delivery)
        except RetryableDeliveryError as error:
            when = await self.queue.mark_failed(entry.id, str(error), retry_after=error.retry_after)
            log.warning(
                "outbox item %s to %s failed, retry at %s: %s",
                entry.id,
                entry.destination,
                when,
                error,
            )
            return False
        except PermanentDeliveryError as error:
            await self.queue.mark_failed(entry.id, str(error), permanent=True)
            log.error("outbox item %s to %s parked: %s", entry.id, entry.destination, error)
            return False
        except TimeoutError:
            await self.queue.mark_failed(
                entry.id, f"delivery took longer than {self.delivery_timeout_s:g} s"
            )
            return False
        except Exception as error:  # a bug in a destination must not lose the write
            log.exception("outbox item %s to %s: unexpected error", entry.id, entry.destination)
            await self.queue.mark_failed(entry.id, f"{type(error).__name__}: {error}")
            return False
        await self.queue.mark_delivered(entry.id)
        return True

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[OutboxWorker]:
        """Deliver in the background while the block runs (e.g. a server's lifespan); on
        exit, finish the current round, stop, and close the destinations."""
        stop = asyncio.Event()
        task = asyncio.create_task(self.run_forever(stop), name="frontdesk-outbox")
        try:
            yield self
        finally:
            stop.set()
            await task
            await self.aclose()

    async def aclose(self) -> None:
        """Close every destination's connections."""
        for destination in self.destinations.values():
            await destination.aclose()
