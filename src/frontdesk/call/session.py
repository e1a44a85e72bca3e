"""The Call: one conversation, from the first word to the hang-up.

Transport events feed the Listener; a closed turn starts a reply task (brain -> voice ->
playback). A caller who talks over the agent suspends the reply's audio at once; a
backchannel lets it resume, anything else cancels it and only the heard words go into the
history. Tool calls run through the ToolExecutor, which fences them to their reply. The
call record is written as the call goes, and always finished, however the call ends.

The Call knows only protocols: any transport, recognizer, voice, brain or tool set.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

from frontdesk.brain.base import (
    Brain,
    Message,
    ToolCall,
    ToolResult,
    TurnContext,
)
from frontdesk.call.backchannel import is_backchannel
from frontdesk.call.contracts import (
    CallConfig,
    CallRecorder,
    CallResult,
    SpeechOutput,
    ToolExecutor,
)
from frontdesk.call.listener import Listener, PauseTranscript, SpeechOnset, Turn
from frontdesk.call.playback import ReplyPlayback
from frontdesk.call.reply_text import spliced_text
from frontdesk.call.timings import TurnTimings
from frontdesk.transports.base import AudioIn, CallEnded, DtmfIn, MarkPlayed, Transport

log = logging.getLogger(__name__)


class State(Enum):
    """Where the conversation is."""

    LISTENING = "listening"
    THINKING = "thinking"
    SPEAKING = "speaking"
    ENDED = "ended"


@dataclass(slots=True)
class _Reply:
    id: str
    playback: ReplyPlayback
    timings: TurnTimings | None
    turn_id: int | None
    task: asyncio.Task[None] | None = None
    caller_text: str = ""
    caller_started: float = 0.0
    end_call: str | None = None
    live: bool = True
    barge_onset: float | None = None  # audio time of a possible barge-in


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
        self.state = State.LISTENING
        self.history: list[Message] = []
        self.turn_timings: list[TurnTimings] = []
        self.barge_ins: list[float] = []
        self._reply: _Reply | None = None
        self._reply_ids = itertools.count()
        self._dtmf = ""
        self._dtmf_at: float | None = None
        self._last_activity = 0.0
        self._prompted_silence = False
        self._ended_by_caller = False
        self._audio_now = 0.0

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
        try:
            self._start_reply(None, fixed_line=self.brain.greeting())
            async for event in self.transport.events():
                if isinstance(event, AudioIn):
                    await self._on_audio(event)
                elif isinstance(event, MarkPlayed):
                    if self._reply is not None:
                        self._reply.playback.on_mark(event.name)
                elif isinstance(event, DtmfIn):
                    self._dtmf += event.digit
                    self._dtmf_at = self._audio_now
                elif isinstance(event, CallEnded):
                    self._ended_by_caller = self.state is not State.ENDED
                    break
                if self.state is State.ENDED:
                    break
            outcome = "dropped" if self._ended_by_caller else "answered"
        finally:
            self.state = State.ENDED
            # Each step on its own: whatever fails, the record is still finished.
            for step in (
                self._abandon_reply,
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
        self._audio_now = frame.end
        for item in await self.listener.process(frame, event.received_at):
            if isinstance(item, SpeechOnset):
                self._last_activity = item.at
                self._on_speech_onset(item)
            elif isinstance(item, PauseTranscript):
                self._on_pause_transcript(item)
            elif isinstance(item, Turn):
                await self._on_turn(item)
        await self._check_barge_in(frame.end)
        await self._check_dtmf_turn()
        await self._check_silence()

    def _on_speech_onset(self, onset: SpeechOnset) -> None:
        reply = self._reply
        if reply is not None and reply.live and self.config.barge_in and reply.barge_onset is None:
            reply.barge_onset = onset.at

    async def _check_barge_in(self, now: float) -> None:
        reply = self._reply
        if reply is None or reply.barge_onset is None or reply.playback.suspended:
            return
        if not self.listener.speaking:
            reply.barge_onset = None  # too short to be anything: a click, a cough
            return
        if self.listener.speech_run_seconds(now) < self.config.barge_in_min_s:
            return
        await reply.playback.suspend()
        stopped = time.monotonic()
        self.barge_ins.append(stopped - self.listener.to_monotonic(reply.barge_onset))
        self._emit("barge_in", reaction_ms=round(self.barge_ins[-1] * 1000))

    def _on_pause_transcript(self, pause: PauseTranscript) -> None:
        # A suspended reply resumes as soon as the interruption reads as a backchannel,
        # without waiting for the endpointing window.
        reply = self._reply
        if reply is not None and reply.playback.suspended and is_backchannel(pause.text):
            self._resume_after_backchannel(reply)

    def _resume_after_backchannel(self, reply: _Reply) -> None:
        self._emit("backchannel")
        reply.barge_onset = None
        reply.playback.resume()
        self.barge_ins.pop()
        self.listener.discard_utterance()

    async def _on_turn(self, turn: Turn) -> None:
        reply = self._reply
        if reply is not None and reply.live:
            if reply.playback.suspended and is_backchannel(turn.text):
                self._resume_after_backchannel(reply)
                return
            if reply.barge_onset is None and not reply.playback.suspended:
                # Talking while the agent is still going, but never long enough to stop it.
                return
        if not turn.text.strip() and not self._dtmf:
            if reply is not None and reply.playback.suspended:
                self._resume_after_backchannel(reply)
            return  # noise: nothing was said
        unheard = await self._interrupt_reply()
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
        if (
            self._dtmf
            and self._dtmf_at is not None
            and not self.listener.in_utterance
            and self._audio_now - self._dtmf_at >= self.config.dtmf_gap_s
            and (self._reply is None or not self._reply.live)
        ):
            now = time.monotonic()
            self._dtmf_at = None
            await self._caller_turn(
                "", self._audio_now, self._audio_now, TurnTimings(now, now, now)
            )

    async def _check_silence(self) -> None:
        if self._reply is not None or self.listener.in_utterance:
            self._last_activity = self._audio_now
            return
        idle = self._audio_now - self._last_activity
        if idle >= 2 * self.config.max_silence_s and self._prompted_silence:
            self._start_reply(None, fixed_line=self.config.goodbye_line, end_call="silence")
        elif idle >= self.config.max_silence_s and not self._prompted_silence:
            self._prompted_silence = True
            self._start_reply(None, fixed_line=self.config.still_there_line)

    # --- turns and replies -----------------------------------------------------------
    async def _caller_turn(
        self,
        text: str,
        started: float,
        ended: float,
        timings: TurnTimings,
        turn_id: int | None = None,
    ) -> None:
        self._prompted_silence = False
        self._last_activity = self._audio_now
        if text:
            self.history.append(Message("caller", text))
        self._emit("caller", text=text, dtmf=self._dtmf)
        recorded = text or f"[keys {self._dtmf}]"
        if turn_id is None:
            turn_id = await self.recorder.add_turn(
                self.call_id, "caller", recorded, started, ended, timings=timings.as_ms()
            )
        else:
            await self.recorder.update_turn(
                turn_id, text=recorded, ended_at=ended, timings=timings.as_ms()
            )
        self.turn_timings.append(timings)
        self._start_reply(timings, caller_text=text, caller_started=started, turn_id=turn_id)

    def _start_reply(
        self,
        timings: TurnTimings | None,
        *,
        caller_text: str = "",
        caller_started: float = 0.0,
        fixed_line: str | None = None,
        turn_id: int | None = None,
        end_call: str | None = None,
    ) -> None:
        reply_id = f"r{next(self._reply_ids)}"
        playback = ReplyPlayback(
            self.transport, reply_id, lambda at: self._on_first_audio(reply, at)
        )
        reply = _Reply(
            reply_id,
            playback,
            timings,
            turn_id,
            caller_text=caller_text,
            caller_started=caller_started,
            end_call=end_call,
        )
        self._reply = reply
        self.state = State.THINKING
        reply.playback.start()
        reply.task = asyncio.create_task(self._run_reply(reply, fixed_line), name=reply_id)

    async def _run_reply(self, reply: _Reply, fixed_line: str | None) -> None:
        try:
            if fixed_line is not None:
                await self._play(reply, self.voice.say(fixed_line))
            else:
                await self._play(reply, self.voice.speak(self._brain_text(reply)))
            reply.playback.input_done()
            await reply.playback.wait_played()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("reply %s failed", reply.id)
            await self._recover(reply)
        await self._reply_done(reply)

    async def _recover(self, reply: _Reply) -> None:
        # Never dead air: say the error line on whatever voice still works.
        with contextlib.suppress(Exception):
            await self._play(reply, self.voice.say(self.config.error_line))
        reply.playback.input_done()
        with contextlib.suppress(Exception):
            await reply.playback.wait_played()

    async def _play(self, reply: _Reply, frames: AsyncIterator[Any]) -> None:
        async with contextlib.aclosing(frames):  # stop the voice now, not at finalization
            await self._add_frames(reply, frames)

    async def _add_frames(self, reply: _Reply, frames: AsyncIterator[Any]) -> None:
        async for spoken in frames:
            timings = reply.timings
            if timings is not None and timings.tts_first_audio is None:
                timings.tts_first_audio = time.monotonic()
                utterance = getattr(self.voice, "last", None)
                timings.first_sentence = getattr(utterance, "first_chunk_ready", None)
            reply.playback.add(spoken.frame, spoken.chunk_key, spoken.chunk_text, spoken.chunk_end)

    def _on_first_audio(self, reply: _Reply, at: float) -> None:
        if self._reply is reply and self.state is State.THINKING:
            self.state = State.SPEAKING
        if reply.timings is not None and reply.timings.agent_audio_out is None:
            reply.timings.agent_audio_out = at
        self._emit("agent_audio", reply=reply.id)

    async def _brain_text(self, reply: _Reply) -> AsyncIterator[str]:
        """The brain's reply text, with a filler line spliced in when a slow tool runs."""
        fillers: asyncio.Queue[str] = asyncio.Queue()
        context = TurnContext(
            call_id=self.call_id,
            caller_number=self.transport.caller_number,
            history=list(self.history),
            run_tool=lambda call: self._run_tool(reply, call, fillers),
            dtmf=self._dtmf,
        )
        self._dtmf = ""

        def first_text() -> None:
            if reply.timings is not None and reply.timings.llm_first_token is None:
                reply.timings.llm_first_token = time.monotonic()

        def end_call(reason: str) -> None:
            reply.end_call = reason

        events = self.brain.respond(reply.caller_text, context)
        async for text in spliced_text(events, fillers, first_text, end_call):
            yield text

    async def _run_tool(
        self, reply: _Reply, call: ToolCall, fillers: asyncio.Queue[str]
    ) -> ToolResult:
        task = asyncio.ensure_future(self.tools.run(call, reply.id, lambda: reply.live))
        if self.tools.is_slow(call.name):
            done, _ = await asyncio.wait({task}, timeout=self.config.filler_after_s)
            if not done:
                fillers.put_nowait(self.config.filler_line)
        result = await task
        self._emit(
            "tool",
            name=call.name,
            arguments=call.arguments,
            ok=result.ok,
            data=result.data,
            error=result.error,
        )
        return result

    async def _reply_done(self, reply: _Reply) -> None:
        """The reply played to the end: record it and act on what the tools asked for."""
        if not reply.live:
            return
        reply.live = False
        text = reply.playback.full_text
        if text:
            self.history.append(Message("agent", text))
            self._emit("agent", text=text, interrupted=False)
        await self._record_agent_turn(reply, text, interrupted=False)
        if self._reply is reply:
            self._reply = None
            self.state = State.LISTENING
        self._last_activity = self._audio_now
        for action, argument in self.tools.take_actions():
            if action == "transfer":
                self.state = State.ENDED
                await self.transport.transfer(argument)
            elif action == "hang_up":
                reply.end_call = reply.end_call or argument
        if reply.end_call and self.state is not State.ENDED:
            self.state = State.ENDED
            await self.transport.hang_up()

    async def _record_agent_turn(self, reply: _Reply, text: str, interrupted: bool) -> None:
        played = reply.playback.played_seconds
        start = reply.playback.first_audio_at
        started = self._audio_now if start is None else self.listener.to_audio(start)
        await self.recorder.add_turn(
            self.call_id, "agent", text, started, started + played, interrupted=interrupted
        )
        if reply.turn_id is not None and reply.timings is not None:
            await self.recorder.update_turn(reply.turn_id, timings=reply.timings.as_ms())

    async def _interrupt_reply(self) -> _Reply | None:
        """Cancel the live reply; keep only what was heard. Returns the reply if the caller
        heard none of it (so its caller turn and the new one can merge)."""
        reply = self._reply
        if reply is None or not reply.live:
            return None
        reply.live = False
        await self._cancel(reply)
        await reply.playback.stop()
        self._reply = None
        self.state = State.LISTENING
        heard = reply.playback.heard_text()
        self.tools.take_actions()  # a cancelled reply's call control never happens
        if not heard:
            return reply if reply.playback.played_seconds == 0 else None
        self.history.append(Message("agent", heard, interrupted=True))
        self._emit("agent", text=heard, interrupted=True, unheard=reply.playback.full_text)
        await self._record_agent_turn(reply, heard, interrupted=True)
        return None

    async def _abandon_reply(self) -> None:
        reply = self._reply
        if reply is None:
            return
        if reply.live:
            reply.live = False
            await self._cancel(reply)
            await reply.playback.stop()
            heard = reply.playback.heard_text()
            if heard:
                self.history.append(Message("agent", heard, interrupted=True))
                with contextlib.suppress(Exception):
                    await self._record_agent_turn(reply, heard, interrupted=True)
        self._reply = None

    @staticmethod
    async def _cancel(reply: _Reply) -> None:
        task = reply.task
        if task is not None and task is not asyncio.current_task() and not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


async def _maybe_close(transport: Transport) -> None:
    close = getattr(transport, "aclose", None)
    if close is not None:
        await close()
