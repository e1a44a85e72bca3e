"""The Listener: caller audio in, turns out (VAD + streaming STT + endpointer).

Only the frames of an utterance reach the recognizer: a little pre-roll before the VAD's
speech start, the speech, and the pauses inside it once the caller carries on. When a pause
begins the recognizer starts decoding at once (speculatively), so when the endpointer
closes the turn the transcript is usually already there.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from dataclasses import dataclass

from frontdesk.audio import AudioFrame
from frontdesk.call.timings import TurnTimings
from frontdesk.speech.stt.base import STTStream
from frontdesk.speech.turns import Endpointer
from frontdesk.speech.vad import SpeechEnd, SpeechStart, VoiceActivityDetector

log = logging.getLogger(__name__)

PRE_ROLL_FRAMES = 10
"""200 ms kept before the VAD's speech start: the onset decision lags the real onset."""
MAX_HELD_FRAMES = 15
"""At most 300 ms of a mid-utterance pause reaches the recognizer: a long silence inside an
utterance adds nothing to the words and is what sends Whisper into repetition loops."""


@dataclass(frozen=True, slots=True)
class SpeechOnset:
    """The caller started (or resumed) speaking at audio time ``at``."""

    at: float
    resumed: bool


@dataclass(frozen=True, slots=True)
class PauseTranscript:
    """The speculative transcript of everything said up to the current pause."""

    text: str
    speech_seconds: float


@dataclass(frozen=True, slots=True)
class Turn:
    """A finished caller turn."""

    text: str
    started: float  # audio time of the first voiced audio
    ended: float  # audio time of the last voiced audio
    timings: TurnTimings
    speculative: bool

    @property
    def speech_seconds(self) -> float:
        """From first to last voiced audio."""
        return self.ended - self.started


ListenerEvent = SpeechOnset | PauseTranscript | Turn


class Listener:
    """Turns one caller's frames into :class:`ListenerEvent`s."""

    def __init__(self, vad: VoiceActivityDetector, stt: STTStream, endpointer: Endpointer) -> None:
        self.vad = vad
        self.stt = stt
        self.endpointer = endpointer
        self._pre_roll: collections.deque[AudioFrame] = collections.deque(maxlen=PRE_ROLL_FRAMES)
        self._held: list[AudioFrame] = []  # pause frames, pushed only if speech resumes
        self._in_utterance = False
        self._speaking = False
        self._utterance_start = 0.0
        self._run_start = 0.0
        self._pause_task: asyncio.Task[None] | None = None
        self._pending: list[ListenerEvent] = []
        self._clock_offset = 0.0  # monotonic minus audio time, from the newest frame

    @property
    def speaking(self) -> bool:
        """True while the VAD hears speech."""
        return self._speaking

    @property
    def in_utterance(self) -> bool:
        """True from speech start until the turn is closed or discarded."""
        return self._in_utterance

    def speech_run_seconds(self, now: float) -> float:
        """How long the current stretch of speech has lasted at audio time ``now``."""
        return now - self._run_start if self._speaking else 0.0

    def to_monotonic(self, audio_time: float) -> float:
        """Map an audio timestamp to the monotonic clock (via the newest frame's arrival)."""
        return audio_time + self._clock_offset

    def to_audio(self, monotonic: float) -> float:
        """Map a monotonic time to the audio clock (inverse of :meth:`to_monotonic`)."""
        return monotonic - self._clock_offset

    async def process(self, frame: AudioFrame, received_at: float) -> list[ListenerEvent]:
        """Feed one 16 kHz frame; returns what happened."""
        self._clock_offset = received_at - frame.end
        events, self._pending = self._pending, []
        for vad_event in self.vad.process(frame):
            if isinstance(vad_event, SpeechStart):
                events.append(await self._speech_started(vad_event.timestamp))
            elif isinstance(vad_event, SpeechEnd):
                self._speech_ended(vad_event.timestamp)
        if self._in_utterance:
            if self._speaking:
                await self.stt.push(frame)
            else:
                self._held.append(frame)
        else:
            self._pre_roll.append(frame)
        if self._in_utterance and not self._speaking and self.endpointer.should_close(frame.end):
            events.append(await self._close())
        return events

    async def _speech_started(self, at: float) -> SpeechOnset:
        self._speaking = True
        self._run_start = at
        if self._in_utterance:
            self._cancel_pause_task()
            self.endpointer.speech_started()
            for held in self._held[-MAX_HELD_FRAMES:]:
                await self.stt.push(held)
            self._held.clear()
            return SpeechOnset(at, resumed=True)
        self._in_utterance = True
        self._utterance_start = at
        for early in self._pre_roll:
            await self.stt.push(early)
        self._pre_roll.clear()
        return SpeechOnset(at, resumed=False)

    def _speech_ended(self, at: float) -> None:
        self._speaking = False
        if not self._in_utterance:
            return
        self.endpointer.speech_ended(at)
        self.stt.speculate()
        self._cancel_pause_task()
        self._pause_task = asyncio.create_task(self._await_pause_transcript(at))

    async def _await_pause_transcript(self, pause_start: float) -> None:
        transcript = await self.stt.latest()
        if self.endpointer.pause_start == pause_start:
            self.endpointer.transcript(transcript.text)
            self._pending.append(
                PauseTranscript(transcript.text, pause_start - self._utterance_start)
            )

    def _cancel_pause_task(self) -> None:
        if self._pause_task is not None and not self._pause_task.done():
            self._pause_task.cancel()
        self._pause_task = None

    async def _close(self) -> Turn:
        closed_at = time.monotonic()
        ended = self.endpointer.pause_start or self._utterance_start
        self._cancel_pause_task()
        transcript = await self.stt.finish()
        timings = TurnTimings(
            caller_stopped=self.to_monotonic(ended),
            turn_closed=closed_at,
            transcript_final=time.monotonic(),
        )
        log.debug(
            "turn closed %.0f ms into the pause; decode %.0f ms (%s): %r",
            1000 * (timings.turn_closed - timings.caller_stopped),
            1000 * transcript.decode_seconds,
            "speculative" if transcript.speculative else "at close",
            transcript.text,
        )
        turn = Turn(transcript.text, self._utterance_start, ended, timings, transcript.speculative)
        self._end_utterance()
        return turn

    def discard_utterance(self) -> None:
        """Forget the current utterance without a turn (it was a backchannel or noise)."""
        self._cancel_pause_task()
        self.stt.reset()
        self._end_utterance()

    def _end_utterance(self) -> None:
        self._in_utterance = False
        self._held.clear()
        self.endpointer.reset()

    async def aclose(self) -> None:
        """Stop background work and release the recognizer stream."""
        self._cancel_pause_task()
        await self.stt.aclose()
