"""Playing one agent reply to the caller, and knowing which of its words were heard.

Frames go to the transport with a mark every few frames. The transport echoes a mark once
the audio before it has played, so the newest echoed mark is how far the caller has heard.
A barge-in candidate *suspends* playback (the transport drops its buffer at once); if it
turns out to be a backchannel the reply *resumes* from the last heard position, otherwise
it is *stopped* and only :meth:`ReplyPlayback.heard_text` goes into the history.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass

from frontdesk.audio import AudioFrame
from frontdesk.transports.base import Transport

MARK_EVERY_FRAMES = 5
"""A mark per 100 ms of audio: the resolution of "what was heard"."""


@dataclass(slots=True)
class _Chunk:
    key: Hashable
    text: str
    start: int  # first sample of the chunk in the reply
    end: int | None = None  # one past its last sample, once complete


class ReplyPlayback:
    """Sends one reply's frames to the transport and tracks what has been played."""

    def __init__(
        self,
        transport: Transport,
        reply_id: str,
        on_first_audio: Callable[[float], None] | None = None,
        *,
        quiet_since: float | None = None,
    ) -> None:
        self.transport = transport
        self.reply_id = reply_id
        self.first_audio_at: float | None = None
        self._on_first_audio = on_first_audio
        self._frames: list[AudioFrame] = []
        self._chunks: list[_Chunk] = []
        self._queued = 0  # samples handed to the transport (rewound by a suspend)
        self._sent_frames = 0
        self._played = 0  # samples confirmed played
        self._total = 0  # samples produced
        self._input_done = False
        self._suspended = False
        self._stopped = False
        self._sender: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._all_played = asyncio.Event()
        # Bumped by every suspend: echoes of marks the clear dropped (Twilio sends those
        # back too) must not count as played after a resume.
        self._generation = 0
        # When the caller had heard all there was so far (None: some is still to play);
        # before the first frame, since the line went quiet (the caller's turn closed).
        self._quiet_from: float | None = time.monotonic() if quiet_since is None else quiet_since

    # --- producer side -------------------------------------------------------------
    def add(self, frame: AudioFrame, chunk_key: Hashable, chunk_text: str, chunk_end: bool) -> None:
        """Append a frame of the text chunk ``chunk_key`` (whose full text is ``chunk_text``);
        frames of one chunk come together, in order."""
        if not self._chunks or self._chunks[-1].key != chunk_key:
            if self._chunks and self._chunks[-1].end is None:
                self._chunks[-1].end = self._total
            self._chunks.append(_Chunk(chunk_key, chunk_text, self._total))
        self._frames.append(frame)
        self._total += len(frame.pcm)
        self._quiet_from = None
        if chunk_end:
            self._chunks[-1].end = self._total
        self._wake.set()

    def input_done(self) -> None:
        """No more frames will be added."""
        for chunk in self._chunks:
            if chunk.end is None:
                chunk.end = self._total
        self._input_done = True
        self._wake.set()
        self._check_all_played()

    # --- sender ----------------------------------------------------------------------
    def start(self) -> None:
        """Start sending frames as they are added, paced by the transport."""
        if self._sender is None and not self._stopped:
            self._sender = asyncio.create_task(self._send_loop(), name=f"playback-{self.reply_id}")

    async def _halt_sender(self) -> None:
        # Cancelling (rather than flagging) guarantees no frame is queued after a clear:
        # a send waiting for buffer space is abandoned before it enqueues anything.
        sender, self._sender = self._sender, None
        if sender is not None and sender is not asyncio.current_task():
            sender.cancel()
            await asyncio.gather(sender, return_exceptions=True)

    async def _send_loop(self) -> None:
        while True:
            if self._sent_frames < len(self._frames):
                frame = self._frames[self._sent_frames]
                await self.transport.send_audio(frame)
                if self.first_audio_at is None:
                    self.first_audio_at = time.monotonic()
                    if self._on_first_audio is not None:
                        self._on_first_audio(self.first_audio_at)
                self._sent_frames += 1
                self._queued += len(frame.pcm)
                if self._sent_frames % MARK_EVERY_FRAMES == 0 or self._at_chunk_end():
                    await self.transport.send_mark(self._mark_name())
            elif self._input_done:
                await self.transport.send_mark(self._mark_name())
                return
            else:
                self._wake.clear()
                await self._wake.wait()

    def _mark_name(self) -> str:
        return f"{self.reply_id}/{self._generation}:{self._queued}"

    def _at_chunk_end(self) -> bool:
        return any(c.end == self._queued for c in self._chunks)

    def on_mark(self, name: str) -> None:
        """A transport mark echoed back: advance the heard position if it is ours."""
        prefix, _, position = name.rpartition(":")
        if prefix != f"{self.reply_id}/{self._generation}" or not position.isdigit():
            return
        self._played = max(self._played, int(position))
        if self._played >= self._total and self._quiet_from is None:
            self._quiet_from = time.monotonic()
        self._check_all_played()

    def _check_all_played(self) -> None:
        if self._input_done and self._played >= self._total:
            self._all_played.set()

    # --- control ---------------------------------------------------------------------
    @property
    def speaking(self) -> bool:
        """True while some of this reply is queued or still to come."""
        return not self._stopped and not self._all_played.is_set()

    @property
    def suspended(self) -> bool:
        """True between :meth:`suspend` and :meth:`resume`."""
        return self._suspended

    @property
    def quiet_since(self) -> float | None:
        """The monotonic time since which the caller has heard all of this reply there is so
        far; None while some of it is still to play, or while it is suspended or stopped."""
        return None if self._suspended or self._stopped else self._quiet_from

    @property
    def played_seconds(self) -> float:
        """Audio the caller has heard, in seconds."""
        rate = self._frames[0].sample_rate if self._frames else 16000
        return self._played / rate

    async def wait_played(self) -> None:
        """Until the caller has heard all of the reply (or it was stopped)."""
        await self._all_played.wait()

    async def suspend(self) -> None:
        """Stop the audio now (possible barge-in), keeping the reply to resume."""
        if self._suspended or self._stopped:
            return
        self._suspended = True
        self._generation += 1
        await self._halt_sender()
        await self.transport.clear()
        # Resume from the last confirmed position: re-send what the clear dropped.
        rewind_to = self._played
        self._sent_frames, self._queued = self._frame_at(rewind_to), rewind_to

    def resume(self) -> None:
        """The interruption was a backchannel: carry on from what was last heard."""
        if self._suspended and not self._stopped:
            self._suspended = False
            self.start()

    async def stop(self) -> None:
        """The reply is abandoned: drop its audio (the caller interrupted or hung up)."""
        if self._stopped:
            return
        self._stopped = True
        await self._halt_sender()
        if not self._suspended and self._queued > self._played:
            await self.transport.clear()
        self._all_played.set()

    def _frame_at(self, sample: int) -> int:
        total = 0
        for i, frame in enumerate(self._frames):
            if total >= sample:
                return i
            total += len(frame.pcm)
        return len(self._frames)

    # --- what was heard --------------------------------------------------------------
    @property
    def full_text(self) -> str:
        """Everything the reply was going to say."""
        return " ".join(c.text.strip() for c in self._chunks if c.text.strip())

    def heard_text(self) -> str:
        """The words the caller heard: whole chunks played, plus the share of the chunk
        being played when it stopped, cut at a word boundary (by its share of characters)."""
        heard: list[str] = []
        for chunk in self._chunks:
            end = chunk.end if chunk.end is not None else self._total
            if self._played >= end:
                heard.append(chunk.text.strip())
                continue
            if self._played > chunk.start and end > chunk.start:
                share = (self._played - chunk.start) / (end - chunk.start)
                words = chunk.text.split()
                cut = len(chunk.text) * share
                taken, length = [], 0
                for word in words:
                    length += len(word) + 1
                    if length > cut:
                        break
                    taken.append(word)
                if taken:
                    heard.append(" ".join(taken))
            break
        return " ".join(h for h in heard if h)
