"""The conversation as chat-completion messages, for each request of the LLM brain.

System prompt (the business's facts, then the per-call state), then a window of at most
``max_history`` messages of the conversation, with the tool exchanges of earlier turns put
back after the caller turn that caused them.

Each request is built to begin with the previous one, so servers that cache the prompt
prefix (llama.cpp, vLLM, OpenAI) read only the new turn: the per-call state changes rarely
(the part of the day, and what the call established only once the turns that established it
are out of the window), and the window moves in jumps (down to about half its size) rather
than one message a turn.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from frontdesk.brain.base import Message, ToolResult
from frontdesk.brain.openai_stream import StreamedToolCall
from frontdesk.brain.profile import AgentProfile
from frontdesk.brain.prompt import business_facts, call_state


class ChatHistory:
    """One call's conversation as the model is shown it."""

    def __init__(self, profile: AgentProfile, max_history: int, separate_state: bool) -> None:
        self.profile = profile
        self.max_history = max_history
        self.separate_state = separate_state
        """The per-call state as a second system message (kept apart from the static part,
        for the prompt cache), or appended to the first for endpoints allowing only one."""
        self._exchanges: list[tuple[str, list[dict[str, Any]]]] = []
        self._window_start = 0

    @property
    def turns(self) -> int:
        """Caller turns answered so far (attempts included)."""
        return len(self._exchanges)

    def begin_turn(self, caller_text: str) -> list[dict[str, Any]]:
        """The list this turn's tool exchange goes into (kept for later requests)."""
        exchange: list[dict[str, Any]] = []
        self._exchanges.append((caller_text, exchange))
        return exchange

    def messages(
        self,
        caller_text: str,
        history: Sequence[Message],
        now: datetime,
        known: Sequence[str] = (),
    ) -> list[dict[str, Any]]:
        """The request's messages for the turn ``caller_text`` (the newest of ``history``,
        added if the history does not end with it); ``known`` is restated in the system
        prompt once the window has dropped anything."""
        talk = [m for m in history if m.role in ("caller", "agent")]
        if not any(m.role == "caller" and m.text == caller_text for m in talk[-2:]):
            talk.append(Message("caller", caller_text))
        self._window_start = window_start(talk, self._window_start, self.max_history)
        kept = talk[self._window_start :]
        state = call_state(self.profile, now, known if self._window_start else ())
        facts = business_facts(self.profile)
        messages: list[dict[str, Any]] = (
            [{"role": "system", "content": facts}, {"role": "system", "content": state}]
            if self.separate_state
            else [{"role": "system", "content": f"{facts}\n\n{state}"}]
        )
        pending = list(self._exchanges)
        for index, message in enumerate(kept):
            if message.role == "agent":
                text = message.text + (" ..." if message.interrupted else "")
                messages.append({"role": "assistant", "content": text})
                continue
            messages.append({"role": "user", "content": message.text})
            last = index == len(kept) - 1
            match = next((i for i, (said, _) in enumerate(pending) if said == message.text), None)
            if match is not None and not last:
                messages += pending[match][1]
                del pending[: match + 1]
        return messages


def window_start(talk: Sequence[Message], start: int, size: int) -> int:
    """Where the window over ``talk`` begins: ``start`` while at most ``size`` messages
    follow it, else moved on to leave about half of ``size``, at a caller message."""
    start = min(start, max(0, len(talk) - 1))
    if len(talk) - start <= size:
        return start
    start = len(talk) - max(2, size // 2)
    while start > 0 and talk[start].role != "caller":
        start -= 1
    return start


def assistant_tool_message(calls: Sequence[StreamedToolCall]) -> dict[str, Any]:
    """The assistant message that made ``calls``."""
    # No "content" key at all: OpenAI allows null there, but stricter servers (llama-cpp-
    # python's request schema) accept only a string or nothing.
    return {
        "role": "assistant",
        "tool_calls": [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments or "{}"},
            }
            for call in calls
        ],
    }


def tool_message(call: StreamedToolCall, result: ToolResult) -> dict[str, Any]:
    """A tool's result for the model: ``{"ok": true, "result": ...}`` or the error."""
    body: dict[str, Any] = {"ok": result.ok}
    if result.ok:
        body["result"] = result.data
    else:
        body["error"] = result.error
    return {"role": "tool", "tool_call_id": call.id, "content": json.dumps(body, default=str)}
