"""The text of one reply: the brain's deltas, with filler lines spliced in while it waits.

A brain awaiting a slow tool or a slow model yields nothing; the filler (queued by
:class:`~frontdesk.call.fillers.Fillers` after a short silence) must still reach the voice,
so the brain's stream and the filler queue are raced rather than read one after the other.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

from frontdesk.brain.base import BrainEvent, EndCall, TextDelta


async def spliced_text(
    events: AsyncIterator[BrainEvent],
    fillers: asyncio.Queue[str],
    on_text: Callable[[], None],
    on_end_call: Callable[[str], None],
) -> AsyncIterator[str]:
    """Text to speak, in order: the brain's deltas, and any filler the moment it is queued.
    ``on_text`` runs at each brain delta (the first one is a timing point);
    ``on_end_call`` gets the reason when the brain ends the call. Closing this closes the
    brain's stream."""
    pending = asyncio.ensure_future(anext(events))
    filler: asyncio.Future[str] | None = None
    try:
        while True:
            filler = asyncio.ensure_future(fillers.get())
            done, _ = await asyncio.wait({pending, filler}, return_when=asyncio.FIRST_COMPLETED)
            if filler in done:
                # Spaced apart: the brain's last delta may end in "." with no space after it,
                # and "Sure.One moment." would read as one word to the chunker.
                yield f" {filler.result().strip()} "
                continue
            filler.cancel()
            try:
                event = pending.result()
            except StopAsyncIteration:
                return
            pending = asyncio.ensure_future(anext(events))
            if isinstance(event, TextDelta):
                on_text()
                yield event.text
            elif isinstance(event, EndCall):
                on_end_call(event.reason)
    finally:
        # A reply cancelled while the brain thinks leaves both waits open: end both.
        waits = [pending] if filler is None else [pending, filler]
        for wait in waits:
            wait.cancel()
        await asyncio.gather(*waits, return_exceptions=True)
        with contextlib.suppress(Exception):
            await events.aclose()  # type: ignore[attr-defined]
