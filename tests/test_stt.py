"""Streaming STT: Whisper over the phone line, speculative decoding, pocketsphinx partials."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import numpy as np
import pytest

from frontdesk.audio import AudioFormatError, AudioFrame
from frontdesk.audio.noise import pink_noise
from frontdesk.speech.stt import STT, STTStream, Transcript, load_stt
from frontdesk.speech.stt.pocketsphinx import PocketsphinxSTT
from frontdesk.speech.stt.whisper import WhisperSTT
from speech_corpus import (
    BOOKING_SENTENCES,
    caller_audio,
    phone_line,
    to_frames,
    word_error_rate,
)

VOICES = ("slt", "rms")
"""Callers alternate between two flite voices (never Piper, the agent's own voice)."""


@pytest.fixture(scope="module")
def phone_calls() -> list[tuple[str, np.ndarray]]:
    """Every booking sentence, spoken by a caller and carried over 8 kHz mu-law."""

    async def synthesize() -> list[tuple[str, np.ndarray]]:
        return [
            (text, phone_line(await caller_audio(text, VOICES[i % len(VOICES)])))
            for i, text in enumerate(BOOKING_SENTENCES)
        ]

    return asyncio.run(synthesize())


@pytest.fixture(scope="module")
def whisper() -> Iterator[WhisperSTT]:
    stt = WhisperSTT()
    yield stt
    asyncio.run(stt.aclose())


async def push_all(stream: STTStream, pcm: np.ndarray, start: float = 0.0) -> None:
    for frame in to_frames(pcm, start=start):
        await stream.push(frame)


async def wait_for_interim(stream: STTStream, audio_end: float, limit: float = 10.0) -> Transcript:
    """The interim transcript once a background decode covers audio up to ``audio_end``."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        interim = stream.interim()
        if interim is not None and interim.audio_end >= audio_end:
            return interim
        await asyncio.sleep(0.02)
    raise AssertionError(f"no interim transcript up to {audio_end:.2f} s within {limit} s")


def test_providers_satisfy_the_protocol(whisper: WhisperSTT) -> None:
    recognizers: list[STT] = [whisper, PocketsphinxSTT()]
    for stt in recognizers:
        assert stt.sample_rate == 16000
        assert isinstance(stt.name, str)


def test_load_stt_by_name() -> None:
    assert isinstance(load_stt("pocketsphinx"), PocketsphinxSTT)
    with pytest.raises(ValueError, match="unknown STT provider 'nope'"):
        load_stt("nope")


async def test_whisper_word_error_rate_over_the_phone_line(
    whisper: WhisperSTT, phone_calls: list[tuple[str, np.ndarray]]
) -> None:
    """One call, utterance after utterance: pause -> speculate, turn closed -> finish."""
    stream = whisper.open()
    heard: list[str] = []
    clock = 0.0
    for _, pcm in phone_calls:
        await push_all(stream, pcm, start=clock)
        clock += len(pcm) / 16000 + 1.0
        stream.speculate()
        transcript = await stream.finish()
        assert transcript.is_final and transcript.speculative
        assert transcript.audio_end == pytest.approx(clock - 1.0, abs=0.02)
        heard.append(transcript.text)
    await stream.aclose()
    wer = word_error_rate([text for text, _ in phone_calls], heard)
    assert wer <= 0.10, f"WER {wer:.1%}: {heard}"


async def test_finish_reuses_the_speculative_decode(
    whisper: WhisperSTT, phone_calls: list[tuple[str, np.ndarray]]
) -> None:
    text, pcm = phone_calls[5]  # "Friday at ten o'clock works great for me."
    stream = whisper.open()
    await push_all(stream, pcm)
    stream.speculate()
    await wait_for_interim(stream, len(pcm) / 16000)  # the speculative decode is done
    started = time.perf_counter()
    transcript = await stream.finish()
    elapsed = time.perf_counter() - started
    await stream.aclose()
    assert transcript.speculative
    assert elapsed < 0.020, f"finish() took {elapsed * 1000:.0f} ms with the result ready"
    assert word_error_rate([text], [transcript.text]) <= 0.2, transcript.text


async def test_audio_after_speculation_is_decoded_again(
    whisper: WhisperSTT, phone_calls: list[tuple[str, np.ndarray]]
) -> None:
    _, first = phone_calls[5]  # "Friday at ten o'clock works great for me."
    _, second = phone_calls[7]  # "Can you send me a reminder the day before?"
    stream = whisper.open()
    await push_all(stream, first)
    stream.speculate()
    await wait_for_interim(stream, len(first) / 16000)
    await push_all(stream, second, start=len(first) / 16000)  # the caller went on
    transcript = await stream.finish()
    await stream.aclose()
    assert not transcript.speculative
    words = transcript.text.lower()
    assert "friday" in words and "reminder" in words, transcript.text


async def test_interim_transcripts_while_the_caller_speaks(
    whisper: WhisperSTT, phone_calls: list[tuple[str, np.ndarray]]
) -> None:
    _, pcm = phone_calls[1]  # "Do you have anything available on Thursday at two thirty..."
    stream = whisper.open()
    assert stream.interim() is None
    head = pcm[: int(1.6 * 16000)]
    await push_all(stream, head)  # 1.6 s: one interim decode starts after the first second
    interim = await wait_for_interim(stream, 1.0)
    assert not interim.is_final
    assert interim.text and "available" not in interim.text.lower()  # said after 1.6 s
    await push_all(stream, pcm[len(head) :], start=len(head) / 16000)
    final = await stream.finish()
    await stream.aclose()
    assert "thursday" in final.text.lower()


async def test_reset_drops_the_utterance(
    whisper: WhisperSTT, phone_calls: list[tuple[str, np.ndarray]]
) -> None:
    _, noise_burst = phone_calls[6]  # "The appointment is for my son, David Miller."
    _, wanted = phone_calls[7]  # "Can you send me a reminder the day before?"
    stream = whisper.open()
    await push_all(stream, noise_burst)
    stream.speculate()
    stream.reset()
    await push_all(stream, wanted)
    transcript = await stream.finish()
    await stream.aclose()
    assert "reminder" in transcript.text.lower()
    assert "miller" not in transcript.text.lower()


async def test_silence_and_noise_give_no_words(whisper: WhisperSTT) -> None:
    rng = np.random.default_rng(3)
    for pcm in (np.zeros(3 * 16000, np.int16), pink_noise(3 * 16000, rng, level_db=-35)):
        stream = whisper.open()
        await push_all(stream, phone_line(pcm))
        transcript = await stream.finish()
        await stream.aclose()
        assert transcript.text == ""


async def test_aclose_leaves_no_decode_running(
    whisper: WhisperSTT, phone_calls: list[tuple[str, np.ndarray]]
) -> None:
    streams = [whisper.open() for _ in range(3)]
    for stream, (_, pcm) in zip(streams, phone_calls, strict=False):
        await push_all(stream, pcm)
        stream.speculate()
    await asyncio.sleep(0.05)
    assert whisper.active_decodes > 0
    for stream in streams:
        await stream.aclose()
    assert whisper.active_decodes == 0
    with pytest.raises(RuntimeError, match="closed"):
        await streams[0].push(AudioFrame(np.zeros(320, np.int16), 16000))


async def test_whisper_rejects_frames_it_cannot_use(whisper: WhisperSTT) -> None:
    stream = whisper.open()
    with pytest.raises(AudioFormatError, match="expected 16000 Hz"):
        await stream.push(AudioFrame(np.zeros(160, np.int16), 8000))
    with pytest.raises(AudioFormatError, match="320 samples"):
        await stream.push(AudioFrame(np.zeros(480, np.int16), 16000))
    with pytest.raises(AudioFormatError, match="expected 16000 Hz"):
        await whisper.transcribe([AudioFrame(np.zeros(160, np.int16), 8000)])
    await stream.aclose()


async def test_whisper_transcribes_a_whole_recording(
    whisper: WhisperSTT, phone_calls: list[tuple[str, np.ndarray]]
) -> None:
    text, pcm = phone_calls[2]  # the phone number
    transcript = await whisper.transcribe(to_frames(pcm))
    assert transcript.is_final and transcript.decode_seconds > 0
    assert word_error_rate([text], [transcript.text]) <= 0.15, transcript.text


async def test_pocketsphinx_streams_partials(phone_calls: list[tuple[str, np.ndarray]]) -> None:
    text, pcm = phone_calls[3]  # "Could we do next Monday morning at nine fifteen instead?"
    assert len(pcm) / 16000 >= 3.0
    stt = PocketsphinxSTT()
    stream = stt.open()
    partials: list[str] = []
    for frame in to_frames(pcm):
        await stream.push(frame)
        interim = stream.interim()
        if interim is not None:
            partials.append(interim.text)
    final = await stream.finish()
    await stream.aclose()
    assert partials, "no interim hypothesis before finish()"
    assert len(set(partials)) > 1, "the hypothesis never grew"
    assert final.is_final
    assert word_error_rate([text], [final.text]) < 0.5, final.text


async def test_pocketsphinx_rejects_wrong_rate() -> None:
    stream = PocketsphinxSTT().open()
    with pytest.raises(AudioFormatError, match="expected 16000 Hz"):
        await stream.push(AudioFrame(np.zeros(160, np.int16), 8000))
    await stream.aclose()
