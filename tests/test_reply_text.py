"""A slow tool gets a filler line spoken while the brain waits for it."""

from __future__ import annotations

import asyncio

import pytest

from frontdesk.brain.base import BrainEvent, EndCall, TextDelta
from frontdesk.call.reply_text import spliced_text

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_the_filler_is_spoken_while_the_brain_waits_and_in_order() -> None:
    fillers: asyncio.Queue[str] = asyncio.Queue()

    async def brain() -> asyncio.AsyncIterator[BrainEvent]:  # type: ignore[name-defined]
        yield TextDelta("Sure. ")
        # the brain awaits a slow tool; the tool runner queues a filler after a while
        asyncio.get_running_loop().call_later(0.05, fillers.put_nowait, "One moment. ")
        await asyncio.sleep(0.3)
        yield TextDelta("I have Thursday at two.")
        yield EndCall("completed")

    said: list[tuple[float, str]] = []
    ended: list[str] = []
    loop = asyncio.get_running_loop()
    start = loop.time()
    async for text in spliced_text(brain(), fillers, lambda: None, ended.append):
        said.append((loop.time() - start, text))
    # the filler is spaced apart from the brain's words (a delta may end without a space)
    assert [t for _, t in said] == ["Sure. ", " One moment. ", "I have Thursday at two."]
    assert said[1][0] < 0.2, "the filler did not wait for the brain"
    assert ended == ["completed"]


async def test_closing_the_text_closes_the_brain() -> None:
    closed = asyncio.Event()

    async def brain() -> asyncio.AsyncIterator[BrainEvent]:  # type: ignore[name-defined]
        try:
            yield TextDelta("Let me look. ")
            await asyncio.sleep(10)
            yield TextDelta("never said")
        finally:
            closed.set()

    stream = spliced_text(brain(), asyncio.Queue(), lambda: None, lambda _: None)
    assert await anext(stream) == "Let me look. "
    await stream.aclose()  # barge-in: the reply is abandoned
    assert closed.is_set()
