"""The Call: one conversation, from the first word to the hang-up.

Transport events feed the Listener; a closed turn starts a reply (``Replies``: brain ->
voice -> playback). A caller who talks over the agent suspends the reply's audio at once
(``BargeIn``); a backchannel lets it resume, anything else interrupts it and only the heard
words go into the history. Tool calls run through the ToolExecutor, which fences them to
their reply. The call record is written as the call goes, and always finished, however the
call ends.

The Call knows only protocols: any transport, recognizer, voice, brain or tool set.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from frontdesk.brain.base import Brain, Message
from frontdesk.call.backchannel import is_backchannel
from frontdesk.call.barge_in import BargeIn
from frontdesk.call.contracts import (
    CallConfig,
    CallRecorder,
    CallResult,
    SpeechOutput,
    ToolExecutor,
)
from frontdesk.call.conversation import Conversation, State
from frontdesk.call.listener import Listener, PauseTranscript, SpeechOnset, Turn
from frontdesk.call.replies import Replies
from frontdesk.call.timings import TurnTimings
from frontdesk.transports.base import AudioIn, CallEnded, DtmfIn, MarkPlayed, Transport

__all__ = ["Call", "State"]

log = logging.getLogger(__name__)


class Call:
    """One conversation between a caller (behind a transport) and the agent."""

    def __init__(
        self,
        transport: Transport,
        listener: Listener,
        brain: Brain,
        voice: SpeechOutput,
        tools: ToolExecutor,
        recorder: CallRecorder,
        call_id: str,
        config: CallConfig | None = None,
        observer: Callable[..., None] | None = None,
    ) -> None:
        self.transport = transport
        self.observer = observer
        self.listener = listener
        self.brain = brain
        self.voice = voice
        self.tools = tools
        self.recorder = recorder
        self.config = config or CallConfig()
        self.call_id = call_id
        self.conversation = Conversation(call_id)
        self.turn_timings: list[TurnTimings] = []
        self.replies = Replies(
            self.conversation,
            transport,
            listener,
            brain,
            voice,
            tools,
            recorder,
            self.config,
            self._emit,
        )
        self.barge_in = BargeIn(listener, self.config, self._emit)
        self._dtmf_at: float | None = None
        self._prompted_silence = False
        self._ended_by_caller = False

    @property
    def state(self) -> State:
        """Where the conversation is."""
        return self.conversation.state

    @property
    def history(self) -> list[Message]:
        """What was said and heard, in order."""
        return self.conversation.history

    @property
    def barge_ins(self) -> list[float]:
        """Seconds from each barge-in's speech onset to the agent's audio being stopped."""
        return self.barge_in.reactions

    def _emit(self, kind: str, **data: Any) -> None:
        """Tell the observer (a live transcript, a dashboard) what just happened."""
        if self.observer is not None:
            try:
                self.observer(kind, **data)
            except Exception:
                log.exception("call observer failed on %s", kind)

    # --- the call ------------------------------------------------------------------
    async def run(self) -> CallResult:
        """Hold the whole conversation; returns when the call is over (record written)."""
        outcome = "failed"
        conversation = self.conversation
        try:
            self.replies.start(None, fixed_line=self.brain.greeting())
            async for event in self.transport.events():
                if isinstance(event, AudioIn):
                    await self._on_audio(event)
                elif isinstance(event, MarkPlayed):
                    if self.replies.current is not None:
                        self.replies.current.playback.on_mark(event.name)
                elif isinstance(event, DtmfIn):
                    conversation.dtmf += event.digit
                    self._dtmf_at = conversation.audio_now
                elif isinstance(event, CallEnded):
                    self._ended_by_caller = conversation.state is not State.ENDED
                    break
                if conversation.state is State.ENDED:
                    break
            outcome = "dropped" if self._ended_by_caller else "answered"
        finally:
            conversation.state = State.ENDED
            # Each step on its own: whatever fails, the record is still finished.
            for step in (
                self.replies.abandon,
                self.tools.drain,
                self.listener.aclose,
                lambda: _maybe_close(self.transport),
            ):
                try:
                    await step()
                except Exception:
                    log.exception("call %s: clean-up step failed", self.call_id)
            recording = getattr(self.transport, "recording_path", None)
            outcome = await self.recorder.finish_call(
                self.call_id, outcome, recording_path=str(recording) if recording else None
            )
        self._emit("ended", outcome=outcome)
        return CallResult(self.call_id, outcome, self.history, self.turn_timings, self.barge_ins)

    # --- caller audio --------------------------------------------------------------
    async def _on_audio(self, event: AudioIn) -> None:
        frame = event.frame
        self.conversation.audio_now = frame.end
        for item in await self.listener.process(frame, event.received_at):
            if isinstance(item, SpeechOnset):
                self.conversation.last_activity = item.at
                self.barge_in.on_speech_onset(self.replies.current, item)
            elif isinstance(item, PauseTranscript):
                self.barge_in.on_pause_transcript(self.replies.current, item)
            elif isinstance(item, Turn):
                await self._on_turn(item)
        await self.barge_in.check(self.replies.current, frame.end)
        await self._check_dtmf_turn()
        await self._check_silence()

    async def _on_turn(self, turn: Turn) -> None:
        reply = self.replies.current
        if reply is not None and reply.live:
            if reply.playback.suspended and is_backchannel(turn.text):
                self.barge_in.resume(reply)
                return
            if reply.barge_onset is None and not reply.playback.suspended:
                # Talking while the agent is still going, but never long enough to stop it.
                return
        if not turn.text.strip() and not self.conversation.dtmf:
            if reply is not None and reply.playback.suspended:
                self.barge_in.resume(reply)
            return  # noise: nothing was said
        unheard = await self.replies.interrupt()
        if unheard is not None and unheard.caller_text:
            # The caller was still going when their last turn closed and the agent had not
            # said a word: it is one turn. Rewrite the earlier one instead of adding another.
            if self.history and self.history[-1].role == "caller":
                self.history.pop()
            if unheard.timings in self.turn_timings:
                self.turn_timings.remove(unheard.timings)
            text = f"{unheard.caller_text} {turn.text}"
            await self._caller_turn(
                text, unheard.caller_started, turn.ended, turn.timings, turn_id=unheard.turn_id
            )
            return
        await self._caller_turn(turn.text, turn.started, turn.ended, turn.timings)

    async def _check_dtmf_turn(self) -> None:
        now = self.conversation.audio_now
        reply = self.replies.current
        if (
            self.conversation.dtmf
            and self._dtmf_at is not None
            and not self.listener.in_utterance
            and now - self._dtmf_at >= self.config.dtmf_gap_s
            and (reply is None or not reply.live)
        ):
            clock = time.monotonic()
            self._dtmf_at = None
            await self._caller_turn("", now, now, TurnTimings(clock, clock, clock))

    async def _check_silence(self) -> None:
        conversation = self.conversation
        if self.replies.current is not None or self.listener.in_utterance:
            conversation.last_activity = conversation.audio_now
            return
        idle = conversation.audio_now - conversation.last_activity
        if idle >= 2 * self.config.max_silence_s and self._prompted_silence:
            self.replies.start(None, fixed_line=self.config.goodbye_line, end_call="silence")
        elif idle >= self.config.max_silence_s and not self._prompted_silence:
            self._prompted_silence = True
            self.replies.start(None, fixed_line=self.config.still_there_line)

    # --- turns -----------------------------------------------------------------------
    async def _caller_turn(
        self,
        text: str,
        started: float,
        ended: float,
        timings: TurnTimings,
        turn_id: int | None = None,
    ) -> None:
        conversation = self.conversation
        self._prompted_silence = False
        conversation.last_activity = conversation.audio_now
        if text:
            conversation.history.append(Message("caller", text))
        self._emit("caller", text=text, dtmf=conversation.dtmf)
        recorded = text or f"[keys {conversation.dtmf}]"
        if turn_id is None:
            turn_id = await self.recorder.add_turn(
                self.call_id, "caller", recorded, started, ended, timings=timings.as_ms()
            )
        else:
            await self.recorder.update_turn(
                turn_id, text=recorded, ended_at=ended, timings=timings.as_ms()
            )
        self.turn_timings.append(timings)
        self.replies.start(timings, caller_text=text, caller_started=started, turn_id=turn_id)


async def _maybe_close(transport: Transport) -> None:
    close = getattr(transport, "aclose", None)
    if close is not None:
        await close()
