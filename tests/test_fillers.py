"""Filler lines while a reply waits on the brain: when one is due, and when it must not be.

The watcher runs against a stand-in playback whose "caller has heard everything so far"
moment the test moves, as the real playback's echoed marks would.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from frontdesk.call.contracts import CallConfig
from frontdesk.call.fillers import Fillers

pytestmark = pytest.mark.asyncio(loop_scope="session")

CONFIG = CallConfig(
    filler_after_s=0.05,
    filler_line="Let me check.",
    think_filler_after_s=0.15,
    think_filler_lines=("One moment.", "Still working on it."),
    think_filler_again_s=0.3,
)


class Line:
    """The part of ReplyPlayback the fillers read: since when the line has been quiet."""

    reply_id = "r0"

    def __init__(self) -> None:
        self.quiet_since: float | None = time.monotonic()

    def speaking(self) -> None:
        self.quiet_since = None

    def quiet(self) -> None:
        self.quiet_since = time.monotonic()


async def heard(fillers: Fillers, seconds: float) -> list[str]:
    """What was queued within ``seconds``."""
    await asyncio.sleep(seconds)
    said = []
    while not fillers.queue.empty():
        said.append(fillers.queue.get_nowait())
    return said


async def test_a_silent_brain_gets_one_line_then_a_second_then_nothing() -> None:
    line = Line()
    fillers = Fillers(CONFIG, line, lambda: False)  # type: ignore[arg-type]
    async with fillers.watching():
        assert await heard(fillers, 0.10) == []  # a brain answering this fast hears nothing
        assert await heard(fillers, 0.10) == ["One moment."]
        line.speaking()  # the filler plays for a while
        assert await heard(fillers, 0.40) == []  # never on top of the agent's own audio
        line.quiet()
        assert await heard(fillers, 0.20) == []
        assert await heard(fillers, 0.15) == ["Still working on it."]
        assert await heard(fillers, 0.60) == []  # once per wait: two lines at most
        fillers.brain_spoke()  # the brain answers: the wait is over; a new one may begin
        assert await heard(fillers, 0.10) == []
        assert await heard(fillers, 0.10) == ["One moment."]


async def test_no_filler_while_the_caller_is_talking() -> None:
    talking = True
    fillers = Fillers(CONFIG, Line(), lambda: talking)  # type: ignore[arg-type]
    async with fillers.watching():
        assert await heard(fillers, 0.40) == []
        talking = False
        assert await heard(fillers, 0.20) == ["One moment."]


async def test_a_slow_tool_gets_its_own_line_sooner_and_only_one_per_wait() -> None:
    line = Line()
    fillers = Fillers(CONFIG, line, lambda: False)  # type: ignore[arg-type]
    async with fillers.watching():
        fillers.slow_tool_started()
        assert await heard(fillers, 0.10) == ["Let me check."]
        line.speaking()
        await asyncio.sleep(0.1)
        line.quiet()
        fillers.slow_tool_finished()  # the brain still thinks after the tool: no "One moment."
        assert await heard(fillers, 0.20) == []
        assert await heard(fillers, 0.20) == ["Still working on it."]


async def test_fillers_can_be_turned_off_for_the_brain() -> None:
    config = CallConfig(think_filler_after_s=None)
    fillers = Fillers(config, Line(), lambda: False)  # type: ignore[arg-type]
    async with fillers.watching():
        assert await heard(fillers, 0.3) == []


async def test_leaving_the_block_stops_the_watcher() -> None:
    fillers = Fillers(CONFIG, Line(), lambda: False)  # type: ignore[arg-type]
    async with fillers.watching():
        pass
    assert await heard(fillers, 0.3) == []
