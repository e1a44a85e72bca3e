"""The Brain protocol: a caller's turn in, a stream of text deltas out.

Tool calls happen inside the stream: the brain never executes a tool itself, it awaits
``context.run_tool``,
which the Call implements. That keeps every tool call tied to one reply, so the Call can
fence it (a discarded reply cannot fire one; one already running completes and is recorded)
and speak a filler when it is slow.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol


@dataclass(frozen=True, slots=True)
class Message:
    """One entry of the conversation history: only what was really said and heard."""

    role: Literal["agent", "caller", "tool"]
    text: str
    interrupted: bool = False
    name: str | None = None  # tool name for role "tool"


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A request to run a tool, made by one reply."""

    name: str
    arguments: dict[str, Any]
    call_id: str = ""


@dataclass(frozen=True, slots=True)
class ToolResult:
    """What a tool returned (``ok`` false: ``error`` says why, in words for the brain)."""

    name: str
    ok: bool
    data: Any = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class TextDelta:
    """A piece of the reply text, to be spoken."""

    text: str


@dataclass(frozen=True, slots=True)
class EndCall:
    """The brain decided the call is over after the current reply is spoken."""

    reason: str = "completed"


BrainEvent = TextDelta | EndCall


@dataclass(slots=True)
class TurnContext:
    """Everything a brain needs to answer one caller turn."""

    call_id: str
    caller_number: str | None
    history: list[Message]
    run_tool: Callable[[ToolCall], Awaitable[ToolResult]]
    dtmf: str = ""  # digits pressed since the last turn
    metadata: dict[str, Any] = field(default_factory=dict)


class Brain(Protocol):
    """Decides what the agent says and does."""

    def greeting(self) -> str:
        """The first line of the call."""
        ...

    def respond(self, text: str, context: TurnContext) -> AsyncIterator[BrainEvent]:
        """React to the caller's turn ``text``; tool calls go through ``context.run_tool``."""
        ...

    def expecting(self) -> str:
        """What the next caller turn should contain, for endpointing: "open", "yes_no",
        "phone", "digits", "email", "name", "date"."""
        ...
