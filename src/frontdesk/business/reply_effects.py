"""What a reply's tools ask to happen once the reply has been heard, kept per reply.

A transfer or a hang-up cannot happen while the agent is still speaking, and it must not
happen at all if the caller cuts the reply short and carries on: so the tools only *ask*
(:class:`Transfer`, :class:`HangUp`), and the Call performs what a reply asked for once the
caller has heard it. The call outcome a tool logs (:class:`OutcomeNote`) is kept with its
reply too, because an outcome logged beside an ending ("escalated: transferred to a person")
is only true if the ending happens. Each reply is *settled* once, when it ends:

- heard to the end: its notes are written and its actions performed;
- interrupted (the caller carries on): its actions are dropped, and so are its notes if it
  had any action (they described that ending); a reply without one keeps its notes;
- the call ended under it (the caller hung up): its actions are dropped; its notes stand
  unless it asked for a transfer (the call did end, but nobody was transferred).

Which reply a tool works for comes from the context of the task running it
(:func:`on_behalf_of`): an asyncio task copies the context it was created in, so a tool
still running after its reply was settled is still known to be that reply's, and its late
request is dropped instead of being performed by whichever reply comes next.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Literal

log = logging.getLogger(__name__)

ReplyEnd = Literal["heard", "interrupted", "call_over"]


@dataclass(frozen=True, slots=True)
class Transfer:
    """After speaking, transfer the caller to ``number``."""

    number: str
    reason: str


@dataclass(frozen=True, slots=True)
class HangUp:
    """After speaking, end the call."""

    reason: str


CallAction = Transfer | HangUp


@dataclass(frozen=True, slots=True)
class OutcomeNote:
    """A call outcome a tool logged (``summary`` None: the outcome alone)."""

    outcome: str
    summary: str | None = None


_REPLY: contextvars.ContextVar[str | None] = contextvars.ContextVar("frontdesk_reply", default=None)


@contextmanager
def on_behalf_of(reply_id: str) -> Iterator[None]:
    """Tool runs started inside this block work for reply ``reply_id``."""
    token = _REPLY.set(reply_id)
    try:
        yield
    finally:
        _REPLY.reset(token)


@dataclass
class _ReplyLedger:
    actions: list[CallAction] = field(default_factory=list)
    notes: list[OutcomeNote] = field(default_factory=list)
    end: ReplyEnd | None = None
    asked_ending: bool = False  # a transfer or hang-up, performed or not
    asked_transfer: bool = False

    def notes_stand(self) -> bool:
        """Whether this settled reply's notes are true of the call."""
        if self.end == "interrupted":
            return not self.asked_ending
        if self.end == "call_over":
            return not self.asked_transfer
        return True


class ReplyEffects:
    """One call's requested actions and logged outcomes, per reply until it is settled.

    Outside any reply (a tool run directly, as in a script or a test) actions are kept under
    no reply and notes are to be written at once.
    """

    def __init__(self) -> None:
        self._replies: dict[str | None, _ReplyLedger] = {}

    def _ledger(self, reply_id: str | None) -> _ReplyLedger:
        return self._replies.setdefault(reply_id, _ReplyLedger())

    @property
    def pending(self) -> list[CallAction]:
        """Actions asked for by replies not yet settled, in order."""
        return [
            a for ledger in self._replies.values() if ledger.end is None for a in ledger.actions
        ]

    def ask(self, action: CallAction) -> None:
        """A tool asks for ``action`` once its reply has been heard."""
        reply_id = _REPLY.get()
        ledger = self._ledger(reply_id)
        ledger.asked_ending = True
        ledger.asked_transfer |= isinstance(action, Transfer)
        if ledger.end is not None:
            log.info("reply %s was already %s: %s dropped", reply_id, ledger.end, action)
            return
        ledger.actions.append(action)

    def note(self, note: OutcomeNote) -> bool:
        """A tool logged an outcome. Returns True when the caller must write it now (no
        reply, or its reply is settled and the note stands); otherwise it is kept for the
        settlement, or dropped."""
        reply_id = _REPLY.get()
        if reply_id is None:
            return True
        ledger = self._ledger(reply_id)
        if ledger.end is None:
            ledger.notes.append(note)
            return False
        if ledger.notes_stand():
            return True
        log.info("reply %s was already %s: outcome %s dropped", reply_id, ledger.end, note)
        return False

    def settle(self, reply_id: str, end: ReplyEnd) -> tuple[list[CallAction], list[OutcomeNote]]:
        """Reply ``reply_id`` ended as ``end``: the actions to perform and the notes to
        write now (see the module docstring)."""
        ledger = self._ledger(reply_id)
        if ledger.end is not None:
            return [], []
        ledger.end = end
        actions, notes = ledger.actions, ledger.notes
        ledger.actions, ledger.notes = [], []
        if end != "heard" and actions:
            log.info("reply %s was %s: %s dropped", reply_id, end, actions)
            actions = []
        if not ledger.notes_stand():
            if notes:
                log.info("reply %s was %s: outcome %s dropped", reply_id, end, notes)
            notes = []
        return actions, notes
