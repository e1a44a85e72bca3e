"""The agent's side of a call: one reply at a time, from the brain's text to the audio the
caller heard, and what happens when it ends.

A reply is played to the end (recorded whole, then the call-control actions its tools asked
for are performed), interrupted by the caller (only the heard words are recorded, and its
actions are dropped), or abandoned because the call ended under it. While the brain works,
filler lines cover the silence (:mod:`frontdesk.call.fillers`); if anything on the way fails,
the caller hears the error line instead of dead air.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from frontdesk.brain.base import Brain, Message, ToolCall, ToolResult, TurnContext
from frontdesk.call.contracts import CallConfig, CallRecorder, SpeechOutput, ToolExecutor
from frontdesk.call.conversation import Conversation, State
from frontdesk.call.fillers import Fillers
from frontdesk.call.listener import Listener
from frontdesk.call.playback import ReplyPlayback
from frontdesk.call.reply_text import spliced_text
from frontdesk.call.timings import TurnTimings
from frontdesk.transports.base import Transport

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Reply:
    """One agent reply: its playback, its task, and the caller turn it answers."""

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


class Replies:
    """Starts, plays and ends the agent's replies; at most one is current."""

    def __init__(
        self,
        conversation: Conversation,
        transport: Transport,
        listener: Listener,
        brain: Brain,
        voice: SpeechOutput,
        tools: ToolExecutor,
        recorder: CallRecorder,
        config: CallConfig,
        emit: Callable[..., None],
    ) -> None:
        self.conversation = conversation
        self.transport = transport
        self.listener = listener
        self.brain = brain
        self.voice = voice
        self.tools = tools
        self.recorder = recorder
        self.config = config
        self.emit = emit
        self.current: Reply | None = None
        self._ids = itertools.count()
        self._call_control: asyncio.Task[None] | None = None
        """The reply task performing a transfer or hang-up the call is ending with."""

    # --- starting and playing --------------------------------------------------------
    def start(
        self,
        timings: TurnTimings | None,
        *,
        caller_text: str = "",
        caller_started: float = 0.0,
        fixed_line: str | None = None,
        turn_id: int | None = None,
        end_call: str | None = None,
    ) -> None:
        """Start a reply: ``fixed_line`` as is, or the brain's answer to ``caller_text``;
        ``end_call`` hangs up once it has been heard."""
        reply_id = f"r{next(self._ids)}"
        playback = ReplyPlayback(
            self.transport,
            reply_id,
            lambda at: self._on_first_audio(reply, at),
            quiet_since=timings.turn_closed if timings is not None else None,
        )
        reply = Reply(
            reply_id,
            playback,
            timings,
            turn_id,
            caller_text=caller_text,
            caller_started=caller_started,
            end_call=end_call,
        )
        self.current = reply
        self.conversation.state = State.THINKING
        reply.playback.start()
        reply.task = asyncio.create_task(self._run(reply, fixed_line), name=reply_id)

    async def _run(self, reply: Reply, fixed_line: str | None) -> None:
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
        await self._done(reply)

    async def _recover(self, reply: Reply) -> None:
        # Never dead air: say the error line on whatever voice still works.
        with contextlib.suppress(Exception):
            await self._play(reply, self.voice.say(self.config.error_line))
        reply.playback.input_done()
        with contextlib.suppress(Exception):
            await reply.playback.wait_played()

    async def _play(self, reply: Reply, frames: AsyncIterator[Any]) -> None:
        async with contextlib.aclosing(frames):  # stop the voice now, not at finalization
            await self._add_frames(reply, frames)

    async def _add_frames(self, reply: Reply, frames: AsyncIterator[Any]) -> None:
        async for spoken in frames:
            timings = reply.timings
            if timings is not None and timings.tts_first_audio is None:
                timings.tts_first_audio = time.monotonic()
                utterance = getattr(self.voice, "last", None)
                timings.first_sentence = getattr(utterance, "first_chunk_ready", None)
            reply.playback.add(spoken.frame, spoken.chunk_key, spoken.chunk_text, spoken.chunk_end)

    def _on_first_audio(self, reply: Reply, at: float) -> None:
        if self.current is reply and self.conversation.state is State.THINKING:
            self.conversation.state = State.SPEAKING
        if reply.timings is not None and reply.timings.agent_audio_out is None:
            reply.timings.agent_audio_out = at
        self.emit("agent_audio", reply=reply.id)

    # --- the brain's text ------------------------------------------------------------
    async def _brain_text(self, reply: Reply) -> AsyncIterator[str]:
        """The brain's reply text, with filler lines spliced in while the caller waits."""
        conversation = self.conversation
        fillers = Fillers(self.config, reply.playback, lambda: self.listener.speaking)
        context = TurnContext(
            call_id=conversation.call_id,
            caller_number=self.transport.caller_number,
            history=list(conversation.history),
            run_tool=lambda call: self._run_tool(reply, call, fillers),
            dtmf=conversation.dtmf,
        )
        conversation.dtmf = ""

        def brain_spoke() -> None:
            if reply.timings is not None and reply.timings.llm_first_token is None:
                reply.timings.llm_first_token = time.monotonic()
            fillers.brain_spoke()

        def end_call(reason: str) -> None:
            reply.end_call = reason

        events = self.brain.respond(reply.caller_text, context)
        async with fillers.watching():
            async for text in spliced_text(events, fillers.queue, brain_spoke, end_call):
                yield text

    async def _run_tool(self, reply: Reply, call: ToolCall, fillers: Fillers) -> ToolResult:
        slow = self.tools.is_slow(call.name)
        if slow:
            fillers.slow_tool_started()
        try:
            result = await self.tools.run(call, reply.id, lambda: reply.live)
        finally:
            if slow:
                fillers.slow_tool_finished()
        self.emit(
            "tool",
            name=call.name,
            arguments=call.arguments,
            ok=result.ok,
            data=result.data,
            error=result.error,
        )
        return result

    # --- how a reply ends ------------------------------------------------------------
    async def _done(self, reply: Reply) -> None:
        """The reply played to the end: record it and act on what its tools asked for."""
        if not reply.live:
            return
        reply.live = False
        conversation = self.conversation
        text = reply.playback.full_text
        if text:
            conversation.history.append(Message("agent", text))
            self.emit("agent", text=text, interrupted=False)
        await self._record_agent_turn(reply, text, interrupted=False)
        if self.current is reply:
            self.current = None
            conversation.state = State.LISTENING
        conversation.last_activity = conversation.audio_now
        actions = await self.tools.settle(reply.id, "heard")
        if actions or reply.end_call:
            # The call loop stops at State.ENDED and closes the transport; it must wait for
            # this first, or it hangs up on a caller whose bridge is still ringing.
            self._call_control = reply.task
        for action, argument in actions:
            if action == "transfer":
                conversation.state = State.ENDED
                await self.transport.transfer(argument)
            elif action == "hang_up":
                reply.end_call = reply.end_call or argument
        if reply.end_call and conversation.state is not State.ENDED:
            conversation.state = State.ENDED
            await self.transport.hang_up()

    async def _record_agent_turn(self, reply: Reply, text: str, interrupted: bool) -> None:
        played = reply.playback.played_seconds
        start = reply.playback.first_audio_at
        started = self.conversation.audio_now if start is None else self.listener.to_audio(start)
        await self.recorder.add_turn(
            self.conversation.call_id,
            "agent",
            text,
            started,
            started + played,
            interrupted=interrupted,
        )
        if reply.turn_id is not None and reply.timings is not None:
            await self.recorder.update_turn(reply.turn_id, timings=reply.timings.as_ms())

    async def interrupt(self) -> Reply | None:
        """Cancel the live reply; keep only what was heard. Returns the reply if the caller
        heard none of it (so its caller turn and the new one can merge)."""
        reply = self.current
        if reply is None or not reply.live:
            return None
        reply.live = False
        await self._cancel(reply)
        await reply.playback.stop()
        self.current = None
        self.conversation.state = State.LISTENING
        heard = reply.playback.heard_text()
        # The caller cut in and carries on: a transfer or hang-up it asked for never happens.
        await self.tools.settle(reply.id, "interrupted")
        if not heard:
            return reply if reply.playback.played_seconds == 0 else None
        self.conversation.history.append(Message("agent", heard, interrupted=True))
        self.emit("agent", text=heard, interrupted=True, unheard=reply.playback.full_text)
        await self._record_agent_turn(reply, heard, interrupted=True)
        return None

    async def abandon(self) -> None:
        """The call is over: let a transfer or hang-up under way finish, then stop the
        current reply, keeping what was heard of it."""
        control = self._call_control
        if control is not None and control is not asyncio.current_task():
            await asyncio.gather(asyncio.shield(control), return_exceptions=True)
        reply = self.current
        if reply is None:
            return
        self.current = None
        if not reply.live:
            return
        reply.live = False
        await self._cancel(reply)
        await reply.playback.stop()
        heard = reply.playback.heard_text()
        if heard:
            self.conversation.history.append(Message("agent", heard, interrupted=True))
            with contextlib.suppress(Exception):
                await self._record_agent_turn(reply, heard, interrupted=True)
        await self.tools.settle(reply.id, "call_over")

    @staticmethod
    async def _cancel(reply: Reply) -> None:
        task = reply.task
        if task is not None and task is not asyncio.current_task() and not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
