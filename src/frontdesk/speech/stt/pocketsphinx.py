"""CMU pocketsphinx (en-us model from the wheel): a truly streaming recognizer with partials.

Less accurate than Whisper, but its hypothesis grows frame by frame, so interim transcripts
cost nothing extra. Each stream owns a decoder (they are stateful and not thread-safe); loading
one takes ~0.4 s, so decoders released by closed streams are kept for the next call. Decoding
runs in worker threads, one call at a time per stream.
"""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
from pocketsphinx import Decoder

from frontdesk.audio import AudioFrame
from frontdesk.speech.stt.base import Transcript, recording_samples

SAMPLE_RATE = 16000
PHONE_CMN_INIT = "52.3,32.5,-36.3,48.6,-26.0,3.9,8.0,-40.8,11.5,-16.2,8.2,8.6,-18.2"
"""Starting cepstral means for telephone speech. The decoder adapts its means as audio flows,
but from the wheel's default (40,3,-1) a fresh decoder misheard 89% of words in its first
utterances over 8 kHz mu-law; starting here, 30%. Measured by letting a decoder adapt to
phone-line speech of other voices and sentences than the tests use."""


class PocketsphinxSTT:
    """Pocketsphinx with its default US English acoustic model, dictionary and language model."""

    name = "pocketsphinx"
    sample_rate = SAMPLE_RATE

    def __init__(self, hypothesis_interval_s: float = 0.2, cmn_init: str = PHONE_CMN_INIT) -> None:
        self.hypothesis_interval_s = hypothesis_interval_s
        self._cmn_init = cmn_init
        self._idle: list[Decoder] = []
        self._lock = threading.Lock()

    def open(self) -> PocketsphinxStream:
        """A new stream for one call (its decoder is loaded on the first frame)."""
        return PocketsphinxStream(self)

    def acquire(self) -> Decoder:
        """Blocking: an idle decoder, or a newly loaded one."""
        with self._lock:
            if self._idle:
                return self._idle.pop()
        return Decoder(loglevel="FATAL", cmninit=self._cmn_init)

    def release(self, decoder: Decoder) -> None:
        """Give a decoder (outside any utterance) back for reuse."""
        with self._lock:
            self._idle.append(decoder)

    def _decode_all(self, pcm: np.ndarray) -> str:
        decoder = self.acquire()
        try:
            decoder.start_utt()
            decoder.process_raw(pcm.astype("<i2").tobytes(), full_utt=True)
            decoder.end_utt()
            hyp = decoder.hyp()
            return hyp.hypstr if hyp is not None else ""
        finally:
            self.release(decoder)

    async def transcribe(self, frames: list[AudioFrame]) -> Transcript:
        """Transcribe a whole recording of 16 kHz frames (any frame length) in one go."""
        pcm = recording_samples(frames, SAMPLE_RATE)
        started = time.perf_counter()
        text = await asyncio.to_thread(self._decode_all, pcm)
        return Transcript(
            text,
            is_final=True,
            audio_end=frames[-1].end if frames else 0.0,
            decode_seconds=time.perf_counter() - started,
        )

    async def aclose(self) -> None:
        """Forget idle decoders."""
        with self._lock:
            self._idle.clear()


class PocketsphinxStream:
    """One call's utterances, decoded as the frames arrive (see ``STTStream``)."""

    def __init__(self, stt: PocketsphinxSTT) -> None:
        self._stt = stt
        self._decoder: Decoder | None = None
        self._in_utterance = False
        self._discard = False  # reset() asked to drop the utterance in progress
        self._lock = asyncio.Lock()  # one decoder call at a time
        self._hyp_every = max(1, round(stt.hypothesis_interval_s * SAMPLE_RATE))
        self._since_hyp = 0
        self._text = ""
        self._audio_end = 0.0
        self._closed = False

    def _feed(self, pcm: bytes, restart: bool, want_hyp: bool) -> str | None:
        """Worker thread: (re)start the utterance if needed, decode, maybe read the hypothesis."""
        if self._decoder is None:
            self._decoder = self._stt.acquire()
        if restart:
            if self._in_utterance:
                self._decoder.end_utt()
            self._decoder.start_utt()
            self._in_utterance = True
        self._decoder.process_raw(pcm)
        if not want_hyp:
            return None
        hyp = self._decoder.hyp()
        return hyp.hypstr if hyp is not None else ""

    async def push(self, frame: AudioFrame) -> None:
        """Decode a 20 ms, 16 kHz frame as part of the current utterance."""
        if self._closed:
            raise RuntimeError("push() on a closed stream")
        frame.check(SAMPLE_RATE)
        async with self._lock:
            restart = self._discard or not self._in_utterance
            if restart:
                self._discard, self._text, self._since_hyp = False, "", 0
            self._since_hyp += len(frame.pcm)
            want_hyp = self._since_hyp >= self._hyp_every
            text = await asyncio.to_thread(self._feed, frame.to_bytes(), restart, want_hyp)
            self._audio_end = frame.end
            if text is not None:
                self._text, self._since_hyp = text, 0

    def speculate(self) -> None:
        """Nothing to start: the hypothesis is always current."""

    def interim(self) -> Transcript | None:
        """The decoder's hypothesis as of the last few frames (None before any words)."""
        if not self._in_utterance or self._discard or not self._text:
            return None
        return Transcript(self._text, is_final=False, audio_end=self._audio_end)

    def _hypothesis(self, end: bool) -> str:
        """Worker thread: the hypothesis of everything fed, ending the utterance if ``end``."""
        assert self._decoder is not None
        if end:
            self._decoder.end_utt()
            self._in_utterance = False
        hyp = self._decoder.hyp()
        return hyp.hypstr if hyp is not None else ""

    async def latest(self) -> Transcript:
        """Hypothesis of everything pushed so far."""
        async with self._lock:
            if not self._in_utterance or self._discard:
                return Transcript("", is_final=False, audio_end=self._audio_end)
            started = time.perf_counter()
            self._text = await asyncio.to_thread(self._hypothesis, False)
            return Transcript(self._text, False, self._audio_end, time.perf_counter() - started)

    async def finish(self) -> Transcript:
        """End the utterance: the decoder's final hypothesis (a final search over it)."""
        async with self._lock:
            if not self._in_utterance or self._discard:
                await self._end_silently()
                return Transcript("", is_final=True, audio_end=self._audio_end)
            started = time.perf_counter()
            text = await asyncio.to_thread(self._hypothesis, True)
            self._text = ""
            return Transcript(text, True, self._audio_end, time.perf_counter() - started)

    def reset(self) -> None:
        """Drop the current utterance; the decoder restarts on the next frame."""
        self._discard, self._text = True, ""

    async def _end_silently(self) -> None:
        if self._in_utterance and self._decoder is not None:
            await asyncio.to_thread(self._hypothesis, True)
        self._discard = False

    async def aclose(self) -> None:
        """End any utterance and hand the decoder back for reuse."""
        if self._closed:
            return
        self._closed = True
        async with self._lock:
            await self._end_silently()
            if self._decoder is not None:
                self._stt.release(self._decoder)
                self._decoder = None
