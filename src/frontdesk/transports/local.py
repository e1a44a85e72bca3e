"""A loopback phone line in one process: a simulated caller on one end, the agent on the other.

One 20 ms tick drives both directions from a single monotonic clock, exactly like a phone
line: each tick the caller side produces a frame (speech, silence or noise) and the agent's
oldest queued frame is played (or silence when nothing is queued). Both are written to a
stereo recording (caller left, agent right) on the same timeline, which is what the tests
and the evaluation battery measure.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from frontdesk.audio import FRAME_MS, AudioFrame, frame_samples
from frontdesk.audio.resample import resample
from frontdesk.audio.wav import write_wav
from frontdesk.transports.base import (
    INBOUND_RATE,
    AudioIn,
    CallEnded,
    DtmfIn,
    MarkPlayed,
    TransportEvent,
)

TICK_S = FRAME_MS / 1000


@dataclass(slots=True)
class CallerTick:
    """What the caller does during one tick."""

    pcm: np.ndarray
    dtmf: str | None = None
    hang_up: bool = False


class CallerSide(Protocol):
    """The far end of a :class:`LocalTransport`: hears the agent, produces the caller."""

    def tick(self, index: int, heard: np.ndarray) -> CallerTick:
        """Caller audio for tick ``index``, given the agent audio played in the last tick."""
        ...


@dataclass(slots=True)
class LineRecord:
    """What crossed the line, for reports: transfers and who hung up."""

    transfers: list[str] = field(default_factory=list)
    ended_by: str | None = None


class LocalTransport:
    """The Transport protocol over an in-process line to a :class:`CallerSide`."""

    name = "local"

    def __init__(
        self,
        caller: CallerSide,
        *,
        caller_number: str | None = "+15550100",
        output_rate: int = INBOUND_RATE,
        recording_path: str | Path | None = None,
        lookahead_frames: int = 3,
        max_seconds: float = 600.0,
    ) -> None:
        self.caller = caller
        self.caller_number = caller_number
        self.output_rate = output_rate
        self.recording_path = Path(recording_path) if recording_path else None
        self.log = LineRecord()
        self._lookahead = lookahead_frames
        self._max_ticks = int(max_seconds / TICK_S)
        self._events: asyncio.Queue[TransportEvent] = asyncio.Queue()
        self._playout: collections.deque[AudioFrame | str] = collections.deque()
        self._space = asyncio.Event()
        self._space.set()
        self._ended = False
        self._out_samples = frame_samples(output_rate)
        self._silence_out = np.zeros(self._out_samples, dtype=np.int16)
        self._caller_track: list[np.ndarray] = []
        self._agent_track: list[np.ndarray] = []
        self._clock: asyncio.Task[None] | None = None
        self.started_at: float | None = None

    # --- the line ---------------------------------------------------------------------
    def start(self) -> None:
        """Start the line's clock (done by :meth:`events` if not called before)."""
        if self._clock is None:
            self._clock = asyncio.create_task(self._run_clock(), name="local-line")

    async def _run_clock(self) -> None:
        self.started_at = start = time.monotonic()
        heard = self._silence_out
        index = 0
        while not self._ended:
            due = start + index * TICK_S
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            heard = self._tick(index, heard)
            index += 1
            if index >= self._max_ticks:
                self._end("max duration")

    def _tick(self, index: int, heard: np.ndarray) -> np.ndarray:
        now = time.monotonic()
        step = self.caller.tick(index, heard)
        frame = AudioFrame(step.pcm, INBOUND_RATE, index * TICK_S)
        frame.check(INBOUND_RATE)
        self._events.put_nowait(AudioIn(frame, now))
        if step.dtmf:
            self._events.put_nowait(DtmfIn(step.dtmf, now))
        played = self._play_one(now)
        self._caller_track.append(step.pcm)
        self._agent_track.append(played)
        if step.hang_up:
            self._end("caller hung up", by="caller")
        return played

    def _play_one(self, now: float) -> np.ndarray:
        played = self._silence_out
        self._echo_marks(now)
        if self._playout and isinstance(self._playout[0], AudioFrame):
            played = self._playout.popleft().pcm  # type: ignore[union-attr]
            self._echo_marks(now)
        if self._queued_frames() < self._lookahead:
            self._space.set()
        return played

    def _echo_marks(self, now: float) -> None:
        while self._playout and isinstance(self._playout[0], str):
            self._events.put_nowait(MarkPlayed(self._playout.popleft(), now))  # type: ignore[arg-type]

    def _queued_frames(self) -> int:
        return sum(isinstance(item, AudioFrame) for item in self._playout)

    def _end(self, reason: str, by: str = "agent") -> None:
        if self._ended:
            return
        self._ended = True
        self.log.ended_by = by
        self._space.set()
        self._events.put_nowait(CallEnded(reason, time.monotonic()))
        self._write_recording()

    def _write_recording(self) -> None:
        if self.recording_path is None or not self._caller_track:
            return
        caller = np.concatenate(self._caller_track)
        agent = np.concatenate(self._agent_track)
        if self.output_rate != INBOUND_RATE:
            agent = resample(agent, self.output_rate, INBOUND_RATE)
        n = min(len(caller), len(agent))
        write_wav(self.recording_path, np.stack([caller[:n], agent[:n]], axis=1), INBOUND_RATE)

    # --- Transport protocol -----------------------------------------------------------
    async def events(self) -> AsyncIterator[TransportEvent]:
        """Inbound events, ending with :class:`CallEnded`."""
        self.start()
        while True:
            event = await self._events.get()
            yield event
            if isinstance(event, CallEnded):
                return

    async def send_audio(self, frame: AudioFrame) -> None:
        """Queue a frame for playout, waiting while ``lookahead_frames`` are already queued."""
        frame.check(self.output_rate)
        while not self._ended and self._queued_frames() >= self._lookahead:
            self._space.clear()
            await self._space.wait()
        if not self._ended:
            self._playout.append(frame)

    async def send_mark(self, name: str) -> None:
        """Echo ``name`` once the audio queued before it has played."""
        if not self._ended:
            self._playout.append(name)

    async def clear(self) -> None:
        """Drop queued audio and the marks behind it."""
        self._playout.clear()
        self._space.set()

    async def hang_up(self) -> None:
        """The agent ends the call."""
        self._end("agent hung up")

    async def transfer(self, number: str) -> None:
        """A loopback line has no one to transfer to: note it and end the call."""
        self.log.transfers.append(number)
        self._end(f"transferred to {number}")

    async def aclose(self) -> None:
        """Stop the clock and write the recording (if not already)."""
        self._end("closed")
        if self._clock is not None:
            self._clock.cancel()
            await asyncio.gather(self._clock, return_exceptions=True)
