"""The agent's voice on the call path: streamed reply text in, 20 ms frames for the wire out.

Three stages run concurrently, so no stage waits for a whole reply:
1. text: the reply's deltas go through the :class:`SentenceChunker` as they arrive;
2. synthesis: each chunk is synthesized (phrase cache first) and resampled to the call's rate,
   at most one chunk ahead of what the consumer is taking;
3. the consumer (``async for`` over :meth:`Voice.speak`) gets :class:`SpokenFrame` s, each
   tagged with the chunk of text it belongs to, so the call can tell which words were heard.
Cancelling the consumer (barge-in) cancels the other two stages and the request in the engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass, field

from frontdesk.audio import AudioFormatError, AudioFrame
from frontdesk.audio.resample import FrameResampler, resample
from frontdesk.audio.trim import SilenceTrimmer
from frontdesk.speech.tts.base import TTS, TTSError
from frontdesk.speech.tts.chunker import SentenceChunker
from frontdesk.speech.tts.phrase_cache import PhraseCache

_LOG = logging.getLogger(__name__)

FRAME_S = 0.02
LEAD_S = 0.01
"""Silence kept before a chunk's first sound: engines pad ~50 ms that the caller waits for."""
TRAIL_S = 0.12
"""Silence kept after a chunk: a natural pause between clauses, not the engine's ~200 ms."""


@dataclass(frozen=True, slots=True)
class SpokenFrame:
    """One 20 ms frame of speech and the text chunk it is part of.

    ``chunk_end`` marks the chunk's last frame: once it has been played, the caller has
    heard all of ``chunk_text`` (and every earlier chunk of the utterance).
    """

    frame: AudioFrame
    chunk_index: int
    chunk_text: str
    chunk_end: bool
    utterance: int  # serial number of the speak()/say() call on this Voice

    @property
    def chunk_key(self) -> tuple[int, int]:
        """Identifies the chunk across every utterance of this Voice."""
        return (self.utterance, self.chunk_index)


@dataclass(slots=True)
class Utterance:
    """What one speak()/say() said and when (``time.monotonic()`` seconds)."""

    serial: int
    started: float
    first_chunk_ready: float | None = None  # the chunker released the first chunk
    first_audio: float | None = None  # the first frame was handed to the consumer
    chunks: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        """Every chunk released so far, joined."""
        return " ".join(self.chunks)

    def text_through(self, spoken: SpokenFrame | None) -> str:
        """The text fully heard if playback stopped right after ``spoken`` (None: nothing)."""
        if spoken is None:
            return ""
        done = spoken.chunk_index + (1 if spoken.chunk_end else 0)
        return " ".join(self.chunks[:done])


_END = object()  # end of a queue's stream


def spoken_chunks(line: str, first_clause_words: int = 3) -> list[str]:
    """The chunks :meth:`Voice.speak` can cut ``line`` into, whether it opens a reply (its
    first clause split off) or follows other text: what to warm a phrase cache with."""
    chunks: set[str] = set()
    for opening in (True, False):
        chunker = SentenceChunker(first_clause_words)
        lead = [] if opening else chunker.push("Okay. ")  # a reply already under way
        pieces = [*lead, *chunker.push(" ".join(line.split()) + " "), chunker.flush()]
        chunks.update(p for p in pieces[len(lead) :] if p)
    return sorted(chunks)


class Voice:
    """Streaming speech for one call: ``tts`` resampled to ``out_rate`` in 20 ms frames.

    ``cache`` (for the same ``tts``) makes fixed lines, and chunks that match one, instant.
    ``first_clause_words`` is passed to the chunker (see :class:`SentenceChunker`).
    """

    def __init__(
        self,
        tts: TTS,
        out_rate: int = 16000,
        cache: PhraseCache | None = None,
        first_clause_words: int = 3,
        fallback: TTS | None = None,
    ) -> None:
        if cache is not None and cache.tts is not tts:
            raise ValueError("the phrase cache belongs to another TTS voice")
        FrameResampler(tts.sample_rate, out_rate)  # unsupported rates fail here, not mid-call
        self.tts = tts
        self.out_rate = out_rate
        self.cache = cache
        self.first_clause_words = first_clause_words
        self.fallback = fallback
        self.fallbacks = 0  # chunks the fallback voice had to speak
        self.last: Utterance | None = None
        self._serials = itertools.count(1)

    async def speak(self, deltas: AsyncIterable[str]) -> AsyncIterator[SpokenFrame]:
        """Speak a streamed reply: frames come as soon as its first chunk is synthesized."""
        utterance = self._begin()
        chunks: asyncio.Queue[object] = asyncio.Queue()
        tasks = [
            asyncio.create_task(self._chunk_text(deltas, chunks, utterance), name="voice-text")
        ]
        # aclosing: closing this generator must run the inner one's clean-up now, not at GC
        async with contextlib.aclosing(self._synthesize_all(chunks, utterance, tasks)) as frames:
            async for spoken in frames:
                yield spoken

    async def say(self, text: str) -> AsyncIterator[SpokenFrame]:
        """Speak one whole line: from the phrase cache if it is there, else chunked and
        streamed like a reply."""
        utterance = self._begin()
        chunks: asyncio.Queue[object] = asyncio.Queue()
        line = " ".join(text.split())
        if self.cache is not None and line in self.cache:
            pieces = [line]
        else:
            chunker = SentenceChunker(self.first_clause_words)
            pieces = [*chunker.push(line), chunker.flush()]
        for piece in filter(None, pieces):
            self._release(piece, chunks, utterance)
        chunks.put_nowait(_END)
        async with contextlib.aclosing(self._synthesize_all(chunks, utterance, [])) as frames:
            async for spoken in frames:
                yield spoken

    def _begin(self) -> Utterance:
        self.last = Utterance(next(self._serials), time.monotonic())
        return self.last

    @staticmethod
    def _release(chunk: str, chunks: asyncio.Queue[object], utterance: Utterance) -> None:
        if utterance.first_chunk_ready is None:
            utterance.first_chunk_ready = time.monotonic()
        utterance.chunks.append(chunk)
        chunks.put_nowait(chunk)

    async def _chunk_text(
        self, deltas: AsyncIterable[str], chunks: asyncio.Queue[object], utterance: Utterance
    ) -> None:
        """Stage 1: deltas -> chunks. Errors travel down the queue to the consumer."""
        chunker = SentenceChunker(self.first_clause_words)
        try:
            async for delta in deltas:
                for chunk in chunker.push(delta):
                    self._release(chunk, chunks, utterance)
            if rest := chunker.flush():
                self._release(rest, chunks, utterance)
            chunks.put_nowait(_END)
        except Exception as exc:
            chunks.put_nowait(exc)
        finally:
            aclose = getattr(deltas, "aclose", None)
            if aclose is not None:  # we own the stream now: a cancelled reply stops it too
                with contextlib.suppress(Exception):
                    await aclose()

    async def _synthesize_all(
        self, chunks: asyncio.Queue[object], utterance: Utterance, tasks: list[asyncio.Task[None]]
    ) -> AsyncIterator[SpokenFrame]:
        """Stages 2 and 3; always stops every stage before returning or raising."""
        # holds at most one chunk's frame queue: synthesis runs one chunk ahead, no more
        ahead: asyncio.Queue[object] = asyncio.Queue(maxsize=1)
        tasks.append(asyncio.create_task(self._synthesize_chunks(chunks, ahead), name="voice-tts"))
        try:
            index = 0
            while (frames := await ahead.get()) is not _END:
                if isinstance(frames, BaseException):
                    raise frames
                assert isinstance(frames, asyncio.Queue)
                text = utterance.chunks[index]
                held: AudioFrame | None = None  # one frame back, to know which one is last
                while (item := await frames.get()) is not _END:
                    if isinstance(item, BaseException):
                        raise item
                    assert isinstance(item, AudioFrame)
                    if held is not None:
                        yield self._spoken(held, index, text, False, utterance)
                    held = item
                if held is not None:
                    yield self._spoken(held, index, text, True, utterance)
                index += 1
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def _spoken(
        self, frame: AudioFrame, index: int, text: str, end: bool, utterance: Utterance
    ) -> SpokenFrame:
        if utterance.first_audio is None:
            utterance.first_audio = time.monotonic()
        return SpokenFrame(frame, index, text, end, utterance.serial)

    async def _synthesize_chunks(
        self, chunks: asyncio.Queue[object], ahead: asyncio.Queue[object]
    ) -> None:
        """Stage 2: each chunk -> a queue of 20 ms frames at out_rate, one chunk ahead."""
        clock = 0  # frames emitted in this utterance: timestamps run on across chunks
        try:
            while (chunk := await chunks.get()) is not _END:
                if isinstance(chunk, BaseException):
                    raise chunk
                assert isinstance(chunk, str)
                frames: asyncio.Queue[object] = asyncio.Queue()
                await ahead.put(frames)
                # a resampler per chunk: its tail is flushed into the chunk's own last frame
                resampler = FrameResampler(self.tts.sample_rate, self.out_rate)
                try:
                    source = self._chunk_audio(chunk)
                    trimmer = SilenceTrimmer(self.tts.sample_rate, LEAD_S, TRAIL_S)
                    async with contextlib.aclosing(source):
                        async for audio in source:
                            if audio.sample_rate != self.tts.sample_rate:
                                raise AudioFormatError(
                                    f"{self.tts.name} yielded {audio.sample_rate} Hz audio, "
                                    f"expected {self.tts.sample_rate} Hz"
                                )
                            audio = AudioFrame(trimmer.push(audio.pcm), audio.sample_rate)
                            for frame in resampler.process(audio):
                                frames.put_nowait(self._stamp(frame, clock))
                                clock += 1
                    tail = AudioFrame(trimmer.end(), self.tts.sample_rate)
                    for frame in [*resampler.process(tail), *resampler.flush()]:
                        frames.put_nowait(self._stamp(frame, clock))
                        clock += 1
                except Exception as exc:
                    frames.put_nowait(exc)
                    return
                frames.put_nowait(_END)
            await ahead.put(_END)
        except Exception as exc:
            await ahead.put(exc)

    async def _chunk_audio(self, chunk: str) -> AsyncIterator[AudioFrame]:
        """The chunk from the cache or the voice; if the voice fails before any audio came
        out, from the fallback voice (at the main voice's rate), so the caller never gets
        dead air for a crashed engine. The fallback's audio is never cached."""
        source = self.cache.synthesize(chunk) if self.cache else self.tts.synthesize(chunk)
        started = False
        try:
            async with contextlib.aclosing(source):
                async for audio in source:
                    started = True
                    yield audio
            return
        except TTSError as exc:
            if started or self.fallback is None:
                raise
            self.fallbacks += 1
            _LOG.warning(
                "%s failed (%s); %s speaks this chunk", self.tts.name, exc, self.fallback.name
            )
        async with contextlib.aclosing(self.fallback.synthesize(chunk)) as spare:
            async for audio in spare:
                pcm = audio.pcm
                if audio.sample_rate != self.tts.sample_rate:
                    pcm = resample(pcm, audio.sample_rate, self.tts.sample_rate)
                yield AudioFrame(pcm, self.tts.sample_rate)

    def _stamp(self, frame: AudioFrame, clock: int) -> AudioFrame:
        """The frame on the utterance's clock: frame k starts at k * 20 ms."""
        return AudioFrame(frame.pcm, self.out_rate, round(clock * FRAME_S, 6))
