"""The front-desk tools as the Call's ToolExecutor: each tool call fenced to its reply, and
what a reply's tools asked for settled when the reply ends."""

from __future__ import annotations

import logging
from collections.abc import Callable

from frontdesk.brain.base import ToolCall, ToolResult
from frontdesk.brain.tools import ToolRegistry, ToolRunner
from frontdesk.business.environment import FrontDeskEnv
from frontdesk.business.reply_effects import ReplyEnd, Transfer, on_behalf_of

log = logging.getLogger(__name__)


class FrontDeskTools:
    """The ToolExecutor a Call uses: the front-desk tools behind the fenced runner."""

    def __init__(self, registry: ToolRegistry, runner: ToolRunner, env: FrontDeskEnv) -> None:
        self.registry = registry
        self.runner = runner
        self.env = env

    async def run(
        self, call: ToolCall, reply_id: str, reply_live: Callable[[], bool]
    ) -> ToolResult:
        """Run one tool call for reply ``reply_id``."""
        with on_behalf_of(reply_id):
            return await self.runner.run(call, reply_id, reply_live)

    def is_slow(self, name: str) -> bool:
        """Whether the tool deserves a spoken filler while it runs."""
        return name in self.registry and self.registry.get(name).slow

    async def settle(self, reply_id: str, end: ReplyEnd) -> list[tuple[str, str]]:
        """Reply ``reply_id`` ended as ``end``: write the outcomes that stand and return the
        actions to perform, as ("transfer", number) / ("hang_up", reason)."""
        actions, notes = self.env.effects.settle(reply_id, end)
        for note in notes:
            try:
                await self.env.write_outcome(note)
            except Exception:
                # The record must not take the live call down: log it and go on.
                log.exception("call %s: could not write outcome %s", self.env.call_id, note)
        return [
            ("transfer", action.number)
            if isinstance(action, Transfer)
            else ("hang_up", action.reason)
            for action in actions
        ]

    async def drain(self) -> None:
        """Wait for tools still running (they always complete)."""
        await self.runner.drain()
