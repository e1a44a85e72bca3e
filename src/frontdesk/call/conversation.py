"""What the Call's parts share about one conversation: where it is and what was said."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from frontdesk.brain.base import Message


class State(Enum):
    """Where the conversation is."""

    LISTENING = "listening"
    THINKING = "thinking"
    SPEAKING = "speaking"
    ENDED = "ended"


@dataclass(slots=True)
class Conversation:
    """The state of one call that both the event loop and the replies read and change."""

    call_id: str
    state: State = State.LISTENING
    history: list[Message] = field(default_factory=list)
    """Only what was really said and heard, in order."""
    audio_now: float = 0.0
    """Audio time of the newest caller frame: the call's clock."""
    last_activity: float = 0.0
    """Audio time of the last caller speech or agent reply (the silence watchdog's start)."""
    dtmf: str = ""
    """Keys pressed since the brain last heard the caller."""
