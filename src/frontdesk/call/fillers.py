"""Filler lines: what the caller hears instead of silence while a reply waits on the brain.

A reply *waits* while the caller has heard all of it there is so far and the brain still
owes more: the model has not answered yet, or a tool is running. Once the line has been
quiet for a moment (``filler_after_s`` while a slow tool runs, ``think_filler_after_s``
otherwise) one filler is queued; if the quiet goes on ``think_filler_again_s`` after it, a
second, different line; then nothing until the brain speaks again, which ends the wait.

A filler is never queued while the agent's audio is still playing or the caller is talking,
so it never lands on top of anyone's words. It goes into the reply's text like the brain's
own words, so what the caller heard of it is what the history keeps (playback marks decide).
A brain that answers in milliseconds never reaches a deadline: the watcher is cancelled with
the brain's stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable

from frontdesk.call.contracts import CallConfig
from frontdesk.call.playback import ReplyPlayback

POLL_S = 0.1
"""How often the watcher looks again while the agent's audio plays (the moment the line goes
quiet is stamped by the playback itself, so this only bounds how late a deadline is set)."""


class Fillers:
    """The filler lines of one reply, queued for its text stream (``queue``)."""

    def __init__(
        self,
        config: CallConfig,
        playback: ReplyPlayback,
        caller_talking: Callable[[], bool],
    ) -> None:
        self.queue: asyncio.Queue[str] = asyncio.Queue()
        self._config = config
        self._playback = playback
        self._caller_talking = caller_talking
        self._spoke_at = 0.0  # the brain's latest text
        self._filler_at = 0.0  # the latest filler queued
        self._said = 0  # fillers queued in the current wait
        self._slow_tools = 0  # slow tools running
        self._slow_since = 0.0
        self._changed = asyncio.Event()

    # --- what the reply reports ------------------------------------------------------
    def brain_spoke(self) -> None:
        """The brain produced text: the wait is over (the next one may have its filler)."""
        self._spoke_at = time.monotonic()
        self._said = 0
        self._changed.set()

    def slow_tool_started(self) -> None:
        """A tool that deserves a filler started."""
        if self._slow_tools == 0:
            self._slow_since = time.monotonic()
        self._slow_tools += 1
        self._changed.set()

    def slow_tool_finished(self) -> None:
        """A slow tool returned."""
        self._slow_tools -= 1
        self._changed.set()

    # --- the watcher -----------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def watching(self) -> AsyncIterator[None]:
        """Queue fillers while the block runs (the block reads the brain's stream)."""
        watcher = asyncio.create_task(self._watch(), name=f"fillers-{self._playback.reply_id}")
        try:
            yield
        finally:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)

    async def _watch(self) -> None:
        while True:
            line, wake_in = self.due(time.monotonic())
            if line is not None:
                self._said += 1
                self._filler_at = time.monotonic()
                self.queue.put_nowait(line)
                continue
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wake_in):
                    await self._changed.wait()

    def due(self, now: float) -> tuple[str | None, float | None]:
        """The filler to queue at ``now``, or else how long until one may be due (None:
        not before something changes)."""
        quiet = self._playback.quiet_since
        if quiet is None or self._caller_talking():
            return None, POLL_S
        lines = self._config.think_filler_lines
        since = max(quiet, self._spoke_at, self._filler_at)
        line: str | None = None
        if self._said == 0 and self._slow_tools:
            line, after = self._config.filler_line, self._config.filler_after_s
            since = max(since, self._slow_since)
        elif self._said == 0 and lines and self._config.think_filler_after_s is not None:
            line, after = lines[0], self._config.think_filler_after_s
        elif self._said == 1 and len(lines) > 1:
            line, after = lines[1], self._config.think_filler_again_s
        if line is None:
            return None, None
        wait = since + after - now
        return (line, None) if wait <= 0 else (None, wait)
